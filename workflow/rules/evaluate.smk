# Clean-quality evaluation: per-slice metrics per method variant, then one summary table.


rule evaluate:
    input:
        manifest="results/data/{dataset}/manifest.csv",
        recons=eval_recons,
        volumes=eval_volumes,
    output:
        "results/eval/{dataset}/{mask}/{method}.csv",
    log:
        "results/logs/evaluate/{dataset}/{mask}/{method}.log",
    benchmark:
        "results/benchmarks/evaluate/{dataset}/{mask}/{method}.tsv",
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../../envs/recon.yaml"
    script:
        "../scripts/evaluate.py"


rule summarise_clean:
    input:
        clean_eval_targets(),
    output:
        csv=report("results/tables/clean.csv", caption="../report/clean.rst", category="2 Clean quality"),
        md="results/tables/clean.md",
    params:
        accelerations=canonical({m: c["acceleration"] for m, c in config["masks"].items()}),
    log:
        "results/logs/summarise_clean.log",
    benchmark:
        "results/benchmarks/summarise_clean.tsv",
    conda:
        "../../envs/recon.yaml"
    script:
        "../scripts/summarise.py"
