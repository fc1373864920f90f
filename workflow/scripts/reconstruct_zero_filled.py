"""Rule reconstruct_zero_filled: RSS of the zero-filled coil images, the trivial baseline."""

import torch

from robustcs.physics import as_complex_tensor, rss, zero_filled
from robustcs.recon_io import iter_slices, run_reconstruction
from robustcs.util import script_logger

log = script_logger(snakemake.log[0])
torch.set_num_threads(snakemake.threads)
inp, w = snakemake.input, snakemake.wildcards


def method(item):
    return rss(zero_filled(as_complex_tensor(item.measured), item.mask)).numpy(), None


with torch.no_grad():
    run_reconstruction(
        iter_slices(inp.manifest, w.stem, inp.volume, inp.masks),
        method, snakemake.output[0], {"method": w.method, "family": "zero_filled"}, log, desc=f"zero-filled {w.stem}",
    )
