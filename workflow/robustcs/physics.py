"""The multi-coil MRI forward model, written once and shared by every method, attack and TTT loss.

    A = M · F · S

S multiplies an image by each coil's sensitivity map, F is the centred orthonormal 2-D FFT of
fastMRI (``fastmri.fft2c``), M keeps the sampled phase-encoding columns. Everything works on torch
complex tensors and is differentiable. Shapes follow fastMRI: coils before the image axes,

    image x      [..., H, W]        complex
    maps S       [..., C, H, W]     complex   (None: x already holds per-coil images [..., C, H, W])
    mask M       broadcastable to [..., C, H, W], e.g. [W] or [B, 1, 1, W]; 0/1 (bool or real)
    k-space y    [..., C, H, W]     complex
"""

from __future__ import annotations

import fastmri
import numpy as np
import torch


def as_complex_tensor(array, device=None) -> torch.Tensor:
    """A numpy/torch complex array as a complex64 torch tensor."""
    t = torch.as_tensor(np.asarray(array) if not torch.is_tensor(array) else array)
    if not t.is_complex():
        t = t.to(torch.float32)
    return t.to(device=device, dtype=torch.complex64)


def fft2c(x: torch.Tensor) -> torch.Tensor:
    """Centred orthonormal 2-D FFT over the last two axes of a complex tensor (fastMRI's ``fft2c``)."""
    return torch.view_as_complex(fastmri.fft2c(torch.view_as_real(x)).contiguous())


def ifft2c(k: torch.Tensor) -> torch.Tensor:
    """Centred orthonormal 2-D inverse FFT over the last two axes (fastMRI's ``ifft2c``)."""
    return torch.view_as_complex(fastmri.ifft2c(torch.view_as_real(k)).contiguous())


def rss(coil_images: torch.Tensor, dim: int = -3) -> torch.Tensor:
    """Root sum of squares over the coil axis."""
    return torch.sqrt((coil_images.abs() ** 2).sum(dim))


def mask_tensor(mask, device=None) -> torch.Tensor:
    """A 0/1 mask as a float32 tensor (multiplying by it keeps everything differentiable)."""
    m = torch.as_tensor(np.asarray(mask) if not torch.is_tensor(mask) else mask)
    return m.to(device=device, dtype=torch.float32)


