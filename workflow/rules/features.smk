# Robustness I (b): small features inserted into the test images, recovered by every variant.


include: "inputs/features.smk"


rule insert_features:
    input:
        volumes=part_volumes,
        manifest=paths.MANIFEST,
        masks=paths.MASK,
        sens=paths.SENS,
    output:
        paths.FEATURED,
    log:
        "results/logs/features/{dataset}/{mask}/_data/{part}.log",
    benchmark:
        "results/benchmarks/features/{dataset}/{mask}/_data/{part}.tsv"
    conda:
        "../../envs/recon.yaml"
    resources:
        mem_mb=2000,
        runtime=STUDY.minutes("evaluate"),
    params:
        features=canonical(STUDY.feature_settings()),
        seed=config["seed"],
        stems=part_stems,
    script:
        "../scripts/insert_features.py"


rule probe_features:
    input:
        unpack(method_inputs),
        featured=paths.FEATURED,
    output:
        csv=f"{paths.FEATURES}.csv",
        h5=f"{paths.FEATURES}.h5",
    log:
        "results/logs/features/{dataset}/{mask}/{method}/{part}.log",
    benchmark:
        "results/benchmarks/features/{dataset}/{mask}/{method}/{part}.tsv"
    wildcard_constraints:
        method=STUDY.method_regex(),
    conda:
        "../../envs/recon.yaml"
    threads: config["compute"]["threads"]
    resources:
        mem_mb=4000,
        runtime=recon_minutes,  # reconstruct.smk
        gpu=method_gpus,
    params:
        spec=method_spec,
        seed=method_seed,
        margin=lambda w: STUDY.feature_settings()["margin"],
        stems=part_stems,
    script:
        "../scripts/probe_features.py"


rule summarise_features:
    input:
        feature_targets,
    output:
        csv="results/tables/features.csv",
        summary=report(
            "results/tables/features_summary.csv", caption="../report/features_table.rst", category="4 Small features"
        ),
        md="results/tables/features_summary.md",
        correlation="results/tables/features_correlation.csv",
        by_size="results/tables/features_by_size.csv",
    log:
        "results/logs/summarise_features.log",
    benchmark:
        "results/benchmarks/summarise_features.tsv"
    conda:
        "../../envs/recon.yaml"
    params:
        margin=lambda w: STUDY.feature_settings()["margin"],  # the ring around each feature (relative error)
        seed=config["seed"],
        min_correlation=config["findings"]["feature_min_correlation"],
        min_volumes=config["findings"]["min_volumes"],
    script:
        "../scripts/summarise_features.py"


# Annotated pathology: the annotated slices of one test file, reconstructed by one variant and
# scored inside each box of the annotation file.
rule probe_pathology:
    input:
        unpack(method_inputs),
        annotations=lambda w: STUDY.pathology_settings()["annotations"],
    output:
        paths.PATHOLOGY,
    log:
        "results/logs/pathology/{dataset}/{mask}/{method}/{stem}.log",
    benchmark:
        "results/benchmarks/pathology/{dataset}/{mask}/{method}/{stem}.tsv"
    wildcard_constraints:
        method=STUDY.method_regex(),
    conda:
        "../../envs/recon.yaml"
    threads: config["compute"]["threads"]
    resources:
        mem_mb=4000,
        runtime=recon_minutes,  # reconstruct.smk
        gpu=method_gpus,
    params:
        spec=method_spec,
        seed=method_seed,
        settings=lambda w: canonical(STUDY.pathology_settings()),
    script:
        "../scripts/probe_pathology.py"


rule summarise_pathology:
    input:
        pathology_targets,
    output:
        csv="results/tables/pathology.csv",
        summary=report(
            "results/tables/pathology_summary.csv",
            caption="../report/pathology_table.rst",
            category="4 Small features",
        ),
        md="results/tables/pathology_summary.md",
        correlation="results/tables/pathology_correlation.csv",
    log:
        "results/logs/summarise_pathology.log",
    benchmark:
        "results/benchmarks/summarise_pathology.tsv"
    conda:
        "../../envs/recon.yaml"
    params:
        seed=config["seed"],
        min_correlation=config["findings"]["feature_min_correlation"],
        min_volumes=config["findings"]["min_volumes"],
    script:
        "../scripts/summarise_pathology.py"
