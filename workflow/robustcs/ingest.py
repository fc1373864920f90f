"""A dataset's manifest: every (file, slice) the study uses, after validation.

Sources, per dataset ``kind`` (see config/schema.yaml):
    demo      the embedded generator writes the files
    fastmri   fastMRI .h5 files from a local folder per split, or from checksummed archives
    stanford  ISMRMRD raw files (folder or archives) converted to fastMRI format

A split may take a share of its source's files (``share: [a, b]``, :func:`share_of`): one folder split by file
into train and test, as the Stanford volumes are for test-time training's Q->Q reference.

The manifest CSV has one row per used slice with the columns of :data:`COLUMNS`. Nothing is
written unless every file validates.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
from pathlib import Path

import pandas as pd

from .download import archive_name, safe_extract
from .fastmri_io import DataValidationError, validate_file
from .ismrmrd_convert import convert_ismrmrd
from .manifest import COLUMNS, TEXT_COLUMNS, check_columns
from .util import atomic_path

def select_slices(n: int, selection) -> list[int]:
    """``None``/``'all'``: every slice; ``{'middle': k}``: the k central slices (the study's choice)."""
    if selection in (None, "all"):
        return list(range(n))
    k = int(selection["middle"])
    if k >= n:
        return list(range(n))
    start = (n - k) // 2
    return list(range(start, start + k))


def share_of(files: list[Path], share: list | tuple | None) -> list[Path]:
    """The files of a split that takes a share [a, b) of its source (one folder split by file into train and test):
    the files ordered by the SHA-256 of their names, positions floor(a·n) to floor(b·n) of the n, returned sorted
    by name. Adjacent shares of one source ([0, 0.75], [0.75, 1]) partition its files; the order depends on the
    names alone, not on the folder, the listing order or the config seed. ``share`` None: every file."""
    if share is None:
        return files
    a, b = share
    ranked = sorted(files, key=lambda f: (hashlib.sha256(f.name.encode()).hexdigest(), f.name))
    n = len(ranked)
    return sorted(ranked[math.floor(a * n) : math.floor(b * n)])


def _source_files(name: str, split: str, src: dict, downloads: Path, work: Path, pattern: str) -> list[Path]:
    where = f"datasets.{name}.splits.{split}"
    if "path" in src:
        folder = Path(src["path"]).expanduser()
        if not folder.is_dir():
            raise FileNotFoundError(f"{where}.path: folder {folder} does not exist")
        # absolute, links not followed: a file is named as the folder shows it (validate_file names a link's target)
        files = [Path(os.path.abspath(f)) for f in sorted(folder.glob(pattern))]
        if not files:
            raise FileNotFoundError(f"{where}.path: no {pattern} files in {folder}")
    else:
        files = []
        for arch in src["archives"]:
            archive = downloads / archive_name(arch["url"])
            extracted = safe_extract(archive, work / "extracted" / archive.name)
            sub = arch.get("subdir")
            files += [f.resolve() for f in extracted if f.match(pattern) and (not sub or sub in f.parts)]
        if not files:
            raise FileNotFoundError(f"{where}.archives: no {pattern} files in the archives")
        files = sorted(files)
    kept = share_of(files, src.get("share"))
    if not kept:
        raise ValueError(f"{where}.share: {src['share']} of the {len(files)} {pattern} files keeps none; widen the "
                         "share or add files")
    return kept


def _filter_acquisitions(name: str, entries: list[tuple[str, Path]], wanted: set, log) -> list[tuple[str, Path]]:
    """The entries whose file's ``acquisition`` attribute is one of ``wanted``; every split must keep a file."""
    import h5py

    kept, found = [], {}
    for split, path in entries:
        with h5py.File(path, "r") as f:
            acq = f.attrs.get("acquisition", "")
        acq = acq.decode() if isinstance(acq, bytes) else str(acq)
        found.setdefault(split, {}).setdefault(acq, 0)
        found[split][acq] += 1
        if acq in wanted:
            kept.append((split, path))
    for split, counts in found.items():
        if not any(acq in wanted for acq in counts):
            raise ValueError(f"datasets.{name}.acquisitions: no file of split {split!r} has an acquisition in "
                             f"{sorted(wanted)}; its files have {counts}")
        log.info("split %s: kept %d of %d files by acquisition %s (found %s)", split,
                 sum(counts.get(a, 0) for a in wanted), sum(counts.values()), sorted(wanted), counts)
    return kept


def _in_parallel(fn, args: list, workers: int, progress=None) -> list:
    """[fn(*a) for a in args] in input order, over ``workers`` processes (1: in this process). The first failure
    in input order is raised, as the serial loop would; the other processes are cancelled or left to finish."""
    if workers <= 1 or len(args) <= 1:
        return [fn(*a) for a in (progress(args) if progress else args)]
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    # fresh interpreters: a forked copy of a process that has HDF5 files open or torch threads running can crash
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=min(workers, len(args)), mp_context=context) as pool:
        futures = [pool.submit(fn, *a) for a in args]
        try:
            return [f.result() for f in (progress(futures) if progress else futures)]
        finally:
            for f in futures:
                f.cancel()


