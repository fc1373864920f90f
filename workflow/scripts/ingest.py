"""Rule ingest: build (demo), convert (Stanford) or collect (fastMRI) a dataset and validate it, several files at
a time when the rule has threads. The work runs under ``__main__`` only: the worker processes (started fresh)
import this script as ``__mp_main__`` and must not start an ingest of their own."""

from pathlib import Path

from tqdm import tqdm

from robustcs import params as decode, paths
from robustcs.ingest import build_manifest
from robustcs.util import TqdmToLogger, script_logger

if __name__ == "__main__":
    log = script_logger(snakemake.log[0])
    out = Path(snakemake.output[0])
    try:
        table = build_manifest(
            snakemake.wildcards.dataset,
            decode.plain(snakemake.params.cfg),
            out,
            work_dir=out.parent,
            downloads_dir=Path(paths.DOWNLOADS.format(dataset=snakemake.wildcards.dataset)),
            seed=snakemake.params.seed,
            logger=log,
            progress=lambda it: tqdm(it, file=TqdmToLogger(log), mininterval=5, desc="volumes"),
            workers=snakemake.threads,
        )
        log.info("manifest %s: %d slices from %d files", out, len(table), table["stem"].nunique())
    except Exception:
        log.exception("ingest of dataset %s failed", snakemake.wildcards.dataset)
        raise
