# Input functions and wildcard constraints shared by every rule. What the config means (defaults, checks,
# experiments) is the study model's (robustcs.study.Study, built in the Snakefile as STUDY); what needs the
# data (the files of a split) is here, behind the ingest checkpoint. Paths: robustcs.paths.
import os
from argparse import Namespace

from robustcs import paths
from robustcs.manifest import read_rows
from robustcs.annotations import annotated_stems
from robustcs.download import archive_name
from robustcs.study import NAME, canonical


wildcard_constraints:
    dataset=NAME,
    mask=NAME,
    split=r"train|val|test",
    stem=r"[A-Za-z0-9][A-Za-z0-9_.\-]*",
    archive=r"[A-Za-z0-9][A-Za-z0-9_.\-]*",
    shift=NAME,
    part=paths.PART,


# ---- data --------------------------------------------------------------------------------------------


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
    return [paths.DOWNLOAD.format(dataset=wildcards.dataset, archive=a) for a in archives(wildcards.dataset)]


def manifest(dataset):
    """The dataset's manifest rows (dicts of its columns); evaluating it waits for the ingest checkpoint."""
    path = checkpoints.ingest.get(dataset=dataset).output[0]
    stat = os.stat(path)
    key = (path, stat.st_mtime_ns, stat.st_size)
    if key not in _MANIFESTS:  # input functions ask for it once per job: read each version of the file once
        _MANIFESTS[key] = read_rows(path)
    return _MANIFESTS[key]  # callers read it, never change it


_MANIFESTS = {}


def volume_path(wildcards):
    for row in manifest(wildcards.dataset):
        if row["stem"] == wildcards.stem:
            return row["path"]
    raise ValueError(f"file stem {wildcards.stem!r} is not in the manifest of dataset {wildcards.dataset!r}")


def stems(dataset, splits):
    return sorted({row["stem"] for row in manifest(dataset) if row["split"] in splits})


def split_volumes(dataset, splits):
    return sorted({row["path"] for row in manifest(dataset) if row["split"] in splits})


def parts(dataset, splits):
    """{part: stems} of a dataset's splits (robustcs.paths.volume_parts)."""
    out = {}
    for split in splits:
        out.update(paths.volume_parts(split, stems(dataset, [split]), config["compute"]["volumes_per_job"]))
    return out


def part_stems(wildcards):
    split = wildcards.part.split("-")[0]
    members = parts(wildcards.dataset, [split]).get(wildcards.part)
    if members is None:
        raise ValueError(f"part {wildcards.part!r} of dataset {wildcards.dataset!r} does not exist (compute."
                         f"volumes_per_job {config['compute']['volumes_per_job']}; parts: {sorted(parts(wildcards.dataset, [split]))})")
    return members


def part_volumes(wildcards):
    members = set(part_stems(wildcards))
    return sorted({row["path"] for row in manifest(wildcards.dataset) if row["stem"] in members})


def part_of(dataset, stem):
    """The part of its split that holds one file."""
    split = {row["stem"]: row["split"] for row in manifest(dataset)}.get(stem)
    if split is None:
        raise ValueError(f"file stem {stem!r} is not in the manifest of dataset {dataset!r}")
    return next(part for part, members in parts(dataset, [split]).items() if stem in members)


def sens_path(dataset, mask, stem):
    """The maps file (of the part) that holds one file's ESPIRiT maps."""
    return paths.SENS.format(dataset=dataset, mask=mask, part=part_of(dataset, stem))


def data_targets():
    """Outputs of the data stage known before any job runs: manifests and masks."""
    return [paths.MANIFEST.format(dataset=d) for d in config["datasets"]] + [
        paths.MASK.format(dataset=d, mask=m) for d in config["datasets"] for m in config["masks"]]


def sensitivity_targets(wildcards):
    """ESPIRiT maps for every file of the configured splits (known once the manifests exist)."""
    return [paths.SENS.format(dataset=d, mask=m, part=p) for d in config["datasets"] for m in config["masks"]
            for p in parts(d, config["sensitivities"]["splits"])]


# ---- variants, training and evaluation -----------------------------------------------------------------


def method_spec(wildcards):
    return canonical(STUDY.variant_settings(wildcards.method))


def method_seed(wildcards):
    return STUDY.seed_of(wildcards.method)


def method_gpus(wildcards):
    return STUDY.gpus_of(wildcards.method)


def model_path(wildcards):
    dataset, mask = STUDY.training_of(wildcards.method)
    return paths.MODEL.format(dataset=dataset, mask=mask, method=wildcards.method)


def training_maps(wildcards):
    """Maps of every training/validation file (under the training mask) for a network that reads them."""
    if not STUDY.needs_maps(wildcards.method):
        return []
    return [paths.SENS.format(dataset=wildcards.dataset, mask=wildcards.mask, part=p)
            for p in parts(wildcards.dataset, ["train", "val"])]


def method_inputs(wildcards):
    """What a variant needs to reconstruct one volume ({stem}: pathology) or a part's volumes ({part}:
    reconstruct, attack, probe_features): the data and mask, plus ESPIRiT maps where it reads them and the model file where it
    is trained."""
    w = wildcards
    inputs = {"manifest": paths.MANIFEST.format(dataset=w.dataset),
              "masks": paths.MASK.format(dataset=w.dataset, mask=w.mask)}
    if "part" in w.keys():
        inputs["volumes"] = part_volumes(w)
    else:
        inputs["volume"] = volume_path(w)
    if STUDY.needs_maps(w.method):
        inputs["sens"] = (paths.SENS.format(dataset=w.dataset, mask=w.mask, part=w.part) if "part" in w.keys()
                          else sens_path(w.dataset, w.mask, w.stem))
    if STUDY.family(w.method).trained:
        inputs["model"] = model_path(w)
    return inputs


