"""Every verdict with too few volumes to resample is undecided, never yes or no: for each statistic, synthetic tables
with 1 and 2 test volumes per side (fewer than findings.min_volumes = 3) give "undecided" where the same truth with
enough volumes gives "yes", and its contradiction "no". A volume bootstrap over one volume draws that volume every
time: its interval has no width (the shift with one target volume showed [−0.000, 0.000] and "yes")."""

import numpy as np
import pandas as pd
import pytest

from robustcs.attack_stats import attack_verdicts
from robustcs.feature_stats import correlation_verdict, volume_correlation
from robustcs.findings import attack_vs_noise, one_line_per_shift, ttt_closes_gap
from robustcs.shifts import fit_table
from robustcs.tables import ttt_summary

from test_attack_stats import SIMILAR, attack_rows
from test_feature_stats import SSIM, _per_feature
from test_shifts import _volumes

FEW = (1, 2)
ENOUGH = 6


def _attack(volumes: int, rel=None, noise=0.3) -> str:
    rows = attack_rows(rel or SIMILAR, noise=noise, volumes=volumes, slices=2, jitter=0.01)
    return attack_vs_noise(attack_verdicts(rows, n_boot=300, seed=1), dataset="d", mask="m")["reproduces"]


@pytest.mark.parametrize("volumes", FEW)
def test_attack_verdict(volumes):
    assert _attack(volumes) == "undecided"
    assert _attack(volumes, {**SIMILAR, "varnet": 0.0}, noise=0.5) == "undecided"


def test_attack_verdict_with_enough_volumes():
    assert _attack(ENOUGH) == "yes"
    assert _attack(ENOUGH, {**SIMILAR, "varnet": 0.0}, noise=0.5) == "no"


def _feature(volumes: int, metric_means) -> bool | None:
    per_feature = _per_feature(metric_means, volumes=volumes)
    row = volume_correlation(per_feature, ["mse_feature"], "index", 300, seed=1)[0]
    assert row["volumes"] == volumes
    return correlation_verdict(row["pearson_low"], row["pearson_high"], row["volumes"], len(SSIM), 0.3, 3)[0]


@pytest.mark.parametrize("volumes", FEW)
def test_feature_verdict(volumes):
    assert _feature(volumes, 0.5 - 0.5 * SSIM) is None and _feature(volumes, 0.5 * SSIM) is None


def test_feature_verdict_with_enough_volumes():
    assert _feature(ENOUGH, 0.5 - 0.5 * SSIM) is True and _feature(ENOUGH, 0.5 * SSIM) is False


def _shift(volumes_in: int, volumes_out: int, offsets=None) -> tuple[str, pd.DataFrame]:
    table = _volumes(offsets or {}, n_volumes=max(volumes_in, volumes_out))
    keep = {"in": {f"in{v}" for v in range(volumes_in)}, "out": {f"out{v}" for v in range(volumes_out)}}
    table = table[[stem in keep[side] for side, stem in zip(table["side"], table["stem"])]]
    fits = fit_table(table, n_boot=300)
    return one_line_per_shift(fits)["reproduces"], fits.set_index("group")


@pytest.mark.parametrize("volumes_in,volumes_out", [(1, 1), (2, 2), (8, 1), (8, 2), (1, 8)])
def test_shift_verdict(volumes_in, volumes_out):
    verdict, fits = _shift(volumes_in, volumes_out)
    assert verdict == "undecided"
    assert (fits.drop("all")["verdict"] == "undecided").all()
    assert (fits["n_volumes_in"] == volumes_in).all() and (fits["n_volumes_out"] == volumes_out).all()
    assert _shift(volumes_in, volumes_out, {"varnet": -0.06})[0] == "undecided"


def test_one_volume_per_side_gives_an_interval_of_no_width_that_decides_nothing():
    _, single = _shift(1, 1)
    width = single.drop("all")["residual_high"] - single.drop("all")["residual_low"]
    assert np.allclose(width, 0, atol=1e-12) and (single.drop("all")["verdict"] == "undecided").all()
    # one target volume: the out side drawn from it every time, narrower than with eight (only the in side varies)
    narrow, wide = _shift(8, 1)[1].drop("all"), _shift(8, 8)[1].drop("all")
    assert (narrow["residual_high"] - narrow["residual_low"]).mean() < (wide["residual_high"] - wide["residual_low"]).mean()


def test_shift_verdict_with_enough_volumes():
    assert _shift(8, 8)[0] == "yes"
    assert _shift(8, 8, {"varnet": -0.06})[0] == "no"


def _ttt(volumes: int, closed: float) -> str:
    rng = np.random.default_rng(volumes)
    rows = []
    for v in range(volumes):
        pq, qq = 0.75 + rng.normal(0, 0.01), 0.85 + rng.normal(0, 0.01)
        ttt = pq + closed * (qq - pq) + rng.normal(0, 0.005)
        for setting, ssim in (("p_q", pq), ("p_q_ttt", ttt), ("q_q", qq)):
            extra = {"steps": 10, "stopped_early": False} if setting == "p_q_ttt" else {}
            rows.append({"shift": "s", "method": "v", "family": "varnet", "stem": f"vol{v}", "slice": 0,
                         "setting": setting, "ssim": ssim, **extra})
    summary = ttt_summary(pd.DataFrame(rows), n_boot=300, seed=1)
    assert list(summary["volumes"]) == [volumes]
    return ttt_closes_gap(summary, min_volumes=3)["reproduces"]


@pytest.mark.parametrize("volumes", FEW)
def test_ttt_verdict(volumes):
    assert _ttt(volumes, 0.9) == "undecided" and _ttt(volumes, 0.1) == "undecided"


def test_ttt_verdict_with_enough_volumes_and_without_a_count():
    assert _ttt(ENOUGH, 0.9) == "yes" and _ttt(ENOUGH, 0.1) == "no"
    case = {"shift": "s", "method": "v", "ssim_p_q": 0.8, "ssim_p_q_ttt": 0.89, "ssim_q_q": 0.9, "gap": 0.1,
            "gap_closed": 0.9, "gap_closed_low": 0.8, "gap_closed_high": 0.95, "steps": 10.0, "stopped_early": 0.0,
            "ttt_change": 0.09}
    # a summary that does not count its volumes cannot show it has enough of them
    row = ttt_closes_gap(pd.DataFrame([case]))
    assert row["reproduces"] == "undecided" and "counts no volumes" in row["details"]
    assert ttt_closes_gap(pd.DataFrame([{**case, "volumes": 3}]))["reproduces"] == "yes"  # the default minimum, 3
    assert ttt_closes_gap(pd.DataFrame([{**case, "volumes": 2}]))["reproduces"] == "undecided"
