"""The workflow itself: DAG dry runs, start-up checks, and an end-to-end run on the tiny config."""

import stat

import h5py
import numpy as np
import pandas as pd
import pytest
import yaml

from fastmri import evaluate

from robustcs.families import PAPER_FAMILIES
from robustcs.fastmri_io import center_crop
from robustcs.masks import MaskSpec, file_mask
from robustcs.networks import load_model
from robustcs.sensitivities import EspiritSpec, espirit_maps

from test_envs import snakemake_only_env
from conftest import ROOT, TINY_CONFIG as TINY, compared_tables, snakemake



def _maps(folder, stem):
    """(maps, slices) of one file from the maps files of its mask (one file per part, a group per file)."""
    found = []
    for part in sorted(folder.glob("*.h5")):
        with h5py.File(part) as f:
            if stem in f:
                found.append((f[stem]["sens"][()], f[stem]["slices"][()]))
    assert len(found) == 1, f"{stem}: maps in {len(found)} part files of {folder}"
    return found[0]

def job_counts(proc) -> dict:
    """Snakemake's 'Job stats' table as {rule: count}."""
    rows = (line.split() for line in (proc.stdout + proc.stderr).splitlines())
    return {r[0]: int(r[1]) for r in rows if len(r) == 2 and r[1].isdigit() and r[0] != "total"}


@pytest.mark.parametrize("name", ["config.yaml", "demo_full.yaml"])
def test_default_config_dag(tmp_path, name):
    # an empty working directory, so that results of a demo run in the checkout do not shrink the DAG
    default = ROOT / "config" / name
    counts = job_counts(snakemake("-n", "--cores", "2", "--quiet", "rules", "--configfile", str(default),
                                  "--directory", str(tmp_path)))
    cfg = yaml.safe_load(default.read_text())
    assert counts["ingest"] == len(cfg["datasets"])
    assert counts["masks"] == len(cfg["datasets"]) * len(cfg["masks"])
    # (training and reconstruction jobs join the DAG once the ingest checkpoint has listed the files)
    ev, pairs = cfg["evaluation"], cfg["shifts"]["pairs"]
    filters = {p["filter"] for p in pairs.values() if p["kind"] == "filtered"}
    evaluated = len(cfg["methods"]) - len(filters)
    # clean evaluation of every variant but the filters, plus every fitted shift's target (fit: false: TTT only),
    # plus the filters on their source
    sides = {(d, m) for d in ev["datasets"] for m in ev["masks"]} | {
        (p["target"], p.get("target_mask", cfg["training"]["mask"])) for p in pairs.values()
        if "target" in p and p.get("fit", True)}
    assert counts["evaluate"] == len(sides) * evaluated + len(filters)
    assert counts["summarise_clean"] == counts["summarise_shifts"] == counts["summarise_ttt"] == 1
    # every family is a group of at least three variants (the linear fit needs them)
    for family in ("l1", "convdecoder", "unet", "varnet"):
        assert sum(c["family"] == family for c in cfg["methods"].values()) >= 3


def _write_cfg(tmp_path, mutate):
    cfg = yaml.safe_load(TINY.read_text())
    mutate(cfg)
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.mark.parametrize(
    "mutate,words",
    [
        (lambda c: c["masks"]["random4x"].update(type="radial"), "radial"),  # a schema error
        (lambda c: c["shifts"]["pairs"]["shift_a"].update(source="tiny_shift", target="tiny_src"), "learns from"),
        (lambda c: c.update(plots={"example_epsilon": 0.5}), "plots.example_epsilon"),
        (lambda c: c["ttt"].update(reference_ttt="yes"), "reference_ttt"),  # a schema error
    ],
)
def test_bad_config_fails_at_startup(tmp_path, mutate, words):
    """Snakemake runs the study model's checks before any job (the checks themselves: tests/test_study.py)."""
    cfg = _write_cfg(tmp_path, mutate)
    proc = snakemake("-n", "--cores", "1", "--configfile", str(cfg), "--directory", str(tmp_path), check=False)
    assert proc.returncode != 0
    assert words in proc.stdout + proc.stderr
    assert not (tmp_path / "results").exists()


