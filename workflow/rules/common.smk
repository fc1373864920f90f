# Input functions, wildcard constraints and start-up checks shared by every rule.
import json
import re
from argparse import Namespace
from pathlib import Path

import pandas as pd

from robustcs.download import archive_name

NAME = r"[A-Za-z0-9][A-Za-z0-9_]*"


wildcard_constraints:
    dataset=NAME,
    mask=NAME,
    split=r"train|val|test",
    stem=r"[A-Za-z0-9][A-Za-z0-9_.\-]*",
    archive=r"[A-Za-z0-9][A-Za-z0-9_.\-]*",
    shift=NAME,


def _check_config():
    """Checks the schema cannot express; each names the config field and what was expected."""
    for name, ds in config["datasets"].items():
        for split, src in (ds.get("splits") or {}).items():
            if "path" in src and not Path(src["path"]).expanduser().is_dir():
                raise ValueError(f"config datasets.{name}.splits.{split}.path: folder {src['path']!r} does not exist")
            for i, arch in enumerate(src.get("archives", [])):
                fname = archive_name(arch["url"])
                if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.\-]*", fname):
                    raise ValueError(
                        f"config datasets.{name}.splits.{split}.archives[{i}].url: file name {fname!r} "
                        "must contain only letters, digits, '.', '_' and '-'"
                    )
    seen = {}
    for name, ds in config["datasets"].items():  # two archives of one dataset with the same file name collide
        for split, src in (ds.get("splits") or {}).items():
            for i, arch in enumerate(src.get("archives", [])):
                fname = archive_name(arch["url"])
                where = f"datasets.{name}.splits.{split}.archives[{i}]"
                other = seen.get((name, fname))
                if other and other[1] != arch["url"]:
                    raise ValueError(f"config {where}.url: file name {fname!r} is also the name of {other[0]} "
                                     f"({other[1]}); both would be downloaded to results/downloads/{name}/{fname}")
                seen[(name, fname)] = (where, arch["url"])
    for name, m in config["masks"].items():
        if m["type"] == "random" and m.get("max_deviation", 0) < 0:
            raise ValueError(f"config masks.{name}.max_deviation must be >= 0")
        if m["center_fraction"] * m["acceleration"] > 1:
            raise ValueError(f"config masks.{name}.center_fraction: {m['center_fraction']} is more than 1/acceleration "
                             f"(1/{m['acceleration']}); the fully sampled centre alone would exceed the sampling budget")


_check_config()


def canonical(obj):
    """A config block as canonical JSON for ``params:``, so that reordering keys in the config file
    does not count as a change (Snakemake reruns a job when its params' text changes)."""
    return json.dumps(obj, sort_keys=True)


def dataset_cfg(wildcards):
    return canonical(config["datasets"][wildcards.dataset])


def archives(dataset):
    """(url, sha256) of every archive a dataset downloads, keyed by its file name."""
    out = {}
    for split in (config["datasets"][dataset].get("splits") or {}).values():
        for arch in split.get("archives", []):
            out[archive_name(arch["url"])] = arch
    return out


def archive_targets(wildcards):
    return [f"results/downloads/{wildcards.dataset}/{a}" for a in archives(wildcards.dataset)]


def manifest(dataset):
    """The dataset's manifest table; evaluating it waits for the ingest checkpoint."""
    return pd.read_csv(checkpoints.ingest.get(dataset=dataset).output[0])


def volume_path(wildcards):
    rows = manifest(wildcards.dataset)
    rows = rows[rows["stem"] == wildcards.stem]
    if rows.empty:
        raise ValueError(f"file stem {wildcards.stem!r} is not in the manifest of dataset {wildcards.dataset!r}")
    return rows["path"].iloc[0]


def stems(dataset, splits):
    table = manifest(dataset)
    return sorted(table.loc[table["split"].isin(splits), "stem"].unique())


def data_targets():
    """Outputs of the data stage known before any job runs: manifests and masks."""
    return expand("results/data/{d}/manifest.csv", d=config["datasets"]) + expand(
        "results/data/{d}/masks/{m}.h5", d=config["datasets"], m=config["masks"]
    )


def sensitivity_targets(wildcards):
    """ESPIRiT maps for every file of the configured splits (known once the manifests exist)."""
    return [
        f"results/data/{d}/sens/{m}/{s}.h5"
        for d in config["datasets"]
        for m in config["masks"]
        for s in stems(d, config["sensitivities"]["splits"])
    ]


