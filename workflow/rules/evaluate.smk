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
        paths.log("evaluate", "{dataset}/{mask}/{method}"),
    benchmark:
        paths.benchmark("evaluate", "{dataset}/{mask}/{method}")
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
        paths.log("tune", "{dataset}/{mask}/{method}"),
    benchmark:
        paths.benchmark("tune", "{dataset}/{mask}/{method}")
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
        csv=report(paths.table("tuning.csv"), caption="../report/tuning.rst", category="2 Clean quality"),
        md=paths.table("tuning.md"),
    log:
        paths.log("summarise_tuning"),
    benchmark:
        paths.benchmark("summarise_tuning")
    localrule: True
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
        csv=report(paths.table("clean.csv"), caption="../report/clean.rst", category="2 Clean quality"),
        md=paths.table("clean.md"),
    log:
        paths.log("summarise_clean"),
    benchmark:
        paths.benchmark("summarise_clean")
    localrule: True
    conda:
        "../../envs/recon.yaml"
    params:
        accelerations=canonical({m: c["acceleration"] for m, c in config["masks"].items()}),
    script:
        "../scripts/summarise.py"
