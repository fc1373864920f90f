"""Rule plot_shifts: in- vs out-of-distribution SSIM per shift with the linear fits and y = x."""

import json

import pandas as pd

from robustcs.plots import save, shift_scatter
from robustcs.util import script_logger

log = script_logger(snakemake.log[0])
inp = snakemake.input
save(shift_scatter(pd.read_csv(inp.points), pd.read_csv(inp.fit)), *snakemake.output, dpi=json.loads(snakemake.params.plots)["dpi"])
log.info("wrote %s", ", ".join(snakemake.output))