# ---- methods, training and evaluation ----------------------------------------------------------

from robustcs.methods import FAMILIES

TRAINED = ("unet", "varnet")
WITH_MAPS = ("l1", "convdecoder")


def methods_of(*families):
    return [m for m, c in config["methods"].items() if c["family"] in families]


def method_regex(*families):
    """Wildcard constraint matching exactly the variant names of these families (never-matching if none)."""
    names = methods_of(*families)
    return "|".join(re.escape(n) for n in names) if names else "(?!)"


WORKFLOW_KEYS = ("train_on", "train_mask")


def variant_settings(method):
    """A variant's own settings: its config block without the workflow-level keys (where it trains)."""
    return {k: v for k, v in config["methods"][method].items() if k not in WORKFLOW_KEYS}


def method_spec(wildcards):
    return canonical(variant_settings(wildcards.method))


def training_of(method):
    """(dataset, mask) a trained variant learns from: its own train_on/train_mask or the training block."""
    cfg = config["methods"][method]
    return cfg.get("train_on", config["training"].get("dataset")), cfg.get("train_mask", config["training"].get("mask"))


def model_path(wildcards):
    dataset, mask = training_of(wildcards.method)
    return f"results/models/{dataset}/{mask}/{wildcards.method}/model.pt"


def method_family(method):
    return config["methods"][method]["family"]


def needs_maps(method):
    """ℓ1, the ConvDecoder, the complex-input U-Net and the VarNet with maps: espirit read ESPIRiT maps."""
    cfg = config["methods"][method]
    return (cfg["family"] in WITH_MAPS or (cfg["family"] == "unet" and cfg.get("input") == "complex")
            or (cfg["family"] == "varnet" and cfg.get("maps") == "espirit"))


def training_maps(wildcards):
    """Maps of every training/validation file (under the training mask) for a network that reads them."""
    if not needs_maps(wildcards.method):
        return []
    table = manifest(wildcards.dataset)
    return [f"results/data/{wildcards.dataset}/sens/{wildcards.mask}/{s}.h5"
            for s in sorted(table.loc[table["split"].isin(["train", "val"]), "stem"].unique())]


def method_inputs(wildcards):
    """What a variant needs to reconstruct one volume: the data and mask, plus ESPIRiT maps (ℓ1,
    ConvDecoder) or the trained model (U-Net, VarNet)."""
    w = wildcards
    inputs = {"volume": volume_path(w), "manifest": f"results/data/{w.dataset}/manifest.csv",
              "masks": f"results/data/{w.dataset}/masks/{w.mask}.h5"}
    family = method_family(w.method)
    if needs_maps(w.method):
        inputs["sens"] = f"results/data/{w.dataset}/sens/{w.mask}/{w.stem}.h5"
    if family in TRAINED:
        inputs["model"] = model_path(w)
    return inputs


def method_seed(wildcards):
    """The seed a reconstruction depends on (only the ConvDecoder's fit is random)."""
    return config["seed"] if method_family(wildcards.method) == "convdecoder" else None


def method_runtime(wildcards):
    """Minutes a job of one variant on one volume may take (resources: runtime)."""
    return {"convdecoder": 240, "l1": 60}.get(method_family(wildcards.method), 30)


def method_gpus(wildcards):
    return config["compute"]["gpus"] if method_family(wildcards.method) in ("convdecoder", *TRAINED) else 0


def training_volumes(wildcards):
    table = manifest(wildcards.dataset)
    return sorted(table.loc[table["split"].isin(["train", "val"]), "path"].unique())


def eval_recons(wildcards):
    split = config["evaluation"]["split"]
    return [f"results/recon/{wildcards.dataset}/{wildcards.mask}/{wildcards.method}/{s}.h5"
            for s in stems(wildcards.dataset, [split])]


def eval_volumes(wildcards):
    table = manifest(wildcards.dataset)
    return sorted(table.loc[table["split"] == config["evaluation"]["split"], "path"].unique())


def source_case():
    """The study's source P: the training set and mask, or (no training block) the first evaluated ones."""
    training = config.get("training") or {}
    return (training.get("dataset", config["evaluation"]["datasets"][0]),
            training.get("mask", config["evaluation"]["masks"][0]))


