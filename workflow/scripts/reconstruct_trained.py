"""Rule reconstruct_trained: a trained U-Net or VarNet applied to each slice's undersampled k-space."""

import torch

from robustcs.physics import as_complex_tensor
from robustcs.recon_io import iter_slices, run_reconstruction
from robustcs.training import load_model, reconstruct
from robustcs.util import script_logger, torch_setup

log = script_logger(snakemake.log[0])
device = torch_setup(snakemake.threads, log)
inp, w = snakemake.input, snakemake.wildcards
spec, model = load_model(inp.model, device)
model.eval()
family = snakemake.params.family


def method(item):
    out = reconstruct(model, spec, as_complex_tensor(item.measured, device)[None],
                      torch.as_tensor(item.mask, device=device), item.target_shape, item.num_low_frequencies)
    return out[0].cpu().numpy(), None


with torch.no_grad():
    run_reconstruction(
        iter_slices(inp.manifest, w.stem, inp.volume, inp.masks),
        method, snakemake.output[0], {"method": w.method, "family": family, "model": str(inp.model)}, log,
        desc=f"{family} {w.method} {w.stem}",
    )
