"""Training the trained baselines of the study: the fastMRI U-Net and the end-to-end VarNet.

Study facts (Darestani, Chaudhari & Heckel 2021, and the test-time-training follow-up):

U-Net (``fastmri.models.Unet``, 1 -> 1 channel, no dropout)
    input   the zero-filled image: RSS over coils of ``ifft2c(M * y)``, centre-cropped to the
            target size, instance-normalised with its own mean and std and clamped to +-6;
    target  the fastMRI ``reconstruction_rss`` slice, normalised with the *input's* mean/std and
            clamped to +-6;
    loss    L1 between normalised output and normalised target (``loss: l1``, the default), or
            1 - SSIM between the de-normalised output (out * std + mean) and the raw target with
            data range = the volume's max (``loss: ssim``);
    optim   RMSprop lr 1e-3, StepLR(step 40, gamma 0.1), batch 16, 50 epochs.
VarNet (``fastmri.models.VarNet``)
    input   masked k-space as a real view [B, C, H, W, 2], the mask as bool [B, 1, 1, W, 1] and the
            number of low-frequency lines; output RSS [B, H, W] centre-cropped to the target size;
    loss    1 - SSIM (``fastmri.losses.SSIMLoss``) with data range = the volume's max (default), or
            ``loss: l1``: mean |out - target| / max (divided by the volume max so that the loss does not
            depend on the k-space scale of the data set);
    optim   Adam lr 3e-4, StepLR(step 40, gamma 0.1), batch 1, 50 epochs.
Networks for test-time training (TTT follow-up; ``robustcs.ttt``)
    ``input: complex`` U-Net: ``fastmri.models.varnet.NormUnet`` (2 -> 2 channels = one complex image,
            its own mean/std normalisation and padding) on A^H y = S^H F^H M y with the slice's ESPIRiT
            maps S, on the full k-space grid; its magnitude, centre-cropped, is the reconstruction.
    ``self_supervised: w`` (U-Net ``input: complex`` or VarNet): the loss adds w times the study's
            self-supervised loss ||M (y - F S f(A^H y))||_1 / ||M y||_1 (l1 over real and imaginary
            parts), the study's 1:1 joint training for w = 1. The VarNet's image f is its final k-space
            combined with its own estimated maps (``sens_reduce``), re-expanded with the same maps.
    Training a complex U-Net needs ESPIRiT maps of every training/validation slice: they come from the
    stored mask's fully sampled centre, which is the same for every mask the training draws (the centre
    fraction fixes it), so one map per slice serves all epochs.

Choices of this implementation:

* Masks: every training example gets a fresh mask per (epoch, file stem, slice), drawn by
  :func:`robustcs.masks.make_mask` with seed ``stable_seed(seed, "train", epoch, stem, slice)``;
  validation uses fixed masks seeded by ``stable_seed(seed, "val", stem, slice)``. Nothing depends on
  the global RNG, so an interrupted and resumed run sees exactly the same examples.
* Training set: the manifest rows of split ``train`` ordered by (stem, slice). ``train_fraction`` keeps
  the first ceil(fraction x volumes) stems of one seeded permutation (``stable_seed(seed,
  "fraction")``), so a smaller fraction is always a subset of a larger one.
* Order: each epoch shuffles the examples with a ``torch.Generator`` seeded by
  ``stable_seed(seed, "shuffle", epoch)``; batches are stacked, and slices of different shapes in one
  batch are an error that suggests ``batch_size: 1``.
* Epochs are counted from 0 (the ``epoch`` column of the history, the mask seeds and the checkpoint).
* Checkpoints: after every epoch ``checkpoint_dir/last.pt`` is written atomically (temporary file,
  fsync, rename) with the model, optimizer and scheduler states and the history, all plain types and
  tensors (``torch.load(weights_only=True)`` reads it). A run resumes from it when its family, spec,
  seed, mask spec and training/validation slices all match; otherwise it warns and starts afresh. An
  unreadable checkpoint is an error naming the file, never silently ignored.
* The model is initialised under ``torch.random.fork_rng`` with ``torch.manual_seed(stable_seed(seed,
  "init"))``, so the caller's RNG state is untouched and the initial weights depend only on the seed.
  On the CPU an interrupted-then-resumed run ends with bit-identical weights to an uninterrupted one
  (given the same number of threads).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

import h5py
import numpy as np
import pandas as pd
import torch
from fastmri import evaluate
from fastmri.losses import SSIMLoss
from fastmri.models import Unet, VarNet
from fastmri.models.varnet import NormUnet
from tqdm import tqdm

from .fastmri_io import center_crop
from .masks import MaskSpec, make_mask
from .physics import fft2c, ifft2c, mask_tensor, replace_measured, rss, zero_filled
from .util import atomic_path, stable_seed

LOSSES = ("l1", "ssim")
INPUTS = ("rss", "complex")
MAPS = ("learned", "espirit")
HISTORY_COLUMNS = ["epoch", "train_loss", "val_loss", "val_ssim", "seconds"]
CHECKPOINT_NAME = "last.pt"
#: U-Net input/target clamp after instance normalisation (fastMRI's UnetDataTransform).
CLAMP = 6.0
#: Added to the instance std (fastMRI's ``normalize_instance(eps=1e-11)``).
NORM_EPS = 1e-11
#: Keys of a model config that belong to the workflow, not to the network.
WORKFLOW_KEYS = ("family", "train_on", "train_mask")


@dataclass(frozen=True)
class UnetSpec:
    """Hyper-parameters of a U-Net (defaults: the study's fastMRI baseline)."""

    chans: int = 32
    pools: int = 4
    epochs: int = 50
    lr: float = 1e-3
    lr_step: int = 40
    lr_gamma: float = 0.1
    batch_size: int = 16
    loss: str = "l1"
    train_fraction: float = 1.0
    input: str = "rss"
    self_supervised: float = 0.0


@dataclass(frozen=True)
class VarNetSpec:
    """Hyper-parameters of an end-to-end VarNet (defaults: the fastMRI VarNet)."""

    cascades: int = 12
    chans: int = 18
    pools: int = 4
    sens_chans: int = 8
    sens_pools: int = 4
    epochs: int = 50
    lr: float = 3e-4
    lr_step: int = 40
    lr_gamma: float = 0.1
    batch_size: int = 1
    loss: str = "ssim"
    train_fraction: float = 1.0
    self_supervised: float = 0.0
    maps: str = "learned"


Spec = UnetSpec | VarNetSpec
FAMILIES: dict[str, type] = {"unet": UnetSpec, "varnet": VarNetSpec}


class CheckpointError(RuntimeError):
    """A checkpoint or model file cannot be used; the message names the file."""


# --------------------------------------------------------------------------------------------------
# Specs
# --------------------------------------------------------------------------------------------------


def family_of(spec: Spec) -> str:
    """``"unet"`` or ``"varnet"``."""
    for name, cls in FAMILIES.items():
        if type(spec) is cls:
            return name
    raise TypeError(f"not a model spec: {spec!r}")


def _check_field(family: str, key: str, value: Any, default: Any) -> Any:
    """Validate and normalise one spec field; ValueError names the key."""
    where = f"models ({family}): {key}"
    if key in ("loss", "input", "maps"):
        choices = {"loss": LOSSES, "input": INPUTS, "maps": MAPS}[key]
        if value not in choices:
            raise ValueError(f"{where}: expected one of {choices}, got {value!r}")
        return value
    if isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
            raise ValueError(f"{where}: expected a positive integer, got {value!r}")
        return int(value)
    # float fields; YAML 1.1 reads "1e-3" as a string, so accept numeric strings.
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise ValueError(f"{where}: expected a number, got {value!r}") from None
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"{where}: expected a number, got {value!r}")
    value = float(value)
    if key == "self_supervised":
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"{where}: expected a weight >= 0, got {value!r}")
        return value
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{where}: expected a positive number, got {value!r}")
    if key == "train_fraction" and value > 1:
        raise ValueError(f"{where}: expected a fraction in (0, 1], got {value!r}")
    return value


