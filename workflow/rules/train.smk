# Training of the end-to-end networks (U-Net, VarNet), one job per variant and training set.

from robustcs.manifest import capped_stems


def training_stems(wildcards):
    """{split: stems} of the training and validation files the variant learns from (its slice caps applied,
    robustcs.manifest.capped_stems: the training job reads these, and asks for their maps only)."""
    spec, rows = STUDY.spec(wildcards.method), manifest(wildcards.dataset)
    return {split: capped_stems(rows, split, getattr(spec, f"max_{split}_slices"), config["seed"], f"max_{split}_slices")
            for split in ("train", "val")}


def training_maps(wildcards):
    """Maps of the training/validation files (under the training mask) for a network that reads them: the parts
    holding a kept file."""
    if not STUDY.needs_maps(wildcards.method):
        return []
    kept = training_stems(wildcards)
    return [paths.SENS.format(dataset=wildcards.dataset, mask=wildcards.mask, part=p)
            for split in ("train", "val")
            for p, members in parts(wildcards.dataset, [split]).items() if kept[split] & set(members)]


def training_volumes(wildcards):
    kept = training_stems(wildcards)
    return sorted({row["path"] for row in manifest(wildcards.dataset) if row["stem"] in kept.get(row["split"], ())})


rule train:
    input:
        manifest=paths.MANIFEST,
        volumes=training_volumes,
        maps=training_maps,
    output:
        model=paths.MODEL,
        history=paths.HISTORY,
    wildcard_constraints:
        method=STUDY.method_regex(STUDY.trained_methods()),
    params:
        spec=method_spec,
        mask_spec=lambda w: canonical(config["masks"][w.mask]),
        seed=config["seed"],
        checkpoint_dir=lambda w: paths.CHECKPOINTS.format(dataset=w.dataset, mask=w.mask, method=w.method),
    log:
        "results/logs/train/{dataset}/{mask}/{method}.log",
    benchmark:
        "results/benchmarks/train/{dataset}/{mask}/{method}.tsv",
    threads: config["compute"]["threads"]
    priority: config["compute"]["train_runtime"]  # long, and most of the study waits for the models
    resources:
        mem_mb=lambda w, attempt: config["compute"]["mem_mb"] * attempt,  # more on each retry
        runtime=config["compute"]["train_runtime"],
        gpu=config["compute"]["gpus"],
    conda:
        "../../envs/recon.yaml"
    script:
        "../scripts/train.py"
