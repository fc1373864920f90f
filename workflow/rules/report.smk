# Figures, the headline table and the HTML report (`snakemake --report results/report.html`).
# Plotting rules read only summary tables and reconstructions; their options (config `plots:`) are their
# params, so changing one reruns the plotting jobs and nothing upstream.
from types import SimpleNamespace


def plot_options():
    return canonical(config["plots"])


def example_case(name):
    """(dataset, mask, stem) shown in an experiment's example panel: its first dataset and mask and the
    first test volume (sorted stems) of that dataset."""
    block = STUDY.experiment(name)
    dataset, mask = block["datasets"][0], block["masks"][0]
    return dataset, mask, stems(dataset, [config["evaluation"]["split"]])[0]


def attack_example_inputs(wildcards):
    dataset, mask, stem = example_case("attacks")
    return {"volume": volume_path(SimpleNamespace(dataset=dataset, stem=stem)),
            "recons": [paths.ATTACK.format(dataset=dataset, mask=mask, method=m, part=part_of(dataset, stem)) + ".h5"
                       for m in STUDY.example_methods("attacks")]}


def feature_example_inputs(wildcards):
    dataset, mask, stem = example_case("features")
    part = part_of(dataset, stem)
    return {"featured": paths.FEATURED.format(dataset=dataset, mask=mask, part=part),
            "recons": [paths.FEATURES.format(dataset=dataset, mask=mask, method=m, part=part) + ".h5"
                       for m in STUDY.example_methods("features")]}


def headline_inputs(wildcards):
    out = {"clean": "results/tables/clean.csv"}
    if "attacks" in config:
        out["adversarial"] = "results/tables/adversarial_drops.csv"
    if "features" in config:
        out["features"] = "results/tables/features_summary.csv"
    if STUDY.fitted_shifts():
        out["shifts"] = "results/tables/shifts.csv"
    return out


def findings_inputs(wildcards):
    out = {"clean": "results/tables/clean.csv"}
    if tuning_targets():
        out["tuning"] = "results/tables/tuning.csv"
    if "attacks" in config:
        out["drops"] = "results/tables/adversarial_drops.csv"
        out["attacks"] = "results/tables/attack_verdicts.csv"
        if STUDY.attack_effort_settings():  # the effort reruns (attacks.effort), judged in the attack row
            out["effort"] = "results/tables/attack_effort.csv"
    if "features" in config:
        out["correlation"] = "results/tables/features_correlation.csv"
    if "pathology" in config:
        out["pathology"] = "results/tables/pathology_correlation.csv"
    if STUDY.fitted_shifts():
        out["fits"] = "results/tables/shift_fit.csv"
    if "ttt" in config:
        out["ttt"] = "results/tables/ttt_summary.csv"
    return out


def study_targets(wildcards=None):
    """Every table and figure of the configured experiments after the data stage (what `all` builds besides
    data_targets() and the runtime table). An input function: the maps need the ingest checkpoints."""
    # ESPIRiT maps are built where a job reads them (a variant, the features, TTT, training): a real study with
    # four masks needs a third of the dataset x mask pairs. Only a study without variants (data preparation)
    # asks for them itself, for every file of sensitivities.splits.
    maps = [] if config["methods"] else sensitivity_targets(wildcards)
    return [*maps, *table_targets()]


def table_targets():
    """The tables and figures of the configured experiments (known at start-up: `all` lists them directly, so
    that a dry run shows their jobs before the ingest checkpoints have run)."""
    methods = bool(config["methods"])
    return [
        *(["results/tables/clean.csv"] if methods else []),
        *(["results/tables/tuning.csv"] if methods and tuning_targets() else []),
        *(["results/tables/adversarial.csv"] if methods and "attacks" in config else []),
        *(["results/tables/features.csv"] if methods and "features" in config else []),
        *(["results/tables/pathology.csv"] if methods and "pathology" in config else []),
        *(["results/tables/shift_fit.csv"] if methods and STUDY.fitted_shifts() else []),
        *(["results/tables/ttt_summary.csv"] if methods and "ttt" in config else []),
        *figure_targets(),
    ]


def figure_targets():
    """Every figure (PNG and PDF) and the headline table the configured experiments produce."""
    if not config["methods"]:
        return []
    names = []
    if "attacks" in config:
        names += ["adversarial", "adversarial_examples"]
    if "features" in config:
        names += ["features_vs_ssim", "feature_examples"]
    if STUDY.fitted_shifts():
        names.append("shifts")
    if "ttt" in config:
        names.append("ttt")
    return ["results/tables/headline.csv", "results/tables/findings.csv"] + [f"results/figures/{n}.{ext}" for n in names for ext in ("png", "pdf")]


rule plot_adversarial:
    input:
        "results/tables/adversarial.csv",
    output:
        png=report("results/figures/adversarial.png", caption="../report/adversarial.rst",
                   category="3 Adversarial perturbations"),
        pdf="results/figures/adversarial.pdf",
    params:
        plots=lambda w: plot_options(),
    log:
        "results/logs/plot/adversarial.log",
    benchmark:
        "results/benchmarks/plot/adversarial.tsv",
    conda:
        "../../envs/recon.yaml"
    script:
        "../scripts/plot_adversarial.py"


rule plot_attack_examples:
    input:
        unpack(attack_example_inputs),
    output:
        png=report("results/figures/adversarial_examples.png", caption="../report/adversarial_examples.rst",
                   category="3 Adversarial perturbations"),
        pdf="results/figures/adversarial_examples.pdf",
    params:
        plots=lambda w: plot_options(),
        case=lambda w: list(example_case("attacks")),
    log:
        "results/logs/plot/adversarial_examples.log",
    benchmark:
        "results/benchmarks/plot/adversarial_examples.tsv",
    conda:
        "../../envs/recon.yaml"
    script:
        "../scripts/plot_attack_examples.py"


