"""The attack-effort check (robustcs.attack_effort): its config block, the reruns (same seeds and start as the main
attack, more steps), and the verdict on synthetic tables and on real attacks, both ways: a truncated attack is
caught, a converged one passes."""

import copy

import numpy as np
import pandas as pd
import pytest
import yaml

from robustcs.attack_effort import effort_rows, effort_settings, effort_specs, effort_verdicts
from robustcs.attacks import AttackSpec, attack_slices
from robustcs.masks import MaskSpec, make_mask
from robustcs.methods import load_method
from robustcs.metrics import slice_metrics
from robustcs.recon_io import SliceInput
from robustcs.study import Study, canonical

from conftest import TINY_CONFIG

pytestmark = pytest.mark.usefixtures("one_torch_thread")


# ---- config ---------------------------------------------------------------------------------------------------


def test_effort_settings_defaults_and_errors_name_the_key():
    assert effort_settings(None) is None
    assert effort_settings({}) == {"slices": 2, "factors": [2, 4]}
    assert effort_settings({"slices": 5, "factors": [4, 2]}) == {"slices": 5, "factors": [2, 4]}
    for block, words in (({"slices": 0}, "slices"), ({"slices": 1.5}, "slices"), ({"factors": [1]}, "factors"),
                         ({"factors": []}, "factors"), ({"factors": [2, 2]}, "factors"), ({"factors": 2}, "factors"),
                         ({"factors": [True]}, "factors"), ({"steps": 3}, "unknown key"), ([2], "mapping")):
        with pytest.raises(ValueError, match=words):
            effort_settings(block)


def test_the_study_reads_the_effort_block_apart_from_the_attack():
    tiny = yaml.safe_load(TINY_CONFIG.read_text())
    study = Study.from_config(tiny)
    assert study.attack_effort_settings() == {"slices": 1, "factors": [2]}
    off = copy.deepcopy(tiny)
    del off["attacks"]["effort"]
    # the main attack's params do not change with the effort block: adding it reruns no attack job
    assert canonical(Study.from_config(off).attack_settings()) == canonical(study.attack_settings())
    assert Study.from_config(off).attack_effort_settings() is None
    bad = copy.deepcopy(tiny)
    bad["attacks"]["effort"] = {"slices": 1, "factors": [1]}
    with pytest.raises(ValueError, match=r"(?s)effort.*factors"):  # the schema names the key
        Study.from_config(bad)


def test_effort_specs_keep_everything_but_the_budgets_and_the_steps():
    spec = AttackSpec(epsilons=(0.02, 0.08, 0.04), steps=40, step_size=0.3, init=2e-3, batch=3)
    specs = effort_specs(spec, [4, 2])
    assert [k for k, _ in specs] == [1, 2, 4]
    assert [s.steps for _, s in specs] == [40, 80, 160]
    for _, rerun in specs:
        assert rerun.epsilons == (0.08,)
        assert (rerun.step_size, rerun.init, rerun.batch, rerun.reference) == (0.3, 2e-3, 3, "full")


# ---- verdicts on synthetic tables ---------------------------------------------------------------------------------


def _table(drops: dict, slices=(("v0", 3), ("v1", 4)), spread: float = 0.4, epsilon: float = 0.08) -> pd.DataFrame:
    """Rows of one variant per family: ``drops[family]`` the mean PSNR drop at each step count {steps: dB}; the
    slices differ by ±``spread`` around it (the mean stays the given one)."""
    rows = []
    for family, levels in drops.items():
        for steps, drop in levels.items():
            for i, (stem, index) in enumerate(slices):
                offset = spread * (i - (len(slices) - 1) / 2)
                rows.append({"dataset": "d", "mask": "m", "family": family, "method": f"{family}_0",
                             "epsilon": epsilon, "stem": stem, "slice": index, "steps": steps,
                             "loss": 1.0, "psnr_attacked": 30.0 - drop - offset, "psnr_drop": drop + offset})
    return pd.DataFrame(rows)


def test_verdicts_flag_a_drop_that_still_grows_and_pass_a_settled_one():
    table = _table({"l1": {40: 5.0, 80: 5.2, 160: 5.3}, "unet": {40: 3.0, 80: 4.5, 160: 4.7}})
    v = effort_verdicts(table, 0.5).set_index("method")
    assert list(v.columns[:3]) == ["dataset", "mask", "family"]
    assert v.loc["l1_0", "converged"] and not v.loc["unet_0", "converged"]
    assert v.loc["unet_0", "drop_base"] == pytest.approx(3.0) and v.loc["unet_0", "drop_more"] == pytest.approx(4.7)
    assert v.loc["unet_0", "change_db"] == pytest.approx(1.7) and v.loc["unet_0", "change_2x_db"] == pytest.approx(1.5)
    assert v.loc["unet_0", "max_step_change_db"] == pytest.approx(1.5)
    assert (v.loc["unet_0", "base_steps"], v.loc["unet_0", "max_steps"], v.loc["unet_0", "slices"]) == (40, 160, 2)
    assert "not converged" in v.loc["unet_0", "details"] and "not converged" not in v.loc["l1_0", "details"]
    # the verdict flips with the tolerance, and with the truth: the same rise in the second doubling only
    assert effort_verdicts(table, 2.0)["converged"].all()
    late = effort_verdicts(_table({"unet": {40: 3.0, 80: 3.1, 160: 4.6}}), 0.5).iloc[0]
    assert not late["converged"] and late["change_2x_db"] == pytest.approx(0.1)


