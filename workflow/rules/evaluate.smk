# Clean-quality evaluation: per-slice metrics per method variant, then one summary table.


def split_recons(wildcards, split):
    """The per-slice scores of a variant's reconstructions of every part of a split."""
    return [paths.RECON_SCORES.format(dataset=wildcards.dataset, mask=wildcards.mask, method=wildcards.method, part=p)
            for p in parts(wildcards.dataset, [split])]


def eval_recons(wildcards):
    return split_recons(wildcards, config["evaluation"]["split"])


def eval_volumes(wildcards):
    return split_volumes(wildcards.dataset, [config["evaluation"]["split"]])


def tune_recons(wildcards):
    return split_recons(wildcards, STUDY.tuning_case()[2])


def tuning_targets():
    dataset, mask, split, variants = STUDY.tuning_case()
    if not variants or STUDY.split_is_empty(dataset, split):
        return []
    return [paths.TUNING.format(dataset=dataset, mask=mask, method=m) for m in variants]


def tuning_settings():
    """Each tuned variant's settings with its family's defaults filled in (its parsed spec; the zero-filled
    baseline has none): robustcs.tables.tuning_table finds a family's one-setting grid (ℓ1's lam) in them."""
    from dataclasses import asdict, is_dataclass

    def filled(method):
        spec = STUDY.spec(method)
        return asdict(spec) if is_dataclass(spec) else STUDY.variant_settings(method)

    return canonical({m: filled(m) for m in STUDY.tuning_case()[3]})


def clean_eval_targets():
    ev = config["evaluation"]
    return [paths.EVAL.format(dataset=d, mask=m, method=method)
            for d in ev["datasets"] for m in ev["masks"] for method in STUDY.evaluated_methods()]


rule evaluate:
    input:
        manifest=paths.MANIFEST,
        recons=eval_recons,
        volumes=eval_volumes,
    output:
        paths.EVAL,
    log:
        "results/logs/evaluate/{dataset}/{mask}/{method}.log",
    benchmark:
        "results/benchmarks/evaluate/{dataset}/{mask}/{method}.tsv",
    resources:
        mem_mb=2000,
        runtime=STUDY.minutes("evaluate"),
    conda:
        "../../envs/recon.yaml"
    script:
        "../scripts/evaluate.py"


# Tuning on the source's validation split (config `tuning`; default: every variant of the papers' four families):
# the same scoring as `evaluate`, on other volumes. Each family's variant with the highest validation SSIM
# represents it in the findings' clean ordering; the test split plays no part in that choice.
rule tune:
    input:
        manifest=paths.MANIFEST,
        recons=tune_recons,
    output:
        paths.TUNING,
    log:
        "results/logs/tune/{dataset}/{mask}/{method}.log",
    benchmark:
        "results/benchmarks/tune/{dataset}/{mask}/{method}.tsv",
    resources:
        mem_mb=2000,
        runtime=STUDY.minutes("evaluate"),
    conda:
        "../../envs/recon.yaml"
    script:
        "../scripts/evaluate.py"


rule summarise_tuning:
    input:
        tuning_targets(),
    output:
        csv=report("results/tables/tuning.csv", caption="../report/tuning.rst", category="2 Clean quality"),
        md="results/tables/tuning.md",
    params:
        settings=lambda w: tuning_settings(),
    log:
        "results/logs/summarise_tuning.log",
    benchmark:
        "results/benchmarks/summarise_tuning.tsv",
    conda:
        "../../envs/recon.yaml"
    script:
        "../scripts/summarise_tuning.py"


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
