# Input functions and settings for rules/data.smk, included at its top: Snakemake's lint asks that no file
# define both functions and rules.


from robustcs.download import archive_name
from robustcs.manifest import folder_listing


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
