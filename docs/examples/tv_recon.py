"""Total-variation-regularised SENSE: an example of a reconstruction method brought from outside the library.

A config variant names it (docs/own_method.md):

    methods:
      my_tv: {family: external, class: "docs/examples/tv_recon.py:TVRecon", lam: 0.02, iterations: 100}

It solves, per slice, with A = M·F·S (the library's operator: mask, centred orthonormal FFT, ESPIRiT maps)

    min_x  1/2 ||A x - y||² + λ_abs TV(x),   TV(x) = Σ_pixels sqrt(|∂_h x|² + |∂_v x|²)  (isotropic, complex x)

by the primal-dual algorithm of Chambolle and Pock with K = [A; ∇], a fixed number of iterations from x = 0 and
steps σ = τ = 1/sqrt(L + 8) (L >= ||A||², ||∇||² <= 8), so that every step is a torch operation and the
output is differentiable in y: the adversarial attacks back-propagate through the unrolled iterations.
λ_abs = lam · max|A^H y| per slice, so one ``lam`` serves any k-space scale (as the library's ℓ1-wavelet does).
The output follows the project's convention for methods that reconstruct through the maps: the magnitude is the
RSS of the data-consistent coil images (the measured samples put back), on the reference's grid.
"""

import torch

from robustcs.methods import Method
from robustcs.physics import rss


def gradient(x: torch.Tensor) -> torch.Tensor:
    """Forward differences along the two image axes [..., H, W] -> [2, ..., H, W], 0 past the last row/column."""
    dv = torch.cat([x[..., 1:, :] - x[..., :-1, :], torch.zeros_like(x[..., :1, :])], dim=-2)
    dh = torch.cat([x[..., :, 1:] - x[..., :, :-1], torch.zeros_like(x[..., :, :1])], dim=-1)
    return torch.stack([dv, dh])


def divergence(p: torch.Tensor) -> torch.Tensor:
    """-∇^H: [2, ..., H, W] -> [..., H, W] (the negative adjoint of :func:`gradient`)."""
    pv, ph = p[0], p[1]
    dv = torch.cat([pv[..., :1, :], pv[..., 1:-1, :] - pv[..., :-2, :], -pv[..., -2:-1, :]], dim=-2)
    dh = torch.cat([ph[..., :, :1], ph[..., :, 1:-1] - ph[..., :, :-2], -ph[..., :, -2:-1]], dim=-1)
    return dv + dh


def tv_sense(y: torch.Tensor, op, lam: float, iterations: int) -> torch.Tensor:
    """The image x [..., H, W] of measurements y [..., C, H, W] (leading axes: independent problems)."""
    x = torch.zeros(op.image_shape(y), dtype=y.dtype, device=y.device)
    weight = lam * op.adjoint(y).abs().amax(dim=(-2, -1), keepdim=True)  # λ_abs per problem
    step = 1.0 / (float(op.eigenvalue_bound()) + 8.0) ** 0.5
    support = op.support()
    x_bar, p, q = x, torch.zeros_like(y), torch.zeros_like(gradient(x))
    for _ in range(iterations):
        p = (p + step * (op.forward(x_bar) - y)) / (1.0 + step)  # prox of the data term's conjugate
        q = q + step * gradient(x_bar)
        norm = torch.sqrt((q.abs() ** 2).sum(dim=0) + 1e-24)  # + tiny: a finite gradient where q = 0
        q = q / torch.clamp(norm / torch.clamp(weight, min=1e-30), min=1.0)  # projection on |q| <= λ_abs
        x_new = x - step * (op.adjoint(p) - divergence(q))
        if support is not None:  # pixels no coil sees stay 0
            x_new = x_new * support
        x_bar, x = 2 * x_new - x, x_new
    return x


class TVRecon(Method):
    """The workflow builds it as ``TVRecon(name, device, settings, seed=...)``; ``settings`` are the variant's own
    keys (here ``lam`` and ``iterations``). ``forward`` is all a Method subclass must write: ``reconstruct``,
    ``differentiable`` and the attack strategy (projected gradient ascent) come from :class:`Method`."""

    batches_slices = False  # forward handles a batch of one slice's measurements, not a stack of slices

    def __init__(self, name, device, settings=None, seed=0, **_):
        super().__init__(name, device)
        settings = dict(settings or {})
        self.lam = settings.pop("lam", 0.02)
        self.iterations = settings.pop("iterations", 100)
        if settings:
            raise ValueError(f"TVRecon {name!r}: unknown setting(s) {sorted(settings)}; expected lam, iterations")
        if isinstance(self.lam, bool) or not isinstance(self.lam, (int, float)) or self.lam < 0:
            raise ValueError(f"TVRecon {name!r}: lam must be a number >= 0, got {self.lam!r}")
        if isinstance(self.iterations, bool) or not isinstance(self.iterations, int) or self.iterations < 1:
            raise ValueError(f"TVRecon {name!r}: iterations must be an integer >= 1, got {self.iterations!r}")

    def attrs(self):
        return {**super().attrs(), "lam": self.lam, "iterations": self.iterations}

    def forward(self, item, y):
        op = self.operator(item)  # A = M·F·S with the slice's ESPIRiT maps (an error naming the slice without)
        x = tv_sense(y, op, self.lam, self.iterations)
        return rss(op.data_consistent(x, y)), x
