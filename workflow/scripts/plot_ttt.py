"""Rule plot_ttt: mean SSIM before and after test-time training against the target-trained reference, one
panel per shift (titled source → target), all on one SSIM scale."""


import pandas as pd

from robustcs import params as decode
from robustcs.plots import save
from robustcs.plots_ttt import ttt_bars
from robustcs.util import script_logger

log = script_logger(snakemake.log[0])
pairs = decode.plain(snakemake.params.pairs)  # source, target, masks and kind of each shift, for the titles
save(ttt_bars(pd.read_csv(snakemake.input[0]), pairs), *snakemake.output, dpi=decode.plain(snakemake.params.plots)["dpi"])
log.info("wrote %s", ", ".join(snakemake.output))
