# Input functions and settings for rules/shifts.smk, included at its top: Snakemake's lint asks that no file
# define both functions and rules.


from argparse import Namespace


def shift_eval_inputs(wildcards):
    """Per-variant evaluation tables of both sides of every shift of the fit (and of each filter on its source)."""
    out = []
    for cfg in STUDY.fitted_shifts().values():
        sides = [(cfg["source"], cfg["mask"])]
        if cfg["kind"] != "filtered":
            sides.append((cfg["target"], cfg["target_mask"]))
        out += [
            paths.EVAL.format(dataset=d, mask=m, method=method)
            for d, m in sides
            for method in STUDY.evaluated_methods()
        ]
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
    return [
        paths.TTT.format(shift=shift, method=method, part=p) + ".csv"
        for shift in config["ttt"]["shifts"]
        for p in parts(STUDY.shift_pairs()[shift]["target"], [split])
        for method in config["ttt"]["methods"]
    ]


def shift_intermediates(wildcards):
    evals = shift_eval_inputs(wildcards)
    return evals + recon_intermediates(paths.EVAL, evals, config["evaluation"]["split"])


def ttt_intermediates(wildcards):
    return part_results(paths.TTT, ttt_targets(wildcards), ttt_inputs)
