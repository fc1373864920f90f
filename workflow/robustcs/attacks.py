"""Adversarial perturbations of the measurements, the study's first robustness question.

For a method Ψ, measurements y = M·k of a slice's full k-space k and a budget ε, the attack looks for

    e* = argmax_{e = M e, ||e||_2 <= ε·||r||_2}  ||Ψ(y + e) − Ψ(y)||_2^2

where r is the reference k-space: the *full* k-space k (the study's choice, ``reference: full``) or
the measurements M·k (``reference: measured``). The perturbation lives on the sampled locations only
(the study adds it to the full k-space before masking: the same thing). Ψ's output is the magnitude
image centre-cropped to the reference size.

Projected gradient ascent (:func:`pgd_attack`, U-Net, VarNet, ℓ1, CG-SENSE, zero-filled; :func:`pgd_attacks` runs
the budgets ε as one batch through the method, and :func:`attack_slices` all the (slice, ε) of a job's slices of
one shape, ``batch`` of them at a time)
    e_0 random on the sampled locations with norm ``init`` × radius (the loss has zero gradient at
    e = 0); step t of T = ``steps``:  e ← P(e + a_t · radius · g / ||g||),  g = ∇_e ||Ψ(y + e) − Ψ(y)||²,
    P the projection onto the sampled locations and the ℓ2 ball, a_t = step_size · (1 + cos(π t / T)) / 2
    (:func:`step_schedule`, the same for every method). The worst iterate (largest loss) is kept, the last
    one included. Ψ is differentiated as the workflow runs it: through the frozen network
    for U-Net and VarNet, through every one of the fixed FISTA iterations for ℓ1 (the study instead
    optimised image and perturbation jointly; unrolling attacks exactly the method that is scored).

Joint scheme (:func:`convdecoder_joint_attack`, ConvDecoder; the study's scheme, its distance measured where e lives)
    Differentiating through hundreds of Adam steps of the fit is not affordable, so, as in the study,
    the network weights θ and the perturbation e are optimised together. The fit first runs its
    ``iterations`` steps on the clean measurements (same seed, input and scale as the method), giving
    the clean output G_0. Then, for the same ``steps`` as every other method (Adam's learning rate
    following the same :func:`step_schedule`), e takes the network's move on the sampled k-space, projected
    onto the ball, e = P(A (G_θ(z) − G_0)/s), and an Adam step on θ minimises data(θ, e) − λ₁ · away(θ): data
    is the fit's loss against the perturbed measurements s(y + e), away = masked mean |A G_θ(z) − A G_0|² the
    network's move on the sampled k-space (the same normalisation as data), λ₁ = ``cd_weight`` < 1. The
    network is pushed away from the clean fit and the perturbation follows it as far as the budget allows; the
    e of the state farthest from the clean fit is kept, and away is the attack's loss per step.

    Two choices differ from the study, both measured on the demo and the test slices:
    - away on the sampled k-space (the study: on the coil images). e can carry only that part of the network's
      move into a fresh fit, and nothing in the objective resists a move on the unsampled k-space, so with the
      whole-image distance the objective is unbounded below and the distance grows as long as the learning
      rate is positive (demo: still +1 % over the last 10 % of the steps after 80 steps). With u = A(G_θ − G_0)/s
      the objective is ~ (||u|| − r)² − λ₁||u||² beyond the ball: bounded below for λ₁ < 1, and the attack
      settles (demo ConvDecoders, 40 steps: the distance peaks, falls back and stays within 0.5 %).
    - e follows the move, not the fit's whole misfit P(A G_θ/s − y): the clean fit's residual (the part of y
      the ConvDecoder does not reproduce) is often larger than the budget and would take all of it, pointing
      e at what the ConvDecoder reconstructs anyway (on the test slice that attack was weaker than random
      noise at ε = 0.03).
    The study runs 100 clean then 300 joint steps of one fit; the joint phase here continues the method's own fit.

Equal, converged effort: every method gets the same number of steps and the same decaying schedule, and
every attack records its loss per step; :func:`plateau_rise` says how much the last 10 % of the steps
still raised the best loss (< 1 %: converged), reported per method, slice and ε.

Every perturbation found is then scored by running the method *from scratch* on y + e (for the
ConvDecoder a fresh fit with the clean fit's seed), next to a random perturbation of the same norm
(complex Gaussian on the sampled locations).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
from tqdm import tqdm

from .convdecoder import FitState, masked_mse, network_images
from .physics import as_complex_tensor, mask_tensor
from .specs import AttackSpec  # noqa: F401 (re-exported)

def budget(kspace: torch.Tensor, mask: torch.Tensor, epsilon: float, reference: str) -> float:
    """The ℓ2 radius ε·||r|| with r the full k-space or the measured part of it."""
    r = kspace if reference == "full" else mask * kspace
    return float(epsilon) * float(norm64(r))


def norm64(x: torch.Tensor) -> torch.Tensor:
    """||x||_2 accumulated in double precision: in float32 the norm of a 15-coil 640x372 k-space is off by
    ~4e-5 relative, enough to put a projected perturbation measurably over its budget."""
    return torch.linalg.vector_norm(x.to(torch.complex128) if x.is_complex() else x.double())


def project(e: torch.Tensor, mask: torch.Tensor, radius: float | torch.Tensor) -> torch.Tensor:
    """Onto the sampled locations, then onto the ball ||e|| <= radius. A batch of perturbations [E, C, H, W]
    with radii [E, 1, 1, 1] is projected item by item."""
    e = mask * e
    if torch.is_tensor(radius) and radius.ndim:  # one ball per batch item
        norm = torch.linalg.vector_norm(e.to(torch.complex128), dim=(-3, -2, -1), keepdim=True).to(e.real.dtype)
    else:
        norm = norm64(e).to(e.real.dtype)
    return e * torch.clamp(radius / torch.clamp(norm, min=torch.finfo(norm.dtype).tiny), max=1.0)


def random_perturbation(shape, mask: torch.Tensor, norm: float, seed: int) -> torch.Tensor:
    """Complex Gaussian noise on the sampled locations, scaled to exactly ``norm`` (drawn on the CPU)."""
    g = torch.Generator().manual_seed(int(seed))
    e = torch.complex(torch.randn(tuple(shape), generator=g), torch.randn(tuple(shape), generator=g))
    e = mask.cpu() * e
    return (e * (norm / norm64(e)).to(e.real.dtype)).to(mask.device)


def step_schedule(t: int, steps: int) -> float:
    """The share (1 + cos(π t / T)) / 2 of the first step taken at step t of T: every method's attack
    starts with large steps and ends with small ones, so that its loss can settle."""
    return 0.5 * (1.0 + float(np.cos(np.pi * t / steps)))


def plateau_rise(losses: list[float], tail: float = 0.1) -> float:
    """How much the last ``tail`` share of the steps raised the best loss so far, relative to it:
    (max(all) − max(first 1 − tail)) / max(first 1 − tail). Below 0.01 the attack has converged."""
    values = np.asarray(losses, dtype=np.float64)
    head = max(1, int(np.ceil(len(values) * (1.0 - tail))))
    before = values[:head].max()
    if before <= 0:
        return float("inf") if values.max() > before else 0.0
    return float((values.max() - before) / before)


@dataclass
class AttackResult:
    perturbation: torch.Tensor  # [C, H, W] complex, the worst iterate
    losses: list[float] = field(default_factory=list)  # steps + 1 values: the start, then after each step
    best_step: int = 0


def pgd_attack(
    psi: Callable[[torch.Tensor], torch.Tensor],
    y: torch.Tensor,
    mask: torch.Tensor,
    radius: float,
    spec: AttackSpec,
    seed: int,
    tqdm_file=None,
    desc: str = "attack",
    clean: torch.Tensor | None = None,
) -> AttackResult:
    """Projected normalised-gradient ascent on ||Ψ(y + e) − Ψ(y)||² (see the module docstring) for one budget.

    psi: measured k-space [C, H, W] -> magnitude (differentiable); y: [C, H, W] measured k-space;
    clean: Ψ(y) when the caller has it already (computed here otherwise).
    """
    batched = lambda yb: psi(yb[0])[None]  # noqa: E731
    return pgd_attacks(batched, y, mask, [radius], spec, [seed], tqdm_file, desc, clean)[0]


def pgd_attacks(
    psi: Callable[[torch.Tensor], torch.Tensor],
    y: torch.Tensor,
    mask: torch.Tensor,
    radii: list[float],
    spec: AttackSpec,
    seeds: list[int],
    tqdm_file=None,
    desc: str = "attack",
    clean: torch.Tensor | None = None,
) -> list[AttackResult]:
    """:func:`pgd_attack` for several budgets at once: one perturbation per radius, all of them in one batch
    [E, C, H, W] through Ψ. Each item has its own start (``seeds``), gradient normalisation, projection and
    worst iterate; the loss of the batch is the sum of the items' losses, and Ψ treats batch items
    independently, so each item follows the path it would follow alone.

    psi: batch of measured k-space [E, C, H, W] -> magnitudes [E, h, w] (differentiable); y: [C, H, W] shared by
    the items, or [E, C, H, W] one per item (several slices in one batch, with ``mask`` [E, 1, 1, W] one per item);
    clean: Ψ(y) [h, w] (or [E, h, w]) when the caller has it already.
    """
    if clean is None:
        with torch.no_grad():
            clean = psi(y if y.dim() == 4 else y[None])
            clean = clean if y.dim() == 4 else clean[0]
    clean = clean.detach()
    count = len(radii)
    radius = torch.tensor(radii, dtype=y.real.dtype, device=y.device).view(count, 1, 1, 1)
    ys = list(y) if y.dim() == 4 else [y] * count
    masks = list(mask) if y.dim() == 4 else [mask] * count
    e = torch.stack([project(random_perturbation(yi.shape, m, spec.init * r, s).to(y.dtype), m, r)
                     for yi, m, r, s in zip(ys, masks, radii, seeds)])
    losses = torch.empty(spec.steps + 1, count, device=y.device)
    best_e, best_loss = e, torch.full((count,), -1.0, device=y.device)
    for t in tqdm(range(spec.steps + 1), file=tqdm_file, disable=tqdm_file is None, mininterval=5, desc=desc):
        last = t == spec.steps
        e = e.detach().requires_grad_(not last)
        with torch.set_grad_enabled(not last):
            loss = (psi(y + e) - clean).square().sum(dim=(-2, -1))  # [E]
        with torch.no_grad():
            losses[t] = loss.detach()
            better = loss.detach() > best_loss
            best_e = torch.where(better.view(count, 1, 1, 1), e.detach(), best_e)
            best_loss = torch.where(better, loss.detach(), best_loss)
        if last:
            break
        (grad,) = torch.autograd.grad(loss.sum(), e)
        with torch.no_grad():
            gnorm = torch.linalg.vector_norm(grad, dim=(-3, -2, -1), keepdim=True)
            length = spec.step_size * step_schedule(t, spec.steps) * radius
            step = grad * (length / torch.clamp(gnorm, min=torch.finfo(gnorm.dtype).tiny))
            e = project(e.detach() + step, mask, radius)
    values = losses.cpu().T.tolist()
    return [AttackResult(best_e[i].detach(), values[i], int(np.argmax(values[i]))) for i in range(count)]


def convdecoder_joint_attack(
    start: FitState,
    y: torch.Tensor,
    radius: float,
    spec: AttackSpec,
    tqdm_file=None,
    desc: str = "joint attack",
) -> AttackResult:
    """The joint scheme for the ConvDecoder (module docstring), continuing a clean fit.

    start: the state of the method's own fit to the clean measurements y [C, H, W] (``fit_convdecoder``
    with ``keep_state=True``); it is copied, not changed. Returns the perturbation of the state whose
    sampled k-space was farthest from the clean fit's (on the ball or inside it) and that distance per state
    (``steps + 1`` values: the clean fit itself, 0, then after each step).
    """
    op, z, scale, mode = start.op, start.z, start.scale, start.mode
    net, optimizer = start.copy()
    base_lr = [group["lr"] for group in optimizer.param_groups]
    with torch.no_grad():
        clean_kspace = op(network_images(net, z, mode))
    best_e, best_away = torch.zeros_like(y), torch.tensor(-1.0, device=y.device)
    away_losses = torch.zeros(spec.steps + 1, device=y.device)
    for t in tqdm(range(spec.steps + 1), file=tqdm_file, disable=tqdm_file is None, mininterval=5, desc=desc):
        last = t == spec.steps
        with torch.set_grad_enabled(not last):
            kx = op(network_images(net, z, mode))
            away = masked_mse(kx, clean_kspace, op.mask)
        with torch.no_grad():
            e = project((kx.detach() - clean_kspace) / scale, op.mask, radius)  # the move, on the ball
            value = away.detach() / scale**2
            away_losses[t] = value
            better = value > best_away
            best_e = torch.where(better, e, best_e)
            best_away = torch.where(better, value, best_away)
        if last:
            break
        for group, lr in zip(optimizer.param_groups, base_lr):
            group["lr"] = lr * step_schedule(t, spec.steps)
        optimizer.zero_grad(set_to_none=True)
        (masked_mse(kx, scale * (y + e), op.mask) - spec.cd_weight * away).backward()
        optimizer.step()
    values = away_losses.cpu().tolist()
    return AttackResult(best_e.detach(), values, int(np.argmax(values)))


@dataclass
class SliceAttack:
    """One slice attacked at every ε: magnitudes cropped to the reference [h, w] (numpy)."""

    clean: np.ndarray
    adversarial: list[np.ndarray]
    random: list[np.ndarray]
    budgets: list[float]  # radius ε·||r||
    norms: list[float]  # ||e|| of the perturbation found (<= budget)
    perturbations: list[np.ndarray]  # [C, H, W] complex64, zero off the sampled locations
    losses: list[list[float]]


def attack_slice(method, item, spec: AttackSpec, seed: int, tqdm_file=None) -> SliceAttack:
    """Attack one slice with every ε of ``spec``; score each perturbation from scratch, beside random noise
    of the same norm. ``method``: a :class:`robustcs.methods.Method`; ``item``: a SliceInput."""
    return attack_slices(method, [item], spec, [seed], tqdm_file)[0]


def _chunks(items: list, size: int) -> list[list]:
    size = size or len(items)
    return [items[i : i + size] for i in range(0, len(items), size)]


def attack_slices(method, items: list, spec: AttackSpec, seeds: list[int], tqdm_file=None,
                  noise: bool = True) -> list[SliceAttack]:
    """:func:`attack_slice` for several slices (one seed each). A method that can reconstruct a stack of slices
    in one pass (``Method.batches_slices``) attacks every (slice, ε) of the same shapes in one projected-gradient
    batch, ``spec.batch`` items at a time (0: all): each item keeps its own measurements, mask, start, step
    and projection, so it follows the path it would follow alone (equal up to float rounding), while small
    images run several times faster per item. Other methods (the ConvDecoder) attack slice by slice,
    ``spec.batch`` budgets at a time. ``noise`` False: no random perturbation is scored (``random`` stays
    empty; the attack-effort reruns, :mod:`robustcs.attack_effort`, need the attack alone)."""
    from .metrics import magnitude_crop
    from .recon_io import stack_key, stack_slices
    from .util import stable_seed

    device = method.device
    ks = [as_complex_tensor(item.kspace, device) for item in items]
    masks = [mask_tensor(item.mask, device) for item in items]
    radii = [[budget(k, m, eps, spec.reference) for eps in spec.epsilons] for k, m in zip(ks, masks)]
    starts = [[stable_seed(seed, "start", eps) for eps in spec.epsilons] for seed in seeds]
    found, cleans = {}, {}

    def describe(pairs) -> str:
        names = sorted({f"{items[i].stem}[{items[i].slice}]" for i, _ in pairs})
        eps = sorted({spec.epsilons[j] for _, j in pairs})
        return f"attack {method.name} {','.join(names)} eps={','.join(f'{x:g}' for x in eps)}"

    if method.batches_slices:
        groups: dict = {}
        for i, item in enumerate(items):  # one batch holds slices of one shape (a part may mix k-space widths)
            groups.setdefault(stack_key(item), []).extend((i, j) for j in range(len(spec.epsilons)))
        for pairs in groups.values():
            for chunk in _chunks(pairs, spec.batch):
                stack = stack_slices([items[i] for i, _ in chunk])
                y = torch.stack([masks[i] * ks[i] for i, _ in chunk])
                clean, state = method.attack_start(stack, y, tqdm_file)
                results = method.attack(state, y, mask_tensor(stack.mask, device), [radii[i][j] for i, j in chunk],
                                        spec, [starts[i][j] for i, j in chunk], tqdm_file, describe(chunk))
                for (i, j), result, magnitude in zip(chunk, results, clean):
                    found[i, j] = result
                    cleans.setdefault(i, magnitude)
    else:
        for i, item in enumerate(items):
            y = masks[i] * ks[i]
            cleans[i], state = method.attack_start(item, y, tqdm_file)  # the method's strategy (robustcs.methods)
            for chunk in _chunks(list(range(len(spec.epsilons))), spec.batch):
                results = method.attack(state, y, masks[i], [radii[i][j] for j in chunk], spec,
                                        [starts[i][j] for j in chunk], tqdm_file, describe([(i, j) for j in chunk]))
                found.update(((i, j), result) for j, result in zip(chunk, results))

    out = []
    for i, (item, seed) in enumerate(zip(items, seeds)):
        crop = lambda m: magnitude_crop(m, item.target_shape).astype(np.float32)  # noqa: E731
        attack = SliceAttack(crop(cleans[i]), [], [], [], [], [], [])
        for j, eps in enumerate(spec.epsilons):
            e = found[i, j].perturbation
            norm = float(norm64(e))
            adversarial, _ = method.reconstruct(item, kspace=ks[i] + e, tqdm_file=tqdm_file)
            attack.adversarial.append(crop(adversarial))
            if noise:
                random = random_perturbation(ks[i].shape, masks[i], norm, stable_seed(seed, "random", eps))
                attack.random.append(crop(method.reconstruct(item, kspace=ks[i] + random, tqdm_file=tqdm_file)[0]))
            attack.budgets.append(radii[i][j])
            attack.norms.append(norm)
            attack.perturbations.append(e.cpu().numpy().astype(np.complex64))
            attack.losses.append(found[i, j].losses)
        out.append(attack)
    return out
