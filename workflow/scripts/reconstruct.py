"""Rule reconstruct: one method variant applied to every used slice of every volume of a part
(robustcs.methods); one group per volume in the HDF5 output, and each slice's SSIM / PSNR / NMSE against the
reference (fastMRI conventions) in the CSV output, scored here, where the torch process is already running."""

import csv

from robustcs.methods import load_method
from robustcs.recon_io import part_slices, run_reconstruction
from robustcs.util import TqdmToLogger, atomic_path, script_logger, torch_setup

log = script_logger(snakemake.log[0])
device = torch_setup(snakemake.threads, log)
inp, out, w, params = snakemake.input, snakemake.output, snakemake.wildcards, snakemake.params
method = load_method(w.method, params.spec, device, model_path=inp.get("model"), seed=params.get("seed", 0))
progress = TqdmToLogger(log)
scores = run_reconstruction(
    part_slices(inp, list(params.stems)),
    lambda item: method.reconstruct(item, tqdm_file=progress),
    out.h5, method.attrs(), log, desc=f"{method.family} {w.method} {w.part}",
    many=lambda items: method.reconstruct_many(items, tqdm_file=progress),
    batch=getattr(method, "reconstruct_batch", 1),  # ConvDecoder fit_batch: slices fitted at once
)
rows = [{"dataset": w.dataset, "mask": w.mask, "method": w.method, "family": method.family, **row} for row in scores]
with atomic_path(out.csv, suffix=".csv") as tmp, open(tmp, "w", newline="") as f:
    writer = csv.DictWriter(f, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