@pytest.mark.slow
def test_end_to_end_tiny(tiny_run, tmp_path_factory):
    tmp_path = tiny_run
    args = ["--cores", "2", "--configfile", str(TINY), "--directory", str(tmp_path)]
    cfg = yaml.safe_load(TINY.read_text())
    res = tmp_path / "results" / "data"
    for name in cfg["datasets"]:
        table = pd.read_csv(res / name / "manifest.csv")
        vols = cfg["datasets"][name]["demo"]["volumes"]
        assert table["stem"].nunique() == sum(vols.values())
        spec = MaskSpec(**cfg["masks"]["random4x"])
        with h5py.File(res / name / "masks" / "random4x.h5") as f:
            for stem in table["stem"].unique():
                expected, _, _ = file_mask(spec, "random4x", stem, int(table["width"].iloc[0]), cfg["seed"])
                np.testing.assert_array_equal(f[stem][()].astype(bool), expected)
        for stem in table.loc[table["split"] == "test", "stem"].unique():
            maps, slices = _maps(res / name / "sens" / "random4x", stem)
            with h5py.File(res / name / "masks" / "random4x.h5") as f:
                mask = f[stem][()].astype(bool)
            path = table.loc[table["stem"] == stem, "path"].iloc[0]
            with h5py.File(tmp_path / path) as f:
                direct = espirit_maps(f["kspace"][int(slices[0])], mask, EspiritSpec(**cfg["sensitivities"]["espirit"]))
            np.testing.assert_allclose(maps[0], direct, atol=1e-6)
    _check_methods_stage(tmp_path, cfg)
    # shareable results: the run's umask (022) decides every mode, for the files written through atomic_path too
    modes = {str(p.relative_to(tmp_path)): stat.S_IMODE(p.stat().st_mode) for p in (tmp_path / "results").rglob("*")}
    assert len(modes) > 100
    wrong = {p: oct(m) for p, m in modes.items() if m != (0o755 if (tmp_path / p).is_dir() else 0o644)}
    assert not wrong, f"files/folders without the umask's mode: {dict(list(wrong.items())[:10])}"
    # nothing changed: nothing to do; decided where only Snakemake is installed (--sdm conda), so that every
    # input function, evaluated now that the manifests exist, needs none of the rule envs' packages
    proc = snakemake("-n", *args, env=snakemake_only_env(tmp_path_factory.mktemp("block")))
    assert "Nothing to be done" in proc.stdout + proc.stderr

    configs = tmp_path_factory.mktemp("configs")

    def dry_run(mutate):
        changed = _write_cfg(configs, mutate)
        proc = snakemake("-n", "--quiet", "rules", "--cores", "2", "--configfile", str(changed),
                         "--directory", str(tmp_path))
        return job_counts(proc)

    # figures and the headline table redrawn downstream of each summary table
    attack_plots = {"plot_adversarial": 1, "plot_attack_examples": 1}
    feature_plots = {"plot_features": 1, "plot_feature_examples": 1}
    # the headline, findings and runtime tables follow every summary
    headline = {"summarise_headline": 1, "summarise_findings": 1, "summarise_runtime": 1}
    # a changed ESPIRiT parameter reruns the maps (5 parts: tiny_src train-0 holds both training files) and
    # everything downstream of them: ℓ1, CG-SENSE, ConvDecoder
    # and complex-U-Net reconstructions and attacks, the complex U-Net's training (on the source and on the
    # TTT target) and its TTT, the featured data (inserted with the maps) with all its probes; ℓ1, ConvDecoder and
    # complex U-Net also on the validation split (tuning)
    assert dry_run(lambda c: c["sensitivities"]["espirit"].update(max_iter=31)) == {
        "sensitivities": 5, "train": 2, "reconstruct": 11, "evaluate": 8, "summarise_clean": 1, "attack": 4,
        "tune": 3, "summarise_tuning": 1, "attack_effort": 4, "summarise_attack_effort": 1,
        "summarise_attacks": 1, "summarise_attack_verdicts": 1, "insert_features": 1, "probe_features": 7,
        "summarise_features": 1, "ttt": 1,
        "summarise_ttt": 1, "summarise_shifts": 1, **attack_plots, **feature_plots, "plot_shifts": 1, "plot_ttt": 1,
        **headline, "all": 1}
    # changing one variant reruns only that variant's jobs, the summaries and their figures
    per_variant = {"reconstruct": 2, "evaluate": 2, "summarise_clean": 1, "attack": 1, "summarise_attacks": 1,
                   "summarise_attack_verdicts": 1, "probe_features": 1, "summarise_features": 1, "summarise_shifts": 1,
                   "attack_effort": 1, "summarise_attack_effort": 1, **attack_plots, **feature_plots, "plot_shifts": 1,
                   **headline, "all": 1}
    # (a variant of the papers' four families is also reconstructed and scored on the validation split that
    # chooses each family's representative)
    tuned_variant = {**per_variant, "reconstruct": 3, "tune": 1, "summarise_tuning": 1}
    assert dry_run(lambda c: c["methods"]["l1_a"].update(lam=0.002)) == tuned_variant
    assert dry_run(lambda c: c["methods"]["unet_a"].update(epochs=3)) == {"train": 1, **tuned_variant}
    # a TTT variant also retrains on the target and redoes its TTT; the filter only reselects the slices
    assert dry_run(lambda c: c["methods"]["varnet_a"].update(epochs=2)) == {
        "train": 2, **tuned_variant, "ttt": 1, "summarise_ttt": 1, "plot_ttt": 1}
    assert dry_run(lambda c: c["methods"]["unet_filter"].update(epochs=2)) == {
        "train": 1, "reconstruct": 1, "evaluate": 1, "summarise_shifts": 1, "plot_shifts": 1, **headline, "all": 1}
    # adding a variant adds its jobs and leaves the others alone
    assert dry_run(lambda c: c["methods"].update(l1_b={"family": "l1", "lam": 0.01, "iterations": 30})) == tuned_variant
    # an experiment's setting reruns that experiment only
    assert dry_run(lambda c: c["attacks"].update(steps=3)) == {
        "attack": 7, "summarise_attacks": 1, "summarise_attack_verdicts": 1, "attack_effort": 7,
        "summarise_attack_effort": 1, **attack_plots, **headline, "all": 1}
    # the effort check's own settings rerun its reruns, never the main attack; its tolerance only the verdicts
    assert dry_run(lambda c: c["attacks"]["effort"].update(factors=[3])) == {
        "attack_effort": 7, "summarise_attack_effort": 1, "summarise_findings": 1, "summarise_runtime": 1, "all": 1}
    assert dry_run(lambda c: c.update(findings={"attack_effort_tolerance_db": 0.3})) == {
        "summarise_attack_effort": 1, "summarise_findings": 1, "summarise_runtime": 1, "all": 1}
    assert dry_run(lambda c: c["features"].update(sizes=[2])) == {
        "insert_features": 1, "probe_features": 7, "summarise_features": 1, **feature_plots, **headline, "all": 1}
    assert dry_run(lambda c: c["ttt"].update(max_steps=11)) == {
        "ttt": 2, "summarise_ttt": 1, "plot_ttt": 1, "summarise_findings": 1, "summarise_runtime": 1, "all": 1}
    assert dry_run(lambda c: c["shifts"].update(bootstrap=100)) == {  # the shift fits' and the gap-closed intervals
        "summarise_shifts": 1, "plot_shifts": 1, "summarise_ttt": 1, "plot_ttt": 1, **headline, "all": 1}
    # a plotting option reruns the plotting jobs only (the report is built from them: snakemake --report)
    assert dry_run(lambda c: c.update(plots={"dpi": 300, "error_max": 0.3})) == {
        **attack_plots, **feature_plots, "plot_shifts": 1, "plot_ttt": 1, "summarise_runtime": 1, "all": 1}
    # the headline table: one row per evaluated variant, its clean SSIM from the clean table
    head = pd.read_csv(tmp_path / "results/tables/headline.csv")
    clean = pd.read_csv(tmp_path / "results/tables/clean.csv").query("dataset == 'tiny_src'").set_index("method")
    assert list(head["method"]) == list(clean.index)
    np.testing.assert_allclose(head["ssim"], clean.loc[head["method"], "ssim_mean"])
    assert {"ssim_drop", "psnr_drop", "psnr_drop_random", "mse_feature", "ssim_shift_a", "ssim_hardest"} <= set(head.columns)
    # the headline's attack drop is clean minus attacked on the attacked slices (recomputed from the per-slice rows)
    per_slice = pd.concat([pd.read_csv(p) for p in sorted((tmp_path / "results/attack").rglob("*.csv"))], ignore_index=True)
    eps = per_slice["epsilon"].max()
    for method, rows in per_slice.groupby("method"):
        clean_rows = rows[rows["kind"] == "clean"].set_index(["stem", "slice"])["psnr"]
        attacked = rows[(rows["kind"] == "adversarial") & (rows["epsilon"] == eps)].set_index(["stem", "slice"])["psnr"]
        expected = (clean_rows.loc[attacked.index] - attacked).mean()
        assert head.set_index("method").loc[method, "psnr_drop"] == pytest.approx(expected)
    assert per_slice.loc[per_slice["kind"] == "adversarial", "plateau_rise"].notna().all()
    with h5py.File(next((tmp_path / "results/attack").rglob("*.h5"))) as part:  # a group per file of the part
        for f in part.values():
            assert f["losses"].shape == (len(cfg["attacks"]["epsilons"]), cfg["attacks"]["slices"], cfg["attacks"]["steps"] + 1)
    # the runtime table: one benchmark file per job, summed per stage
    runtime = pd.read_csv(tmp_path / "results/tables/runtime.csv").set_index("stage")
    assert {"ingest", "train", "reconstruct", "attack", "ttt", "total"} <= set(runtime.index)
    _check_attack_effort(tmp_path)
    assert runtime.loc["train", "jobs"] == len(list((tmp_path / "results/benchmarks/train").rglob("*.tsv")))
    # the tuning: every variant of the papers' four families (not the baseline, CG-SENSE or the filter) scored on
    # the source's val slices only, one selected per family; no tiny family has a one-setting grid
    tuning = pd.read_csv(tmp_path / "results/tables/tuning.csv")
    val_slices = pd.read_csv(tmp_path / "results/data/tiny_src/manifest.csv").query("split == 'val'")
    assert sorted(tuning["method"]) == ["cd_a", "l1_a", "unet_a", "unet_c", "varnet_a"]
    assert (tuning.groupby("family")["selected"].sum() == 1).all() and (tuning["slices"] == len(val_slices)).all()
    assert not tuning["at_edge"].any() and tuning["grid_note"].notna().all()
    # the findings table: one row per experiment of the tiny config, each saying whether it reproduces
    findings = pd.read_csv(tmp_path / "results/tables/findings.csv")
    assert len(findings) == 5 and set(findings["reproduces"]) <= {"yes", "no", "undecided"}
    # the readme target (asked by name) of a run that is not the demo in the checkout: its block and copies go to
    # results/readme/, a README.md in the working directory is left alone (tests/test_readme_target.py: the demo)
    readme = tmp_path / "README.md"
    readme.write_text("# Study\n<!-- headline:begin -->\nold\n<!-- headline:end -->\nafter\n")
    proc = snakemake("--cores", "1", "--configfile", str(TINY), "--directory", str(tmp_path), "--", "readme")
    assert readme.read_text() == "# Study\n<!-- headline:begin -->\nold\n<!-- headline:end -->\nafter\n"
    block = (tmp_path / "results/readme/README.md").read_text()
    assert (tmp_path / "results/tables/headline.md").read_text().strip() in block and "](shifts.png)" in block
    assert (tmp_path / "results/tables/findings.md").read_text().strip() in block
    assert (tmp_path / "results/readme/shifts.png").read_bytes() == (tmp_path / "results/figures/shifts.png").read_bytes()
    assert "readme: changed" in proc.stderr


