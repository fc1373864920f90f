"""The un-trained ConvDecoder (Darestani & Heckel), fitted per slice to undersampled k-space.

No training data: a randomly initialised convolutional generator G with a fixed random input z is
fitted to one slice's measurements y by gradient descent on the data term ||M F S G(z) - y||²; the
architecture alone acts as the image prior. The study ("Measuring Robustness in Deep Learning
Based Compressive Sensing", Darestani, Chaudhari & Heckel 2021) uses it as the un-trained baseline.

Network (:class:`ConvDecoder`)
    input    z ~ U[0, 1), shape [1, channels, h0, w0] (config ``input_shape``), fixed during fitting
    block i  (i = 0 .. layers-1): nearest-neighbour upsampling to size (h_i, w_i) -> 3x3 conv with
             bias (zero padding 1) -> ReLU -> BatchNorm2d, all with ``channels`` channels.
             h_i = floor(h0 * (H / h0) ** ((i + 1) / layers) + 1/2) (round half up), likewise w_i;
             the last block's size is exactly the k-space grid (H, W).
    head     3x3 conv -> ReLU -> BatchNorm2d -> 1x1 conv to 2 * out_images channels.
    output   [1, 2 * out_images, H, W]; channels (2j, 2j+1) are the real and imaginary part of
             complex image j.
    Zero padding was chosen for the 3x3 convolutions (the reference implementation pads with zeros
    as well); BatchNorm stays in training mode throughout (batch of one: it normalises over the
    spatial axes), so the fitted output is the training-mode output.

Two variants (``ConvDecoderSpec.mode``)
    ``coils``  out_images = C: the network outputs one complex image per coil and the operator is
               M·F (:class:`~robustcs.physics.MultiCoilOperator` without maps).
    ``sense``  out_images = 1: one complex image x, operator A = M·F·S with the given maps S.

Fitting (:func:`fit_convdecoder`)
    * Measurements y = M · kspace (the mask is applied here, whatever ``kspace`` holds outside it).
    * Scale: s = ||A G(z)||_2 / ||y||_2, both norms over all entries of the complex k-space
      [C, H, W], with G at its random initialisation (one forward pass in training mode, no
      gradient). The network is fitted to s·y; its output is divided by s afterwards.
    * Loss (:func:`masked_mse`): mean over the *sampled* k-space entries of |A G(z) - s·y|², i.e.
      sum |.|² / (C · H · number of sampled columns), the squared modulus of the complex residual
      (real² + imag²). Losses are reported on this scaled problem.
    * Adam (lr from the spec, default betas), a fixed number of iterations. At iteration t the loss
      of the current network output is computed, then one Adam step is taken; the output of
      iteration t is remembered as the best iterate when its loss is below (1 - 0.005) times the best
      loss so far (the first iteration always counts). ``best_iteration`` is that t (0-based).
      The bookkeeping stays on the device (no host synchronisation per iteration).
    * Data consistency on the coil k-space with the unscaled best output x = G_best(z) / s:
      k = (1 - M) · F(S x) + M · y (``coils``: F of the coil images), coil images = F^H k,
      magnitude = RSS over coils [H, W] (the full grid, not cropped), image = S^H (coil images)
      when maps are given (``None`` in ``coils`` mode without maps).

Determinism: the input z and the weight initialisation are drawn on the CPU from ``seed`` inside
``torch.random.fork_rng`` (the caller's global RNG state is untouched) and then moved to the device
of ``kspace``; on the CPU two fits with the same seed are bit-identical.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from tqdm import tqdm

from .physics import MultiCoilOperator, as_complex_tensor, mask_tensor, rss
from .specs import ConvDecoderSpec  # noqa: F401 (re-exported)


def _check_positive_int(name: str, value: Any) -> None:
    """The network's own arguments (a variant's settings are the schema's: config/schema.yaml method_convdecoder)."""
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"ConvDecoder {name!r} must be a positive integer, got {value!r}")


#: Relative improvement of the loss needed to replace the remembered best iterate.
BEST_IMPROVEMENT = 0.005