def spec_from_config(cfg: dict) -> Spec:
    """A :class:`UnetSpec` or :class:`VarNetSpec` from a model config.

    ``cfg["family"]`` picks the class; the keys ``family``, ``train_on`` and ``train_mask`` are ignored
    (workflow level); missing fields take the defaults. Raises ValueError naming the key for unknown
    keys and bad values.
    """
    if not isinstance(cfg, dict):
        raise ValueError(f"model config must be a mapping, got {type(cfg).__name__}")
    family = cfg.get("family")
    if family not in FAMILIES:
        raise ValueError(f"family: expected one of {tuple(FAMILIES)}, got {family!r}")
    cls = FAMILIES[family]
    fields = {f.name: f.default for f in dataclasses.fields(cls)}
    values = {}
    for key, value in cfg.items():
        if key in WORKFLOW_KEYS:
            continue
        if key not in fields:
            raise ValueError(f"{key}: unknown key for a {family} model; expected some of {sorted(fields)}")
        values[key] = _check_field(family, key, value, fields[key])
    spec = cls(**values)
    if isinstance(spec, UnetSpec) and spec.self_supervised > 0 and spec.input != "complex":
        raise ValueError("self_supervised: the self-supervised loss needs a complex image; set input: complex")
    return spec


def needs_maps(spec: Spec) -> bool:
    """Whether the network reads ESPIRiT maps (the complex-input U-Net, the VarNet with ``maps: espirit``)."""
    if isinstance(spec, VarNetSpec):
        return spec.maps == "espirit"
    return isinstance(spec, UnetSpec) and spec.input == "complex"


