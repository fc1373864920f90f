"""The findings table: each finding's statistic is computed from the run's tables and says "no" when the
tables contradict the papers (one planted contradiction per finding)."""

import io
import re

import numpy as np
import pandas as pd
import pytest

from robustcs.attack_stats import attack_verdicts
from robustcs.findings import attack_vs_noise, findings_markdown, findings_table

from test_attack_stats import SIMILAR, attack_rows

FAMILY_SSIM = {"zero_filled": 0.6, "l1": 0.7, "convdecoder": 0.8, "unet": 0.82, "varnet": 0.9}


def _clean(best=None):
    """Three variants per family; PSNR follows SSIM (20 + 20·SSIM dB)."""
    best = best or FAMILY_SSIM
    rows = [{"dataset": "d", "mask": "m", "family": f, "method": f"{f}_{i}", "ssim_mean": s - 0.05 * i,
             "psnr_mean": 20 + 20 * (s - 0.05 * i)} for f, s in best.items() for i in range(3)]
    return pd.DataFrame(rows)


def _tuning(families=("l1", "convdecoder", "unet", "varnet"), chosen=0):
    """A tuning table that chose variant ``chosen`` of each family on the validation split."""
    return pd.DataFrame([{"dataset": "d", "mask": "m", "family": f, "method": f"{f}_{i}", "selected": i == chosen}
                         for f in families for i in range(3)])


def _drops(random_wins_for=()):
    rows = []
    for f in ("l1", "convdecoder", "unet", "varnet"):
        for eps in (0.02, 0.08):
            drop = 3.0 * eps / 0.08
            rows.append({"dataset": "d", "mask": "m", "family": f, "method": f"{f}_0", "epsilon": eps, "n": 3,
                         "psnr_clean": 30.0, "psnr_drop": drop, "share_converged": 1.0,
                         "psnr_drop_random": drop + 1 if f in random_wins_for else drop / 3})
    return pd.DataFrame(rows)


def _attacks(rel=None, **kw):
    """The attack verdict table of synthetic per-slice rows (test_attack_stats.attack_rows)."""
    return attack_verdicts(attack_rows(rel or SIMILAR, **kw), n_boot=300, seed=2)


def _fits(above=None):
    rows = [{"shift": "s", "group": "all", "slope": 0.9, "r2": 0.95, "residual": 0.0, "residual_low": -0.01,
             "residual_high": 0.01, "n_volumes_in": 5, "n_volumes_out": 5}]
    for g in ("l1", "convdecoder", "unet", "varnet"):
        low = 0.03 if g == above else -0.01  # above: [0.03, 0.05], wholly beyond the margin 0.02
        rows.append({"shift": "s", "group": g, "slope": 0.9, "r2": 0.9, "residual": low + 0.01, "residual_low": low,
                     "residual_high": low + 0.02, "n_volumes_in": 5, "n_volumes_out": 5})
    return pd.DataFrame(rows)


def _ttt(closed=0.9):
    return pd.DataFrame([{"shift": "s", "method": "v", "ssim_p_q": 0.8, "ssim_p_q_ttt": 0.8 + 0.1 * closed,
                          "ssim_q_q": 0.9, "gap": 0.1, "gap_closed": closed, "gap_closed_low": closed - 0.1,
                          "gap_closed_high": closed + 0.1, "steps": 100.0, "stopped_early": 1.0,
                          "volumes": 5}])


def _corr(r, half_width=0.1, volumes=5, metric="mse_feature", **extra):
    """A features_correlation.csv row: Pearson r with its volume-bootstrap interval r ± half_width."""
    return pd.DataFrame([{"dataset": "d", "mask": "m", "metric": metric, "variants": 12, "pearson": r, "spearman": r,
                          "pearson_low": r - half_width, "pearson_high": r + half_width, "pearson_p": 0.01,
                          "volumes": volumes, **extra}])


