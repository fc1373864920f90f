"""Benchmark: one step of every stage of the real study at the real shapes, on this machine's device, and what
the budgets of the config then cost.

A generated fastMRI-format knee slice of the real shape (15 coils, 640x368 k-space, 320x320 reference, the
config's training mask) is timed through, per variant of the config (default: config/real.yaml):

  espirit       the maps of one slice (the config's ESPIRiT settings)
  recon step    one solver iteration (l1, cgsense), one Adam step of the ConvDecoder fit, one forward pass
                of a trained network (zero_filled: one pass)
  train step    one optimiser step on a batch of the variant's batch size (trained families)
  attack step   one PGD step on the attack's ε batch (attacks.batch budgets at once; attacked variants)

Each is the median of --repeat runs after one warm-up. bench/real_budget.py then multiplies them by the config's
budgets and data sizes (the slices of every split it reads: shares, central slices, slice caps; the folders' file
counts from --train/--val/--test-volumes): steps and hours per variant and stage (espirit, recon, tuning, train,
train_val, attack, attack_effort, ttt), the hours per stage with their share, and a line ``total <h> GPU-hours``
(one device, one job at a time). The last line is ``ratio=<ConvDecoder step / zero-filled pass>`` of this run, so
that runs on different machines compare.

    python bench/real_steps.py [--configfile config/real.yaml [overlay.yaml ...]] [--methods a b ...]
                               [--device cpu|cuda] [--test-volumes 100] [--repeat 3] [--out steps.csv]

--costs CSV takes the step costs of an earlier --out instead of timing (no GPU needed): an estimate for another
config from measured steps; --alias NEW=OLD lends a measured variant's costs to a renamed one, --cost
VARIANT:STAGE=SECONDS sets one (say so where it is used: an estimate, not a measurement). For example, the
estimate of docs/runtime.md from the H200's costs:

    python bench/real_steps.py --costs docs/gpu/real_steps_h200.csv --alias unet_ttt_c64_e300=unet_ttt_c64_e50 \
        --cost unet_ttt_c64_e300:train=0.025

On 2 CPU cores the paper-size networks take minutes per step (the VarNet ~85 s); choose --methods there.
bench/gpu_check.sh runs it on a CUDA machine.
"""

from __future__ import annotations

import argparse
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

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "workflow"))  # this checkout's library first
sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/real_budget.py: the arithmetic

from robustcs import families  # noqa: E402
from robustcs.attacks import pgd_attacks
from robustcs.demo import write_real_shaped
from robustcs.masks import MaskSpec, make_mask
from robustcs.methods import load_method
from robustcs.networks import init_model, save_model
from robustcs.recon_io import SliceInput
from robustcs.sensitivities import EspiritSpec, espirit_maps
from robustcs.specs import AttackSpec
from robustcs.study import Study, filled_config
from robustcs.training import Criterion, collate, load_example, make_optimizer

import real_budget  # noqa: E402

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
    source and target (its P->Q and Q->Q networks). The study model's defaults, without its start-up checks (the
    config's data folders need not exist here)."""
    return set(real_budget.training_sets(Study(filled_config(cfg)), name))


def measure(cfg: dict, chosen: list[str], device: torch.device, repeat: int) -> tuple[dict, float]:
    """{(variant, stage): {"step_s", "setup_s", "gpu_gb", "what"}} of the chosen variants timed on ``device``
    at the real shapes, and the zero-filled pass's seconds (the reference of the ratio)."""
    methods = cfg.get("methods") or {}
    training = cfg.get("training") or {}
    mask_name = training.get("mask") or next(iter(cfg["masks"]))
    espirit = EspiritSpec(**(cfg.get("sensitivities") or {}).get("espirit", {}))
    attack_cfg = cfg.get("attacks") or {}
    attack = AttackSpec.from_config({k: v for k, v in attack_cfg.items()
                                     if k not in ("datasets", "masks", "methods", "slices", "save_perturbations", "effort")})
    attacked = set(attack_cfg.get("methods", methods))
    ttt = cfg.get("ttt") or {}
    costs: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        row, mask_spec, item = knee_slice(tmp, cfg["masks"][mask_name], espirit)
        print(f"device {device}; slice k-space {item.kspace.shape}, reference {item.target.shape}, mask {mask_name}",
              flush=True)
        # a NumPy computation on the CPU: knee_slice's call that computed the maps was its warm-up
        start = time.perf_counter()
        espirit_maps(item.kspace, item.mask.astype(bool), espirit)
        sens_s = time.perf_counter() - start
        costs[("espirit", "espirit")] = {"step_s": sens_s, "what": "maps of one slice"}
        zf = load_method("zero_filled", {"family": "zero_filled"}, device)  # the reference of the ratio
        zf_s = timed(lambda: zf.reconstruct(item), repeat, device)
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

                if pretrained is None:  # published weights: nothing to train
                    if device.type == "cuda":
                        torch.cuda.reset_peak_memory_stats()
                    step = timed(train_step, repeat, device)
                    peak = torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else float("nan")
                    costs[(name, "train")] = {"step_s": step, "gpu_gb": peak, "what": f"batch of {batch_size}"}
                if name in ttt.get("methods", []):
                    one = collate([example], device)
                    costs[(name, "ttt")] = {"step_s": timed(lambda: criterion(model, one)[0].backward(), repeat, device),
                                            "what": "self-supervised step"}
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

                step, setup, resolved = per_step(run, repeat, device)
                what = ("Adam step of the fit" if fam.name == "convdecoder" else "iteration") + (
                    "" if resolved else " (upper bound: below timing noise)")
            else:
                step, setup, what = timed(lambda: method.reconstruct(item), repeat, device), 0.0, "forward pass"
            costs[(name, "recon")] = {"step_s": step, "setup_s": setup, "what": what}
            if name in attacked and fam.name != "convdecoder":
                width = attack.batch or len(attack.epsilons)
                radii = [0.01 * float(np.linalg.norm(item.kspace))] * width
                _, state = method.attack_start(item, y)
                mask = torch.as_tensor(item.mask, device=device)

                def run(n: int):
                    return lambda: pgd_attacks(state[0], y, mask, radii, replace(attack, steps=n), list(range(width)),
                                               clean=state[1])

                step, _, resolved = per_step(run, repeat, device)
                costs[(name, "attack")] = {"step_s": step, "what": f"PGD step on {width} budgets"
                                           + ("" if resolved else " (upper bound: below timing noise)")}
            print(f"{name}: " + ", ".join(f"{st} {c['step_s']:.3g} s" for (v, st), c in costs.items() if v == name),
                  flush=True)
    return costs, zf_s


