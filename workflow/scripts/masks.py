"""Rule masks: one seeded fastMRI mask per file of a dataset, stored for every later rule."""

from dataclasses import asdict

import h5py
import numpy as np

from robustcs.ingest import read_manifest
from robustcs import params as decode
from robustcs.masks import file_mask, realised_acceleration
from robustcs.util import atomic_path, script_logger

log = script_logger(snakemake.log[0])
spec = decode.mask(snakemake.params.spec)
table = read_manifest(snakemake.input[0]).drop_duplicates("stem")
with atomic_path(snakemake.output[0], suffix=".h5") as tmp, h5py.File(tmp, "w") as f:
    f.attrs.update(asdict(spec))
    for row in table.itertuples():
        mask, num_low, used_seed = file_mask(spec, snakemake.wildcards.mask, row.stem, int(row.width), snakemake.params.seed)
        d = f.create_dataset(row.stem, data=mask.astype(np.uint8))
        d.attrs.update(num_low_frequencies=num_low, seed=used_seed, acceleration=realised_acceleration(mask))
        log.info("%s: %d of %d lines, acceleration %.3f", row.stem, mask.sum(), mask.size, realised_acceleration(mask))
