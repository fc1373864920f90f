# Wildcard constraints and the input functions shared by several rule files - a dataset's files, parts and maps
# (behind the ingest checkpoint) and what a variant needs. A function that one rule file alone uses lives in
# rules/inputs/ under that file's name (Snakemake's lint: no file defines both functions and rules). What the config means (defaults, checks, experiments) is the study model's (robustcs.study.Study, built in
# the Snakefile as STUDY). Paths: robustcs.paths.
import os
import sys
from types import SimpleNamespace

from robustcs import paths
from robustcs.manifest import read_rows
from robustcs.study import NAME, canonical

# Outputs that jobs wrote but Snakemake, killed, never recorded (its incomplete marks): dated to the epoch, so that
# this run redoes their jobs; Snakemake's own check misses the jobs behind the ingest checkpoint (robustcs.interrupted).
if workflow.is_main_process:
    from robustcs.interrupted import redo_interrupted

    redo_interrupted(os.getcwd(), log=lambda line: print(line, file=sys.stderr))


wildcard_constraints:
    dataset=NAME,
    mask=NAME,
    split=r"train|val|test",
    stem=r"[A-Za-z0-9][A-Za-z0-9_.\-]*",
    archive=r"[A-Za-z0-9][A-Za-z0-9_.\-]*",
    shift=NAME,
    part=paths.PART,


# ---- data --------------------------------------------------------------------------------------------


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
        raise ValueError(
            f"part {wildcards.part!r} of dataset {wildcards.dataset!r} does not exist (compute."
            f"volumes_per_job {config['compute']['volumes_per_job']}; parts: {sorted(parts(wildcards.dataset, [split]))})"
        )
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
        paths.MASK.format(dataset=d, mask=m) for d in config["datasets"] for m in config["masks"]
    ]


def sensitivity_targets(wildcards):
    """ESPIRiT maps for every file of the configured splits (known once the manifests exist)."""
    return [
        paths.SENS.format(dataset=d, mask=m, part=p)
        for d in config["datasets"]
        for m in config["masks"]
        for p in parts(d, config["sensitivities"]["splits"])
    ]


# ---- variants, training and evaluation -----------------------------------------------------------------


def method_spec(wildcards):
    return canonical(STUDY.method_params(wildcards.method))


def method_seed(wildcards):
    return STUDY.seed_of(wildcards.method)


def method_gpus(wildcards):
    return STUDY.gpus_of(wildcards.method)


def model_path(wildcards):
    dataset, mask = STUDY.training_of(wildcards.method)
    return paths.MODEL.format(dataset=dataset, mask=mask, method=wildcards.method)


def method_inputs(wildcards):
    """What a variant needs to reconstruct one volume ({stem}: pathology) or a part's volumes ({part}:
    reconstruct, attack, probe_features): the data and mask, plus ESPIRiT maps where it reads them and the model file where it
    is trained."""
    w = wildcards
    inputs = {
        "manifest": paths.MANIFEST.format(dataset=w.dataset),
        "masks": paths.MASK.format(dataset=w.dataset, mask=w.mask),
    }
    if "part" in w.keys():
        inputs["volumes"] = part_volumes(w)
    else:
        inputs["volume"] = volume_path(w)
    if STUDY.needs_maps(w.method):
        inputs["sens"] = (
            paths.SENS.format(dataset=w.dataset, mask=w.mask, part=w.part)
            if "part" in w.keys()
            else sens_path(w.dataset, w.mask, w.stem)
        )
    if STUDY.family(w.method).trained:
        inputs["model"] = model_path(w)
    return inputs


# ---- robustness experiments ----------------------------------------------------------------------------


def experiment_targets(name, pattern):
    """pattern.format(...) for every configured (dataset, mask, variant, part of the test split) of an experiment."""
    block = STUDY.experiment(name)
    split = config["evaluation"]["split"]
    return [
        pattern.format(dataset=d, mask=m, method=method, part=p)
        for d in block["datasets"]
        for p in parts(d, [split])
        for m in block["masks"]
        for method in block["methods"]
    ]


def example_case(name):
    """(dataset, mask, stem) shown in an experiment's example panel: its first dataset and mask and the
    first test volume (sorted stems) of that dataset."""
    block = STUDY.experiment(name)
    dataset, mask = block["datasets"][0], block["masks"][0]
    return dataset, mask, stems(dataset, [config["evaluation"]["split"]])[0]


def plot_options():
    """The plot rules' params (config `plots:`): changing one reruns the plotting jobs and nothing upstream (the
    plot rules read only summary tables and result files)."""
    return canonical(config["plots"])


# ---- the files behind the tables (rules/inputs/report.smk's intermediate_targets asks each experiment) -----


class _wildcards(SimpleNamespace):
    """Wildcard values for an input function called outside Snakemake's jobs (``w.part``, ``w.keys()``)."""

    def __init__(self, values):
        super().__init__(**values)

    def keys(self):
        return vars(self).keys()


def job_inputs(pattern, path, inputs=method_inputs):
    """The input files of the job that writes ``path`` (a path of ``pattern``), as its input function lists them."""
    out = []
    for value in inputs(_wildcards(paths.wildcards_of(pattern, path))).values():
        out += [value] if isinstance(value, str) else value
    return out


def part_results(pattern, targets, inputs=method_inputs):
    """The .csv files of a per-part experiment (paths of ``pattern``.csv), the .h5 beside each and their jobs'
    inputs."""
    out = []
    for path in targets:
        out += [path, f"{path[: -len('.csv')]}.h5", *job_inputs(f"{pattern}.csv", path, inputs)]
    return out
