"""Start-up checks of the sizes a config asks of its data (:func:`check_limits`, run by ``Study.check``): what would
otherwise be found, or silently capped, only when the jobs read the files.

The demo datasets are generated from the config, so their slices per volume, test volumes and image size are known
at start-up: a slice count beyond them is an error naming both fields. Folder and archive datasets are not read here
(the study model imports the standard library only, and their files may not be downloaded yet): a job that is asked
for more central slices than a file has takes all of them and says so in its log (robustcs.recon_io.iter_slices);
the tables count the slices used (docs/checks.md).
"""

from __future__ import annotations


def demo_shape(config: dict, dataset: str) -> dict | None:
    """A demo dataset's used slices per volume, test volumes and image size; None for other kinds."""
    cfg = config["datasets"][dataset]
    if cfg["kind"] != "demo":
        return None
    from .specs import DemoSpec

    default, block = DemoSpec(), cfg["demo"]
    per_volume = block.get("slices_per_volume", default.slices_per_volume)
    chosen = cfg.get("slices")
    used = min(per_volume, chosen["middle"]) if isinstance(chosen, dict) else per_volume
    volumes = block.get("volumes") or default.volumes
    return {"slices": used, "per_volume": per_volume, "test": volumes.get("test", 0),
            "size": block.get("size", default.size)}


def _where(dataset: str, shape: dict, chosen) -> str:
    if isinstance(chosen, dict) and chosen["middle"] < shape["per_volume"]:
        return f"datasets.{dataset}.slices.middle"
    return f"datasets.{dataset}.demo.slices_per_volume"


def check_limits(study) -> None:
    """Slice and file counts of the experiments within the demo data they run on, features within its images;
    ValueError naming both config fields otherwise."""
    c = study.config
    for name, cfg in c["datasets"].items():
        shape = demo_shape(c, name)
        chosen = cfg.get("slices")
        if shape and isinstance(chosen, dict) and chosen["middle"] > shape["per_volume"]:
            raise ValueError(f"config datasets.{name}.slices.middle: {chosen['middle']} central slices of volumes "
                             f"that have {shape['per_volume']} (datasets.{name}.demo.slices_per_volume)")
    asks = []
    for block, default in (("attacks", 1), ("features", 2)):
        if block in c:
            count = (c[block] or {}).get("slices", default)
            asks += [(f"{block}.slices", count, d) for d in study.experiment(block)["datasets"]]
    if "ttt" in c:
        pairs = study.shift_pairs()
        asks += [("ttt.slices", c["ttt"].get("slices", 2), pairs[s]["target"]) for s in c["ttt"]["shifts"]]
    for key, count, dataset in asks:
        shape = demo_shape(c, dataset)
        if shape and count > shape["slices"]:
            raise ValueError(f"config {key}: {count} central slices per test volume, but the volumes of dataset "
                             f"{dataset!r} have {shape['slices']} ({_where(dataset, shape, c['datasets'][dataset].get('slices'))}"
                             f"); at most {shape['slices']}")
    _check_attack_effort(study)
    _check_feature_sizes(study)


#: Most attack steps of one attack, the effort check's reruns included: every attack allocates its loss history
#: (steps + 1 values per attacked item) when it starts (robustcs.attacks).
MAX_ATTACK_STEPS = 100_000


def _check_attack_effort(study) -> None:
    effort = study.attack_effort_settings()
    if not effort:
        return
    steps = study.attack_settings()["spec"].get("steps")
    if steps is not None and steps * max(effort["factors"]) > MAX_ATTACK_STEPS:
        raise ValueError(f"config attacks.effort.factors: {max(effort['factors'])} x attacks.steps {steps} = "
                         f"{steps * max(effort['factors'])} steps, more than {MAX_ATTACK_STEPS:,}")
    for dataset in study.experiment("attacks")["datasets"]:
        shape = demo_shape(study.config, dataset)
        if shape and effort["slices"] > shape["test"]:
            raise ValueError(f"config attacks.effort.slices: {effort['slices']} test files, but dataset {dataset!r} has "
                             f"{shape['test']} (datasets.{dataset}.demo.volumes.test)")


def _check_feature_sizes(study) -> None:
    """Each feature's window (size + 2 x margin) within a demo image, and all of a slice's windows (one per shape,
    size and contrast, a pixel apart) within its area: necessary, not sufficient (they must lie in the object)."""
    if "features" not in study.config:
        return
    spec = study.feature_settings()
    need = max(spec["sizes"]) + 2 * spec["margin"]
    copies = len(spec["shapes"]) * len(spec["contrasts"])
    area = sum(copies * (size + 2 * spec["margin"] + 1) ** 2 for size in spec["sizes"])
    for dataset in study.experiment("features")["datasets"]:
        shape = demo_shape(study.config, dataset)
        if shape and need > shape["size"]:
            raise ValueError(f"config features.sizes: a feature of {max(spec['sizes'])} px with its margin of "
                             f"{spec['margin']} px on each side ({need} px) does not fit the {shape['size']} px images "
                             f"of dataset {dataset!r} (datasets.{dataset}.demo.size)")
        if shape and area > shape["size"] ** 2:
            raise ValueError(f"config features: {copies * len(spec['sizes'])} features per slice (shapes x sizes x "
                             f"contrasts), whose windows with their margins cover {area} px², more than the "
                             f"{shape['size']}x{shape['size']} images of dataset {dataset!r} "
                             f"(datasets.{dataset}.demo.size); fewer or smaller features")
