"""The VarNet kind of trained network (family ``varnet``): its construction and forward passes (its loss is the
generic one, :meth:`robustcs.networks.Network.loss`; its optimiser Adam).

Study facts (Darestani, Chaudhari & Heckel 2021, and the test-time-training follow-up):

VarNet (``fastmri.models.VarNet``)
    input   masked k-space as a real view [B, C, H, W, 2], the mask as bool [B, 1, 1, W, 1] and the
            number of low-frequency lines; output RSS [B, H, W] centre-cropped to the target size;
    loss    1 - SSIM (``fastmri.losses.SSIMLoss``) with data range = the volume's max (default), or
            ``loss: l1``: mean |out - target| / max;
    optim   Adam lr 3e-4, StepLR(step 40, gamma 0.1), batch 1, 50 epochs.
For test-time training its image f is its final k-space combined with its own estimated maps (``sens_reduce``),
re-expanded with the same maps; ``maps: espirit`` (the TTT study's VarNet) runs its cascades with the slice's
ESPIRiT maps and is scored through them, like ℓ1 and the complex U-Net.
"""

from __future__ import annotations

from typing import Sequence

import torch
from fastmri.models import VarNet

from .fastmri_io import center_crop
from .networks import Network, coil_mask, through_maps
from .physics import fft2c, ifft2c, rss
from .specs import VarNetSpec


def varnet_forward(
    model: torch.nn.Module,
    kspace: torch.Tensor,
    mask: torch.Tensor,
    target_shape: Sequence[int],
    num_low_frequencies: int | None,
) -> torch.Tensor:
    """VarNet on masked k-space. kspace [B, C, H, W] complex, mask [B, W] float 0/1.

    Returns the RSS magnitude [B, th, tw] centre-cropped to ``target_shape``.
    """
    masked = torch.view_as_real(kspace * mask[:, None, None, :])  # [B, C, H, W, 2]
    bool_mask = (mask > 0.5)[:, None, None, :, None]  # [B, 1, 1, W, 1]
    nlf = None if num_low_frequencies is None else int(num_low_frequencies)
    return center_crop(model(masked, bool_mask, nlf), tuple(target_shape))


def varnet_kspace(
    model: torch.nn.Module, kspace: torch.Tensor, mask: torch.Tensor, num_low_frequencies: int | None,
    maps: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The VarNet's final k-space and its maps (both complex [B, C, H, W]): the steps of
    ``fastmri.models.VarNet.forward`` before its RSS, through the model's own sensitivity net and cascades;
    given ESPIRiT ``maps``, the cascades use them in place of the sensitivity net's (the TTT study's VarNet)."""
    masked = torch.view_as_real(kspace * coil_mask(mask))
    bool_mask = (coil_mask(mask) > 0.5)[..., None]  # [B, 1, 1 or H, W, 1]
    nlf = None if num_low_frequencies is None else int(num_low_frequencies)
    sens = model.sens_net(masked, bool_mask, nlf) if maps is None else torch.view_as_real(maps)
    pred = masked.clone()
    for cascade in model.cascades:
        pred = cascade(pred, masked, bool_mask, sens)
    return torch.view_as_complex(pred.contiguous()), torch.view_as_complex(sens.contiguous())


class VarNetNetwork(Network):
    """fastMRI's end-to-end VarNet, with its own estimated maps (``maps: learned``) or the ESPIRiT maps."""

    def build(self, spec: VarNetSpec) -> torch.nn.Module:
        return VarNet(
            num_cascades=spec.cascades,
            sens_chans=spec.sens_chans,
            sens_pools=spec.sens_pools,
            chans=spec.chans,
            pools=spec.pools,
        )

    def forward(self, model, spec: VarNetSpec, kspace, mask, target_shape, num_low_frequencies, sens, predict_kspace):
        if spec.maps == "espirit" and sens is None:
            raise ValueError("the VarNet with maps: espirit needs ESPIRiT maps (sens)")
        if not predict_kspace and spec.maps == "learned":
            return varnet_forward(model, kspace, mask, target_shape, num_low_frequencies), None
        pred, est = varnet_kspace(model, kspace, mask, num_low_frequencies, sens if spec.maps == "espirit" else None)
        if spec.maps == "espirit":  # one image through the ESPIRiT maps, like ℓ1 and the complex U-Net
            return through_maps((est.conj() * ifft2c(pred)).sum(-3), kspace, mask, est, target_shape, predict_kspace)
        magnitude = center_crop(rss(ifft2c(pred)), tuple(target_shape))
        if not predict_kspace:
            return magnitude, None
        image = (est.conj() * ifft2c(pred)).sum(-3, keepdim=True)
        return magnitude, fft2c(est * image)


#: The family ``varnet``'s network (robustcs.families names it "varnet:NETWORK").
NETWORK = VarNetNetwork()
