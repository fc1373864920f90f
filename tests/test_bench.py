"""The prepared benchmark scripts of the real study: bench/real_steps.py (step costs at the real shapes and the
hours they mean), bench/compare_tables.py (CPU vs GPU tables within tolerances) and bench/gpu_check.sh, which
needs CUDA and says so on a machine without it."""

import subprocess
import sys

import pandas as pd
import pytest
import yaml
import torch

from conftest import ROOT


def _run(*args, **kw):
    return subprocess.run([*args], capture_output=True, text=True, cwd=ROOT, **kw)


@pytest.mark.slow
def test_real_steps_times_every_stage_at_real_shapes(tmp_path):
    out = tmp_path / "steps.csv"
    proc = _run(sys.executable, "bench/real_steps.py", "--configfile", "config/real.yaml", "config/rehearsal.yaml",
                "tests/config/rehearsal_ci.yaml", "--methods", "zero_filled", "cgsense_lam1e2", "--repeat", "1",
                "--test-slices", "10", "--attack-slices", "3", "--out", str(out))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "slice k-space (15, 640, 368), reference (320, 320)" in proc.stdout
    table = pd.read_csv(out)
    assert set(zip(table["variant"], table["stage"])) == {
        ("espirit", "espirit"), ("zero_filled", "recon"), ("zero_filled", "attack"), ("zero_filled", "attack_effort"),
        ("cgsense_lam1e2", "recon")}
    assert (table["step_s"] > 0).all() and (table["hours"] > 0).all()
    cg = table.set_index(["variant", "stage"]).loc[("cgsense_lam1e2", "recon")]
    # rehearsal.yaml: 3 iterations per slice, 10 slices on each of the 4 tested (dataset, mask): knee 4x, Stanford,
    # brain, knee 2x; the hours are steps x step + set-ups
    assert cg["steps"] == 3 * 10 * 4 and cg["hours"] == pytest.approx((120 * cg["step_s"] + 40 * cg["setup_s"]) / 3600)
    # attacks: rehearsal 2 steps, real.yaml's 4 budgets in batches of 2 -> 2 passes, 3 slices; effort 1 slice x 2 x (1 + 2)
    assert table.set_index(["variant", "stage"]).loc[("zero_filled", "attack"), "steps"] == 2 * 2 * 3
    assert table.set_index(["variant", "stage"]).loc[("zero_filled", "attack_effort"), "steps"] == 1 * 2 * 3
    lines = proc.stdout.strip().splitlines()
    assert lines[-1].startswith("ratio=") and lines[-2] == f"total {table['hours'].sum():.1f} GPU-hours"


def _real_budget():
    import importlib

    sys.path.insert(0, str(ROOT / "bench"))
    try:
        return importlib.import_module("real_budget")
    finally:
        sys.path.remove(str(ROOT / "bench"))


def _costs(cfg, value=1.0):
    stages = ("recon", "train", "attack", "ttt")
    return {("espirit", "espirit"): {"step_s": value}, **{(m, st): {"step_s": value, "setup_s": 0.0}
                                                           for m in cfg["methods"] for st in stages}}


def _merged(*names):
    from snakemake.utils import update_config

    cfg = {}
    for name in names:
        update_config(cfg, yaml.safe_load((ROOT / "config" / name).read_text()))
    return cfg


