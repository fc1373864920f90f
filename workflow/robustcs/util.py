"""Small shared helpers: stable seeds, atomic file writes, logging for rule scripts."""

from __future__ import annotations

import contextlib
import glob
import logging
import os
import sys
import tempfile
import zlib
from pathlib import Path
from typing import Iterator


def stable_seed(*parts: object) -> int:
    """A 31-bit seed derived from ``parts``; unlike ``hash()`` it is the same in every process."""
    text = "\x1f".join(str(p) for p in parts)
    return zlib.crc32(text.encode("utf-8")) & 0x7FFFFFFF


def current_umask() -> int:
    """The process's umask, read without changing it (``/proc``) where possible."""
    with contextlib.suppress(OSError, ValueError):
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    mask = os.umask(0o022)  # no /proc: the classic read-and-restore (not thread-safe, so second choice)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only if the block succeeds.

    An interrupted or failing writer therefore never leaves a half-written file under the final
    name. The temporary file is removed on failure; one left behind by a writer that was killed outright
    (SIGKILL, power loss) is removed by the next writer of the same path (one job writes a path at a time).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = suffix or ".tmp"
    for stale in path.parent.glob(f".{glob.escape(path.name)}.{'?' * 8}{glob.escape(suffix)}"):
        with contextlib.suppress(FileNotFoundError):
            stale.unlink()
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
    os.close(fd)
    os.chmod(tmp, 0o666 & ~current_umask())  # mkstemp makes 0600; give the mode an ordinary open() would
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        raise


def write_table(frame, csv_path: str | os.PathLike, md_path: str | os.PathLike, markdown: str) -> None:
    """A summary table as CSV (``frame``, without its index) and as Markdown (``markdown``), each written atomically."""
    with atomic_path(csv_path, suffix=".csv") as tmp:
        frame.to_csv(tmp, index=False)
    with atomic_path(md_path, suffix=".md") as tmp:
        tmp.write_text(markdown + "\n")


def script_logger(log_path: str | None, name: str = "robustcs") -> logging.Logger:
    """Logger for a rule script: to ``log_path`` (Snakemake's ``log:``) and to stderr."""
    logger = logging.getLogger(name)
    logger.setLevel(logging.INFO)
    logger.handlers.clear()
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(message)s")
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_path:
        Path(log_path).parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(log_path, mode="w"))
    for h in handlers:
        h.setFormatter(fmt)
        logger.addHandler(h)
    previous = sys.excepthook

    def log_uncaught(kind, value, tb):  # a script's error belongs in its log file, not only on the console
        if not issubclass(kind, KeyboardInterrupt):  # to the file only: the default hook prints it to stderr
            record = logger.makeRecord(logger.name, logging.ERROR, __file__, 0, "failed", None, (kind, value, tb))
            for h in logger.handlers:
                if isinstance(h, logging.FileHandler):
                    h.handle(record)
        previous(kind, value, tb)

    sys.excepthook = log_uncaught
    return logger


class TqdmToLogger:
    """File-like object so that tqdm progress bars end up in a rule's log file."""

    def __init__(self, logger: logging.Logger):
        self.logger = logger
        self._buf = ""

    def write(self, text: str) -> None:
        self._buf = text.strip("\r\n\t ")

    def flush(self) -> None:
        if self._buf:
            self.logger.info(self._buf)
            self._buf = ""


def torch_device(prefer_gpu: bool = True):
    """CUDA when present (and wanted), CPU otherwise."""
    import torch

    return torch.device("cuda" if prefer_gpu and torch.cuda.is_available() else "cpu")


def torch_setup(threads: int, log: logging.Logger | None = None):
    """Threads for CPU torch, the device to use; logs the choice."""
    import torch

    torch.set_num_threads(max(1, int(threads)))
    device = torch_device()
    if log:
        log.info("torch %s on %s with %d CPU threads", torch.__version__, device, torch.get_num_threads())
    return device