@pytest.mark.slow
@pytest.mark.long
def test_two_clean_runs_are_identical(tiny_run, tmp_path_factory):
    """Two clean runs give identical data, tables and figures: a second run of the tiny config from scratch.
    (In `make test-long`, beside the SLURM and SIGKILL/resume runs that compare their tables with the same run.)"""
    tmp_path = tiny_run
    cfg = yaml.safe_load(TINY.read_text())
    res = tmp_path / "results" / "data"
    other = tmp_path_factory.mktemp("again")
    snakemake("--cores", "2", "--configfile", str(TINY), "--directory", str(other))
    for name in cfg["datasets"]:
        a = pd.read_csv(res / name / "manifest.csv")
        b = pd.read_csv(other / "results" / "data" / name / "manifest.csv")
        pd.testing.assert_frame_equal(a, b)
        for stem in a["stem"].unique():
            p = a.loc[a["stem"] == stem, "path"].iloc[0]
            with h5py.File(tmp_path / p) as f1, h5py.File(other / p) as f2:
                assert np.array_equal(f1["kspace"][()], f2["kspace"][()])
    # ... and identical tables (every method, training included, is seeded)
    tables = compared_tables(tmp_path / "results/tables")
    assert len(tables) >= 15 and tables == compared_tables(other / "results/tables")
    for table in tables:
        assert (tmp_path / "results/tables" / table).read_bytes() == (other / "results/tables" / table).read_bytes(), table
    # ... and identical figures (PDF and PNG carry no dates)
    figures = sorted(p.name for p in (tmp_path / "results/figures").iterdir())
    assert len(figures) == 12
    for figure in figures:
        assert (tmp_path / "results/figures" / figure).read_bytes() == (other / "results/figures" / figure).read_bytes(), figure


