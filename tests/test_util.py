"""Shared helpers: atomic writes and the modes of what they write."""

import os
import stat
import tarfile

import pytest

from robustcs.download import safe_extract
from robustcs.util import atomic_path, current_umask


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


@pytest.fixture(params=[0o022, 0o077, 0o002])
def umask(request):
    before = os.umask(request.param)
    yield request.param
    os.umask(before)


def test_atomic_path_gives_the_mode_of_an_ordinary_write(tmp_path, umask):
    """Results on a shared file system: an atomic write gets what open() would give under the umask
    (0644 under 022, 0600 under 077), not mkstemp's 0600; current_umask reads it without changing it."""
    assert current_umask() == umask
    plain = tmp_path / "plain.txt"
    plain.write_text("x")
    with atomic_path(tmp_path / "atomic.txt") as tmp:
        tmp.write_text("x")
    assert stat.S_IMODE((tmp_path / "atomic.txt").stat().st_mode) == stat.S_IMODE(plain.stat().st_mode) == 0o666 & ~umask
    assert current_umask() == umask


def test_safe_extract_gives_the_folder_the_umask_mode(tmp_path, umask):
    src = tmp_path / "src.txt"
    src.write_text("data")
    archive = tmp_path / "a.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(src, arcname="d/file.txt")
    safe_extract(archive, tmp_path / "out")
    assert stat.S_IMODE((tmp_path / "out").stat().st_mode) == 0o777 & ~umask


def test_exponent_numbers_from_yaml_become_numbers(tmp_path):
    """PyYAML reads `lam: 1e-3` as the string '1e-3'; the workflow reads it as the number the user meant."""
    import yaml

    from robustcs.util import coerce_numbers

    raw = yaml.safe_load("lam: 1e-3\nlist: [2E+1, x1e3]\nname: l1_lam1e4\nnested: {lr: .5e-2, path: /data/1e5x}\n")
    assert raw["lam"] == "1e-3"  # the YAML 1.1 reading this guards against
    value, changed = coerce_numbers(raw)
    assert value == {"lam": 0.001, "list": [20.0, "x1e3"], "name": "l1_lam1e4", "nested": {"lr": 0.005, "path": "/data/1e5x"}}
    assert changed == ["config.lam", "config.list[0]"]  # (.5e-2 has a dot: PyYAML reads that one as a number)


def test_workflow_accepts_exponent_numbers_in_the_config(tmp_path):
    from conftest import TINY_CONFIG, snakemake

    text = TINY_CONFIG.read_text().replace("lam: 0.001", "lam: 1e-3")
    assert "lam: 1e-3" in text
    path = tmp_path / "cfg.yaml"
    path.write_text(text)
    snakemake("-n", "--cores", "1", "--configfile", str(path), "--directory", str(tmp_path / "work"))


def test_script_error_reaches_the_log_file(tmp_path):
    """An exception a rule script does not catch is written to its log file (Snakemake points users there)."""
    import subprocess
    import sys

    log = tmp_path / "job.log"
    code = ("from robustcs.util import script_logger\n"
            f"log = script_logger({str(log)!r})\n"
            "log.info('started')\n"
            "raise ValueError('perturbations over their budget')\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode != 0
    text = log.read_text()
    assert "started" in text and "ValueError: perturbations over their budget" in text and "Traceback" in text
    assert proc.stderr.count("ValueError: perturbations over their budget") == 1  # printed once on the console
