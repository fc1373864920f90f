"""Where every result lives: one pattern per kind of file, used by the rules (as outputs, with wildcards) and
by input functions and scripts (``pattern.format(...)``). Paths are relative to the working directory."""

import re

DOWNLOAD = "results/downloads/{dataset}/{archive}"
DOWNLOADS = "results/downloads/{dataset}"
MANIFEST = "results/data/{dataset}/manifest.csv"
MASK = "results/data/{dataset}/masks/{mask}.h5"
SENS = "results/data/{dataset}/sens/{mask}/{part}.h5"  # the maps of a part's files, one HDF5 group per file
MODEL = "results/models/{dataset}/{mask}/{method}/model.pt"
HISTORY = "results/models/{dataset}/{mask}/{method}/history.csv"
CHECKPOINTS = "results/checkpoints/{dataset}/{mask}/{method}"
# a published state dict (a variant's checkpoint.url), per variant; '_' keeps it apart from any dataset's downloads
PRETRAINED_DOWNLOAD = "results/downloads/_pretrained/{method}/{archive}"
RECON = "results/recon/{dataset}/{mask}/{method}/{part}.h5"  # one HDF5 group per file of the part
RECON_SCORES = "results/recon/{dataset}/{mask}/{method}/{part}.csv"  # their per-slice SSIM, PSNR, NMSE
EVAL = "results/eval/{dataset}/{mask}/{method}.csv"
TUNING = "results/tuning/{dataset}/{mask}/{method}.csv"
ATTACK = "results/attack/{dataset}/{mask}/{method}/{part}"  # .h5 (a group per file of the part) and .csv
ATTACK_EFFORT = "results/attack_effort/{dataset}/{mask}/{method}.csv"  # the reruns with more steps (attacks.effort)
FEATURED = "results/features/{dataset}/{mask}/_data/{part}.h5"  # a group per file of the part
FEATURES = "results/features/{dataset}/{mask}/{method}/{part}"  # .h5 (a group per file) and .csv
PATHOLOGY = "results/pathology/{dataset}/{mask}/{method}/{stem}.csv"
TTT = "results/ttt/{shift}/{method}/{part}"  # a part of the target's test split: .h5 (a group per file) and .csv
BENCHMARKS = "results/benchmarks"  # every job's benchmark file (benchmark() below), summed by summarise_runtime
README_DIR = "results/readme"  # the `readme` target's files outside the checkout's demo run


PART = r"(train|val|test)-[0-9]+"  # the wildcard of a part: a split and the part's index in it


def volume_parts(split: str, stems: list[str], per_job: int) -> dict[str, list[str]]:
    """The files of one split in parts of ``per_job`` (sorted by stem): ``{"test-0": [...], "test-1": [...]}``.
    The jobs that run one cheap step on every file (ESPIRiT maps, reconstructions) take a part each: each job
    pays the start-up of a torch process once for ``per_job`` files (config ``compute.volumes_per_job``)."""
    if per_job < 1:
        raise ValueError(f"config compute.volumes_per_job: expected a positive integer, got {per_job!r}")
    ordered = sorted(stems)
    return {f"{split}-{i // per_job}": ordered[i : i + per_job] for i in range(0, len(ordered), per_job)}


def wildcards_of(pattern: str, path: str) -> dict[str, str]:
    """The wildcard values of ``path``, one of ``pattern``'s paths (e.g. RECON): {"dataset": ..., "part": ...}."""
    regex = re.sub(r"\\\{(\w+)\\\}", lambda m: f"(?P<{m.group(1)}>[^/]+)", re.escape(pattern))
    match = re.fullmatch(regex, str(path))
    if match is None:
        raise ValueError(f"{path} is not a path of the pattern {pattern}")
    return match.groupdict()


def table(name: str) -> str:
    """A summary table, e.g. ``table("clean.csv")``."""
    return f"results/tables/{name}"


def figure(name: str, ext: str) -> str:
    """A figure, e.g. ``figure("shifts", "png")``."""
    return f"results/figures/{name}.{ext}"


def log(rule: str, key: str | None = None) -> str:
    """The log of one job: ``log("attack", "{dataset}/{mask}/{method}/{part}")``; a rule with one job may omit
    the key (``log("summarise_clean")``: results/logs/summarise_clean.log)."""
    return f"results/logs/{rule}.log" if key is None else f"results/logs/{rule}/{key}.log"


def benchmark(rule: str, key: str | None = None) -> str:
    """The benchmark file of one job, named as its log (``log``)."""
    return f"{BENCHMARKS}/{rule}.tsv" if key is None else f"{BENCHMARKS}/{rule}/{key}.tsv"