def evaluated(cfg):
    """Every variant but the filters of filtered shifts (which no table lists)."""
    filters = {p["filter"] for p in cfg["shifts"]["pairs"].values() if p["kind"] == "filtered"}
    return [m for m in cfg["methods"] if m not in filters]


def _check_methods_stage(tmp_path, cfg):
    """Outputs of training, reconstruction and evaluation on the tiny run."""
    res = tmp_path / "results"
    summary = pd.read_csv(res / "tables" / "clean.csv")
    datasets, methods = cfg["evaluation"]["datasets"], evaluated(cfg)
    assert len(summary) == len(datasets) * len(methods)
    assert set(summary["method"]) == set(methods) and set(summary["dataset"]) == set(datasets)
    assert summary["ssim_mean"].between(0, 1).all() and (summary["n"] == 2).all()
    assert "± " in (res / "tables" / "clean.md").read_text()
    # the zero-filled row recomputed here from the raw files: mask, RSS, crop and metric wiring
    for dataset in datasets:
        table = pd.read_csv(res / "data" / dataset / "manifest.csv")
        rows = pd.read_csv(res / "eval" / dataset / "random4x" / "zf.csv")
        for row in rows.itertuples():
            info = table[(table["stem"] == row.stem) & (table["slice"] == row.slice)].iloc[0]
            with h5py.File(res / "data" / dataset / "masks" / "random4x.h5") as f:
                mask = f[row.stem][()].astype(np.float32)
            with h5py.File(tmp_path / info["path"]) as f:
                coil = np.fft.fftshift(np.fft.ifft2(np.fft.ifftshift(f["kspace"][row.slice] * mask, axes=(-2, -1)),
                                                    norm="ortho"), axes=(-2, -1))
                target = f["reconstruction_rss"][row.slice]
            zf = center_crop(np.sqrt((np.abs(coil) ** 2).sum(0)), target.shape)
            expected = evaluate.ssim(target[None], zf[None], maxval=float(info["max"])).item()
            assert row.ssim == pytest.approx(expected, rel=1e-5)
    # trained models load with weights_only=True; no checkpoint is left behind after success
    for method in ("unet_a", "varnet_a"):
        spec, _ = load_model(res / "models" / "tiny_src" / "random4x" / method / "model.pt", "cpu")
        assert spec.epochs == cfg["methods"][method]["epochs"]
        history = pd.read_csv(res / "models" / "tiny_src" / "random4x" / method / "history.csv")
        assert len(history) == spec.epochs and np.isfinite(history["train_loss"]).all()
    assert not (res / "checkpoints").exists()  # removed, empty folders included
    _check_robustness_stage(tmp_path, cfg)
    # ℓ1 and ConvDecoder keep their complex images; magnitudes are cropped to the reference size
    with h5py.File(res / "recon" / "tiny_shift" / "random4x" / "l1_a" / "test-0.h5") as f:  # a part: a group per file
        group = f["tiny_shift_test_000"]
        assert group["image"].shape[-2] == 2 * group["reconstruction"].shape[-2]  # readout oversampling 2


