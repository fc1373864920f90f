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
        ("espirit", "espirit"), ("zero_filled", "recon"), ("zero_filled", "attack"), ("cgsense_lam1e2", "recon")}
    assert (table["step_s"] > 0).all() and (table["hours"] > 0).all()
    cg = table.set_index(["variant", "stage"]).loc[("cgsense_lam1e2", "recon")]
    # rehearsal.yaml: 3 iterations per slice, 10 slices; the hours are steps x step + set-ups
    assert cg["steps"] == 30 and cg["hours"] == pytest.approx((30 * cg["step_s"] + 10 * cg["setup_s"]) / 3600)
    # attacks: rehearsal 2 steps, real.yaml's 4 budgets in batches of 2 -> 2 passes, 3 slices
    assert table.set_index(["variant", "stage"]).loc[("zero_filled", "attack"), "steps"] == 2 * 2 * 3
    assert proc.stdout.strip().splitlines()[-1].startswith("ratio=")


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