def has_kspace_output(spec: Spec) -> bool:
    """Whether the network yields a predicted k-space F S f(A^H y), needed by test-time training."""
    return isinstance(spec, VarNetSpec) or needs_maps(spec)


def spec_to_dict(spec: Spec) -> dict:
    """The spec's fields as a plain dict (without the family)."""
    return asdict(spec)


def build_model(spec: Spec) -> torch.nn.Module:
    """An untrained network for ``spec`` (weights from the current global RNG)."""
    if isinstance(spec, UnetSpec) and spec.input == "complex":
        return NormUnet(spec.chans, spec.pools, in_chans=2, out_chans=2, drop_prob=0.0)
    if isinstance(spec, UnetSpec):
        return Unet(in_chans=1, out_chans=1, chans=spec.chans, num_pool_layers=spec.pools, drop_prob=0.0)
    if isinstance(spec, VarNetSpec):
        return VarNet(
            num_cascades=spec.cascades,
            sens_chans=spec.sens_chans,
            sens_pools=spec.sens_pools,
            chans=spec.chans,
            pools=spec.pools,
        )
    raise TypeError(f"not a model spec: {spec!r}")


def init_model(spec: Spec, seed: int) -> torch.nn.Module:
    """:func:`build_model` with weights seeded by ``stable_seed(seed, "init")``; global RNG untouched."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(stable_seed(seed, "init"))
        return build_model(spec)


# --------------------------------------------------------------------------------------------------
# Forward passes
# --------------------------------------------------------------------------------------------------


def _batch_mask(mask: torch.Tensor, batch: int, device: torch.device) -> torch.Tensor:
    """A [W] or [B, W] 0/1 mask as float32 [B, W] on ``device``."""
    m = mask_tensor(mask, device)
    if m.ndim == 1:
        m = m.unsqueeze(0).expand(batch, -1)
    if m.ndim != 2 or m.shape[0] != batch:
        raise ValueError(f"mask must be [W] or [B={batch}, W], got shape {tuple(mask.shape)}")
    return m


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


def coil_mask(mask: torch.Tensor) -> torch.Tensor:
    """A sampling pattern [B, W] (columns) or [B, H, W] (points) shaped to multiply k-space [B, C, H, W]."""
    return mask[:, None, None, :] if mask.ndim == 2 else mask[:, None]


def unet_complex(model: torch.nn.Module, kspace: torch.Tensor, mask: torch.Tensor, sens: torch.Tensor) -> torch.Tensor:
    """The complex-input U-Net on A^H y = S^H F^H M y. kspace, sens [B, C, H, W] complex, mask [B, W].

    Returns the complex image [B, H, W] on the full k-space grid.
    """
    if sens is None:
        raise ValueError("the complex-input U-Net needs ESPIRiT maps (sens)")
    x0 = (sens.conj() * zero_filled(kspace, coil_mask(mask))).sum(-3)
    out = model(torch.view_as_real(x0).unsqueeze(1))  # [B, 1, H, W, 2]
    return torch.view_as_complex(out.squeeze(1).contiguous())


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


def _through_maps(
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
    ``predict_kspace``) exists for the complex U-Net (with the ESPIRiT maps) and the VarNet (its final
    k-space through its own maps); it is what the self-supervised loss compares with the measurements.
    """
    if isinstance(spec, UnetSpec) and spec.input == "complex":
        image = unet_complex(model, kspace, mask, sens)
        return _through_maps(image, kspace, mask, sens, target_shape, predict_kspace)
    if isinstance(spec, UnetSpec):
        if predict_kspace:
            raise ValueError("the RSS-input U-Net has no k-space prediction; use input: complex")
        out, mean, std = unet_normalised(model, kspace, mask, target_shape)
        return out * std + mean, None
    if isinstance(spec, VarNetSpec):
        if spec.maps == "espirit" and sens is None:
            raise ValueError("the VarNet with maps: espirit needs ESPIRiT maps (sens)")
        if not predict_kspace and spec.maps == "learned":
            return varnet_forward(model, kspace, mask, target_shape, num_low_frequencies), None
        pred, est = varnet_kspace(model, kspace, mask, num_low_frequencies, sens if spec.maps == "espirit" else None)
        if spec.maps == "espirit":  # one image through the ESPIRiT maps, like ℓ1 and the complex U-Net
            return _through_maps((est.conj() * ifft2c(pred)).sum(-3), kspace, mask, est, target_shape, predict_kspace)
        magnitude = center_crop(rss(ifft2c(pred)), tuple(target_shape))
        if not predict_kspace:
            return magnitude, None
        image = (est.conj() * ifft2c(pred)).sum(-3, keepdim=True)
        return magnitude, fft2c(est * image)
    raise TypeError(f"not a model spec: {spec!r}")


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
# Data
# --------------------------------------------------------------------------------------------------