def _check_attack_effort(tmp_path):
    """The effort reruns (tiny: 1 slice, 2 and 4 steps): every attacked variant at both step counts, within the
    budget, and the base-step rerun is the main attack's perturbation (same seed and start) scored the same way."""
    effort = pd.read_csv(tmp_path / "results/tables/attack_effort.csv")
    attacked = pd.concat([pd.read_csv(p) for p in (tmp_path / "results/attack").rglob("*.csv")], ignore_index=True)
    assert set(effort["method"]) == set(attacked["method"]) and set(effort["steps"]) == {2, 4}
    assert (effort["norm"] <= effort["budget"] * (1 + 1e-5)).all()
    assert np.allclose(effort["psnr_drop"], effort["psnr_clean"] - effort["psnr_attacked"])
    main = attacked[(attacked["kind"] == "adversarial") & (attacked["epsilon"] == attacked["epsilon"].max())]
    base = effort[effort["steps"] == 2].merge(main, on=["method", "stem", "slice"])
    assert len(base) == len(effort) // 2 and np.allclose(base["psnr_attacked"], base["psnr"], atol=1e-4)
    assert "converged" in (tmp_path / "results/tables/attack_effort.md").read_text()


def _check_robustness_stage(tmp_path, cfg):
    """Attack and feature outputs of the tiny run."""
    res = tmp_path / "results"
    methods, eps = evaluated(cfg), cfg["attacks"]["epsilons"]
    per_slice = pd.concat([pd.read_csv(p) for p in (res / "attack").glob("*/*/*/*.csv")])
    assert set(per_slice["method"]) == set(methods)
    attacked = per_slice[per_slice["kind"] != "clean"]
    assert set(attacked["epsilon"]) == set(eps) and set(attacked["kind"]) == {"adversarial", "random"}
    assert (attacked["norm"] <= attacked["budget"] * (1 + 1e-5)).all() and (attacked["norm"] > 0).all()
    # the budget is ε times the norm of the full k-space of the attacked slice
    row = attacked.iloc[0]
    table = pd.read_csv(res / "data" / row["dataset"] / "manifest.csv")
    with h5py.File(tmp_path / table.loc[table["stem"] == row["stem"], "path"].iloc[0]) as f:
        full = np.linalg.norm(f["kspace"][int(row["slice"])])
    assert row["budget"] == pytest.approx(row["epsilon"] * full, rel=1e-5)
    with h5py.File(res / "attack" / row["dataset"] / "random4x" / "l1_a" / "test-0.h5") as part:
        f = part[row["stem"]]
        assert f["adversarial"].shape[:2] == (len(eps), cfg["attacks"]["slices"])
        e = f["perturbation"][0, 0]
        assert np.linalg.norm(e) == pytest.approx(f["norms"][0, 0], rel=1e-5)
    summary = pd.read_csv(res / "tables" / "adversarial.csv")
    assert len(summary) == len(methods) * (1 + 2 * len(eps))
    # small features: one row per variant and feature, and the correlation across variants
    features = pd.read_csv(res / "tables" / "features.csv")
    fcfg = cfg["features"]
    per_slice_features = len(fcfg["sizes"]) * len(fcfg["contrasts"]) * len(fcfg.get("shapes", ["square"]))
    assert len(features) == len(methods) * fcfg["slices"] * per_slice_features
    assert features["mse_feature"].ge(0).all() and features["ssim"].between(0, 1).all()
    correlation = pd.read_csv(res / "tables" / "features_correlation.csv")
    assert set(correlation["metric"]) == {"mse_feature", "mse_window", "contrast_recovery", "mse_feature_meanstd",
                                          "log_relative_mse"}
    assert {"pearson_low", "pearson_high", "pearson_p", "volumes", "min_correlation"} <= set(correlation.columns)
    by_size = pd.read_csv(res / "tables" / "features_by_size.csv")
    assert len(by_size) == len(methods) * len(fcfg["sizes"])
    pd.testing.assert_series_equal(by_size.groupby("method")["mse_feature"].mean().sort_index(),
                                   features.groupby("method")["mse_feature"].mean().sort_index(), check_names=False)
    assert (correlation["variants"] == len(methods)).all()
    with h5py.File(res / "features" / "tiny_src" / "random4x" / "_data" / "test-0.h5") as part:
        f = part["tiny_src_test_000"]
        added = f["reconstruction_rss"][()] - f["original_rss"][()]
        slice_max = f["original_rss"][0].max()
    assert added.max() > 0.5 * fcfg["contrasts"][0] * slice_max  # the feature shows in the new reference
    for name in ("adversarial.png", "features_vs_ssim.png"):
        assert (res / "figures" / name).stat().st_size > 10_000
    _check_shift_stage(tmp_path, cfg)


