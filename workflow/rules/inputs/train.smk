# Input functions and settings for rules/train.smk, included at its top: Snakemake's lint asks that no file
# define both functions and rules.


def training_maps(wildcards):
    """Maps of every training/validation file (under the training mask) for a network that reads them."""
    if not STUDY.needs_maps(wildcards.method):
        return []
    return [
        paths.SENS.format(dataset=wildcards.dataset, mask=wildcards.mask, part=p)
        for p in parts(wildcards.dataset, ["train", "val"])
    ]


def training_volumes(wildcards):
    return split_volumes(wildcards.dataset, ["train", "val"])
