"""Rule reconstruct_l1: ℓ1-wavelet sparse recovery (FISTA) with ESPIRiT maps, one variant of the λ grid."""

import json

import torch

from robustcs.l1wavelet import L1Spec, l1_wavelet_recon
from robustcs.physics import MultiCoilOperator, as_complex_tensor
from robustcs.recon_io import iter_slices, run_reconstruction
from robustcs.util import script_logger, torch_setup

log = script_logger(snakemake.log[0])
device = torch_setup(snakemake.threads, log)
inp, w = snakemake.input, snakemake.wildcards
spec = L1Spec.from_config(json.loads(snakemake.params.spec))


def method(item):
    op = MultiCoilOperator(item.mask, as_complex_tensor(item.sens, device))
    x = l1_wavelet_recon(as_complex_tensor(item.measured, device), op, spec)
    return x.abs().cpu().numpy(), x.cpu().numpy()


with torch.no_grad():
    run_reconstruction(
        iter_slices(inp.manifest, w.stem, inp.volume, inp.masks, inp.sens),
        method, snakemake.output[0], {"method": w.method, "family": "l1", "spec": spec.as_dict()}, log,
        desc=f"l1 {w.method} {w.stem}",
    )