@dataclass
class Example:
    """One slice with its mask. kspace [C, H, W] complex64 (unmasked), mask [W] bool, target [th, tw],
    sens [C, H, W] complex64 ESPIRiT maps (networks that read them) or None."""

    stem: str
    slice: int
    kspace: torch.Tensor
    mask: torch.Tensor
    num_low: int
    target: torch.Tensor
    max: float
    sens: torch.Tensor | None = None


@dataclass
class Batch:
    """Stacked examples: kspace [B, C, H, W] complex, mask [B, W] float, target [B, th, tw], max [B],
    sens [B, C, H, W] complex or None."""

    kspace: torch.Tensor
    mask: torch.Tensor
    num_low: int | None
    target: torch.Tensor
    max: torch.Tensor
    sens: torch.Tensor | None = None

    def __len__(self) -> int:
        return self.kspace.shape[0]


def read_slice(path: str, index: int) -> tuple[np.ndarray, np.ndarray]:
    """(kspace [C, H, W] complex64, reconstruction_rss [th, tw] float32) of one slice of a file."""
    with h5py.File(path, "r") as f:
        return np.asarray(f["kspace"][index], np.complex64), np.asarray(f["reconstruction_rss"][index], np.float32)


def read_maps(path: str | os.PathLike, index: int) -> np.ndarray:
    """ESPIRiT maps [C, H, W] of slice ``index`` from a maps file of the sensitivities rule."""
    with h5py.File(path, "r") as f:
        slices = f["slices"][()].tolist()
        if index not in slices:
            raise ValueError(f"{path}: no ESPIRiT maps for slice {index} (has {slices})")
        return np.asarray(f["sens"][slices.index(index)], np.complex64)