def test_every_finding_reproduces_on_tables_that_agree_with_the_papers():
    table = findings_table(_clean(), "d", "m", _drops(), _corr(-0.5), _fits(), _ttt(), tuning=_tuning(),
                           attacks=_attacks())
    assert list(table["reproduces"]) == ["yes"] * 5, table[["finding", "reproduces", "details"]]
    assert table.loc[0, "measured"] == ("PSNR: varnet 38.00 > unet 36.40 > convdecoder 36.00 > l1 34.00 dB; "
                                        "SSIM: varnet 0.900 > unet 0.820 > convdecoder 0.800 > l1 0.700")
    assert "relative PSNR drop l1 -35 %, convdecoder -33 %, unet -36 %, varnet -30 %" in table.loc[1, "measured"]
    assert "settled" not in table.loc[1, "details"]  # a claim that could not fail is not made
    assert findings_markdown(table).count("\n") == 6


def test_each_contradiction_is_reported_with_what_breaks_it():
    worse_l1 = dict(FAMILY_SSIM, l1=0.95)
    table = findings_table(_clean(worse_l1), "d", "m", _drops(random_wins_for=("convdecoder",)), _corr(0.3),
                           _fits(above="unet"), _ttt(closed=0.3), tuning=_tuning(),
                           attacks=_attacks({**SIMILAR, "convdecoder": 0.005}, noise=0.5))
    assert list(table["reproduces"]) == ["no"] * 5
    assert "not vulnerable (attack − noise PSNR drop wholly below 1 dB): convdecoder -0.3" in table.loc[1, "details"]
    unsettled = _drops().assign(share_converged=[1.0, 1.0, 0.8, 0.8] + [1.0] * 4)  # convdecoder_0 still rising
    details = findings_table(_clean(), "d", "m", unsettled, attacks=_attacks()).loc[1, "details"]
    assert "still rising ≥ 1 % in the last 10 % of steps for ['convdecoder_0']" in details
    assert "s/unet above the line" in table.loc[3, "details"]
    assert "s/v: P→Q 0.800, +TTT 0.830" in table.loc[4, "details"]
    # only the experiments that ran; a missing family leaves the ordering undecided
    only = findings_table(_clean({k: v for k, v in FAMILY_SSIM.items() if k != "convdecoder"}), "d", "m",
                          tuning=_tuning())
    assert len(only) == 1 and only.loc[0, "reproduces"] == "undecided"
    assert "convdecoder (its validation choice convdecoder_0 is not in the clean test table)" in only.loc[0, "details"]
    assert findings_table(_clean(), "d", "m", None, _corr(np.nan)).loc[1, "reproduces"] == "undecided"


def test_ttt_without_a_gap_is_reported_not_counted():
    """A case whose Q→Q is no better than P→Q has no gap to close: it neither proves nor refutes the finding,
    and TTT's change there is reported (the demo's VarNet lost 0.11 SSIM on such a case)."""
    from robustcs.tables import ttt_summary

    rows = []
    for stem in ("a", "b"):
        for setting, ssim in (("p_q", 0.812), ("p_q_ttt", 0.70), ("q_q", 0.811)):
            extra = {"steps": 100, "stopped_early": False} if setting == "p_q_ttt" else {}
            rows.append({"shift": "anatomy", "method": "v", "family": "varnet", "stem": stem, "slice": 0,
                         "setting": setting, "ssim": ssim, **extra})
    summary = ttt_summary(pd.DataFrame(rows), n_boot=50)
    assert np.isnan(summary.loc[0, "gap_closed"]) and summary.loc[0, "ttt_change"] == pytest.approx(-0.112)
    both = pd.concat([_ttt(0.9), summary], ignore_index=True)
    row = findings_table(_clean(), "d", "m", ttt=both).iloc[1]
    assert row["reproduces"] == "yes" and "anatomy/v no gap (-0.001)" in row["measured"]
    assert "TTT changed SSIM by -0.112 there" in row["details"]
    assert findings_table(_clean(), "d", "m", ttt=summary).iloc[1]["reproduces"] == "undecided"


