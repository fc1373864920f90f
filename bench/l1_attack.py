"""Benchmark: the ℓ1 method's implementations side by side (``implementation`` of an l1 variant: reference, fused,
compiled), per shape: the time of one forward + backward pass of the differentiable reconstruction
(||Ψ(y + e) − Ψ(y)||² back to e) and of one PGD step (robustcs.attacks.pgd_attack, its clean pass and final
evaluation included, divided by its steps), their ratio, the speed-up over the reference, the tensor operations
torch dispatches per solver iteration (forward and backward; on a GPU each is about one kernel launch, and the
launches bound a step at real shapes; "compiled" shows the fused count, before compilation), and the largest
difference from the reference's results relative to their maximum: the clean output, the gradient, the attack's
best loss and its attacked output, beside the same differences of the reference from itself on k-space scaled by
1 + 2^-18 (a change of float rounding only: the attack's first steps start at a loss near 0, where rounding steers
the gradient, so two correct implementations' attacks differ by about that much). All implementations run in this process on the same slice, alternately; the
fastest of ``--repeats`` rounds counts. The last line reads ``speedup=<reference / fused PGD step, smallest over
the shapes> max_rel_diff=<largest difference of the fused implementation> control_rel_diff=<the reference's own>``.

    python bench/l1_attack.py [--shapes 128x8 320x15] [--iterations 100] [--steps 3] [--threads 1] [--repeats 2]
                              [--compiled] [--device cuda]

Shapes are SIZExCOILS of the demo's simulated slices (square images, the demo's true coil maps), 4x random mask.
``--compiled`` adds torch.compile of the fused proximal step (compiled once per shape before timing; on CPU it
needs a C++ compiler).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils._python_dispatch import TorchDispatchMode

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "workflow"))

from robustcs.attacks import AttackSpec, budget, pgd_attack, random_perturbation  # noqa: E402
from robustcs.demo import DemoSpec, simulate_volume  # noqa: E402
from robustcs.masks import MaskSpec, file_mask  # noqa: E402
from robustcs.methods import load_method  # noqa: E402
from robustcs.recon_io import SliceInput  # noqa: E402


def slice_item(size: int, coils: int) -> SliceInput:
    kspace, target, maps = simulate_volume(DemoSpec(size=size, coils=coils, noise=0.003, slices_per_volume=1), 2026)
    mask, num_low, _ = file_mask(MaskSpec("random", 4, 0.08, 0.03), "bench", "slice", kspace.shape[-1], 0)
    return SliceInput("bench", 0, kspace[0].astype(np.complex64), mask.astype(np.float32), int(num_low),
                      maps.astype(np.complex64), target[0].astype(np.float32), float(target.max()))


DEVICE = torch.device("cpu")


def timed(fn) -> tuple[float, object]:
    start = time.perf_counter()
    out = fn()
    if DEVICE.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start, out


def forward_backward(psi, y, e, clean):
    e = e.detach().requires_grad_(True)
    out = psi(y + e)
    (grad,) = torch.autograd.grad((out - clean).square().sum(), e)
    return out.detach(), grad


class _OpCount(TorchDispatchMode):
    """Counts the tensor operations torch dispatches (on a GPU roughly the kernel launches, views included)."""

    def __init__(self):
        super().__init__()
        self.count = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.count += 1
        return func(*args, **(kwargs or {}))


def ops_per_iteration(item: SliceInput, implementation: str) -> float:
    """Operations of one solver iteration, forward and backward: a forward+backward with 4 iterations less one
    with 2, halved (so the set-up outside the loop cancels)."""
    counts = []
    for iterations in (2, 4):
        psi, y = l1_psi(item, implementation, iterations)
        e = random_perturbation(y.shape, torch.from_numpy(item.mask), 1.0, seed=0).to(DEVICE)
        with torch.no_grad():
            clean = psi(y)
        with _OpCount() as counter:
            forward_backward(psi, y, e, clean)
        counts.append(counter.count)
    return (counts[1] - counts[0]) / 2


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max())


SCALE = 1 + 2.0**-18  # the rounding control's k-space scale (λ and budget are relative: only rounding changes)


def l1_psi(item: SliceInput, implementation: str, iterations: int):
    method = load_method("l1", {"family": "l1", "lam": 1e-3, "iterations": iterations,
                                "implementation": implementation}, device=DEVICE, seed=0)
    return method.differentiable(item), method.measurements(item)


def compared(psi, y, e, clean, attack) -> tuple:
    """What the table compares: clean output, gradient at e, best attack loss, attacked output."""
    _, grad = forward_backward(psi, y, e, clean)
    with torch.no_grad():
        attacked = psi(y + attack.perturbation)
    return clean, grad, torch.tensor(max(attack.losses)), attacked


def bench_shape(item: SliceInput, args, implementations: list[str]) -> dict:
    """Per implementation: (forward+backward s, PGD step s, results to compare); and "reference × (1 + 2^-18)":
    the reference on k-space scaled by 1 + 2^-18, its results scaled back (untimed): the reference's own
    sensitivity to float rounding, against which the implementations' differences are to be read."""
    psis, ys = zip(*(l1_psi(item, impl, args.iterations) for impl in implementations))
    psis, ys = dict(zip(implementations, psis)), dict(zip(implementations, ys))
    mask = torch.from_numpy(item.mask)
    radius = budget(torch.from_numpy(item.kspace), mask, 0.04, "full")
    spec = AttackSpec(epsilons=(0.04,), steps=args.steps)
    e = random_perturbation(item.kspace.shape, mask, 0.5 * radius, seed=0).to(DEVICE)
    mask = mask.to(DEVICE)
    best = {impl: [float("inf"), float("inf"), None] for impl in implementations}
    with torch.no_grad():
        cleans = {impl: psis[impl](ys[impl]) for impl in implementations}  # also compiles / warms up
    for _ in range(args.repeats):
        for impl in implementations:
            psi, y = psis[impl], ys[impl]
            t_fb, _ = timed(lambda: forward_backward(psi, y, e, cleans[impl]))
            t_pgd, attack = timed(lambda: pgd_attack(psi, y, mask, radius, spec, seed=0))
            entry = best[impl]
            entry[0], entry[1] = min(entry[0], t_fb), min(entry[1], t_pgd / args.steps)
            entry[2] = entry[2] or compared(psi, y, e, cleans[impl], attack)
    scaled = SliceInput(item.stem, item.slice, (item.kspace * SCALE).astype(np.complex64), item.mask,
                        item.num_low_frequencies, item.sens, item.target, item.maxval)
    psi, y = l1_psi(scaled, "reference", args.iterations)
    with torch.no_grad():
        clean = psi(y)
    radius = budget(torch.from_numpy(scaled.kspace), torch.from_numpy(item.mask), 0.04, "full")
    attack = pgd_attack(psi, y, mask, radius, spec, seed=0)
    results = compared(psi, y, SCALE * e, clean, attack)
    best["reference × (1 + 2^-18)"] = [float("nan"), float("nan"), tuple(
        r / SCALE**k for r, k in zip(results, (1, 1, 2, 1)))]
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shapes", nargs="+", default=["128x8", "320x15"], help="SIZExCOILS")
    ap.add_argument("--iterations", type=int, default=100)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--compiled", action="store_true", help="also time implementation: compiled")
    ap.add_argument("--device", default="cpu", help="torch device, e.g. cuda")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    global DEVICE
    DEVICE = torch.device(args.device)
    implementations = ["reference", "fused"] + (["compiled"] if args.compiled else [])
    print(f"{args.iterations} FISTA iterations, {args.steps} PGD steps, torch threads {args.threads}, {DEVICE}")
    print("shape      implementation  ops/iter  fwd+bwd ms  PGD step ms  step/fb  speed-up fb  speed-up step  "
          "max rel diff (clean, grad, best loss, attacked)")
    speedups, diffs, controls = [], [], []
    for shape in args.shapes:
        size, coils = (int(v) for v in shape.split("x"))
        item = slice_item(size, coils)
        best = bench_shape(item, args, implementations)
        ref = best["reference"]
        for impl, (fb, step, results) in best.items():
            d = [rel(a, b) for a, b in zip(results, ref[2])]
            ops = ops_per_iteration(item, "fused" if impl == "compiled" else "reference" if "×" in impl else impl)
            print(f"{size}x{size}x{coils:<4d} {impl:14s} {ops:8.0f} {1e3 * fb:10.0f} {1e3 * step:12.0f} {step / fb:8.2f} "
                  f"{ref[0] / fb:12.2f} {ref[1] / step:14.2f}  " + ", ".join(f"{v:.1e}" for v in d), flush=True)
            if impl == "fused":
                speedups.append(ref[1] / step)
                diffs.append(max(d))
            elif "×" in impl:
                controls.append(max(d))
    print(f"speedup={min(speedups):.2f} max_rel_diff={max(diffs):.1e} control_rel_diff={max(controls):.1e}")


if __name__ == "__main__":
    main()
