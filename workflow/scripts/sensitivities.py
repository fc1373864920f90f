"""Rule sensitivities: ESPIRiT maps for every used slice of every file of a part, under one mask (one HDF5
group per file: sens [S, C, H, W], slices [S])."""

from dataclasses import asdict

import h5py
import numpy as np
from tqdm import tqdm

from robustcs.recon_io import load_mask, manifest_rows
from robustcs import params as decode
from robustcs.sensitivities import espirit_maps
from robustcs.util import TqdmToLogger, atomic_path, script_logger

log = script_logger(snakemake.log[0])
spec = decode.espirit(snakemake.params.espirit)
inp = snakemake.input
with atomic_path(snakemake.output[0], suffix=".h5") as tmp, h5py.File(tmp, "w") as out:
    for stem in snakemake.params.stems:
        rows = manifest_rows(inp.manifest, stem)
        slices = [int(row["slice"]) for row in rows]
        mask = load_mask(inp.masks, stem)[0].astype(bool)
        with h5py.File(rows[0]["path"], "r") as f:
            kspace = f["kspace"]
            maps = np.stack([espirit_maps(kspace[s], mask, spec)
                             for s in tqdm(slices, file=TqdmToLogger(log), mininterval=5, desc=f"ESPIRiT {stem}")])
        group = out.create_group(stem)
        group.create_dataset("sens", data=maps, chunks=(1, *maps.shape[1:]))
        group.create_dataset("slices", data=np.asarray(slices, dtype=np.int32))
        log.info("%s: maps for %d slices, shape %s", stem, len(slices), maps.shape)
    out.attrs.update(asdict(spec))