rule plot_features:
    input:
        summary="results/tables/features_summary.csv",
        correlation="results/tables/features_correlation.csv",
    output:
        png=report("results/figures/features_vs_ssim.png", caption="../report/features_vs_ssim.rst",
                   category="4 Small features"),
        pdf="results/figures/features_vs_ssim.pdf",
    params:
        plots=lambda w: plot_options(),
    log:
        "results/logs/plot/features_vs_ssim.log",
    benchmark:
        "results/benchmarks/plot/features_vs_ssim.tsv",
    conda:
        "../../envs/recon.yaml"
    script:
        "../scripts/plot_features.py"


rule plot_feature_examples:
    input:
        unpack(feature_example_inputs),
    output:
        png=report("results/figures/feature_examples.png", caption="../report/feature_examples.rst",
                   category="4 Small features"),
        pdf="results/figures/feature_examples.pdf",
    params:
        plots=lambda w: plot_options(),
        case=lambda w: list(example_case("features")),
    log:
        "results/logs/plot/feature_examples.log",
    benchmark:
        "results/benchmarks/plot/feature_examples.tsv",
    conda:
        "../../envs/recon.yaml"
    script:
        "../scripts/plot_feature_examples.py"


rule plot_shifts:
    input:
        points="results/tables/shifts.csv",
        fit="results/tables/shift_fit.csv",
    output:
        png=report("results/figures/shifts.png", caption="../report/shifts.rst",
                   category="5 Distribution shifts"),
        pdf="results/figures/shifts.pdf",
    params:
        plots=lambda w: plot_options(),
        pairs=lambda w: canonical(STUDY.fitted_shifts()),  # the panel titles
    log:
        "results/logs/plot/shifts.log",
    benchmark:
        "results/benchmarks/plot/shifts.tsv",
    conda:
        "../../envs/recon.yaml"
    script:
        "../scripts/plot_shifts.py"


rule plot_ttt:
    input:
        "results/tables/ttt_summary.csv",
    output:
        png=report("results/figures/ttt.png", caption="../report/ttt.rst",
                   category="6 Test-time training"),
        pdf="results/figures/ttt.pdf",
    params:
        plots=lambda w: plot_options(),
        pairs=lambda w: canonical(STUDY.shift_pairs()),  # the panel titles
    log:
        "results/logs/plot/ttt.log",
    benchmark:
        "results/benchmarks/plot/ttt.tsv",
    conda:
        "../../envs/recon.yaml"
    script:
        "../scripts/plot_ttt.py"


rule summarise_headline:
    input:
        unpack(headline_inputs),
    output:
        csv=report("results/tables/headline.csv", caption="../report/headline.rst", category="1 Headline"),
        md="results/tables/headline.md",
    params:
        dataset=lambda w: STUDY.source_case()[0],
        mask=lambda w: STUDY.source_case()[1],
    log:
        "results/logs/summarise_headline.log",
    benchmark:
        "results/benchmarks/summarise_headline.tsv",
    conda:
        "../../envs/recon.yaml"
    script:
        "../scripts/summarise_headline.py"


rule summarise_findings:
    input:
        unpack(findings_inputs),
    output:
        csv=report("results/tables/findings.csv", caption="../report/findings.rst", category="1 Headline"),
        md="results/tables/findings.md",
    params:
        dataset=lambda w: STUDY.source_case()[0],
        mask=lambda w: STUDY.source_case()[1],
        shift_margin=config["findings"]["shift_margin"],
        shift_min_volumes=config["findings"]["min_volumes"],
        clean_tie_db=config["findings"]["clean_tie_db"],
        clean_tie_ssim=config["findings"]["clean_tie_ssim"],
        effort_tolerance_db=config["findings"]["attack_effort_tolerance_db"],
    log:
        "results/logs/summarise_findings.log",
    benchmark:
        "results/benchmarks/summarise_findings.tsv",
    conda:
        "../../envs/recon.yaml"
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
    params:
        benchmarks="results/benchmarks",
    log:
        "results/logs/summarise_runtime.log",
    conda:
        "../../envs/recon.yaml"
    script:
        "../scripts/summarise_runtime.py"


def readme_in_checkout() -> bool:
    """Whether the `readme` target may write the project's README.md and docs/demo/: the demo run in the checkout
    (the default config or --configfile config/config.yaml, no --config, the checkout as working directory)."""
    default = (Path(workflow.basedir) / "config" / "config.yaml").resolve()
    return (all(Path(p).resolve() == default for p in workflow.overwrite_configfiles)
            and not workflow.config_settings.config and Path.cwd().resolve() == Path(workflow.basedir).resolve())


# Not part of `all`; runs only when asked by name (`snakemake --cores 2 readme`) and prints the files it changed:
# the run's findings, headline table and linear-fit figure into the README's `headline` block and docs/demo/ for
# the demo run in the checkout; any other run (a real study's numbers) gets them in results/readme/ instead.
README_DIR = "docs/demo" if readme_in_checkout() else "results/readme"


rule readme:
    input:
        headline="results/tables/headline.md",
        findings="results/tables/findings.md",
        shifts="results/figures/shifts.png",
    output:
        table=f"{README_DIR}/headline.md",
        findings=f"{README_DIR}/findings.md",
        figure=f"{README_DIR}/shifts.png",
    params:
        readme="README.md" if README_DIR == "docs/demo" else f"{README_DIR}/README.md",
        create=README_DIR != "docs/demo",  # results/readme/README.md: created holding the block only
    log:
        "results/logs/readme.log",
    benchmark:
        "results/benchmarks/readme.tsv",
    conda:
        "../../envs/recon.yaml"
    script:
        "../scripts/readme.py"


