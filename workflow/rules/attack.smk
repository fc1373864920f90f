# Robustness I (a): adversarial perturbations of the measurements, every attacked variant and ε; one job per part of
# the test split (compute.volumes_per_job files).


def attack_targets(wildcards):
    return experiment_targets("attacks", paths.ATTACK + ".csv")


def attack_minutes(wildcards):
    """The variant's family's runtime limit (minutes): the job's `runtime`, and its `priority` (longest first)."""
    return STUDY.minutes("attack", wildcards.method)


rule attack:
    input:
        unpack(method_inputs),
    output:
        h5=paths.ATTACK + ".h5",
        csv=paths.ATTACK + ".csv",
    wildcard_constraints:
        method=STUDY.method_regex(),
    params:
        spec=method_spec,
        seed=config["seed"],
        attack=canonical(STUDY.attack_settings()),
        stems=part_stems,
    log:
        "results/logs/attack/{dataset}/{mask}/{method}/{part}.log",
    benchmark:
        "results/benchmarks/attack/{dataset}/{mask}/{method}/{part}.tsv",
    threads: config["compute"]["threads"]
    priority: attack_minutes  # longest first: none left to run alone at the end
    resources:
        mem_mb=lambda w, attempt: config["compute"]["mem_mb"] * attempt,  # more on each retry
        runtime=attack_minutes,
        gpu=method_gpus,
    conda:
        "../../envs/recon.yaml"
    script:
        "../scripts/attack.py"


rule summarise_attacks:
    input:
        attack_targets,
    output:
        csv=report("results/tables/adversarial.csv", caption="../report/adversarial_table.rst",
                   category="3 Adversarial perturbations"),
        md="results/tables/adversarial.md",
        drops=report("results/tables/adversarial_drops.csv", caption="../report/adversarial_drops.rst",
                     category="3 Adversarial perturbations"),
        drops_md="results/tables/adversarial_drops.md",
    log:
        "results/logs/summarise_attacks.log",
    benchmark:
        "results/benchmarks/summarise_attacks.tsv",
    conda:
        "../../envs/recon.yaml"
    script:
        "../scripts/summarise_attacks.py"


# The attack row of the findings table, decided here per attacked variant (robustcs.attack_stats): the attack's
# PSNR drop beyond random noise of the same norm and the relative drop against ℓ1's, with volume-bootstrap
# intervals, judged with the config's findings margins (changing one reruns this table and the findings only).
rule summarise_attack_verdicts:
    input:
        attack_targets,
    output:
        csv=report("results/tables/attack_verdicts.csv", caption="../report/attack_verdicts.rst",
                   category="3 Adversarial perturbations"),
        md="results/tables/attack_verdicts.md",
    params:
        margin_db=config["findings"]["attack_margin_db"],
        comparison_margin=config["findings"]["attack_comparison_margin"],
        min_volumes=config["findings"]["min_volumes"],
        seed=config["seed"],
    log:
        "results/logs/summarise_attack_verdicts.log",
    benchmark:
        "results/benchmarks/summarise_attack_verdicts.tsv",
    conda:
        "../../envs/recon.yaml"
    script:
        "../scripts/summarise_attack_verdicts.py"


# Attack effort (config attacks.effort; robustcs.attack_effort): each attacked variant attacked again at the largest
# ε with the base steps and factor × them, on one central slice of each of the first test files, scored as the
# main attack; one job per variant, then one table that the findings read.
from robustcs.specs import AttackSpec

EFFORT = "results/attack_effort/{dataset}/{mask}/{method}.csv"


def effort_targets(wildcards=None):
    block = STUDY.experiment("attacks")
    return [EFFORT.format(dataset=d, mask=m, method=x) for d in block["datasets"] for m in block["masks"]
            for x in block["methods"]]


def effort_stems(wildcards):
    """The first attacks.effort.slices test files of the dataset (stems sorted)."""
    return stems(wildcards.dataset, [config["evaluation"]["split"]])[: STUDY.attack_effort_settings()["slices"]]


def effort_inputs(wildcards):
    """What the variant needs to reconstruct those files: data, mask, maps (of their parts), model."""
    w, chosen = wildcards, effort_stems(wildcards)
    inputs = {"manifest": paths.MANIFEST.format(dataset=w.dataset),
              "masks": paths.MASK.format(dataset=w.dataset, mask=w.mask),
              "volumes": sorted({row["path"] for row in manifest(w.dataset) if row["stem"] in set(chosen)})}
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


rule attack_effort:
    input:
        unpack(effort_inputs),
    output:
        csv=EFFORT,
    wildcard_constraints:
        method=STUDY.method_regex(),
    params:
        spec=method_spec,
        seed=config["seed"],
        attack=canonical(STUDY.attack_settings()),
        effort=canonical(STUDY.attack_effort_settings()),
        stems=effort_stems,
    log:
        "results/logs/attack_effort/{dataset}/{mask}/{method}.log",
    benchmark:
        "results/benchmarks/attack_effort/{dataset}/{mask}/{method}.tsv",
    threads: config["compute"]["threads"]
    priority: effort_minutes
    resources:
        mem_mb=lambda w, attempt: config["compute"]["mem_mb"] * attempt,
        runtime=effort_minutes,
        gpu=method_gpus,
    conda:
        "../../envs/recon.yaml"
    script:
        "../scripts/attack_effort.py"


rule summarise_attack_effort:
    input:
        effort_targets,
    output:
        csv="results/tables/attack_effort.csv",
        md="results/tables/attack_effort.md",
    params:
        tolerance_db=config["findings"]["attack_effort_tolerance_db"],
    log:
        "results/logs/summarise_attack_effort.log",
    benchmark:
        "results/benchmarks/summarise_attack_effort.tsv",
    conda:
        "../../envs/recon.yaml"
    script:
        "../scripts/summarise_attack_effort.py"
