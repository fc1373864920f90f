"""The networks of the study, as inference uses them: the kinds' common interface, forward passes and model files.
Training them is :mod:`robustcs.training`.

Each trained network kind is one :class:`Network` object in its own module (:mod:`robustcs.unet`,
:mod:`robustcs.varnet`) that its family's registry entry names (``Family.network``); this module, training and TTT
ask it (:func:`network_of`) and the spec (:class:`robustcs.specs.NetworkSpec`), never the spec's class.

Study facts (Darestani, Chaudhari & Heckel 2021, and the test-time-training follow-up):

Networks for test-time training (TTT follow-up; ``robustcs.ttt``)
    self-supervised loss ||M (y - F S f(A^H y))||_1 / ||M y||_1 (l1 over real and imaginary parts;
            :func:`self_supervised_loss`) on the network's predicted k-space.

Choices of this implementation:

* The model is initialised under ``torch.random.fork_rng`` with ``torch.manual_seed(stable_seed(seed,
  "init"))``, so the caller's RNG state is untouched and the initial weights depend only on the seed.
* Model files (:func:`save_model`) hold the family, the spec, the weights and the history, all plain types
  and CPU tensors, written atomically (temporary file, fsync, rename) and read with
  ``torch.load(weights_only=True)``; an unreadable file is a :class:`CheckpointError` naming it.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import Any, Callable, Sequence

import pandas as pd
import torch

from .fastmri_io import center_crop
from .physics import fft2c, ifft2c, mask_tensor, replace_measured, rss
from .util import atomic_path, stable_seed
from .families import family, family_of, spec_from_config  # noqa: F401 (re-exported)
from .specs import Spec, UnetSpec, VarNetSpec, has_kspace_output, needs_maps, spec_to_dict  # noqa: F401 (re-exported)


class CheckpointError(RuntimeError):
    """A checkpoint or model file cannot be used; the message names the file."""


class Network:
    """The torch side of one trained network kind (U-Net, VarNet): everything the generic code (training, TTT,
    reconstruction, model files) asks of it. Each kind's module (``robustcs.unet``, ``robustcs.varnet``) defines a
    subclass and a ``NETWORK`` instance, which its family's registry entry names (``Family.network``); its spec
    (a :class:`robustcs.specs.NetworkSpec`) answers whether it reads maps or predicts k-space."""

    def build(self, spec: Spec) -> torch.nn.Module:
        """An untrained network for ``spec`` (weights from the current global RNG)."""
        raise NotImplementedError

    def forward(
        self, model: torch.nn.Module, spec: Spec, kspace: torch.Tensor, mask: torch.Tensor,
        target_shape: Sequence[int], num_low_frequencies: int | None, sens: torch.Tensor | None, predict_kspace: bool,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(magnitude [B, th, tw], predicted k-space or None) as :func:`forward` describes."""
        raise NotImplementedError

    def optimizer(self, spec: Spec, model: torch.nn.Module) -> torch.optim.Optimizer:
        """The training optimiser at the spec's learning rate (Adam unless the kind says otherwise)."""
        return torch.optim.Adam(model.parameters(), lr=spec.lr)

    def loss(self, model: torch.nn.Module, spec: Spec, batch: Any, ssim: Callable) -> tuple[torch.Tensor, torch.Tensor]:
        """(mean training loss, images [B, th, tw]) of a batch (:class:`robustcs.training.Batch`): the supervised
        term on the magnitude (``loss: l1``, divided by the volume max, or ``ssim(image, batch)`` = 1 - SSIM),
        plus ``self_supervised`` times the self-supervised loss on the predicted k-space when that weight is > 0."""
        weight = spec.self_supervised
        shape = tuple(batch.target.shape[-2:])
        image, predicted = forward(model, spec, batch.kspace, batch.mask, shape, batch.num_low, batch.sens,
                                   predict_kspace=weight > 0)
        if spec.loss == "l1":
            scale = batch.max[:, None, None]
            loss = torch.nn.functional.l1_loss(image / scale, batch.target / scale)
        else:
            loss = ssim(image, batch)
        if weight > 0:
            m = batch.mask[:, None, None, :]
            loss = loss + weight * self_supervised_loss(predicted, m * batch.kspace, m)
        return loss, image


def network_of(spec: Spec) -> Network:
    """The :class:`Network` of ``spec``'s family (its registry entry's ``network``); TypeError for a spec of no
    trained family."""
    name = family_of(spec)
    network = family(name).network
    if network is None:
        raise TypeError(f"the trained family {name!r} names no network (Family.network in robustcs.families)")
    if isinstance(network, str):  # "module:NAME" of robustcs, imported on first use
        module, name = network.split(":")
        network = getattr(importlib.import_module(f"robustcs.{module}"), name)
    return network


def build_model(spec: Spec) -> torch.nn.Module:
    """An untrained network for ``spec`` (weights from the current global RNG)."""
    return network_of(spec).build(spec)


