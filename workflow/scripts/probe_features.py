"""Rule probe_features: one variant reconstructs the featured slices of every volume of a part; whole-image
quality and the recovery of every feature (robustcs.features.feature_metrics)."""

import dataclasses

import h5py
import pandas as pd

from robustcs.features import Feature, feature_metrics
from robustcs.fastmri_io import DataValidationError
from robustcs.methods import load_method
from robustcs.metrics import magnitude_crop, slice_metrics
from robustcs.recon_io import job_slices, write_attrs, write_slices
from robustcs.result_files import read_featured
from robustcs.util import TqdmToLogger, atomic_path, open_h5, script_logger, torch_setup

log = script_logger(snakemake.log[0])
device = torch_setup(snakemake.threads, log)
inp, out, w, params = snakemake.input, snakemake.output, snakemake.wildcards, snakemake.params
method = load_method(w.method, params.spec, device, model_path=inp.get("model"), seed=params.seed or 0)
progress = TqdmToLogger(log)


def probe_file(stem: str, featured: h5py.File, group: h5py.Group) -> list[dict]:
    data = read_featured(featured, stem, inp.featured)
    slices, kspaces, targets, placed = data.slices.tolist(), data.kspace, data.target, data.features
    rows, magnitudes = [], []
    items = {item.slice: item for item in job_slices(inp, stem, count=len(slices))}
    for i, s in enumerate(slices):
        if s not in items:
            raise DataValidationError(inp.featured, f"{stem}/slices", f"slice {s} is not among the central slices "
                                      f"{sorted(items)}")
        item = dataclasses.replace(items[s], kspace=kspaces[i], target=targets[i])
        magnitude = magnitude_crop(method.reconstruct(item, tqdm_file=progress)[0], item.target_shape)
        magnitudes.append(magnitude)
        quality = slice_metrics(item.target, magnitude, item.maxval)
        features = [Feature(**d) for d in placed[i]]
        for metrics in feature_metrics(item.target, magnitude, features, params.margin):
            rows.append({"dataset": w.dataset, "mask": w.mask, "method": w.method, "family": method.family,
                         "stem": stem, "slice": s, **metrics, **quality})
        log.info("%s[%d]: SSIM %.4f, feature MSE %s", stem, s, quality["ssim"],
                 [round(r["mse_feature"], 3) for r in rows[-len(features):]])
    write_slices(group, slices, magnitudes, None)
    return rows


rows = []
with open_h5(inp.featured) as featured, atomic_path(out.h5, suffix=".h5") as tmp, h5py.File(tmp, "w") as f:
    for stem in params.stems:
        rows += probe_file(stem, featured, f.create_group(stem))
    write_attrs(f, method.attrs())
with atomic_path(out.csv, suffix=".csv") as tmp:
    pd.DataFrame(rows).to_csv(tmp, index=False)
