# Input functions and settings for rules/attack.smk, included at its top: Snakemake's lint asks that no file
# define both functions and rules.


def attack_targets(wildcards):
    return experiment_targets("attacks", f"{paths.ATTACK}.csv")


def attack_minutes(wildcards):
    """The variant's family's runtime limit (minutes): the job's `runtime`, and its `priority` (longest first)."""
    return STUDY.minutes("attack", wildcards.method)


# Attack effort (config attacks.effort; robustcs.attack_effort): each attacked variant attacked again at the largest
# ε with the base steps and factor × them, on one central slice of each of the first test files, scored as the
# main attack; one job per variant, then one table that the findings read.
from robustcs.specs import AttackSpec


def effort_targets(wildcards=None):
    block = STUDY.experiment("attacks")
    return [
        paths.ATTACK_EFFORT.format(dataset=d, mask=m, method=x)
        for d in block["datasets"]
        for m in block["masks"]
        for x in block["methods"]
    ]


def effort_stems(wildcards):
    """The first attacks.effort.slices test files of the dataset (stems sorted)."""
    return stems(wildcards.dataset, [config["evaluation"]["split"]])[: STUDY.attack_effort_settings()["slices"]]


def effort_inputs(wildcards):
    """What the variant needs to reconstruct those files: data, mask, maps (of their parts), model."""
    w, chosen = wildcards, effort_stems(wildcards)
    inputs = {
        "manifest": paths.MANIFEST.format(dataset=w.dataset),
        "masks": paths.MASK.format(dataset=w.dataset, mask=w.mask),
        "volumes": sorted({row["path"] for row in manifest(w.dataset) if row["stem"] in set(chosen)}),
    }
    if STUDY.needs_maps(w.method):
        inputs["sens"] = sorted({sens_path(w.dataset, w.mask, stem) for stem in chosen})
    if STUDY.family(w.method).trained:
        inputs["model"] = model_path(w)
    return inputs


def effort_minutes(wildcards):
    """An attack job's limit (one file) times the reruns' slice-attacks over one file's (slices × ε) in it."""
    effort, attack = STUDY.attack_effort_settings(), STUDY.attack_settings()
    per_file = attack["slices"] * len(AttackSpec.from_config(attack["spec"]).epsilons)
    return attack_minutes(wildcards) * -(-effort["slices"] * (1 + sum(effort["factors"])) // per_file)


def attack_intermediates(wildcards):
    out = part_results(paths.ATTACK, attack_targets(wildcards))
    if STUDY.attack_effort_settings():
        for path in effort_targets():
            out += [path, *job_inputs(paths.ATTACK_EFFORT, path, effort_inputs)]
    return out


def attack_example_inputs(wildcards):
    dataset, mask, stem = example_case("attacks")
    return {
        "volume": volume_path(SimpleNamespace(dataset=dataset, stem=stem)),
        "recons": [
            paths.ATTACK.format(dataset=dataset, mask=mask, method=m, part=part_of(dataset, stem)) + ".h5"
            for m in STUDY.example_methods("attacks")
        ],
    }