def upsample_sizes(input_shape: tuple[int, int], out_shape: tuple[int, int], layers: int) -> list[tuple[int, int]]:
    """Output size of each of the ``layers`` blocks: geometric from ``input_shape`` to ``out_shape``.

    Block i (0-based) has size floor(h0 * (H / h0) ** ((i + 1) / layers) + 0.5), likewise for the
    width; the last entry is exactly ``out_shape``.
    """
    (h0, w0), (h, w) = input_shape, out_shape
    sizes = []
    for i in range(layers):
        f = (i + 1) / layers
        sizes.append((int(math.floor(h0 * (h / h0) ** f + 0.5)), int(math.floor(w0 * (w / w0) ** f + 0.5))))
    sizes[-1] = (int(h), int(w))
    return sizes


class ConvDecoder(nn.Module):
    """The ConvDecoder generator: z [1, channels, h0, w0] -> [1, 2 * out_images, H, W] (real)."""

    def __init__(
        self,
        channels: int,
        layers: int,
        input_shape: tuple[int, int],
        out_shape: tuple[int, int],
        out_images: int,
    ):
        super().__init__()
        for name, value in (("channels", channels), ("layers", layers), ("out_images", out_images)):
            _check_positive_int(name, value)
        if len(input_shape) != 2 or len(out_shape) != 2:
            raise ValueError(f"input_shape and out_shape must be (h, w) pairs, got {input_shape} and {out_shape}")
        if not (0 < input_shape[0] <= out_shape[0] and 0 < input_shape[1] <= out_shape[1]):
            raise ValueError(
                f"ConvDecoder input_shape {tuple(input_shape)} must not exceed the output grid {tuple(out_shape)}"
            )
        self.channels = int(channels)
        self.input_shape = (int(input_shape[0]), int(input_shape[1]))
        self.out_shape = (int(out_shape[0]), int(out_shape[1]))
        self.out_images = int(out_images)
        self.sizes = upsample_sizes(self.input_shape, self.out_shape, int(layers))
        modules: list[nn.Module] = []
        for size in self.sizes:
            modules += [
                nn.Upsample(size=size, mode="nearest"),
                nn.Conv2d(channels, channels, kernel_size=3, padding=1, bias=True),
                nn.ReLU(),
                nn.BatchNorm2d(channels),
            ]
        modules += [
            nn.Conv2d(channels, channels, kernel_size=3, padding=1, bias=True),
            nn.ReLU(),
            nn.BatchNorm2d(channels),
            nn.Conv2d(channels, 2 * out_images, kernel_size=1, bias=True),
        ]
        self.net = nn.Sequential(*modules)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """z [1, channels, h0, w0] -> [1, 2 * out_images, H, W]."""
        return self.net(z)

    def to_complex(self, out: torch.Tensor) -> torch.Tensor:
        """[1, 2 * out_images, H, W] real -> [out_images, H, W] complex (channel pairs = re, im)."""
        n, _, h, w = out.shape
        if n != 1:
            raise ValueError(f"expected a batch of one network output, got shape {tuple(out.shape)}")
        pairs = out.reshape(self.out_images, 2, h, w).permute(0, 2, 3, 1).contiguous()
        return torch.view_as_complex(pairs)


def network_images(net: ConvDecoder, z: torch.Tensor, mode: str) -> torch.Tensor:
    """G(z) as the operator's input: ``sense`` -> [H, W] complex, ``coils`` -> [C, H, W] complex."""
    images = net.to_complex(net(z))
    return images[0] if mode == "sense" else images


