# Robustness I (a): adversarial perturbations of the measurements, every attacked variant and ε; one job per part of
# the test split (compute.volumes_per_job files).


include: "inputs/attack.smk"


rule attack:
    input:
        unpack(method_inputs),
    output:
        h5=f"{paths.ATTACK}.h5",
        csv=f"{paths.ATTACK}.csv",
    log:
        "results/logs/attack/{dataset}/{mask}/{method}/{part}.log",
    benchmark:
        "results/benchmarks/attack/{dataset}/{mask}/{method}/{part}.tsv"
    wildcard_constraints:
        method=STUDY.method_regex(),
    priority: attack_minutes  # longest first: none left to run alone at the end
    conda:
        "../../envs/recon.yaml"
    threads: config["compute"]["threads"]
    resources:
        mem_mb=lambda w, attempt: config["compute"]["mem_mb"] * attempt,  # more on each retry
        runtime=attack_minutes,
        gpu=method_gpus,
    params:
        spec=method_spec,
        seed=config["seed"],
        attack=canonical(STUDY.attack_settings()),
        stems=part_stems,
    script:
        "../scripts/attack.py"


rule summarise_attacks:
    input:
        attack_targets,
    output:
        csv=report(
            "results/tables/adversarial.csv",
            caption="../report/adversarial_table.rst",
            category="3 Adversarial perturbations",
        ),
        md="results/tables/adversarial.md",
        drops=report(
            "results/tables/adversarial_drops.csv",
            caption="../report/adversarial_drops.rst",
            category="3 Adversarial perturbations",
        ),
        drops_md="results/tables/adversarial_drops.md",
    log:
        "results/logs/summarise_attacks.log",
    benchmark:
        "results/benchmarks/summarise_attacks.tsv"
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
        csv=report(
            "results/tables/attack_verdicts.csv",
            caption="../report/attack_verdicts.rst",
            category="3 Adversarial perturbations",
        ),
        md="results/tables/attack_verdicts.md",
    log:
        "results/logs/summarise_attack_verdicts.log",
    benchmark:
        "results/benchmarks/summarise_attack_verdicts.tsv"
    conda:
        "../../envs/recon.yaml"
    params:
        margin_db=config["findings"]["attack_margin_db"],
        comparison_margin=config["findings"]["attack_comparison_margin"],
        min_volumes=config["findings"]["min_volumes"],
        seed=config["seed"],
    script:
        "../scripts/summarise_attack_verdicts.py"


rule attack_effort:
    input:
        unpack(effort_inputs),
    output:
        csv=EFFORT,
    log:
        "results/logs/attack_effort/{dataset}/{mask}/{method}.log",
    benchmark:
        "results/benchmarks/attack_effort/{dataset}/{mask}/{method}.tsv"
    wildcard_constraints:
        method=STUDY.method_regex(),
    priority: effort_minutes
    conda:
        "../../envs/recon.yaml"
    threads: config["compute"]["threads"]
    resources:
        mem_mb=lambda w, attempt: config["compute"]["mem_mb"] * attempt,
        runtime=effort_minutes,
        gpu=method_gpus,
    params:
        spec=method_spec,
        seed=config["seed"],
        attack=canonical(STUDY.attack_settings()),
        effort=canonical(STUDY.attack_effort_settings()),
        stems=effort_stems,
    script:
        "../scripts/attack_effort.py"


rule summarise_attack_effort:
    input:
        effort_targets,
    output:
        csv="results/tables/attack_effort.csv",
        md="results/tables/attack_effort.md",
    log:
        "results/logs/summarise_attack_effort.log",
    benchmark:
        "results/benchmarks/summarise_attack_effort.tsv"
    conda:
        "../../envs/recon.yaml"
    params:
        tolerance_db=config["findings"]["attack_effort_tolerance_db"],
    script:
        "../scripts/summarise_attack_effort.py"
