"""Rule evaluate: per-slice SSIM / PSNR / NMSE of one method on one dataset and mask (fastMRI conventions): the
scores the reconstruction jobs wrote for every part of the split, checked against the manifest (every used
slice of every file scored once) and gathered into one table, with the csv module: no torch start-up."""

import csv
from collections import defaultdict

from robustcs.fastmri_io import DataValidationError
from robustcs.recon_io import check_reconstruction, read_scores
from robustcs.util import atomic_path, script_logger

log = script_logger(snakemake.log[0])
w = snakemake.wildcards
with open(snakemake.input.manifest, newline="") as f:
    used = defaultdict(list)
    for row in csv.DictReader(f):
        used[row["stem"]].append(int(row["slice"]))
rows, fields = [], None
for path, h5 in zip(snakemake.input.recons, snakemake.input.h5, strict=True):
    part = read_scores(path)  # refuses a truncated or malformed file, naming it
    if part and fields is None:
        fields = list(part[0])
    scored = defaultdict(list)
    for row in part:
        scored[row["stem"]].append(int(row["slice"]))
    for stem, slices in scored.items():
        if stem not in used or sorted(slices) != sorted(used[stem]):
            raise DataValidationError(path, stem, f"scores slices {sorted(slices)}, the manifest lists {sorted(used.get(stem, []))}")
    check_reconstruction(h5, scored)  # and its reconstructions: readable, the same files and slices
    rows += part
if not rows:
    raise DataValidationError(snakemake.input.recons[0], None, "no scored slices")
rows.sort(key=lambda row: (row["stem"], int(row["slice"])))
with atomic_path(snakemake.output[0], suffix=".csv") as tmp, open(tmp, "w", newline="") as f:
    writer = csv.DictWriter(f, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
ssim = sum(float(row["ssim"]) for row in rows) / len(rows)
log.info("%s on %s/%s: %d slices, SSIM %.4f", w.method, w.dataset, w.mask, len(rows), ssim)