def _check_shift_stage(tmp_path, cfg):
    """Shift points, fits, the filtered set and TTT of the tiny run, recomputed from the per-variant tables."""
    res = tmp_path / "results"
    methods = evaluated(cfg)
    points = pd.read_csv(res / "tables" / "shifts.csv")
    assert set(points["shift"]) == set(cfg["shifts"]["pairs"]) and len(points) == 2 * len(methods)
    source = {m: pd.read_csv(res / "eval" / "tiny_src" / "random4x" / f"{m}.csv") for m in methods}
    for m in methods:
        target = pd.read_csv(res / "eval" / "tiny_shift" / "random4x" / f"{m}.csv")
        row = points[(points["shift"] == "shift_a") & (points["method"] == m)].iloc[0]
        assert row["ssim_in"] == pytest.approx(source[m]["ssim"].mean())
        assert row["ssim_out"] == pytest.approx(target["ssim"].mean())
    # the filtered set: the worst ceil(fraction * n) source test slices by the filter's SSIM
    filt = pd.read_csv(res / "eval" / "tiny_src" / "random4x" / "unet_filter.csv").sort_values(["ssim", "stem", "slice"])
    keep = int(np.ceil(cfg["shifts"]["pairs"]["hardest"]["fraction"] * len(filt)))
    worst = filt.head(keep)[["stem", "slice"]]
    for m in methods:
        row = points[(points["shift"] == "hardest") & (points["method"] == m)].iloc[0]
        assert row["ssim_out"] == pytest.approx(source[m].merge(worst, on=["stem", "slice"])["ssim"].mean())
    # the common line is the least-squares line over the papers' families' points (zero-filled and CG-SENSE are
    # not fitted: they get rows of their own, residuals against that line)
    fits = pd.read_csv(res / "tables" / "shift_fit.csv")
    assert set(fits.loc[~fits["fitted"], "group"]) == set(points["family"]) - set(PAPER_FAMILIES)
    for shift, pts in points.groupby("shift"):
        fitted = pts[pts["family"].isin(PAPER_FAMILIES)]
        slope, intercept = np.polyfit(fitted["ssim_in"], fitted["ssim_out"], 1)
        line = fits[(fits["shift"] == shift) & (fits["group"] == "all")].iloc[0]
        assert line["slope"] == pytest.approx(slope, rel=1e-6) and line["intercept"] == pytest.approx(intercept, abs=1e-6)
    assert (res / "figures" / "shifts.png").stat().st_size > 10_000
    # TTT: P->Q is the variant trained on P scored on Q (as its evaluation), Q->Q uses the model trained on Q
    ttt = pd.read_csv(res / "tables" / "ttt.csv")
    assert set(ttt["method"]) == set(cfg["ttt"]["methods"])
    # reference_ttt: Q->Q+TTT too; ablation_hidden: P->Q+TTT with the held-out points hidden from the input
    assert set(ttt["setting"]) == {"p_q", "p_q_ttt", "q_q", "q_q_ttt", "p_q_ttt_hidden"}
    for m in cfg["ttt"]["methods"]:
        own = pd.read_csv(res / "eval" / "tiny_shift" / "random4x" / f"{m}.csv")
        for row in ttt[(ttt["method"] == m) & (ttt["setting"] == "p_q")].itertuples():
            assert row.ssim == pytest.approx(own[(own["stem"] == row.stem) & (own["slice"] == row.slice)]["ssim"].item())
        assert (res / "models" / "tiny_shift" / "random4x" / m / "model.pt").exists()
    adapted = ttt[ttt["setting"] == "p_q_ttt"]
    assert (adapted["steps"] >= 1).all() and (adapted["steps"] <= cfg["ttt"]["max_steps"]).all()
    summary = pd.read_csv(res / "tables" / "ttt_summary.csv")
    assert len(summary) == len(cfg["ttt"]["methods"])
    gap = summary["ssim_q_q"] - summary["ssim_p_q"]
    closed = np.where(gap > 0.005, (summary["ssim_p_q_ttt"] - summary["ssim_p_q"]) / gap, np.nan)  # no share of no gap
    np.testing.assert_allclose(summary["gap_closed"], closed)
    # Q->Q+TTT adapts the network trained on Q (not P's again), with the same budget; the ceiling is the better one
    wide = ttt.pivot_table(index=["method", "stem", "slice"], columns="setting", values="ssim")
    assert not np.allclose(wide["q_q_ttt"], wide["p_q_ttt"]) and not np.allclose(wide["q_q_ttt"], wide["q_q"])
    reference = ttt[ttt["setting"] == "q_q_ttt"]
    assert (reference["steps"] >= 1).all() and (reference["steps"] <= cfg["ttt"]["max_steps"]).all()
    np.testing.assert_allclose(summary["ceiling"], np.maximum(summary["ssim_q_q"], summary["ssim_q_q_ttt"]))
    # the hidden-input ablation adapts the network trained on P on the same draw: its first held-out step sees the
    # same points, and its result differs from the study protocol's on some slice (the input differs)
    hidden = ttt[ttt["setting"] == "p_q_ttt_hidden"]
    assert (hidden["steps"] >= 1).all() and (hidden["steps"] <= cfg["ttt"]["max_steps"]).all()
    assert not np.allclose(wide["p_q_ttt_hidden"], wide["p_q_ttt"])
    closed_hidden = np.where(gap > 0.005, (summary["ssim_p_q_ttt_hidden"] - summary["ssim_p_q"]) / gap, np.nan)
    np.testing.assert_allclose(summary["gap_closed_hidden"], closed_hidden)


