"""Benchmark: a config's tables with the networks' training and TTT steps in float32 and in another precision.

Writes two copies of the config (every U-Net and VarNet variant's ``precision`` and the ``ttt`` block's set to
fp32 in one, to ``--precision`` in the other), runs the workflow on each in its own folder, one after the other,
and prints each run's wall time, their ratio and the clean tables compared by ``bench/compare_tables.py`` (the
CPU-vs-GPU tolerances of the GPU check: classical solvers within 1e-3 SSIM, seeded and trained families within
0.05). The last line reads ``ratio=<other/fp32 wall time> tables=<ok|OVER>``. Exits non-zero when a variant's
SSIM moves beyond its tolerance.

    python bench/precision.py [--configfile tests/config/tiny.yaml] [--precision bf16] [--cores 2] [OUT]

On a GPU machine add ``--config compute={gpus: 1}``-style settings through ``--extra`` (passed to Snakemake),
e.g. ``--extra "--config" "compute={'gpus': 1}"``; tf32 and fp16 only differ from fp32 on CUDA.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
NETWORK_FAMILIES = ("unet", "varnet")


def with_precision(config: dict, precision: str) -> dict:
    """A copy of ``config`` whose trained networks (variants without published weights) and TTT use ``precision``."""
    out = dict(config)
    out["methods"] = {
        name: ({**v, "precision": precision} if v.get("family") in NETWORK_FAMILIES and "checkpoint" not in v else v)
        for name, v in config["methods"].items()
    }
    if "ttt" in config:
        out["ttt"] = {**config["ttt"], "precision": precision}
    return out


def run(config: dict, work: Path, cores: int, extra: list[str]) -> float:
    work.mkdir(parents=True)
    cfg = work / "config.yaml"
    cfg.write_text(yaml.safe_dump(config, sort_keys=False))
    cmd = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "--cores", str(cores), "--configfile",
           str(cfg), "--directory", str(work), "--quiet", "rules", *extra, "all"]
    start = time.perf_counter()
    subprocess.run(cmd, check=True)
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", nargs="?", help="a new folder for both runs (default: a temporary one)")
    ap.add_argument("--configfile", default=str(ROOT / "tests" / "config" / "tiny.yaml"))
    ap.add_argument("--precision", default="bf16", choices=["tf32", "bf16", "fp16"])
    ap.add_argument("--cores", type=int, default=2)
    ap.add_argument("--extra", nargs=argparse.REMAINDER, default=[], help="further Snakemake arguments")
    args = ap.parse_args()
    out = Path(args.out or tempfile.mkdtemp(prefix="robustcs-precision-"))
    config = yaml.safe_load(Path(args.configfile).read_text())
    times = {}
    for precision in ("fp32", args.precision):
        times[precision] = run(with_precision(config, precision), out / precision, args.cores, args.extra)
        print(f"{precision}: {times[precision]:.0f} s", flush=True)
    tables = [str(out / p / "results" / "tables" / "clean.csv") for p in ("fp32", args.precision)]
    compared = subprocess.run([sys.executable, str(ROOT / "bench" / "compare_tables.py"), *tables],
                              env={**os.environ, "PYTHONPATH": str(ROOT / "workflow")}, text=True, capture_output=True)
    print(compared.stdout + compared.stderr, end="")
    print(f"ratio={times[args.precision] / times['fp32']:.2f} tables={'ok' if compared.returncode == 0 else 'OVER'}")
    sys.exit(compared.returncode)


if __name__ == "__main__":
    main()
