"""The study model's cross-field checks (``Study.check``): what spans fields, files or the registry.

Types, ranges and defaults of single fields are config/schema.yaml's (checked by ``Study.from_config`` before these
run); every check here relates a field to another one (names that must exist, a variant's family and what it is
asked to do, a shift's source and the variants' training data) or to something outside the config (data folders,
archive names, the family registry, a variant's own settings through its family's parser, the annotation file).
Each raises a ValueError naming the config field and what was expected. Functions of the study
(:class:`robustcs.study.Study`), so that its queries give the defaults the checks see.
"""

from __future__ import annotations

import re
from typing import Any

from . import configcheck, families, pretrained
from .download import archive_name


def wrap(where: str, check) -> Any:
    """``check()``, its TypeError/ValueError re-raised as a ValueError prefixed with the config field."""
    try:
        return check()
    except (TypeError, ValueError) as err:
        raise ValueError(f"config {where}: {err}") from None


def check_study(study) -> None:
    """Every cross-field check, in the order a user would fix them (data, masks, variants, experiments)."""
    _check_sources(study)
    configcheck.check_runtime(study.config["compute"]["runtime"], list(families.FAMILIES))
    _check_masks(study)
    _check_methods(study)
    pretrained.check_study(study)
    _check_experiments(study)
    _check_shifts(study)
    _check_ttt(study)
    _check_plots(study)
    from .study_limits import check_limits  # slice counts and sizes within the demo data they run on

    check_limits(study)


def _check_sources(study) -> None:
    """Outside the config: data folders exist, archive file names are safe and distinct within a dataset, splits
    reading one source take disjoint shares."""
    configcheck.check_folders(study.config["datasets"])  # every missing data folder at once
    seen = {}
    for name, ds in study.config["datasets"].items():
        configcheck.check_shares(name, ds.get("splits") or {})
        for split, src in (ds.get("splits") or {}).items():
            for i, arch in enumerate(src.get("archives", [])):
                where, fname = f"datasets.{name}.splits.{split}.archives[{i}]", archive_name(arch["url"])
                if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.\-]*", fname):
                    raise ValueError(f"config {where}.url: file name {fname!r} must contain only letters, "
                                     "digits, '.', '_' and '-'")
                other = seen.get((name, fname))  # two archives of one dataset with one file name collide
                if other and other[1] != arch["url"]:
                    raise ValueError(f"config {where}.url: file name {fname!r} is also the name of {other[0]} "
                                     f"({other[1]}); both would be downloaded to results/downloads/{name}/{fname}")
                seen[(name, fname)] = (where, arch["url"])


def _check_masks(study) -> None:
    """Cross-field: a mask's fully sampled centre within its sampling budget (center_fraction x acceleration)."""
    for name, m in study.config["masks"].items():
        if m["center_fraction"] * m["acceleration"] > 1:
            raise ValueError(f"config masks.{name}.center_fraction: {m['center_fraction']} is more than "
                             f"1/acceleration (1/{m['acceleration']}); the fully sampled centre alone would "
                             "exceed the sampling budget")


def _check_methods(study) -> None:
    """Each variant's settings against its family's schema definition and through its family's parser (names the
    variant and key), and the datasets/masks the training and evaluation blocks refer to."""
    c, schema = study.config, configcheck.load_schema(study.schema)
    for name, cfg in study.methods.items():
        fam = wrap(f"methods.{name}.family", lambda: families.family(cfg["family"]))
        extra = sorted(set(cfg) - set(study.variant_settings(name)))  # where it trains
        if extra and not fam.trained:
            raise ValueError(f"config methods.{name}: {extra} only apply to trained families "
                             f"{families.names(trained=True)}")
        check_variant(name, cfg, schema)
        wrap(f"methods.{name}", lambda: study.spec(name))
        if fam.trained:
            dataset, mask = study.training_of(name)
            if dataset not in c["datasets"]:
                raise ValueError(f"config methods.{name}: training dataset {dataset!r} (training.dataset or "
                                 f"train_on) is not one of datasets {sorted(c['datasets'])}")
            if mask not in c["masks"]:
                raise ValueError(f"config methods.{name}: training mask {mask!r} (training.mask or train_mask) "
                                 f"is not one of masks {sorted(c['masks'])}")
    for key in ("datasets", "masks"):
        for item in c["evaluation"][key]:
            if item not in c[key]:
                raise ValueError(f"config evaluation.{key}: {item!r} is not one of {key} {sorted(c[key])}")
    for fam in (c.get("tuning") or {}).get("families", []):
        if fam not in families.names():
            raise ValueError(f"config tuning.families: {fam!r} is not a family {families.names()}")
    for key, name in zip(("dataset", "mask"), study.tuning_case()[:2]):
        if name not in c[f"{key}s"]:
            raise ValueError(f"config tuning.{key}: {name!r} is not one of {key}s {sorted(c[f'{key}s'])}")


