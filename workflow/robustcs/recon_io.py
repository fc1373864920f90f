"""Reading a rule's inputs slice by slice and writing reconstructions: one format for every method.

A reconstruction file of a part (``results/recon/{dataset}/{mask}/{method}/{part}.h5``, robustcs.paths) holds
one group per file (its stem) of the part, and each group (like the single-file outputs of the features)
    reconstruction  [S, h, w] float32   magnitude, centre-cropped to the reference size (fastMRI's
                                        submission format; what every metric reads)
    image           [S, H, W] complex64 the complex image on the k-space grid, for methods that
                                        produce one (ℓ1, ConvDecoder; not the RSS-output networks)
    slices          [S] int32           slice indices into the source file
with the attribute ``seconds`` (mean wall time per slice); the file's attributes are ``method``, ``family`` and
the method's spec. An ESPIRiT maps file of a part holds one group per file too: ``sens`` [S, C, H, W] complex64
and ``slices`` [S].
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from dataclasses import dataclass
from typing import Iterator

import h5py
import numpy as np
from tqdm import tqdm

from .manifest import DataValidationError, read_rows
from .metrics import magnitude_crop
from .util import ResultFileError, TqdmToLogger, atomic_path, open_h5, read_result_text


@dataclass
class SliceInput:
    stem: str
    slice: int
    kspace: np.ndarray  # [C, H, W] complex64, the file's full k-space (attacks need its norm)
    mask: np.ndarray  # [W] float32, 0/1
    num_low_frequencies: int
    sens: np.ndarray | None  # [C, H, W] complex64 ESPIRiT maps, when asked for
    target: np.ndarray  # [h, w] float32 reference magnitude
    maxval: float  # the reference volume's max (SSIM/PSNR data range)

    @property
    def measured(self) -> np.ndarray:
        """The undersampled k-space a method may see: M·y, [C, H, W]."""
        return self.kspace * self.mask

    @property
    def target_shape(self) -> tuple[int, int]:
        return tuple(self.target.shape[-2:])


def stack_key(item: SliceInput) -> tuple:
    """What slices stacked by :func:`stack_slices` must share: k-space and target shapes, number of low
    frequencies, maps or none."""
    return item.kspace.shape, item.target.shape, item.num_low_frequencies, item.sens is None


def stack_slices(items: list[SliceInput]) -> SliceInput:
    """Several slices of the same shapes as one SliceInput that a method reconstructs in one batch
    (``Method.batches_slices``): k-space and maps [B, C, H, W], mask [B, 1, 1, W] (broadcasting over the coils
    and rows of its own item), targets [B, h, w]. Stem and slice name the first item; what differs per item
    besides the arrays (the number of low frequencies, maps or none) must agree."""
    first = items[0]
    for item in items[1:]:
        if stack_key(item) != stack_key(first):
            raise ValueError(f"cannot stack {item.stem}[{item.slice}] with {first.stem}[{first.slice}]: k-space, "
                             "target shape, number of low frequencies or maps differ")
    return SliceInput(
        stem=first.stem, slice=first.slice,
        kspace=np.stack([item.kspace for item in items]),
        mask=np.stack([item.mask for item in items])[:, None, None, :],
        num_low_frequencies=first.num_low_frequencies,
        sens=None if first.sens is None else np.stack([item.sens for item in items]),
        target=np.stack([item.target for item in items]),
        maxval=float(first.maxval),
    )


def manifest_rows(manifest_path: str | os.PathLike, stem: str) -> list[dict]:
    """The manifest rows of one file (robustcs.manifest: a reconstruction job needs neither pandas nor the
    ingest code)."""
    return read_rows(manifest_path, stem, required=("stem", "slice", "max", "path"))


def manifest_slices(manifest_path: str | os.PathLike, stem: str) -> tuple[list[int], float]:
    """The used slice indices of one file and its volume max, from the dataset's manifest."""
    rows = manifest_rows(manifest_path, stem)
    return [int(row["slice"]) for row in rows], float(rows[0]["max"])


