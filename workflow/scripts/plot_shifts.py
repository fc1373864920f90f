"""Rule plot_shifts: in- vs out-of-distribution SSIM per shift with the linear fits and y = x, each panel
titled source → target from the configured shift."""


import pandas as pd

from robustcs import params as decode
from robustcs.plots import save, shift_scatter
from robustcs.util import script_logger

log = script_logger(snakemake.log[0])
inp = snakemake.input
pairs = decode.plain(snakemake.params.pairs)  # source, target, masks and kind of each shift, for the titles
fig = shift_scatter(pd.read_csv(inp.points), pd.read_csv(inp.fit), pairs)
save(fig, *snakemake.output, dpi=decode.plain(snakemake.params.plots)["dpi"])
log.info("wrote %s", ", ".join(snakemake.output))
