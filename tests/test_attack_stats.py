"""The attack verdicts (robustcs.attack_stats) on synthetic per-slice attack rows whose truth is known: the
excess of the attack over noise, its interval over volumes, the relative drops compared with ℓ1 under a paired
bootstrap, and the verdicts flipping when the synthetic truth flips."""

import numpy as np
import pandas as pd
import pytest

from robustcs.attack_stats import (MORE, NO_MORE, REFERENCE, UNDECIDED, attack_verdicts, chosen_epsilon,
                                   slice_drops, verdicts_markdown)
from robustcs.shifts import volume_bootstrap_means

PAPERS = ("l1", "convdecoder", "unet", "varnet")


def attack_rows(rel, noise=0.3, volumes=5, slices=2, spread=0.0, jitter=0.0, epsilons=(0.04, 0.08), seed=0,
                methods=None):
    """Per-slice attack rows: family f's variant ``{f}_0`` (or ``methods[f]``, a list of names) loses the share
    ``rel[f]`` of its clean PSNR to the attack at ε = 0.08 (in proportion to ε below it) and ``noise`` dB to the
    random perturbation. ``spread``: a volume's shift of every family's relative drop (the same for all: what a
    paired comparison cancels); ``jitter``: independent per slice and variant."""
    rng = np.random.default_rng(seed)
    noise = noise if isinstance(noise, dict) else dict.fromkeys(rel, noise)
    shift = {f"vol{v}": spread * rng.uniform(-1, 1) for v in range(volumes)}
    clean = {(f"vol{v}", s): 30 + rng.normal(0, 1.5) for v in range(volumes) for s in range(slices)}
    rows = []
    for f, share in rel.items():
        for method in (methods or {}).get(f, [f"{f}_0"]):
            for (stem, s), c in clean.items():
                base = {"dataset": "d", "mask": "m", "family": f, "method": method, "stem": stem, "slice": s}
                rows.append({**base, "epsilon": 0.0, "kind": "clean", "psnr": c, "ssim": 0.9})
                r = share + shift[stem] + jitter * rng.normal()
                for eps in epsilons:
                    k = eps / 0.08
                    rows.append({**base, "epsilon": eps, "kind": "adversarial", "psnr": c * (1 - r * k),
                                 "ssim": 0.9 - 0.5 * r * k})
                    rows.append({**base, "epsilon": eps, "kind": "random", "psnr": c - noise[f] * k,
                                 "ssim": 0.9 - 0.01 * k})
    return pd.DataFrame(rows)


SIMILAR = {"zero_filled": 0.05, "l1": 0.35, "convdecoder": 0.33, "unet": 0.36, "varnet": 0.30}


def _verdicts(rows, **kw):
    return attack_verdicts(rows, n_boot=400, seed=1, **kw).set_index("family")


def test_the_study_epsilon_is_judged_when_attacked_else_the_largest():
    assert chosen_epsilon([0.0, 0.02, 0.08, 0.1]) == 0.08
    assert chosen_epsilon([0.0, 0.02, 0.04]) == 0.04
    assert chosen_epsilon([0.08000000001, 0.02]) == pytest.approx(0.08)
    with pytest.raises(ValueError, match="no ε > 0"):
        chosen_epsilon([0.0])
    table = _verdicts(attack_rows(SIMILAR, epsilons=(0.02, 0.05)))
    assert set(table["epsilon"]) == {0.05}


def test_excess_and_relative_drop_are_the_per_slice_means():
    rows = attack_rows(SIMILAR, noise=0.4)
    table = _verdicts(rows)
    per = slice_drops(rows)
    l1 = per[per["family"] == "l1"]
    assert table.loc["l1", "psnr_excess"] == pytest.approx((l1["psnr_clean"] * 0.35).mean() - 0.4)
    assert table.loc["l1", "relative_drop"] == pytest.approx(0.35)
    assert table.loc["l1", "ssim_excess"] == pytest.approx(0.5 * 0.35 - 0.01)
    assert table.loc["unet", "vs_l1"] == pytest.approx(0.01)
    assert (table["slices"] == 10).all() and (table["volumes"] == 5).all()
    assert table.loc["l1", "comparison"] == REFERENCE and table.loc["l1", "reference"] == "l1_0"
    assert (table["psnr_excess_low"] <= table["psnr_excess"]).all() and (table["psnr_excess"] <= table["psnr_excess_high"]).all()
    assert "0.010 [" in verdicts_markdown(table.reset_index())


def test_every_family_hurt_clearly_more_than_noise_and_similar_drops():
    table = _verdicts(attack_rows(SIMILAR))
    assert (table["vulnerable"] == "yes").all()  # zero-filled too: 1.5 dB against 0.3 dB of noise
    for f in ("convdecoder", "unet", "varnet"):
        assert table.loc[f, "comparison"] == NO_MORE, table.loc[f]