def init_model(spec: Spec, seed: int) -> torch.nn.Module:
    """:func:`build_model` with weights seeded by ``stable_seed(seed, "init")``; global RNG untouched."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(stable_seed(seed, "init"))
        return build_model(spec)


# --------------------------------------------------------------------------------------------------
# Forward passes
# --------------------------------------------------------------------------------------------------


def _batch_mask(mask: torch.Tensor, batch: int, device: torch.device) -> torch.Tensor:
    """A [W], [B, W] or [B, 1, 1, W] (a stack of slices, recon_io.stack_slices) 0/1 mask as float32 [B, W] on
    ``device``."""
    m = mask_tensor(mask, device)
    if m.ndim == 4 and m.shape[1:3] == (1, 1):
        m = m.reshape(m.shape[0], m.shape[-1])
    if m.ndim == 1:
        m = m.unsqueeze(0).expand(batch, -1)
    if m.ndim != 2 or m.shape[0] != batch:
        raise ValueError(f"mask must be [W], [B={batch}, W] or [B, 1, 1, W], got shape {tuple(mask.shape)}")
    return m


def coil_mask(mask: torch.Tensor) -> torch.Tensor:
    """A sampling pattern [B, W] (columns) or [B, H, W] (points) shaped to multiply k-space [B, C, H, W]."""
    return mask[:, None, None, :] if mask.ndim == 2 else mask[:, None]


def through_maps(
    image: torch.Tensor, kspace: torch.Tensor, mask: torch.Tensor, sens: torch.Tensor, target_shape: Sequence[int],
    predict_kspace: bool,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(scored magnitude, F S x or None) of a network that outputs one image x [B, H, W] through the maps.

    The scored magnitude is the RSS of the data-consistent coil images F^H(M y + (1 - M) F S x), the same
    kind of image as the reference (|x| is zero where the maps are cropped while the reference keeps its
    noise floor), and the same image the self-supervised loss fits (its unmeasured part is F S x)."""
    predicted = fft2c(sens * image.unsqueeze(-3))
    magnitude = center_crop(rss(ifft2c(replace_measured(predicted, kspace, coil_mask(mask)))), tuple(target_shape))
    return magnitude, predicted if predict_kspace else None


