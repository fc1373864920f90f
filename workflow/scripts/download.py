"""Rule download: fetch one archive, resume a partial download, verify its SHA-256."""

from robustcs.download import download
from robustcs.util import script_logger

log = script_logger(snakemake.log[0])
state = {"next": 0}


def report(done, total):
    if done >= state["next"]:
        log.info("%s: %.1f MiB%s", snakemake.params.url, done / 2**20, f" of {total / 2**20:.1f}" if total else "")
        state["next"] = done + 256 * 2**20


try:
    path = download(snakemake.params.url, snakemake.output[0], snakemake.params.sha256, progress=report)
    log.info("downloaded and verified %s", path)
except Exception:
    log.exception("download failed")
    raise
