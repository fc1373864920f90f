"""The dataset manifest, ``results/data/{dataset}/manifest.csv`` (written by the ingest rule): one row per used
slice of every validated file, with its split, path, shape and the volume's max. One reader for the workflow's
input functions (at DAG construction) and the rule scripts; standard library only, because Snakemake parses the
workflow where nothing beyond Snakemake is installed (tests/test_envs.py)."""

from __future__ import annotations

import csv
import hashlib
import os
from pathlib import Path

#: The columns, in the order ingest writes them.
COLUMNS = [
    "dataset", "split", "stem", "path", "slice", "slices_total", "coils",
    "height", "width", "target_height", "target_width", "acquisition", "max",
]

#: Columns read as text whatever they look like (a file named 0012.h5 has the stem "0012", not 12).
TEXT_COLUMNS = ("dataset", "split", "stem", "path", "acquisition")


class DataValidationError(ValueError):
    """A data file is not usable; the message names the file, the key and what was expected."""

    def __init__(self, path: str | os.PathLike, key: str | None, problem: str):
        where = f"{path}" + (f": key '{key}'" if key else "")
        super().__init__(f"{where}: {problem}")
        self.path = str(path)
        self.key = key
        self.problem = problem

    def __reduce__(self):  # picklable, so that it crosses from a worker process (parallel ingest) intact
        return type(self), (self.path, self.key, self.problem)


def check_columns(path: str | os.PathLike, columns, required=COLUMNS) -> None:
    """Refuse a manifest without the ``required`` columns (default: all; e.g. one written by an older version)."""
    missing = [c for c in required if c not in (columns or [])]
    if missing:
        raise DataValidationError(path, None, f"manifest lacks columns {missing}")


def read_rows(path: str | os.PathLike, stem: str | None = None, required=COLUMNS) -> list[dict]:
    """The manifest's rows as dicts of text (every row, or those of the file ``stem``, which must have some),
    refusing a manifest without the ``required`` columns."""
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        check_columns(path, reader.fieldnames, required)
        rows = [row for row in reader if stem is None or row["stem"] == stem]
    if stem is not None and not rows:
        raise DataValidationError(path, None, f"file stem {stem!r} is not in the manifest")
    return rows


def capped_stems(rows, split: str, max_slices: int | None, seed: int, field: str) -> set[str]:
    """The file stems of ``split`` whose slices a network with the slice cap ``max_slices`` trains on.

    Whole volumes are kept: the split's stems are ordered by the SHA-256 of ``"{seed}:{stem}"`` (the study seed
    and the file's stem, so that the choice is the same on every machine and run and does not depend on the
    manifest's row order), and the longest prefix of that order whose slices add up to at most ``max_slices`` is
    kept; a larger cap keeps a superset. ``None`` keeps every stem. ``rows`` are manifest rows (dicts with
    ``split`` and ``stem``). A cap smaller than the first volume's slices is an error naming ``field``.
    """
    counts: dict[str, int] = {}
    for row in rows:
        if row["split"] == split:
            counts[str(row["stem"])] = counts.get(str(row["stem"]), 0) + 1
    if max_slices is None:
        return set(counts)
    order = sorted(counts, key=lambda s: (hashlib.sha256(f"{seed}:{s}".encode()).hexdigest(), s))
    kept, total = set(), 0
    for stem in order:
        if total + counts[stem] > max_slices:
            break
        kept.add(stem)
        total += counts[stem]
    if counts and not kept:
        first = order[0]
        raise ValueError(f"{field}: {max_slices} slices are fewer than the {counts[first]} {split} slices of the first "
                         f"volume in the seeded order ({first}); the cap keeps whole volumes, so raise it")
    return kept


def folder_listing(cfg: dict, pattern: str = "*.h5") -> str:
    """A digest of what a dataset's folder sources hold: the name, size and modification time of every ``pattern``
    entry of each split's ``path`` folder (broken links and folders included, so that ingest reports them). The
    ingest job takes it as a param, so a file added to, removed from or replaced in a folder makes the next run
    ingest that dataset again (and validate the new files); an unchanged folder gives the same digest. Archive
    sources are the job's inputs already; a demo dataset has no folder (empty listing)."""
    entries = []
    for split, src in sorted((cfg.get("splits") or {}).items()):
        if "path" not in src:
            continue
        folder = Path(src["path"]).expanduser()
        if not folder.is_dir():  # ingest reports it; the listing changes when the folder appears
            entries.append((split, str(folder), "missing"))
            continue
        for f in sorted(folder.glob(pattern)):
            try:
                st = f.stat()
            except OSError:  # a broken link: listed by its own entry
                st = f.lstat()
            entries.append((split, f.name, st.st_size, st.st_mtime_ns))
    return hashlib.sha256(repr(entries).encode()).hexdigest()
