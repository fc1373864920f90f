"""Image-quality metrics with the fastMRI conventions, the one place every experiment scores from.

Conventions (fastMRI leaderboard and the study):
    * the reconstruction's magnitude is taken and centre-cropped to the reference's size;
    * SSIM: 7x7 uniform window, K1 0.01, K2 0.03 (scikit-image defaults, as ``fastmri.evaluate.ssim``),
      data range = the maximum of the reference *volume* (the file's ``max`` attribute), not of the slice;
    * PSNR with the same data range; NMSE = ||x - ref||^2 / ||ref||^2.
SSIM is computed with fastMRI's torch implementation (``fastmri.losses.SSIMLoss``, the same formula and
window as scikit-image, valid region = scikit-image's cropped border) in float64: it equals
``fastmri.evaluate.ssim`` to ~1e-15 (tests/test_metrics.py holds it to 1e-12) and spares each scoring job
the ~1.2 s import of ``fastmri.evaluate`` (pandas, scipy.stats). PSNR and NMSE are the formulas
``fastmri.evaluate`` uses.
A volume's fastMRI SSIM is the mean of its slices' SSIM with the volume max as data range, so the
per-slice numbers here average to exactly what ``fastmri.evaluate`` reports for the volume. No
rescaling of one image to the other's mean/std is done (the study's notebooks do that; their numbers
are therefore not comparable with these).
"""

from __future__ import annotations

import numpy as np

from .fastmri_io import center_crop

METRICS = ("ssim", "psnr", "nmse")


def magnitude_crop(recon: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """|recon| centre-cropped to ``shape`` (recon [..., H, W], real or complex) as float64."""
    recon = np.asarray(recon)
    if recon.shape[-2] < shape[0] or recon.shape[-1] < shape[1]:
        raise ValueError(f"reconstruction of shape {recon.shape[-2:]} is smaller than the reference {tuple(shape)}")
    return center_crop(np.abs(recon), tuple(shape)).astype(np.float64)


_SSIM = None  # the float64 fastmri.losses.SSIMLoss, built on first use (torch is imported only by scoring jobs)
SSIM_WINDOW = 7


def ssim(reference: np.ndarray, pred: np.ndarray, maxval: float) -> float:
    """fastMRI SSIM of one 2-D slice pair (float64, data range ``maxval``), as ``fastmri.evaluate.ssim``."""
    global _SSIM
    import torch
    from fastmri.losses import SSIMLoss

    if min(reference.shape) < SSIM_WINDOW:
        raise ValueError(f"SSIM needs slices of at least {SSIM_WINDOW}x{SSIM_WINDOW} pixels, got {reference.shape}")
    if _SSIM is None:
        _SSIM = SSIMLoss(win_size=SSIM_WINDOW).double()
        _SSIM.w.fill_(1.0 / SSIM_WINDOW**2)  # the window built in float32 is 1/49 to 1e-8 only: make it exact
    x = torch.from_numpy(np.ascontiguousarray(reference, dtype=np.float64))[None, None]
    y = torch.from_numpy(np.ascontiguousarray(pred, dtype=np.float64))[None, None]
    with torch.no_grad():
        one_minus = _SSIM(x, y, torch.tensor([float(maxval)], dtype=torch.float64), reduced=False)
    return float(1.0 - one_minus.mean(dtype=torch.float64))


def slice_metrics(reference: np.ndarray, recon: np.ndarray, maxval: float) -> dict[str, float]:
    """SSIM, PSNR and NMSE of one slice. reference [h, w] magnitude; recon [H >= h, W >= w]."""
    reference = np.asarray(reference, dtype=np.float64)
    if reference.ndim != 2:
        raise ValueError(f"reference must be one 2-D slice, got shape {reference.shape}")
    if not np.isfinite(maxval) or maxval <= 0:
        raise ValueError(f"data range (volume max) must be a positive number, got {maxval}")
    pred = magnitude_crop(recon, reference.shape)
    if not np.all(np.isfinite(pred)):
        raise ValueError("reconstruction contains NaN or infinite values")
    err = reference - pred
    mse = np.mean(err**2, dtype=np.float64)
    with np.errstate(divide="ignore"):
        psnr = 10 * np.log10(float(maxval) ** 2 / mse)
    return {
        "ssim": ssim(reference, pred, maxval),
        "psnr": float(psnr),
        "nmse": float(np.linalg.norm(err) ** 2 / np.linalg.norm(reference) ** 2),
    }