def check_variant(name: str, cfg: dict, schema: dict) -> None:
    """A variant's block against its family's definition in the schema (``$defs`` ``method_<family>``: types,
    ranges, unknown keys), checked on its own so that no default is filled in: a variant's rule params are its keys
    as given, and a default added to them would rerun every job of a finished study. A family the schema does not
    define (one a test registers) has only its parser's checks. ValueError: the schema's one-line summary."""
    definition = f"method_{cfg['family']}"
    if definition not in schema.get("$defs", {}):
        return
    view = {"$defs": schema["$defs"], "type": "object", "properties": {"methods": {
        "type": "object", "properties": {name: {"$ref": f"#/$defs/{definition}"}}}}}
    if summary := configcheck.schema_error({"methods": {name: cfg}}, view):
        raise ValueError(summary)


def _check_experiments(study) -> None:
    """Dataset, mask and variant names of the experiment blocks, and their own settings."""
    pools = {"datasets": study.config["datasets"], "masks": study.config["masks"], "methods": study.methods}
    for name in ("attacks", "features", "pathology"):
        if name not in study.config:
            continue
        block = study.experiment(name)
        for key, pool in pools.items():
            for item in block[key]:
                if item not in pool:
                    raise ValueError(f"config {name}.{key}: {item!r} is not one of {key} {sorted(pool)}")
        if name == "attacks" and (cannot := [m for m in block["methods"] if not study.attackable(m)]):
            raise ValueError(f"config attacks.methods: {cannot} offer no differentiable forward (forward, "
                             "differentiable or attack in their class; docs/own_method.md)")
    study.attack_effort_settings()
    wrap("features", study.feature_settings)
    if "pathology" in study.config:
        study.pathology_boxes()  # the file exists and every row is a box


def _check_shifts(study) -> None:
    """Datasets, masks and variants the shift blocks name, and that trained variants learn from each shift's
    source (else 'in distribution' would not be)."""
    c = study.config
    for name, cfg in study.shift_pairs().items():
        where = f"config shifts.pairs.{name}"
        for key, pool in (("source", "datasets"), ("target", "datasets"), ("mask", "masks"),
                          ("target_mask", "masks")):
            if key not in cfg and key == "target":
                raise ValueError(f"{where}: kind {cfg['kind']} needs a target dataset")
            if cfg[key] not in c[pool]:
                raise ValueError(f"{where}.{key}: {cfg[key]!r} is not one of {pool} {sorted(c[pool])}")
        if cfg["kind"] == "filtered":
            for key in ("filter", "fraction"):
                if key not in cfg:
                    raise ValueError(f"{where}: kind filtered needs {key!r}")
            if cfg["filter"] not in study.methods:
                raise ValueError(f"{where}.filter: {cfg['filter']!r} is not one of methods {sorted(study.methods)}")
            if (cfg["target"], cfg["target_mask"]) != (cfg["source"], cfg["mask"]):
                raise ValueError(f"{where}: kind filtered selects slices of its source; drop target/target_mask")
        else:
            for key in ("filter", "fraction"):
                if key in cfg:
                    raise ValueError(f"{where}.{key}: only for kind filtered")
            if (cfg["target"], cfg["target_mask"]) == (cfg["source"], cfg["mask"]):
                raise ValueError(f"{where}: target and target_mask equal the source and mask; nothing shifts")
        if name not in study.fitted_shifts():
            if cfg["kind"] == "filtered":
                raise ValueError(f"{where}.fit: a filtered shift is only for the fit (TTT cannot adapt to it)")
            if name not in (c.get("ttt") or {}).get("shifts", []):
                raise ValueError(f"{where}.fit: false leaves the shift out of the fit, and ttt.shifts does not "
                                 "name it either: nothing would use it")
            continue  # TTT trains its variants on this source itself (ttt_inputs); the fit's variants need not
        for method in [*study.evaluated_methods(), *([cfg["filter"]] if cfg["kind"] == "filtered" else [])]:
            if study.family(method).trained and study.training_of(method) != (cfg["source"], cfg["mask"]):
                raise ValueError(
                    f"{where}: variant {method!r} learns from {study.training_of(method)} but the shift's source "
                    f"is ({cfg['source']!r}, {cfg['mask']!r}); set train_on/train_mask or the shift's source/mask")


