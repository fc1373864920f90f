"""Rule probe_pathology: one variant reconstructs the annotated slices of one test file; whole-slice quality and
the recovery inside every box of the annotation file (robustcs.features.box_metrics)."""

import pandas as pd

from robustcs import params as decode
from robustcs.annotations import boxes_of, read_boxes
from robustcs.fastmri_io import DataValidationError
from robustcs.features import box_metrics
from robustcs.methods import load_method
from robustcs.metrics import magnitude_crop, slice_metrics
from robustcs.util import TqdmToLogger, atomic_path, script_logger, torch_setup
from robustcs.recon_io import job_slices, manifest_slices

log = script_logger(snakemake.log[0])
device = torch_setup(snakemake.threads, log)
inp, w, params = snakemake.input, snakemake.wildcards, snakemake.params
settings = decode.pathology(params.settings)
boxes = boxes_of(read_boxes(inp.annotations, settings.labels), w.stem)
method = load_method(w.method, params.spec, device, model_path=inp.get("model"), seed=params.seed or 0)
progress = TqdmToLogger(log)

wanted = sorted({b.slice for b in boxes})
used, _ = manifest_slices(inp.manifest, w.stem)
missing = [s for s in wanted if s not in used]
if missing:
    raise DataValidationError(inp.annotations, "slice", f"{w.stem} slices {missing} are annotated but not in the "
                              f"manifest of dataset {w.dataset} (its slices: {used}); give that dataset "
                              "`slices: all` (config datasets.<name>.slices)")
rows = []
for item in job_slices(inp, w.stem, only=wanted):  # the annotated slices alone, one at a time
    s = item.slice
    magnitude = magnitude_crop(method.reconstruct(item, tqdm_file=progress)[0], item.target_shape)
    quality = slice_metrics(item.target, magnitude, item.maxval)
    on_slice = [b for b in boxes if b.slice == s]
    try:
        bounds = [b.rows_cols(item.target.shape, settings.flip_vertical) for b in on_slice]
    except ValueError as err:
        raise DataValidationError(inp.annotations, "box", str(err)) from None
    for box, (r0, r1, c0, c1), metrics in zip(on_slice, bounds, box_metrics(item.target, magnitude, bounds)):
        rows.append({"dataset": w.dataset, "mask": w.mask, "method": w.method, "family": method.family,
                     "stem": w.stem, "slice": s, "label": box.label, "line": box.line,
                     "row0": r0, "row1": r1, "col0": c0, "col1": c1, **metrics, **quality})
    log.info("%s[%d]: SSIM %.4f, box MSE %s", w.stem, s, quality["ssim"], [round(r["mse_box"], 3) for r in rows[-len(on_slice):]])
with atomic_path(snakemake.output[0], suffix=".csv") as tmp:
    pd.DataFrame(rows).to_csv(tmp, index=False)