def forward(
    model: torch.nn.Module,
    spec: Spec,
    kspace: torch.Tensor,
    mask: torch.Tensor,
    target_shape: Sequence[int],
    num_low_frequencies: int | None = None,
    sens: torch.Tensor | None = None,
    predict_kspace: bool = False,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(magnitude [B, th, tw], predicted k-space F S f(A^H y) [B, C, H, W] or None) of any network.

    kspace [B, C, H, W] complex (masked here), mask [B, W] float 0/1 (or [B, H, W] for the networks with a
    k-space prediction, e.g. without TTT's held-out points). The predicted k-space (unmasked;
    ``predict_kspace``) exists for the networks whose spec says ``kspace_output()`` (the complex U-Net with the
    ESPIRiT maps, the VarNet through its own maps); it is what the self-supervised loss compares with the
    measurements. The network's kind (:func:`network_of`) computes it.
    """
    return network_of(spec).forward(model, spec, kspace, mask, target_shape, num_low_frequencies, sens, predict_kspace)


def self_supervised_loss(predicted: torch.Tensor, measured: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """The study's ||W (y - k)||_1 / ||W y||_1 per example (l1 over real and imaginary parts), averaged
    over the batch. predicted/measured [B, C, H, W] complex; weight broadcastable to them (a 0/1 sampling
    pattern: the mask, or the mask without the self-validation points)."""
    diff = torch.view_as_real(weight * (measured - predicted)).abs().sum(dim=(1, 2, 3, 4))
    norm = torch.view_as_real(weight * measured).abs().sum(dim=(1, 2, 3, 4))
    return (diff / norm.clamp_min(torch.finfo(norm.dtype).tiny)).mean()


def reconstruct(
    model: torch.nn.Module,
    spec: Spec,
    kspace: torch.Tensor,
    mask: torch.Tensor,
    target_shape: tuple[int, int],
    num_low_frequencies: int | None = None,
    sens: torch.Tensor | None = None,
) -> torch.Tensor:
    """Reconstruct magnitude images from (under-sampled) multi-coil k-space.

    kspace: complex [B, C, H, W] (the mask is applied here, so it may be fully sampled);
    mask: [W] or [B, W], 0/1 (bool or real); target_shape: (th, tw) <= (H, W);
    num_low_frequencies: VarNet only; None lets the VarNet find the fully sampled centre in the mask;
    sens: ESPIRiT maps [B, C, H, W] (or [C, H, W]) for the complex-input U-Net.
    Returns [B, th, tw] float on the model's device, in the scale of the data (the U-Net output is
    de-normalised). Differentiable w.r.t. ``kspace``. Train/eval mode is the caller's business.
    """
    if not kspace.is_complex() or kspace.ndim != 4:
        raise ValueError(f"kspace must be complex [B, C, H, W], got {tuple(kspace.shape)} {kspace.dtype}")
    m = _batch_mask(mask, kspace.shape[0], kspace.device)
    if sens is not None and sens.ndim == 3:
        sens = sens.unsqueeze(0)
    return forward(model, spec, kspace, m, target_shape, num_low_frequencies, sens)[0]


# --------------------------------------------------------------------------------------------------
# Model files
# --------------------------------------------------------------------------------------------------


def _save_checkpoint(path: Path, state: dict) -> None:
    """Write ``state`` to ``path`` atomically (temporary file, fsync, rename)."""
    with atomic_path(path, suffix=".pt") as tmp:
        with open(tmp, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())


def _torch_load(path: Path, device: torch.device, what: str, hint: str = "") -> Any:
    """``torch.load(weights_only=True)``; any failure becomes a CheckpointError naming the file."""
    try:
        return torch.load(path, map_location=device, weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any failure means the file is unusable
        raise CheckpointError(f"{path}: cannot read the {what} ({type(exc).__name__}: {exc}){hint}") from exc


def save_model(path: str | os.PathLike, spec: Spec, model: torch.nn.Module, history: pd.DataFrame | None = None) -> None:
    """Save a trained model atomically: {"family", "spec", "state_dict", "history"} (plain types, CPU tensors)."""
    hist = [] if history is None else _plain_records(history)
    state = {
        "family": family_of(spec),
        "spec": spec_to_dict(spec),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "history": hist,
    }
    _save_checkpoint(Path(path), state)


def load_model(path: str | os.PathLike, device: torch.device) -> tuple[Spec, torch.nn.Module]:
    """Load a model saved by :func:`save_model` onto ``device`` (in eval mode).

    Raises CheckpointError naming the file if it cannot be read or is not a model file.
    """
    path = Path(path)
    state = _torch_load(path, device, "model file")
    if not isinstance(state, dict) or not {"family", "spec", "state_dict"} <= set(state):
        raise CheckpointError(f"{path}: not a model file (expected a dict with keys family, spec, state_dict)")
    try:
        spec = spec_from_config({"family": state["family"], **state["spec"]})
        model = build_model(spec)
        model.load_state_dict(state["state_dict"])
    except (ValueError, RuntimeError, TypeError) as exc:
        raise CheckpointError(f"{path}: model file does not match its spec: {exc}") from exc
    return spec, model.to(device).eval()


def _plain_records(history: pd.DataFrame | list[dict]) -> list[dict]:
    records = history.to_dict("records") if isinstance(history, pd.DataFrame) else history
    return [{k: (int(v) if k == "epoch" else float(v)) for k, v in r.items()} for r in records]



# --------------------------------------------------------------------------------------------------
# Published weights (a variant's checkpoint; robustcs.pretrained)
# --------------------------------------------------------------------------------------------------


def check_state_dict(state: Any, model: torch.nn.Module, where: str) -> None:
    """``state`` is a plain state dict with exactly ``model``'s keys and tensor shapes; CheckpointError otherwise,
    starting with ``where`` (the file and the variant) and naming the first key that differs (with both shapes)."""
    if not isinstance(state, dict) or not all(isinstance(k, str) and torch.is_tensor(v) for k, v in state.items()):
        raise CheckpointError(f"{where}: not a plain state dict (a mapping of parameter names to tensors, as "
                              "fastMRI's published files)")
    expected = model.state_dict()
    for key, tensor in expected.items():
        if key not in state:
            raise CheckpointError(f"{where}: key {key!r} of the variant's network (shape {tuple(tensor.shape)}) is "
                                  f"missing from the checkpoint")
        if tuple(state[key].shape) != tuple(tensor.shape):
            raise CheckpointError(f"{where}: key {key!r} has shape {tuple(state[key].shape)} in the checkpoint but "
                                  f"{tuple(tensor.shape)} in the variant's network")
    if extra := [k for k in state if k not in expected]:
        raise CheckpointError(f"{where}: key {extra[0]!r} of the checkpoint (shape {tuple(state[extra[0]].shape)}) is "
                              f"not in the variant's network ({len(extra)} such keys)")


def load_published(path: str | os.PathLike, spec: Spec, variant: str, sha256: str) -> torch.nn.Module:
    """The network of ``spec`` with the weights of a state dict file in fastMRI's layout (a variant's checkpoint),
    on the CPU in eval mode. The file's SHA-256 must equal ``sha256`` (ChecksumError naming the file otherwise)
    before it is read with ``torch.load(weights_only=True)``; its keys and shapes are then checked against the
    network (:func:`check_state_dict`)."""
    from .download import ChecksumError, sha256sum

    path = Path(path)
    where = f"{path} (checkpoint of variant {variant!r})"
    actual = sha256sum(path)
    if actual != sha256.lower():
        raise ChecksumError(f"{where}: SHA-256 mismatch: expected {sha256.lower()}, got {actual}")
    state = _torch_load(path, torch.device("cpu"), "checkpoint", f"; variant {variant!r}")
    model = build_model(spec)
    check_state_dict(state, model, where)
    model.load_state_dict(state)
    return model.eval()
