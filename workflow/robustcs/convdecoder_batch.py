"""Several ConvDecoder fits at once: B slices of one shape fitted by one grouped network on one device.

Each slice keeps its own network, drawn exactly as its lone fit draws it (:func:`robustcs.convdecoder.init_fit`
with the slice's seed), its own input z, scale s and loss. The B networks run as one
(:class:`GroupedConvDecoder`): their inputs are stacked along the channel axis, every 3x3 and 1x1 convolution
becomes one convolution with ``groups=B`` whose weights are the B networks' weights concatenated, and BatchNorm
over B·channels normalises each channel of each network over its own spatial axes (a batch of one), as the lone
network does; upsampling and ReLU act per channel. So network b's output is its lone output.

One Adam optimises the sum of the B per-slice losses over the grouped parameters. Network b's parameters get
the gradient of its own loss only (the other losses do not depend on them), and Adam's update is elementwise,
so each slice follows its lone fit up to float rounding (another convolution algorithm, another summation
order): tests/test_convdecoder.py checks the reconstructions against lone fits. The best-iterate bookkeeping
(loss per iteration, best iteration, best output) is kept per slice, on the device.

Why: a paper-size fit (256 channels, 8 layers) runs 25,000 small Adam steps per slice; several slices per
step give the GPU more work per kernel launch (docs/runtime.md, "ConvDecoder fits in groups").
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn
from tqdm import tqdm

from .convdecoder import (
    BEST_IMPROVEMENT,
    ConvDecoder,
    ConvDecoderResult,
    _validate,
    fit_convdecoder,
    init_fit,
    result_of_fit,
)
from .physics import MultiCoilOperator
from .specs import ConvDecoderSpec


def _grouped(modules: list[nn.Module]) -> nn.Module:
    """One module acting as ``modules`` (the same layer of B networks) on their channels side by side."""
    first, groups = modules[0], len(modules)
    if isinstance(first, nn.Conv2d):
        out = nn.Conv2d(first.in_channels * groups, first.out_channels * groups, first.kernel_size,
                        padding=first.padding, bias=first.bias is not None, groups=groups)
        with torch.no_grad():
            out.weight.copy_(torch.cat([m.weight for m in modules]))
            if first.bias is not None:
                out.bias.copy_(torch.cat([m.bias for m in modules]))
        return out
    if isinstance(first, nn.BatchNorm2d):
        out = nn.BatchNorm2d(first.num_features * groups, eps=first.eps, momentum=first.momentum)
        with torch.no_grad():
            out.weight.copy_(torch.cat([m.weight for m in modules]))
            out.bias.copy_(torch.cat([m.bias for m in modules]))
        return out
    if isinstance(first, (nn.Upsample, nn.ReLU)):
        return first
    raise TypeError(f"no grouped form of {type(first).__name__}")


class GroupedConvDecoder(nn.Module):
    """B ConvDecoders of one architecture as one network: z [1, B·channels, h0, w0] -> [1, B·2·out_images, H, W],
    network b on channels [b·channels, (b+1)·channels) of its input and [b·2·out_images, (b+1)·2·out_images) of
    the output. Built from the B networks (their weights copied; they are not changed)."""

    def __init__(self, nets: Sequence[ConvDecoder]):
        super().__init__()
        first = nets[0]
        for net in nets[1:]:
            if (net.channels, net.sizes, net.out_images) != (first.channels, first.sizes, first.out_images):
                raise ValueError("grouped ConvDecoders must share channels, layer sizes and outputs")
        self.groups, self.out_images = len(nets), first.out_images
        layers = zip(*(net.net for net in nets))
        self.net = nn.Sequential(*(_grouped(list(modules)) for modules in layers))
        self.to(next(first.parameters()).device)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)

    def images(self, z: torch.Tensor, mode: str) -> torch.Tensor:
        """G_b(z_b) of every network: ``sense`` -> [B, H, W] complex, ``coils`` -> [B, C, H, W] complex."""
        out = self.net(z)
        _, _, h, w = out.shape
        pairs = out.reshape(self.groups, self.out_images, 2, h, w).permute(0, 1, 3, 4, 2).contiguous()
        images = torch.view_as_complex(pairs)
        return images[:, 0] if mode == "sense" else images


def masked_mse_each(kspace_pred: torch.Tensor, y: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """:func:`robustcs.convdecoder.masked_mse` of each slice: kspace_pred, y [B, C, H, W] complex, mask
    [B, 1, 1, W] -> [B] (sum of |.|² over the sampled entries / (C · H · sampled columns))."""
    _, c, h, _ = y.shape
    residual = mask * (kspace_pred - y)
    return (residual.real.square() + residual.imag.square()).sum((-3, -2, -1)) / (c * h * mask.sum((-3, -2, -1)))


def fit_convdecoders(
    slices: Sequence[tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]],
    spec: ConvDecoderSpec,
    seeds: Sequence[int],
    tqdm_file=None,
    desc: str = "ConvDecoder",
) -> list[ConvDecoderResult]:
    """Fit one ConvDecoder per slice, all at once; slice i is (kspace [C, H, W], mask [W], sens [C, H, W] or None)
    as for :func:`~robustcs.convdecoder.fit_convdecoder`, seeded by ``seeds[i]``. All slices share one k-space
    shape and device; every result is that slice's lone fit up to float rounding (one slice: exactly the lone
    fit). No ``state`` is returned (the attacks continue lone fits)."""
    if len(slices) != len(seeds) or not slices:
        raise ValueError(f"fit_convdecoders needs one seed per slice and at least one slice, got {len(slices)} "
                         f"slices and {len(seeds)} seeds")
    if len(slices) == 1:
        (kspace, mask, sens), = slices
        return [fit_convdecoder(kspace, mask, sens, spec, seeds[0], tqdm_file, desc)]
    checked = [_validate(kspace, mask, sens, spec) for kspace, mask, sens in slices]
    first = checked[0][0]
    for kspace, _, _ in checked[1:]:
        if kspace.shape != first.shape or kspace.device != first.device:
            raise ValueError(f"slices fitted together must share k-space shape and device, got "
                             f"{tuple(first.shape)} on {first.device} and {tuple(kspace.shape)} on {kspace.device}")
    ops, ys, starts = [], [], []
    for (kspace, m, sens), seed in zip(checked, seeds):
        ops.append(MultiCoilOperator(m, sens if spec.mode == "sense" else None))
        ys.append(m * kspace)
        starts.append(init_fit(spec, ops[-1], ys[-1], 1 if spec.mode == "sense" else first.shape[0], seed))
    best_x, losses, best_iter = _fit_grouped(spec, starts, ops, ys, tqdm_file, desc)
    return [
        result_of_fit(best_x[b], losses[:, b], best_iter[b], scale, op, ys[b], sens)
        for b, ((_, _, scale), op, (_, _, sens)) in enumerate(zip(starts, ops, checked))
    ]


def _fit_grouped(spec, starts, ops, ys, tqdm_file, desc):
    """The Adam loop of :func:`fit_convdecoders` -> (best scaled outputs [B, ...], losses [iterations, B], best
    iterations [B])."""
    nets, zs, scales = zip(*starts)
    device, groups = ys[0].device, len(ys)
    net = GroupedConvDecoder(nets)
    net.train()
    z = torch.cat(zs, dim=1)
    sens = None if ops[0].sens is None else torch.stack([op.sens for op in ops])
    op = MultiCoilOperator(torch.stack([o.mask for o in ops])[:, None, None, :], sens)
    y_scaled = torch.stack(scales).reshape(groups, 1, 1, 1) * torch.stack(ys)

    optimizer = torch.optim.Adam(net.parameters(), lr=spec.lr)
    losses = torch.empty(spec.iterations, groups, device=device)
    best_loss = torch.full((groups,), float("inf"), device=device)
    best_iter = torch.zeros(groups, dtype=torch.long, device=device)
    steps = torch.arange(spec.iterations, device=device)
    best_x: torch.Tensor | None = None
    progress = tqdm(range(spec.iterations), file=tqdm_file, mininterval=5, disable=tqdm_file is None,
                    desc=f"{desc} ({groups} slices)")
    for t in progress:
        optimizer.zero_grad(set_to_none=True)
        x = net.images(z, spec.mode)
        loss = masked_mse_each(op(x), y_scaled, op.mask)
        loss.sum().backward()
        with torch.no_grad():
            lv = loss.detach()
            losses[t] = lv
            better = lv < (1.0 - BEST_IMPROVEMENT) * best_loss
            xd = x.detach()
            keep = better.reshape(groups, *([1] * (xd.ndim - 1)))
            best_x = xd.clone() if best_x is None else torch.where(keep, xd, best_x)
            best_iter = torch.where(better, steps[t], best_iter)
            best_loss = torch.where(better, lv, best_loss)
        optimizer.step()
    return best_x, losses, best_iter