def _convert(src: Path, dst: Path, scale: float, group: str) -> tuple[Path, dict]:
    return dst, convert_ismrmrd(src, dst, scale=scale, group=group)


def build_manifest(
    name: str, cfg: dict, out_csv: str | Path, work_dir: str | Path, downloads_dir: str | Path, seed: int,
    logger: logging.Logger | None = None, progress=None, workers: int = 1,
) -> pd.DataFrame:
    """Collect (or generate, or convert) a dataset's files, validate every one and write the manifest.
    ``workers`` > 1 converts and validates that many files at a time (one process each): a TB-sized fastMRI
    split is read once, in parallel; the manifest is the same as with one worker."""
    log = logger or logging.getLogger(__name__)
    work, downloads = Path(work_dir), Path(downloads_dir)
    kind = cfg["kind"]
    entries: list[tuple[str, Path]] = []
    if kind == "demo":
        from . import demo  # here, not at the top: demo imports sigpy (1.7 s), and every job reads manifests

        spec = demo.DemoSpec(**cfg["demo"])
        for rec in demo.write_dataset(name, spec, work / "files", seed, progress=progress):
            entries.append((rec["split"], Path(rec["path"])))
    elif kind in ("fastmri", "stanford"):
        for split, src in cfg["splits"].items():
            files = _source_files(name, split, src, downloads, work, "*.h5")
            if kind == "stanford":
                jobs = [(f, work / "files" / split / f.name, float(cfg.get("scale", 1e-7)), cfg.get("group", "dataset"))
                        for f in files]
                converted = _in_parallel(_convert, jobs, workers, progress)
                for (f, *_), (dst, stats) in zip(jobs, converted):
                    log.info("converted %s -> %s: %s", f, dst, stats)
                files = [dst for dst, _ in converted]
            entries += [(split, f) for f in files]
    else:
        raise ValueError(f"datasets.{name}.kind: unknown kind {kind!r}")

    wanted = cfg.get("acquisitions")
    if wanted:  # an acquisition filter: one folder of mixed sequences (fastMRI knee: PD and PD-FS) as two datasets
        entries = _filter_acquisitions(name, entries, set(wanted), log)
    rows, seen = [], {}
    infos = _in_parallel(validate_file, [(path,) for _, path in entries], workers, progress if kind != "demo" else None)
    for (split, path), info in zip(entries, infos):
        stem = path.stem
        if stem in seen:
            raise DataValidationError(path, None, f"file stem {stem!r} also used by {seen[stem]} in dataset {name}")
        seen[stem] = path
        for s in select_slices(info.slices, cfg.get("slices")):
            rows.append({
                "dataset": name, "split": split, "stem": stem, "path": str(path), "slice": s,
                "slices_total": info.slices, "coils": info.coils, "height": info.height, "width": info.width,
                "target_height": info.target_height, "target_width": info.target_width,
                "acquisition": info.acquisition, "max": info.max,
            })
        log.info("validated %s (%s): %d slices, %d coils, %dx%d", path, split, info.slices, info.coils, info.height, info.width)
    table = pd.DataFrame(rows, columns=COLUMNS)
    with atomic_path(out_csv, suffix=".csv") as tmp:
        table.to_csv(tmp, index=False)
    return table


def read_manifest(path: str | Path) -> pd.DataFrame:
    """The manifest as a table (training reads it; text columns stay text)."""
    table = pd.read_csv(path, dtype={c: str for c in TEXT_COLUMNS}, keep_default_na=False)
    check_columns(path, list(table.columns))
    return table
