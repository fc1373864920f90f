"""The registry of the study's experiments: one entry per summarised result the workflow builds after the
reconstructions (clean quality, tuning, attacks, features, pathology, distribution shifts, test-time training).

Each entry names its rule file, the tables and figures its rules write, the tables the headline and the findings
read from it, and whether a study configures it. The cross-experiment rules and the workflow's targets
(``workflow/rules/report.smk`` and ``rules/inputs/report.smk``) loop over ``REGISTRY`` instead of naming an
experiment; adding one is a library module, a rule file (included by the Snakefile) and one entry here
(docs/architecture.md). Standard library only: the Snakefile imports it while Snakemake parses the workflow."""

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from robustcs import paths


@dataclass(frozen=True)
class Experiment:
    """One experiment. ``configured(study)`` says whether the study runs it (a robustcs.study.Study);
    ``targets`` are the tables `all` asks for (their rules pull in the rest); ``tables`` every table its rules
    write (tests/test_experiments.py checks that its rule file writes each); ``figures`` the figure names (a PNG
    and a PDF each); ``headline`` / ``findings`` map an input name of rule summarise_headline /
    summarise_findings to the table it reads; ``optional_findings`` are findings inputs read only when
    ``optional(study)`` holds (e.g. the attack effort reruns); ``intermediates`` names the input function (of its
    rules/inputs file) that lists its per-job files for `all` (called with intermediate_targets' job_inputs)."""

    name: str
    rule_file: str
    configured: Callable[[Any], bool]
    tables: tuple[str, ...]
    targets: tuple[str, ...]
    figures: tuple[str, ...] = ()
    headline: dict[str, str] = field(default_factory=dict)
    findings: dict[str, str] = field(default_factory=dict)
    optional_findings: dict[str, str] = field(default_factory=dict)
    optional: Callable[[Any], bool] = lambda study: False
    intermediates: str | None = None


def _tuned(study) -> bool:
    dataset, _, split, variants = study.tuning_case()
    return bool(variants) and not study.split_is_empty(dataset, split)


def _block(name: str) -> Callable[[Any], bool]:
    return lambda study: name in study.config


REGISTRY: tuple[Experiment, ...] = (
    Experiment(
        "clean", "evaluate.smk", lambda study: True, ("clean.csv", "clean.md"), ("clean.csv",),
        headline={"clean": "clean.csv"}, findings={"clean": "clean.csv"}, intermediates="clean_intermediates",
    ),
    Experiment(
        "tuning", "evaluate.smk", _tuned, ("tuning.csv", "tuning.md"), ("tuning.csv",),
        findings={"tuning": "tuning.csv"}, intermediates="tuning_intermediates",
    ),
    Experiment(
        "attacks", "attack.smk", _block("attacks"),
        ("adversarial.csv", "adversarial.md", "adversarial_drops.csv", "adversarial_drops.md",
         "attack_verdicts.csv", "attack_verdicts.md", "attack_effort.csv", "attack_effort.md"),
        ("adversarial.csv",), figures=("adversarial", "adversarial_examples"),
        headline={"adversarial": "adversarial_drops.csv"},
        findings={"drops": "adversarial_drops.csv", "attacks": "attack_verdicts.csv"},
        optional_findings={"effort": "attack_effort.csv"},  # the effort reruns (attacks.effort)
        optional=lambda study: bool(study.attack_effort_settings()),
        intermediates="attack_intermediates",
    ),
    Experiment(
        "features", "features.smk", _block("features"),
        ("features.csv", "features_summary.csv", "features_summary.md", "features_correlation.csv",
         "features_by_size.csv"),
        ("features.csv",), figures=("features_vs_ssim", "feature_examples"),
        headline={"features": "features_summary.csv"}, findings={"correlation": "features_correlation.csv"},
        intermediates="feature_intermediates",
    ),
    Experiment(
        "pathology", "features.smk", _block("pathology"),
        ("pathology.csv", "pathology_summary.csv", "pathology_summary.md", "pathology_correlation.csv"),
        ("pathology.csv",), findings={"pathology": "pathology_correlation.csv"},
        intermediates="pathology_intermediates",
    ),
    Experiment(
        "shifts", "shifts.smk", lambda study: bool(study.fitted_shifts()),
        ("shifts.csv", "shift_slices.csv", "shift_fit.csv", "shift_fit.md"), ("shift_fit.csv",),
        figures=("shifts",), headline={"shifts": "shifts.csv"}, findings={"fits": "shift_fit.csv"},
        intermediates="shift_intermediates",
    ),
    Experiment(
        "ttt", "shifts.smk", _block("ttt"), ("ttt.csv", "ttt_summary.csv", "ttt_summary.md"), ("ttt_summary.csv",),
        figures=("ttt",), findings={"ttt": "ttt_summary.csv"}, intermediates="ttt_intermediates",
    ),
)

README_FIGURE = "shifts"  # the figure the `readme` target shows beside the headline (the papers' linear fit)


def configured(study) -> list[Experiment]:
    """The registry's entries that ``study`` runs, in registry order."""
    return [e for e in REGISTRY if e.configured(study)]


def table_targets(study) -> list[str]:
    """The tables `all` asks for: each configured experiment's targets (none in a study without variants)."""
    if not study.methods:
        return []
    return [paths.table(t) for e in configured(study) for t in e.targets]


def figure_targets(study) -> list[str]:
    """Every figure (PNG and PDF) of the configured experiments (none in a study without variants)."""
    if not study.methods:
        return []
    return [paths.figure(f, ext) for e in configured(study) for f in e.figures for ext in ("png", "pdf")]


def summary_inputs(study, which: str) -> dict[str, str]:
    """The input names and tables of rule summarise_headline (``which="headline"``) or summarise_findings
    (``"findings"``): what each configured experiment gives them."""
    if which not in ("headline", "findings"):
        raise ValueError(f"summary_inputs: expected 'headline' or 'findings', got {which!r}")
    out = {}
    for e in configured(study):
        out.update({k: paths.table(t) for k, t in getattr(e, which).items()})
        if which == "findings" and e.optional(study):
            out.update({k: paths.table(t) for k, t in e.optional_findings.items()})
    return out
