"""Training the trained baselines of the study: the fastMRI U-Net and the end-to-end VarNet, or any network kind
registered for a family (the networks, their inputs and forward passes: :mod:`robustcs.networks`).

Study facts (Darestani, Chaudhari & Heckel 2021, and the test-time-training follow-up):

Each network's input, loss and optimiser are its kind's (:mod:`robustcs.unet`, :mod:`robustcs.varnet`, asked
through :func:`robustcs.networks.network_of`): the U-Net's L1 in its normalised domain with RMSprop, the VarNet's
1 - SSIM with Adam, by default.
Networks for test-time training (TTT follow-up; ``robustcs.ttt``)
    ``self_supervised: w`` (U-Net ``input: complex`` or VarNet): the loss adds w times the study's
            self-supervised loss ||M (y - F S f(A^H y))||_1 / ||M y||_1 (l1 over real and imaginary
            parts), the study's 1:1 joint training for w = 1.
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
  "fraction")``), so a smaller fraction is always a subset of a larger one. ``max_train_slices`` (instead)
  keeps whole volumes up to that many slices, ``max_val_slices`` likewise for the ``val`` rows, in the order
  of :func:`robustcs.manifest.capped_stems` (SHA-256 of seed and stem; standard library, so that the training
  job asks for the ESPIRiT maps of the kept volumes only): the TTT study's equal-size training sets.
* Order: each epoch shuffles the examples with a ``torch.Generator`` seeded by
  ``stable_seed(seed, "shuffle", epoch)``; batches are stacked, and slices of different shapes in one
  batch are an error that suggests ``batch_size: 1``.
* Epochs are counted from 0 (the ``epoch`` column of the history, the mask seeds and the checkpoint).
* Checkpoints: after every epoch ``checkpoint_dir/last.pt`` is written atomically (temporary file,
  fsync, rename) with the model, optimizer and scheduler states and the history, all plain types and
  tensors (``torch.load(weights_only=True)`` reads it). A run resumes from it when its family, spec,
  seed, mask spec and training/validation slices all match; otherwise it warns and starts afresh. An
  unreadable checkpoint is an error naming the file, never silently ignored.
* On the CPU an interrupted-then-resumed run ends with bit-identical weights to an uninterrupted one
  (given the same number of threads).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterator, Sequence

import h5py
import numpy as np
import pandas as pd
import torch
from fastmri.losses import SSIMLoss
from tqdm import tqdm

from . import metrics
from .manifest import capped_stems
from .masks import MaskSpec, make_mask
from .recon_io import read_maps
from .networks import (
    CheckpointError,
    Spec,
    _save_checkpoint,
    _torch_load,
    family_of,
    init_model,
    needs_maps,
    network_of,
    spec_to_dict,
)
from .precision import MixedPrecision
from .util import stable_seed

HISTORY_COLUMNS = ["epoch", "train_loss", "val_loss", "val_ssim", "seconds"]
CHECKPOINT_NAME = "last.pt"


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
        sens = torch.from_numpy(read_maps(maps[stem], stem, int(row["slice"])))
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


def training_rows(manifest: pd.DataFrame, fraction: float, seed: int, max_slices: int | None = None) -> pd.DataFrame:
    """The ``train`` rows kept by ``fraction`` and the slice cap ``max_slices``, ordered by (stem, slice).

    Stems are permuted once with ``stable_seed(seed, "fraction")`` and the first
    ceil(fraction x number of volumes) are kept, so smaller fractions give subsets of larger ones; the cap
    keeps whole volumes (:func:`capped_rows`).
    """
    rows = capped_rows(manifest, "train", max_slices, seed, "max_train_slices")
    if rows.empty:
        raise ValueError("the manifest has no rows of split 'train'; nothing to train on")
    stems = sorted({str(s) for s in rows["stem"]})
    order = np.random.default_rng(stable_seed(seed, "fraction")).permutation(len(stems))
    # round() first: 0.3 * 10 is 3.0000000000000004 in floating point.
    keep_n = max(1, math.ceil(round(fraction * len(stems), 9)))
    keep = {stems[i] for i in order[:keep_n]}
    rows = rows[rows["stem"].astype(str).isin(keep)]
    return _sorted_rows(rows)


def capped_rows(manifest: pd.DataFrame, split: str, max_slices: int | None, seed: int, field: str) -> pd.DataFrame:
    """The rows of ``split`` whose volumes the slice cap keeps (all without a cap), ordered by (stem, slice)."""
    rows = manifest[manifest["split"] == split]
    if max_slices is not None:
        keep = capped_stems(rows[["split", "stem"]].to_dict("records"), split, max_slices, seed, field)
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
    """The training loss of a spec (its network kind's, :meth:`robustcs.networks.Network.loss`);
    :meth:`__call__` returns (mean loss, images [B, th, tw])."""

    def __init__(self, spec: Spec, device: torch.device):
        self.spec = spec
        self.network = network_of(spec)
        self.ssim = SSIMLoss().to(device)

    def _ssim_loss(self, image: torch.Tensor, batch: Batch) -> torch.Tensor:
        return self.ssim(image.unsqueeze(1), batch.target.unsqueeze(1), data_range=batch.max)

    def __call__(self, model: torch.nn.Module, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        return self.network.loss(model, self.spec, batch, self._ssim_loss)


# --------------------------------------------------------------------------------------------------
# Checkpoints
# --------------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------------------------------


def make_optimizer(spec: Spec, model: torch.nn.Module) -> torch.optim.Optimizer:
    """The network kind's optimiser at the spec's learning rate: RMSprop for the U-Net (the study's; ``optimizer:
    adam`` for the TTT study's U-Net), Adam otherwise."""
    return network_of(spec).optimizer(spec, model)


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
            ssims.append(metrics.ssim(gt[i], pred[i], float(batch.max[i])))
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


def _run_identity(spec: Spec, manifest: pd.DataFrame, mask_spec: MaskSpec, seed: int) -> tuple[list, list, dict]:
    """(training rows, validation rows, the run's identity): what a checkpoint must match to be resumed."""
    train_set = training_rows(manifest, spec.train_fraction, seed, spec.max_train_slices).to_dict("records")
    val_set = capped_rows(manifest, "val", spec.max_val_slices, seed, "max_val_slices").to_dict("records")
    identity = {
        "family": family_of(spec),
        "spec": spec_to_dict(spec),
        "run": {
            "seed": int(seed),
            "mask": asdict(mask_spec),
            "train": _fingerprint(train_set),
            "val": _fingerprint(val_set),
        },
    }
    return train_set, val_set, identity


def _train_epoch(
    model: torch.nn.Module, spec: Spec, criterion: Criterion, optimizer: torch.optim.Optimizer, rows: list[dict],
    mask_spec: MaskSpec, seed: int, epoch: int, device: torch.device, maps: dict | None, tqdm_file,
    amp: MixedPrecision,
) -> float:
    """One epoch of updates over ``rows`` in the epoch's seeded order, with the epoch's masks; the mean loss.
    ``amp``: the steps' float precision (the spec's ``precision``)."""
    family = family_of(spec)
    model.train()
    gen = torch.Generator().manual_seed(stable_seed(seed, "shuffle", epoch))
    order = torch.randperm(len(rows), generator=gen).tolist()
    seed_of = lambda r: stable_seed(seed, "train", epoch, str(r["stem"]), int(r["slice"]))  # noqa: E731
    n_batches = math.ceil(len(order) / spec.batch_size)
    total = 0.0
    bar = tqdm(
        _batches(rows, order, spec.batch_size, mask_spec, seed_of, device, maps),
        total=n_batches, desc=f"{family} epoch {epoch}", file=tqdm_file, mininterval=5,
        disable=tqdm_file is None,
    )
    for batch in bar:
        with amp.autocast():
            loss, _ = criterion(model, batch)
        optimizer.zero_grad(set_to_none=True)
        amp.step(loss, optimizer)
        value = float(loss.detach())
        if not math.isfinite(value):
            raise FloatingPointError(f"{family} training loss is {value} in epoch {epoch}; lower the learning rate")
        total += value * len(batch)
    bar.close()
    return total / len(rows)


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
    """Train a network (U-Net, VarNet, any registered kind) on the manifest's ``train`` rows, resuming from
    ``checkpoint_dir/last.pt``.

    ``maps`` (file stem -> ESPIRiT maps file) is required by networks that read maps (:func:`needs_maps`).

    Returns the trained model (on ``device``) and the history table with columns
    epoch, train_loss, val_loss, val_ssim, seconds (val columns NaN without ``val`` rows).
    """
    device = torch.device(device)
    family = family_of(spec)
    if needs_maps(spec) and maps is None:
        raise ValueError(f"a {family} that reads ESPIRiT maps needs the maps of its training slices (maps=...)")
    maps = maps if needs_maps(spec) else None
    train_set, val_set, identity = _run_identity(spec, manifest, mask_spec, seed)

    model = init_model(spec, seed).to(device)
    optimizer = make_optimizer(spec, model)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=spec.lr_step, gamma=spec.lr_gamma)
    criterion = Criterion(spec, device)
    amp = MixedPrecision(spec.precision, device, f"models ({family}): precision")
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
        train_loss = _train_epoch(model, spec, criterion, optimizer, train_set, mask_spec, seed, epoch, device, maps,
                                  tqdm_file, amp)
        scheduler.step()
        val_loss, val_ssim = (
            _validate(model, spec, criterion, val_set, mask_spec, seed, device, maps) if len(val_set) else (math.nan, math.nan)
        )
        seconds = time.perf_counter() - t0
        history.append(
            {"epoch": epoch, "train_loss": train_loss, "val_loss": val_loss, "val_ssim": val_ssim, "seconds": seconds}
        )
        _save_checkpoint(ckpt, {
            "epoch": epoch, **identity, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(), "history": history,
        })
        if log:
            log.info(
                "%s epoch %d/%d: train loss %.5f, val loss %.5f, val SSIM %.4f, lr %.2e, %.1f s",
                family, epoch + 1, spec.epochs, train_loss, val_loss, val_ssim, scheduler.get_last_lr()[0], seconds,
            )
    model.eval()
    return model, pd.DataFrame(history, columns=HISTORY_COLUMNS)