def test_ttt_finding_reports_the_q_q_ttt_ceiling_beside_the_papers_share():
    from robustcs.tables import ttt_summary

    rows = []
    for stem in ("a", "b", "c"):  # three volumes: findings.min_volumes
        for setting, ssim in (("p_q", 0.70), ("p_q_ttt", 0.84), ("q_q", 0.80), ("q_q_ttt", 0.90)):
            extra = {"steps": 100, "stopped_early": False} if setting.endswith("ttt") else {}
            rows.append({"shift": "contrast", "method": "v", "family": "varnet", "stem": stem, "slice": 0,
                         "setting": setting, "ssim": ssim, **extra})
    row = findings_table(_clean(), "d", "m", ttt=ttt_summary(pd.DataFrame(rows), n_boot=50)).iloc[1]
    assert row["reproduces"] == "yes" and row["measured"].startswith("contrast/v 140 %")  # the papers' statistic
    assert "Against the better of Q→Q and Q→Q+TTT" in row["details"] and "contrast/v 70 % [70, 70]" in row["details"]


def test_pathology_boxes_are_a_finding_of_their_own():
    boxes = pd.concat([_corr(-0.6, metric="mse_box"), _corr(0.2, metric="mse_box_meanstd")], ignore_index=True)
    boxes["dataset"] = "knee_pathology"
    table = findings_table(_clean(), "d", "m", None, _corr(-0.5), pathology=boxes)
    row = table.set_index("finding").loc["recovery of annotated pathology tracks overall quality"]
    assert row["reproduces"] == "yes" and row["measured"].startswith("-0.600 [-0.70, -0.50]")
    assert "knee_pathology" in row["details"]
    assert row["statistic"].startswith("Pearson(SSIM, box MSE) across variants [95 % CI")
    flipped = boxes.assign(pearson=[0.4, -0.2], pearson_low=[0.3, -0.3], pearson_high=[0.5, -0.1])
    assert findings_table(_clean(), "d", "m", pathology=flipped).iloc[-1]["reproduces"] == "no"


def test_feature_verdict_needs_the_interval_beyond_the_threshold():
    """yes: the whole interval below −ρ; no: above it; undecided: straddling it or too few volumes. ρ and the volume
    minimum come from the table (the config via the summarise rule) unless findings_table is given them."""
    def verdict(corr, **kw):
        return findings_table(_clean(), "d", "m", correlation=corr, **kw).iloc[-1]

    assert verdict(_corr(-0.5))["reproduces"] == "yes"
    assert verdict(_corr(-0.1, half_width=0.05))["reproduces"] == "no"  # weak, tight: not "tracks"
    assert verdict(_corr(-0.05, half_width=0.5))["reproduces"] == "undecided"  # a sign test would have said yes
    row = verdict(_corr(-0.5, volumes=2))
    assert row["reproduces"] == "undecided" and "2 test volume(s)" in row["details"]
    assert verdict(_corr(-0.5, min_correlation=0.7))["reproduces"] == "no"  # the table's own threshold
    assert verdict(_corr(-0.5, min_correlation=0.7), feature_min_correlation=0.2)["reproduces"] == "yes"
    assert verdict(_corr(-0.5, volumes=4, min_volumes=5))["reproduces"] == "undecided"
    assert verdict(_corr(-0.5, volumes=4, min_volumes=5), feature_min_volumes=3)["reproduces"] == "yes"
    second = pd.concat([_corr(-0.5), _corr(0.05, metric="log_relative_mse")], ignore_index=True)
    row = verdict(second)
    assert row["reproduces"] == "yes" and "relative to surroundings 0.050 [-0.05, 0.15]" in row["measured"]
    assert "second statistic" in row["details"] and ", no (interval above -0.30" in row["details"]
    with pytest.raises(ValueError, match="pearson_low"):
        verdict(_corr(-0.5).drop(columns=["pearson_low"]))


def _attack_row(verdicts, effort=None, **kw):
    return attack_vs_noise(verdicts, effort, dataset="d", mask="m", **kw)


def test_attack_row_yes_when_every_family_is_vulnerable_and_the_networks_like_l1():
    row = _attack_row(_attacks())
    assert row["reproduces"] == "yes", row["details"]
    assert row["statistic"].endswith("at ε = 0.08")
    assert row["measured"].startswith("attack − noise l1 +10.")
    assert "minus ℓ1's convdecoder -2 [" in row["measured"] and "l1 +0 [" not in row["measured"]
    assert "no more vulnerable than ℓ1 (l1_0) when the difference's upper bound ≤ 5 pp" in row["details"]
    assert "not decisive (not among the papers' families): zero_filled +" in row["details"]
    # read back from its CSV (empty notes and references become NaN there) the verdict is the same
    path = io.StringIO()
    _attacks().to_csv(path, index=False)
    path.seek(0)
    assert _attack_row(pd.read_csv(path))["reproduces"] == "yes"


