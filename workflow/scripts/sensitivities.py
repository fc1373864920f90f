"""Rule sensitivities: ESPIRiT maps for every used slice of one file, under one mask."""

import json

import h5py
import numpy as np
from tqdm import tqdm

from robustcs.ingest import read_manifest
from robustcs.sensitivities import EspiritSpec, espirit_maps
from robustcs.util import TqdmToLogger, atomic_path, script_logger

log = script_logger(snakemake.log[0])
params = json.loads(snakemake.params.espirit)
spec = EspiritSpec(**params)
stem = snakemake.wildcards.stem
table = read_manifest(snakemake.input.manifest)
slices = table.loc[table["stem"] == stem, "slice"].astype(int).tolist()
with h5py.File(snakemake.input.masks, "r") as f:
    mask = f[stem][()].astype(bool)
with h5py.File(snakemake.input.volume, "r") as f:
    kspace = f["kspace"]
    maps = np.stack(
        [
            espirit_maps(kspace[s], mask, spec)
            for s in tqdm(slices, file=TqdmToLogger(log), mininterval=5, desc=f"ESPIRiT {stem}")
        ]
    )
with atomic_path(snakemake.output[0], suffix=".h5") as tmp, h5py.File(tmp, "w") as f:
    f.create_dataset("sens", data=maps, chunks=(1, *maps.shape[1:]))
    f.create_dataset("slices", data=np.asarray(slices, dtype=np.int32))
    f.attrs.update(params)
log.info("%s: maps for %d slices, shape %s", stem, len(slices), maps.shape)