def maps_group(sens_file: h5py.File, stem: str) -> tuple[h5py.Dataset, list[int]]:
    """(maps dataset [S, C, H, W], slice indices) of one file in an ESPIRiT maps file of a part."""
    if stem not in sens_file:
        raise DataValidationError(sens_file.filename, stem, f"no ESPIRiT maps for this file (the file has maps of "
                                  f"{sorted(sens_file)[:5]})")
    group = sens_file[stem]
    return group["sens"], group["slices"][()].tolist()


def read_maps(path: str | os.PathLike, stem: str, index: int) -> np.ndarray:
    """ESPIRiT maps [C, H, W] of slice ``index`` of file ``stem`` from a maps file of the sensitivities rule."""
    with open_h5(path) as f:
        maps, slices = maps_group(f, stem)
        if index not in slices:
            raise DataValidationError(path, stem, f"no ESPIRiT maps for slice {index} (has {slices})")
        return np.asarray(maps[slices.index(index)], np.complex64)


def maps_index(paths: list) -> dict[str, str]:
    """{file stem: maps file} of the files whose maps these part files hold."""
    index = {}
    for path in paths:
        with open_h5(path) as f:
            index.update({stem: str(path) for stem in f})
    return index


def central(slices: list[int], count: int | None) -> list[int]:
    """The ``count`` central entries of a volume's used slices (all of them for None)."""
    ordered = sorted(slices)
    if count is None or count >= len(ordered):
        return ordered
    start = (len(ordered) - count) // 2
    return ordered[start : start + count]


def load_mask(masks_path: str | os.PathLike, stem: str) -> tuple[np.ndarray, int]:
    with open_h5(masks_path) as f:
        if stem not in f:
            raise DataValidationError(masks_path, stem, "no mask for this file")
        return f[stem][()].astype(np.float32), int(f[stem].attrs["num_low_frequencies"])


def iter_slices(
    manifest_path: str | os.PathLike,
    stem: str,
    volume_path: str | os.PathLike | None,
    masks_path: str | os.PathLike,
    sens_path: str | os.PathLike | None = None,
    count: int | None = None,
    only: list[int] | None = None,
) -> Iterator[SliceInput]:
    """Every used slice of one file (or its ``count`` central ones) with its mask, reference and
    (optionally) ESPIRiT maps from a maps file of a part. ``volume_path`` None: the manifest's path."""
    rows = manifest_rows(manifest_path, stem)
    slices, maxval = central([int(row["slice"]) for row in rows], count), float(rows[0]["max"])
    if count is not None and count > len(slices):  # a folder's files are not read at start-up (robustcs.study_limits)
        logging.getLogger("robustcs").warning("%s: %d central slices asked for, the file has %d used slice(s); "
                                              "all %d taken", stem, count, len(slices), len(slices))
    volume_path = volume_path if volume_path is not None else rows[0]["path"]
    if only is not None:  # these slices alone (each must be a used one), nothing else read from the files
        missing = sorted(set(only) - set(slices))
        if missing:
            raise DataValidationError(manifest_path, None, f"slices {missing} of {stem!r} are not in the manifest "
                                      f"(its slices: {slices})")
        slices = [s for s in slices if s in set(only)]
    mask, num_low = load_mask(masks_path, stem)
    with contextlib.ExitStack() as stack:
        sens_file = stack.enter_context(open_h5(sens_path)) if sens_path else None
        if sens_file is not None:
            sens_maps, sens_slices = maps_group(sens_file, stem)
            missing = sorted(set(slices) - set(sens_slices))
            if missing:
                raise DataValidationError(sens_path, "slices", f"no maps for slices {missing} of {stem}")
        with h5py.File(volume_path, "r") as f:
            for s in slices:
                kspace = f["kspace"][s].astype(np.complex64)
                if kspace.shape[-1] != mask.size:
                    raise DataValidationError(volume_path, "kspace", f"width {kspace.shape[-1]} but mask has {mask.size} columns")
                sens = None
                if sens_file is not None:
                    sens = sens_maps[sens_slices.index(s)].astype(np.complex64)
                    if sens.shape != kspace.shape:
                        raise DataValidationError(sens_path, "sens", f"maps {sens.shape} do not match k-space {kspace.shape}")
                yield SliceInput(stem, s, kspace, mask, num_low, sens, f["reconstruction_rss"][s].astype(np.float32), maxval)


