"""The plan of a study before its data: every job a run will execute and the hours its runtime limits allow.

A dry run (``snakemake -n``) stops at the ingest checkpoint: the jobs that need a dataset's list of files
(maps, training, reconstruction, attacks, TTT) join the DAG only once its manifest exists. The plan predicts each
manifest from the config without ingesting anything: a demo dataset's files are named by its volume counts, a
folder's are its ``*.h5`` files (the split's ``share`` and ``acquisitions`` filter applied, as ingest applies
them); a dataset already ingested keeps its manifest. It writes these manifests (and empty stand-ins for the files
they name that do not exist yet) into a scratch working directory and dry-runs the study there: the job list is
then Snakemake's own, the same jobs the real run executes, with the resources every rule asks
(``compute.runtime``, ``compute.gpus``).

GPU-hours are the sum over GPU jobs of runtime limit × GPUs: an upper bound set by the config, not a prediction
(bench/real_steps.py measures the steps; docs/runtime.md). Used by the ``plan`` rule (``workflow/rules/plan.smk``).
"""

from __future__ import annotations

import csv
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from . import paths
from .manifest import COLUMNS, read_rows


@dataclass(frozen=True)
class PlannedFile:
    split: str
    stem: str
    path: str  # where ingest puts or finds it; relative paths lie in the working directory


def _folder_files(name: str, split: str, src: dict, acquisitions: list | None) -> list[Path]:
    from .ingest import share_of  # pandas and h5py: the plan job's env, not Snakemake's parser

    where = f"datasets.{name}.splits.{split}"
    if "path" not in src:
        raise ValueError(f"{where}.archives: the plan counts files once downloaded; download them first "
                         f"(`snakemake --cores 1 --configfile <config> -- {paths.DOWNLOADS.format(dataset=name)}/...`)")
    files = share_of(sorted(f.resolve() for f in Path(src["path"]).expanduser().glob("*.h5")), src.get("share"))
    if acquisitions:
        import h5py

        def acquisition(path: Path) -> str:
            with h5py.File(path, "r") as f:
                acq = f.attrs.get("acquisition", "")
            return acq.decode() if isinstance(acq, bytes) else str(acq)

        files = [f for f in files if acquisition(f) in set(acquisitions)]
    return files


def planned_files(name: str, cfg: dict) -> list[PlannedFile]:
    """The files ingest will list for dataset ``name`` (config block ``cfg``), without reading or writing them."""
    work = Path(paths.MANIFEST.format(dataset=name)).parent / "files"
    if cfg["kind"] == "demo":
        return [PlannedFile(split, f"{name}_{split}_{i:03d}", str(work / split / f"{name}_{split}_{i:03d}.h5"))
                for split in ("train", "val", "test") for i in range(int(cfg["demo"]["volumes"].get(split, 0)))]
    out = []
    for split, src in cfg["splits"].items():
        for f in _folder_files(name, split, src, cfg.get("acquisitions") if cfg["kind"] == "fastmri" else None):
            # a Stanford file is converted into the dataset's folder; a fastMRI file is read where it lies
            out.append(PlannedFile(split, f.stem, str(work / split / f.name) if cfg["kind"] == "stanford" else str(f)))
    return out


def write_scratch(config: dict, scratch: Path, ingested: Path) -> list[str]:
    """Manifests of every dataset in ``scratch`` (the real one from ``ingested``, the working directory, where it
    exists; else predicted) and empty stand-ins for predicted files. Returns the datasets still to be ingested."""
    pending = []
    for name, cfg in config["datasets"].items():
        real = ingested / paths.MANIFEST.format(dataset=name)
        if real.is_file():
            rows = read_rows(real)
        else:
            pending.append(name)
            rows = [dict.fromkeys(COLUMNS, "0") | {"dataset": name, "split": f.split, "stem": f.stem, "path": f.path,
                                                   "acquisition": ""} for f in planned_files(name, cfg)]
        target = scratch / paths.MANIFEST.format(dataset=name)
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(target, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=COLUMNS)
            writer.writeheader()
            writer.writerows({k: row.get(k, "") for k in COLUMNS} for row in rows)
        for row in rows:
            stand_in = scratch / row["path"]  # an absolute path stays where it is (joining keeps it)
            if not stand_in.exists():
                stand_in.parent.mkdir(parents=True, exist_ok=True)
                stand_in.touch()
    return pending


_JOB = re.compile(r"^(?:local)?(?:rule|checkpoint) (\w+):$")
_RESOURCE = re.compile(r"\b(runtime|gpu)=(\d+)")


def parse_dry_run(text: str) -> dict[str, dict]:
    """{rule: {jobs, limit_h, gpu_h}} from a dry run's job listing (each job's ``resources:`` line)."""
    rules: dict[str, dict] = {}
    current = None
    for line in text.splitlines():
        head = _JOB.match(line.strip())
        if head:
            current = rules.setdefault(head.group(1), {"jobs": 0, "limit_h": 0.0, "gpu_h": 0.0})
            current["jobs"] += 1
        elif current is not None and line.strip().startswith("resources:"):
            res = {k: int(v) for k, v in _RESOURCE.findall(line)}
            current["limit_h"] += res.get("runtime", 0) / 60
            current["gpu_h"] += res.get("runtime", 0) * res.get("gpu", 0) / 60
    return rules


def dry_run(snakemake: str, snakefile: str, configfile: Path, scratch: Path, cores: int) -> str:
    cmd = [snakemake, "-s", snakefile, "-n", "--cores", str(cores), "--configfile", str(configfile),
           "--directory", str(scratch)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"the plan's dry run failed ({' '.join(cmd)}):\n{(proc.stdout + proc.stderr)[-3000:]}")
    return proc.stdout + proc.stderr


def table(rules: dict[str, dict], pending: list[str], config: dict) -> list[dict]:
    """One row per rule (the ingest and download jobs still to run added), then a total row."""
    rows = {name: dict(r) for name, r in rules.items()}
    for name in pending:
        row = rows.setdefault("ingest", {"jobs": 0, "limit_h": 0.0, "gpu_h": 0.0})
        row["jobs"] += 1
        row["limit_h"] += config["compute"]["runtime"]["ingest"] / 60
    out = [{"rule": k, **v} for k, v in rows.items()]
    out.append({"rule": "total", "jobs": sum(r["jobs"] for r in out), "limit_h": sum(r["limit_h"] for r in out),
                "gpu_h": sum(r["gpu_h"] for r in out)})
    return out


def markdown(rows: list[dict]) -> str:
    lines = ["| rule | jobs | hours (runtime limits) | GPU-hours (limits × GPUs) |", "|---|--:|--:|--:|"]
    lines += [f"| {r['rule']} | {r['jobs']} | {r['limit_h']:.1f} | {r['gpu_h']:.1f} |" for r in rows]
    return "\n".join(lines) + "\n"