def replace_marked_block(text: str, name: str, content: str, source: str = "text") -> str:
    """``text`` with everything between the lines ``<!-- name:begin -->`` and ``<!-- name:end -->``
    replaced by ``content``; ValueError naming ``source`` unless each marker occurs exactly once, in order."""
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    if text.count(begin) != 1 or text.count(end) != 1 or text.index(begin) > text.index(end):
        raise ValueError(f"{source}: expected one '{begin}' line followed by one '{end}' line")
    head, rest = text.split(begin, 1)
    _, tail = rest.split(end, 1)
    return f"{head}{begin}\n{content.strip()}\n{end}{tail}"


#: A number as YAML 1.2 writes it but YAML 1.1 (PyYAML) reads as a string: `1e-3`, `5E+2` (no dot before the exponent).
_EXPONENT_NUMBER = __import__("re").compile(r"^[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+$")


def coerce_numbers(value, path: str = "config"):
    """``value`` (a config mapping/list) with every string that is a number in exponent notation (``1e-3``,
    which PyYAML reads as the string '1e-3') turned into a float; other strings stay strings. Returns the new
    value and the list of the fields changed (for a log line)."""
    changed: list[str] = []

    def walk(v, where):
        if isinstance(v, dict):
            return {k: walk(x, f"{where}.{k}") for k, x in v.items()}
        if isinstance(v, list):
            return [walk(x, f"{where}[{i}]") for i, x in enumerate(v)]
        if isinstance(v, str) and _EXPONENT_NUMBER.match(v.strip()):
            changed.append(where)
            return float(v)
        return v

    return walk(value, path), changed


class ResultFileError(ValueError):
    """An intermediate result file (a part's reconstructions, scores, maps) cannot be read: truncated or
    malformed. The message names the file and says how to remake it."""

    def __init__(self, path: str | os.PathLike, problem: str):
        super().__init__(f"{path}: {problem}; delete it and rerun the same command to remake it")
        self.path = str(path)


@contextlib.contextmanager
def open_h5(path: str | os.PathLike):
    """``h5py.File(path, "r")`` for a result file, an unreadable one (truncated, not HDF5) refused by name (h5py's
    own error does not name the file)."""
    import h5py

    try:
        f = h5py.File(path, "r")
    except OSError as err:
        raise ResultFileError(path, f"not a readable HDF5 file ({err})") from err
    with f:
        yield f


def read_result_text(path: str | os.PathLike) -> tuple[str, list[list[str]]]:
    """(text, rows: the header first) of a result CSV file, refusing a truncated or malformed one by name: not
    readable as CSV, empty, cut off inside a line (every writer ends the file with a newline), or a row with more or
    fewer fields than the header."""
    import csv

    try:
        with open(path, newline="") as f:
            text = f.read()
        rows = list(csv.reader(text.splitlines()))
    except (UnicodeDecodeError, csv.Error) as err:
        raise ResultFileError(path, f"not a readable CSV file ({err})") from err
    if not rows or not text.endswith("\n"):
        raise ResultFileError(path, "empty or cut off inside a line (truncated)")
    for line, row in enumerate(rows[1:], start=2):
        if len(row) != len(rows[0]):
            raise ResultFileError(path, f"line {line} has {len(row)} fields, the header {len(rows[0])}")
    return text, rows


def read_result_csv(path: str | os.PathLike):
    """A result table (a part's scores, an attack's or TTT's per-slice rows) as a DataFrame, checked by
    :func:`read_result_text` (pandas itself would fill a short row with NaN and go on)."""
    import io

    import pandas as pd

    text, _ = read_result_text(path)
    return pd.read_csv(io.StringIO(text))


def read_result_csvs(paths) -> "pd.DataFrame":  # noqa: F821 (pandas is imported on use)
    """:func:`read_result_csv` of each file, concatenated in the order given."""
    import pandas as pd

    return pd.concat([read_result_csv(p) for p in paths], ignore_index=True)