def job_slices(inp, stem: str, count: int | None = None, only: list[int] | None = None) -> Iterator[SliceInput]:
    """:func:`iter_slices` of a rule job whose inputs are named manifest, masks and optionally volume (else the
    manifest's path) and sens (``snakemake.input`` or any mapping with ``get``)."""
    yield from iter_slices(inp.manifest, stem, inp.get("volume"), inp.masks, inp.get("sens"), count=count, only=only)


def part_slices(inp, stems: list[str]) -> Iterator[SliceInput]:
    """Every used slice of every file of a part (inputs named manifest, masks and optionally sens; each file's
    path from the manifest: a part job has no single volume input)."""
    for stem in stems:
        yield from job_slices(inp, stem)


def write_attrs(h5obj, attrs: dict) -> None:
    """HDF5 attributes: numbers and strings as they are, anything else (specs, lists) as sorted JSON."""
    for key, value in attrs.items():
        h5obj.attrs[key] = value if isinstance(value, (int, float, str)) else json.dumps(value, sort_keys=True)


def write_slices(group, slices: list[int], magnitudes: list[np.ndarray], images: list[np.ndarray] | None) -> None:
    group.create_dataset("reconstruction", data=np.stack(magnitudes).astype(np.float32))
    if images is not None:
        group.create_dataset("image", data=np.stack(images).astype(np.complex64))
    group.create_dataset("slices", data=np.asarray(slices, dtype=np.int32))


def write_reconstruction(
    path: str | os.PathLike,
    slices: list[int],
    magnitudes: list[np.ndarray],
    images: list[np.ndarray] | None,
    attrs: dict,
) -> None:
    """Atomically write one file's reconstructions at the top level of ``path`` (the features' outputs)."""
    with atomic_path(path, suffix=".h5") as tmp, h5py.File(tmp, "w") as f:
        write_slices(f, slices, magnitudes, images)
        write_attrs(f, attrs)


def read_reconstructions(path: str | os.PathLike) -> tuple[dict[str, tuple[list[int], np.ndarray, float]], dict]:
    """({stem: (slice indices, magnitudes [S, h, w], seconds per slice)}, file attributes) of a part's
    reconstruction file."""
    out = {}
    with open_h5(path) as f:
        for stem, group in f.items():
            for key in ("reconstruction", "slices"):
                if key not in group:
                    raise DataValidationError(path, f"{stem}/{key}", "missing from the reconstruction file")
            out[stem] = (group["slices"][()].tolist(), group["reconstruction"][()], float(group.attrs["seconds"]))
        return out, dict(f.attrs)


def read_scores(path: str | os.PathLike, required=("stem", "slice", "ssim", "psnr", "nmse")) -> list[dict]:
    """The per-slice rows of a part's scores file (a reconstruction job's .csv), refusing one that is truncated or
    malformed: a missing column, a row cut short, a slice that is not an integer or a score that is not a number
    (the error names the file and the line)."""
    _, (header, *lines) = read_result_text(path)  # readable, complete, every row as long as the header
    missing = [c for c in required if c not in header]
    if missing:
        raise ResultFileError(path, f"no column {missing} (columns {header}): truncated or not a scores file")
    rows = [dict(zip(header, values)) for values in lines]
    numeric = [c for c in required if c not in ("stem", "slice")]
    for line, row in enumerate(rows, start=2):
        try:
            if any(value == "" for value in row.values()):
                raise ValueError("a value is missing")
            int(row["slice"])
            [float(row[c]) for c in numeric]
        except ValueError as err:
            raise ResultFileError(path, f"line {line} is truncated or malformed ({err})") from err
    return rows


