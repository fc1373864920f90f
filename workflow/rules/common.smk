# Input functions, wildcard constraints and start-up checks shared by every rule.
import json
import re
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
    for name, m in config["masks"].items():
        if m["type"] == "random" and m.get("max_deviation", 0) < 0:
            raise ValueError(f"config masks.{name}.max_deviation must be >= 0")


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


def method_inputs(wildcards):
    """What a variant needs to reconstruct one volume: the data and mask, plus ESPIRiT maps (ℓ1,
    ConvDecoder) or the trained model (U-Net, VarNet)."""
    w = wildcards
    inputs = {"volume": volume_path(w), "manifest": f"results/data/{w.dataset}/manifest.csv",
              "masks": f"results/data/{w.dataset}/masks/{w.mask}.h5"}
    family = method_family(w.method)
    if family in WITH_MAPS:
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


def clean_eval_targets():
    ev = config["evaluation"]
    return expand("results/eval/{d}/{m}/{method}.csv", d=ev["datasets"], m=ev["masks"], method=config["methods"])


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

EXPERIMENT_KEYS = ("datasets", "masks", "methods", "slices")


def experiment(name):
    """An experiment block with its defaults: datasets/masks as evaluated, every method variant."""
    block = dict(config.get(name) or {})
    block.setdefault("datasets", list(config["evaluation"]["datasets"]))
    block.setdefault("masks", list(config["evaluation"]["masks"]))
    block.setdefault("methods", list(config["methods"]))
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
