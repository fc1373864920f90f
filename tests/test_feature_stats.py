"""The small-feature verdict (robustcs.feature_stats): Pearson(SSIM, feature metric) across variants with a
bootstrap interval over test volumes, judged against −ρ; synthetic per-feature tables whose truth is known."""

import numpy as np
import pandas as pd
import pytest

from robustcs.feature_stats import (RELATIVE_METRIC, add_relative_error, correlation_intervals, correlation_verdict,
                                    permutation_p, ring_mse, volume_correlation)
from robustcs.findings import features_track_quality
from robustcs.tables import PATHOLOGY_METRICS, feature_correlation, feature_summary

SSIM = np.linspace(0.6, 0.9, 12)  # the variants' mean SSIM


def _orthogonal(x: np.ndarray, r: float) -> np.ndarray:
    """Values with sample Pearson correlation exactly ``r`` with ``x`` (unit spread)."""
    z = (x - x.mean()) / x.std()
    w = np.cos(np.arange(len(x)) * 2.1)  # any pattern, made orthogonal to z
    w = w - w.mean()
    w = w - (w @ z) / (z @ z) * z
    w /= w.std()
    return r * z + np.sqrt(1 - r * r) * w


def _per_feature(metric_means, ssim_means=SSIM, volumes=8, slices=2, features=3, noise=0.003, seed=0,
                 metric="mse_feature", item="index", dataset="d", mask="m") -> pd.DataFrame:
    """One row per (variant, volume, slice, feature): SSIM per slice, ``metric`` per feature around the variant's
    means, a volume difficulty shared by all variants (lower SSIM, higher error) and independent noise."""
    rng = np.random.default_rng(seed)
    difficulty = rng.normal(0, 0.02, volumes)
    rows = []
    for v, (s, m) in enumerate(zip(ssim_means, metric_means)):
        for k in range(volumes):
            for sl in range(slices):
                ssim = s - difficulty[k] + rng.normal(0, noise)
                for i in range(features):
                    rows.append({"dataset": dataset, "mask": mask, "family": "fam", "method": f"v{v:02d}",
                                 "stem": f"vol{k}", "slice": sl, item: i, "ssim": ssim, "psnr": 30.0,
                                 metric: m + difficulty[k] + rng.normal(0, noise)})
    return pd.DataFrame(rows)


def _judge(per_feature, metric="mse_feature", item="index", n_boot=400, rho=0.3, min_volumes=3):
    row = volume_correlation(per_feature, [metric], item, n_boot, seed=1)[0]
    variants = per_feature["method"].nunique()
    return correlation_verdict(row["pearson_low"], row["pearson_high"], row["volumes"], variants, rho, min_volumes)[0], row


def test_strong_negative_dependence_is_yes_and_its_mirror_no():
    ok, row = _judge(_per_feature(0.5 - 0.5 * SSIM))
    assert ok is True and row["pearson_high"] < -0.9 and row["volumes"] == 8
    ok, row = _judge(_per_feature(0.5 * SSIM))  # error rising with quality
    assert ok is False and row["pearson_low"] > 0.9


def test_no_correlation_is_never_yes():
    # variant means exactly uncorrelated with SSIM, tight volume noise: clearly weaker than −ρ
    ok, row = _judge(_per_feature(0.1 + 0.05 * _orthogonal(SSIM, 0.0)))
    assert ok is False and row["pearson_low"] > -0.3
    # feature MSE independent of SSIM, variants differing only by sampling noise: never "yes", whatever the draw
    verdicts = [_judge(_per_feature(np.full(12, 0.1), noise=0.05, volumes=6, seed=s), n_boot=200)[0] for s in range(12)]
    assert True not in verdicts


def test_weak_correlation_with_a_tight_interval_is_no():
    ok, row = _judge(_per_feature(0.1 + 0.05 * _orthogonal(SSIM, -0.1)))
    assert ok is False and -0.2 < row["pearson_low"] <= row["pearson_high"] < 0.0
    # the same weak correlation passes with a threshold below it: the verdict follows ρ
    assert _judge(_per_feature(0.1 + 0.05 * _orthogonal(SSIM, -0.1)), rho=0.05)[0] is True


