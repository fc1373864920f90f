# Robustness II: distribution shifts (in- vs out-of-distribution linear fit) and test-time training.


include: "inputs/shifts.smk"


rule summarise_shifts:
    input:
        shift_eval_inputs,
    output:
        points=paths.table("shifts.csv"),
        slices=paths.table("shift_slices.csv"),
        fit=report(paths.table("shift_fit.csv"), caption="../report/shift_fit.rst", category="5 Distribution shifts"),
        md=paths.table("shift_fit.md"),
    log:
        paths.log("summarise_shifts"),
    benchmark:
        paths.benchmark("summarise_shifts")
    localrule: True
    conda:
        "../../envs/recon.yaml"
    params:
        pairs=lambda w: canonical(STUDY.fitted_shifts()),
        methods=lambda w: sorted(STUDY.evaluated_methods()),  # order-free: reordering the config reruns nothing
        bootstrap=STUDY.bootstrap,
        seed=config["seed"],
        margin=config["findings"]["shift_margin"],  # each group's verdict (schema defaults fill the block)
        min_volumes=config["findings"]["min_volumes"],
    script:
        "../scripts/summarise_shifts.py"


rule ttt:
    input:
        unpack(ttt_inputs),
    output:
        csv=f"{paths.TTT}.csv",
        h5=f"{paths.TTT}.h5",
    log:
        paths.log("ttt", "{shift}/{method}/{part}"),
    benchmark:
        paths.benchmark("ttt", "{shift}/{method}/{part}")
    wildcard_constraints:
        method=STUDY.method_regex(STUDY.trained_methods()),
    conda:
        "../../envs/recon.yaml"
    threads: config["compute"]["threads"]
    resources:
        mem_mb=lambda w, attempt: config["compute"]["mem_mb"] * attempt,  # more on each retry
        runtime=STUDY.minutes("ttt"),
        gpu=config["compute"]["gpus"],
    params:
        settings=ttt_settings,
        stems=ttt_stems,
        spec=method_spec,
        seed=config["seed"],
    script:
        "../scripts/ttt.py"


rule summarise_ttt:
    input:
        ttt_targets,
    output:
        csv=paths.table("ttt.csv"),
        summary=report(
            paths.table("ttt_summary.csv"), caption="../report/ttt_table.rst", category="6 Test-time training"
        ),
        md=paths.table("ttt_summary.md"),
    log:
        paths.log("summarise_ttt"),
    benchmark:
        paths.benchmark("summarise_ttt")
    localrule: True
    conda:
        "../../envs/recon.yaml"
    params:
        bootstrap=STUDY.bootstrap,
        seed=config["seed"],
    script:
        "../scripts/summarise_ttt.py"


rule plot_shifts:
    input:
        points=paths.table("shifts.csv"),
        fit=paths.table("shift_fit.csv"),
    output:
        png=report(paths.figure("shifts", "png"), caption="../report/shifts.rst", category="5 Distribution shifts"),
        pdf=paths.figure("shifts", "pdf"),
    log:
        paths.log("plot", "shifts"),
    benchmark:
        paths.benchmark("plot", "shifts")
    localrule: True
    conda:
        "../../envs/recon.yaml"
    params:
        plots=lambda w: plot_options(),
        pairs=lambda w: canonical(STUDY.fitted_shifts()),  # the panel titles
    script:
        "../scripts/plot_shifts.py"


rule plot_ttt:
    input:
        paths.table("ttt_summary.csv"),
    output:
        png=report(paths.figure("ttt", "png"), caption="../report/ttt.rst", category="6 Test-time training"),
        pdf=paths.figure("ttt", "pdf"),
    log:
        paths.log("plot", "ttt"),
    benchmark:
        paths.benchmark("plot", "ttt")
    localrule: True
    conda:
        "../../envs/recon.yaml"
    params:
        plots=lambda w: plot_options(),
        pairs=lambda w: canonical(STUDY.shift_pairs()),  # the panel titles
    script:
        "../scripts/plot_ttt.py"