@pytest.mark.slow
@pytest.mark.long
def test_end_to_end_real_data_sources(tmp_path):
    """A fastMRI dataset from a checksummed archive and a Stanford-style dataset from ISMRMRD raw files."""
    import hashlib
    import tarfile

    from robustcs.demo import DemoSpec, write_dataset
    from test_convert import _phantom_3d, _write_3d

    demo = DemoSpec(size=32, coils=3, slices_per_volume=3, volumes={"test": 2})
    write_dataset("knee", demo, tmp_path / "src", seed=1)
    archive = tmp_path / "multicoil_test.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(tmp_path / "src" / "test", arcname="multicoil_test")
    sha = hashlib.sha256(archive.read_bytes()).hexdigest()
    raw = tmp_path / "stanford_raw"
    raw.mkdir()
    for i in range(2):
        _write_3d(raw / f"knee3d_{i}.h5", _phantom_3d(c=3, x=8, y=32, z=32), rx=4)
    cfg = yaml.safe_load(TINY.read_text())
    cfg["datasets"] = {
        "knee": {"kind": "fastmri", "slices": {"middle": 1},
                 "splits": {"test": {"archives": [{"url": archive.as_uri(), "sha256": sha}]}}},
        "stanford": {"kind": "stanford", "scale": 1.0, "splits": {"test": {"path": str(raw)}}},
    }
    # no training split here: the untrained methods run on both sources
    cfg["methods"] = {k: v for k, v in cfg["methods"].items() if v["family"] in ("zero_filled", "l1")}
    cfg.pop("training")
    for experiment in ("attacks", "features", "shifts", "ttt"):  # covered by the tiny run
        cfg.pop(experiment)
    cfg["evaluation"] = {"datasets": ["knee", "stanford"]}
    path = tmp_path / "real.yaml"
    path.write_text(yaml.safe_dump(cfg))
    work = tmp_path / "work"
    snakemake("--cores", "2", "--configfile", str(path), "--directory", str(work))
    knee = pd.read_csv(work / "results" / "data" / "knee" / "manifest.csv")
    assert sorted(knee["stem"]) == ["knee_test_000", "knee_test_001"] and list(knee["slice"]) == [1, 1]
    assert (work / "results" / "downloads" / "knee" / "multicoil_test.tar.gz").is_file()
    stanford = pd.read_csv(work / "results" / "data" / "stanford" / "manifest.csv")
    assert stanford["slices_total"].tolist() == [4] * 8 and set(stanford["width"]) == {32}
    for stem in stanford["stem"].unique():
        assert _maps(work / "results" / "data" / "stanford" / "sens" / "random4x", stem)[0].shape == (4, 3, 32, 32)
    summary = pd.read_csv(work / "results" / "tables" / "clean.csv")
    assert len(summary) == 4 and summary["ssim_mean"].between(0, 1).all()
    # without a training block or experiments the headline is the clean quality on the first evaluated set
    head = pd.read_csv(work / "results" / "tables" / "headline.csv")
    assert list(head.columns) == ["family", "method", "ssim", "psnr"] and set(head["method"]) == set(cfg["methods"])
    np.testing.assert_allclose(head["ssim"], summary[summary["dataset"] == "knee"]["ssim_mean"])
    # a wrong checksum fails the download and leaves no archive or manifest behind
    cfg["datasets"]["knee"]["splits"]["test"]["archives"][0]["sha256"] = "0" * 64
    path.write_text(yaml.safe_dump({**cfg, "datasets": {"knee": cfg["datasets"]["knee"]},
                                    "evaluation": {"datasets": ["knee"]}}))
    other = tmp_path / "other"
    proc = snakemake("--cores", "1", "--configfile", str(path), "--directory", str(other), check=False)
    assert proc.returncode != 0 and "SHA-256 mismatch" in (other / "results/logs/download/knee/multicoil_test.tar.gz.log").read_text()
    assert not (other / "results" / "downloads" / "knee" / "multicoil_test.tar.gz").exists()
    assert not (other / "results" / "data" / "knee" / "manifest.csv").exists()


