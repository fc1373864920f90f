"""The U-Net kind of trained network (family ``unet``): its construction, forward passes, loss and optimiser.

Study facts (Darestani, Chaudhari & Heckel 2021, and the test-time-training follow-up):

U-Net (``fastmri.models.Unet``, 1 -> 1 channel, no dropout)
    input   the zero-filled image: RSS over coils of ``ifft2c(M * y)``, centre-cropped to the
            target size, instance-normalised with its own mean and std and clamped to +-6;
    target  the fastMRI ``reconstruction_rss`` slice, normalised with the *input's* mean/std and
            clamped to +-6;
    loss    L1 between normalised output and normalised target (``loss: l1``, the default), or
            1 - SSIM between the de-normalised output (out * std + mean) and the raw target with
            data range = the volume's max (``loss: ssim``);
    optim   RMSprop lr 1e-3, StepLR(step 40, gamma 0.1), batch 16, 50 epochs (``optimizer: adam``: the TTT
            study's U-Net, Adam 1e-5, 300 epochs, one slice per step).
``input: complex`` U-Net (TTT follow-up): ``fastmri.models.varnet.NormUnet`` (2 -> 2 channels = one complex
    image, its own mean/std normalisation and padding) on A^H y = S^H F^H M y with the slice's ESPIRiT maps S, on
    the full k-space grid; scored through the maps (:func:`robustcs.networks.through_maps`); trained on the
    magnitude's loss plus ``self_supervised`` times the self-supervised loss (the generic
    :meth:`robustcs.networks.Network.loss`).
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch
from fastmri.models import Unet
from fastmri.models.varnet import NormUnet

from .fastmri_io import center_crop
from .networks import Network, coil_mask, through_maps
from .physics import rss, zero_filled
from .specs import UnetSpec

#: U-Net input/target clamp after instance normalisation (fastMRI's UnetDataTransform).
CLAMP = 6.0
#: Added to the instance std (fastMRI's ``normalize_instance(eps=1e-11)``).
NORM_EPS = 1e-11


def unet_normalised(
    model: torch.nn.Module, kspace: torch.Tensor, mask: torch.Tensor, target_shape: Sequence[int]
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """U-Net on the zero-filled image, in the normalised domain.

    kspace [B, C, H, W] complex, mask [B, W] float 0/1. Returns (output [B, th, tw] normalised,
    mean [B, 1, 1], std [B, 1, 1]) where mean/std are those of the cropped zero-filled RSS image.
    """
    zf = center_crop(rss(zero_filled(kspace, mask[:, None, None, :])), tuple(target_shape))  # [B, th, tw]
    mean = zf.mean(dim=(-2, -1), keepdim=True)
    std = zf.std(dim=(-2, -1), keepdim=True) + NORM_EPS
    x = ((zf - mean) / std).clamp(-CLAMP, CLAMP)
    out = model(x.unsqueeze(1)).squeeze(1)
    return out, mean, std


def unet_complex(model: torch.nn.Module, kspace: torch.Tensor, mask: torch.Tensor, sens: torch.Tensor) -> torch.Tensor:
    """The complex-input U-Net on A^H y = S^H F^H M y. kspace, sens [B, C, H, W] complex, mask [B, W].

    Returns the complex image [B, H, W] on the full k-space grid.
    """
    if sens is None:
        raise ValueError("the complex-input U-Net needs ESPIRiT maps (sens)")
    x0 = (sens.conj() * zero_filled(kspace, coil_mask(mask))).sum(-3)
    out = model(torch.view_as_real(x0).unsqueeze(1))  # [B, 1, H, W, 2]
    return torch.view_as_complex(out.squeeze(1).contiguous())


class UnetNetwork(Network):
    """fastMRI's U-Net on the normalised zero-filled RSS image (``input: rss``), or the complex-input NormUnet
    through the ESPIRiT maps (``input: complex``)."""

    def build(self, spec: UnetSpec) -> torch.nn.Module:
        if spec.input == "complex":
            return NormUnet(spec.chans, spec.pools, in_chans=2, out_chans=2, drop_prob=0.0)
        return Unet(in_chans=1, out_chans=1, chans=spec.chans, num_pool_layers=spec.pools, drop_prob=0.0)

    def forward(self, model, spec: UnetSpec, kspace, mask, target_shape, num_low_frequencies, sens, predict_kspace):
        if spec.input == "complex":
            image = unet_complex(model, kspace, mask, sens)
            return through_maps(image, kspace, mask, sens, target_shape, predict_kspace)
        if predict_kspace:
            raise ValueError("the RSS-input U-Net has no k-space prediction; use input: complex")
        out, mean, std = unet_normalised(model, kspace, mask, target_shape)
        return out * std + mean, None

    def optimizer(self, spec: UnetSpec, model: torch.nn.Module) -> torch.optim.Optimizer:
        if spec.optimizer == "rmsprop":  # the study's; optimizer: adam for the TTT study's U-Net
            return torch.optim.RMSprop(model.parameters(), lr=spec.lr)
        return super().optimizer(spec, model)

    def loss(self, model, spec: UnetSpec, batch, ssim: Callable) -> tuple[torch.Tensor, torch.Tensor]:
        """The complex U-Net: the generic loss. The RSS U-Net: L1 in the normalised domain (the target normalised
        with the input's mean and std, clamped), or 1 - SSIM of the de-normalised output."""
        if spec.input == "complex":
            return super().loss(model, spec, batch, ssim)
        out, mean, std = unet_normalised(model, batch.kspace, batch.mask, tuple(batch.target.shape[-2:]))
        image = out * std + mean
        if spec.loss == "l1":
            target = ((batch.target - mean) / std).clamp(-CLAMP, CLAMP)
            return torch.nn.functional.l1_loss(out, target), image
        return ssim(image, batch), image


#: The family ``unet``'s network (robustcs.families names it "unet:NETWORK").
NETWORK = UnetNetwork()
