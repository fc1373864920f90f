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
per-slice numbers here average to exactly what ``fastmri.evaluate`` reports for the volume. PSNR and NMSE are
not means over slices in ``fastmri.evaluate``: it computes them over the whole volume (one MSE, one error and
reference energy). :func:`volume_psnr` and :func:`volume_nmse` give exactly these from a volume's per-slice
scores, since its slices share one size and one data range (the volume max); the tables report them
(``robustcs.tables.volume_scores``) and per-slice numbers only where a per-slice quantity is meant. No
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


def volume_psnr(psnr) -> float:
    """The PSNR of a whole volume (``fastmri.evaluate.psnr``: one MSE over every voxel) from its slices' PSNR.
    Its slices share one size and one data range (the volume max), so the volume's MSE is the mean of the slices'
    MSE = maxval² · 10^(−PSNR/10), and maxval cancels: −10·log10(mean over slices of 10^(−PSNR/10))."""
    psnr = np.asarray(psnr, dtype=np.float64)
    if psnr.ndim != 1 or psnr.size == 0 or np.isnan(psnr).any():
        raise ValueError(f"volume PSNR needs one or more slice PSNRs, got {psnr!r}")
    with np.errstate(divide="ignore"):
        return float(-10 * np.log10(np.mean(10 ** (-psnr / 10))))


def volume_nmse(psnr, nmse) -> float:
    """The NMSE of a whole volume (``fastmri.evaluate.nmse``: ‖error‖² / ‖reference‖² over every voxel) from
    its slices' PSNR and NMSE. A slice's squared error is proportional to 10^(−PSNR/10) (one size and data range
    per volume) and its reference energy to that divided by its NMSE, so the volume's NMSE is
    Σ 10^(−PSNR/10) / Σ (10^(−PSNR/10) / NMSE). A slice reconstructed exactly (NMSE 0) adds no error, and its
    reference energy, which its scores cannot give, is taken as the mean of the volume's other slices'."""
    psnr, nmse = np.asarray(psnr, dtype=np.float64), np.asarray(nmse, dtype=np.float64)
    if psnr.shape != nmse.shape or psnr.ndim != 1 or psnr.size == 0 or np.isnan(psnr).any() or np.isnan(nmse).any():
        raise ValueError(f"volume NMSE needs one PSNR and one NMSE per slice, got {psnr!r} and {nmse!r}")
    if (nmse < 0).any():
        raise ValueError(f"NMSE must be >= 0, got {nmse!r}")
    error = 10 ** (-psnr / 10)
    exact = nmse == 0
    if exact.all():
        return 0.0
    energy = error[~exact] / nmse[~exact]
    return float(error.sum() / (energy.sum() + exact.sum() * energy.mean()))
