# The cross-experiment rules: the headline and findings tables, the runtime table and the README block (the HTML
# report: `snakemake --report results/report.html`). Each experiment's own summarising and plotting rules live in
# its rule file; what these rules read from the experiments comes from the registry (robustcs.experiments).


include: "inputs/report.smk"


rule summarise_headline:
    input:
        unpack(headline_inputs),
    output:
        csv=report(paths.table("headline.csv"), caption="../report/headline.rst", category="1 Headline"),
        md=paths.table("headline.md"),
    log:
        paths.log("summarise_headline"),
    benchmark:
        paths.benchmark("summarise_headline")
    localrule: True
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
        csv=report(paths.table("findings.csv"), caption="../report/findings.rst", category="1 Headline"),
        md=paths.table("findings.md"),
    log:
        paths.log("summarise_findings"),
    benchmark:
        paths.benchmark("summarise_findings")
    localrule: True
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
        csv=report(paths.table("runtime.csv"), caption="../report/runtime.rst", category="7 Runtime"),
        md=paths.table("runtime.md"),
    log:
        paths.log("summarise_runtime"),
    localrule: True
    conda:
        "../../envs/recon.yaml"
    params:
        benchmarks=paths.BENCHMARKS,
    script:
        "../scripts/summarise_runtime.py"


rule readme:
    input:
        headline=paths.table("headline.md"),
        findings=paths.table("findings.md"),
        shifts=paths.figure(experiments.README_FIGURE, "png"),
    output:
        table=f"{README_DIR}/headline.md",
        findings=f"{README_DIR}/findings.md",
        figure=f"{README_DIR}/shifts.png",
    log:
        paths.log("readme"),
    benchmark:
        paths.benchmark("readme")
    localrule: True
    conda:
        "../../envs/recon.yaml"
    params:
        readme="README.md" if README_DIR == "docs/demo" else f"{README_DIR}/README.md",
        create=README_DIR != "docs/demo",  # results/readme/README.md: created holding the block only
    script:
        "../scripts/readme.py"
