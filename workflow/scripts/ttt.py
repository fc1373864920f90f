"""Rule ttt: for one shift P -> Q, one network variant and one part of Q's test split (compute.volumes_per_job
files), each central slice of each file reconstructed three ways: trained on P (P->Q), trained on P then
test-time trained on the slice (P->Q+TTT), and trained on Q (Q->Q, the reference); with ttt.reference_ttt also
trained on Q then test-time trained on the slice (Q->Q+TTT, same seed and settings); with ttt.ablation_hidden also
P->Q+TTT with the held-out points hidden from the network's input (the same draw); per-slice metrics (csv) and
images (h5, a group per file)."""

from dataclasses import replace

import h5py
import numpy as np
import pandas as pd

from robustcs import params as decode
from robustcs.methods import load_method
from robustcs.metrics import slice_metrics
from robustcs.recon_io import job_slices, write_attrs
from robustcs.tables import TTT_HIDDEN, TTT_REFERENCE, TTT_SETTINGS
from robustcs.ttt import adapt_slice
from robustcs.util import TqdmToLogger, atomic_path, script_logger, stable_seed, torch_setup

log = script_logger(snakemake.log[0])
device = torch_setup(snakemake.threads, log)
inp, out, w, params = snakemake.input, snakemake.output, snakemake.wildcards, snakemake.params
spec, slice_count, reference_ttt, ablation_hidden = decode.ttt(params.settings)
source = load_method(w.method, params.spec, device, model_path=inp.source_model)
target = load_method(w.method, params.spec, device, model_path=inp.target_model)
progress = TqdmToLogger(log)
log.info("TTT of %s on shift %s (%s: %d files): %s", w.method, w.shift, w.part, len(params.stems), spec)


def adapt_file(stem: str) -> tuple[list[dict], dict]:
    """The reconstructions of each central slice of one file: its csv rows and its HDF5 datasets."""
    # the order summarise_ttt reads
    settings = TTT_SETTINGS + ((TTT_REFERENCE,) if reference_ttt else ()) + ((TTT_HIDDEN,) if ablation_hidden else ())
    rows, images, slices, curves = [], {k: [] for k in settings}, [], []
    for item in job_slices(inp, stem, count=slice_count):
        base = {"shift": w.shift, "method": w.method, "family": source.family, "stem": item.stem, "slice": item.slice}
        seed = stable_seed(params.seed, "ttt", w.method, item.stem, item.slice)
        adapted = {"p_q_ttt": adapt_slice(source.model, source.spec, item, spec, seed, device, progress)}
        if reference_ttt:  # the same draw and settings, from the network trained on Q
            adapted[TTT_REFERENCE] = adapt_slice(target.model, target.spec, item, spec, seed, device, progress)
        if ablation_hidden:  # the same draw, the held-out points removed from the network's input as well
            adapted[TTT_HIDDEN] = adapt_slice(source.model, source.spec, item, replace(spec, hide_holdout=True), seed,
                                              device, progress)
        recons = {"p_q": source.reconstruct(item)[0], "q_q": target.reconstruct(item)[0],
                  **{setting: result.magnitude for setting, result in adapted.items()}}
        ssim = {}
        for setting in settings:
            metrics = slice_metrics(item.target, recons[setting], item.maxval)
            extra = ({"steps": adapted[setting].steps, "stopped_early": adapted[setting].stopped_early}
                     if setting in adapted else {})
            rows.append({**base, "setting": setting, **metrics, **extra})
            images[setting].append(np.asarray(recons[setting], np.float32))
            ssim[setting] = metrics["ssim"]
        result = adapted["p_q_ttt"]
        log.info("%s[%d]: SSIM P->Q %.4f, P->Q+TTT %.4f (%d steps%s), Q->Q %.4f%s", item.stem, item.slice,
                 ssim["p_q"], ssim["p_q_ttt"], result.steps, ", stopped by self-validation" if result.stopped_early else "",
                 ssim["q_q"], "".join(f", {label} {ssim[key]:.4f} ({adapted[key].steps} steps)" for key, label in
                                      ((TTT_REFERENCE, "Q->Q+TTT"), (TTT_HIDDEN, "P->Q+TTT hidden")) if key in adapted))
        slices.append(item.slice)
        curves.append((result.train_loss, result.val_error))
    if not slices:
        raise ValueError(f"{stem}: no slices to adapt to (manifest {inp.manifest})")
    data = {"slices": np.asarray(slices, dtype=np.int32), **{k: np.stack(v) for k, v in images.items()}}
    # per slice and step: P->Q+TTT's self-supervised loss and held-out error (NaN after the slice's last step)
    length = max(len(v) for _, v in curves)
    for i, key in enumerate(("train_loss", "val_error")):
        data[key] = np.full((len(curves), length), np.nan)
        for j, curve in enumerate(curves):
            data[key][j, : len(curve[i])] = curve[i]
    return rows, data


rows = []
with atomic_path(out.h5, suffix=".h5") as tmp, h5py.File(tmp, "w") as f:
    for stem in params.stems:
        file_rows, data = adapt_file(stem)
        rows += file_rows
        group = f.create_group(stem)
        for key, value in data.items():
            group.create_dataset(key, data=value)
    write_attrs(f, {"method": w.method, "shift": w.shift, "ttt": spec.as_dict(),
                    "source_model": inp.source_model, "target_model": inp.target_model})
with atomic_path(out.csv, suffix=".csv") as tmp:
    pd.DataFrame(rows).to_csv(tmp, index=False)
