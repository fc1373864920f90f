"""ℓ1-wavelet sparse recovery, the study's "traditional" method with one tuning parameter λ.

Solves   min_x  1/2 ||A x - y||_2^2 + λ ||W x||_1
with A = M·F·S (:mod:`robustcs.physics`) and W an orthogonal Daubechies wavelet transform, by FISTA
with a fixed number of iterations and step 1/L, L = the largest eigenvalue of A^H A (by default its
upper bound max_pixel Σ_c|S_c|², tight for ESPIRiT maps; optionally the power method as sigpy).
Every step is a torch operation, so the reconstruction is differentiable in y (the adversarial
attacks back-propagate through the unrolled iterations).

The wavelet transform is ``ptwt`` (PyTorch Wavelet Toolbox), multi-level 2-D with zero padding
("zero" mode), coefficient for coefficient the transform of PyWavelets that sigpy's
``linop.Wavelet`` uses; complex images are transformed as real and imaginary parts. With zero
padding W is an isometry (W^H W = I) but not square; the proximal step W^H soft(W v) is then the
same approximation sigpy's ``L1WaveletRecon`` makes.

Deviation from the study's notebooks (documented in the README): they ran SGD on the same objective
with λ so small (1e-11 to 1e-12) and so few steps that the result is an early-stopped least-squares
fit. Here the ℓ1 term is active and only the detail bands are penalised by default (the coarsest
approximation band carries the image's mean intensity, as in BART's ``pics -l1``);
``penalize_approximation=True`` penalises all coefficients, as sigpy does.

λ in the config is relative: the absolute weight is λ · max|A^H y|, so one λ grid serves data of
any scale (fastMRI k-space is ~1e-4, the demo's ~1e-3).
"""

from __future__ import annotations

import math

import ptwt
import pywt
import torch

from .physics import MultiCoilOperator
from .specs import L1Spec  # noqa: F401 (re-exported)


def _analysis_matrices(n: int, wavelet: pywt.Wavelet) -> tuple[torch.Tensor, torch.Tensor]:
    """(low-pass, high-pass) matrices [m, n] of one level of ptwt's 1-D DWT with zero padding on n samples:
    ptwt's own transform of the identity, so the matrices are that transform exactly."""
    low, high = ptwt.wavedec(torch.eye(n, dtype=torch.float64), wavelet, level=1, mode="zero")
    return low.T.contiguous(), high.T.contiguous()