def tuning_case():
    """(dataset, mask, split, variants) of the tuning of the un-trained families on the source's validation
    split (config `tuning`; study: λ tuned on the validation split by SSIM); no variants: no tuning."""
    block = config.get("tuning") or {}
    source_dataset, source_mask = source_case()
    dataset = block.get("dataset", source_dataset)
    mask = block.get("mask", source_mask)
    split = block.get("split", "val")
    families = block.get("families", ["l1"])
    variants = [m for m in evaluated_methods() if method_family(m) in families]
    return dataset, mask, split, variants


def tuning_targets():
    dataset, mask, split, variants = tuning_case()
    if not variants or split_is_empty(dataset, split):
        return []
    return [f"results/tuning/{dataset}/{mask}/{m}.csv" for m in variants]


def split_is_empty(dataset, split):
    """True when the dataset has no volumes in a split (known from the config for demo and folder sources)."""
    cfg = config["datasets"][dataset]
    if cfg["kind"] == "demo":
        from robustcs.demo import DemoSpec

        volumes = cfg["demo"].get("volumes")
        return not (DemoSpec().volumes if volumes is None else volumes).get(split, 0)
    return split not in cfg.get("splits", {})


def tune_recons(wildcards):
    split = tuning_case()[2]
    return [f"results/recon/{wildcards.dataset}/{wildcards.mask}/{wildcards.method}/{s}.h5"
            for s in stems(wildcards.dataset, [split])]


def clean_eval_targets():
    ev = config["evaluation"]
    return expand("results/eval/{d}/{m}/{method}.csv", d=ev["datasets"], m=ev["masks"], method=evaluated_methods())


def _check_methods():
    """Each variant's settings through its family's own parser (names the variant and key), and
    the datasets/masks the training and evaluation blocks refer to."""
    from robustcs.convdecoder import ConvDecoderSpec
    from robustcs.l1wavelet import L1Spec
    from robustcs.training import spec_from_config

    parsers = {"l1": L1Spec.from_config, "convdecoder": ConvDecoderSpec.from_config,
               "unet": spec_from_config, "varnet": spec_from_config}
    for name, cfg in config["methods"].items():
        family = cfg["family"]
        if family == "zero_filled":
            if set(cfg) - {"family"}:
                raise ValueError(f"config methods.{name}: zero_filled takes no settings, got {sorted(set(cfg) - {'family'})}")
            continue
        extra = set(WORKFLOW_KEYS) & set(cfg)
        if extra and family not in TRAINED:
            raise ValueError(f"config methods.{name}: {sorted(extra)} only apply to trained families {TRAINED}")
        try:
            parsers[family](variant_settings(name))
        except (TypeError, ValueError) as err:
            raise ValueError(f"config methods.{name}: {err}") from None
        if family in TRAINED:
            dataset, mask = training_of(name)
            if dataset not in config["datasets"]:
                raise ValueError(f"config methods.{name}: training dataset {dataset!r} (training.dataset or "
                                 f"train_on) is not one of datasets {sorted(config['datasets'])}")
            if mask not in config["masks"]:
                raise ValueError(f"config methods.{name}: training mask {mask!r} (training.mask or train_mask) "
                                 f"is not one of masks {sorted(config['masks'])}")
    for key, pool in (("datasets", config["datasets"]), ("masks", config["masks"])):
        for item in config["evaluation"][key]:
            if item not in pool:
                raise ValueError(f"config evaluation.{key}: {item!r} is not one of {key} {sorted(pool)}")
    if config["evaluation"]["split"] not in config["sensitivities"]["splits"] and methods_of("l1", "convdecoder"):
        raise ValueError(f"config evaluation.split {config['evaluation']['split']!r} must be in sensitivities.splits "
                         "(ℓ1 and ConvDecoder need ESPIRiT maps of the evaluated files)")


# ---- robustness experiments ---------------------------------------------------------------------


def shift_pairs():
    """Each configured shift with its defaults filled in: mask = the training mask, target_mask = mask."""
    out = {}
    for name, cfg in ((config.get("shifts") or {}).get("pairs") or {}).items():
        cfg = dict(cfg)
        cfg.setdefault("mask", (config.get("training") or {}).get("mask"))
        cfg.setdefault("target_mask", cfg["mask"])
        if cfg["kind"] == "filtered":
            cfg.setdefault("target", cfg["source"])
        out[name] = cfg
    return out


def filter_methods():
    """Variants that only select the slices of an adversarially filtered shift: left out of every
    table, fit and experiment (the study's filter model is not among the evaluated ones)."""
    return sorted({cfg["filter"] for cfg in shift_pairs().values() if cfg["kind"] == "filtered" and "filter" in cfg})


