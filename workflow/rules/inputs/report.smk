# Input functions and settings for rules/report.smk, included at its top: Snakemake's lint asks that no file
# define both functions and rules.


from robustcs import experiments


def headline_inputs(wildcards):
    """The tables the headline reads, each configured experiment's (robustcs.experiments)."""
    return experiments.summary_inputs(STUDY, "headline")


def findings_inputs(wildcards):
    """The tables the findings read, each configured experiment's (robustcs.experiments)."""
    return experiments.summary_inputs(STUDY, "findings")


def study_targets(wildcards=None):
    """Every table and figure of the configured experiments after the data stage (what `all` builds besides
    data_targets() and the runtime table). An input function: the maps need the ingest checkpoints."""
    # ESPIRiT maps are built where a job reads them (a variant, the features, TTT, training): a real study with
    # four masks needs a third of the dataset x mask pairs. Only a study without variants (data preparation)
    # asks for them itself, for every file of sensitivities.splits.
    maps = [] if config["methods"] else sensitivity_targets(wildcards)
    return [*maps, *table_targets()]


def intermediate_targets(wildcards):
    """Every file the tables are made from: the evaluations, the parts' reconstructions, attacks, features and TTT
    (their .h5 and .csv), the maps and models they read. `all` lists them beside the tables because Snakemake
    does not remake a deleted intermediate whose consumers' outputs look up to date (its rule since 7.7, for
    temporary files): a failed `evaluate`, whose output Snakemake removes, would be forgotten by the next run,
    which would report success. Listed here, a missing file is remade and every job after it reruns. Each
    experiment lists its own (the input function its registry entry names, in its rules/inputs file)."""
    out = set()
    if config["methods"]:
        for experiment in experiments.configured(STUDY):
            if experiment.intermediates:
                out.update(globals()[experiment.intermediates](wildcards))
    # a trained model's history beside it (the report's training curves read it; published weights have none)
    models = [paths.wildcards_of(paths.MODEL, p) for p in out if p.endswith("model.pt")]
    out.update(paths.HISTORY.format(**w) for w in models if "checkpoint" not in STUDY.methods[w["method"]])
    return sorted(out)


def table_targets():
    """The tables and figures of the configured experiments (known at start-up: `all` lists them directly, so
    that a dry run shows their jobs before the ingest checkpoints have run)."""
    return [*experiments.table_targets(STUDY), *figure_targets()]


def figure_targets():
    """Every figure (PNG and PDF) of the configured experiments, and the headline and findings tables."""
    if not config["methods"]:
        return []
    return [paths.table("headline.csv"), paths.table("findings.csv"), *experiments.figure_targets(STUDY)]


def readme_in_checkout() -> bool:
    """Whether the `readme` target may write the project's README.md and docs/demo/: the demo run in the checkout
    (the default config or --configfile config/config.yaml, no --config, the checkout as working directory)."""
    default = (Path(workflow.basedir) / "config" / "config.yaml").resolve()
    return (
        all(Path(p).resolve() == default for p in workflow.overwrite_configfiles)
        and not workflow.config_settings.config
        and Path.cwd().resolve() == Path(workflow.basedir).resolve()
    )


# Not part of `all`; runs only when asked by name (`snakemake --cores 2 readme`) and prints the files it changed:
# the run's findings, headline table and linear-fit figure into the README's `headline` block and docs/demo/ for
# the demo run in the checkout; any other run (a real study's numbers) gets them in results/readme/ instead.
README_DIR = "docs/demo" if readme_in_checkout() else paths.README_DIR
