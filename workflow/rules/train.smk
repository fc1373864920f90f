# Training of the end-to-end networks (U-Net, VarNet), one job per variant and training set.


rule train:
    input:
        manifest="results/data/{dataset}/manifest.csv",
        volumes=training_volumes,
        maps=training_maps,
    output:
        model="results/models/{dataset}/{mask}/{method}/model.pt",
        history="results/models/{dataset}/{mask}/{method}/history.csv",
    wildcard_constraints:
        method=method_regex(*TRAINED),
    params:
        spec=method_spec,
        mask_spec=lambda w: canonical(config["masks"][w.mask]),
        seed=config["seed"],
        checkpoint_dir=lambda w: f"results/checkpoints/{w.dataset}/{w.mask}/{w.method}",
    log:
        "results/logs/train/{dataset}/{mask}/{method}.log",
    benchmark:
        "results/benchmarks/train/{dataset}/{mask}/{method}.tsv",
    threads: config["compute"]["threads"]
    resources:
        mem_mb=8000,
        runtime=config["compute"]["train_runtime"],
        gpu=config["compute"]["gpus"],
    conda:
        "../../envs/recon.yaml"
    script:
        "../scripts/train.py"
