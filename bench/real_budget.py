"""The arithmetic of bench/real_steps.py: from the cost of one step per (variant, stage) and a config, how many
steps each stage of the study takes and the GPU-hours they sum to (one device, one job at a time).

Data sizes a config cannot know (how many files a folder holds) come in as volume counts per split: a dataset's
split then holds floor(b·n) − floor(a·n) of the n files for its ``share: [a, b]`` (all without one), times its
``slices: {middle: k}`` (``all``: ALL_SLICES per volume, an estimate). Stanford datasets read their own count
(19 volumes). Every other dataset's split gets the same count: the fastMRI knee's (973 train, 199 val, and the
test folder's --test-volumes), an approximation for the brain folders.

Stages (each row: steps × step cost + set-ups × set-up cost):

  espirit        maps of every slice a job reads them for: the evaluated test sides, the tuning split, the
                 training and validation sets of networks that read maps (their slice caps applied)
  recon          every variant on every evaluated (dataset, mask) of the test split: the evaluation's and the
                 fitted shifts' targets (the filter networks on the evaluation's only); iterations per slice
  tuning         the same on the tuning split (validation) for the tuned families' variants
  train          optimiser steps: epochs × ceil(slices × train_fraction / batch) per training set
  train_val      the validation pass after every epoch: epochs × validation slices × one forward pass
  attack         PGD steps: steps × ⌈ε / batch⌉ passes × attacked slices (the ConvDecoder: its fit step per step)
  attack_effort  the effort check's reruns at one ε: slices × steps × (1 + Σ factors), at the measured batch's
                 step cost (an upper bound for one ε)
  ttt            self-supervised steps, max_steps per slice (an upper bound: the stop usually comes earlier)
                 × target test slices of every TTT shift, × 2 with ablation_hidden, × 2 with reference_ttt
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from robustcs import families
from robustcs.study import Study, filled_config

#: Slices per volume assumed for a dataset with ``slices: all`` (an estimate; fastMRI knee volumes hold 30-40).
ALL_SLICES = 35
#: Files of the Stanford 3D FSE folder (mridata.org's "Stanford Fullysampled 3D FSE Knees").
STANFORD_VOLUMES = 19


@dataclass(frozen=True)
class Sizes:
    """Files per split of a fastMRI folder (the knee's by default)."""

    train: int = 973
    val: int = 199
    test: int = 100


def split_volumes(cfg: dict, dataset: str, split: str, sizes: Sizes) -> int:
    """Volumes of a dataset's split: its share of the folder's files."""
    ds = cfg["datasets"][dataset]
    src = (ds.get("splits") or {}).get(split)
    if src is None:
        return 0
    n = STANFORD_VOLUMES if ds["kind"] == "stanford" else getattr(sizes, split)
    a, b = src.get("share", [0.0, 1.0])
    return math.floor(b * n) - math.floor(a * n)


def per_volume(cfg: dict, dataset: str) -> int:
    slices = cfg["datasets"][dataset].get("slices", "all")
    return ALL_SLICES if slices == "all" else int(slices["middle"])


def split_slices(cfg: dict, dataset: str, split: str, sizes: Sizes) -> int:
    return split_volumes(cfg, dataset, split, sizes) * per_volume(cfg, dataset)


def test_sides(study: Study) -> list[tuple[str, str]]:
    """(dataset, mask) of the test split every evaluated variant is reconstructed on: the evaluation's and the
    fitted shifts' targets."""
    ev = study.config["evaluation"]
    sides = [(d, m) for d in ev["datasets"] for m in ev["masks"]]
    for cfg in study.fitted_shifts().values():
        if (cfg["target"], cfg["target_mask"]) not in sides:
            sides.append((cfg["target"], cfg["target_mask"]))
    return sides


def training_sets(study: Study, name: str) -> list[tuple[str, str]]:
    """(dataset, mask) a trained variant learns from: its own, and for a TTT variant each TTT shift's source and
    target (its P->Q and Q->Q networks)."""
    runs = [study.training_of(name)]
    ttt = study.config.get("ttt") or {}
    if name in ttt.get("methods", []):
        pairs = study.shift_pairs()
        for shift in ttt.get("shifts", []):
            for side in ((pairs[shift]["source"], pairs[shift]["mask"]), (pairs[shift]["target"], pairs[shift]["target_mask"])):
                if side not in runs:
                    runs.append(side)
    return runs


def _capped(n: int, cap) -> int:
    return n if cap is None else min(n, int(cap))


def _row(variant, stage, cost, steps, what, setups=0.0) -> dict:
    hours = (cost["step_s"] * steps + (cost.get("setup_s") or 0.0) * setups) / 3600
    return {"variant": variant, "stage": stage, "step_s": cost["step_s"], "steps": steps, "what": what,
            "setup_s": cost.get("setup_s"), "setups": setups, "gpu_gb": cost.get("gpu_gb"), "hours": hours}


def estimate(cfg: dict, costs: dict, sizes: Sizes, variants: list[str], overrides: dict | None = None) -> list[dict]:
    """Rows of (variant, stage, step cost, steps, hours) for ``variants`` of ``cfg`` from ``costs``
    ({(variant, stage): {"step_s", "setup_s", "gpu_gb"}}, stages espirit/recon/train/attack/ttt; the espirit
    row's variant is "espirit"). ``overrides``: test_slices, attack_slices, ttt_slices per side/variant/shift
    instead of the config-derived counts. A missing cost is a KeyError naming the (variant, stage)."""
    overrides = overrides or {}
    study = Study(filled_config(cfg))  # the schema's defaults, without the start-up checks (no data folders here)
    methods, filters = cfg.get("methods") or {}, set(study.filter_methods())
    sides, tuned = test_sides(study), study.tuning_case()
    ev_sides = [(d, m) for d in study.config["evaluation"]["datasets"] for m in study.config["evaluation"]["masks"]]
    test_n = lambda d: overrides.get("test_slices") or split_slices(cfg, d, "test", sizes)  # noqa: E731
    tune_n = split_slices(cfg, tuned[0], tuned[2], sizes) if tuned[3] else 0
    attacks, ttt = cfg.get("attacks") or {}, cfg.get("ttt") or {}
    maps = {(d, m, "test"): test_n(d) for d, m in sides}
    if tune_n:
        maps[(tuned[0], tuned[1], tuned[2])] = tune_n
    rows = []
    for name in variants:
        fam = families.family(methods[name]["family"])
        spec = study.spec(name)
        per_slice = getattr(spec, "iterations", 1)
        own = ev_sides if name in filters else sides
        n_test = sum(test_n(d) for d, _ in own)
        cost = costs[(name, "recon")]
        rows.append(_row(name, "recon", cost, per_slice * n_test,
                         f"{per_slice} step(s) per slice x {n_test} test slices on {len(own)} (dataset, mask)", n_test))
        if name in tuned[3] and tune_n:
            rows.append(_row(name, "tuning", cost, per_slice * tune_n, f"{per_slice} step(s) x {tune_n} {tuned[2]} slices",
                             tune_n))
        if fam.trained and "checkpoint" not in methods[name]:  # published weights (a checkpoint) are not trained
            rows += _training_rows(cfg, study, name, spec, costs, sizes, maps)
        if name in attacks.get("methods", methods) and "attacks" in cfg:
            rows += _attack_rows(cfg, study, name, fam, costs, sizes, overrides)
        if name in ttt.get("methods", []):
            pairs = study.shift_pairs()
            per_shift = {s: overrides.get("ttt_slices") or split_volumes(cfg, pairs[s]["target"], "test", sizes)
                         * ttt.get("slices", 2) for s in ttt.get("shifts", [])}
            runs = 1 + bool(ttt.get("ablation_hidden")) + bool(ttt.get("reference_ttt"))
            steps = ttt.get("max_steps", 2500) * sum(per_shift.values()) * runs
            rows.append(_row(name, "ttt", costs[(name, "ttt")], steps,
                             f"<= {ttt.get('max_steps', 2500)} steps x {sum(per_shift.values())} slices of "
                             f"{len(per_shift)} shifts x {runs} protocol(s) (upper bound)"))
    if ("espirit", "espirit") in costs:
        total = sum(maps.values())
        rows.insert(0, _row("espirit", "espirit", costs[("espirit", "espirit")], total,
                            f"maps of {total} slices ({len(maps)} dataset/mask/split sets)"))
    return rows


def _training_rows(cfg, study, name, spec, costs, sizes, maps) -> list[dict]:
    """Training and its per-epoch validation on every training set of a trained variant."""
    fam = families.family(cfg["methods"][name]["family"])
    steps = val = 0
    sets = training_sets(study, name)
    for dataset, mask in sets:
        n_train = _capped(split_slices(cfg, dataset, "train", sizes), spec.max_train_slices)
        n_val = _capped(split_slices(cfg, dataset, "val", sizes), spec.max_val_slices)
        steps += spec.epochs * math.ceil(round(n_train * spec.train_fraction, 9) / spec.batch_size)
        val += spec.epochs * n_val
        if fam.reads_maps(spec):
            for split, n in (("train", n_train), ("val", n_val)):
                maps[(dataset, mask, split)] = max(maps.get((dataset, mask, split), 0), n)
    what = f"batch of {spec.batch_size}; {spec.epochs} epochs on {len(sets)} training set(s)"
    if spec.max_train_slices is not None:
        what += f" of <= {spec.max_train_slices} slices"
    return [_row(name, "train", costs[(name, "train")], steps, what),
            _row(name, "train_val", costs[(name, "recon")], val, f"forward pass; {spec.epochs} epochs x validation slices")]


def _attack_rows(cfg, study, name, fam, costs, sizes, overrides) -> list[dict]:
    """The attack on every attacked slice and the effort check's reruns."""
    block = study.experiment("attacks")
    steps, eps = block.get("steps", 400), block.get("epsilons", [0.01, 0.02, 0.04, 0.08])
    width = block.get("batch") or len(eps)
    n = overrides.get("attack_slices") or sum(
        split_volumes(cfg, d, "test", sizes) * block.get("slices", 1) for d in block["datasets"]) * len(block["masks"])
    cost = costs[(name, "recon")] if fam.name == "convdecoder" else costs[(name, "attack")]
    if fam.name == "convdecoder":  # the joint attack: each ε refits the decoder for `steps` Adam steps
        rows = [_row(name, "attack", cost, steps * len(eps) * n, f"joint step ~ one fit step; {steps} x {len(eps)} ε x {n} slices")]
    else:
        passes = math.ceil(len(eps) / width)
        rows = [_row(name, "attack", cost, steps * passes * n, f"PGD step on {width} budgets; {steps} x {passes} passes x {n} slices")]
    effort = (cfg.get("attacks") or {}).get("effort")
    if effort is not None:
        slices, factors = effort.get("slices", 2), effort.get("factors", [2, 4])
        rows.append(_row(name, "attack_effort", cost, slices * steps * (1 + sum(factors)),
                         f"{slices} slices x {steps} steps x (1 + {' + '.join(map(str, factors))}) at one ε (upper bound)"))
    return rows


def stage_table(rows: list[dict]) -> list[tuple[str, float, float]]:
    """(stage, GPU-hours, share of the total) per stage, in order of first appearance."""
    hours: dict[str, float] = {}
    for r in rows:
        hours[r["stage"]] = hours.get(r["stage"], 0.0) + r["hours"]
    total = sum(hours.values()) or 1.0
    return [(stage, h, h / total) for stage, h in hours.items()]
