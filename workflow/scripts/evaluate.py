"""Rule evaluate: per-slice SSIM / PSNR / NMSE of one method on one dataset and mask (fastMRI conventions)."""

import h5py
import pandas as pd

from robustcs.fastmri_io import DataValidationError
from robustcs.ingest import read_manifest
from robustcs.metrics import slice_metrics
from robustcs.recon_io import read_reconstruction
from robustcs.util import atomic_path, script_logger

log = script_logger(snakemake.log[0])
w = snakemake.wildcards
table = read_manifest(snakemake.input.manifest)
rows = []
for recon_path in snakemake.input.recons:
    stem = recon_path.rsplit("/", 1)[-1].removesuffix(".h5")
    info = table[table["stem"] == stem]
    slices, recons, attrs = read_reconstruction(recon_path)
    expected = sorted(info["slice"].astype(int))
    if sorted(slices) != expected:
        raise DataValidationError(recon_path, "slices", f"has slices {slices}, the manifest lists {expected}")
    family, seconds = str(attrs["family"]), float(attrs["seconds"])
    maxval = float(info["max"].iloc[0])
    with h5py.File(info["path"].iloc[0], "r") as f:
        for s, recon in zip(slices, recons):
            metrics = slice_metrics(f["reconstruction_rss"][s], recon, maxval)
            rows.append({"dataset": w.dataset, "mask": w.mask, "method": w.method, "family": family,
                         "stem": stem, "slice": s, **metrics, "seconds": seconds})
result = pd.DataFrame(rows)
with atomic_path(snakemake.output[0], suffix=".csv") as tmp:
    result.to_csv(tmp, index=False)
log.info("%s on %s/%s: %d slices, SSIM %.4f", w.method, w.dataset, w.mask, len(result), result["ssim"].mean())
