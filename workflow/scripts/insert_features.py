"""Rule insert_features: small features added to the central test slices of every volume of a part, k-space
re-simulated with the slice's ESPIRiT maps (its noise and mask stay as they are); a group per volume."""

from dataclasses import asdict

import h5py
import numpy as np

from robustcs import params as decode
from robustcs.features import insert_features, place_features
from robustcs.recon_io import job_slices, write_attrs
from robustcs.result_files import FeaturedGroup, write_featured
from robustcs.util import atomic_path, script_logger, stable_seed

log = script_logger(snakemake.log[0])
inp = snakemake.input
spec = decode.features(snakemake.params.features)


def feature_file(stem: str, group: h5py.Group) -> None:
    slices, kspaces, targets, originals, placed = [], [], [], [], []
    for item in job_slices(inp, stem, count=spec.slices):
        rng = np.random.default_rng(stable_seed(snakemake.params.seed, "features", stem, item.slice))
        features = place_features(item.target, spec, rng)
        # contrast relative to this slice's reference maximum (the study's max(RSS)), not the volume's
        kspace, target = insert_features(item.kspace, item.sens, features, item.target_shape, float(item.target.max()))
        slices.append(item.slice)
        kspaces.append(kspace)
        targets.append(target)
        originals.append(item.target)
        placed.append([asdict(f) for f in features])
        log.info("%s[%d]: %d features at %s", stem, item.slice, len(features), [(f.row, f.col) for f in features])
    if not slices:
        raise ValueError(f"{stem}: no slices to put features in (manifest {inp.manifest})")
    write_featured(group, FeaturedGroup(slices, kspaces, targets, originals, placed))


with atomic_path(snakemake.output[0], suffix=".h5") as tmp, h5py.File(tmp, "w") as f:
    for stem in snakemake.params.stems:
        feature_file(stem, f.create_group(stem))
    write_attrs(f, {"spec": spec.as_dict()})