def test_attack_row_no_when_a_family_is_hurt_no_more_than_by_noise():
    row = _attack_row(_attacks({**SIMILAR, "varnet": 0.0}, noise=0.5))
    assert row["reproduces"] == "no"
    assert "not vulnerable (attack − noise PSNR drop wholly below 1 dB): varnet -0.50 [-0.50, -0.50] dB" in row["details"]
    # a weak baseline decides nothing
    assert _attack_row(_attacks({**SIMILAR, "zero_filled": 0.0}, noise=0.5))["reproduces"] == "yes"


def test_attack_row_no_when_the_networks_are_far_more_vulnerable_than_l1():
    row = _attack_row(_attacks({**SIMILAR, "l1": 0.10}))
    assert row["reproduces"] == "no"
    assert "clearly more vulnerable than ℓ1 (relative PSNR drop − ℓ1's above 5 pp): convdecoder +23 [" in row["details"]
    assert "unet +26 [" in row["details"] and "not vulnerable" not in row["details"]


def test_attack_row_undecided_on_a_straddling_interval_too_few_volumes_or_no_l1():
    straddle = _attack_row(_attacks({**SIMILAR, "unet": 0.40}, jitter=0.05))
    assert straddle["reproduces"] == "undecided"
    assert "comparison with ℓ1 undecided (interval straddles 5 pp or too few volumes): unet" in straddle["details"]
    few = _attack_row(_attacks(volumes=2, slices=3))
    assert few["reproduces"] == "undecided"
    assert "2 volume(s) attacked, fewer than findings.min_volumes = 3" in few["details"]
    no_l1 = _attack_row(_attacks({f: r for f, r in SIMILAR.items() if f != "l1"}))
    assert no_l1["reproduces"] == "undecided"
    assert "ℓ1 not attacked: the comparison with ℓ1 is undecided" in no_l1["details"]
    assert "not attacked: ['l1']" in no_l1["details"]
    # ... but a network clearly weaker against the attack than noise is still "no" without ℓ1
    assert _attack_row(_attacks({"convdecoder": 0.0, "unet": 0.3}, noise=0.5))["reproduces"] == "no"


def test_attack_row_with_only_the_baseline_attacked_is_undecided():
    row = _attack_row(_attacks({"zero_filled": 0.05}))
    assert row["reproduces"] == "undecided" and row["measured"] == "no papers' family attacked"
    table = findings_table(_clean(), "d", "m", attacks=_attacks({"zero_filled": 0.05}))
    assert table.loc[1, "reproduces"] == "undecided"
    only_drops = findings_table(_clean(), "d", "m", _drops())
    assert only_drops.loc[1, "reproduces"] == "undecided" and "attack_verdicts.csv" in only_drops.loc[1, "details"]


def test_attack_row_other_case_and_several_variants_per_family():
    rows = attack_rows(SIMILAR, methods={"unet": ["unet_a", "unet_b"]})
    verdicts = attack_verdicts(rows, n_boot=300)
    row = attack_vs_noise(verdicts, dataset="elsewhere", mask="m")
    assert row["reproduces"] == "yes" and "the source case elsewhere/m was not attacked" in row["details"]
    assert "unet/unet_a +" in row["measured"] and "unet/unet_b +" in row["measured"]


def _effort(converged: dict):
    return pd.DataFrame([{"family": f, "method": f"{f}_0", "converged": ok, "change_db": 0.1 if ok else 1.8,
                          "change_2x_db": 0.05 if ok else 1.2} for f, ok in converged.items()])


