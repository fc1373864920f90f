# Robustness II: distribution shifts (in- vs out-of-distribution linear fit) and test-time training.
from argparse import Namespace


def shift_eval_inputs(wildcards):
    """Per-variant evaluation tables of both sides of every shift of the fit (and of each filter on its source)."""
    out = []
    for cfg in STUDY.fitted_shifts().values():
        sides = [(cfg["source"], cfg["mask"])]
        if cfg["kind"] != "filtered":
            sides.append((cfg["target"], cfg["target_mask"]))
        out += [paths.EVAL.format(dataset=d, mask=m, method=method) for d, m in sides
                for method in STUDY.evaluated_methods()]
        if cfg["kind"] == "filtered":
            out.append(paths.EVAL.format(dataset=cfg["source"], mask=cfg["mask"], method=cfg["filter"]))
    return sorted(set(out))


def ttt_settings(wildcards):
    return canonical(STUDY.ttt_settings(wildcards.shift))


def ttt_inputs(wildcards):
    """The variant trained on P and on Q, the files of a part of the target's test split, and their maps where the
    network reads them."""
    cfg, w = STUDY.shift_pairs()[wildcards.shift], wildcards
    d, m = cfg["target"], cfg["target_mask"]
    inputs = {
        "source_model": paths.MODEL.format(dataset=cfg["source"], mask=cfg["mask"], method=w.method),
        "target_model": paths.MODEL.format(dataset=d, mask=m, method=w.method),
        "volumes": part_volumes(Namespace(dataset=d, part=w.part)),
        "manifest": paths.MANIFEST.format(dataset=d),
        "masks": paths.MASK.format(dataset=d, mask=m),
    }
    if STUDY.needs_maps(w.method):
        inputs["sens"] = paths.SENS.format(dataset=d, mask=m, part=w.part)
    return inputs


def ttt_stems(wildcards):
    return part_stems(Namespace(dataset=STUDY.shift_pairs()[wildcards.shift]["target"], part=wildcards.part))


def ttt_targets(wildcards):
    split = config["evaluation"]["split"]
    return [paths.TTT.format(shift=shift, method=method, part=p) + ".csv" for shift in config["ttt"]["shifts"]
            for p in parts(STUDY.shift_pairs()[shift]["target"], [split]) for method in config["ttt"]["methods"]]


rule summarise_shifts:
    input:
        shift_eval_inputs,
    output:
        points="results/tables/shifts.csv",
        slices="results/tables/shift_slices.csv",
        fit=report("results/tables/shift_fit.csv", caption="../report/shift_fit.rst", category="5 Distribution shifts"),
        md="results/tables/shift_fit.md",
    params:
        pairs=lambda w: canonical(STUDY.fitted_shifts()),
        methods=lambda w: sorted(STUDY.evaluated_methods()),  # order-free: reordering the config reruns nothing
        bootstrap=STUDY.bootstrap,
        seed=config["seed"],
        margin=config["findings"]["shift_margin"],  # each group's verdict (schema defaults fill the block)
        min_volumes=config["findings"]["min_volumes"],
    log:
        "results/logs/summarise_shifts.log",
    benchmark:
        "results/benchmarks/summarise_shifts.tsv",
    conda:
        "../../envs/recon.yaml"
    script:
        "../scripts/summarise_shifts.py"


rule ttt:
    input:
        unpack(ttt_inputs),
    output:
        csv=paths.TTT + ".csv",
        h5=paths.TTT + ".h5",
    wildcard_constraints:
        method=STUDY.method_regex(STUDY.trained_methods()),
    params:
        settings=ttt_settings,
        stems=ttt_stems,
        spec=method_spec,
        seed=config["seed"],
    log:
        "results/logs/ttt/{shift}/{method}/{part}.log",
    benchmark:
        "results/benchmarks/ttt/{shift}/{method}/{part}.tsv",
    threads: config["compute"]["threads"]
    resources:
        mem_mb=lambda w, attempt: config["compute"]["mem_mb"] * attempt,  # more on each retry
        runtime=STUDY.minutes("ttt"),
        gpu=config["compute"]["gpus"],
    conda:
        "../../envs/recon.yaml"
    script:
        "../scripts/ttt.py"


rule summarise_ttt:
    input:
        ttt_targets,
    output:
        csv="results/tables/ttt.csv",
        summary=report("results/tables/ttt_summary.csv", caption="../report/ttt_table.rst",
                       category="6 Test-time training"),
        md="results/tables/ttt_summary.md",
    params:
        bootstrap=STUDY.bootstrap,
        seed=config["seed"],
    log:
        "results/logs/summarise_ttt.log",
    benchmark:
        "results/benchmarks/summarise_ttt.tsv",
    conda:
        "../../envs/recon.yaml"
    script:
        "../scripts/summarise_ttt.py"
