"""The dataset manifest, ``results/data/{dataset}/manifest.csv`` (written by the ingest rule): one row per used
slice of every validated file, with its split, path, shape and the volume's max. One reader for the workflow's
input functions (at DAG construction) and the rule scripts; standard library only, because Snakemake parses the
workflow where nothing beyond Snakemake is installed (tests/test_envs.py)."""

from __future__ import annotations

import csv
import os

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