def test_real_budget_counts_the_capped_training_sets_and_the_configs_slices():
    rb = _real_budget()
    cfg = _merged("real.yaml")
    rows = {(r["variant"], r["stage"]): r for r in rb.estimate(cfg, _costs(cfg), rb.Sizes(), list(cfg["methods"]))}
    # the TTT U-Net: 300 epochs at one slice per step on six sets, five capped at 310 slices, Stanford's 14 x 22
    assert rows[("unet_ttt_c64_e300", "train")]["steps"] == 300 * (5 * 310 + 14 * 22)
    assert rows[("unet_ttt_c64_e300", "train_val")]["steps"] == 300 * 5 * 100  # Stanford has no val split
    # the paper-size VarNet is not capped: 973 volumes x 10 slices, 50 epochs
    assert rows[("varnet_k12_c18_e50", "train")]["steps"] == 50 * 9730
    # test: 30 of 100 files x 10 slices on knee 4x, brain, knee 2x, and Stanford's 19 x 10; tuning 19 of 199 x 10
    assert rows[("zero_filled", "recon")]["steps"] == 3 * 300 + 190
    assert rows[("l1_lam1e3", "tuning")]["steps"] == 100 * 190 and ("zero_filled", "tuning") not in rows
    # attacks: 30 central slices, 400 steps x 2 passes; TTT: 3 slices of 30 volumes per shift, Stanford's 5
    assert rows[("unet_c32_e50", "attack")]["steps"] == 400 * 2 * 30
    assert rows[("varnet_ttt_k12_c18_e50", "ttt")]["steps"] == 2500 * (3 * 90 + 15)
    full = _merged("real.yaml", "real_full.yaml")
    more = {(r["variant"], r["stage"]): r for r in rb.estimate(full, _costs(full), rb.Sizes(), list(full["methods"]))}
    assert more[("zero_filled", "recon")]["steps"] == 3 * 1000 + 190
    assert more[("unet_c32_e50", "attack")]["steps"] == 400 * 2 * 300
    assert more[("unet_ttt_c64_e300", "train")]["steps"] == rows[("unet_ttt_c64_e300", "train")]["steps"]
    stages = rb.stage_table(list(rows.values()))
    assert sum(h for _, h, _ in stages) == pytest.approx(sum(r["hours"] for r in rows.values()))
    assert sum(share for *_, share in stages) == pytest.approx(1.0)
    with pytest.raises(KeyError, match="unet_c32_e50"):
        rb.estimate(cfg, {k: v for k, v in _costs(cfg).items() if k != ("unet_c32_e50", "train")}, rb.Sizes(),
                    ["unet_c32_e50"])


@pytest.mark.slow  # ~4 s: a subprocess that imports torch and the workflow
def test_real_steps_estimates_from_committed_step_costs(tmp_path):
    out = tmp_path / "estimate.csv"
    # the published networks: the VarNet has the paper-size VarNet's architecture; the 256-channel U-Net's forward
    # pass is estimated as 64x the 32-channel one's (chans squared)
    proc = _run(sys.executable, "bench/real_steps.py", "--costs", "docs/gpu/real_steps_h200.csv", "--alias",
                "unet_ttt_c64_e300=unet_ttt_c64_e50", "varnet_fastmri_knee=varnet_k12_c18_e50", "--cost",
                "unet_ttt_c64_e300:train=0.025", "unet_fastmri_knee:recon=0.57", "--out", str(out))
    assert proc.returncode == 0, proc.stderr[-3000:]
    table = pd.read_csv(out)
    lines = proc.stdout.splitlines()
    stage_lines = lines[lines.index(next(l for l in lines if l.startswith("GPU-hours per stage"))) + 2:-2]
    assert [l.split()[0] for l in stage_lines] == list(dict.fromkeys(table["stage"]))
    assert lines[-2] == f"total {table['hours'].sum():.1f} GPU-hours"
    assert table.set_index(["variant", "stage"]).loc[("unet_ttt_c64_e300", "train"), "step_s"] == 0.025
    proc = _run(sys.executable, "bench/real_steps.py", "--costs", "docs/gpu/real_steps_h200.csv")
    assert proc.returncode != 0 and "unet_ttt_c64_e300" in proc.stderr


def test_real_steps_counts_every_training_set_of_a_ttt_network():
    import importlib.util

    spec = importlib.util.spec_from_file_location("real_steps", ROOT / "bench" / "real_steps.py")
    real_steps = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(real_steps)
    cfg = yaml.safe_load((ROOT / "config" / "real.yaml").read_text())
    assert real_steps.trained_on(cfg, "varnet_k12_c18_e50") == {("knee", "random4x")}
    # its own knee 4x, then per TTT shift P and Q: brain, knee 2x, brain AXT1PRE, knee PD-FS and Stanford's train share
    assert real_steps.trained_on(cfg, "unet_ttt_c64_e300") == {
        ("knee", "random4x"), ("brain", "equispaced4x"), ("knee", "random2x"), ("brain_t1pre", "equispaced4x"),
        ("knee_pdfs", "random4x"), ("stanford_split", "random4x")}


@pytest.mark.slow  # ~4 s: a subprocess that imports torch and the workflow
def test_real_steps_names_an_unknown_variant():
    proc = _run(sys.executable, "bench/real_steps.py", "--methods", "no_such_variant")
    assert proc.returncode != 0 and "no_such_variant" in proc.stderr


def _clean(rows):
    return pd.DataFrame(rows, columns=["dataset", "mask", "family", "method", "ssim_mean"])


