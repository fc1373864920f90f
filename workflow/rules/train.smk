# Training of the end-to-end networks (U-Net, VarNet), one job per variant and training set.
include: "inputs/train.smk"


rule train:
    input:
        manifest=paths.MANIFEST,
        volumes=training_volumes,
        maps=training_maps,
    output:
        model=paths.MODEL,
        history=paths.HISTORY,
    log:
        paths.log("train", "{dataset}/{mask}/{method}"),
    benchmark:
        paths.benchmark("train", "{dataset}/{mask}/{method}")
    wildcard_constraints:
        method=STUDY.method_regex([m for m in STUDY.trained_methods() if m not in STUDY.pretrained_methods()]),
    priority: config["compute"]["train_runtime"]  # long, and most of the study waits for the models
    conda:
        "../../envs/recon.yaml"
    threads: config["compute"]["threads"]
    resources:
        mem_mb=lambda w, attempt: config["compute"]["mem_mb"] * attempt,  # more on each retry
        runtime=config["compute"]["train_runtime"],
        gpu=config["compute"]["gpus"],
    params:
        spec=method_spec,
        mask_spec=lambda w: canonical(config["masks"][w.mask]),
        seed=config["seed"],
        checkpoint_dir=lambda w: paths.CHECKPOINTS.format(dataset=w.dataset, mask=w.mask, method=w.method),
    script:
        "../scripts/train.py"


# Variants with a checkpoint (robustcs.pretrained): their model file comes from published weights, not from train.


use rule download as download_checkpoint with:
    output:
        paths.PRETRAINED_DOWNLOAD,
    log:
        paths.log("download", "_pretrained/{method}/{archive}"),
    benchmark:
        paths.benchmark("download", "_pretrained/{method}/{archive}")
    wildcard_constraints:
        method=STUDY.method_regex([m for m in STUDY.pretrained_methods() if "url" in STUDY.methods[m]["checkpoint"]]),
    params:
        url=lambda w: checkpoint_of(w)["url"],
        sha256=lambda w: checkpoint_of(w)["sha256"],


rule pretrained:
    input:
        checkpoint=checkpoint_file,
    output:
        model=paths.MODEL,
    log:
        paths.log("pretrained", "{dataset}/{mask}/{method}"),
    benchmark:
        paths.benchmark("pretrained", "{dataset}/{mask}/{method}")
    wildcard_constraints:
        method=STUDY.method_regex(STUDY.pretrained_methods()),
    conda:
        "../../envs/recon.yaml"
    resources:
        mem_mb=lambda w, attempt: config["compute"]["mem_mb"] * attempt,
        runtime=60,
    params:
        spec=method_spec,
        sha256=lambda w: checkpoint_of(w)["sha256"],
    script:
        "../scripts/pretrained.py"
