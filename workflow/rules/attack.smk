# Robustness I (a): adversarial perturbations of the measurements, every attacked variant and ε; one job per part of
# the test split (compute.volumes_per_job files).


def attack_targets(wildcards):
    return experiment_targets("attacks", paths.ATTACK + ".csv")


def attack_minutes(wildcards):
    """The variant's family's runtime limit (minutes): the job's `runtime`, and its `priority` (longest first)."""
    return STUDY.family(wildcards.method).attack_minutes


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
