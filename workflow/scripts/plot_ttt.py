"""Rule plot_ttt: mean SSIM before and after test-time training against the target-trained reference."""

import json

import pandas as pd

from robustcs.plots import save, ttt_bars
from robustcs.util import script_logger

log = script_logger(snakemake.log[0])
save(ttt_bars(pd.read_csv(snakemake.input[0])), *snakemake.output, dpi=json.loads(snakemake.params.plots)["dpi"])
log.info("wrote %s", ", ".join(snakemake.output))