def test_acceleration_shift_dag(tmp_path):
    """An acceleration shift: the same dataset under another mask; its TTT reference trains on that mask."""

    def accel(c):
        c["masks"]["random2x"] = {"type": "random", "acceleration": 2, "center_fraction": 0.25}
        c["shifts"]["pairs"] = {"accel": {"kind": "acceleration", "source": "tiny_src", "target": "tiny_src",
                                          "target_mask": "random2x"}}
        c["ttt"]["shifts"] = ["accel"]

    cfg = _write_cfg(tmp_path, accel)
    proc = snakemake("-n", "--cores", "1", "--configfile", str(cfg), "--directory", str(tmp_path), "--printshellcmds",
                     "--until", "summarise_shifts")
    out = proc.stdout + proc.stderr
    assert "results/eval/tiny_src/random2x/varnet_a.csv" in out and "results/eval/tiny_src/random4x/varnet_a.csv" in out
    # no filter variant without a filtered shift: every variant is evaluated
    assert "results/eval/tiny_src/random2x/unet_filter.csv" in out


def test_ingest_with_several_workers_under_snakemake(tmp_path):
    """The ingest job's worker processes start fresh and import the rule script: they must not run an ingest of
    their own (the manifest equals the one-worker manifest, and the log is the job's alone)."""
    manifests = {}
    for threads in (1, 2):
        cfg = yaml.safe_load(TINY.read_text())
        cfg["compute"]["threads"] = threads
        work = tmp_path / f"w{threads}"
        path = _write_cfg(tmp_path, lambda c: c.update(compute={"threads": threads}))
        snakemake("--cores", "2", "--configfile", str(path), "--directory", str(work),
                  "results/data/tiny_src/manifest.csv")
        manifests[threads] = (work / "results/data/tiny_src/manifest.csv").read_text()
        log = (work / "results/logs/ingest/tiny_src.log").read_text()
        assert log.count("manifest results/data/tiny_src/manifest.csv") == 1, log
    assert manifests[1] == manifests[2]


def _train_inputs(out: str) -> set:
    """The input files of the (one) train job of a dry run's listing."""
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip() == "rule train:")
    line = next(line for line in lines[start:] if line.strip().startswith("input:"))
    return {s.strip() for s in line.split("input:", 1)[1].split(",")}


def test_slice_cap_trains_on_the_kept_volumes_only(tmp_path):
    """A variant with max_train_slices asks, in the dry run after ingest, for the files and maps of the volumes
    the cap keeps: one of tiny_src's two 2-slice training volumes for a cap of 3 (one part per file)."""
    from robustcs.manifest import capped_stems, read_rows

    def capped(c):
        c["methods"]["unet_c"].update(max_train_slices=3)
        c["compute"]["volumes_per_job"] = 1

    model = "results/models/tiny_src/random4x/unet_c/model.pt"
    common = ["--cores", "1", "--directory", str(tmp_path)]
    cfg = _write_cfg(tmp_path, capped)
    snakemake("results/data/tiny_src/manifest.csv", *common, "--configfile", str(cfg))  # ingest: the files are known
    rows = read_rows(tmp_path / "results/data/tiny_src/manifest.csv")
    paths = {r["stem"]: r["path"] for r in rows if r["split"] == "train"}
    kept = capped_stems(rows, "train", 3, 0, "max_train_slices")
    assert len(paths) == 2 and len(kept) == 1
    inputs = _train_inputs(snakemake(model, "-n", *common, "--configfile", str(cfg)).stdout)
    assert {p for p in inputs if "/files/train/" in p} == {paths[s] for s in kept}
    assert len([p for p in inputs if "/sens/random4x/train-" in p]) == 1
    # without the cap, both training files and their maps
    uncapped = tmp_path / "uncapped.yaml"
    uncapped.write_text(cfg.read_text().replace("max_train_slices: 3", ""))
    inputs = _train_inputs(snakemake(model, "-n", *common, "--configfile", str(uncapped)).stdout)
    assert {p for p in inputs if "/files/train/" in p} == set(paths.values())
    assert len([p for p in inputs if "/sens/random4x/train-" in p]) == 2