def load_example(row: dict, mask_spec: MaskSpec, mask_seed: int, maps: dict | None = None) -> Example:
    """Read one manifest row's slice and draw its mask with ``mask_seed``; ``maps`` (stem -> maps file)
    adds the slice's ESPIRiT maps."""
    kspace, target = read_slice(str(row["path"]), int(row["slice"]))
    mask, num_low, _ = make_mask(mask_spec, kspace.shape[-1], mask_seed)
    sens = None
    if maps is not None:
        stem = str(row["stem"])
        if stem not in maps:
            raise ValueError(f"no ESPIRiT maps file for training file {stem!r}")
        sens = torch.from_numpy(read_maps(maps[stem], int(row["slice"])))
        if sens.shape != kspace.shape:
            raise ValueError(f"{maps[stem]}: maps {tuple(sens.shape)} do not match k-space {kspace.shape} of {stem}")
    return Example(
        stem=str(row["stem"]), slice=int(row["slice"]), kspace=torch.from_numpy(kspace),
        mask=torch.from_numpy(mask), num_low=num_low, target=torch.from_numpy(target), max=float(row["max"]),
        sens=sens,
    )


def collate(examples: Sequence[Example], device: torch.device) -> Batch:
    """Stack examples into a :class:`Batch` on ``device``; slices of different shapes are an error."""
    first = examples[0]
    for ex in examples[1:]:
        if ex.kspace.shape != first.kspace.shape or ex.target.shape != first.target.shape:
            raise ValueError(
                f"cannot batch slices of different shapes: {first.stem}[{first.slice}] has k-space "
                f"{tuple(first.kspace.shape)} / target {tuple(first.target.shape)} but {ex.stem}[{ex.slice}] has "
                f"{tuple(ex.kspace.shape)} / {tuple(ex.target.shape)}; set batch_size: 1 in the model's config"
            )
    lows = {ex.num_low for ex in examples}
    return Batch(
        kspace=torch.stack([ex.kspace for ex in examples]).to(device),
        mask=torch.stack([ex.mask for ex in examples]).to(device=device, dtype=torch.float32),
        # One number for the batch if all agree, else let the VarNet read the centre from each mask.
        num_low=lows.pop() if len(lows) == 1 else None,
        target=torch.stack([ex.target for ex in examples]).to(device),
        max=torch.tensor([ex.max for ex in examples], dtype=torch.float32, device=device),
        sens=None if first.sens is None else torch.stack([ex.sens for ex in examples]).to(device),
    )


def training_rows(manifest: pd.DataFrame, fraction: float, seed: int) -> pd.DataFrame:
    """The ``train`` rows kept by ``fraction``, ordered by (stem, slice).

    Stems are permuted once with ``stable_seed(seed, "fraction")`` and the first
    ceil(fraction x number of volumes) are kept, so smaller fractions give subsets of larger ones.
    """
    rows = manifest[manifest["split"] == "train"]
    if rows.empty:
        raise ValueError("the manifest has no rows of split 'train'; nothing to train on")
    stems = sorted({str(s) for s in rows["stem"]})
    order = np.random.default_rng(stable_seed(seed, "fraction")).permutation(len(stems))
    # round() first: 0.3 * 10 is 3.0000000000000004 in floating point.
    keep_n = max(1, math.ceil(round(fraction * len(stems), 9)))
    keep = {stems[i] for i in order[:keep_n]}
    rows = rows[rows["stem"].astype(str).isin(keep)]
    return _sorted_rows(rows)