def read_costs(path: Path, aliases: list[str], settings: list[str]) -> dict:
    """Step costs of an earlier run's CSV (--out), as {(variant, stage): cost}; ``aliases`` NEW=OLD give a variant
    the measured costs of another, ``settings`` VARIANT:STAGE=SECONDS set one step cost (an estimate)."""
    table = pd.read_csv(path)
    costs = {(r["variant"], r["stage"]): {"step_s": float(r["step_s"]),
                                          "setup_s": None if pd.isna(r.get("setup_s")) else float(r["setup_s"]),
                                          "gpu_gb": r.get("gpu_gb"), "what": "from " + path.name}
             for r in table.to_dict("records")}
    for alias in aliases:
        new, sep, old = alias.partition("=")
        if not sep or not any(v == old for v, _ in costs):
            sys.exit(f"--alias {alias!r}: expected NEW=OLD with OLD a variant of {path}")
        costs.update({(new, st): dict(c, what=f"{old}'s, from {path.name}") for (v, st), c in list(costs.items()) if v == old})
    for setting in settings:
        key, sep, value = setting.partition("=")
        variant, colon, stage = key.partition(":")
        try:
            seconds = float(value)
        except ValueError:
            seconds = -1.0
        if not (sep and colon) or seconds <= 0:
            sys.exit(f"--cost {setting!r}: expected VARIANT:STAGE=SECONDS with SECONDS > 0")
        costs[(variant, stage)] = {**costs.get((variant, stage), {}), "step_s": seconds, "what": "set by --cost (estimate)"}
    return costs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--configfile", nargs="+", type=Path, default=[ROOT / "config" / "real.yaml"])
    ap.add_argument("--methods", nargs="+", help="variants to time (default: every variant of the config)")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--costs", type=Path, help="take the step costs from this CSV (an earlier --out) instead of timing")
    ap.add_argument("--alias", nargs="*", default=[], help="with --costs: NEW=OLD, a variant costs what OLD measured")
    ap.add_argument("--cost", nargs="*", default=[], help="with --costs: VARIANT:STAGE=SECONDS, one step cost set")
    for split, n in (("train", 973), ("val", 199), ("test", 100)):
        ap.add_argument(f"--{split}-volumes", type=int, default=n, help=f"files in a {split} folder (default {n}: "
                        "the fastMRI knee's; Stanford: 19); a split's share and slices per volume apply")
    ap.add_argument("--test-slices", type=int, help="test slices per (dataset, mask) instead of the config's")
    ap.add_argument("--attack-slices", type=int, help="attacked slices per variant instead of the config's")
    ap.add_argument("--ttt-slices", type=int, help="slices adapted per TTT shift instead of the config's")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--out", type=Path, help="also write the table as CSV here")
    args = ap.parse_args()
    cfg = merged(args.configfile)
    methods = cfg.get("methods") or {}
    chosen = args.methods or list(methods)
    if unknown := sorted(set(chosen) - set(methods)):
        sys.exit(f"--methods: {unknown} are not variants of {[str(f) for f in args.configfile]}")
    if args.costs:
        costs = read_costs(args.costs, args.alias, args.cost)
        zf = costs.get(("zero_filled", "recon"), {}).get("step_s", float("nan"))
    else:
        costs, zf = measure(cfg, chosen, torch.device(args.device), args.repeat)
    sizes = real_budget.Sizes(train=args.train_volumes, val=args.val_volumes, test=args.test_volumes)
    overrides = {"test_slices": args.test_slices, "attack_slices": args.attack_slices, "ttt_slices": args.ttt_slices}
    try:
        rows = real_budget.estimate(cfg, costs, sizes, chosen, overrides)
    except KeyError as err:
        sys.exit(f"no step cost for {err.args[0]} (in {args.costs or 'this run'}); --alias or --cost gives one")
    report(pd.DataFrame(rows), args.out)
    cd = [c["step_s"] for (v, st), c in costs.items() if st == "recon" and methods.get(v, {}).get("family") == "convdecoder"]
    print(f"ratio={cd[0] / zf:.1f}" if cd and zf == zf else "ratio=nan")


def report(table: pd.DataFrame, out: Path | None) -> None:
    """The rows, then the hours per stage with their share, then the total."""
    pd.set_option("display.width", 220)
    print(table.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    print("GPU-hours per stage (one device, one job at a time; estimates from the step costs):")
    print(f"  {'stage':<14} {'GPU-hours':>10} {'share':>7}")
    for stage, hours, share in real_budget.stage_table(table.to_dict("records")):
        print(f"  {stage:<14} {hours:>10.1f} {share:>6.1%}")
    print(f"total {table['hours'].sum():.1f} GPU-hours")
    if out:
        table.to_csv(out, index=False)


if __name__ == "__main__":
    main()
