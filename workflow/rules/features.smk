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
        paths.log("features", "{dataset}/{mask}/_data/{part}"),
    benchmark:
        paths.benchmark("features", "{dataset}/{mask}/_data/{part}")
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
        paths.log("features", "{dataset}/{mask}/{method}/{part}"),
    benchmark:
        paths.benchmark("features", "{dataset}/{mask}/{method}/{part}")
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
        csv=paths.table("features.csv"),
        summary=report(
            paths.table("features_summary.csv"), caption="../report/features_table.rst", category="4 Small features"
        ),
        md=paths.table("features_summary.md"),
        correlation=paths.table("features_correlation.csv"),
        by_size=paths.table("features_by_size.csv"),
    log:
        paths.log("summarise_features"),
    benchmark:
        paths.benchmark("summarise_features")
    localrule: True
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
        paths.log("pathology", "{dataset}/{mask}/{method}/{stem}"),
    benchmark:
        paths.benchmark("pathology", "{dataset}/{mask}/{method}/{stem}")
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
        csv=paths.table("pathology.csv"),
        summary=report(
            paths.table("pathology_summary.csv"),
            caption="../report/pathology_table.rst",
            category="4 Small features",
        ),
        md=paths.table("pathology_summary.md"),
        correlation=paths.table("pathology_correlation.csv"),
    log:
        paths.log("summarise_pathology"),
    benchmark:
        paths.benchmark("summarise_pathology")
    localrule: True
    conda:
        "../../envs/recon.yaml"
    params:
        seed=config["seed"],
        min_correlation=config["findings"]["feature_min_correlation"],
        min_volumes=config["findings"]["min_volumes"],
    script:
        "../scripts/summarise_pathology.py"


rule plot_features:
    input:
        summary=paths.table("features_summary.csv"),
        correlation=paths.table("features_correlation.csv"),
    output:
        png=report(
            paths.figure("features_vs_ssim", "png"),
            caption="../report/features_vs_ssim.rst",
            category="4 Small features",
        ),
        pdf=paths.figure("features_vs_ssim", "pdf"),
    log:
        paths.log("plot", "features_vs_ssim"),
    benchmark:
        paths.benchmark("plot", "features_vs_ssim")
    localrule: True
    conda:
        "../../envs/recon.yaml"
    params:
        plots=lambda w: plot_options(),
    script:
        "../scripts/plot_features.py"


rule plot_feature_examples:
    input:
        unpack(feature_example_inputs),
    output:
        png=report(
            paths.figure("feature_examples", "png"),
            caption="../report/feature_examples.rst",
            category="4 Small features",
        ),
        pdf=paths.figure("feature_examples", "pdf"),
    log:
        paths.log("plot", "feature_examples"),
    benchmark:
        paths.benchmark("plot", "feature_examples")
    localrule: True
    conda:
        "../../envs/recon.yaml"
    params:
        plots=lambda w: plot_options(),
        case=lambda w: list(example_case("features")),
    script:
        "../scripts/plot_feature_examples.py"
