# Figures, the headline table and the HTML report (`snakemake --report results/report.html`).
# Plotting rules read only summary tables and reconstructions; their options (config `plots:`) are their
# params, so changing one reruns the plotting jobs and nothing upstream.


include: "inputs/report.smk"


rule plot_adversarial:
    input:
        "results/tables/adversarial.csv",
    output:
        png=report(
            "results/figures/adversarial.png",
            caption="../report/adversarial.rst",
            category="3 Adversarial perturbations",
        ),
        pdf="results/figures/adversarial.pdf",
    log:
        "results/logs/plot/adversarial.log",
    benchmark:
        "results/benchmarks/plot/adversarial.tsv"
    conda:
        "../../envs/recon.yaml"
    params:
        plots=lambda w: plot_options(),
    script:
        "../scripts/plot_adversarial.py"


rule plot_attack_examples:
    input:
        unpack(attack_example_inputs),
    output:
        png=report(
            "results/figures/adversarial_examples.png",
            caption="../report/adversarial_examples.rst",
            category="3 Adversarial perturbations",
        ),
        pdf="results/figures/adversarial_examples.pdf",
    log:
        "results/logs/plot/adversarial_examples.log",
    benchmark:
        "results/benchmarks/plot/adversarial_examples.tsv"
    conda:
        "../../envs/recon.yaml"
    params:
        plots=lambda w: plot_options(),
        case=lambda w: list(example_case("attacks")),
    script:
        "../scripts/plot_attack_examples.py"


rule plot_features:
    input:
        summary="results/tables/features_summary.csv",
        correlation="results/tables/features_correlation.csv",
    output:
        png=report(
            "results/figures/features_vs_ssim.png",
            caption="../report/features_vs_ssim.rst",
            category="4 Small features",
        ),
        pdf="results/figures/features_vs_ssim.pdf",
    log:
        "results/logs/plot/features_vs_ssim.log",
    benchmark:
        "results/benchmarks/plot/features_vs_ssim.tsv"
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
            "results/figures/feature_examples.png",
            caption="../report/feature_examples.rst",
            category="4 Small features",
        ),
        pdf="results/figures/feature_examples.pdf",
    log:
        "results/logs/plot/feature_examples.log",
    benchmark:
        "results/benchmarks/plot/feature_examples.tsv"
    conda:
        "../../envs/recon.yaml"
    params:
        plots=lambda w: plot_options(),
        case=lambda w: list(example_case("features")),
    script:
        "../scripts/plot_feature_examples.py"


rule plot_shifts:
    input:
        points="results/tables/shifts.csv",
        fit="results/tables/shift_fit.csv",
    output:
        png=report("results/figures/shifts.png", caption="../report/shifts.rst", category="5 Distribution shifts"),
        pdf="results/figures/shifts.pdf",
    log:
        "results/logs/plot/shifts.log",
    benchmark:
        "results/benchmarks/plot/shifts.tsv"
    conda:
        "../../envs/recon.yaml"
    params:
        plots=lambda w: plot_options(),
        pairs=lambda w: canonical(STUDY.fitted_shifts()),  # the panel titles
    script:
        "../scripts/plot_shifts.py"


rule plot_ttt:
    input:
        "results/tables/ttt_summary.csv",
    output:
        png=report("results/figures/ttt.png", caption="../report/ttt.rst", category="6 Test-time training"),
        pdf="results/figures/ttt.pdf",
    log:
        "results/logs/plot/ttt.log",
    benchmark:
        "results/benchmarks/plot/ttt.tsv"
    conda:
        "../../envs/recon.yaml"
    params:
        plots=lambda w: plot_options(),
        pairs=lambda w: canonical(STUDY.shift_pairs()),  # the panel titles
    script:
        "../scripts/plot_ttt.py"


rule summarise_headline:
    input:
        unpack(headline_inputs),
    output:
        csv=report("results/tables/headline.csv", caption="../report/headline.rst", category="1 Headline"),
        md="results/tables/headline.md",
    log:
        "results/logs/summarise_headline.log",
    benchmark:
        "results/benchmarks/summarise_headline.tsv"
    conda:
        "../../envs/recon.yaml"
    params:
        dataset=lambda w: STUDY.source_case()[0],
        mask=lambda w: STUDY.source_case()[1],
    script:
        "../scripts/summarise_headline.py"


rule summarise_findings:
    input:
        unpack(findings_inputs),
    output:
        csv=report("results/tables/findings.csv", caption="../report/findings.rst", category="1 Headline"),
        md="results/tables/findings.md",
    log:
        "results/logs/summarise_findings.log",
    benchmark:
        "results/benchmarks/summarise_findings.tsv"
    conda:
        "../../envs/recon.yaml"
    params:
        dataset=lambda w: STUDY.source_case()[0],
        mask=lambda w: STUDY.source_case()[1],
        shift_margin=config["findings"]["shift_margin"],
        shift_min_volumes=config["findings"]["min_volumes"],
        clean_tie_db=config["findings"]["clean_tie_db"],
        clean_tie_ssim=config["findings"]["clean_tie_ssim"],
        effort_tolerance_db=config["findings"]["attack_effort_tolerance_db"],
    script:
        "../scripts/summarise_findings.py"


# The cost of each stage: every job's benchmark file (results/benchmarks/<stage>/...), summed per stage, after
# everything else of the study is built.
rule summarise_runtime:
    input:
        data_targets(),
        study_targets,
    output:
        csv=report("results/tables/runtime.csv", caption="../report/runtime.rst", category="7 Runtime"),
        md="results/tables/runtime.md",
    log:
        "results/logs/summarise_runtime.log",
    conda:
        "../../envs/recon.yaml"
    params:
        benchmarks="results/benchmarks",
    script:
        "../scripts/summarise_runtime.py"


rule readme:
    input:
        headline="results/tables/headline.md",
        findings="results/tables/findings.md",
        shifts="results/figures/shifts.png",
    output:
        table=f"{README_DIR}/headline.md",
        findings=f"{README_DIR}/findings.md",
        figure=f"{README_DIR}/shifts.png",
    log:
        "results/logs/readme.log",
    benchmark:
        "results/benchmarks/readme.tsv"
    conda:
        "../../envs/recon.yaml"
    params:
        readme="README.md" if README_DIR == "docs/demo" else f"{README_DIR}/README.md",
        create=README_DIR != "docs/demo",  # results/readme/README.md: created holding the block only
    script:
        "../scripts/readme.py"
