"""Benchmark: one step of every stage of the real study at the real shapes, on this machine's device, and what
the budgets of the config then cost.

A generated fastMRI-format knee slice of the real shape (15 coils, 640x368 k-space, 320x320 reference, the
config's training mask) is timed through, per variant of the config (default: config/real.yaml):

  espirit       the maps of one slice (the config's ESPIRiT settings)
  recon step    one solver iteration (l1, cgsense), one Adam step of the ConvDecoder fit, one forward pass
                of a trained network (zero_filled: one pass)
  train step    one optimiser step on a batch of the variant's batch size (trained families)
  attack step   one PGD step on the attack's ε batch (attacks.batch budgets at once; attacked variants)

Each is the median of --repeat runs after one warm-up. The estimate then multiplies them by the config's
budgets (iterations, epochs, steps, ε) and the data sizes given on the command line (slices per epoch, test
slices): hours on one device, per variant and stage. The last line is ``ratio=<ConvDecoder step / zero-filled
pass>`` of this run, so that runs on different machines compare.

    python bench/real_steps.py [--configfile config/real.yaml [overlay.yaml ...]] [--methods a b ...]
                               [--device cpu|cuda] [--train-slices 9730] [--test-slices 1000] [--repeat 3]

On 2 CPU cores the paper-size networks take minutes per step (the VarNet ~85 s); choose --methods there.
bench/gpu_check.sh runs it on a CUDA machine.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import torch
import yaml
from snakemake.utils import update_config

from robustcs import families
from robustcs.attacks import pgd_attacks
from robustcs.demo import write_real_shaped
from robustcs.masks import MaskSpec, make_mask
from robustcs.methods import load_method
from robustcs.networks import init_model, save_model
from robustcs.recon_io import SliceInput
from robustcs.sensitivities import EspiritSpec, espirit_maps
from robustcs.specs import AttackSpec
from robustcs.study import Study
from robustcs.training import Criterion, collate, load_example, make_optimizer

ROOT = Path(__file__).resolve().parents[1]


def merged(files: list[Path]) -> dict:
    """Config files merged key by key, later over earlier, by Snakemake's own merge (as --configfile does)."""
    cfg: dict = {}
    for f in files:
        update_config(cfg, yaml.safe_load(Path(f).read_text()) or {})
    return cfg


def timed(fn, repeat: int, device: torch.device) -> float:
    """Median seconds of ``fn()`` over ``repeat`` runs after one warm-up (synchronised on CUDA)."""

    def once() -> float:
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - start

    once()
    return statistics.median(once() for _ in range(repeat))


def per_step(run, repeat: int, device: torch.device, short: int = 2, long: int = 6) -> tuple[float, float, bool]:
    """(seconds per step, set-up seconds, resolved) of an iterative computation: ``run(n)`` gives a call doing n
    steps; timed at two lengths, the difference is the steps' cost alone. When timing noise hides the difference
    (steps far cheaper than the set-up), the long run's time per step is returned as an upper bound, with
    resolved False."""
    a, b = timed(run(short), repeat, device), timed(run(long), repeat, device)
    step = (b - a) / (long - short)
    if step <= 0:
        return b / long, 0.0, False
    return step, max(a - short * step, 0.0), True


def knee_slice(folder: Path, mask_cfg: dict, espirit: EspiritSpec) -> tuple[dict, MaskSpec, SliceInput]:
    """A real-shaped knee file (one slice), its manifest-like row, the mask spec and the slice with its maps."""
    path = folder / "knee_real_shape.h5"
    write_real_shaped(path, coils=15, height=640, width=368, slices=1)
    mask_spec = MaskSpec(**mask_cfg)
    with h5py.File(path) as f:
        kspace, target = f["kspace"][0], f["reconstruction_rss"][0]
    mask, num_low, _ = make_mask(mask_spec, kspace.shape[-1], 0)
    sens = espirit_maps(kspace, mask, espirit)
    row = {"path": str(path), "slice": 0, "stem": path.stem, "max": float(target.max())}
    item = SliceInput(path.stem, 0, kspace, mask.astype(np.float32), num_low, sens, target, float(target.max()))
    return row, mask_spec, item