class MultiCoilOperator:
    """A = M·F·S and its adjoint A^H = S^H·F^H·M.

    ``sens=None`` gives the coil-image operator M·F used by methods that output one image per coil
    (the ConvDecoder's ``coils`` variant): its input is then [..., C, H, W].
    """

    def __init__(self, mask, sens: torch.Tensor | None = None):
        self.sens = sens
        self.mask = mask_tensor(mask, device=sens.device if sens is not None else None)

    def expand(self, x: torch.Tensor) -> torch.Tensor:
        """S: image [..., H, W] -> coil images [..., C, H, W] (identity without maps)."""
        return x if self.sens is None else self.sens * x.unsqueeze(-3)

    def combine(self, coil_images: torch.Tensor) -> torch.Tensor:
        """S^H: coil images -> image (identity without maps)."""
        return coil_images if self.sens is None else (self.sens.conj() * coil_images).sum(-3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mask * fft2c(self.expand(x))

    def support(self) -> torch.Tensor | None:
        """1 where some coil sees the pixel (Σ_c |S_c|² > 0), 0 where the maps are cropped; None without maps.
        Shape [..., H, W] (float): images outside it are invisible to A, so a solver keeps them at 0."""
        if self.sens is None:
            return None
        return ((self.sens.abs() ** 2).sum(-3) > 0).to(self.sens.real.dtype)

    def eigenvalue_bound(self) -> torch.Tensor | float:
        """L = max_pixel Σ_c |S_c|² >= the largest eigenvalue of A^H A (||M F S x|| <= ||S x||; tight for ESPIRiT
        maps and a mask holding the k-space centre). Detached, shape [..., 1, 1] to broadcast over images (one
        bound per batch item for batched maps); 1.0 without maps, where A^H A = F^H M F <= I."""
        if self.sens is None:
            return 1.0
        return (self.sens.detach().abs() ** 2).sum(-3).amax(dim=(-2, -1), keepdim=True)

    def data_consistent(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Coil images F^H (M y + (1 - M) F S x): the model's k-space S·x with the measured samples put back
        ([..., C, H, W] complex). Their RSS is the image every method is scored on, the same kind of image
        as the reference (RSS of the fully sampled coil images): a fully sampled y returns exactly F^H y."""
        return data_consistent_coils(self.expand(x), y, self.mask)

    __call__ = forward

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        return self.combine(ifft2c(self.mask * y))

    def normal(self, x: torch.Tensor) -> torch.Tensor:
        """A^H A x, the data term's Hessian (equal to ``adjoint(forward(x))``, tested).

        The centring shifts P (fftshift = ifftshift, P² = I, for even sizes) are moved out of the coil loop:
        A^H A x = P Σ_c conj(P S_c) · F^H[(P M) · F((P S_c) · P x)], so the iterative solvers shift one image per
        step instead of four times the coil data. A mask of phase-encoding columns (constant along the rows, the
        Cartesian case) needs no transform along the rows at all, since F_rows^H F_rows = I: the FFTs then run
        along the columns' axis only (half the work).
        """
        h, w = x.shape[-2:]
        columns = self.mask.dim() < 2 or self.mask.shape[-2] == 1
        dims = (-1,) if columns else (-2, -1)
        if w % 2 or (h % 2 and not columns):
            return self.adjoint(self.forward(x))
        sens, mask, sens_conj = self._shifted(dims)
        coil = torch.fft.fftshift(x, dim=dims)
        coil = coil if sens is None else sens * coil.unsqueeze(-3)
        if columns:
            coil = torch.fft.ifft(mask * torch.fft.fft(coil, dim=-1, norm="ortho"), dim=-1, norm="ortho")
        else:
            coil = torch.fft.ifft2(mask * torch.fft.fft2(coil, norm="ortho"), norm="ortho")
        out = coil if sens is None else (sens_conj * coil).sum(-3)
        return torch.fft.fftshift(out, dim=dims)

    def _shifted(self, dims: tuple[int, ...]):
        """(maps, mask, conjugate maps) with the centring shift P along ``dims`` applied, computed once per
        operator; the conjugate is materialised (a lazy ``conj()`` view costs a copy in every product)."""
        cache = self.__dict__.setdefault("_shift_cache", {})
        if dims not in cache:
            sens = None if self.sens is None else torch.fft.fftshift(self.sens, dim=dims)
            mask = self.mask
            mask_dims = [d for d in dims if mask.dim() >= -d and mask.shape[d] > 1]
            conj = None if sens is None else sens.conj().resolve_conj()
            cache[dims] = (sens, torch.fft.fftshift(mask, dim=mask_dims) if mask_dims else mask, conj)
        return cache[dims]

    def image_shape(self, y: torch.Tensor) -> torch.Size:
        """Shape of the operator's input for measurements shaped like ``y``."""
        return y.shape if self.sens is None else y.shape[:-3] + y.shape[-2:]

    @torch.no_grad()
    def max_eigenvalue(self, shape, iterations: int = 30, seed: int = 0) -> float:
        """Largest eigenvalue of A^H A by the power method (Lipschitz constant of the data term)."""
        g = torch.Generator().manual_seed(seed)
        x = torch.randn(tuple(shape), dtype=torch.complex64, generator=g).to(self.mask.device)
        lam = 0.0
        for _ in range(iterations):
            y = self.normal(x)
            lam = torch.linalg.vector_norm(y).item()
            if lam == 0:
                return 0.0
            x = y / lam
        return lam


def data_consistent_coils(coil_images: torch.Tensor, kspace: torch.Tensor, mask) -> torch.Tensor:
    """F^H (M y + (1 - M) F c) for coil images c [..., C, H, W], measurements y and a 0/1 mask broadcastable
    to them (columns [..., 1, 1, W] or points [..., 1, H, W]); y's entries outside the mask are ignored."""
    return ifft2c(replace_measured(fft2c(coil_images), kspace, mask))


def replace_measured(predicted: torch.Tensor, kspace: torch.Tensor, mask) -> torch.Tensor:
    """M y + (1 - M) k: predicted k-space k with the measured samples of y put back (hard data consistency)."""
    m = mask_tensor(mask, kspace.device)
    return m * kspace + (1 - m) * predicted


def zero_filled(kspace: torch.Tensor, mask) -> torch.Tensor:
    """Zero-filled coil images F^H M y: [..., C, H, W] complex."""
    return ifft2c(mask_tensor(mask, kspace.device) * kspace)
