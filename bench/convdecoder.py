"""Benchmark: B ConvDecoder fits one after the other against one grouped fit of the same B slices, in one run.

Per configuration it times the workflow's lone fit (robustcs.convdecoder.fit_convdecoder, what ``fit_batch: 1``
runs) on each of B slices and then the grouped fit of the B slices (robustcs.convdecoder_batch.fit_convdecoders,
``fit_batch: B``), each with N Adam steps and the slices' own seeds, after one short warm-up of each (then
--repeat runs of each, alternating, the fastest counting), and prints
milliseconds per step and slice, their ratio (lone / grouped: above 1, grouping is faster) and how far the grouped
reconstructions are from the lone ones after the N steps: the largest relative L2 difference of the magnitudes
over the B slices, beside the fit's own sensitivity to rounding (the lone fit of slice 0 against the lone fit of
that slice's k-space times 1 + 1e-7), since the fit amplifies rounding (docs/runtime.md).

Configurations:
  demo    the demo's largest variant (32 channels, 4 layers, input 4x4, ``sense``) on simulated 128x128 slices,
          8 coils, with their true coil maps
  paper   the papers' ConvDecoder (256 channels, 8 layers, input 10x5, ``coils``) on random k-space of
          15 coils and --paper-shape (default 640x368, fastMRI knee; on a CPU use a smaller grid and say so)

    python bench/convdecoder.py [--configs demo paper] [--batch 8] [--steps 20] [--paper-shape 640 368]
                                [--device cpu|cuda] [--threads 2] [--repeat 2]

The last line reads ``ratio_demo=<lone/grouped> ratio_paper=<lone/grouped>`` (the configurations run).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "workflow"))

from robustcs.convdecoder import ConvDecoderSpec, fit_convdecoder  # noqa: E402
from robustcs.convdecoder_batch import fit_convdecoders  # noqa: E402
from robustcs.demo import DemoSpec, simulate_volume  # noqa: E402
from robustcs.masks import MaskSpec, make_mask  # noqa: E402


def demo_slices(batch: int, device: torch.device):
    spec = DemoSpec(size=128, coils=8, noise=0.003, slices_per_volume=batch, volumes={"train": 0, "val": 0, "test": 1})
    kspace, _, maps = simulate_volume(spec, seed=0)
    mask = make_mask(MaskSpec("random", 4, 0.08), kspace.shape[-1], seed=0)[0].astype(np.float32)
    sens = torch.from_numpy(maps).to(device)
    return [(torch.from_numpy(k).to(device), torch.from_numpy(mask).to(device), sens) for k in kspace]


def paper_slices(batch: int, shape: tuple[int, int], device: torch.device):
    gen = torch.Generator().manual_seed(0)
    mask = torch.from_numpy(make_mask(MaskSpec("random", 4, 0.08), shape[1], seed=0)[0].astype(np.float32))
    return [(torch.randn(15, *shape, dtype=torch.complex64, generator=gen).to(device), mask.to(device), None)
            for _ in range(batch)]


CONFIGS = {
    "demo": dict(mode="sense", channels=32, layers=4, input_shape=(4, 4)),
    "paper": dict(mode="coils", channels=256, layers=8, input_shape=(10, 5)),
}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / a.norm())


def compare(name: str, slices, steps: int, device: torch.device, repeat: int = 2) -> float:
    """Time lone and grouped fits of ``slices``; print one line; return lone / grouped time."""
    spec = ConvDecoderSpec(iterations=steps, **CONFIGS[name])
    warm = ConvDecoderSpec(iterations=2, **CONFIGS[name])
    seeds = list(range(len(slices)))
    fit_convdecoder(*slices[0], warm, seed=0)
    fit_convdecoders(slices, warm, seeds)
    lone_s = grouped_s = float("inf")
    for _ in range(repeat):  # alternating, the fastest of each: a busy machine slows both alike
        _sync(device)
        start = time.perf_counter()
        lone = [fit_convdecoder(*data, spec, seed=seed) for data, seed in zip(slices, seeds)]
        _sync(device)
        lone_s = min(lone_s, time.perf_counter() - start)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        start = time.perf_counter()
        grouped = fit_convdecoders(slices, spec, seeds)
        _sync(device)
        grouped_s = min(grouped_s, time.perf_counter() - start)
    memory = f", grouped peak {torch.cuda.max_memory_allocated(device) / 2**30:.1f} GiB" if device.type == "cuda" else ""
    k, m, s = slices[0]
    rounding = _relative(lone[0].magnitude, fit_convdecoder(k * (1 + 1e-7), m, s, spec, seed=0).magnitude)
    diff = max(_relative(a.magnitude, b.magnitude) for a, b in zip(lone, grouped))
    per = 1000 / (steps * len(slices))
    c, h, w = k.shape
    print(f"{name}: {spec.channels} ch, {spec.layers} layers, {c}x{h}x{w} ({spec.mode}), B={len(slices)}, {steps} steps: "
          f"lone {lone_s * per:.2f} ms, grouped {grouped_s * per:.2f} ms per step and slice, ratio "
          f"{lone_s / grouped_s:.2f}; grouped vs lone after {steps} steps: max rel. diff {diff:.1e} "
          f"(rounding sensitivity {rounding:.1e}){memory}", flush=True)
    return lone_s / grouped_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", nargs="+", choices=sorted(CONFIGS), default=["demo", "paper"])
    parser.add_argument("--batch", type=int, default=8, help="slices fitted at once (B)")
    parser.add_argument("--steps", type=int, default=20, help="Adam steps per fit (N)")
    parser.add_argument("--paper-shape", type=int, nargs=2, default=[640, 368], metavar=("H", "W"))
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=2, help="timed runs of each, alternating; the fastest counts")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    print(f"torch {torch.__version__} on {device}"
          f"{' (' + torch.cuda.get_device_name(device) + ')' if device.type == 'cuda' else ''}, "
          f"{torch.get_num_threads()} threads", flush=True)
    ratios = {}
    for name in args.configs:
        slices = (demo_slices(args.batch, device) if name == "demo"
                  else paper_slices(args.batch, tuple(args.paper_shape), device))
        ratios[name] = compare(name, slices, args.steps, device, args.repeat)
    print(" ".join(f"ratio_{name}={ratio:.2f}" for name, ratio in ratios.items()))


if __name__ == "__main__":
    main()
