"""Aggregate tables: grouping, statistics and family order."""

import numpy as np
import pandas as pd
import pytest

from robustcs.tables import summarise, to_markdown


def test_summarise_mean_std_and_order():
    rows = []
    for family, method, ssims in [("varnet", "v", [0.9, 0.8]), ("zero_filled", "zf", [0.5, 0.7]), ("l1", "l", [0.6])]:
        for i, s in enumerate(ssims):
            rows.append({"dataset": "d", "mask": "m", "family": family, "method": method, "stem": f"v{i}",
                         "slice": 0, "ssim": s, "psnr": 30 * s, "nmse": 1 - s})  # one slice per volume
    out = summarise(pd.DataFrame(rows), ["dataset", "mask", "family", "method"])
    assert list(out["family"]) == ["zero_filled", "l1", "varnet"]
    zf = out[out["method"] == "zf"].iloc[0]
    assert zf["n"] == zf["volumes"] == 2 and zf["ssim_mean"] == pytest.approx(0.6) and zf["ssim_std"] == pytest.approx(np.std([0.5, 0.7], ddof=1))
    assert out[out["method"] == "l"].iloc[0]["ssim_std"] == 0.0  # one slice: no spread, not NaN
    md = to_markdown(out)
    assert "| d | m | varnet | v | 2 | 2 | 0.850 ± 0.071 |" in md


def test_summarise_scores_each_volume_as_a_whole():
    """Two volumes of unequal slice counts: SSIM is the mean over volumes of each volume's slice mean, PSNR the
    mean of each volume's PSNR over all its voxels (not the mean of slice PSNRs), the spread over volumes."""
    from robustcs.metrics import volume_psnr

    rows = [{"method": "a", "stem": stem, "slice": i, "ssim": s, "psnr": p, "nmse": 0.01}
            for stem, scores in (("v0", [(0.9, 30.0), (0.7, 20.0), (0.8, 25.0)]), ("v1", [(0.5, 22.0)]))
            for i, (s, p) in enumerate(scores)]
    out = summarise(pd.DataFrame(rows), ["method"]).iloc[0]
    assert out["n"] == 4 and out["volumes"] == 2
    assert out["ssim_mean"] == pytest.approx((0.8 + 0.5) / 2)
    v0 = volume_psnr([30.0, 20.0, 25.0])
    assert v0 < 25.0 and out["psnr_mean"] == pytest.approx((v0 + 22.0) / 2)
    assert out["psnr_std"] == pytest.approx(np.std([v0, 22.0], ddof=1))
    assert out["nmse_mean"] == pytest.approx(0.01)
    with pytest.raises(ValueError, match="stem"):
        summarise(pd.DataFrame(rows).drop(columns="stem"), ["method"])


def test_missing_columns():
    with pytest.raises(ValueError, match="psnr"):
        summarise(pd.DataFrame({"method": ["a"], "ssim": [1.0], "nmse": [0.0]}), ["method"])


def test_feature_correlation_carries_the_volume_intervals():
    """Point correlations from the per-variant means; the interval columns of feature_stats joined per metric
    (NaN for a metric they do not cover); fewer than three variants give no correlation."""
    from robustcs.tables import feature_correlation

    summary = pd.DataFrame({"dataset": "d", "mask": "m", "family": "f", "method": list("abcd"),
                            "ssim": [0.6, 0.7, 0.8, 0.9], "mse_feature": [0.4, 0.3, 0.25, 0.1],
                            "contrast_recovery": [0.2, 0.5, 0.4, 0.9]})
    intervals = pd.DataFrame([{"dataset": "d", "mask": "m", "metric": "mse_feature", "pearson_low": -1.0,
                               "pearson_high": -0.9, "pearson_p": 0.04, "volumes": 6}])
    out = feature_correlation(summary, ("mse_feature", "contrast_recovery"), intervals).set_index("metric")
    assert out.loc["mse_feature", "pearson"] == pytest.approx(np.corrcoef([0.6, 0.7, 0.8, 0.9], [0.4, 0.3, 0.25, 0.1])[0, 1])
    assert out.loc["mse_feature", "pearson"] < 0 < out.loc["contrast_recovery", "pearson"]
    assert out.loc["mse_feature", "pearson_high"] == -0.9 and out.loc["mse_feature", "volumes"] == 6
    assert np.isnan(out.loc["contrast_recovery", "pearson_low"])
    assert list(feature_correlation(summary, ("mse_feature",)).columns) == ["dataset", "mask", "metric", "variants",
                                                                            "pearson", "spearman"]
    assert np.isnan(feature_correlation(summary.iloc[:2], ("mse_feature",)).loc[0, "pearson"])


def _val(ssim_by_method: dict) -> pd.DataFrame:
    """Per-slice validation scores (two slices per variant) of variants named <family>_<x>."""
    return pd.DataFrame([{"dataset": "d", "mask": "m", "family": m.rsplit("_", 1)[0], "method": m, "stem": "v",
                          "slice": i, "ssim": s, "psnr": 20 + 10 * s} for m, s in ssim_by_method.items() for i in (0, 1)])


def test_tuning_table_flags_a_choice_at_either_edge_of_a_one_setting_grid():
    from robustcs.tables import tuning_table

    lams = {"l1_a": 1e-5, "l1_b": 1e-4, "l1_c": 1e-3}
    settings = {m: {"lam": lam, "iterations": 60, "wavelet": "db4"} for m, lam in lams.items()}
    for winner, edge in (("l1_a", True), ("l1_b", False), ("l1_c", True)):
        table = tuning_table(_val({m: 0.9 if m == winner else 0.8 for m in lams}), settings).set_index("method")
        assert list(table.index[table["selected"]]) == [winner]
        assert table.loc[winner, "at_edge"] == edge and not table.drop(winner)["at_edge"].any()
        assert (table["grid_setting"] == "lam").all() and list(table["grid_value"]) == [1e-5, 1e-4, 1e-3]
        assert table["grid_note"].isna().all()
    # ties on validation SSIM: the first by name
    assert tuning_table(_val({m: 0.8 for m in lams}), settings).set_index("method")["selected"].idxmax() == "l1_a"


def test_tuning_table_has_no_grid_without_exactly_one_numeric_setting_varying():
    from robustcs.tables import tuning_table

    settings = {"convdecoder_a": {"channels": 8},  # one variant
                "unet_a": {"chans": 4, "epochs": 2}, "unet_b": {"chans": 8, "epochs": 3},  # two settings vary
                "varnet_a": {"loss": "ssim"}, "varnet_b": {"loss": "l1"},  # not a number
                "l1_a": {"lam": 1e-3}, "l1_b": {"lam": 1e-3}}  # nothing varies
    # each family's first variant wins (it would be the smallest of a grid)
    scores = {m: 0.9 if m.endswith("_a") else 0.8 for m in settings}
    table = tuning_table(_val(scores), settings).set_index("method")
    assert not table["at_edge"].any() and table["grid_setting"].isna().all() and table["grid_value"].isna().all()
    assert table.loc["convdecoder_a", "grid_note"] == "one variant"
    assert table.loc["unet_b", "grid_note"] == "2 settings vary (chans, epochs)"
    assert table.loc["varnet_a", "grid_note"] == "loss varies but is not a number"
    assert table.loc["l1_a", "grid_note"] == "no setting varies"
    assert (tuning_table(_val(scores))["grid_note"] == "settings not given").all()
    with pytest.raises(ValueError, match=r"no settings for the tuned variants \['unet_b'\]"):
        tuning_table(_val(scores), {m: s for m, s in settings.items() if m != "unet_b"})
