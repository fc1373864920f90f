"""Benchmark: the cost of one attack step relative to one forward + backward pass of the method, per method.

For the projected-gradient attacks (zero-filled, ℓ1, U-Net, VarNet) one step of ``pgd_attack`` is
compared with one bare forward + backward pass of the same differentiable reconstruction
(||Ψ(y + e) − Ψ(y)||² back to e); the attack's total time, its clean forward pass and its final
evaluation included, is divided by its number of steps. For the ConvDecoder one step of the joint
scheme is compared with one iteration of the fit (forward, loss, backward, Adam step). Both sides run
in this process on the same slice, alternately, and the faster of ``--repeats`` rounds counts. One line
per method; the last line is ``ratio=<largest ratio>`` (target: <= 3).

    python bench/attack.py [--size 128] [--coils 8] [--steps 5] [--threads 2] [--repeats 2] [--methods l1 unet]

The networks are randomly initialised (their cost does not depend on training); the default sizes are
the demo's (128 x 128, 8 coils, the config's variants).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "workflow"))

from fastmri_like import add_arguments, fastmri_like  # noqa: E402
from robustcs.attacks import (  # noqa: E402
    AttackSpec, budget, convdecoder_joint_attack, pgd_attack, random_perturbation)
from robustcs.convdecoder import masked_mse, network_images  # noqa: E402
from robustcs.methods import load_method  # noqa: E402
from robustcs.networks import init_model, save_model, spec_from_config  # noqa: E402
from robustcs.recon_io import SliceInput  # noqa: E402
from robustcs.sensitivities import EspiritSpec, espirit_maps  # noqa: E402

METHODS = {
    "zero_filled": {"family": "zero_filled"},
    "l1": {"family": "l1", "lam": 3e-4, "iterations": 100},
    "convdecoder": {"family": "convdecoder", "mode": "sense", "channels": 32, "layers": 4, "input_shape": [8, 8],
                    "iterations": 200},
    "unet": {"family": "unet", "chans": 16, "pools": 3},
    "varnet": {"family": "varnet", "cascades": 4, "chans": 8, "pools": 3, "sens_chans": 4, "sens_pools": 2},
}


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def forward_backward(psi, y, e, clean, n):
    for _ in range(n):
        e = e.detach().requires_grad_(True)
        torch.autograd.grad((psi(y + e) - clean).square().sum(), e)


def fit_iterations(start, y, n):
    """n plain fit iterations continuing the clean fit (forward, masked loss, backward, Adam step)."""
    net, opt = start.copy()
    for _ in range(n):
        opt.zero_grad(set_to_none=True)
        masked_mse(start.op(network_images(net, start.z, start.mode)), start.scale * y, start.op.mask).backward()
        opt.step()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(ap)
    ap.set_defaults(slices=1, coils=8, size=128, width=128, oversampling=1, noise=0.003)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--epsilon", type=float, default=0.04)
    ap.add_argument("--methods", nargs="+", choices=list(METHODS), default=list(METHODS), help="only these methods")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    kspace, target, mask = fastmri_like(args)
    mask = mask.astype(np.float32)
    sens = espirit_maps(kspace[0], mask.astype(bool), EspiritSpec(calib_width=24, lowres_factor=4)).astype(np.complex64)
    num_low = int(round(0.08 * kspace.shape[-1]))
    item = SliceInput("bench", 0, kspace[0], mask, num_low, sens, target[0], float(target.max()))
    model_dir = Path(__file__).resolve().parent / ".attack_models"
    model_dir.mkdir(exist_ok=True)
    spec = AttackSpec(epsilons=(args.epsilon,), steps=args.steps)
    ratios = {}
    for name in args.methods:
        settings = METHODS[name]
        model = None
        if name in ("unet", "varnet"):
            model = model_dir / f"{name}.pt"
            mspec = spec_from_config(settings)
            save_model(model, mspec, init_model(mspec, seed=0))
        method = load_method(name, settings, model_path=model, seed=0)
        y = method.measurements(item)
        m = torch.from_numpy(mask)
        radius = budget(torch.from_numpy(kspace[0]), m, args.epsilon, "full")
        best_attack, best_reference = float("inf"), float("inf")
        if name == "convdecoder":
            start = method.fit(item, y, keep_state=True).state
            for _ in range(args.repeats):
                best_reference = min(best_reference, timed(lambda: fit_iterations(start, y, args.steps)))
                best_attack = min(best_attack, timed(lambda: convdecoder_joint_attack(start, y, radius, spec)))
            what = "joint step / fit iteration"
        else:
            psi = method.differentiable(item)
            with torch.no_grad():
                clean = psi(y)
            e = random_perturbation(y.shape, m, 0.5 * radius, seed=0)
            for _ in range(args.repeats):
                best_reference = min(best_reference, timed(lambda: forward_backward(psi, y, e, clean, args.steps)))
                best_attack = min(best_attack, timed(lambda: pgd_attack(psi, y, m, radius, spec, seed=0)))
            what = "PGD step / forward+backward"
        step, reference = best_attack / args.steps, best_reference / args.steps
        ratios[name] = step / reference
        print(f"{name:12s} {what}: {1e3 * step:8.1f} ms / {1e3 * reference:8.1f} ms = {ratios[name]:.2f}", flush=True)
    print(f"ratio={max(ratios.values()):.2f}")


if __name__ == "__main__":
    main()
