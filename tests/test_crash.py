"""Crash safety: the workflow SIGKILLed during training and during an attack, then rerun, ends with the
tables of an uninterrupted run, and the killed training resumes from its checkpoint."""

import difflib
import os
import shutil
import signal
import subprocess
import sys
import time
from contextlib import contextmanager, suppress
from pathlib import Path

import pandas as pd
import pytest

from conftest import ROOT, TINY_CONFIG, compared_tables, snakemake

# unet_c trains 2 epochs in the tiny config: the checkpoint of epoch 0 exists while epoch 1 runs
MODEL_DIR = "results/models/tiny_src/random4x/unet_c"
CHECKPOINT = "results/checkpoints/tiny_src/random4x/unet_c/last.pt"
TRAIN_LOG = "results/logs/train/tiny_src/random4x/unet_c.log"


def _group_alive(pgid: int) -> list[int]:
    """Pids of the processes (zombies aside) still in process group ``pgid``."""
    alive = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z" and int(fields[2]) == pgid:
            alive.append(int(stat.parent.name))
    return alive


class Run:
    """Snakemake in a process group of its own (jobs included), to be frozen and killed all at once."""

    def __init__(self, work: Path, out: Path, *args: str):
        self.out = out
        exe = Path(sys.executable).with_name("snakemake")
        with open(out, "w") as f:
            self.proc = subprocess.Popen([str(exe), "-s", str(ROOT / "Snakefile"), *args], cwd=work, stdout=f,
                                         stderr=subprocess.STDOUT, start_new_session=True)

    def tail(self) -> str:
        return self.out.read_text()[-3000:]

    def wait_for(self, condition, what: str, timeout: float, interval: float) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if self.proc.poll() is not None:
                raise AssertionError(f"snakemake ended (exit {self.proc.returncode}) before {what}:\n{self.tail()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"no {what} within {timeout:.0f} s:\n{self.tail()}")
            time.sleep(interval)

    def stop(self) -> None:
        with suppress(ProcessLookupError):  # (all gone already)
            os.killpg(self.proc.pid, signal.SIGSTOP)  # freeze snakemake and every job in one call

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        deadline = time.monotonic() + 10
        while (alive := _group_alive(self.proc.pid)) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not alive, f"processes {alive} of the killed run survived SIGKILL"


@contextmanager
def launched(work: Path, out: Path, *args: str):
    run = Run(work, out, *args)
    try:
        yield run
    finally:
        run.kill()


def _checkpoint_epoch(path: Path) -> int:
    import torch

    return int(torch.load(path, map_location="cpu", weights_only=True)["epoch"])


def _paths(root: Path) -> set[str]:
    """Every file and folder under ``root/results``, hidden ones included."""
    return {str(p.relative_to(root)) for p in (root / "results").rglob("*")}


@pytest.mark.slow
@pytest.mark.long
def test_sigkill_during_training_and_attack_then_rerun(tiny_run, tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    args = ("--cores", "2", "--configfile", str(TINY_CONFIG), "--directory", str(work))
    # as profiles/local does: a job killed after writing its outputs but before Snakemake recorded it is redone
    rerun = (*args, "--rerun-incomplete")
    ckpt, model = work / CHECKPOINT, work / MODEL_DIR / "model.pt"

    # 1. Only unet_c's training and its inputs, one job at a time (the other core polls): kill while its
    # second epoch runs. An epoch takes some 30 ms here, so a kill that comes too late (the poller was not
    # scheduled in time) is retried on the same job rather than failing the test.
    for attempt in range(3):
        target = ("--cores", "1", *args[2:], f"{MODEL_DIR}/model.pt")
        with launched(work, tmp_path / f"run1.{attempt}.out", *target) as run:
            run.wait_for(lambda: (work / TRAIN_LOG).exists(), "training of unet_c", timeout=900, interval=0.05)
            run.wait_for(ckpt.exists, f"checkpoint {CHECKPOINT}", timeout=120, interval=0.0005)
            run.stop()
            epoch = _checkpoint_epoch(ckpt)
            caught = epoch == 0 and not model.exists()
        snakemake("--unlock", *args, cwd=work)
        if caught:
            break
        shutil.rmtree(ckpt.parent)
        shutil.rmtree(work / MODEL_DIR, ignore_errors=True)
        (work / TRAIN_LOG).unlink()
    assert caught, f"could not kill unet_c's training between its epochs (last try: checkpoint of epoch {epoch})"

    # 2. The whole workflow: unet_c resumes; kill it once an attack job computes (its log exists, no output
    # yet). A moment at which some job is writing an output (a hidden temporary file beside it) is skipped.
    def running_attack():
        """The output csv of an attack job that has started (log written) but has no output yet, or None."""
        for log in (work / "results/logs/attack").glob("*/*/*/*.log"):
            out = (work / "results/attack" / log.relative_to(work / "results/logs/attack")).with_suffix("")
            h5, csv = (out.parent / (out.name + ext) for ext in (".h5", ".csv"))
            if not h5.exists() and not csv.exists():
                return csv
        return None

    def trained():  # unet_c's resumed training done, so that its log shows the resume
        return (work / MODEL_DIR / "history.csv").exists() and not ckpt.parent.exists()

    with launched(work, tmp_path / "run2.out", *rerun) as run:
        for _ in range(100):
            run.wait_for(lambda: trained() and running_attack(), "attack job after unet_c's training",
                         timeout=900, interval=0.02)
            run.stop()
            attack, writing = running_attack(), [p for p in (work / "results").rglob(".*")
                                                       if p.name != ".snakemake_timestamp"]
            if attack and not writing:
                break
            os.killpg(run.proc.pid, signal.SIGCONT)
            time.sleep(0.05)
        assert attack and not writing, f"no moment with an attack running and no output being written: {writing}"
    snakemake("--unlock", *args, cwd=work)
    log = (work / TRAIN_LOG).read_text()
    assert f"resuming from {CHECKPOINT}: epoch 0 done, continuing with epoch 1" in log, log
    assert "epochs 1..1" in log and "epoch 1/2:" not in log and "epoch 2/2:" in log, log  # epoch 0 not redone
    # the resumed history covers both epochs and equals the uninterrupted run's (run times aside)
    history = pd.read_csv(work / MODEL_DIR / "history.csv").drop(columns="seconds")
    assert history["epoch"].tolist() == [0, 1]
    pd.testing.assert_frame_equal(history, pd.read_csv(tiny_run / MODEL_DIR / "history.csv").drop(columns="seconds"))

    # 3. Rerun to the end: the attack is redone, and every table equals the uninterrupted run's byte for byte.
    snakemake(*rerun, cwd=work)
    assert attack.exists()
    tables = compared_tables(tiny_run / "results/tables")
    assert tables and compared_tables(work / "results/tables") == tables
    for name in tables:
        mine, theirs = (root / "results/tables" / name for root in (work, tiny_run))
        if mine.read_bytes() != theirs.read_bytes():
            diff = difflib.unified_diff(theirs.read_text().splitlines(), mine.read_text().splitlines(),
                                        "uninterrupted", "killed and rerun", lineterm="")
            raise AssertionError(f"{name} differs from the uninterrupted run's:\n" + "\n".join(list(diff)[:40]))
    # no temporary or left-over file or folder (atomic writes; the checkpoint folder removed): nothing that
    # the uninterrupted run lacks
    extra = sorted(_paths(work) - _paths(tiny_run))
    assert not extra, f"files left by the killed runs: {extra}"