def test_too_few_volumes_or_variants_is_undecided():
    ok, row = _judge(_per_feature(0.5 - 0.5 * SSIM, volumes=2))
    assert ok is None and row["volumes"] == 2 and row["pearson_high"] < -0.9
    assert correlation_verdict(-0.9, -0.8, 10, 2)[0] is None
    assert correlation_verdict(-0.9, -0.8, 10, 3)[0] is True
    assert correlation_verdict(-0.5, -0.1, 10, 3)[0] is None  # straddles −0.3
    assert correlation_verdict(np.nan, np.nan, 10, 3)[0] is None
    two = volume_correlation(_per_feature([0.2, 0.1], SSIM[:2]), ["mse_feature"], "index", 50, 0)[0]
    assert np.isnan(two["pearson_low"]) and np.isnan(two["pearson_p"])  # no correlation across two variants
    with pytest.raises(ValueError, match="feature_min_correlation"):
        correlation_verdict(-0.9, -0.8, 10, 3, min_correlation=1.2)


def test_ssim_and_the_metric_share_each_bootstrap_draw():
    """Every feature's MSE is minus its slice's SSIM and variants react differently to the volumes: every common
    draw gives r = −1 exactly; draws that differed between SSIM and the metric would not."""
    rng = np.random.default_rng(3)
    gain = np.linspace(0.5, 3.0, 5)
    difficulty = rng.normal(0, 0.05, 6)
    rows = [{"dataset": "d", "mask": "m", "family": "f", "method": f"v{v}", "stem": f"s{k}", "slice": 0, "index": i,
             "ssim": 0.8 + 0.01 * v - gain[v] * difficulty[k], "mse_feature": -(0.8 + 0.01 * v - gain[v] * difficulty[k])}
            for v in range(5) for k in range(6) for i in range(2)]
    row = volume_correlation(pd.DataFrame(rows), ["mse_feature"], "index", 300, seed=5)[0]
    assert row["pearson_low"] == pytest.approx(-1.0, abs=1e-9) and row["pearson_high"] == pytest.approx(-1.0, abs=1e-9)


def test_permutation_p_value():
    rng = np.random.default_rng(0)
    x = np.arange(6.0)
    assert permutation_p(x, -x, rng) == pytest.approx(2 / 720)  # only the observed and the reversed order reach |r| = 1
    assert permutation_p(SSIM, 0.5 - SSIM, rng) <= 2 / 10000  # 12 variants: random orderings plus the observed
    assert permutation_p(SSIM, _orthogonal(SSIM, 0.0), rng) == pytest.approx(1.0)
    assert np.isnan(permutation_p(x[:2], x[:2], rng)) and np.isnan(permutation_p(x, np.ones(6), rng))


def test_ring_mse_matches_the_pixels_around_each_feature():
    from robustcs.features import Feature, feature_metrics

    rng = np.random.default_rng(0)
    target = rng.uniform(0.5, 1.0, (40, 40))
    recon = target + rng.normal(0, 0.05, target.shape)
    margin = 3
    features = [Feature(0, "square", 4, 0.2, 5, 5), Feature(1, "disc", 7, 0.2, 20, 20), Feature(2, "disc", 2, 0.2, 5, 25)]
    table = pd.DataFrame(feature_metrics(target, recon, features, margin))
    scale = target.max()
    for f, derived in zip(features, ring_mse(table, margin)):
        r0, r1, c0, c1 = f.window(margin, target.shape)
        inside = np.zeros((r1 - r0, c1 - c0), dtype=bool)
        inside[margin:margin + f.size, margin:margin + f.size] = f.footprint()
        err = ((recon[r0:r1, c0:c1] - target[r0:r1, c0:c1]) / scale) ** 2
        assert derived == pytest.approx(err[~inside].mean(), rel=1e-9)
    assert np.isnan(ring_mse(table, 0)).all()
    with pytest.raises(ValueError, match="margin"):
        ring_mse(table, -1)
    with pytest.raises(ValueError, match="mse_window"):
        ring_mse(table.drop(columns="mse_window"), margin)


def _ring_table(feature_mse: np.ndarray, ring: np.ndarray, ssim: np.ndarray, volumes=6) -> pd.DataFrame:
    """Square 3-pixel features, margin 1 (9 footprint pixels in a 25-pixel window), with given footprint and ring
    MSE per variant (the window MSE is what feature_metrics would have measured)."""
    rows = []
    for v in range(len(ssim)):
        for k in range(volumes):
            jitter = 1 + 0.01 * ((k * 7 + v) % 5)
            window = (9 * feature_mse[v] * jitter + 16 * ring[v] * jitter) / 25
            rows.append({"dataset": "d", "mask": "m", "family": "f", "method": f"v{v:02d}", "stem": f"s{k}", "slice": 0,
                         "index": 0, "shape": "square", "size": 3, "ssim": ssim[v] - 0.001 * k, "psnr": 30.0,
                         "mse_feature": feature_mse[v] * jitter, "mse_window": window, "contrast_recovery": 1.0,
                         "mse_feature_meanstd": 1.0})
    return pd.DataFrame(rows)


