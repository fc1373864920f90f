"""Diagnostic: why test-time training lowers a network's SSIM on a shift (a slice-level look behind
results/tables/ttt_summary.csv). Reads a finished run's models, data and ESPIRiT maps; writes nothing.

For each central slice of the shift's target test volumes and for the source's test volumes it prints

* ``map_residual``: ||y - F S S^H F^H y|| / ||y|| of the fully sampled k-space y: the part of the data the single
  set of ESPIRiT maps S cannot represent. The self-supervised loss compares the measurements with F S x, so TTT
  can only lower its loss below this level by bending x;
* P->Q, and P->Q+TTT (SSIM, steps, whether self-validation stopped it) for each learning rate of ``--lr`` and
  each hold-out protocol of ``--protocols``: ``points`` (the study's: single points out of the loss only),
  ``hidden`` (the same points also hidden from the input), ``hidden-lines`` (whole sampled lines held out and
  hidden), with the run's other TTT settings; the last line gives each run's mean SSIM change.

    python bench/ttt_diagnostic.py --shift anatomy --method varnet_ttt_k2_c8_e6 [--lr 1e-3 1e-4] [--steps 200]
        [--protocols points hidden hidden-lines]
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "workflow"))

from robustcs import paths  # noqa: E402
from robustcs.methods import load_method  # noqa: E402
from robustcs.metrics import slice_metrics  # noqa: E402
from robustcs.physics import MultiCoilOperator, as_complex_tensor, fft2c, ifft2c  # noqa: E402
from robustcs.recon_io import iter_slices  # noqa: E402
from robustcs.specs import TTTSpec  # noqa: E402
from robustcs.study import Study  # noqa: E402
from robustcs.ttt import adapt_slice  # noqa: E402


PROTOCOLS = {"points": {"hide_holdout": False, "holdout_lines": False},
             "hidden": {"hide_holdout": True, "holdout_lines": False},
             "hidden-lines": {"hide_holdout": True, "holdout_lines": True}}


def map_residual(item) -> float:
    y = as_complex_tensor(item.kspace)
    op = MultiCoilOperator(torch.ones(1), as_complex_tensor(item.sens))
    projected = fft2c(op.expand(op.combine(ifft2c(y))))
    return float((y - projected).abs().square().sum().sqrt() / y.abs().square().sum().sqrt())


def slices(dataset: str, mask: str):
    import csv

    stems = sorted({r["stem"] for r in csv.DictReader(open(ROOT / paths.MANIFEST.format(dataset=dataset)))
                    if r["split"] == "test"})
    for stem in stems:
        sens = next((ROOT / "results/data" / dataset / "sens" / mask).glob("test-*.h5"))
        yield from iter_slices(ROOT / paths.MANIFEST.format(dataset=dataset), stem, None,
                               ROOT / paths.MASK.format(dataset=dataset, mask=mask), sens, count=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(ROOT / "config/config.yaml"))
    parser.add_argument("--shift", default="anatomy")
    parser.add_argument("--method", default="varnet_ttt_k2_c8_e6")
    parser.add_argument("--lr", type=float, nargs="+", default=[1e-3, 1e-4])
    parser.add_argument("--steps", type=int, default=None, help="max_steps (default: the run's)")
    parser.add_argument("--protocols", nargs="+", default=["points"], choices=sorted(PROTOCOLS))
    args = parser.parse_args()
    torch.set_num_threads(1)
    study = Study.from_config(yaml.safe_load(open(args.config)))
    pair = study.shift_pairs()[args.shift]
    plan = study.ttt_settings(args.shift)
    spec = TTTSpec.from_config(plan["spec"])
    if args.steps:
        spec = replace(spec, max_steps=args.steps)
    family = study.family(args.method).name
    settings = study.methods[args.method]
    model = load_method(args.method, settings, model_path=str(ROOT / paths.MODEL.format(
        dataset=pair["source"], mask=pair["mask"], method=args.method)))
    print(f"shift {args.shift}: {pair['source']} -> {pair['target']}, {args.method}, {spec}")
    changes: dict[str, list[float]] = {}
    for side, dataset, mask in (("P", pair["source"], pair["mask"]), ("Q", pair["target"], pair["target_mask"])):
        for item in slices(dataset, mask):
            line = f"{side} {item.stem}[{item.slice}] map_residual {map_residual(item):.4f}"
            if side == "Q":
                before = slice_metrics(item.target, model.reconstruct(item)[0], item.maxval)["ssim"]
                line += f" P->Q {before:.4f}"
                for lr in args.lr:
                    for protocol in args.protocols:
                        run = replace(spec, lr={**spec.lr, family: lr}, **PROTOCOLS[protocol])
                        result = adapt_slice(model.model, model.spec, item, run, seed=0)
                        after = slice_metrics(item.target, result.magnitude, item.maxval)["ssim"]
                        label = f"lr {lr:g} {protocol}"
                        changes.setdefault(label, []).append(after - before)
                        line += f" | {label}: {after:.4f} ({result.steps} steps{', stopped' if result.stopped_early else ''})"
            print(line, flush=True)
    print("mean SSIM change: " + "; ".join(f"{k} {np.mean(v):+.4f}" for k, v in changes.items()))


if __name__ == "__main__":
    main()
