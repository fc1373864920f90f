"""ESPIRiT coil sensitivities with ``sigpy.mri.app.EspiritCalib``, made fast by crop-and-interpolate.

The study estimates one set of ESPIRiT maps per slice from the *undersampled* k-space, using its
fully sampled centre as calibration data. ESPIRiT's per-pixel eigen-decomposition dominates the
cost, and its result is smooth: the calibration kernels span only ``kernel_width`` k-space samples,
so the image-domain operator whose leading eigenvector gives the maps is a trigonometric polynomial
of low degree. We therefore run sigpy's EspiritCalib on the centre of k-space cropped to a grid
``lowres_factor`` times coarser (same field of view, same calibration region, same kernels), then
interpolate the maps and the eigenvalue map to the full grid with cubic splines and apply the
eigenvalue crop there. ``lowres_factor: 1`` runs sigpy at full resolution.

The calibration region is the square ``min(calib_width, sampled centre width)``: sigpy takes a
square region, and only fully sampled columns may enter it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import sigpy as sp
import sigpy.mri as mr
from scipy import ndimage

from .masks import centred_sampled_width


@dataclass(frozen=True)
class EspiritSpec:
    """config sensitivities.espirit; its defaults are config/schema.yaml's (tests/test_schema_specs.py keeps them
    equal), here for code that builds a spec directly."""

    calib_width: int = 24
    kernel_width: int = 6
    threshold: float = 0.02
    crop: float = 0.95
    max_iter: int = 100
    lowres_factor: int = 4


def _even_at_least(n: float, minimum: int) -> int:
    m = int(np.ceil(n))
    m += m % 2
    return max(m, minimum + minimum % 2)


def _upsample(x: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Cubic-spline interpolation of [..., h, w] onto [..., H, W] covering the same periodic FOV.

    With the centred FFT convention, full-grid index j sits at coarse coordinate j * h / H.
    """
    h, w = x.shape[-2:]
    H, W = shape
    yy, xx = np.meshgrid(np.arange(H) * h / H, np.arange(W) * w / W, indexing="ij")
    coords = np.stack([yy, xx])
    flat = x.reshape(-1, h, w)
    out = np.empty((flat.shape[0], H, W), dtype=x.dtype)
    for i, plane in enumerate(flat):
        if np.iscomplexobj(plane):
            out[i] = ndimage.map_coordinates(plane.real, coords, order=3, mode="grid-wrap") + 1j * (
                ndimage.map_coordinates(plane.imag, coords, order=3, mode="grid-wrap")
            )
        else:
            out[i] = ndimage.map_coordinates(plane, coords, order=3, mode="grid-wrap")
    return out.reshape(*x.shape[:-2], H, W)


def _align_phase(maps: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """Remove the per-pixel phase ambiguity of the eigenvectors smoothly.

    sigpy references the phase to coil 0, which jumps where coil 0 is weak. We reference it to the
    dominant virtual coil instead (first principal component over the trusted pixels), whose
    magnitude stays large, so that the maps are smooth and can be interpolated.
    """
    c = maps.shape[0]
    flat = maps.reshape(c, -1)[:, weight.reshape(-1)]
    if flat.shape[1] == 0:
        return maps
    u = np.linalg.svd(flat, full_matrices=False)[0][:, 0]
    ref = np.tensordot(u.conj(), maps, axes=1)
    mag = np.abs(ref)
    phase = np.where(mag > 0, ref.conj() / np.maximum(mag, 1e-30), 1.0)
    return maps * phase[None]


def espirit_maps(kspace: np.ndarray, mask: np.ndarray | None, spec: EspiritSpec) -> np.ndarray:
    """One set of ESPIRiT maps [C, H, W] (complex64) for one slice of k-space [C, H, W].

    ``mask`` is the [W] column mask; the calibration region is restricted to its fully sampled
    centre. ``mask=None`` means fully sampled k-space.
    """
    if kspace.ndim != 3:
        raise ValueError(f"kspace must be [coils, H, W], got {kspace.shape}")
    c, H, W = kspace.shape
    if mask is not None:
        if mask.shape != (W,):
            raise ValueError(f"mask has shape {mask.shape}, expected ({W},)")
        kspace = kspace * mask[None, None, :]
        sampled = centred_sampled_width(mask)
    else:
        sampled = W
    calib = min(spec.calib_width, sampled, H)
    if calib < spec.kernel_width + 2:
        raise ValueError(
            f"only {sampled} fully sampled centre columns: too few for ESPIRiT with kernel width "
            f"{spec.kernel_width}; use a larger centre fraction or a smaller kernel"
        )
    f = max(int(spec.lowres_factor), 1)
    h, w = _even_at_least(H / f, calib), _even_at_least(W / f, calib)
    low = sp.resize(kspace, (c, h, w)) if (h, w) != (H, W) else kspace
    maps, eig = mr.app.EspiritCalib(
        low.astype(np.complex64),
        calib_width=calib,
        thresh=spec.threshold,
        kernel_width=spec.kernel_width,
        crop=0.0,
        max_iter=spec.max_iter,
        output_eigenvalue=True,
        show_pbar=False,
    ).run()
    eig = np.real(eig).reshape(h, w).astype(np.float32)
    maps = _align_phase(np.asarray(maps), eig > spec.crop)
    if (h, w) != (H, W):
        maps = _upsample(maps, (H, W))
        eig = _upsample(eig, (H, W))
        norm = np.sqrt(np.sum(np.abs(maps) ** 2, axis=0, keepdims=True))
        maps = maps / np.maximum(norm, 1e-12)
    maps = maps * (eig > spec.crop)[None]
    return maps.astype(np.complex64)


def map_support(maps: np.ndarray) -> np.ndarray:
    """[H, W] boolean: pixels where a map set [C, H, W] survived the eigenvalue crop."""
    return np.abs(maps).sum(0) > 0


def map_agreement(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-pixel |<a, b>| / (|a| |b|) over coils: 1 where two map sets agree up to phase."""
    num = np.abs(np.sum(a * b.conj(), axis=0))
    den = np.sqrt(np.sum(np.abs(a) ** 2, axis=0) * np.sum(np.abs(b) ** 2, axis=0))
    return np.where(den > 0, num / np.maximum(den, 1e-30), 0.0)