def test_a_drop_that_falls_with_more_steps_is_not_converged_either():
    v = effort_verdicts(_table({"varnet": {40: 6.0, 80: 4.9}}), 0.5).iloc[0]
    assert not v["converged"] and v["change_db"] == pytest.approx(-1.1) and v["drop_2x"] == pytest.approx(4.9)


def test_verdicts_read_the_largest_budget_and_reject_bad_tables():
    small = _table({"l1": {40: 1.0, 80: 3.0}}, epsilon=0.02)  # unsettled at a smaller ε: not what is judged
    table = pd.concat([small, _table({"l1": {40: 5.0, 80: 5.1}})], ignore_index=True)
    v = effort_verdicts(table, 0.5).iloc[0]
    assert v["epsilon"] == 0.08 and v["converged"]
    with pytest.raises(ValueError, match="missing column"):
        effort_verdicts(table.drop(columns="psnr_drop"), 0.5)
    with pytest.raises(ValueError, match="attack_effort_tolerance_db"):
        effort_verdicts(table, 0.0)
    with pytest.raises(ValueError, match="at least one larger step count"):
        effort_verdicts(_table({"l1": {40: 5.0}}), 0.5)
    uneven = _table({"l1": {40: 5.0, 80: 5.1}})
    with pytest.raises(ValueError, match="different slices"):
        effort_verdicts(uneven.drop(index=uneven.index[-1]), 0.5)
    with pytest.raises(ValueError, match="non-finite"):
        effort_verdicts(uneven.assign(psnr_drop=np.inf), 0.5)


# ---- real attacks -------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def items(tiny_volume):
    kspace, target, maps = tiny_volume
    mask, num_low, _ = make_mask(MaskSpec("random", 4, 0.16), kspace.shape[-1], seed=0)
    return [SliceInput("tiny", s, kspace[s].astype(np.complex64), mask.astype(np.float32), int(num_low),
                       maps[s].astype(np.complex64) if maps.ndim == 4 else maps.astype(np.complex64),
                       target[s].astype(np.float32), float(target.max())) for s in range(kspace.shape[0])]


def test_the_base_rerun_is_the_main_attack_at_the_largest_budget(items):
    """Same slice seeds and starts: the base-step rerun finds the perturbation the main attack found at the
    largest ε (up to the float rounding of another batch), scored the same way."""
    method = load_method("zf", {"family": "zero_filled"})
    spec = AttackSpec(epsilons=(0.02, 0.05), steps=6)
    main = attack_slices(method, items, spec, [11, 12])
    rows = pd.DataFrame(effort_rows(method, items, spec, [2], [11, 12]))
    assert sorted(set(rows["steps"])) == [6, 12] and len(rows) == 2 * len(items)
    base = rows[rows["steps"] == 6].reset_index(drop=True)
    for i, (item, res) in enumerate(zip(items, main)):
        assert base.loc[i, "loss"] == pytest.approx(max(res.losses[1]), rel=1e-4)
        expected = slice_metrics(item.target, res.adversarial[1], item.maxval)["psnr"]
        assert base.loc[i, "psnr_attacked"] == pytest.approx(expected, abs=1e-3)
        clean = slice_metrics(item.target, res.clean, item.maxval)["psnr"]
        assert base.loc[i, "psnr_drop"] == pytest.approx(clean - expected, abs=1e-3)
    assert (rows["norm"] <= rows["budget"] * (1 + 1e-5)).all() and (rows["epsilon"] == 0.05).all()


def test_a_truncated_attack_is_caught_and_a_converged_one_passes(items):
    """2 steps of the decaying schedule move the perturbation at most 0.375 of the radius from its tiny start: far
    from the attack that 4x and 8x the steps reach (ℓ1 here: mean drop 0.6, 1.7, 4.2 dB). At 40 steps doubling
    the steps changes little (4.8 and 5.0 dB)."""
    method = load_method("l1", {"family": "l1", "lam": 1e-3, "iterations": 20})
    seeds = [3, 4]
    truncated = pd.DataFrame(effort_rows(method, items, AttackSpec(epsilons=(0.05,), steps=2), [2, 4], seeds))
    verdict = effort_verdicts(truncated, 0.5).iloc[0]
    assert not verdict["converged"] and verdict["change_db"] > 3.0
    assert (truncated.groupby("steps")["loss"].mean().diff().dropna() > 0).all()  # more steps, a stronger attack
    settled = pd.DataFrame(effort_rows(method, items, AttackSpec(epsilons=(0.05,), steps=40), [2], seeds))
    verdict = effort_verdicts(settled, 0.5).iloc[0]
    assert verdict["converged"] and abs(verdict["change_db"]) < 0.5
    assert verdict["drop_base"] > effort_verdicts(truncated, 0.5).iloc[0]["drop_base"] + 3.0
