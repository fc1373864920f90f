"""Image-quality metrics with the fastMRI conventions, the one place every experiment scores from.

Conventions (fastMRI leaderboard and the study):
    * the reconstruction's magnitude is taken and centre-cropped to the reference's size;
    * SSIM: 7x7 uniform window, K1 0.01, K2 0.03 (scikit-image defaults, as ``fastmri.evaluate.ssim``),
      data range = the maximum of the reference *volume* (the file's ``max`` attribute), not of the slice;
    * PSNR with the same data range; NMSE = ||x - ref||^2 / ||ref||^2.
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


def slice_metrics(reference: np.ndarray, recon: np.ndarray, maxval: float) -> dict[str, float]:
    """SSIM, PSNR and NMSE of one slice. reference [h, w] magnitude; recon [H >= h, W >= w]."""
    from fastmri import evaluate  # here: it imports scipy.stats (~1 s), which jobs that only crop never need

    reference = np.asarray(reference, dtype=np.float64)
    if reference.ndim != 2:
        raise ValueError(f"reference must be one 2-D slice, got shape {reference.shape}")
    if not np.isfinite(maxval) or maxval <= 0:
        raise ValueError(f"data range (volume max) must be a positive number, got {maxval}")
    pred = magnitude_crop(recon, reference.shape)
    if not np.all(np.isfinite(pred)):
        raise ValueError("reconstruction contains NaN or infinite values")
    return {
        "ssim": np.asarray(evaluate.ssim(reference[None], pred[None], maxval=maxval)).item(),
        "psnr": float(evaluate.psnr(reference, pred, maxval=maxval)),
        "nmse": float(evaluate.nmse(reference, pred)),
    }