def test_an_attack_weaker_than_noise_is_not_vulnerable_and_flips_when_it_is_not():
    weak = _verdicts(attack_rows({**SIMILAR, "convdecoder": 0.005}, noise=0.5))  # 0.15 dB against 0.5 dB
    assert weak.loc["convdecoder", "vulnerable"] == "no"
    assert weak.loc["convdecoder", "psnr_excess_high"] < 0
    assert (weak.loc[["l1", "unet", "varnet"], "vulnerable"] == "yes").all()
    strong = _verdicts(attack_rows(SIMILAR, noise=0.5))  # the same noise, the attack at its usual strength
    assert strong.loc["convdecoder", "vulnerable"] == "yes"
    # a margin of exactly the excess: the interval straddles it
    mid = _verdicts(attack_rows(SIMILAR, jitter=0.02), margin_db=float(weak.loc["unet", "psnr_excess"]))
    assert mid.loc["unet", "vulnerable"] == "undecided"


def test_networks_far_more_vulnerable_than_l1_and_the_flip():
    more = _verdicts(attack_rows({**SIMILAR, "l1": 0.10}))
    assert more.loc["unet", "comparison"] == MORE and more.loc["unet", "vs_l1_low"] > 0.05
    less = _verdicts(attack_rows({**SIMILAR, "l1": 0.60}))
    assert (less.loc[["convdecoder", "unet", "varnet"], "comparison"] == NO_MORE).all()
    assert less.loc["unet", "vs_l1_high"] < 0


def test_a_straddling_comparison_is_undecided():
    table = _verdicts(attack_rows({**SIMILAR, "unet": 0.40}, jitter=0.05), comparison_margin=0.05)
    assert table.loc["unet", "vs_l1_low"] < 0.05 < table.loc["unet", "vs_l1_high"]
    assert table.loc["unet", "comparison"] == UNDECIDED


def test_too_few_volumes_leave_every_verdict_undecided():
    table = _verdicts(attack_rows(SIMILAR, volumes=2, slices=3))
    assert (table["vulnerable"] == "undecided").all()
    assert set(table.drop(index="l1")["comparison"]) == {UNDECIDED}
    assert "2 volume(s) attacked, fewer than findings.min_volumes = 3" in table.loc["unet", "note"]
    assert (_verdicts(attack_rows(SIMILAR, volumes=2, slices=3), min_volumes=2)["vulnerable"] == "yes").all()


def test_without_l1_there_is_no_comparison_and_zero_filled_alone_does_not_crash():
    table = _verdicts(attack_rows({f: r for f, r in SIMILAR.items() if f != "l1"}))
    assert set(table["comparison"]) == {UNDECIDED} and table["vs_l1"].isna().all()
    assert "no ℓ1 variant attacked" in table.loc["unet", "note"]
    alone = _verdicts(attack_rows({"zero_filled": 0.05}))
    assert list(alone.index) == ["zero_filled"] and not alone.loc["zero_filled", "in_papers"]


def test_the_reference_is_the_l1_variant_with_the_best_clean_ssim():
    rows = attack_rows(SIMILAR, methods={"l1": ["l1_a", "l1_b"]})
    rows.loc[(rows["method"] == "l1_b") & (rows["kind"] == "clean"), "ssim"] = 0.95
    table = attack_verdicts(rows, n_boot=100)
    assert set(table["reference"]) == {"l1_b"}
    assert table.set_index("method").loc["l1_a", "comparison"] == NO_MORE  # compared with l1_b like every variant


def test_the_paired_bootstrap_cancels_what_all_methods_share():
    """Volumes differ a lot in how much every method loses (spread), the U-Net always 2 points more than ℓ1:
    the paired interval is narrow and decides; drawing the two methods' volumes independently would not."""
    rows = attack_rows({"l1": 0.3, "unet": 0.32}, spread=0.2, volumes=6)
    table = attack_verdicts(rows, n_boot=2000, seed=3).set_index("family")
    assert table.loc["unet", "vs_l1"] == pytest.approx(0.02)
    assert table.loc["unet", "vs_l1_high"] - table.loc["unet", "vs_l1_low"] < 1e-9
    assert table.loc["unet", "comparison"] == NO_MORE
    per = slice_drops(rows).sort_values(["stem", "slice"])
    rng = np.random.default_rng(3)
    boots = [volume_bootstrap_means(per.loc[per["family"] == f, "relative_drop"].to_numpy()[None],
                                    per.loc[per["family"] == f, "stem"], rng, 2000)[:, 0] for f in ("unet", "l1")]
    low, high = np.quantile(boots[0] - boots[1], [0.025, 0.975])
    assert low < 0.05 < high  # unpaired: the shared volume effect swamps the 2-point difference


def test_bad_tables_are_refused_with_what_is_wrong():
    rows = attack_rows(SIMILAR)
    with pytest.raises(ValueError, match=r"lacks columns \['psnr'\]"):
        attack_verdicts(rows.drop(columns="psnr"))
    partial = rows[~((rows["method"] == "unet_0") & (rows["stem"] == "vol0"))]
    with pytest.raises(ValueError, match=r"variants \['unet_0'\] lack attacked slices"):
        attack_verdicts(partial)
    unpaired = rows[~((rows["method"] == "unet_0") & (rows["stem"] == "vol0") & (rows["kind"] == "random"))]
    with pytest.raises(ValueError, match="not on the same slices"):
        attack_verdicts(unpaired)
    with pytest.raises(ValueError, match="min_volumes"):
        attack_verdicts(rows, min_volumes=0)


def test_deterministic():
    rows = attack_rows(SIMILAR, jitter=0.05)
    pd.testing.assert_frame_equal(attack_verdicts(rows, n_boot=200, seed=4), attack_verdicts(rows, n_boot=200, seed=4))
