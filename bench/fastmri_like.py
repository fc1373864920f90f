"""Shared input of the benchmarks: fastMRI-sized demo slices and the study's 4x knee mask."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "workflow"))

from robustcs.demo import DemoSpec, simulate_volume  # noqa: E402
from robustcs.fastmri_io import fft2c_np, ifft2c_np  # noqa: E402
from robustcs.masks import MaskSpec, file_mask  # noqa: E402


def add_arguments(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--slices", type=int, default=3)
    ap.add_argument("--coils", type=int, default=15)
    ap.add_argument("--size", type=int, default=320)
    ap.add_argument("--width", type=int, default=368, help="phase-encoding columns of the k-space grid")
    ap.add_argument("--oversampling", type=int, default=2)
    ap.add_argument("--noise", type=float, default=0.01, help="receiver noise, relative to the image maximum")


def fastmri_like(args) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(kspace [S, C, H, W], target [S, size, size], 4x random mask [W] with centre fraction 0.08)."""
    demo = DemoSpec(size=args.size, coils=args.coils, noise=args.noise, readout_oversampling=args.oversampling,
                    slices_per_volume=args.slices)
    kspace, target, _ = simulate_volume(demo, seed=2026)
    if args.width > kspace.shape[-1]:
        # phase-encoding oversampling as in fastMRI's 368-column grids: a wider FOV around the object
        img = ifft2c_np(kspace)
        extra = args.width - img.shape[-1]
        img = np.pad(img, ((0, 0), (0, 0), (0, 0), (extra // 2, extra - extra // 2)))
        kspace = fft2c_np(img).astype(np.complex64)
    mask, _, _ = file_mask(MaskSpec("random", 4, 0.08, 0.03), "bench", "slice", kspace.shape[-1], 0)
    return kspace, target, mask
