# Input functions and settings for rules/train.smk, included at its top: Snakemake's lint asks that no file
# define both functions and rules.
from robustcs.manifest import capped_stems
from robustcs.pretrained import checkpoint_source


def training_stems(wildcards):
    """{split: stems} of the training and validation files the variant learns from (its slice caps applied,
    robustcs.manifest.capped_stems: the training job reads these, and asks for their maps only)."""
    spec, rows = STUDY.spec(wildcards.method), manifest(wildcards.dataset)
    return {
        split: capped_stems(rows, split, getattr(spec, f"max_{split}_slices"), config["seed"], f"max_{split}_slices")
        for split in ("train", "val")
    }


def training_maps(wildcards):
    """Maps of the training/validation files (under the training mask) for a network that reads them: the parts
    holding a kept file."""
    if not STUDY.needs_maps(wildcards.method):
        return []
    kept = training_stems(wildcards)
    return [
        paths.SENS.format(dataset=wildcards.dataset, mask=wildcards.mask, part=p)
        for split in ("train", "val")
        for p, members in parts(wildcards.dataset, [split]).items()
        if kept[split] & set(members)
    ]


def training_volumes(wildcards):
    kept = training_stems(wildcards)
    return sorted({row["path"] for row in manifest(wildcards.dataset) if row["stem"] in kept.get(row["split"], ())})


def checkpoint_of(wildcards):
    return STUDY.methods[wildcards.method]["checkpoint"]


def checkpoint_file(wildcards):
    """The downloaded file of a checkpoint URL (the download rule's code, below), or the local file."""
    return checkpoint_source(checkpoint_of(wildcards), wildcards.method, paths.PRETRAINED_DOWNLOAD)