def check_reconstruction(path: str | os.PathLike, scored: dict[str, list[int]]) -> None:
    """Refuse a part's reconstruction file that cannot be read or does not hold, per file of the part, the slices
    its scores file lists (``scored``: {stem: slices}); the error names the file."""
    with open_h5(path) as f:
        for stem, slices in scored.items():
            if stem not in f or "slices" not in f[stem] or "reconstruction" not in f[stem]:
                raise ResultFileError(path, f"file {stem!r} is missing from it")
            held = f[stem]["slices"][()].tolist()
            if sorted(held) != sorted(slices) or f[stem]["reconstruction"].shape[0] != len(held):
                raise ResultFileError(path, f"it holds slices {held} of {stem!r}, its scores file lists {sorted(slices)}")


def timed_outputs(inputs: Iterator[SliceInput], method, many=None, batch: int = 1):
    """(item, method output, seconds) per slice (see :func:`run_reconstruction`)."""
    if many is None or batch <= 1:
        for item in inputs:
            start = time.perf_counter()
            output = method(item)
            yield item, output, time.perf_counter() - start
        return

    def run(group: list[SliceInput]):
        start = time.perf_counter()
        outputs = list(many(group))
        seconds = (time.perf_counter() - start) / len(group)
        if len(outputs) != len(group):
            raise RuntimeError(f"{len(group)} slices reconstructed together gave {len(outputs)} outputs")
        return zip(group, outputs, [seconds] * len(group))

    group: list[SliceInput] = []
    for item in inputs:  # streamed: a part's slices are not all held at once
        if group and (len(group) == batch or stack_key(item) != stack_key(group[0])):
            yield from run(group)
            group = []
        group.append(item)
    if group:
        yield from run(group)


def run_reconstruction(
    inputs: Iterator[SliceInput],
    method,
    out_path: str | os.PathLike,
    attrs: dict,
    log=None,
    desc: str = "reconstruct",
    many=None,
    batch: int = 1,
) -> list[dict]:
    """Apply ``method(slice_input) -> (magnitude [>= h, >= w], complex image [H, W] or None)`` to every
    slice of every file, crop the magnitudes to the reference size, time each slice and write one part file
    (a group per file). Returns one row per slice: stem, slice, its SSIM / PSNR / NMSE against the reference
    (:func:`robustcs.metrics.slice_metrics`, the volume max as data range) and ``seconds``, the file's mean time
    per slice (what the evaluation tables report). With ``many`` (a list of slices -> their outputs) and
    ``batch`` > 1, runs of up to ``batch`` consecutive slices of one shape (:func:`stack_key`) go to ``many``
    together, each timed as the run's time / its length."""
    from .metrics import slice_metrics

    files: dict[str, dict[str, list]] = {}
    scores = []
    progress = tqdm(inputs, desc=desc, file=TqdmToLogger(log) if log else None, mininterval=5, disable=log is None)
    for item, (magnitude, image), seconds in timed_outputs(progress, method, many, batch):
        magnitude = magnitude_crop(np.asarray(magnitude), item.target_shape)
        if not np.all(np.isfinite(magnitude)):
            raise FloatingPointError(f"{desc}: non-finite reconstruction for {item.stem} slice {item.slice}")
        scores.append({"stem": item.stem, "slice": item.slice, **slice_metrics(item.target, magnitude, item.maxval)})
        out = files.setdefault(item.stem, {"slices": [], "mags": [], "images": [], "seconds": []})
        out["slices"].append(item.slice)
        out["mags"].append(magnitude)
        out["seconds"].append(seconds)
        if image is not None:
            out["images"].append(np.asarray(image))
        if log:
            log.info("%s slice %d: %.2f s", item.stem, item.slice, seconds)
    if not files:
        raise ValueError(f"{desc}: no slices to reconstruct")
    with atomic_path(out_path, suffix=".h5") as tmp, h5py.File(tmp, "w") as f:
        for stem, out in files.items():
            if out["images"] and len(out["images"]) != len(out["mags"]):
                raise RuntimeError(f"{desc}: the method returned a complex image for some slices only")
            group = f.create_group(stem)
            write_slices(group, out["slices"], out["mags"], out["images"] or None)
            group.attrs["seconds"] = float(np.mean(out["seconds"]))
        write_attrs(f, attrs)
    return [{**row, "seconds": float(np.mean(files[row["stem"]]["seconds"]))} for row in scores]