def evaluated_methods():
    return [m for m in config["methods"] if m not in filter_methods()]

EXPERIMENT_KEYS = ("datasets", "masks", "methods", "slices")


def experiment(name):
    """An experiment block with its defaults: datasets/masks as evaluated, every method variant."""
    block = dict(config.get(name) or {})
    block.setdefault("datasets", list(config["evaluation"]["datasets"]))
    block.setdefault("masks", list(config["evaluation"]["masks"]))
    block.setdefault("methods", evaluated_methods())
    return block


def attack_settings():
    block = experiment("attacks")
    spec = {k: v for k, v in block.items() if k not in (*EXPERIMENT_KEYS, "save_perturbations")}
    return {"spec": spec, "slices": block.get("slices", 1), "save_perturbations": block.get("save_perturbations", True)}


def experiment_targets(name, pattern):
    """pattern.format(d, m, method, stem) for every configured (dataset, mask, variant, test volume)."""
    block = experiment(name)
    split = config["evaluation"]["split"]
    return [pattern.format(d=d, m=m, method=method, stem=s)
            for d in block["datasets"] for s in stems(d, [split]) for m in block["masks"] for method in block["methods"]]


def attack_targets(wildcards):
    return experiment_targets("attacks", "results/attack/{d}/{m}/{method}/{stem}.csv")


def feature_settings():
    """The feature spec (robustcs.features.FeatureSpec) of the features block, defaults filled in."""
    from robustcs.features import FeatureSpec

    block = experiment("features")
    return FeatureSpec.from_config({k: v for k, v in block.items() if k not in EXPERIMENT_KEYS[:3]}).as_dict()


def feature_targets(wildcards):
    return experiment_targets("features", "results/features/{d}/{m}/{method}/{stem}.csv")


def shift_eval_inputs(wildcards):
    """Per-variant evaluation tables of both sides of every shift (and of each filter on its source)."""
    out = []
    for cfg in shift_pairs().values():
        sides = [(cfg["source"], cfg["mask"])]
        if cfg["kind"] != "filtered":
            sides.append((cfg["target"], cfg["target_mask"]))
        out += [f"results/eval/{d}/{m}/{method}.csv" for d, m in sides for method in evaluated_methods()]
        if cfg["kind"] == "filtered":
            out.append(f"results/eval/{cfg['source']}/{cfg['mask']}/{cfg['filter']}.csv")
    return sorted(set(out))


#: The study's self-validation windows W by shift kind.
TTT_WINDOW = {"anatomy": 100, "acceleration": 100, "dataset": 20, "contrast": 20}


def ttt_settings(wildcards):
    """The TTT spec of one shift (robustcs.ttt.TTTSpec fields) and the slice count, as canonical JSON."""
    block = config["ttt"]
    spec = {k: block[k] for k in ("max_steps", "holdout", "lr", "hide_holdout") if k in block}
    spec["window"] = block.get("window", TTT_WINDOW[shift_pairs()[wildcards.shift]["kind"]])
    return canonical({"spec": spec, "slices": block.get("slices", 2)})


def ttt_inputs(wildcards):
    """The variant trained on P and on Q, the target's data, and maps where the network reads them."""
    cfg, w = shift_pairs()[wildcards.shift], wildcards
    d, m = cfg["target"], cfg["target_mask"]
    inputs = {
        "source_model": f"results/models/{cfg['source']}/{cfg['mask']}/{w.method}/model.pt",
        "target_model": f"results/models/{d}/{m}/{w.method}/model.pt",
        "volume": volume_path(Namespace(dataset=d, stem=w.stem)),
        "manifest": f"results/data/{d}/manifest.csv",
        "masks": f"results/data/{d}/masks/{m}.h5",
    }
    if needs_maps(w.method):
        inputs["sens"] = f"results/data/{d}/sens/{m}/{w.stem}.h5"
    return inputs


def ttt_targets(wildcards):
    split = config["evaluation"]["split"]
    return [f"results/ttt/{shift}/{method}/{s}.csv" for shift in config["ttt"]["shifts"]
            for s in stems(shift_pairs()[shift]["target"], [split]) for method in config["ttt"]["methods"]]