def test_an_under_attacked_family_leaves_the_row_undecided_unless_it_is_no():
    settled = dict.fromkeys(SIMILAR, True)
    assert _attack_row(_attacks(), _effort(settled))["reproduces"] == "yes"
    row = _attack_row(_attacks(), _effort({**settled, "unet": False}))
    assert row["reproduces"] == "undecided"
    assert "under-attacked: unet (doubling the steps changed the drop by +1.20 dB)" in row["details"]
    baseline = _attack_row(_attacks(), _effort({**settled, "zero_filled": False}))
    assert baseline["reproduces"] == "yes" and "under-attacked (not decisive): zero_filled" in baseline["details"]
    already_no = _attack_row(_attacks({**SIMILAR, "l1": 0.10}), _effort({**settled, "unet": False}))
    assert already_no["reproduces"] == "no" and "under-attacked: unet" in already_no["details"]


def test_the_raw_effort_table_is_judged_with_its_tolerance():
    effort_module = pytest.importorskip("robustcs.attack_effort")
    rows = [{"family": f, "method": f"{f}_0", "epsilon": 0.08, "stem": "vol0", "slice": 0, "steps": steps,
             "psnr_drop": 5.0 + (2.0 if f == "varnet" and steps > 40 else 0.0)}
            for f in SIMILAR for steps in (40, 80)]
    raw = pd.DataFrame(rows)
    assert not effort_module.effort_verdicts(raw, 0.5).set_index("family").loc["varnet", "converged"]
    row = _attack_row(_attacks(), raw, effort_tolerance_db=0.5)
    assert row["reproduces"] == "undecided" and "under-attacked: varnet (doubling the steps changed the drop by +2.00 dB)" in row["details"]
    assert _attack_row(_attacks(), raw, effort_tolerance_db=3.0)["reproduces"] == "yes"
    with pytest.raises(ValueError, match="attack_effort_tolerance_db"):
        _attack_row(_attacks(), raw)


def _shift_row(offsets=None, extra=(), **kw):
    """The shift finding on the fit table of synthetic per-slice rows (test_shifts._volumes: each group planted at
    its offset from the other groups' line, 8 volumes per side)."""
    from robustcs.shifts import fit_table

    from test_shifts import _volumes

    volumes = {"n_volumes": kw.pop("n_volumes")} if "n_volumes" in kw else {}
    fits = fit_table(_volumes(offsets, extra=extra, **volumes), n_boot=400, seed=2)
    return findings_table(_clean(), "d", "m", fits=fits, **kw).set_index("finding").loc["one common line per shift"]


@pytest.mark.parametrize("offset, reproduces, said", [
    (0.0, "yes", "every papers' group within ±0.02 of the line without it"),
    (-0.05, "no", "s/varnet below the line by "),
    (0.05, "no", "s/varnet above the line by "),
    (0.02, "undecided", "s/varnet undecided, 0.02"),
])
def test_shift_row_follows_the_planted_offset(offset, reproduces, said):
    row = _shift_row({"varnet": offset})
    assert row["reproduces"] == reproduces and said in row["details"], row["details"]
    assert "two-sided, margin ±0.02, leave-group-out line" in row["statistic"]
    if reproduces == "yes":
        assert row["measured"].startswith("4 of 4 papers' groups on the line, 0 above, 0 below, 0 undecided (s: R²")
    if reproduces == "no":  # by how much, with the interval of the residual
        by, residual, low, high = map(float, re.search(r"the line by ([\d.]+): (-?[\d.]+) \[(-?[\d.]+), (-?[\d.]+)\]",
                                                        row["details"]).groups())
        assert by == pytest.approx(0.05, abs=0.006) and residual == pytest.approx(offset, abs=0.006)
        assert low < residual < high
    if offset == 0.02:
        assert "interval reaches past ±0.02" in row["details"]


def test_shift_row_margin_and_volume_minimum_come_from_the_settings():
    assert _shift_row({"varnet": -0.05}, shift_margin=0.07)["reproduces"] == "yes"  # within a wider margin
    few = _shift_row({"varnet": -0.05}, n_volumes=2)
    assert few["reproduces"] == "undecided"
    assert "fewer than 3 volumes on a side (2 in, 2 out)" in few["details"]
    assert _shift_row({"varnet": -0.05}, n_volumes=2, shift_min_volumes=2)["reproduces"] == "no"
    with pytest.raises(ValueError, match="findings.shift_margin"):
        _shift_row(shift_margin=-1)