def _sorted_rows(rows: pd.DataFrame) -> pd.DataFrame:
    rows = rows.assign(_stem=rows["stem"].astype(str)).sort_values(["_stem", "slice"], kind="stable")
    return rows.drop(columns="_stem").reset_index(drop=True)


def _batches(
    rows: list[dict], order: Sequence[int], batch_size: int, mask_spec: MaskSpec, seed_of, device: torch.device,
    maps: dict | None = None,
) -> Iterator[Batch]:
    """Batches of the rows in ``order``; ``seed_of(row)`` gives each row's mask seed.

    Slices of different k-space shapes (fastMRI knee widths vary between files, 15 vs 16 coils) cannot be
    stacked, so rows are batched by shape (coils, height, width) as fastMRI's samplers do: walking ``order``,
    each row joins the open batch of its shape, which is yielded when full; the unfilled ones follow at the
    end in the order they were opened. With one shape this is plain consecutive batching of ``order``."""
    open_batches: dict[tuple, list[dict]] = {}
    for i in order:
        row = rows[int(i)]
        key = tuple(int(row[k]) for k in ("coils", "height", "width")) if "width" in row else ()
        batch = open_batches.setdefault(key, [])
        batch.append(row)
        if len(batch) == batch_size:
            del open_batches[key]
            yield collate([load_example(r, mask_spec, seed_of(r), maps) for r in batch], device)
    for batch in open_batches.values():
        yield collate([load_example(r, mask_spec, seed_of(r), maps) for r in batch], device)


# --------------------------------------------------------------------------------------------------
# Loss
# --------------------------------------------------------------------------------------------------


