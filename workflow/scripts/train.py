"""Rule train: one U-Net or VarNet variant, with a resumable checkpoint after every epoch.

The checkpoint lives outside the rule's outputs (Snakemake deletes outputs before rerunning a job),
so a crashed or killed job resumes where it stopped; ``train`` resumes it only if it was written for
the same variant, training mask, seed and manifest rows, and starts afresh otherwise. It is removed
after success.
"""

import contextlib
import os
import shutil
from pathlib import Path

from robustcs.ingest import read_manifest
from robustcs import params as decode
from robustcs.networks import save_model
from robustcs.recon_io import maps_index
from robustcs.training import train
from robustcs.util import TqdmToLogger, atomic_path, script_logger, torch_setup

log = script_logger(snakemake.log[0])
device = torch_setup(snakemake.threads, log)
params = snakemake.params
spec = decode.network(params.spec)
mask_spec = decode.mask(params.mask_spec)
manifest = read_manifest(snakemake.input.manifest)
if (manifest["split"] == "train").sum() == 0:
    raise ValueError(f"{snakemake.input.manifest}: dataset {snakemake.wildcards.dataset!r} has no training slices")
checkpoint_dir = Path(params.checkpoint_dir)
log.info("training %s; checkpoints in %s", snakemake.wildcards.method, checkpoint_dir)

# ESPIRiT maps of the training files (networks that read them), by file stem.
maps = maps_index(snakemake.input.maps) or None
model, history = train(spec, manifest, mask_spec, params.seed, checkpoint_dir, device,
                       tqdm_file=TqdmToLogger(log), log=log, maps=maps)
save_model(snakemake.output.model, spec, model, history)
with atomic_path(snakemake.output.history, suffix=".csv") as tmp:
    history.to_csv(tmp, index=False)
shutil.rmtree(checkpoint_dir, ignore_errors=True)
with contextlib.suppress(OSError):
    os.removedirs(checkpoint_dir.parent)  # and its parents, as far as they are empty
