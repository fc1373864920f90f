"""Test-time training (TTT) of a trained network on one test slice (Darestani, Liu & Heckel 2022).

Study (the authors' code):

* loss: the self-supervised ||Y - M F S f(A^H Y)||_1 / ||Y||_1 on the measured k-space Y, with S the
  ESPIRiT maps of the undersampled test k-space (:func:`robustcs.networks.self_supervised_loss`; l1 over
  real and imaginary parts);
* self-validation: a random 5 % of the sampled k-space points is left out of the loss (the network
  still sees all measurements as input); their error is the stopping signal: once the held-out error
  averaged over the last W steps exceeds its average over the W steps before, training stops
  (checked from 3W steps on). W = 100 (anatomy, acceleration) or 20 (dataset, modality);
* Adam, lr 1e-5 (U-Net) or 1e-4 (VarNet), at most 2500 steps;
* every slice starts from the unchanged checkpoint.

Choices here: the held-out points are drawn without replacement (the notebooks draw with replacement)
from a generator seeded per slice, outside the fully sampled centre (``holdout_center``); they leave the loss only,
as in the study, unless ``hide_holdout`` (an ablation) removes them from the network's input as well; the network
ends at the parameters of the last step whose held-out error was recorded (the stop is decided before that step's
update); a VarNet with ``maps: espirit`` uses the slice's ESPIRiT maps as in the study, one with learned maps its
own estimated maps (see :mod:`robustcs.varnet`).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import numpy as np
import torch
from tqdm import tqdm

from .physics import as_complex_tensor, mask_tensor
from .precision import MixedPrecision
from .recon_io import SliceInput
from .specs import TTTSpec  # noqa: F401 (re-exported)
from .networks import Spec, family_of, forward, has_kspace_output, self_supervised_loss

@dataclass
class TTTResult:
    """The reconstruction after TTT (magnitude [h, w]) and the run's record."""

    magnitude: np.ndarray
    steps: int
    stopped_early: bool
    train_loss: list[float]
    val_error: list[float]


def holdout_split(
    mask: np.ndarray, height: int, fraction: float, seed: int, keep_center: int = 0, lines: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """(loss points, held-out points): 0/1 float [H, W] patterns splitting the sampled k-space points
    (every row of every sampled column) at random, ``round(fraction x candidates)`` held out (at least 1).
    ``keep_center``: that many central columns (fastMRI's placement of the fully sampled centre) are never
    held out; the candidates are the other sampled points. ``lines``: whole sampled columns are held out instead
    of single points (``round(fraction x candidate columns)``, at least 1), so that a held-out point is as far from
    the measured data as an unmeasured line is."""
    mask = np.asarray(mask, bool)
    width = len(mask)
    candidates = mask.copy()
    if keep_center < 0:
        raise ValueError(f"keep_center: expected a number of central columns >= 0, got {keep_center}")
    if keep_center:
        pad = max(0, (width - keep_center + 1) // 2)
        candidates[pad : pad + keep_center] = False
    # the units drawn from: sampled columns (lines) or single points (flat indices into [H, W])
    units = (np.flatnonzero(candidates) if lines
             else np.flatnonzero(np.broadcast_to(candidates[None, :], (height, width)).ravel()))
    if units.size < 2:
        what = "lines" if lines else "k-space points"
        raise ValueError(f"the mask samples {units.size} {what} outside its {keep_center} central columns; too few "
                         f"to hold {'whole lines' if lines else 'any'} out")
    n_out = min(units.size - 1, max(1, round(fraction * units.size)))
    out = np.random.default_rng(seed).choice(units, size=n_out, replace=False)
    held = np.zeros((height, width), np.float32)
    if lines:
        held[:, out] = 1
    else:
        held.reshape(-1)[out] = 1
    train = np.broadcast_to(mask.astype(np.float32)[None, :], held.shape) - held
    return torch.from_numpy(np.ascontiguousarray(train)), torch.from_numpy(held)


def should_stop(val_error: list[float], window: int) -> bool:
    """The study's self-validation rule: from 3W recorded steps on, stop once the mean held-out error
    of the last W steps exceeds the mean of the W steps before."""
    if len(val_error) < 3 * window:
        return False
    return float(np.mean(val_error[-window:])) > float(np.mean(val_error[-2 * window : -window]))


def adapt_slice(
    model: torch.nn.Module,
    spec: Spec,
    item: SliceInput,
    ttt: TTTSpec,
    seed: int,
    device: torch.device | str = "cpu",
    tqdm_file=None,
) -> TTTResult:
    """Fine-tune a copy of ``model`` on one slice's measurements by the self-supervised loss, then
    reconstruct it. ``model`` itself is never changed (each slice starts from the checkpoint)."""
    if not has_kspace_output(spec):
        raise ValueError("test-time training needs a network with a k-space prediction: a VarNet or a U-Net "
                         "with input: complex")
    family = family_of(spec)
    if family not in ttt.lr:
        raise ValueError(f"TTT settings: no learning rate for the {family} family (lr has {sorted(ttt.lr)}); "
                         "the study model fills the study's rates (Study.ttt_settings)")
    device = torch.device(device)
    net = copy.deepcopy(model).to(device).eval()
    for p in net.parameters():
        p.requires_grad_(True)
    optimizer = torch.optim.Adam(net.parameters(), lr=ttt.lr[family])
    amp = MixedPrecision(ttt.precision, device, "ttt: precision")

    kspace = as_complex_tensor(item.kspace, device)[None]
    mask = mask_tensor(item.mask, device)[None]
    measured = mask[:, None, None, :] * kspace
    sens = None if item.sens is None else as_complex_tensor(item.sens, device)[None]
    center = item.num_low_frequencies if ttt.holdout_center else 0
    split = holdout_split(item.mask, kspace.shape[-2], ttt.holdout, seed, center, lines=ttt.holdout_lines)
    train_w, val_w = (t.to(device) for t in split)

    # the network's input during TTT: every measurement (the study), or all but the held-out points
    seen, seen_mask = (train_w * measured, train_w[None]) if ttt.hide_holdout else (measured, mask)

    def run():
        return forward(net, spec, seen, seen_mask, item.target_shape, item.num_low_frequencies, sens, predict_kspace=True)

    losses, val_error, stopped = [], [], False
    bar = tqdm(range(ttt.max_steps), desc=f"TTT {item.stem}[{item.slice}]", file=tqdm_file, mininterval=5,
               disable=tqdm_file is None)
    for _ in bar:
        with amp.autocast():
            _, predicted = run()
        loss = self_supervised_loss(predicted, measured, train_w)
        with torch.no_grad():
            val_error.append(float(self_supervised_loss(predicted, measured, val_w)))
        if should_stop(val_error, ttt.window):
            stopped = True
            break
        value = float(loss.detach())
        if not math.isfinite(value):
            raise FloatingPointError(f"TTT loss is {value} on {item.stem} slice {item.slice}; lower the learning rate")
        losses.append(value)
        optimizer.zero_grad(set_to_none=True)
        amp.step(loss, optimizer)
    bar.close()
    if not stopped:  # the last update's held-out error, so that the record ends at the returned network
        with torch.no_grad():
            val_error.append(float(self_supervised_loss(run()[1], measured, val_w)))
    with torch.no_grad():
        magnitude = forward(net, spec, measured, mask, item.target_shape, item.num_low_frequencies, sens)[0]
    return TTTResult(magnitude[0].cpu().numpy(), len(losses), stopped, losses, val_error)