def masked_mse(kspace_pred: torch.Tensor, y: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of |kspace_pred - y|² over the sampled entries.

    kspace_pred, y: [C, H, W] complex; mask: [W] 0/1 float. The sum of squared moduli over the
    masked entries is divided by C · H · sum(mask).
    """
    c, h, _ = y.shape
    residual = mask * (kspace_pred - y)
    return (residual.real.square() + residual.imag.square()).sum() / (c * h * mask.sum())


def convdecoder_loss(net: ConvDecoder, z: torch.Tensor, op: MultiCoilOperator, y_scaled: torch.Tensor) -> torch.Tensor:
    """Differentiable data loss masked_mse(A G(z), y_scaled) of the fit (scalar tensor).

    ``op`` is ``MultiCoilOperator(mask, sens)`` (sense: ``net.out_images == 1``) or
    ``MultiCoilOperator(mask)`` (coils); ``y_scaled`` [C, H, W] complex, already masked and scaled.
    """
    mode = "coils" if op.sens is None else "sense"
    return masked_mse(op(network_images(net, z, mode)), y_scaled, op.mask)


@dataclass
class FitState:
    """Where a fit ended: the network and its Adam optimiser after the last iteration, with the fit's fixed
    input z, scale s and operator (the ConvDecoder attack continues the fit from here)."""

    net: ConvDecoder
    optimizer: torch.optim.Optimizer
    z: torch.Tensor
    scale: torch.Tensor
    op: MultiCoilOperator
    mode: str

    def copy(self) -> tuple[ConvDecoder, torch.optim.Optimizer]:
        """Independent copies of the network and of its optimiser (the copy optimises the copied weights)."""
        return copy.deepcopy((self.net, self.optimizer))


@dataclass
class ConvDecoderResult:
    """Output of :func:`fit_convdecoder` (all tensors on the device of the input k-space)."""

    magnitude: torch.Tensor  # [H, W] float: RSS of the data-consistent coil images (full grid)
    image: torch.Tensor | None  # [H, W] complex: S^H of the data-consistent coil images, if maps given
    losses: list[float]  # loss per iteration (scaled problem, see masked_mse)
    best_iteration: int  # 0-based iteration whose output was kept
    coil_images: torch.Tensor | None = None  # [C, H, W] complex: F^H of the data-consistent k-space
    scale: float = 1.0  # s = ||A G(z_init)|| / ||M y||
    state: FitState | None = None  # the network and optimiser after the last iteration, if asked for


def _validate(
    kspace: torch.Tensor, mask: Any, sens: torch.Tensor | None, spec: ConvDecoderSpec
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Check shapes; return (kspace complex64 [C,H,W], mask float [W], sens complex64 [C,H,W] | None)."""
    if not isinstance(spec, ConvDecoderSpec):
        raise ValueError(f"spec must be a ConvDecoderSpec, got {type(spec).__name__}")
    if not torch.is_tensor(kspace):
        raise ValueError(f"kspace must be a torch tensor [C, H, W] complex, got {type(kspace).__name__}")
    if kspace.ndim != 3 or not kspace.is_complex():
        raise ValueError(
            f"kspace must be a complex tensor [C, H, W], got shape {tuple(kspace.shape)} dtype {kspace.dtype}"
        )
    device = kspace.device
    kspace = as_complex_tensor(kspace, device)
    c, h, w = kspace.shape
    m = mask_tensor(mask, device)
    if m.ndim < 1 or m.shape[-1] != w or m.numel() != w:
        raise ValueError(
            f"mask must have shape [W] = [{w}] (the last k-space axis of kspace {tuple(kspace.shape)}), "
            f"got mask width/shape {tuple(m.shape)}"
        )
    m = m.reshape(w)
    if not bool(((m == 0) | (m == 1)).all()):
        raise ValueError("mask must contain only 0 and 1")
    if not bool(m.any()):
        raise ValueError("mask samples no k-space column")
    if spec.mode == "sense" and sens is None:
        raise ValueError("ConvDecoder mode 'sense' needs sensitivity maps (sens [C, H, W]); got sens=None")
    if sens is not None:
        if not torch.is_tensor(sens) or sens.ndim != 3 or not sens.is_complex():
            desc = tuple(sens.shape) if torch.is_tensor(sens) else type(sens).__name__
            raise ValueError(f"sens must be a complex tensor [C, H, W] = {[c, h, w]}, got {desc}")
        if tuple(sens.shape) != (c, h, w):
            raise ValueError(f"sens shape {tuple(sens.shape)} does not match kspace shape {(c, h, w)} [C, H, W]")
        sens = as_complex_tensor(sens, device)
    return kspace, m, sens


def init_fit(
    spec: ConvDecoderSpec, op: MultiCoilOperator, y: torch.Tensor, out_images: int, seed: int
) -> tuple[ConvDecoder, torch.Tensor, torch.Tensor]:
    """The fit's starting point: (network in training mode, fixed input z, scale s = ||A G(z)|| / ||y||).

    Network and input are drawn on the CPU from ``seed`` (global RNG untouched), then moved to y's device.
    """
    h, w = y.shape[-2:]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        net = ConvDecoder(spec.channels, spec.layers, spec.input_shape, (h, w), out_images)
        z = torch.rand((1, spec.channels, *spec.input_shape))
    net = net.to(y.device)
    z = z.to(y.device)
    net.train()
    with torch.no_grad():
        init_norm = torch.linalg.vector_norm(op(network_images(net, z, spec.mode)))
        y_norm = torch.linalg.vector_norm(y)
        if not bool(y_norm > 0):
            raise ValueError("the sampled k-space is all zero; nothing to fit")
    return net, z, init_norm / y_norm


def fit_convdecoder(
    kspace: torch.Tensor,
    mask: torch.Tensor,
    sens: torch.Tensor | None,
    spec: ConvDecoderSpec,
    seed: int,
    tqdm_file=None,
    desc: str = "ConvDecoder",
    keep_state: bool = False,
) -> ConvDecoderResult:
    """Fit a ConvDecoder to one slice and return the data-consistent reconstruction.

    kspace: [C, H, W] complex (entries outside the mask are ignored); mask: [W] 0/1 over the
    phase-encoding columns; sens: [C, H, W] complex maps (required for ``sense``, optional for
    ``coils`` where they only serve the complex ``image`` output). Runs on ``kspace.device``.
    ``tqdm_file``: a file-like object (e.g. :class:`robustcs.util.TqdmToLogger`) for a progress
    bar; ``None`` disables it. ``keep_state``: also return the final network and optimiser (``state``).
    """
    kspace, m, sens = _validate(kspace, mask, sens, spec)
    device = kspace.device
    c, h, w = kspace.shape
    y = m * kspace
    out_images = 1 if spec.mode == "sense" else c
    op = MultiCoilOperator(m, sens if spec.mode == "sense" else None)

    net, z, scale = init_fit(spec, op, y, out_images, seed)
    y_scaled = scale * y

    optimizer = torch.optim.Adam(net.parameters(), lr=spec.lr)
    losses = torch.empty(spec.iterations, device=device)
    best_loss = torch.tensor(float("inf"), device=device)
    best_iter = torch.tensor(0, device=device)
    steps = torch.arange(spec.iterations, device=device)  # indexing it needs no host->device copy
    best_x: torch.Tensor | None = None
    for t in tqdm(range(spec.iterations), file=tqdm_file, mininterval=5, disable=tqdm_file is None, desc=desc):
        optimizer.zero_grad(set_to_none=True)
        x = network_images(net, z, spec.mode)
        loss = masked_mse(op(x), y_scaled, m)
        loss.backward()
        with torch.no_grad():
            lv = loss.detach()
            losses[t] = lv
            better = lv < (1.0 - BEST_IMPROVEMENT) * best_loss
            xd = x.detach()
            best_x = xd.clone() if best_x is None else torch.where(better, xd, best_x)
            best_iter = torch.where(better, steps[t], best_iter)
            best_loss = torch.where(better, lv, best_loss)
        optimizer.step()

    assert best_x is not None
    result = result_of_fit(best_x, losses, best_iter, scale, op, y, sens)
    if keep_state:
        result.state = FitState(net, optimizer, z, scale, op, spec.mode)
    return result


def result_of_fit(
    best_x: torch.Tensor,
    losses: torch.Tensor,
    best_iter: torch.Tensor,
    scale: torch.Tensor,
    op: MultiCoilOperator,
    y: torch.Tensor,
    sens: torch.Tensor | None,
) -> ConvDecoderResult:
    """The result of one slice's fit from its best scaled output G_best(z) (the operator's input), its losses per
    iteration and best iteration (tensors), scale s, operator, measurements y = M·kspace and maps (or None):
    data consistency with the unscaled output G_best(z) / s (see the module docstring)."""
    with torch.no_grad():
        x = best_x / scale
        coil_images = op.data_consistent(x, y)  # [C, H, W]
        magnitude = rss(coil_images)
        image = None if sens is None else MultiCoilOperator(op.mask, sens).combine(coil_images)
    return ConvDecoderResult(
        magnitude=magnitude,
        image=image,
        losses=[float(v) for v in losses.cpu()],
        best_iteration=int(best_iter),
        coil_images=coil_images,
        scale=float(scale),
    )