def test_relative_error_divides_out_the_overall_error_level():
    """Variants that differ only in their overall error (feature and ring errors scaled alike) give a strong
    correlation of SSIM with the feature MSE but none with the relative error; variants whose features fade
    faster than their surroundings give both."""
    scale = 2.0 ** np.arange(10)  # the variants' overall error level, falling SSIM
    ssim = 0.95 - 0.02 * np.arange(10)
    ratio = 1 + 0.02 * _orthogonal(ssim, 0.0)  # feature-to-ring ratio unrelated to SSIM
    uniform = add_relative_error(_ring_table(1e-3 * scale * ratio, 1e-3 * scale, ssim), margin=1)
    assert uniform[RELATIVE_METRIC].to_numpy() == pytest.approx(np.repeat(np.log10(ratio), 6))
    first, second = volume_correlation(uniform, ["mse_feature", RELATIVE_METRIC], "index", 300, seed=0)
    assert correlation_verdict(first["pearson_low"], first["pearson_high"], 6, 10)[0] is True
    assert correlation_verdict(second["pearson_low"], second["pearson_high"], 6, 10)[0] is False
    fading = add_relative_error(_ring_table(1e-3 * scale ** 2, 1e-3 * scale, ssim), margin=1)
    second = volume_correlation(fading, [RELATIVE_METRIC], "index", 300, seed=0)[0]
    assert correlation_verdict(second["pearson_low"], second["pearson_high"], 6, 10)[0] is True


def test_bad_tables_name_what_is_wrong():
    table = _per_feature(0.5 - 0.5 * SSIM[:4], SSIM[:4], volumes=3)
    with pytest.raises(ValueError, match="mse_window"):
        volume_correlation(table, ["mse_window"], "index", 10, 0)
    with pytest.raises(ValueError, match="not every variant"):
        volume_correlation(table.iloc[1:], ["mse_feature"], "index", 10, 0)
    with pytest.raises(ValueError, match="more than one row"):
        volume_correlation(pd.concat([table, table.iloc[:1]]), ["mse_feature"], "index", 10, 0)


def _findings_row(per_feature, metrics, item, what):
    summary = feature_summary(per_feature, metrics, count="features" if what == "feature" else "boxes")
    correlation = feature_correlation(summary, metrics, correlation_intervals(per_feature, metrics, item, 300, 0))
    correlation = correlation.assign(min_correlation=0.3, min_volumes=3)  # what the summarise rules add
    return correlation, features_track_quality(correlation, "d", "m", metrics[0], what)


def test_the_pathology_boxes_follow_the_same_rule():
    strong = _per_feature(0.5 - 0.5 * SSIM, metric="mse_box", item="line").assign(mse_box_meanstd=1.0)
    correlation, row = _findings_row(strong, PATHOLOGY_METRICS, "line", "box")
    assert row["finding"] == "recovery of annotated pathology tracks overall quality" and row["reproduces"] == "yes"
    assert {"pearson_low", "pearson_high", "pearson_p", "volumes"} <= set(correlation.columns)
    assert "8 volumes" in row["measured"] and "relative to surroundings" not in row["measured"]
    weak = _per_feature(0.1 + 0.05 * _orthogonal(SSIM, -0.1), metric="mse_box", item="line").assign(mse_box_meanstd=1.0)
    assert _findings_row(weak, PATHOLOGY_METRICS, "line", "box")[1]["reproduces"] == "no"
    few = _per_feature(0.5 - 0.5 * SSIM, volumes=2, metric="mse_box", item="line").assign(mse_box_meanstd=1.0)
    row = _findings_row(few, PATHOLOGY_METRICS, "line", "box")[1]
    assert row["reproduces"] == "undecided" and "fewer than findings.min_volumes = 3" in row["details"]


def test_the_feature_row_shows_the_second_statistic_beside_the_first():
    scale = 2.0 ** np.arange(10)
    ssim = 0.95 - 0.02 * np.arange(10)
    table = add_relative_error(_ring_table(1e-3 * scale ** 2, 1e-3 * scale, ssim), margin=1)
    metrics = ("mse_feature", "mse_window", "contrast_recovery", "mse_feature_meanstd", RELATIVE_METRIC)
    correlation, row = _findings_row(table, metrics, "index", "feature")
    assert row["reproduces"] == "yes" and "relative to surroundings" in row["measured"]
    assert "second statistic" in row["details"] and "yes (interval below -0.30)" in row["details"]
    # a point estimate equal to the correlation of the variants' means, inside its interval
    first = correlation.set_index("metric").loc["mse_feature"]
    assert first["pearson_low"] <= first["pearson"] <= first["pearson_high"]
