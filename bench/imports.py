"""Benchmark: the start-up cost of each rule script, the part of every job spent before its first line of work.

A job of the workflow is one fresh Python process running one script of workflow/scripts; on the demo's small
images most jobs spend more time importing than computing. For every script this imports what the script
imports (its top-level ``import``/``from`` lines, read with ast), best of ``--repeats`` fresh processes, and
prints the time and its ratio to a process that imports torch alone (the floor of any torch job). The last line
reads ``ratio=<mean over the scripts that import torch>`` (1.0: they cost no more than torch itself).

    python bench/imports.py [--repeats 5] [--scripts reconstruct attack evaluate]
"""

from __future__ import annotations

import argparse
import ast
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = ROOT / "workflow" / "scripts"


def script_imports(path: Path) -> list[str]:
    """The modules a script imports at its top level."""
    names = []
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.append(node.module)
    return list(dict.fromkeys(names))


def import_seconds(modules: list[str], repeats: int) -> float:
    """Best wall time of a fresh interpreter importing ``modules``."""
    code = f"import sys; sys.path.insert(0, {str(ROOT / 'workflow')!r}); " + "; ".join(f"import {m}" for m in modules)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True)
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--scripts", nargs="*", help="script names without .py (default: all)")
    args = ap.parse_args()
    torch_only = import_seconds(["torch"], args.repeats)
    print(f"reference: import torch {torch_only:.2f} s (best of {args.repeats})")
    ratios = []
    for path in sorted(SCRIPTS.glob("*.py")):
        if args.scripts and path.stem not in args.scripts:
            continue
        modules = script_imports(path)
        seconds = import_seconds(modules, args.repeats)
        probe = subprocess.run(
            [sys.executable, "-c", f"import sys; sys.path.insert(0, {str(ROOT / 'workflow')!r}); "
             + "; ".join(f"import {m}" for m in modules) + "; print('torch' in sys.modules)"],
            capture_output=True, text=True, check=True)
        heavy = probe.stdout.strip() == "True"
        if heavy:
            ratios.append(seconds / torch_only)
        print(f"{path.stem:24s} {seconds:5.2f} s  {seconds / torch_only:4.2f} x torch  {'(imports torch)' if heavy else ''}")
    print(f"ratio={sum(ratios) / max(len(ratios), 1):.2f}")


if __name__ == "__main__":
    main()
