"""Every reconstruction method behind one interface, for the rules that reconstruct, attack and probe.

A :class:`Method` is built from a variant's config block (:func:`load_method`) and offers

``reconstruct(item, kspace=None)``
    the method run from scratch on one slice (``item`` a :class:`~robustcs.recon_io.SliceInput`);
    ``kspace`` [C, H, W] replaces the slice's own measurements (an attacked or re-simulated
    k-space; the mask is applied here). Returns (magnitude [>= h, >= w], complex image or None)
    as numpy arrays, the format :func:`~robustcs.recon_io.run_reconstruction` writes.
``differentiable(item)``
    a function y -> magnitude [h, w] (torch, centre-cropped to the reference) whose graph reaches
    the measured k-space y [C, H, W]: the adversarial attacks back-propagate through it. The
    ConvDecoder has none (its fit is attacked by the joint scheme of :mod:`robustcs.attacks`).
"""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Callable

import numpy as np
import torch

from .convdecoder import ConvDecoderSpec, fit_convdecoder
from .fastmri_io import center_crop
from .l1wavelet import L1Spec, l1_wavelet_recon
from .physics import MultiCoilOperator, as_complex_tensor, mask_tensor, rss, zero_filled
from .recon_io import SliceInput
from .util import stable_seed

FAMILIES = ("zero_filled", "l1", "convdecoder", "unet", "varnet")


class Method:
    """One configured method variant (see the module docstring)."""

    family: str = ""

    def __init__(self, name: str, device: torch.device):
        self.name = name
        self.device = torch.device(device)

    def attrs(self) -> dict:
        """What a reconstruction file records about the method."""
        return {"method": self.name, "family": self.family}

    def measurements(self, item: SliceInput, kspace=None) -> torch.Tensor:
        """M·k for the slice's own k-space or a replacement, complex64 on the method's device."""
        k = item.kspace if kspace is None else kspace
        return mask_tensor(item.mask, self.device) * as_complex_tensor(k, self.device)

    def forward(self, item: SliceInput, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(magnitude on the full or cropped grid, complex image or None) of measured k-space y."""
        raise NotImplementedError

    def reconstruct(self, item: SliceInput, kspace=None, tqdm_file=None) -> tuple[np.ndarray, np.ndarray | None]:
        with torch.no_grad():
            magnitude, image = self.forward(item, self.measurements(item, kspace))
        return magnitude.detach().cpu().numpy(), None if image is None else image.detach().cpu().numpy()

    def differentiable(self, item: SliceInput) -> Callable[[torch.Tensor], torch.Tensor]:
        def psi(y: torch.Tensor) -> torch.Tensor:
            magnitude, _ = self.forward(item, y)
            return center_crop(magnitude, item.target_shape)

        return psi

    def operator(self, item: SliceInput) -> MultiCoilOperator:
        if item.sens is None:
            raise ValueError(f"{self.family} method {self.name!r} needs ESPIRiT maps for {item.stem} slice {item.slice}")
        return MultiCoilOperator(item.mask, as_complex_tensor(item.sens, self.device))


class ZeroFilled(Method):
    family = "zero_filled"

    def forward(self, item, y):
        return rss(zero_filled(y, mask_tensor(item.mask, y.device))), None


class L1Wavelet(Method):
    family = "l1"

    def __init__(self, name, device, settings: dict):
        super().__init__(name, device)
        self.spec = L1Spec.from_config(settings)

    def attrs(self):
        return {**super().attrs(), "spec": self.spec.as_dict()}

    def forward(self, item, y):
        op = self.operator(item)
        x = l1_wavelet_recon(y, op, self.spec)
        return rss(op.data_consistent(x, y)), x


class ConvDecoderMethod(Method):
    family = "convdecoder"

    def __init__(self, name, device, settings: dict, seed: int):
        super().__init__(name, device)
        self.spec = ConvDecoderSpec.from_config(settings)
        self.seed = int(seed)

    def attrs(self):
        return {**super().attrs(), "spec": asdict(self.spec)}

    def slice_seed(self, item: SliceInput) -> int:
        """The fit's seed: the same for a slice's clean, attacked and featured reconstructions."""
        return stable_seed(self.seed, self.name, item.stem, item.slice)

    def fit(self, item: SliceInput, y: torch.Tensor, tqdm_file=None, keep_state: bool = False):
        """:func:`~robustcs.convdecoder.fit_convdecoder` on measured k-space y with the slice's maps and seed."""
        if item.sens is None and self.spec.mode == "sense":
            self.operator(item)  # raises the error naming the variant and slice
        sens = None if item.sens is None else as_complex_tensor(item.sens, self.device)
        return fit_convdecoder(
            y, mask_tensor(item.mask, self.device), sens, self.spec, seed=self.slice_seed(item), tqdm_file=tqdm_file,
            desc=f"ConvDecoder {item.stem}[{item.slice}]", keep_state=keep_state,
        )

    def reconstruct(self, item, kspace=None, tqdm_file=None):
        result = self.fit(item, self.measurements(item, kspace), tqdm_file)
        image = None if result.image is None else result.image.detach().cpu().numpy()
        return result.magnitude.detach().cpu().numpy(), image

    def differentiable(self, item):
        raise NotImplementedError("the ConvDecoder fit is attacked by the joint scheme (robustcs.attacks)")


class Trained(Method):
    """A trained U-Net or VarNet loaded from its model file (weights_only)."""

    def __init__(self, name, device, model_path: str):
        super().__init__(name, device)
        from .training import UnetSpec, load_model, needs_maps

        self.spec, self.model = load_model(model_path, self.device)
        self.needs_maps = needs_maps(self.spec)
        self.model.eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.family = "unet" if isinstance(self.spec, UnetSpec) else "varnet"
        self.model_path = str(model_path)

    def attrs(self):
        return {**super().attrs(), "model": self.model_path}

    def forward(self, item, y):
        from .training import reconstruct

        sens = None
        if self.needs_maps:
            sens = self.operator(item).sens[None]  # raises the error naming the variant and slice without maps
        out = reconstruct(self.model, self.spec, y[None], mask_tensor(item.mask, y.device), item.target_shape,
                          item.num_low_frequencies, sens)
        return out[0], None


def load_method(
    name: str,
    settings: dict | str,
    device: torch.device | str = "cpu",
    model_path: str | None = None,
    seed: int = 0,
) -> Method:
    """The method variant ``name`` from its config block (a dict or its canonical JSON text).

    Trained families need ``model_path``; the ConvDecoder's fits are seeded from ``seed``.
    """
    if isinstance(settings, str):
        settings = json.loads(settings)
    family = settings.get("family")
    rest = {k: v for k, v in settings.items() if k != "family"}
    if family == "zero_filled":
        return ZeroFilled(name, device)
    if family == "l1":
        return L1Wavelet(name, device, rest)
    if family == "convdecoder":
        return ConvDecoderMethod(name, device, rest, seed)
    if family in ("unet", "varnet"):
        if model_path is None:
            raise ValueError(f"method {name!r} ({family}) needs its trained model file")
        method = Trained(name, device, model_path)
        if method.family != family:
            raise ValueError(f"method {name!r} is configured as {family} but {model_path} holds a {method.family}")
        return method
    raise ValueError(f"method {name!r}: unknown family {family!r}; expected one of {FAMILIES}")
