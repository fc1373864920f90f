"""CG-SENSE with Tikhonov regularisation: a linear reconstruction with one tuning parameter λ.

Solves   min_x  ||A x - y||_2^2 + λ_abs ||x||_2^2
with A = M·F·S (:mod:`robustcs.physics`), i.e. the normal equations

    (A^H A + λ_abs I) x = A^H y,

by the conjugate gradient method from x0 = 0 with a fixed number of iterations (no stopping test), so
every step is a torch operation and the reconstruction is differentiable in y (the adversarial attacks
back-propagate through the unrolled iterations). It is sigpy's ``mri.app.SenseRecon`` (objective
1/2||A x - y||² + λ/2||x||², the same normal equations, sigpy's ``lamda`` = λ_abs) iteration for
iteration: the same CG recursion, the same centred orthonormal FFT.

λ convention: λ in the config is relative to the scale of A^H A,

    λ_abs = λ · L,   L = max_pixel Σ_c |S_c|²   (1 without maps),

the upper bound of A^H A's largest eigenvalue that :mod:`robustcs.l1wavelet` uses for its step
(||M F S x|| <= ||S x||; tight for ESPIRiT-like maps and a mask holding the k-space centre). The
solution is linear in y, so unlike the ℓ1 penalty the Tikhonov weight needs no data-scale factor
(l1wavelet's max|A^H y|): scaling y scales x and leaves the balance of the two terms unchanged. Scaling
the maps by s scales A^H A and L by s², so relative λ is invariant to the scale of both the k-space and
the maps, and one λ grid serves every dataset. For unit-norm maps (Σ_c|S_c|² = 1 in the support) L = 1
and λ_abs = λ.

x stays in the maps' support (:meth:`MultiCoilOperator.support`) without a projection: from x0 = 0 the
residuals and search directions are combinations of A^H y and A^H A p, which are exactly 0 where every
map is 0; the result is multiplied by the support anyway, as :func:`robustcs.l1wavelet.l1_wavelet_fista`
does.

Exact zeros (y = 0, a converged fully sampled λ = 0 solve: residual or curvature p^H (A^H A + λ_abs I) p
exactly 0, or not positive from rounding) freeze the iterate, as sigpy's CG stops there; the divisions are
guarded with ``torch.where`` on a safe denominator, so neither the output nor its gradient becomes NaN.

Leading batch dimensions are allowed (y [..., C, H, W]); each batch item is its own CG system with its
own step sizes (inner products over the image axes) and its own L when the maps are batched too.
"""

from __future__ import annotations


import torch

from .physics import MultiCoilOperator
from .specs import CGSenseSpec  # noqa: F401 (re-exported)


def eigenvalue_bound(op: MultiCoilOperator) -> torch.Tensor | float:
    """The operator's bound L of the largest eigenvalue of A^H A (:meth:`MultiCoilOperator.eigenvalue_bound`)."""
    return op.eigenvalue_bound()


def absolute_lambda(spec: CGSenseSpec, op: MultiCoilOperator) -> torch.Tensor | float:
    """λ_abs = spec.lam · L, the weight of ||x||² in the objective (sigpy's ``lamda``)."""
    return spec.lam * eigenvalue_bound(op)


def _inner(a: torch.Tensor, b: torch.Tensor, dims: tuple[int, ...]) -> torch.Tensor:
    """Re <a, b> over the system's axes, kept as size-1 axes to broadcast over the images."""
    return (a.conj() * b).real.sum(dim=dims, keepdim=True)


def _safe_divide(num: torch.Tensor, den: torch.Tensor, ok: torch.Tensor) -> torch.Tensor:
    """num / den where ``ok``, 0 elsewhere, with finite gradients everywhere (the double-where trick)."""
    return torch.where(ok, num / torch.where(ok, den, torch.ones_like(den)), torch.zeros_like(num))


def cg_sense(
    y: torch.Tensor,
    op: MultiCoilOperator,
    lam: float | torch.Tensor,
    iterations: int,
) -> torch.Tensor:
    """``iterations`` CG steps on (A^H A + lam I) x = A^H y from x0 = 0, with absolute weight ``lam``
    (a number or a tensor broadcastable to the image, e.g. [..., 1, 1]).

    y: [..., C, H, W] complex measurements; returns x: [..., H, W] complex (with ``op.sens`` None the
    per-coil images [..., C, H, W], one system per batch item).
    """
    dims = (-2, -1) if op.sens is not None else (-3, -2, -1)
    x = torch.zeros(op.image_shape(y), dtype=y.dtype, device=y.device)
    r = op.adjoint(y)  # b - (A^H A + lam I) x0 with x0 = 0
    p = r
    rz = _inner(r, r, dims)
    # a system stops once its residual is at float precision (||r||² <= eps² ||r_0||², 0 included) or its curvature
    # is 0 (sigpy's CG stops at 0 too): below that the residual only rounds, and the steps' quotients of
    # subnormal numbers would overflow in the back-propagation (a fully sampled solve converges in one step)
    floor = rz.detach() * torch.finfo(rz.dtype).eps ** 2
    active = rz > floor
    for _ in range(iterations):
        ap = op.normal(p) + lam * p
        pap = _inner(p, ap, dims)
        active = active & (pap > 0)
        alpha = _safe_divide(rz, pap, active)
        x = x + alpha * p
        r = r - alpha * ap
        rz_new = _inner(r, r, dims)
        beta = _safe_divide(rz_new, rz, active)  # rz > 0 wherever active
        p = r + beta * p
        rz = rz_new
        active = active & (rz > floor)
    support = op.support()
    return x if support is None else support * x


def cg_sense_recon(y: torch.Tensor, op: MultiCoilOperator, spec: CGSenseSpec) -> torch.Tensor:
    """The method as the workflow runs it: relative λ (λ_abs = spec.lam · max_pixel Σ_c|S_c|²) and
    ``spec.iterations`` CG steps from 0.

    y: [..., C, H, W] measured (masked) k-space; returns the complex image [..., H, W].
    """
    lam = absolute_lambda(spec, op)
    if torch.is_tensor(lam):
        lam = lam.to(device=y.device, dtype=y.real.dtype)
    return cg_sense(y, op, lam, spec.iterations)