def training_volumes(wildcards):
    return split_volumes(wildcards.dataset, ["train", "val"])


def split_recons(wildcards, split):
    """The per-slice scores of a variant's reconstructions of every part of a split."""
    return [paths.RECON_SCORES.format(dataset=wildcards.dataset, mask=wildcards.mask, method=wildcards.method, part=p)
            for p in parts(wildcards.dataset, [split])]


def eval_recons(wildcards):
    return split_recons(wildcards, config["evaluation"]["split"])


def eval_volumes(wildcards):
    return split_volumes(wildcards.dataset, [config["evaluation"]["split"]])


def tune_recons(wildcards):
    return split_recons(wildcards, STUDY.tuning_case()[2])


def tuning_targets():
    dataset, mask, split, variants = STUDY.tuning_case()
    if not variants or STUDY.split_is_empty(dataset, split):
        return []
    return [paths.TUNING.format(dataset=dataset, mask=mask, method=m) for m in variants]


def clean_eval_targets():
    ev = config["evaluation"]
    return [paths.EVAL.format(dataset=d, mask=m, method=method)
            for d in ev["datasets"] for m in ev["masks"] for method in STUDY.evaluated_methods()]


# ---- robustness experiments ----------------------------------------------------------------------------


def experiment_targets(name, pattern):
    """pattern.format(...) for every configured (dataset, mask, variant, part of the test split) of an experiment."""
    block = STUDY.experiment(name)
    split = config["evaluation"]["split"]
    return [pattern.format(dataset=d, mask=m, method=method, part=p)
            for d in block["datasets"] for p in parts(d, [split]) for m in block["masks"] for method in block["methods"]]


def attack_targets(wildcards):
    return experiment_targets("attacks", paths.ATTACK + ".csv")


def feature_targets(wildcards):
    return experiment_targets("features", paths.FEATURES + ".csv")


def pathology_targets(wildcards):
    """One table per (dataset, mask, variant, annotated test file) of the pathology block."""
    block, split = STUDY.experiment("pathology"), config["evaluation"]["split"]
    annotated = set(annotated_stems(STUDY.pathology_boxes()))
    out = []
    for d in block["datasets"]:
        files = [s for s in stems(d, [split]) if s in annotated]
        if not files:
            raise ValueError(f"config pathology.annotations: no annotated file of {block['annotations']} is in the "
                             f"{split} split of dataset {d!r} (annotated: {sorted(annotated)[:5]}...)")
        training = config.get("training") or {}
        if training.get("dataset"):
            seen = set(files) & set(stems(training["dataset"], ["train", "val"]))
            if seen:
                raise ValueError(f"config pathology: annotated files {sorted(seen)[:5]} of dataset {d!r} are also "
                                 f"training files of {training['dataset']!r}: the trained variants would be scored on "
                                 "their own training data (fastMRI+ annotates train and val files alike)")
        out += [paths.PATHOLOGY.format(dataset=d, mask=m, method=method, stem=s)
                for s in files for m in block["masks"] for method in block["methods"]]
    return out


def shift_eval_inputs(wildcards):
    """Per-variant evaluation tables of both sides of every shift of the fit (and of each filter on its source)."""
    out = []
    for cfg in STUDY.fitted_shifts().values():
        sides = [(cfg["source"], cfg["mask"])]
        if cfg["kind"] != "filtered":
            sides.append((cfg["target"], cfg["target_mask"]))
        out += [paths.EVAL.format(dataset=d, mask=m, method=method) for d, m in sides
                for method in STUDY.evaluated_methods()]
        if cfg["kind"] == "filtered":
            out.append(paths.EVAL.format(dataset=cfg["source"], mask=cfg["mask"], method=cfg["filter"]))
    return sorted(set(out))


def ttt_settings(wildcards):
    return canonical(STUDY.ttt_settings(wildcards.shift))


def ttt_inputs(wildcards):
    """The variant trained on P and on Q, the target's data, and maps where the network reads them."""
    cfg, w = STUDY.shift_pairs()[wildcards.shift], wildcards
    d, m = cfg["target"], cfg["target_mask"]
    inputs = {
        "source_model": paths.MODEL.format(dataset=cfg["source"], mask=cfg["mask"], method=w.method),
        "target_model": paths.MODEL.format(dataset=d, mask=m, method=w.method),
        "volume": volume_path(Namespace(dataset=d, stem=w.stem)),
        "manifest": paths.MANIFEST.format(dataset=d),
        "masks": paths.MASK.format(dataset=d, mask=m),
    }
    if STUDY.needs_maps(w.method):
        inputs["sens"] = sens_path(d, m, w.stem)
    return inputs


def ttt_targets(wildcards):
    split = config["evaluation"]["split"]
    return [paths.TTT.format(shift=shift, method=method, stem=s) + ".csv" for shift in config["ttt"]["shifts"]
            for s in stems(STUDY.shift_pairs()[shift]["target"], [split]) for method in config["ttt"]["methods"]]
