"""Outputs of interrupted jobs: Snakemake marks a job's outputs incomplete when the job starts (a file under
``.snakemake/incomplete`` per output, its name the URL-safe base64 of the output's path) and removes the marks when it
records the job as finished. A mark left beside an *existing* output means that the job wrote it but Snakemake was
killed (``kill -9``, power loss) before recording it.

Snakemake checks these marks only for the jobs it knows when it first builds the DAG, and redoes them there under
``rerun-incomplete`` (set in profiles/default). Every job behind the ingest checkpoint (reconstruction, attacks,
features, TTT, the tables) joins the DAG later: a marked output of one of them was trusted as it was, and its mark
stayed. :func:`redo_interrupted` (called while the workflow is parsed) dates every marked output to the epoch, older
than its job's inputs, so that Snakemake redoes the job, and what depends on it, through its usual rule (updated
input files), also in a dry run; the file itself is left as it is until the job replaces it. A job whose outputs
are missing (every rule writes them atomically, so a job killed while it runs leaves none) is redone as missing
(when a target needs it), and its marks go when it finishes. Standard library only: it runs while Snakemake
parses the workflow.
"""

from __future__ import annotations

import base64
import binascii
import os
from pathlib import Path


def marked_outputs(workdir: str | Path) -> list[str]:
    """The paths (relative to ``workdir``, as the rules name them) that carry Snakemake's incomplete mark, sorted.
    A long path's name is split into folders whose names start with '@' (Snakemake's file persistence)."""
    root = Path(workdir) / ".snakemake" / "incomplete"
    found = []
    for mark in sorted(root.rglob("*")) if root.is_dir() else ():
        if not mark.is_file():
            continue
        parts = mark.relative_to(root).parts
        encoded = "".join(p[1:] for p in parts[:-1]) + parts[-1]
        try:
            found.append(base64.urlsafe_b64decode(encoded.encode()).decode())
        except (binascii.Error, UnicodeDecodeError, ValueError):
            continue  # not one of Snakemake's marks
    return sorted(found)


def redo_interrupted(workdir: str | Path, log=print) -> list[str]:
    """Date each existing output under ``workdir/results`` that carries an incomplete mark to the epoch (its job and
    what depends on it are then redone), calling ``log`` with one line per file; the paths changed. Nothing is
    touched while another Snakemake holds the folder's locks (its running jobs carry marks too)."""
    work = Path(workdir).resolve()
    locks = work / ".snakemake" / "locks"
    if locks.is_dir() and any(locks.iterdir()):
        return []
    changed = []
    for name in marked_outputs(work):
        path = (work / name).resolve()
        if not path.is_relative_to(work / "results") or not path.is_file():
            continue  # missing (redone as missing), or not one of this workflow's result files
        if path.stat().st_mtime != 0:
            os.utime(path, (0, 0))
            log(f"{name}: its job was interrupted before Snakemake recorded it (incomplete mark in "
                ".snakemake/incomplete); the job is redone")
        changed.append(name)
    return changed
