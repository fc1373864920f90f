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
