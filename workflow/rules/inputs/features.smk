# Input functions and settings for rules/features.smk, included at its top: Snakemake's lint asks that no file
# define both functions and rules.


from robustcs.annotations import annotated_stems


def feature_targets(wildcards):
    return experiment_targets("features", f"{paths.FEATURES}.csv")


def pathology_targets(wildcards):
    """One table per (dataset, mask, variant, annotated test file) of the pathology block."""
    block, split = STUDY.experiment("pathology"), config["evaluation"]["split"]
    annotated = set(annotated_stems(STUDY.pathology_boxes()))
    out = []
    for d in block["datasets"]:
        files = [s for s in stems(d, [split]) if s in annotated]
        if not files:
            raise ValueError(
                f"config pathology.annotations: no annotated file of {block['annotations']} is in the "
                f"{split} split of dataset {d!r} (annotated: {sorted(annotated)[:5]}...)"
            )
        training = config.get("training") or {}
        if training.get("dataset"):
            seen = set(files) & set(stems(training["dataset"], ["train", "val"]))
            if seen:
                raise ValueError(
                    f"config pathology: annotated files {sorted(seen)[:5]} of dataset {d!r} are also "
                    f"training files of {training['dataset']!r}: the trained variants would be scored on "
                    "their own training data (fastMRI+ annotates train and val files alike)"
                )
        out += [
            paths.PATHOLOGY.format(dataset=d, mask=m, method=method, stem=s)
            for s in files
            for m in block["masks"]
            for method in block["methods"]
        ]
    return out


def feature_intermediates(wildcards):
    out = []
    for path in feature_targets(wildcards):
        out += part_results(paths.FEATURES, [path])
        out.append(paths.FEATURED.format(**paths.wildcards_of(f"{paths.FEATURES}.csv", path)))
    return out


def pathology_intermediates(wildcards):
    out = []
    for path in pathology_targets(wildcards):
        out += [path, *job_inputs(paths.PATHOLOGY, path)]
    return out


def feature_example_inputs(wildcards):
    dataset, mask, stem = example_case("features")
    part = part_of(dataset, stem)
    return {
        "featured": paths.FEATURED.format(dataset=dataset, mask=mask, part=part),
        "recons": [
            paths.FEATURES.format(dataset=dataset, mask=mask, method=m, part=part) + ".h5"
            for m in STUDY.example_methods("features")
        ],
    }