def _check_ttt(study) -> None:
    """The shifts TTT adapts to and which variants it can fine-tune."""
    if "ttt" not in study.config:
        return
    from .specs import TTTSpec

    pairs, block = study.shift_pairs(), study.config["ttt"]
    if not pairs:
        raise ValueError("config ttt: needs shifts.pairs to name the shifts it adapts to")
    for name in block["shifts"]:
        if name not in pairs:
            raise ValueError(f"config ttt.shifts: {name!r} is not one of shifts.pairs {sorted(pairs)}")
        if pairs[name]["kind"] == "filtered":
            raise ValueError(f"config ttt.shifts: {name!r} is a filtered shift; TTT needs a target set with its "
                             "own training data (the Q->Q reference)")
    for method in block["methods"]:
        if method not in study.methods:
            raise ValueError(f"config ttt.methods: {method!r} is not one of methods {sorted(study.methods)}")
        fam = study.family(method)
        if not fam.trained or not fam.kspace_output(study.spec(method)):
            raise ValueError(f"config ttt.methods: {method!r} cannot be test-time trained; it needs a VarNet or a "
                             "U-Net with input: complex (the self-supervised loss compares a k-space prediction)")
    lr = block.get("lr", {})
    if isinstance(lr, dict) and (unknown := sorted(set(lr) - set(families.STUDY_LR))):
        raise ValueError(f"config ttt.lr: {unknown} are not families test-time training adapts; expected some "
                         f"of {sorted(families.STUDY_LR)}")
    for name in block["shifts"]:
        spec = wrap("ttt", lambda: TTTSpec.from_config(study.ttt_settings(name)["spec"]))
        if block.get("ablation_hidden", False) and spec.hide_holdout:
            raise ValueError("config ttt.ablation_hidden: the ablation hides the held-out points from the input, "
                             "which ttt.hide_holdout: true already does for every run; set hide_holdout: false "
                             "(the study's protocol) to compare the two")
        if spec.holdout_center:
            # a mask whose fully sampled centre is all it samples leaves no points to hold out
            mask_name = pairs[name]["target_mask"]
            m = study.config["masks"][mask_name]
            if float(m["center_fraction"]) * float(m["acceleration"]) >= 1:
                raise ValueError(
                    f"config ttt.holdout_center: shift {name!r} adapts on mask {mask_name!r}, which samples only "
                    f"its centre (center_fraction {m['center_fraction']} x acceleration {m['acceleration']} >= 1), "
                    "so no points outside the centre can be held out; set ttt.holdout_center: false or use a "
                    "smaller center_fraction")


def _check_plots(study) -> None:
    """Example variants and ε the experiments have. The colour maps are checked by the figure jobs
    (:func:`check_colormaps`): parsing the workflow imports no matplotlib."""
    c, plots = study.config, study.config["plots"]
    for name in plots.get("example_methods", []):
        if name not in study.methods:
            raise ValueError(f"config plots.example_methods: {name!r} is not one of methods {sorted(study.methods)}")
    for block in ("attacks", "features"):
        if block in c and "example_methods" in plots and not study.example_methods(block):
            raise ValueError(f"config plots.example_methods: none of {plots['example_methods']} is in {block}.methods")
    eps = plots.get("example_epsilon")
    if eps is not None and ("attacks" not in c or eps not in c["attacks"]["epsilons"]):
        raise ValueError(f"config plots.example_epsilon: {eps} is not one of attacks.epsilons "
                         f"{c.get('attacks', {}).get('epsilons', [])}")
