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


class FusedWavelet:
    """The same transform as :class:`WaveletTransform` with fewer, larger operations, for the solver's proximal
    step: images as real planes [..., 2, H, W] (real and imaginary parts), and per level one product with the
    stacked (low; high) matrices of the height and one with those of the width, so a level's four bands come out
    as one block [..., 2, 2h, 2w] (quadrants: approximation, then the detail bands hl, lh, hh as
    ``WaveletTransform.forward`` orders them: rows high / columns low, rows low / columns high, both high). The
    synthesis is the adjoint, two products per level. Sums then run in another order than the band-by-band
    transform: equal to it up to float rounding (tests/test_l1wavelet.py)."""

    def __init__(self, wavelet: WaveletTransform):
        self.levels = wavelet.levels
        self._levels = [(torch.cat([low_h, high_h]), torch.cat([low_w, high_w]).T.contiguous())
                        for low_h, high_h, low_w, high_w in wavelet._matrices]
        self._cache: dict = {}

    def on(self, like: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]]:
        """Per level, fine to coarse: (rows, rows^T, columns^T, columns) on ``like``'s device and dtype."""
        key = (like.device, like.dtype)
        if key not in self._cache:
            self._cache[key] = [(h.to(like), h.T.contiguous().to(like), wt.to(like), wt.T.contiguous().to(like))
                                for h, wt in self._levels]
        return self._cache[key]

    def shrink(self, a: torch.Tensor, t: torch.Tensor | float, penalize_approximation: bool) -> torch.Tensor:
        """W^H soft(W a, t) for real planes a [..., 2, H, W] (:func:`shrink_planes`)."""
        return shrink_planes(self.on(a), a, t, penalize_approximation)


def shrink_planes(levels: list, a: torch.Tensor, t: torch.Tensor | float, penalize_approximation: bool) -> torch.Tensor:
    """Analysis, soft thresholding of the detail bands (of every band with ``penalize_approximation``), synthesis,
    with ``FusedWavelet.on``'s matrices (a plain function of tensors, what ``torch.compile`` takes best). Per level
    the whole block is thresholded; its approximation quadrant is then replaced by the coarser levels' result, so
    only the coarsest one counts."""
    blocks = []
    for rows, _, cols_t, _ in levels:
        block = (rows @ a) @ cols_t
        blocks.append(block)
        a = block[..., : block.shape[-2] // 2, : block.shape[-1] // 2]
    if penalize_approximation:
        a = soft_threshold_planes(a, t)
    for (_, rows_t, _, cols), block in zip(reversed(levels), reversed(blocks)):
        block = soft_threshold_planes(block, t)
        h, w = block.shape[-2] // 2, block.shape[-1] // 2
        block = torch.cat([torch.cat([a, block[..., :h, w:]], dim=-1), block[..., h:, :]], dim=-2)
        a = rows_t @ (block @ cols)
    return a


def soft_threshold_planes(a: torch.Tensor, t: torch.Tensor | float) -> torch.Tensor:
    """:func:`soft_threshold` of complex values held as real planes [..., 2, h, w]; t broadcasts over [..., h, w].
    The magnitude's square is clamped at the smallest normal float, so its gradient is 0 (not NaN) at 0."""
    tiny = torch.finfo(a.dtype).tiny
    mag = a.square().sum(dim=-3, keepdim=True).clamp(min=tiny).sqrt()
    t = t.unsqueeze(-3) if isinstance(t, torch.Tensor) and t.dim() >= 2 else t
    return a * torch.clamp(1 - t / mag, min=0)


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


def l1_wavelet_fista_fused(
    y: torch.Tensor,
    op: MultiCoilOperator,
    lam: float | torch.Tensor,
    iterations: int,
    wavelet: WaveletTransform,
    step: float | torch.Tensor,
    penalize_approximation: bool = False,
    random_shifts: bool = False,
    seed: int = 0,
    compiled: bool = False,
) -> torch.Tensor:
    """:func:`l1_wavelet_fista` (same arguments, same iterates up to float rounding) with its proximal step as
    :class:`FusedWavelet`: between data steps the image stays in real planes [..., 2, H, W], the maps' support
    is applied there, and a level of the transform is two matrix products instead of six (ten for the
    synthesis), so an iteration launches about a third of the operations, forward and backward.

    ``compiled``: the proximal step (real-valued matrix products and element-wise operations, the bulk of an
    iteration's operations) runs through ``torch.compile``, which fuses its element-wise operations (on CUDA
    with the default mode: Triton kernels; on CPU: C++ kernels, which needs a C++ compiler). The data step (FFTs
    of complex coil images) stays eager.
    """
    levels = FusedWavelet(wavelet).on(y.real)
    shrink = _compiled_shrink() if compiled else shrink_planes
    aty = op.adjoint(y)
    x = torch.zeros(op.image_shape(y), dtype=y.dtype, device=y.device)
    z, t = x, 1.0
    support = op.support()
    support = None if support is None else support.unsqueeze(-3)
    thresh = step * lam
    if not isinstance(thresh, torch.Tensor):
        thresh = torch.tensor(thresh, dtype=y.real.dtype, device=y.device)
    offsets = torch.Generator().manual_seed(int(seed)) if random_shifts else None
    for _ in range(iterations):
        x_old = x
        v = z - step * (_normal(op, z) - aty)
        shift = (0, 0)
        if offsets is not None:
            shift = tuple(int(s) for s in torch.randint(0, 2 ** wavelet.levels, (2,), generator=offsets))
            v = torch.roll(v, shifts=shift, dims=(-2, -1))
        a = shrink(levels, torch.view_as_real(v).movedim(-1, -3), thresh, penalize_approximation)
        if offsets is not None:
            a = torch.roll(a, shifts=(-shift[0], -shift[1]), dims=(-2, -1))
        if support is not None:
            a = support * a
        x = torch.view_as_complex(a.movedim(-3, -1).contiguous())
        t_new = (1 + math.sqrt(1 + 4 * t * t)) / 2
        z = x + ((t - 1) / t_new) * (x - x_old)
        t = t_new
    return x


class _Normal(torch.autograd.Function):
    """A^H A z with its own backward: A^H A is Hermitian, so the gradient it passes back is A^H A applied to the
    incoming gradient, one operator application instead of autograd's replay of each FFT and product."""

    @staticmethod
    def forward(ctx, z, op):
        ctx.op = op
        return op.normal(z)

    @staticmethod
    def backward(ctx, grad):
        return ctx.op.normal(grad), None


def _normal(op: MultiCoilOperator, z: torch.Tensor) -> torch.Tensor:
    """A^H A z; through :class:`_Normal` when z needs a gradient and the maps do not (the attacks' case)."""
    if z.requires_grad and torch.is_grad_enabled() and not (op.sens is not None and op.sens.requires_grad):
        return _Normal.apply(z, op)
    return op.normal(z)


_COMPILED: dict = {}


def _compiled_shrink():
    """:func:`shrink_planes` through ``torch.compile``, made once per process; torch compiles it again for new
    input shapes (after the first such change with dynamic shapes)."""
    if "shrink" not in _COMPILED:
        _COMPILED["shrink"] = torch.compile(shrink_planes)
    return _COMPILED["shrink"]


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
    if spec.implementation != "reference":
        return l1_wavelet_fista_fused(y, op, lam, spec.iterations, wavelet, step, spec.penalize_approximation,
                                      random_shifts=spec.random_shifts, compiled=spec.implementation == "compiled")
    return l1_wavelet_fista(y, op, lam, spec.iterations, wavelet, step, spec.penalize_approximation,
                            random_shifts=spec.random_shifts)