class Criterion:
    """The training loss of a spec; :meth:`__call__` returns (mean loss, images [B, th, tw])."""

    def __init__(self, spec: Spec, device: torch.device):
        self.spec = spec
        self.ssim = SSIMLoss().to(device)

    def _ssim_loss(self, image: torch.Tensor, batch: Batch) -> torch.Tensor:
        return self.ssim(image.unsqueeze(1), batch.target.unsqueeze(1), data_range=batch.max)

    def __call__(self, model: torch.nn.Module, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        shape = tuple(batch.target.shape[-2:])
        if has_kspace_output(self.spec) and (needs_maps(self.spec) or self.spec.self_supervised > 0):
            # Complex U-Net, or a VarNet with the joint loss: supervised term on the magnitude (as the
            # VarNet's), plus the weighted self-supervised term on the predicted k-space.
            weight = self.spec.self_supervised
            image, predicted = forward(model, self.spec, batch.kspace, batch.mask, shape, batch.num_low, batch.sens,
                                       predict_kspace=weight > 0)
            if self.spec.loss == "l1":
                scale = batch.max[:, None, None]
                loss = torch.nn.functional.l1_loss(image / scale, batch.target / scale)
            else:
                loss = self._ssim_loss(image, batch)
            if weight > 0:
                m = batch.mask[:, None, None, :]
                loss = loss + weight * self_supervised_loss(predicted, m * batch.kspace, m)
            return loss, image
        if isinstance(self.spec, UnetSpec):
            out, mean, std = unet_normalised(model, batch.kspace, batch.mask, shape)
            image = out * std + mean
            if self.spec.loss == "l1":
                target = ((batch.target - mean) / std).clamp(-CLAMP, CLAMP)
                return torch.nn.functional.l1_loss(out, target), image
            return self._ssim_loss(image, batch), image
        image = varnet_forward(model, batch.kspace, batch.mask, shape, batch.num_low)
        if self.spec.loss == "l1":
            scale = batch.max[:, None, None]
            return torch.nn.functional.l1_loss(image / scale, batch.target / scale), image
        return self._ssim_loss(image, batch), image


# --------------------------------------------------------------------------------------------------
# Checkpoints
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


def _load_checkpoint(path: Path, device: torch.device) -> dict:
    """Read a training checkpoint; CheckpointError naming the file if it is unreadable or malformed."""
    state = _torch_load(path, device, "training checkpoint", "; delete it to restart training from scratch")
    needed = ("epoch", "family", "spec", "run", "model", "optimizer", "scheduler", "history")
    if not isinstance(state, dict) or any(k not in state for k in needed):
        raise CheckpointError(
            f"{path}: not a training checkpoint (expected a dict with keys {needed}); "
            "delete it to restart training from scratch"
        )
    return state


def _fingerprint(rows: list[dict]) -> str:
    """A short hash of a set of manifest rows, every column included (files, slices, shapes, volume max),
    so a checkpoint never resumes on data that changed since it was written."""
    return hashlib.sha256(json.dumps(rows, sort_keys=True, default=str).encode()).hexdigest()[:16]


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
# Training
# --------------------------------------------------------------------------------------------------


def _make_optimizer(spec: Spec, model: torch.nn.Module) -> torch.optim.Optimizer:
    if isinstance(spec, UnetSpec):
        return torch.optim.RMSprop(model.parameters(), lr=spec.lr)
    return torch.optim.Adam(model.parameters(), lr=spec.lr)


@torch.no_grad()
def _validate(
    model: torch.nn.Module, spec: Spec, criterion: Criterion, rows: list[dict], mask_spec: MaskSpec,
    seed: int, device: torch.device, maps: dict | None = None,
) -> tuple[float, float]:
    """Mean validation loss and mean fastMRI SSIM (volume max as data range) over the val slices."""
    model.eval()
    total_loss, ssims = 0.0, []
    order = list(range(len(rows)))
    seed_of = lambda r: stable_seed(seed, "val", str(r["stem"]), int(r["slice"]))  # noqa: E731
    for batch in _batches(rows, order, spec.batch_size, mask_spec, seed_of, device, maps):
        loss, image = criterion(model, batch)
        total_loss += float(loss) * len(batch)
        pred = image.detach().cpu().numpy().astype(np.float64)
        gt = batch.target.cpu().numpy().astype(np.float64)
        for i in range(len(batch)):
            ssims.append(np.asarray(evaluate.ssim(gt[i][None], pred[i][None], maxval=float(batch.max[i]))).item())
    return total_loss / len(rows), float(np.mean(ssims))


def _try_resume(
    path: Path, identity: dict, model: torch.nn.Module, optimizer, scheduler, device: torch.device,
    log: logging.Logger | None,
) -> tuple[int, list[dict]]:
    """Load ``path`` into model/optimizer/scheduler if it belongs to this run; returns (first epoch, history)."""
    if not path.exists():
        return 0, []
    state = _load_checkpoint(path, device)
    found = {"family": state["family"], "spec": state["spec"], "run": state["run"]}
    if found != identity:
        if log:
            log.warning(
                "checkpoint %s belongs to another configuration (found %s, expected %s); starting afresh",
                path, found, identity,
            )
        return 0, []
    try:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
    except (RuntimeError, ValueError, KeyError, TypeError) as exc:
        raise CheckpointError(f"{path}: checkpoint does not fit the model: {exc}") from exc
    epoch = int(state["epoch"])
    if log:
        log.info("resuming from %s: epoch %d done, continuing with epoch %d", path, epoch, epoch + 1)
    return epoch + 1, list(state["history"])


def train(
    spec: Spec,
    manifest: pd.DataFrame,
    mask_spec: MaskSpec,
    seed: int,
    checkpoint_dir: str | os.PathLike,
    device: torch.device,
    tqdm_file=None,
    log: logging.Logger | None = None,
    maps: dict | None = None,
) -> tuple[torch.nn.Module, pd.DataFrame]:
    """Train a U-Net or VarNet on the manifest's ``train`` rows, resuming from ``checkpoint_dir/last.pt``.

    ``maps`` (file stem -> ESPIRiT maps file) is required by networks that read maps (:func:`needs_maps`).

    Returns the trained model (on ``device``) and the history table with columns
    epoch, train_loss, val_loss, val_ssim, seconds (val columns NaN without ``val`` rows).
    """
    device = torch.device(device)
    family = family_of(spec)
    if needs_maps(spec) and maps is None:
        raise ValueError(f"a {family} with input: complex needs ESPIRiT maps of its training slices (maps=...)")
    maps = maps if needs_maps(spec) else None
    train_set = training_rows(manifest, spec.train_fraction, seed).to_dict("records")
    val_set = _sorted_rows(manifest[manifest["split"] == "val"]).to_dict("records")
    identity = {
        "family": family,
        "spec": spec_to_dict(spec),
        "run": {
            "seed": int(seed),
            "mask": asdict(mask_spec),
            "train": _fingerprint(train_set),
            "val": _fingerprint(val_set),
        },
    }

    model = init_model(spec, seed).to(device)
    optimizer = _make_optimizer(spec, model)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=spec.lr_step, gamma=spec.lr_gamma)
    criterion = Criterion(spec, device)
    ckpt = Path(checkpoint_dir) / CHECKPOINT_NAME
    start, history = _try_resume(ckpt, identity, model, optimizer, scheduler, device, log)
    if log and start >= spec.epochs:
        log.info("%s: all %d epochs already done; nothing to train", ckpt, spec.epochs)
    elif log:
        log.info(
            "training %s %s on %d slices (%d volumes), %d validation slices, device %s, epochs %d..%d",
            family, spec, len(train_set), len({r["stem"] for r in train_set}), len(val_set), device, start, spec.epochs - 1,
        )

    for epoch in range(start, spec.epochs):
        t0 = time.perf_counter()
        model.train()
        gen = torch.Generator().manual_seed(stable_seed(seed, "shuffle", epoch))
        order = torch.randperm(len(train_set), generator=gen).tolist()
        seed_of = lambda r, e=epoch: stable_seed(seed, "train", e, str(r["stem"]), int(r["slice"]))  # noqa: E731
        n_batches = math.ceil(len(order) / spec.batch_size)
        total = 0.0
        bar = tqdm(
            _batches(train_set, order, spec.batch_size, mask_spec, seed_of, device, maps),
            total=n_batches, desc=f"{family} epoch {epoch}", file=tqdm_file, mininterval=5,
            disable=tqdm_file is None,
        )
        for batch in bar:
            loss, _ = criterion(model, batch)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            value = float(loss.detach())
            if not math.isfinite(value):
                raise FloatingPointError(f"{family} training loss is {value} in epoch {epoch}; lower the learning rate")
            total += value * len(batch)
        bar.close()
        scheduler.step()
        train_loss = total / len(train_set)
        val_loss, val_ssim = (
            _validate(model, spec, criterion, val_set, mask_spec, seed, device, maps) if len(val_set) else (math.nan, math.nan)
        )
        seconds = time.perf_counter() - t0
        history.append(
            {"epoch": epoch, "train_loss": train_loss, "val_loss": val_loss, "val_ssim": val_ssim, "seconds": seconds}
        )
        _save_checkpoint(ckpt, {
            "epoch": epoch,
            "family": family,
            "spec": identity["spec"],
            "run": identity["run"],
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "history": history,
        })
        if log:
            log.info(
                "%s epoch %d/%d: train loss %.5f, val loss %.5f, val SSIM %.4f, lr %.2e, %.1f s",
                family, epoch + 1, spec.epochs, train_loss, val_loss, val_ssim, scheduler.get_last_lr()[0], seconds,
            )
    model.eval()
    return model, pd.DataFrame(history, columns=HISTORY_COLUMNS)
