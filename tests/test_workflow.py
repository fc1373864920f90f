"""The workflow itself: DAG dry runs, start-up checks, and an end-to-end run on the tiny config."""

import h5py
import numpy as np
import pandas as pd
import pytest
import yaml

from robustcs.masks import MaskSpec, file_mask
from robustcs.sensitivities import EspiritSpec, espirit_maps

from conftest import ROOT, snakemake

TINY = ROOT / "tests" / "config" / "tiny.yaml"


def job_counts(proc) -> dict:
    """Snakemake's 'Job stats' table as {rule: count}."""
    rows = (line.split() for line in (proc.stdout + proc.stderr).splitlines())
    return {r[0]: int(r[1]) for r in rows if len(r) == 2 and r[1].isdigit() and r[0] != "total"}


def test_default_config_dag():
    counts = job_counts(snakemake("-n", "--cores", "2", "--quiet", "rules"))
    cfg = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    assert counts["ingest"] == len(cfg["datasets"])
    assert counts["masks"] == len(cfg["datasets"]) * len(cfg["masks"])


def _write_cfg(tmp_path, mutate):
    cfg = yaml.safe_load(TINY.read_text())
    mutate(cfg)
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.mark.parametrize(
    "mutate,words",
    [
        (lambda c: c["masks"]["random4x"].update(type="radial"), "radial"),
        (lambda c: c["masks"]["random4x"].update(acceleration=1), "acceleration"),
        (lambda c: c["masks"]["random4x"].update(center_fraction=1.5), "center_fraction"),
        (lambda c: c["datasets"].update({"../escape": c["datasets"]["tiny_src"]}), "../escape"),
        (lambda c: c["datasets"].update(real={"kind": "fastmri", "splits": {"test": {"path": "/nonexistent/folder"}}}),
         "datasets.real.splits.test.path"),
        (lambda c: c["datasets"].update(real={"kind": "fastmri", "splits": {"test": {"archives": [
            {"url": "https://example.org/a.tar", "sha256": "abc"}]}}}), "sha256"),
        (lambda c: c["datasets"]["tiny_src"]["demo"].update(size=47), "size"),
    ],
)
def test_bad_config_fails_at_startup(tmp_path, mutate, words):
    cfg = _write_cfg(tmp_path, mutate)
    proc = snakemake("-n", "--cores", "1", "--configfile", str(cfg), "--directory", str(tmp_path), check=False)
    assert proc.returncode != 0
    assert words in proc.stdout + proc.stderr
    assert not (tmp_path / "results").exists()


@pytest.mark.slow
def test_end_to_end_tiny(tmp_path):
    args = ["--cores", "2", "--configfile", str(TINY), "--directory", str(tmp_path)]
    snakemake(*args)
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
            with h5py.File(res / name / "sens" / "random4x" / f"{stem}.h5") as f:
                maps, slices = f["sens"][()], f["slices"][()]
            with h5py.File(res / name / "masks" / "random4x.h5") as f:
                mask = f[stem][()].astype(bool)
            path = table.loc[table["stem"] == stem, "path"].iloc[0]
            with h5py.File(tmp_path / path) as f:
                direct = espirit_maps(f["kspace"][int(slices[0])], mask, EspiritSpec(**cfg["sensitivities"]["espirit"]))
            np.testing.assert_allclose(maps[0], direct, atol=1e-6)
    # nothing changed: nothing to do
    proc = snakemake("-n", *args)
    assert "Nothing to be done" in proc.stdout + proc.stderr
    # a changed ESPIRiT parameter reruns the sensitivity jobs only
    cfg["sensitivities"]["espirit"]["max_iter"] = 31
    changed = _write_cfg(tmp_path, lambda c: c.update(cfg))
    proc = snakemake("-n", "--quiet", "rules", "--cores", "2", "--configfile", str(changed), "--directory", str(tmp_path))
    assert job_counts(proc) == {"sensitivities": 2, "all": 1}
    # two clean runs give identical data: rerun from scratch in a second directory
    other = tmp_path / "again"
    snakemake("--cores", "2", "--configfile", str(TINY), "--directory", str(other))
    for name in cfg["datasets"]:
        a = pd.read_csv(res / name / "manifest.csv")
        b = pd.read_csv(other / "results" / "data" / name / "manifest.csv")
        pd.testing.assert_frame_equal(a, b)
        for stem in a["stem"].unique():
            p = a.loc[a["stem"] == stem, "path"].iloc[0]
            with h5py.File(tmp_path / p) as f1, h5py.File(other / p) as f2:
                assert np.array_equal(f1["kspace"][()], f2["kspace"][()])


@pytest.mark.slow
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
        with h5py.File(work / "results" / "data" / "stanford" / "sens" / "random4x" / f"{stem}.h5") as f:
            assert f["sens"].shape == (4, 3, 32, 32)
    # a wrong checksum fails the download and leaves no archive or manifest behind
    cfg["datasets"]["knee"]["splits"]["test"]["archives"][0]["sha256"] = "0" * 64
    path.write_text(yaml.safe_dump({**cfg, "datasets": {"knee": cfg["datasets"]["knee"]}}))
    other = tmp_path / "other"
    proc = snakemake("--cores", "1", "--configfile", str(path), "--directory", str(other), check=False)
    assert proc.returncode != 0 and "SHA-256 mismatch" in (other / "results/logs/download/knee/multicoil_test.tar.gz.log").read_text()
    assert not (other / "results" / "downloads" / "knee" / "multicoil_test.tar.gz").exists()
    assert not (other / "results" / "data" / "knee" / "manifest.csv").exists()
