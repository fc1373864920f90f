"""Rule plot_adversarial: mean quality (PSNR in dB, SSIM) against ε per variant (adversarial and random
perturbations), one block per method family in a near-square grid."""


import pandas as pd

from robustcs import params as decode
from robustcs.plots import quality_vs_epsilon, save
from robustcs.util import script_logger

log = script_logger(snakemake.log[0])
save(quality_vs_epsilon(pd.read_csv(snakemake.input[0])), *snakemake.output, dpi=decode.plain(snakemake.params.plots)["dpi"])
log.info("wrote %s", ", ".join(snakemake.output))
