"""Where every result lives: one pattern per kind of file, used by the rules (as outputs, with wildcards) and
by input functions and scripts (``pattern.format(...)``). Paths are relative to the working directory."""

DOWNLOAD = "results/downloads/{dataset}/{archive}"
DOWNLOADS = "results/downloads/{dataset}"
MANIFEST = "results/data/{dataset}/manifest.csv"
MASK = "results/data/{dataset}/masks/{mask}.h5"
SENS = "results/data/{dataset}/sens/{mask}/{stem}.h5"
MODEL = "results/models/{dataset}/{mask}/{method}/model.pt"
HISTORY = "results/models/{dataset}/{mask}/{method}/history.csv"
CHECKPOINTS = "results/checkpoints/{dataset}/{mask}/{method}"
RECON = "results/recon/{dataset}/{mask}/{method}/{stem}.h5"
EVAL = "results/eval/{dataset}/{mask}/{method}.csv"
TUNING = "results/tuning/{dataset}/{mask}/{method}.csv"
ATTACK = "results/attack/{dataset}/{mask}/{method}/{stem}"  # .h5 and .csv
FEATURED = "results/features/{dataset}/{mask}/_data/{stem}.h5"
FEATURES = "results/features/{dataset}/{mask}/{method}/{stem}"  # .h5 and .csv
PATHOLOGY = "results/pathology/{dataset}/{mask}/{method}/{stem}.csv"
TTT = "results/ttt/{shift}/{method}/{stem}"  # .h5 and .csv


def table(name: str) -> str:
    """A summary table, e.g. ``table("clean.csv")``."""
    return f"results/tables/{name}"


def figure(name: str, ext: str) -> str:
    return f"results/figures/{name}.{ext}"


def log(rule: str, key: str) -> str:
    """The log of one job: ``log("attack", "{dataset}/{mask}/{method}/{stem}")``."""
    return f"results/logs/{rule}/{key}.log"


def benchmark(rule: str, key: str) -> str:
    return f"results/benchmarks/{rule}/{key}.tsv"
