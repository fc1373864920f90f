"""Boxes of annotated pathology (the ICML study scored 22 knee slices with meniscus tears by the MSE
inside their bounding boxes).

The file is a CSV in the fastMRI+ layout: one row per box with the columns ``file`` (the fastMRI file name, with
or without ``.h5``), ``slice`` (index into the volume), ``x``, ``y`` (the box's top-left corner: column and row),
``width``, ``height`` (pixels of the 320 x 320 reference image) and optionally ``label`` and ``study_level``.
Rows that carry no box (study-level labels: ``study_level`` yes, or empty coordinates) are skipped.

fastMRI+ drew its boxes on the images flipped upside down (its DICOM orientation), so by default a box's rows
are counted from the bottom of the reference image: rows ``H - y - height`` to ``H - y``
(``flip_vertical: false`` takes ``y`` from the top). Check one file by eye before trusting a new annotation set.

Standard library only: the study model reads the file when Snakemake parses the workflow.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

REQUIRED = ("file", "slice", "x", "y", "width", "height")


@dataclass(frozen=True)
class Box:
    stem: str
    slice: int
    x: int  # first column
    y: int  # first row as annotated (from the bottom when the annotation is vertically flipped)
    width: int
    height: int
    label: str
    line: int  # line of the CSV file, for messages

    def rows_cols(self, shape: tuple[int, int], flip_vertical: bool) -> tuple[int, int, int, int]:
        """(r0, r1, c0, c1) of the box in an image of ``shape``; ValueError if it does not lie inside it."""
        h, w = int(shape[0]), int(shape[1])
        r0 = h - self.y - self.height if flip_vertical else self.y
        r1, c0, c1 = r0 + self.height, self.x, self.x + self.width
        if r0 < 0 or c0 < 0 or r1 > h or c1 > w:
            raise ValueError(f"box at line {self.line} ({self.stem} slice {self.slice}: x {self.x}, y {self.y}, "
                             f"{self.width} x {self.height}) does not lie inside the {h} x {w} reference image")
        return r0, r1, c0, c1


def _integer(path, line: int, key: str, text: str, minimum: int) -> int:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"annotations {path} line {line}: {key} {text!r} is not a number") from None
    if not value.is_integer() or value < minimum:
        raise ValueError(f"annotations {path} line {line}: {key} {text!r} must be an integer >= {minimum}")
    return int(value)


def read_boxes(path: str | Path, labels: list[str] | None = None) -> list[Box]:
    """Every box of an annotation file (only those with one of ``labels`` if given), in file order.
    ValueError naming the file, the line and the column for anything malformed, and when no box is left."""
    path = Path(path)
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            columns = [c.strip() for c in reader.fieldnames or []]
            missing = [c for c in REQUIRED if c not in columns]
            if missing:
                raise ValueError(f"annotations {path}: missing column(s) {missing}; expected {list(REQUIRED)} "
                                 f"(and optionally label, study_level), found {columns}")
            rows = [{(k or "").strip(): (v or "").strip() for k, v in row.items()} for row in reader]
    except OSError as err:
        raise ValueError(f"annotations {path}: cannot be read ({err.strerror or err})") from None
    except (UnicodeDecodeError, csv.Error) as err:
        raise ValueError(f"annotations {path}: not a CSV text file ({err})") from None
    boxes = []
    for line, row in enumerate(rows, start=2):
        if row.get("study_level", "").lower() in ("yes", "true", "1") or not any(row[k] for k in REQUIRED[2:]):
            continue
        if not row["file"]:
            raise ValueError(f"annotations {path} line {line}: empty file name")
        empty = [k for k in REQUIRED[1:] if not row[k]]
        if empty:
            raise ValueError(f"annotations {path} line {line}: empty {empty}")
        label = row.get("label", "")
        if labels is not None and label not in labels:
            continue
        stem = row["file"][:-3] if row["file"].endswith(".h5") else row["file"]
        boxes.append(Box(stem, _integer(path, line, "slice", row["slice"], 0), _integer(path, line, "x", row["x"], 0),
                         _integer(path, line, "y", row["y"], 0), _integer(path, line, "width", row["width"], 1),
                         _integer(path, line, "height", row["height"], 1), label, line))
    if not boxes:
        wanted = f" with a label in {labels}" if labels is not None else ""
        raise ValueError(f"annotations {path}: no box{wanted}")
    return boxes


def boxes_of(boxes: list[Box], stem: str) -> list[Box]:
    return [b for b in boxes if b.stem == stem]


def annotated_stems(boxes: list[Box]) -> list[str]:
    return sorted({b.stem for b in boxes})
