"""Rule probe_features: one variant reconstructs the featured slices of one volume; whole-image quality and
the recovery of every feature (robustcs.features.feature_metrics)."""

import dataclasses
import json

import h5py
import pandas as pd

from robustcs.features import Feature, feature_metrics
from robustcs.fastmri_io import DataValidationError
from robustcs.methods import load_method
from robustcs.metrics import magnitude_crop, slice_metrics
from robustcs.recon_io import job_slices, write_reconstruction
from robustcs.util import TqdmToLogger, atomic_path, script_logger, torch_setup

log = script_logger(snakemake.log[0])
device = torch_setup(snakemake.threads, log)
inp, out, w, params = snakemake.input, snakemake.output, snakemake.wildcards, snakemake.params
method = load_method(w.method, params.spec, device, model_path=inp.get("model"), seed=params.seed or 0)
progress = TqdmToLogger(log)

with h5py.File(inp.featured, "r") as f:
    slices = f["slices"][()].tolist()
    kspaces, targets = f["kspace"][()], f["reconstruction_rss"][()]
    placed = json.loads(f.attrs["features"])
rows, magnitudes = [], []
items = {item.slice: item for item in job_slices(inp, w.stem, count=len(slices))}
for i, s in enumerate(slices):
    if s not in items:
        raise DataValidationError(inp.featured, "slices", f"slice {s} is not among the central slices {sorted(items)}")
    item = dataclasses.replace(items[s], kspace=kspaces[i], target=targets[i])
    magnitude = magnitude_crop(method.reconstruct(item, tqdm_file=progress)[0], item.target_shape)
    magnitudes.append(magnitude)
    quality = slice_metrics(item.target, magnitude, item.maxval)
    features = [Feature(**d) for d in placed[i]]
    for metrics in feature_metrics(item.target, magnitude, features, params.margin):
        rows.append({"dataset": w.dataset, "mask": w.mask, "method": w.method, "family": method.family,
                     "stem": w.stem, "slice": s, **metrics, **quality})
    log.info("%s[%d]: SSIM %.4f, feature MSE %s", w.stem, s, quality["ssim"],
             [round(r["mse_feature"], 3) for r in rows[-len(features):]])
write_reconstruction(out.h5, slices, magnitudes, None, method.attrs())
with atomic_path(out.csv, suffix=".csv") as tmp:
    pd.DataFrame(rows).to_csv(tmp, index=False)
