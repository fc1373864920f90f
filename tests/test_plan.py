"""The plan before data (`snakemake plan`): the job count of a study before ingest equals what a run executes."""

import re

import h5py
import pandas as pd
import pytest

from conftest import TINY_CONFIG as TINY, snakemake
from test_workflow import job_counts as job_counts_of
from robustcs import plan


def _plan(work, *args):
    proc = snakemake("--cores", "1", "--configfile", str(TINY), "--directory", str(work), *args, "--", "plan")
    table = pd.read_csv(work / "results/plan/plan.csv").set_index("rule")
    assert not (work / "results/plan/scratch").exists() and not (work / "results/data").exists()  # nothing ingested
    return proc, table


@pytest.mark.long  # ingests the tiny config with Snakemake before its dry run (~30 s): make test-long
def test_plan_counts_the_jobs_of_the_run(tmp_path):
    planned, table = _plan(tmp_path / "plan")
    assert "plan: %d jobs" % table.loc["total", "jobs"] in planned.stderr
    # the run: ingest both datasets, then the dry run sees the whole DAG (behind the checkpoint no more)
    run = tmp_path / "run"
    manifests = [f"results/data/{d}/manifest.csv" for d in ("tiny_src", "tiny_shift")]
    snakemake("--cores", "2", "--configfile", str(TINY), "--directory", str(run), "--", *manifests)
    dry = ("-n", "--cores", "1", "--configfile", str(TINY), "--directory", str(run))
    counts = job_counts_of(snakemake(*dry, "--quiet", "rules"))
    counts["ingest"] = 2  # the two ingest jobs already run
    assert {r: int(n) for r, n in table["jobs"].items() if r != "total"} == counts
    assert table.loc["total", "jobs"] == sum(counts.values())
    assert table.loc["total", "gpu_h"] == 0  # compute.gpus: 0
    # no job of the study writes outside results/ (the readme target, asked by name, is not one of them)
    proc = snakemake(*dry)
    outputs = re.findall(r"^    output: (.*)$", proc.stdout + proc.stderr, re.M)
    assert outputs and all(p.strip().startswith("results/") for o in outputs for p in o.split(","))


@pytest.mark.slow
def test_plan_gpu_hours(tmp_path):
    _, table = _plan(tmp_path, "--config", "compute={'gpus': 1, 'runtime': {'ttt': 90}}")
    assert table.loc["ttt", "gpu_h"] == pytest.approx(table.loc["ttt", "jobs"] * 90 / 60, abs=1e-3)
    assert table.loc["evaluate", "gpu_h"] == 0 and 0 < table.loc["total", "gpu_h"] < table.loc["total", "limit_h"]


def _h5(path, acquisition):
    with h5py.File(path, "w") as f:
        f.attrs["acquisition"] = acquisition


def test_planned_files_of_folders(tmp_path):
    for i in range(8):
        _h5(tmp_path / f"f{i}.h5", "CORPD_FBK" if i % 2 else "CORPDFS_FBK")
    (tmp_path / "notes.txt").write_text("not a volume")
    src = {"kind": "fastmri", "splits": {"train": {"path": str(tmp_path), "share": [0, 0.75]},
                                         "test": {"path": str(tmp_path), "share": [0.75, 1]}}}
    files = plan.planned_files("knee", src)
    assert sorted(f.stem for f in files) == [f"f{i}" for i in range(8)]  # the shares partition the folder
    assert sum(f.split == "test" for f in files) == 2
    only_pd = plan.planned_files("knee", {**src, "acquisitions": ["CORPD_FBK"]})
    assert sorted(f.stem for f in only_pd) == ["f1", "f3", "f5", "f7"]
    stanford = plan.planned_files("st", {"kind": "stanford", "splits": {"test": {"path": str(tmp_path)}}})
    assert stanford[0].path == "results/data/st/files/test/f0.h5"  # converted into the dataset's folder
    demo = plan.planned_files("d", {"kind": "demo", "demo": {"volumes": {"train": 2, "test": 1}}})
    assert [f.stem for f in demo] == ["d_train_000", "d_train_001", "d_test_000"]
    with pytest.raises(ValueError, match="datasets.w.splits.test.archives: the plan counts files once downloaded"):
        plan.planned_files("w", {"kind": "fastmri", "splits": {"test": {"archives": [{"url": "https://x/a.tar"}]}}})


def test_parse_dry_run():
    text = ("rule train:\n    input: a\n    resources: tmpdir=/tmp, runtime=240, gpu=1, mem_mb=8000\n\n"
            "localrule all:\n    input: b\n\ncheckpoint ingest:\n    resources: tmpdir=/tmp, runtime=120\n"
            "rule train:\n    resources: tmpdir=/tmp, runtime=60, gpu=2\n")
    rules = plan.parse_dry_run(text)
    assert rules["train"] == {"jobs": 2, "limit_h": 5.0, "gpu_h": 6.0}
    assert rules["all"]["jobs"] == 1 and rules["ingest"] == {"jobs": 1, "limit_h": 2.0, "gpu_h": 0.0}
