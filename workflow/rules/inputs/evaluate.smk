# Input functions and settings for rules/evaluate.smk, included at its top: Snakemake's lint asks that no file
# define both functions and rules.


def split_recons(wildcards, split):
    """The per-slice scores of a variant's reconstructions of every part of a split."""
    return [
        paths.RECON_SCORES.format(dataset=wildcards.dataset, mask=wildcards.mask, method=wildcards.method, part=p)
        for p in parts(wildcards.dataset, [split])
    ]


def eval_recons(wildcards):
    return split_recons(wildcards, config["evaluation"]["split"])


def reconstructions(scores):
    """The reconstruction files beside a list of scores files (`evaluate` checks that each can be read)."""
    return [path[: -len(".csv")] + ".h5" for path in scores]


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
    return [
        paths.EVAL.format(dataset=d, mask=m, method=method)
        for d in ev["datasets"]
        for m in ev["masks"]
        for method in STUDY.evaluated_methods()
    ]


def recon_intermediates(pattern, tables, split):
    """The reconstructions (scores and .h5) that the evaluation tables (paths of ``pattern``) gather, and their
    jobs' inputs."""
    out = []
    for path in tables:
        for scores in split_recons(_wildcards(paths.wildcards_of(pattern, path)), split):
            out += [scores, f"{scores[: -len('.csv')]}.h5", *job_inputs(paths.RECON_SCORES, scores)]
    return out


def clean_intermediates(wildcards):
    evals = clean_eval_targets()
    return evals + recon_intermediates(paths.EVAL, evals, config["evaluation"]["split"])


def tuning_intermediates(wildcards):
    tunings = tuning_targets()
    return tunings + recon_intermediates(paths.TUNING, tunings, STUDY.tuning_case()[2])
