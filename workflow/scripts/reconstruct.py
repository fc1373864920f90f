"""Rule reconstruct: one method variant applied to every used slice of one volume (robustcs.methods)."""

from robustcs.methods import load_method
from robustcs.recon_io import job_slices, run_reconstruction
from robustcs.util import TqdmToLogger, script_logger, torch_setup

log = script_logger(snakemake.log[0])
device = torch_setup(snakemake.threads, log)
inp, w = snakemake.input, snakemake.wildcards
method = load_method(w.method, snakemake.params.spec, device, model_path=inp.get("model"), seed=snakemake.params.get("seed", 0))
progress = TqdmToLogger(log)
run_reconstruction(
    job_slices(inp, w.stem),
    lambda item: method.reconstruct(item, tqdm_file=progress),
    snakemake.output[0], method.attrs(), log, desc=f"{method.family} {w.method} {w.stem}",
)
