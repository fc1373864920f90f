"""Reruns that never report success on stale or broken results (fault injection on a tiny study of folder
datasets): a file added to, removed from or replaced in a data folder, an intermediate result truncated or
deleted, and a run killed during a job. Each ends with tables identical, byte for byte, to a clean run of the same
data, or with a refusal that names the bad file."""

import shutil
from pathlib import Path

import pytest
import yaml

from conftest import TINY_CONFIG, compared_tables, snakemake
from test_crash import launched

from robustcs.demo import DemoSpec, write_dataset

SPEC = DemoSpec(size=32, coils=3, slices_per_volume=2, volumes={"train": 2, "val": 0, "test": 3})
RECON = "results/recon/fold/random4x/{method}/{part}"


def _config(folders: dict[str, Path]) -> dict:
    """The tiny config's settings on one fastMRI-folder dataset: a trained, an iterative and the zero-filled
    variant, evaluated on the test folder (one job per file)."""
    tiny = yaml.safe_load(TINY_CONFIG.read_text())
    return {
        "seed": tiny["seed"], "masks": tiny["masks"], "sensitivities": tiny["sensitivities"],
        "compute": {"threads": 1, "volumes_per_job": 1},
        "datasets": {"fold": {"kind": "fastmri", "splits": {s: {"path": str(p)} for s, p in folders.items()}}},
        "methods": {k: tiny["methods"][k] for k in ("zf", "l1_a", "unet_a")},
        "training": {"dataset": "fold", "mask": "random4x"},
        "evaluation": {"datasets": ["fold"], "masks": ["random4x"]},
    }


def _tables(work: Path) -> dict[str, bytes]:
    folder = work / "results" / "tables"
    return {name: (folder / name).read_bytes() for name in compared_tables(folder)}


def _run(work: Path, config: Path, *args, check=True):
    return snakemake("--cores", "2", "--configfile", str(config), "--directory", str(work), *args, check=check)


def _jobs(proc) -> set[str]:
    """The rules whose jobs a run executed."""
    text = proc.stdout + proc.stderr
    return {line.split()[-1].rstrip(":") for line in text.splitlines() if line.startswith(("rule ", "localrule "))}


@pytest.mark.slow
@pytest.mark.long
def test_reruns_after_data_and_result_faults_end_as_a_clean_run(tmp_path):
    data = tmp_path / "data"
    write_dataset("fold", SPEC, data, seed=1)
    spare = tmp_path / "spare"  # a fourth test file, added to the folder later
    write_dataset("fold", DemoSpec(**{**SPEC.__dict__, "volumes": {"train": 0, "val": 0, "test": 4}}), spare, seed=1)
    extra = spare / "test" / "fold_test_003.h5"
    config = tmp_path / "folders.yaml"
    config.write_text(yaml.safe_dump(_config({"train": data / "train", "test": data / "test"})))

    # the references: clean runs of three and of four test files
    three, four, work = tmp_path / "three", tmp_path / "four", tmp_path / "work"
    _run(three, config)
    shutil.copy(extra, data / "test")
    _run(four, config)
    (data / "test" / extra.name).unlink()

    # 1. A file added to the data folder after a run: ingested, validated and reconstructed on the next run, which
    # neither retrains nor reconstructs the other files again.
    _run(work, config)
    assert _tables(work) == _tables(three)
    shutil.copy(extra, data / "test")
    again = _run(work, config)
    assert f"validated {data / 'test' / extra.name}" in (work / "results/logs/ingest/fold.log").read_text()
    assert (work / RECON.format(method="zf", part="test-3")).with_suffix(".h5").is_file()
    assert _tables(work) == _tables(four), again.stdout[-3000:]
    assert "Nothing to be done" in _run(work, config, "-n").stdout

    # 2. Removed again: the tables are those of three files.
    (data / "test" / extra.name).unlink()
    _run(work, config)
    assert _tables(work) == _tables(three)

    # 3. A test file replaced in place by a corrupt one (its k-space NaN): refused by name, twice; restored: clean.
    victim = data / "test" / "fold_test_001.h5"
    original = victim.read_bytes()
    import h5py
    import numpy as np

    with h5py.File(victim, "r+") as f:
        f["kspace"][0, 0, 0, 0] = np.nan
    for _ in range(2):  # the failure does not vanish on the next run
        proc = _run(work, config, check=False)
        assert proc.returncode != 0 and str(victim) in proc.stdout + proc.stderr
    victim.write_bytes(original)
    _run(work, config)
    assert _tables(work) == _tables(three)

    # 4. An intermediate truncated: the reader names it, on this run and the next (Snakemake forgets a failed
    # job's removed output when the tables after it look up to date); deleted, it is remade.
    scores = work / (RECON.format(method="l1_a", part="test-0") + ".csv")
    text = scores.read_text()
    scores.write_text(text[: len(text) - 10])
    for _ in range(2):
        proc = _run(work, config, check=False)
        assert proc.returncode != 0 and f"{scores.relative_to(work)}: empty or cut off inside a line" in proc.stderr
    scores.unlink()
    _run(work, config)
    assert _tables(work) == _tables(three)
    recon = work / (RECON.format(method="zf", part="test-2") + ".h5")
    recon.write_bytes(recon.read_bytes()[:100])
    proc = _run(work, config, check=False)
    assert proc.returncode != 0 and f"{recon.relative_to(work)}: not a readable HDF5 file" in proc.stdout + proc.stderr
    recon.unlink()
    _run(work, config)
    assert _tables(work) == _tables(three)

    # 5. An intermediate deleted after a finished run (a model, an evaluation): remade, and what reads it rerun.
    for name in ("results/models/fold/random4x/unet_a/model.pt", "results/eval/fold/random4x/l1_a.csv"):
        (work / name).unlink()
        jobs = _jobs(_run(work, config))
        assert (work / name).is_file() and "summarise_clean" in jobs, jobs
        assert _tables(work) == _tables(three)

    # 6. Killed during a job, then rerun: the tables of a clean run.
    killed = tmp_path / "killed"
    killed.mkdir()
    with launched(killed, tmp_path / "killed.out", "--cores", "2", "--configfile", str(config)) as run:
        logs = killed / "results/logs/reconstruct"
        run.wait_for(lambda: logs.exists() and any(logs.rglob("*.log")), "a reconstruction job", timeout=600,
                     interval=0.05)
    # (leaving the block killed Snakemake and every job with SIGKILL)
    snakemake("--unlock", "--configfile", str(config), "--directory", str(killed))
    _run(killed, config)
    assert _tables(killed) == _tables(three)
