# Clean-quality evaluation: per-slice metrics per method variant, then one summary table.


include: "inputs/evaluate.smk"


rule evaluate:
    input:
        manifest=paths.MANIFEST,
        recons=eval_recons,
        h5=lambda w: reconstructions(eval_recons(w)),
        volumes=eval_volumes,
    output:
        paths.EVAL,
    log:
        "results/logs/evaluate/{dataset}/{mask}/{method}.log",
    benchmark:
        "results/benchmarks/evaluate/{dataset}/{mask}/{method}.tsv"
    conda:
        "../../envs/recon.yaml"
    resources:
        mem_mb=2000,
        runtime=STUDY.minutes("evaluate"),
    script:
        "../scripts/evaluate.py"


# Tuning on the source's validation split (config `tuning`; default: every variant of the papers' four families):
# the same scoring as `evaluate`, on other volumes. Each family's variant with the highest validation SSIM
# represents it in the findings' clean ordering; the test split plays no part in that choice.
rule tune:
    input:
        manifest=paths.MANIFEST,
        recons=tune_recons,
        h5=lambda w: reconstructions(tune_recons(w)),
    output:
        paths.TUNING,
    log:
        "results/logs/tune/{dataset}/{mask}/{method}.log",
    benchmark:
        "results/benchmarks/tune/{dataset}/{mask}/{method}.tsv"
    conda:
        "../../envs/recon.yaml"
    resources:
        mem_mb=2000,
        runtime=STUDY.minutes("evaluate"),
    script:
        "../scripts/evaluate.py"


rule summarise_tuning:
    input:
        tuning_targets(),
    output:
        csv=report("results/tables/tuning.csv", caption="../report/tuning.rst", category="2 Clean quality"),
        md="results/tables/tuning.md",
    log:
        "results/logs/summarise_tuning.log",
    benchmark:
        "results/benchmarks/summarise_tuning.tsv"
    conda:
        "../../envs/recon.yaml"
    params:
        settings=lambda w: tuning_settings(),
    script:
        "../scripts/summarise_tuning.py"


rule summarise_clean:
    input:
        clean_eval_targets(),
    output:
        csv=report("results/tables/clean.csv", caption="../report/clean.rst", category="2 Clean quality"),
        md="results/tables/clean.md",
    log:
        "results/logs/summarise_clean.log",
    benchmark:
        "results/benchmarks/summarise_clean.tsv"
    conda:
        "../../envs/recon.yaml"
    params:
        accelerations=canonical({m: c["acceleration"] for m, c in config["masks"].items()}),
    script:
        "../scripts/summarise.py"
