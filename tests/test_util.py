"""Shared helpers: atomic writes."""

import pytest

from robustcs.util import atomic_path


def test_atomic_path_writes_only_on_success_and_cleans_up_after_killed_writers(tmp_path):
    target = tmp_path / "table.csv"
    with pytest.raises(RuntimeError):
        with atomic_path(target, suffix=".csv") as tmp:
            tmp.write_text("half")
            raise RuntimeError("writer failed")
    assert list(tmp_path.iterdir()) == []  # no output, no temporary
    # what a SIGKILLed writer leaves behind (mkstemp's 8 random characters) goes with the next write of the path
    (tmp_path / ".table.csv.k3x_9abq.csv").write_text("stale")
    (tmp_path / ".table.csv.notmine.csv").write_text("someone else's")  # another pattern: left alone
    (tmp_path / ".other.csv.k3x_9abq.csv").write_text("another output's")
    with atomic_path(target, suffix=".csv") as tmp:
        tmp.write_text("done")
    assert target.read_text() == "done"
    assert sorted(p.name for p in tmp_path.iterdir()) == [".other.csv.k3x_9abq.csv", ".table.csv.notmine.csv", "table.csv"]
