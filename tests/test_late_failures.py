"""Configs and interruptions that used to fail only at the end of a run, on a small workflow (one demo test volume,
the zero-filled baseline alone, attacked): its findings say "undecided" where they cannot decide, and a job whose
outputs carry Snakemake's incomplete marker is redone, not trusted and not refused."""

import json
from base64 import urlsafe_b64encode
from pathlib import Path

import pandas as pd
import pytest
import yaml

from conftest import snakemake

CONFIG = {
    "seed": 0,
    "datasets": {"tiny_src": {"kind": "demo", "demo": {
        "contrast": "t1", "orientation": "axial", "size": 48, "coils": 4, "noise": 0.01, "readout_oversampling": 1,
        "slices_per_volume": 2, "volumes": {"train": 0, "val": 0, "test": 1}}}},
    "masks": {"random4x": {"type": "random", "acceleration": 4, "center_fraction": 0.25, "max_deviation": 0.5}},
    "methods": {"zf": {"family": "zero_filled"}},
    "attacks": {"slices": 1, "epsilons": [0.05], "steps": 2},
    "compute": {"threads": 1, "volumes_per_job": 2},
}
ATTACK = "results/attack/tiny_src/random4x/zf/test-0"
FINDINGS = "results/tables/findings.csv"


def _marker(work: Path, output: str) -> Path:
    """The file by which Snakemake (file persistence) marks ``output`` as written by a job that has not finished."""
    return work / ".snakemake" / "incomplete" / urlsafe_b64encode(output.encode()).decode()


@pytest.fixture(scope="module")
def baseline_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("baseline_only")
    config = root / "config.yaml"
    config.write_text(yaml.safe_dump(CONFIG))
    work = root / "work"
    args = ("--cores", "2", "--configfile", str(config), "--directory", str(work))
    snakemake(*args, FINDINGS)
    return work, args


@pytest.mark.long  # a Snakemake run of the baseline alone (~45 s with the next test): make test-long
def test_an_attack_of_the_baseline_alone_leaves_the_attack_finding_undecided(baseline_run):
    work, _ = baseline_run
    findings = pd.read_csv(work / FINDINGS).set_index("finding")
    row = findings.loc["every method vulnerable to the attack, the networks no more than ℓ1"]
    assert row["reproduces"] == "undecided" and row["measured"] == "no papers' family attacked"
    verdicts = pd.read_csv(work / "results/tables/attack_verdicts.csv")
    # one test volume: too few to resample (findings.min_volumes 3), never yes or no
    assert list(verdicts["vulnerable"]) == ["undecided"] and list(verdicts["volumes"]) == [1]
    assert "1 volume(s) attacked, fewer than findings.min_volumes = 3" in verdicts.loc[0, "note"]


@pytest.mark.long  # Snakemake runs after the baseline run: make test-long
def test_outputs_marked_incomplete_are_redone(baseline_run):
    work, args = baseline_run
    before = (work / FINDINGS).read_bytes()
    # a job that wrote its outputs but was killed before Snakemake recorded it: outputs present, marks left. Without
    # robustcs.interrupted the run said "Nothing to be done" (the attack job joins the DAG behind the checkpoint,
    # after Snakemake's own check of the marks) and the marks stayed; a deleted attack output is not redone either.
    for ext in (".h5", ".csv"):
        marker = _marker(work, ATTACK + ext)
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text(json.dumps({"external_jobid": None}))
    run = snakemake(*args, FINDINGS)
    out = run.stdout + run.stderr
    assert f"{ATTACK}.csv: its job was interrupted before Snakemake recorded it" in out, out[-3000:]
    assert "rule attack:" in out and "Nothing to be done" not in out
    assert not _marker(work, ATTACK + ".csv").exists() and not _marker(work, ATTACK + ".h5").exists()
    assert (work / FINDINGS).read_bytes() == before  # redone, the same tables
    # nothing left to do, no mark left
    again = snakemake("-n", *args, FINDINGS)
    assert "Nothing to be done" in again.stdout + again.stderr
    assert not [p for p in (work / ".snakemake" / "incomplete").rglob("*") if p.is_file()]


def test_marks_are_decoded_and_only_marked_results_redone(tmp_path):
    from robustcs.interrupted import marked_outputs, redo_interrupted

    long = "results/" + "/".join(["x" * 60] * 4) + ".csv"  # encoded beyond 255 characters: split into '@' folders
    names = ["results/a/b.csv", "results/gone.csv", long, "elsewhere.txt"]
    for name in names:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        encoded = urlsafe_b64encode(name.encode()).decode()
        pieces = [encoded[i: i + 254] for i in range(0, len(encoded), 254)]
        mark = tmp_path / ".snakemake" / "incomplete" / Path(*["@" + p for p in pieces[:-1]], pieces[-1])
        mark.parent.mkdir(parents=True, exist_ok=True)
        mark.write_text("{}")
    (tmp_path / ".snakemake" / "incomplete" / "not base64!").write_text("{}")
    for name in ("results/a/b.csv", long, "elsewhere.txt", "results/kept.csv"):
        (tmp_path / name).write_text("x")
    assert marked_outputs(tmp_path) == sorted(names)
    # another Snakemake holds the folder: its running jobs carry marks, nothing is touched
    (tmp_path / ".snakemake" / "locks").mkdir()
    (tmp_path / ".snakemake" / "locks" / "0.input.lock").write_text("")
    assert redo_interrupted(tmp_path, log=lambda line: None) == []
    assert (tmp_path / "results/a/b.csv").stat().st_mtime > 0
    (tmp_path / ".snakemake" / "locks" / "0.input.lock").unlink()
    lines = []
    assert redo_interrupted(tmp_path, log=lines.append) == sorted(["results/a/b.csv", long])
    assert (tmp_path / "results/a/b.csv").stat().st_mtime == 0 == (tmp_path / long).stat().st_mtime
    assert (tmp_path / "results/a/b.csv").read_text() == "x"  # left as it is until its job replaces it
    # a result without a mark, a marked file outside results/ and a marked missing output are left alone
    assert (tmp_path / "results/kept.csv").stat().st_mtime > 0 and (tmp_path / "elsewhere.txt").stat().st_mtime > 0
    assert not (tmp_path / "results/gone.csv").exists()
    assert len(lines) == 2 and lines[0].startswith("results/")
