"""The one manifest reader (robustcs.manifest) that the input functions, the rule scripts and training share."""

import csv

import pytest

from robustcs.ingest import read_manifest
from robustcs.manifest import COLUMNS, DataValidationError, read_rows


def _write(path, rows, columns=COLUMNS):
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return path


def _row(stem, index):
    return {"dataset": "d", "split": "test", "stem": stem, "path": f"files/{stem}.h5", "slice": index,
            "slices_total": 2, "coils": 4, "height": 8, "width": 8, "target_height": 8, "target_width": 8,
            "acquisition": "AXT2", "max": 1.5}


def test_rows_keep_text_and_agree_with_the_table_reader(tmp_path):
    path = _write(tmp_path / "manifest.csv", [_row("0012", 0), _row("0012", 1), _row("b", 0)])
    rows = read_rows(path)
    assert [r["stem"] for r in rows] == ["0012", "0012", "b"]  # a numeric-looking stem stays text
    assert [r["slice"] for r in read_rows(path, "0012")] == ["0", "1"]
    table = read_manifest(path)
    assert table["stem"].tolist() == [r["stem"] for r in rows] and table["max"].tolist() == [1.5] * 3


def test_missing_columns_and_unknown_stems_name_the_file(tmp_path):
    short = _write(tmp_path / "old.csv", [_row("a", 0)], columns=["stem", "slice", "max", "path"])
    with pytest.raises(DataValidationError, match=r"old.csv: manifest lacks columns \['dataset', 'split'"):
        read_rows(short)
    with pytest.raises(DataValidationError, match="old.csv: manifest lacks columns"):
        read_manifest(short)
    assert len(read_rows(short, "a", required=("stem", "slice", "max", "path"))) == 1  # a reader asks for what it uses
    with pytest.raises(DataValidationError, match="old.csv: file stem 'zz' is not in the manifest"):
        read_rows(short, "zz", required=("stem",))
