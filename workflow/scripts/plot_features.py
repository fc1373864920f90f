"""Rule plot_features: feature recovery (MSE inside the features) against whole-image SSIM, per variant, one
panel per (dataset, mask) in a near-square grid."""


import pandas as pd

from robustcs import params as decode
from robustcs.plots import feature_recovery_vs_ssim, save
from robustcs.util import script_logger

log = script_logger(snakemake.log[0])
inp = snakemake.input
fig = feature_recovery_vs_ssim(pd.read_csv(inp.summary), pd.read_csv(inp.correlation))
save(fig, *snakemake.output, dpi=decode.plain(snakemake.params.plots)["dpi"])
log.info("wrote %s", ", ".join(snakemake.output))
