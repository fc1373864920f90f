"""Reading a rule's inputs slice by slice and writing reconstructions: one format for every method.

A reconstruction file (``results/recon/{dataset}/{mask}/{method}/{stem}.h5``) holds
    reconstruction  [S, h, w] float32   magnitude, centre-cropped to the reference size (fastMRI's
                                        submission format; what every metric reads)
    image           [S, H, W] complex64 the complex image on the k-space grid, for methods that
                                        produce one (ℓ1, ConvDecoder; not the RSS-output networks)
    slices          [S] int32           slice indices into the source file
with attributes ``method``, ``family``, ``seconds`` (mean wall time per slice) and the method's spec.
"""

from __future__ import annotations

import csv
import json
import os
import time
from dataclasses import dataclass
from typing import Iterator

import h5py
import numpy as np
from tqdm import tqdm

from .fastmri_io import DataValidationError
from .metrics import magnitude_crop
from .util import TqdmToLogger, atomic_path


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
        return tuple(self.target.shape)


def manifest_slices(manifest_path: str | os.PathLike, stem: str) -> tuple[list[int], float]:
    """The used slice indices of one file and its volume max, from the dataset's manifest (read with the csv
    module: a reconstruction job needs neither pandas nor the ingest code)."""
    with open(manifest_path, newline="") as f:
        reader = csv.DictReader(f)
        missing = [c for c in ("stem", "slice", "max") if c not in (reader.fieldnames or [])]
        if missing:
            raise DataValidationError(manifest_path, None, f"manifest lacks columns {missing}")
        rows = [row for row in reader if row["stem"] == stem]
    if not rows:
        raise DataValidationError(manifest_path, None, f"file stem {stem!r} is not in the manifest")
    return [int(row["slice"]) for row in rows], float(rows[0]["max"])


def central(slices: list[int], count: int | None) -> list[int]:
    """The ``count`` central entries of a volume's used slices (all of them for None)."""
    ordered = sorted(slices)
    if count is None or count >= len(ordered):
        return ordered
    start = (len(ordered) - count) // 2
    return ordered[start : start + count]


def load_mask(masks_path: str | os.PathLike, stem: str) -> tuple[np.ndarray, int]:
    with h5py.File(masks_path, "r") as f:
        if stem not in f:
            raise DataValidationError(masks_path, stem, "no mask for this file")
        return f[stem][()].astype(np.float32), int(f[stem].attrs["num_low_frequencies"])


def iter_slices(
    manifest_path: str | os.PathLike,
    stem: str,
    volume_path: str | os.PathLike,
    masks_path: str | os.PathLike,
    sens_path: str | os.PathLike | None = None,
    count: int | None = None,
    only: list[int] | None = None,
) -> Iterator[SliceInput]:
    """Every used slice of one file (or its ``count`` central ones) with its mask, reference and
    (optionally) ESPIRiT maps."""
    slices, maxval = manifest_slices(manifest_path, stem)
    slices = central(slices, count)
    if only is not None:  # these slices alone (each must be a used one), nothing else read from the files
        missing = sorted(set(only) - set(slices))
        if missing:
            raise DataValidationError(manifest_path, None, f"slices {missing} of {stem!r} are not in the manifest "
                                      f"(its slices: {slices})")
        slices = [s for s in slices if s in set(only)]
    mask, num_low = load_mask(masks_path, stem)
    sens_file = h5py.File(sens_path, "r") if sens_path else None
    try:
        if sens_file is not None:
            sens_slices = sens_file["slices"][()].tolist()
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
                    sens = sens_file["sens"][sens_slices.index(s)].astype(np.complex64)
                    if sens.shape != kspace.shape:
                        raise DataValidationError(sens_path, "sens", f"maps {sens.shape} do not match k-space {kspace.shape}")
                yield SliceInput(stem, s, kspace, mask, num_low, sens, f["reconstruction_rss"][s].astype(np.float32), maxval)
    finally:
        if sens_file is not None:
            sens_file.close()


def job_slices(inp, stem: str, count: int | None = None, only: list[int] | None = None) -> Iterator[SliceInput]:
    """:func:`iter_slices` of a rule job whose inputs are named manifest, volume, masks and (optionally) sens
    (``snakemake.input`` or any mapping with ``get``)."""
    yield from iter_slices(inp.manifest, stem, inp.volume, inp.masks, inp.get("sens"), count=count, only=only)


def write_attrs(h5obj, attrs: dict) -> None:
    """HDF5 attributes: numbers and strings as they are, anything else (specs, lists) as sorted JSON."""
    for key, value in attrs.items():
        h5obj.attrs[key] = value if isinstance(value, (int, float, str)) else json.dumps(value, sort_keys=True)


def write_reconstruction(
    path: str | os.PathLike,
    slices: list[int],
    magnitudes: list[np.ndarray],
    images: list[np.ndarray] | None,
    attrs: dict,
) -> None:
    """Atomically write one file's reconstructions (see the module docstring for the layout)."""
    with atomic_path(path, suffix=".h5") as tmp, h5py.File(tmp, "w") as f:
        f.create_dataset("reconstruction", data=np.stack(magnitudes).astype(np.float32))
        if images is not None:
            f.create_dataset("image", data=np.stack(images).astype(np.complex64))
        f.create_dataset("slices", data=np.asarray(slices, dtype=np.int32))
        write_attrs(f, attrs)


def read_reconstruction(path: str | os.PathLike) -> tuple[list[int], np.ndarray, dict]:
    """(slice indices, magnitudes [S, h, w], attributes) of a reconstruction file."""
    with h5py.File(path, "r") as f:
        for key in ("reconstruction", "slices"):
            if key not in f:
                raise DataValidationError(path, key, "missing from the reconstruction file")
        return f["slices"][()].tolist(), f["reconstruction"][()], dict(f.attrs)


def run_reconstruction(
    inputs: Iterator[SliceInput],
    method,
    out_path: str | os.PathLike,
    attrs: dict,
    log=None,
    desc: str = "reconstruct",
) -> None:
    """Apply ``method(slice_input) -> (magnitude [>= h, >= w], complex image [H, W] or None)`` to every
    slice, crop the magnitudes to the reference size, time each slice and write one file."""
    slices, mags, images, seconds = [], [], [], []
    progress = tqdm(inputs, desc=desc, file=TqdmToLogger(log) if log else None, mininterval=5, disable=log is None)
    for item in progress:
        start = time.perf_counter()
        magnitude, image = method(item)
        seconds.append(time.perf_counter() - start)
        magnitude = magnitude_crop(np.asarray(magnitude), item.target_shape)
        if not np.all(np.isfinite(magnitude)):
            raise FloatingPointError(f"{desc}: non-finite reconstruction for {item.stem} slice {item.slice}")
        slices.append(item.slice)
        mags.append(magnitude)
        if image is not None:
            images.append(np.asarray(image))
        if log:
            log.info("%s slice %d: %.2f s", item.stem, item.slice, seconds[-1])
    if images and len(images) != len(mags):
        raise RuntimeError(f"{desc}: the method returned a complex image for some slices only")
    write_reconstruction(out_path, slices, mags, images or None, {**attrs, "seconds": float(np.mean(seconds))})
