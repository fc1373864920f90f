"""Rule reconstruct_convdecoder: the un-trained ConvDecoder fitted to each slice's measurements."""

import json
from dataclasses import asdict

from robustcs.convdecoder import ConvDecoderSpec, fit_convdecoder
from robustcs.physics import as_complex_tensor, mask_tensor
from robustcs.recon_io import iter_slices, run_reconstruction
from robustcs.util import TqdmToLogger, script_logger, stable_seed, torch_setup

log = script_logger(snakemake.log[0])
device = torch_setup(snakemake.threads, log)
inp, w = snakemake.input, snakemake.wildcards
spec = ConvDecoderSpec.from_config(json.loads(snakemake.params.spec))


def method(item):
    result = fit_convdecoder(
        as_complex_tensor(item.measured, device),
        mask_tensor(item.mask, device),
        as_complex_tensor(item.sens, device),
        spec,
        seed=stable_seed(snakemake.params.seed, w.method, item.stem, item.slice),
        tqdm_file=TqdmToLogger(log),
        desc=f"ConvDecoder {item.stem}[{item.slice}]",
    )
    image = None if result.image is None else result.image.detach().cpu().numpy()
    log.info("%s slice %d: best iterate %d, loss %.4g", item.stem, item.slice, result.best_iteration,
             min(result.losses))
    return result.magnitude.detach().cpu().numpy(), image


run_reconstruction(
    iter_slices(inp.manifest, w.stem, inp.volume, inp.masks, inp.sens),
    method, snakemake.output[0], {"method": w.method, "family": "convdecoder", "spec": asdict(spec)}, log,
    desc=f"convdecoder {w.method} {w.stem}",
)
