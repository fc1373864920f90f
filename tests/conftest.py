import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "workflow"))

from robustcs.demo import DemoSpec, simulate_volume  # noqa: E402
from robustcs.fastmri_io import write_volume  # noqa: E402

TINY = DemoSpec(size=48, coils=4, noise=0.01, slices_per_volume=2, volumes={"train": 1, "val": 0, "test": 1})


#: Fixtures that build something costly once per session or module, longest first: the shared tiny run and the
#: baseline-only run of test_late_failures (Snakemake runs).
SHARED_FIXTURES = ("tiny_run", "baseline_run")


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist's own hook reads the groups
def pytest_collection_modifyitems(config, items):
    """Under pytest-xdist (`make test` runs two workers, --dist loadgroup) the tests that share one of the
    SHARED_FIXTURES go to one worker, which builds it once (spread over both, each worker built its own). They
    are collected first, in that order, so that the longest of them (the tiny run) starts first: the scheduler
    hands out the groups of equal size in the order of collection."""

    def shared(item) -> int:
        names = getattr(item, "fixturenames", ())
        return next((i for i, name in enumerate(SHARED_FIXTURES) if name in names), len(SHARED_FIXTURES))

    for item in items:
        if shared(item) < len(SHARED_FIXTURES):
            item.add_marker(pytest.mark.xdist_group(SHARED_FIXTURES[shared(item)]))
    items.sort(key=shared)  # stable: the order within each group and among the other tests is kept


@pytest.fixture(scope="session")
def tiny_volume():
    """(kspace, target, true coil maps) of one small simulated volume."""
    return simulate_volume(TINY, seed=123)


@pytest.fixture
def good_file(tmp_path, tiny_volume):
    kspace, target, _ = tiny_volume
    path = tmp_path / "good.h5"
    write_volume(path, kspace, target, acquisition="TEST", patient_id="p0")
    return path


def require_tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} not installed (apt-get install it; .ci/run does so as root)")
    return path


def snakemake(*args, cwd=ROOT, check=True, env=None):
    """Run the workflow's Snakemake in a subprocess; returns the CompletedProcess."""
    exe = Path(sys.executable).with_name("snakemake")
    cmd = [str(exe) if exe.exists() else "snakemake", "-s", str(ROOT / "Snakefile"), *args]
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=env)
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
    return proc


TINY_CONFIG = ROOT / "tests" / "config" / "tiny.yaml"


def variant_error(block: dict, name: str = "v") -> str:
    """The start-up message for a variant ``block`` against its family's definition in config/schema.yaml (the one
    home of the method settings' types and ranges), '' when it passes."""
    from robustcs.configcheck import load_schema
    from robustcs.study import SCHEMA
    from robustcs.study_checks import check_variant

    try:
        check_variant(name, block, load_schema(SCHEMA))
    except ValueError as err:
        return str(err)
    return ""


def compared_tables(folder: Path) -> list[str]:
    """The tables of a run that must be equal byte for byte between runs: all but the runtime table
    (measured wall times and memory, different in every run)."""
    return sorted(p.name for p in folder.iterdir() if not p.name.startswith("runtime."))


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """The working directory of one uninterrupted local run of the tiny config, shared by the tests that
    check its outputs, build its report or compare another run (SLURM, killed and resumed) with it.
    Tests must not change its results/; dry runs with other configs belong in a directory of their own."""
    work = tmp_path_factory.mktemp("tiny_run")
    before = os.umask(0o022)  # a lab's usual umask: test_end_to_end_tiny checks every result is 0644
    try:
        snakemake("--cores", "2", "--configfile", str(TINY_CONFIG), "--directory", str(work))
    finally:
        os.umask(before)
    return work


@pytest.fixture(scope="module")
def one_torch_thread():
    """One torch intra-op thread for a test module (restored afterwards)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def rng():
    return np.random.default_rng(0)