def trained_on(cfg: dict, name: str) -> set:
    """The (dataset, mask) pairs a trained variant learns from: its own, and for a TTT variant each TTT shift's
    source and target (its P->Q and Q->Q networks; the hours take every set as --train-slices large). The study
    model's defaults, without its start-up checks (the config's data folders need not exist here)."""
    study = Study(cfg)
    runs = {study.training_of(name)}
    ttt = cfg.get("ttt") or {}
    if name in ttt.get("methods", []):
        pairs = study.shift_pairs()
        for shift in ttt.get("shifts", []):
            runs |= {(pairs[shift]["source"], pairs[shift]["mask"]), (pairs[shift]["target"], pairs[shift]["target_mask"])}
    return runs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--configfile", nargs="+", type=Path, default=[ROOT / "config" / "real.yaml"])
    ap.add_argument("--methods", nargs="+", help="variants to time (default: every variant of the config)")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--train-slices", type=int, default=9730,
                    help="training slices per epoch (default: fastMRI knee train, 973 volumes x 10 middle slices)")
    ap.add_argument("--test-slices", type=int, default=1000, help="test slices reconstructed per variant and mask")
    ap.add_argument("--attack-slices", type=int, default=300, help="slices attacked per variant")
    ap.add_argument("--ttt-slices", type=int, default=100, help="slices adapted per TTT shift and variant")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--out", type=Path, help="also write the table as CSV here")
    args = ap.parse_args()
    cfg = merged(args.configfile)
    device = torch.device(args.device)
    methods = cfg.get("methods") or {}
    chosen = args.methods or list(methods)
    if unknown := sorted(set(chosen) - set(methods)):
        sys.exit(f"--methods: {unknown} are not variants of {[str(f) for f in args.configfile]}")
    training = cfg.get("training") or {}
    mask_name = training.get("mask") or next(iter(cfg["masks"]))
    espirit = EspiritSpec(**(cfg.get("sensitivities") or {}).get("espirit", {}))
    attack_cfg = cfg.get("attacks") or {}
    attack = AttackSpec.from_config({k: v for k, v in attack_cfg.items()
                                     if k not in ("datasets", "masks", "methods", "slices", "save_perturbations", "effort")})
    attacked = set(attack_cfg.get("methods", methods))
    ttt = cfg.get("ttt") or {}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        row, mask_spec, item = knee_slice(tmp, cfg["masks"][mask_name], espirit)
        print(f"device {device}; slice k-space {item.kspace.shape}, reference {item.target.shape}, mask {mask_name}",
              flush=True)
        sens_s = timed(lambda: espirit_maps(item.kspace, item.mask.astype(bool), espirit), 1, device)
        rows.append({"variant": "espirit", "stage": "espirit", "step_s": sens_s, "steps": args.test_slices,
                     "what": "maps of one slice"})
        zf = load_method("zero_filled", {"family": "zero_filled"}, device)  # the reference of the ratio
        zf_s = timed(lambda: zf.reconstruct(item), args.repeat, device)
        for name in chosen:
            settings = dict(methods[name])
            pretrained = settings.pop("checkpoint", None)  # published weights (robustcs.pretrained): no train stage
            fam = families.family(settings["family"])
            spec = fam.parse({k: v for k, v in settings.items() if k not in ("train_on", "train_mask")})
            model_path = None
            if fam.trained:
                model = init_model(spec, 0).to(device)
                batch_size = getattr(spec, "batch_size", 1)
                maps = None
                if fam.reads_maps(spec):  # a maps file as the sensitivities rule writes it (one group per file)
                    sens_file = tmp / "maps.h5"
                    with h5py.File(sens_file, "w") as f:
                        f.create_group(row["stem"]).create_dataset("sens", data=item.sens[None])
                        f[row["stem"]].create_dataset("slices", data=np.array([0], np.int32))
                    maps = {row["stem"]: str(sens_file)}
                example = load_example(row, mask_spec, 0, maps)
                batch = collate([example] * batch_size, device)
                criterion, optimiser = Criterion(spec, device), make_optimizer(spec, model)

                def train_step():
                    optimiser.zero_grad()
                    loss, _ = criterion(model, batch)
                    loss.backward()
                    optimiser.step()

                if pretrained is None:
                    if device.type == "cuda":
                        torch.cuda.reset_peak_memory_stats()
                    step = timed(train_step, args.repeat, device)
                    peak = torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else float("nan")
                    per_epoch = math.ceil(args.train_slices * getattr(spec, "train_fraction", 1.0) / batch_size)
                    runs = len(trained_on(cfg, name))  # a TTT network is trained on each shift's source and target too
                    rows.append({"variant": name, "stage": "train", "step_s": step, "steps": spec.epochs * per_epoch * runs,
                                 "what": f"batch of {batch_size}; {spec.epochs} epochs x {per_epoch}"
                                         + (f" x {runs} training sets (TTT shifts' sources and targets)" if runs > 1 else ""),
                                 "gpu_gb": peak})
                if name in ttt.get("methods", []):
                    ttt_steps = ttt.get("max_steps", 2500) * args.ttt_slices * len(ttt.get("shifts", []))
                    one = collate([example], device)
                    rows.append({"variant": name, "stage": "ttt", "step_s": timed(lambda: criterion(model, one)[0].backward(),
                                                                                    args.repeat, device),
                                 "steps": ttt_steps, "what": "self-supervised step (upper bound: max_steps)"})
                model_path = tmp / f"{name}.pt"
                save_model(model_path, spec, model.cpu())
            method = load_method(name, settings, device, model_path=None if model_path is None else str(model_path))
            y = method.measurements(item)
            if fam.name == "convdecoder" or hasattr(spec, "iterations"):
                # an iteration's cost apart from the set-up (scaling, power method, network build): two lengths
                def run(n: int):
                    if fam.name == "convdecoder":
                        method.spec = replace(spec, iterations=n)
                        return lambda: method.fit(item, y)
                    short = load_method(name, {**settings, "iterations": n}, device)
                    return lambda: short.reconstruct(item)

                step, setup, resolved = per_step(run, args.repeat, device)
                steps = spec.iterations * args.test_slices
                what = (f"{'Adam step of the fit' if fam.name == 'convdecoder' else 'iteration'}; {spec.iterations} "
                        f"per slice + {setup:.2g} s set-up" + ("" if resolved else " (upper bound: below timing noise)"))
            else:
                step, setup = timed(lambda: method.reconstruct(item), args.repeat, device), 0.0
                steps, what = args.test_slices, "forward pass"
            rows.append({"variant": name, "stage": "recon", "step_s": step, "steps": steps, "what": what,
                         "setup_s": setup, "setups": args.test_slices})
            if name in attacked and fam.name != "convdecoder":
                width = attack.batch or len(attack.epsilons)
                radii = [0.01 * float(np.linalg.norm(item.kspace))] * width
                _, state = method.attack_start(item, y)
                mask = torch.as_tensor(item.mask, device=device)

                def run(n: int):
                    return lambda: pgd_attacks(state[0], y, mask, radii, replace(attack, steps=n), list(range(width)),
                                               clean=state[1])

                step, _, resolved = per_step(run, args.repeat, device)
                passes = math.ceil(len(attack.epsilons) / width)
                rows.append({"variant": name, "stage": "attack", "step_s": step,
                             "steps": attack.steps * passes * args.attack_slices,
                             "what": f"PGD step on {width} budgets; {attack.steps} steps x {passes} passes"
                                     + ("" if resolved else " (upper bound: below timing noise)")})
            elif name in attacked:  # the joint attack: each ε refits the decoder for attack.steps Adam steps
                rows.append({"variant": name, "stage": "attack", "step_s": rows[-1]["step_s"],
                             "steps": attack.steps * len(attack.epsilons) * args.attack_slices,
                             "what": "joint step ~ one fit step (lower bound)"})
            print(f"{name}: " + ", ".join(f"{r['stage']} {r['step_s']:.3g} s" for r in rows if r["variant"] == name),
                  flush=True)
    table = pd.DataFrame(rows)
    for col in ("setup_s", "setups", "gpu_gb"):
        if col not in table:
            table[col] = float("nan")
    table["hours"] = (table["step_s"] * table["steps"] + table["setup_s"].fillna(0) * table["setups"].fillna(0)) / 3600
    pd.set_option("display.width", 200)
    print(table.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    print("hours per stage (one device, one job at a time):")
    print(table.groupby("stage", sort=False)["hours"].sum().to_string(float_format=lambda v: f"{v:.3g}"))
    if args.out:
        table.to_csv(args.out, index=False)
    cd = table[(table["stage"] == "recon") & table["what"].str.startswith("Adam")]["step_s"]
    ratio = float(cd.iloc[0]) / zf_s if len(cd) else float("nan")
    print(f"ratio={ratio:.1f}")


if __name__ == "__main__":
    main()
