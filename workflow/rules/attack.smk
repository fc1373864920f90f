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
        paths.log("attack", "{dataset}/{mask}/{method}/{part}"),
    benchmark:
        paths.benchmark("attack", "{dataset}/{mask}/{method}/{part}")
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
            paths.table("adversarial.csv"),
            caption="../report/adversarial_table.rst",
            category="3 Adversarial perturbations",
        ),
        md=paths.table("adversarial.md"),
        drops=report(
            paths.table("adversarial_drops.csv"),
            caption="../report/adversarial_drops.rst",
            category="3 Adversarial perturbations",
        ),
        drops_md=paths.table("adversarial_drops.md"),
    log:
        paths.log("summarise_attacks"),
    benchmark:
        paths.benchmark("summarise_attacks")
    localrule: True
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
            paths.table("attack_verdicts.csv"),
            caption="../report/attack_verdicts.rst",
            category="3 Adversarial perturbations",
        ),
        md=paths.table("attack_verdicts.md"),
    log:
        paths.log("summarise_attack_verdicts"),
    benchmark:
        paths.benchmark("summarise_attack_verdicts")
    localrule: True
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
        csv=paths.ATTACK_EFFORT,
    log:
        paths.log("attack_effort", "{dataset}/{mask}/{method}"),
    benchmark:
        paths.benchmark("attack_effort", "{dataset}/{mask}/{method}")
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
        csv=paths.table("attack_effort.csv"),
        md=paths.table("attack_effort.md"),
    log:
        paths.log("summarise_attack_effort"),
    benchmark:
        paths.benchmark("summarise_attack_effort")
    localrule: True
    conda:
        "../../envs/recon.yaml"
    params:
        tolerance_db=config["findings"]["attack_effort_tolerance_db"],
    script:
        "../scripts/summarise_attack_effort.py"


rule plot_adversarial:
    input:
        paths.table("adversarial.csv"),
    output:
        png=report(
            paths.figure("adversarial", "png"),
            caption="../report/adversarial.rst",
            category="3 Adversarial perturbations",
        ),
        pdf=paths.figure("adversarial", "pdf"),
    log:
        paths.log("plot", "adversarial"),
    benchmark:
        paths.benchmark("plot", "adversarial")
    localrule: True
    conda:
        "../../envs/recon.yaml"
    params:
        plots=lambda w: plot_options(),
    script:
        "../scripts/plot_adversarial.py"


rule plot_attack_examples:
    input:
        unpack(attack_example_inputs),
    output:
        png=report(
            paths.figure("adversarial_examples", "png"),
            caption="../report/adversarial_examples.rst",
            category="3 Adversarial perturbations",
        ),
        pdf=paths.figure("adversarial_examples", "pdf"),
    log:
        paths.log("plot", "adversarial_examples"),
    benchmark:
        paths.benchmark("plot", "adversarial_examples")
    localrule: True
    conda:
        "../../envs/recon.yaml"
    params:
        plots=lambda w: plot_options(),
        case=lambda w: list(example_case("attacks")),
    script:
        "../scripts/plot_attack_examples.py"