def _check_shifts():
    """Datasets, masks and variants the shift and TTT blocks name; that trained variants learn from
    each shift's source (else 'in distribution' would not be); which variants TTT can fine-tune."""
    from robustcs.training import has_kspace_output, spec_from_config

    pairs = shift_pairs()
    for name, cfg in pairs.items():
        where = f"config shifts.pairs.{name}"
        if not re.fullmatch(NAME, name):
            raise ValueError(f"{where}: a shift name must be letters, digits and '_'")
        for key, pool in (("source", "datasets"), ("target", "datasets"), ("mask", "masks"), ("target_mask", "masks")):
            if key not in cfg and key == "target":
                raise ValueError(f"{where}: kind {cfg['kind']} needs a target dataset")
            if cfg[key] not in config[pool]:
                raise ValueError(f"{where}.{key}: {cfg[key]!r} is not one of {pool} {sorted(config[pool])}")
        if cfg["kind"] == "filtered":
            for key in ("filter", "fraction"):
                if key not in cfg:
                    raise ValueError(f"{where}: kind filtered needs {key!r}")
            if cfg["filter"] not in config["methods"]:
                raise ValueError(f"{where}.filter: {cfg['filter']!r} is not one of methods {sorted(config['methods'])}")
            if (cfg["target"], cfg["target_mask"]) != (cfg["source"], cfg["mask"]):
                raise ValueError(f"{where}: kind filtered selects slices of its source; drop target/target_mask")
        else:
            for key in ("filter", "fraction"):
                if key in cfg:
                    raise ValueError(f"{where}.{key}: only for kind filtered")
            if (cfg["target"], cfg["target_mask"]) == (cfg["source"], cfg["mask"]):
                raise ValueError(f"{where}: target and target_mask equal the source and mask; nothing shifts")
        for method in [*evaluated_methods(), *([cfg["filter"]] if cfg["kind"] == "filtered" else [])]:
            if method_family(method) in TRAINED and training_of(method) != (cfg["source"], cfg["mask"]):
                raise ValueError(
                    f"{where}: variant {method!r} learns from {training_of(method)} but the shift's source is "
                    f"({cfg['source']!r}, {cfg['mask']!r}); set train_on/train_mask or the shift's source/mask")
    if "ttt" not in config:
        return
    if not pairs:
        raise ValueError("config ttt: needs shifts.pairs to name the shifts it adapts to")
    for name in config["ttt"]["shifts"]:
        if name not in pairs:
            raise ValueError(f"config ttt.shifts: {name!r} is not one of shifts.pairs {sorted(pairs)}")
        if pairs[name]["kind"] == "filtered":
            raise ValueError(f"config ttt.shifts: {name!r} is a filtered shift; TTT needs a target set with its "
                             "own training data (the Q->Q reference)")
    for method in config["ttt"]["methods"]:
        if method not in config["methods"]:
            raise ValueError(f"config ttt.methods: {method!r} is not one of methods {sorted(config['methods'])}")
        if method_family(method) not in TRAINED or not has_kspace_output(spec_from_config(variant_settings(method))):
            raise ValueError(f"config ttt.methods: {method!r} cannot be test-time trained; it needs a VarNet or a "
                             "U-Net with input: complex (the self-supervised loss compares a k-space prediction)")
    try:
        from robustcs.ttt import TTTSpec

        for name in config["ttt"]["shifts"]:
            TTTSpec.from_config(json.loads(ttt_settings(Namespace(shift=name)))["spec"])
    except (TypeError, ValueError) as err:
        raise ValueError(f"config ttt: {err}") from None


def _check_experiments():
    """Dataset, mask and method names of the experiment blocks, and their own settings. (That ℓ1 and the
    ConvDecoder find maps of the evaluation split is checked once for all methods in _check_methods.)"""
    from robustcs.attacks import AttackSpec

    for name in ("attacks", "features"):
        if name not in config:
            continue
        block = experiment(name)
        for key, pool in (("datasets", config["datasets"]), ("masks", config["masks"]), ("methods", config["methods"])):
            for item in block[key]:
                if item not in pool:
                    raise ValueError(f"config {name}.{key}: {item!r} is not one of {key} {sorted(pool)}")
    for name, check in (("attacks", lambda: AttackSpec.from_config(attack_settings()["spec"])),
                        ("features", feature_settings)):
        try:
            check()
        except (TypeError, ValueError) as err:
            raise ValueError(f"config {name}: {err}") from None


config.setdefault("methods", {})
config["evaluation"].setdefault("datasets", list(config["datasets"]))
config["evaluation"].setdefault("masks", list(config["masks"]))
_check_methods()
_check_experiments()
_check_shifts()
