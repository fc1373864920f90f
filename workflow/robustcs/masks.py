"""Undersampling masks from ``fastmri.data.subsample``, seeded per file.

A mask is a boolean vector over the phase-encoding columns (the last k-space axis, W), the same for
every slice of a volume and for every method. The seed depends only on the study seed, the mask's
name and the file's stem, so a file gets the same mask in every run and in every rule.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from fastmri.data import subsample

from .util import stable_seed

MASK_TYPES = ("random", "equispaced", "equispaced_fraction", "magic", "magic_fraction")


@dataclass(frozen=True)
class MaskSpec:
    type: str
    acceleration: int
    center_fraction: float
    # Random masks only: redraw (with the next seed) until the realised acceleration is within
    # this distance of the nominal one, as the study's knee notebooks do (4 +- 0.03). 0 = no redraw.
    max_deviation: float = 0.0
    max_redraws: int = 1000


def realised_acceleration(mask: np.ndarray) -> float:
    return float(mask.size / max(int(mask.sum()), 1))


def make_mask(spec: MaskSpec, width: int, seed: int) -> tuple[np.ndarray, int, int]:
    """A [width] boolean mask. Returns (mask, number of low-frequency lines, seed actually used)."""
    if spec.type not in MASK_TYPES:
        raise ValueError(f"unknown mask type {spec.type!r}; expected one of {MASK_TYPES}")
    func = subsample.create_mask_for_mask_type(spec.type, [spec.center_fraction], [spec.acceleration])
    tries = spec.max_redraws if (spec.type == "random" and spec.max_deviation > 0) else 1
    for k in range(tries):
        used = seed + k
        mask, num_low = func((1, width, 1), seed=used)
        mask = mask.numpy().reshape(-1).astype(bool)
        if tries == 1 or abs(realised_acceleration(mask) - spec.acceleration) <= spec.max_deviation:
            return mask, int(num_low), used
    raise RuntimeError(
        f"no random mask with acceleration within {spec.acceleration} +- {spec.max_deviation} "
        f"for width {width} after {tries} draws; widen max_deviation"
    )


def file_mask(spec: MaskSpec, mask_name: str, stem: str, width: int, study_seed: int) -> tuple[np.ndarray, int, int]:
    """The mask of one file: seeded by (study seed, mask name, file stem)."""
    return make_mask(spec, width, stable_seed(study_seed, mask_name, stem))


def centred_sampled_width(mask: np.ndarray) -> int:
    """Width of the largest fully sampled block of columns centred on W // 2 (the calibration region)."""
    w = mask.size
    c = w // 2
    n = 0
    while True:
        cand = n + 1
        lo = c - cand // 2
        hi = lo + cand
        if lo < 0 or hi > w or not mask[lo:hi].all():
            return n
        n = cand