def test_shift_row_other_families_are_reported_never_decide():
    """CG-SENSE and the zero-filled baseline far off the papers' line: listed in the details, the verdict is the
    papers' groups' alone (yes on one line, no with a group below it)."""
    extra = [("cgsense", "cg_a"), ("zero_filled", "zf")]
    row = _shift_row({"cgsense": 0.2, "zero_filled": -0.3}, extra=extra)
    assert row["reproduces"] == "yes", row["details"]
    assert "not deciding (not among the papers' families)" in row["details"]
    assert "s/cgsense 0.20" in row["details"] and "s/zero_filled -0.29" in row["details"]  # the planted 0.2, −0.3
    assert re.search(r"s/cgsense [\d.]+ \[[\d., ]+\] above", row["details"]), row["details"]
    assert row["measured"].startswith("4 of 4 papers' groups")
    assert _shift_row({"cgsense": 0.2, "varnet": -0.05}, extra=extra)["reproduces"] == "no"



# ---- the clean ordering (robustcs.clean_stats): each family's validation choice, judged on PSNR and SSIM ----

AGREE_PSNR = {"l1": 28.0, "convdecoder": 30.0, "unet": 30.5, "varnet": 32.0}
AGREE_SSIM = {"l1": 0.80, "convdecoder": 0.82, "unet": 0.83, "varnet": 0.86}


def _one_per_family(psnr=None, ssim=None):
    """A clean table with each papers' family's chosen variant (<family>_0) and a zero-filled baseline that
    decides nothing, and the tuning table that chose them."""
    psnr, ssim = {**AGREE_PSNR, **(psnr or {})}, {**AGREE_SSIM, **(ssim or {})}
    rows = [{"dataset": "d", "mask": "m", "family": f, "method": f"{f}_0", "psnr_mean": psnr[f], "ssim_mean": ssim[f]}
            for f in psnr]
    rows.append({"dataset": "d", "mask": "m", "family": "zero_filled", "method": "zf", "psnr_mean": 40.0,
                 "ssim_mean": 0.95})
    return pd.DataFrame(rows), _tuning()


def _clean_row(psnr=None, ssim=None, **kw):
    clean, tuning = _one_per_family(psnr, ssim)
    return findings_table(clean, "d", "m", tuning=tuning, **kw).iloc[0]


def test_clean_ordering_is_judged_on_psnr_and_on_ssim():
    row = _clean_row()
    assert row["reproduces"] == "yes", row["details"]
    assert row["measured"] == ("PSNR: varnet 32.00 > unet 30.50 > convdecoder 30.00 > l1 28.00 dB; "
                               "SSIM: varnet 0.860 > unet 0.830 > convdecoder 0.820 > l1 0.800")
    assert row["papers"].startswith("PSNR: VarNet 35.7 > ConvDecoder 30.5 ≈ U-Net 30.3 > ℓ1 26.7 dB")
    assert "no SSIM reported" in row["papers"]
    # PSNR alone contradicts (ℓ1 above the ConvDecoder and the U-Net), SSIM still agrees
    row = _clean_row(psnr={"l1": 31.5})
    assert row["reproduces"] == "no"
    assert "PSNR: l1 not worst: convdecoder 1.50 dB, unet 1.00 dB below it" in row["details"]
    assert "SSIM: l1 worst" in row["details"]
    # SSIM alone contradicts (the U-Net above the VarNet), PSNR still agrees
    row = _clean_row(ssim={"unet": 0.87})
    assert row["reproduces"] == "no"
    assert "SSIM: varnet not best: unet 0.010 above it" in row["details"] and "PSNR: varnet best" in row["details"]


