# Input functions and settings for rules/report.smk, included at its top: Snakemake's lint asks that no file
# define both functions and rules.


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
    return {
        "volume": volume_path(SimpleNamespace(dataset=dataset, stem=stem)),
        "recons": [
            paths.ATTACK.format(dataset=dataset, mask=mask, method=m, part=part_of(dataset, stem)) + ".h5"
            for m in STUDY.example_methods("attacks")
        ],
    }


def feature_example_inputs(wildcards):
    dataset, mask, stem = example_case("features")
    part = part_of(dataset, stem)
    return {
        "featured": paths.FEATURED.format(dataset=dataset, mask=mask, part=part),
        "recons": [
            paths.FEATURES.format(dataset=dataset, mask=mask, method=m, part=part) + ".h5"
            for m in STUDY.example_methods("features")
        ],
    }


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


class _wildcards(SimpleNamespace):
    """Wildcard values for an input function called outside Snakemake's jobs (``w.part``, ``w.keys()``)."""

    def __init__(self, values):
        super().__init__(**values)

    def keys(self):
        return vars(self).keys()


def intermediate_targets(wildcards):
    """Every file the tables are made from: the evaluations, the parts' reconstructions, attacks, features and TTT
    (their .h5 and .csv), the maps and models they read. `all` lists them beside the tables because Snakemake
    does not remake a deleted intermediate whose consumers' outputs look up to date (its rule since 7.7, for
    temporary files): a failed `evaluate`, whose output Snakemake removes, would be forgotten by the next run,
    which would report success. Listed here, a missing file is remade and every job after it reruns."""
    out, split = set(), config["evaluation"]["split"]

    def job_inputs(pattern, path, inputs=method_inputs):
        w = _wildcards(paths.wildcards_of(pattern, path))
        for value in inputs(w).values():
            out.update([value] if isinstance(value, str) else value)

    evals = [*clean_eval_targets(), *(shift_eval_inputs(wildcards) if STUDY.fitted_shifts() else [])]
    tunings = tuning_targets() if config["methods"] else []
    out.update(evals + tunings)
    for pattern, paths_, which in ((paths.EVAL, evals, split), (paths.TUNING, tunings, STUDY.tuning_case()[2])):
        for path in paths_:
            w = _wildcards(paths.wildcards_of(pattern, path))
            for scores in split_recons(w, which):
                out.update([scores, f"{scores[: -len('.csv')]}.h5"])
                job_inputs(paths.RECON_SCORES, scores)
    for name, pattern in (("attacks", paths.ATTACK), ("features", paths.FEATURES)):
        if name in config and config["methods"]:
            for path in experiment_targets(name, f"{pattern}.csv"):
                out.update([path, f"{path[: -len('.csv')]}.h5"])
                job_inputs(f"{pattern}.csv", path)
                if name == "features":
                    out.add(paths.FEATURED.format(**paths.wildcards_of(f"{pattern}.csv", path)))
    if "attacks" in config and config["methods"] and STUDY.attack_effort_settings():
        for path in effort_targets():
            out.add(path)
            job_inputs(EFFORT, path, effort_inputs)
    if "pathology" in config and config["methods"]:
        for path in pathology_targets(wildcards):
            out.add(path)
            job_inputs(paths.PATHOLOGY, path)
    if "ttt" in config and config["methods"]:
        for path in ttt_targets(wildcards):
            out.update([path, f"{path[: -len('.csv')]}.h5"])
            job_inputs(f"{paths.TTT}.csv", path, ttt_inputs)
    # a trained model's history beside it (the report's training curves read it; published weights have none)
    models = [paths.wildcards_of(paths.MODEL, p) for p in out if p.endswith("model.pt")]
    out.update(paths.HISTORY.format(**w) for w in models if "checkpoint" not in STUDY.methods[w["method"]])
    return sorted(out)


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
    return ["results/tables/headline.csv", "results/tables/findings.csv"] + [
        f"results/figures/{n}.{ext}" for n in names for ext in ("png", "pdf")
    ]


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
README_DIR = "docs/demo" if readme_in_checkout() else "results/readme"
