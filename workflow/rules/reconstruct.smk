# Reconstruction with every method variant: one file per (dataset, mask, variant, volume).


rule reconstruct_zero_filled:
    input:
        volume=volume_path,
        manifest="results/data/{dataset}/manifest.csv",
        masks="results/data/{dataset}/masks/{mask}.h5",
    output:
        "results/recon/{dataset}/{mask}/{method}/{stem}.h5",
    wildcard_constraints:
        method=method_regex("zero_filled"),
    log:
        "results/logs/reconstruct/{dataset}/{mask}/{method}/{stem}.log",
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../../envs/recon.yaml"
    script:
        "../scripts/reconstruct_zero_filled.py"


rule reconstruct_l1:
    input:
        volume=volume_path,
        manifest="results/data/{dataset}/manifest.csv",
        masks="results/data/{dataset}/masks/{mask}.h5",
        sens="results/data/{dataset}/sens/{mask}/{stem}.h5",
    output:
        "results/recon/{dataset}/{mask}/{method}/{stem}.h5",
    wildcard_constraints:
        method=method_regex("l1"),
    params:
        spec=method_spec,
    log:
        "results/logs/reconstruct/{dataset}/{mask}/{method}/{stem}.log",
    threads: config["compute"]["threads"]
    resources:
        mem_mb=4000,
        runtime=60,
    conda:
        "../../envs/recon.yaml"
    script:
        "../scripts/reconstruct_l1.py"


rule reconstruct_convdecoder:
    input:
        volume=volume_path,
        manifest="results/data/{dataset}/manifest.csv",
        masks="results/data/{dataset}/masks/{mask}.h5",
        sens="results/data/{dataset}/sens/{mask}/{stem}.h5",
    output:
        "results/recon/{dataset}/{mask}/{method}/{stem}.h5",
    wildcard_constraints:
        method=method_regex("convdecoder"),
    params:
        spec=method_spec,
        seed=config["seed"],
    log:
        "results/logs/reconstruct/{dataset}/{mask}/{method}/{stem}.log",
    threads: config["compute"]["threads"]
    resources:
        mem_mb=4000,
        runtime=240,
        gpu=config["compute"]["gpus"],
    conda:
        "../../envs/recon.yaml"
    script:
        "../scripts/reconstruct_convdecoder.py"


rule reconstruct_trained:
    input:
        volume=volume_path,
        manifest="results/data/{dataset}/manifest.csv",
        masks="results/data/{dataset}/masks/{mask}.h5",
        model=model_path,
    output:
        "results/recon/{dataset}/{mask}/{method}/{stem}.h5",
    wildcard_constraints:
        method=method_regex(*TRAINED),
    params:
        family=lambda w: config["methods"][w.method]["family"],
    log:
        "results/logs/reconstruct/{dataset}/{mask}/{method}/{stem}.log",
    threads: config["compute"]["threads"]
    resources:
        mem_mb=4000,
        runtime=30,
        gpu=config["compute"]["gpus"],
    conda:
        "../../envs/recon.yaml"
    script:
        "../scripts/reconstruct_trained.py"