@pytest.mark.parametrize("family, delta, ok", [("l1", 5e-4, True), ("l1", 2e-3, False),
                                               ("varnet", 0.02, True), ("varnet", 0.08, False)])
def test_compare_tables_tolerances_per_family(tmp_path, family, delta, ok):
    base = [("d", "m", "zero_filled", "zf", 0.70), ("d", "m", family, "x", 0.80)]
    _clean(base).to_csv(tmp_path / "a.csv", index=False)
    _clean([base[0], (*base[1][:4], 0.80 + delta)]).to_csv(tmp_path / "b.csv", index=False)
    proc = _run(sys.executable, "bench/compare_tables.py", str(tmp_path / "a.csv"), str(tmp_path / "b.csv"))
    assert (proc.returncode == 0) == ok, proc.stdout + proc.stderr
    assert ("OVER" in proc.stdout) != ok


def test_compare_tables_needs_the_same_variants(tmp_path):
    _clean([("d", "m", "l1", "x", 0.8)]).to_csv(tmp_path / "a.csv", index=False)
    _clean([("d", "m", "l1", "y", 0.8)]).to_csv(tmp_path / "b.csv", index=False)
    proc = _run(sys.executable, "bench/compare_tables.py", str(tmp_path / "a.csv"), str(tmp_path / "b.csv"))
    assert proc.returncode != 0 and "different variants" in proc.stderr


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without CUDA")
def test_gpu_check_refuses_without_cuda(tmp_path):
    proc = _run("bash", "bench/gpu_check.sh", str(tmp_path / "out"), env={"PATH": f"{ROOT / '.venv/bin'}:/usr/bin:/bin",
                                                                          "PYTHON": sys.executable})
    assert proc.returncode != 0 and "no CUDA device" in proc.stderr
    assert not (tmp_path / "out" / "real_steps.csv").exists()


def test_ci_width_separates_the_spread_between_and_within_volumes():
    import importlib

    import numpy as np

    sys.path.insert(0, str(ROOT / "bench"))
    try:
        ci = importlib.import_module("ci_width")
    finally:
        sys.path.remove(str(ROOT / "bench"))
    rng = np.random.default_rng(0)
    volume = rng.normal(0, 0.02, 400)  # sigma_b = 0.02 between volumes, sigma_w = 0.01 within
    values = pd.DataFrame([{"stem": f"v{i}", "value": volume[i] + rng.normal(0, 0.01)} for i in range(400) for _ in range(5)])
    between, within, n, m0 = ci.components(values)
    assert (n, m0) == (400, 5)
    assert np.sqrt(between) == pytest.approx(0.02, rel=0.1) and np.sqrt(within) == pytest.approx(0.01, rel=0.05)
    # four times the volumes halve the width; slices per volume only shrink the within part
    assert ci.width(between, within, 120, 10) == pytest.approx(ci.width(between, within, 30, 10) / 2)
    assert ci.width(0.0004, 0.0001, 30, 1) == pytest.approx(2 * 1.959964 * np.sqrt(0.0005 / 30))
    assert ci.width(0.0004, 0.0001, 30, 10) < ci.width(0.0004, 0.0001, 30, 1)
    with pytest.raises(ValueError, match="at least 2 volumes"):
        ci.components(values[values["stem"] == "v0"])


def test_l1_attack_bench_compares_the_implementations_side_by_side():
    """bench/l1_attack.py at a tiny size: one row per implementation, the reference's differences 0, the fused
    implementation's results within float32 rounding of the reference's (its speed is not asserted: CI is noisy)."""
    proc = _run(sys.executable, "bench/l1_attack.py", "--shapes", "32x2", "--iterations", "5", "--steps", "1",
                "--repeats", "1")
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = [line.split() for line in proc.stdout.splitlines() if line.startswith("32x32x2")]
    assert [r[1] for r in rows] == ["reference", "fused", "reference"]  # the last: the rounding control
    assert rows[0][-4:] == ["0.0e+00,", "0.0e+00,", "0.0e+00,", "0.0e+00"]
    last = dict(kv.split("=") for kv in proc.stdout.strip().splitlines()[-1].split())
    assert float(last["speedup"]) > 0 and float(last["max_rel_diff"]) < 1e-2
    assert 0 < float(last["control_rel_diff"]) < 1e-2  # the scaled k-space does change the rounding
