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
