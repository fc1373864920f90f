"""Rehearsal of the real study (config/real.yaml + config/rehearsal.yaml) on generated files of the real shapes:
fastMRI-format knee files with 15 coils and 640x368 / 640x372 k-space (readout oversampled, PD and PD-FS
acquisitions), brain files with 16 coils and 640x320 k-space (AXT2), and ISMRMRD raw 3D volumes shaped like
the Stanford 3D FSE knees (8 coils, 320x320 slices). Every rule of the real study runs at least once, with the
networks made small (tests/config/rehearsal_ci.yaml says why)."""

import h5py
import numpy as np
import pandas as pd
import pytest
import yaml

from robustcs.ismrmrd_convert import convert_ismrmrd
from robustcs.rehearsal import write_3d_raw, write_rehearsal_data

from conftest import ROOT, snakemake


def test_bulk_raw_writer_matches_the_ismrmrd_package(tmp_path):
    """The block writer's file converts to the same volume as one written acquisition by acquisition."""
    from test_convert import _phantom_3d, _write_3d

    img = _phantom_3d(c=3, x=8, y=16, z=12)
    _write_3d(tmp_path / "slow.h5", img, rx=4)
    write_3d_raw(tmp_path / "fast.h5", img, rx=4)
    convert_ismrmrd(tmp_path / "slow.h5", tmp_path / "slow_out.h5", scale=1.0)
    convert_ismrmrd(tmp_path / "fast.h5", tmp_path / "fast_out.h5", scale=1.0)
    with h5py.File(tmp_path / "slow_out.h5") as a, h5py.File(tmp_path / "fast_out.h5") as b:
        np.testing.assert_allclose(a["kspace"][()], b["kspace"][()], atol=1e-6)
        np.testing.assert_allclose(a["reconstruction_rss"][()], b["reconstruction_rss"][()], atol=1e-6)


@pytest.fixture(scope="module")
def rehearsal_data(tmp_path_factory):
    return write_rehearsal_data(tmp_path_factory.mktemp("rehearsal_data"))


@pytest.mark.slow
@pytest.mark.long
def test_real_study_rehearsal(tmp_path, rehearsal_data):
    overlay = tmp_path / "paths.yaml"
    overlay.write_text(yaml.safe_dump(rehearsal_data))
    work = tmp_path / "work"
    snakemake("--cores", "2", "--resources", "mem_mb=20000", "--configfile", str(ROOT / "config/real.yaml"),
              str(ROOT / "config/rehearsal.yaml"), str(ROOT / "tests/config/rehearsal_ci.yaml"), str(overlay), "--directory", str(work), "--", "all")
    res = work / "results"
    # every rule of the real study ran (each writes a benchmark) ...
    rules = {p.name for p in (res / "benchmarks").iterdir() if p.is_dir()}
    rules |= {p.stem for p in (res / "benchmarks").glob("*.tsv")}
    rules |= {f"plot_{p.stem}" for p in (res / "benchmarks/plot").glob("*.tsv")}
    expected = {"ingest", "masks", "sensitivities", "train", "reconstruct", "evaluate", "tune", "attack",
                "features", "pathology", "ttt", "summarise_clean", "summarise_pathology", "summarise_tuning", "summarise_attacks", "summarise_features",
                "summarise_shifts", "summarise_ttt", "summarise_headline", "summarise_findings", "plot_adversarial",
                "plot_adversarial_examples", "plot_features_vs_ssim", "plot_feature_examples", "plot_shifts",
                "plot_ttt", "attack_effort", "summarise_attack_effort", "summarise_attack_verdicts"}
    assert expected <= rules, f"rules that did not run: {sorted(expected - rules)}"
    # ... at the real shapes: both knee widths, 15/16/8 coils, 320x320 references and slices
    knee = pd.read_csv(res / "data/knee/manifest.csv")
    assert set(knee["width"]) == {368, 372} and set(knee["coils"]) == {15} and set(knee["height"]) == {640}
    assert set(zip(knee["target_height"], knee["target_width"])) == {(320, 320)}
    brain = pd.read_csv(res / "data/brain/manifest.csv")
    assert set(brain["coils"]) == {16} and set(brain["width"]) == {320}
    # the acquisition filters split the brain folders: AXT2 for brain, AXT1PRE for the modality shift's target
    assert set(brain["acquisition"]) == {"AXT2"}
    assert set(pd.read_csv(res / "data/brain_t1pre/manifest.csv")["acquisition"]) == {"AXT1PRE"}
    stanford = pd.read_csv(res / "data/stanford/manifest.csv")
    assert set(stanford["coils"]) == {8} and set(zip(stanford["height"], stanford["width"])) == {(320, 320)}
    # the TTT dataset shift's target: one folder split by file (real.yaml's shares) into disjoint train and test
    split = pd.read_csv(res / "data/stanford_split/manifest.csv")
    train, test = (set(split.loc[split["split"] == s, "stem"]) for s in ("train", "test"))
    assert len(train) == len(test) == 1 and not train & test
    pdfs = pd.read_csv(res / "data/knee_pdfs/manifest.csv")
    assert set(pdfs["acquisition"]) == {"CORPDFS_FBK"} and set(pdfs["split"]) == {"train", "val", "test"}
    with h5py.File(next((res / "recon/knee/random4x/varnet_k12_c18_e50").glob("*.h5"))) as f:
        assert all(group["reconstruction"].shape[-2:] == (320, 320) for group in f.values()) and len(f)
    # every configured variant is in the clean table, every shift in the fit table, every TTT shift summarised
    cfg = yaml.safe_load((ROOT / "config/real.yaml").read_text())
    clean = pd.read_csv(res / "tables/clean.csv")
    filters = {p["filter"] for p in cfg["shifts"]["pairs"].values() if p["kind"] == "filtered"}
    assert set(clean["method"]) == set(cfg["methods"]) - filters
    assert clean["ssim_mean"].between(0, 1).all()
    fits = pd.read_csv(res / "tables/shift_fit.csv")
    assert set(fits["shift"]) == {n for n, p in cfg["shifts"]["pairs"].items() if p.get("fit", True)}
    # ESPIRiT maps only where a job reads them: none for the masks no experiment uses on a dataset
    sens = {(p.parent.parent.name, p.name) for p in (res / "data").glob("*/sens/*")}
    assert ("knee", "random4x") in sens and ("brain", "equispaced4x") in sens and ("knee", "random2x") in sens
    assert not sens & {("knee", "equispaced8x"), ("brain", "random4x"), ("stanford", "random2x")}, sorted(sens)
    # the meniscus-tear boxes (not the other label) of the annotated file, scored by every variant
    boxes = pd.read_csv(res / "tables/pathology.csv")
    assert set(boxes["label"]) == {"Meniscus Tear"} and len(boxes) == 2 * len(set(cfg["methods"]) - filters)
    ttt = pd.read_csv(res / "tables/ttt_summary.csv")
    assert set(ttt["shift"]) == set(cfg["ttt"]["shifts"]) and set(ttt["method"]) == set(cfg["ttt"]["methods"])
