"""Benchmark: the demo from nothing, in a fresh directory, as a newcomer runs it.

Runs ``snakemake --cores N all`` on a config (default: the default demo, config/config.yaml) in an empty
directory, then a second time (nothing to do), and prints the job time per stage (the run's
``results/tables/runtime.csv``: summed over the stage's jobs, which may overlap), the wall time of both runs
and, last, ``total=<s> noop=<s> ratio=<total / reference>`` where the reference is the wall time of the
first three pipeline stages alone (ingest, masks, ESPIRiT), measured in the same run from their benchmark
files, so that the line says how much the experiments cost next to the data preparation on this machine.

    python bench/demo.py [--cores 2] [--config config/config.yaml] [--keep DIR]
"""

from __future__ import annotations

import argparse
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
DATA_STAGES = ("ingest", "masks", "sensitivities")


def snakemake(workdir: Path, config: Path, cores: int) -> float:
    exe = Path(sys.executable).with_name("snakemake")
    cmd = [str(exe) if exe.exists() else "snakemake", "-s", str(ROOT / "Snakefile"), "--cores", str(cores),
           "--configfile", str(config), "--directory", str(workdir), "--", "all"]
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"snakemake failed ({' '.join(cmd)}):\n{proc.stderr[-4000:]}")
    return seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cores", type=int, default=2)
    ap.add_argument("--config", type=Path, default=ROOT / "config" / "config.yaml")
    ap.add_argument("--keep", type=Path, help="run in this (empty or new) directory and keep it")
    args = ap.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="robustcs-demo-"))
    work.mkdir(parents=True, exist_ok=True)
    if any(work.iterdir()):
        sys.exit(f"{work}: not empty; the benchmark starts from nothing")
    try:
        total = snakemake(work, args.config.resolve(), args.cores)
        noop = snakemake(work, args.config.resolve(), args.cores)
        runtime = pd.read_csv(work / "results" / "tables" / "runtime.csv")
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    import torch  # the float kernels torch dispatches to (results of trained networks differ between them)

    print(f"machine: {platform.machine()}, {platform.processor() or 'cpu'}, torch kernels "
          f"{torch.backends.cpu.get_cpu_capability()}, --cores {args.cores}; config {args.config}")
    print(runtime.to_string(index=False))
    stages = runtime.set_index("stage")["seconds"]
    reference = float(sum(stages.get(s, 0.0) for s in DATA_STAGES))
    ratio = total / reference if reference > 0 else float("nan")
    print(f"total={total:.1f} noop={noop:.1f} ratio={ratio:.2f}")


if __name__ == "__main__":
    main()