def test_a_verdict_that_hinges_on_a_tie_is_undecided():
    row = _clean_row(psnr={"unet": 31.9})  # the VarNet ahead of the U-Net by 0.1 dB, under the 0.2 dB tolerance
    assert row["reproduces"] == "undecided"
    assert "varnet 32.00 ≈ unet 31.90 > convdecoder" in row["measured"]
    assert "PSNR: varnet best only within the tie tolerance (0.2 dB): unet 0.10 dB from it" in row["details"]
    assert _clean_row(psnr={"unet": 31.9}, clean_tie_db=0.05)["reproduces"] == "yes"
    assert _clean_row(psnr={"unet": 32.1})["reproduces"] == "undecided"  # behind by less than the tolerance: a tie
    row = _clean_row(ssim={"l1": 0.819})  # ℓ1 below the ConvDecoder by 0.001 SSIM, under 0.002
    assert row["reproduces"] == "undecided" and "SSIM: l1 worst only within the tie tolerance" in row["details"]
    assert _clean_row(ssim={"l1": 0.819}, clean_tie_ssim=0.0005)["reproduces"] == "yes"
    # a tie on one metric does not outweigh a clear contradiction on the other
    assert _clean_row(psnr={"unet": 31.9}, ssim={"l1": 0.9})["reproduces"] == "no"
    with pytest.raises(ValueError, match="findings.clean_tie_db"):
        _clean_row(clean_tie_db=-0.1)


def test_the_representative_is_the_validation_choice_even_when_another_variant_is_better_on_test():
    from robustcs.tables import tuning_table

    clean, _ = _one_per_family()
    # l1_1 is ℓ1's best on test, far above every network; l1_0 wins on the validation split
    best_on_test = {"dataset": "d", "mask": "m", "family": "l1", "method": "l1_1", "psnr_mean": 33.0, "ssim_mean": 0.9}
    clean = pd.concat([clean, pd.DataFrame([best_on_test])], ignore_index=True)
    val = pd.DataFrame([{"dataset": "d", "mask": "m", "family": m.rsplit("_", 1)[0], "method": m, "stem": "v",
                         "slice": 0, "ssim": s, "psnr": 25.0}
                        for m, s in [("l1_0", 0.85), ("l1_1", 0.80), ("convdecoder_0", 0.8), ("unet_0", 0.8),
                                     ("varnet_0", 0.8)]])
    row = findings_table(clean, "d", "m", tuning=tuning_table(val)).iloc[0]
    assert row["reproduces"] == "yes" and "l1 28.00" in row["measured"] and "l1 l1_0" in row["details"]
    # the validation split prefers l1_1: it represents ℓ1 and the ordering fails
    flipped = tuning_table(val.assign(ssim=np.where(val["method"] == "l1_1", 0.9, val["ssim"])))
    row = findings_table(clean, "d", "m", tuning=flipped).iloc[0]
    assert row["reproduces"] == "no" and "l1 l1_1" in row["details"]


def test_a_family_without_a_validation_choice_is_missing_not_its_best_on_test():
    clean, tuning = _one_per_family()
    row = findings_table(clean, "d", "m", tuning=tuning[tuning["family"] != "convdecoder"]).iloc[0]
    assert row["reproduces"] == "undecided"
    assert "families missing: convdecoder (no variant scored on the validation split)" in row["details"]
    row = findings_table(clean, "d", "m").iloc[0]  # no tuning ran: every family missing
    assert row["reproduces"] == "undecided" and row["measured"] == "no family with a validation choice"


def test_a_choice_at_the_edge_of_its_grid_is_named():
    from robustcs.tables import tuning_table

    clean, _ = _one_per_family()
    lams = {"l1_0": 1e-4, "l1_1": 1e-3, "l1_2": 1e-2}
    settings = {**{m: {"lam": lam, "iterations": 60} for m, lam in lams.items()},
                **{f"{f}_0": {"chans": 8} for f in ("convdecoder", "unet", "varnet")}}

    def row(winner):
        val = pd.DataFrame([{"dataset": "d", "mask": "m", "family": m.rsplit("_", 1)[0], "method": m, "stem": "v",
                             "slice": 0, "ssim": 0.9 if m == winner else 0.8, "psnr": 25.0} for m in settings])
        return findings_table(clean, "d", "m", tuning=tuning_table(val, settings)).iloc[0]

    details = row("l1_0")["details"]
    assert "l1: the validation choice l1_0 (lam 0.0001) is the smallest of its grid (0.0001 … 0.01)" in details
    assert "of its grid" not in row("l1_1")["details"]  # an interior choice
    assert "the largest of its grid" in row("l1_2")["details"]