class WaveletTransform:
    """Orthogonal multi-level 2-D DWT of complex images [..., H, W] (zero-padded borders): ptwt's ``wavedec2``
    with mode "zero", applied as products with its separable 1-D matrices (per level: rows by the low/high
    matrices of the height, columns by those of the width). On the small images of CPU runs this is several times
    faster than ptwt's strided convolutions, whose transposed form dominates the ℓ1 attacks' back-propagation;
    tests/test_l1wavelet.py checks every band against pywt's ``wavedec2`` and the inverse as its adjoint."""

    def __init__(self, shape: tuple[int, int], wavelet: str = "db4", levels: int | None = None):
        self.shape = tuple(shape)
        self.wavelet = pywt.Wavelet(wavelet)
        max_level = pywt.dwt_max_level(min(self.shape), self.wavelet.dec_len)
        self.levels = max_level if levels is None else int(levels)
        if not 1 <= self.levels:
            raise ValueError(f"wavelet levels must be >= 1 (image {self.shape}, {wavelet})")
        self._matrices = []  # per level, fine to coarse: (low_h, high_h, low_w, high_w)
        h, w = self.shape
        for _ in range(self.levels):
            (low_h, high_h), (low_w, high_w) = _analysis_matrices(h, self.wavelet), _analysis_matrices(w, self.wavelet)
            self._matrices.append((low_h, high_h, low_w, high_w))
            h, w = low_h.shape[0], low_w.shape[0]
        self._cache: dict = {}

    def _on(self, like: torch.Tensor) -> list[tuple[torch.Tensor, ...]]:
        key = (like.device, like.dtype)
        if key not in self._cache:
            self._cache[key] = [tuple(m.to(device=like.device, dtype=like.dtype) for m in level)
                                for level in self._matrices]
        return self._cache[key]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Complex coefficients: [approximation, then the detail bands (3 per level, coarse to fine)]."""
        a = torch.view_as_real(x).movedim(-1, -3)  # [..., 2, H, W]: real and imaginary parts
        details = []
        for low_h, high_h, low_w, high_w in self._on(a):
            rows_low, rows_high = low_h @ a, high_h @ a
            details.append([rows_high @ low_w.T, rows_low @ high_w.T, rows_high @ high_w.T])
            a = rows_low @ low_w.T
        flat = [a] + [band for level in reversed(details) for band in level]
        return [torch.complex(c[..., 0, :, :], c[..., 1, :, :]) for c in flat]

    def inverse(self, coeffs: list[torch.Tensor]) -> torch.Tensor:
        """Adjoint (= left inverse) of :meth:`forward`."""
        real = [torch.view_as_real(c).movedim(-1, -3) for c in coeffs]
        a = real[0]
        for i, (low_h, high_h, low_w, high_w) in enumerate(reversed(self._on(a))):
            hl, lh, hh = real[1 + 3 * i : 4 + 3 * i]
            a = low_h.T @ (a @ low_w + lh @ high_w) + high_h.T @ (hl @ low_w + hh @ high_w)
        return torch.complex(a[..., 0, :, :], a[..., 1, :, :])


def soft_threshold(c: torch.Tensor, t: float | torch.Tensor) -> torch.Tensor:
    """Complex soft thresholding c · max(0, 1 - t/|c|) (differentiable, 0 where |c| <= t)."""
    mag = c.abs()
    scale = torch.clamp(1 - t / torch.clamp(mag, min=torch.finfo(mag.dtype).tiny), min=0)
    return c * scale


def l1_wavelet_fista(
    y: torch.Tensor,
    op: MultiCoilOperator,
    lam: float | torch.Tensor,
    iterations: int,
    wavelet: WaveletTransform,
    step: float,
    penalize_approximation: bool = False,
    x0: torch.Tensor | None = None,
    random_shifts: bool = False,
    seed: int = 0,
) -> torch.Tensor:
    """FISTA for 1/2||A x - y||^2 + lam ||W x||_1 with absolute weight ``lam`` and step ``step`` (<= 1/L),
    x constrained to the maps' support (:meth:`MultiCoilOperator.support`; the proximal step is followed by
    the projection onto it, so x stays 0 where every map is cropped).

    ``random_shifts``: each iteration's wavelet step acts on the image circularly shifted by a random offset in
    [0, 2^levels) per axis and shifts back (cycle spinning, as BART's ``pics`` does by default): the blocky
    artefacts of a fixed wavelet grid average out. The offsets come from a generator seeded with ``seed``, so the
    result is deterministic and stays differentiable in y; the iteration then no longer minimises one fixed
    objective (each step uses a shifted W).

    y: [..., C, H, W] complex measurements; returns x: [..., H, W] complex.
    """
    x = torch.zeros(op.image_shape(y), dtype=y.dtype, device=y.device) if x0 is None else x0
    z, t = x, 1.0
    aty = op.adjoint(y)
    support = op.support()
    offsets = torch.Generator().manual_seed(int(seed)) if random_shifts else None
    for _ in range(iterations):
        x_old = x
        v = z - step * (op.normal(z) - aty)  # gradient of the data term: A^H (A z - y)
        shift = (0, 0)
        if offsets is not None:
            shift = tuple(int(s) for s in torch.randint(0, 2 ** wavelet.levels, (2,), generator=offsets))
            v = torch.roll(v, shifts=shift, dims=(-2, -1))
        c = wavelet.forward(v)
        start = 0 if penalize_approximation else 1
        c = c[:start] + [soft_threshold(b, step * lam) for b in c[start:]]
        x = wavelet.inverse(c)
        if offsets is not None:
            x = torch.roll(x, shifts=(-shift[0], -shift[1]), dims=(-2, -1))
        if support is not None:  # the maps' support: A cannot see outside it, the wavelet step would fill it
            x = support * x
        t_new = (1 + math.sqrt(1 + 4 * t * t)) / 2
        z = x + ((t - 1) / t_new) * (x - x_old)
        t = t_new
    return x


def data_scale(y: torch.Tensor, op: MultiCoilOperator) -> torch.Tensor:
    """max |A^H y| per image, [..., 1, 1]: the scale the config's relative λ refers to (detached); each item of a
    batch of measurements [..., C, H, W] has its own, as it would alone."""
    return op.adjoint(y).abs().amax(dim=(-2, -1), keepdim=True).detach()


def l1_wavelet_recon(y: torch.Tensor, op: MultiCoilOperator, spec: L1Spec, step: float | None = None) -> torch.Tensor:
    """The method as the workflow runs it: relative λ, step 1/L from the power method.

    y: [..., C, H, W] measured (masked) k-space; returns the complex image [..., H, W].
    """
    shape = op.image_shape(y)
    if step is None:
        if spec.power_iterations > 0:
            # on the maps' own shape: a batch of measurements through the same maps shares their L
            maps_shape = shape if op.sens is None else (*op.sens.shape[:-3], *shape[-2:])
            lipschitz = op.max_eigenvalue(maps_shape, spec.power_iterations)
            step = 1.0 / max(lipschitz, 1e-12)
        else:
            bound = torch.as_tensor(op.eigenvalue_bound())
            if bound.numel() == 1:
                step = 1.0 / max(float(bound), 1e-12)
            else:  # batched maps (a stack of slices): each item's own step [..., 1, 1], as it would have alone
                step = (1.0 / bound.double().clamp(min=1e-12)).to(device=y.device, dtype=y.real.dtype)
    wavelet = WaveletTransform(tuple(shape[-2:]), spec.wavelet, spec.levels)
    lam = spec.lam * data_scale(y, op)
    return l1_wavelet_fista(y, op, lam, spec.iterations, wavelet, step, spec.penalize_approximation,
                            random_shifts=spec.random_shifts)
