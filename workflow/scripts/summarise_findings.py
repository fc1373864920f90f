"""Rule summarise_findings: the papers' findings checked on this run's tables (robustcs.findings)."""

import pandas as pd

from robustcs.findings import findings_markdown, findings_table
from robustcs.util import script_logger, write_table

log = script_logger(snakemake.log[0])
inp, params = snakemake.input, snakemake.params
keys = ("drops", "correlation", "pathology", "fits", "ttt", "tuning", "attacks", "effort")
optional = {key: pd.read_csv(inp[key]) for key in keys if key in inp.keys()}
# the effort check's raw rows are judged with its tolerance (config findings.attack_effort_tolerance_db) when the
# rule passes it; a table of verdicts needs none
table = findings_table(pd.read_csv(inp.clean), params.dataset, params.mask, **optional,
                       effort_tolerance_db=params.get("effort_tolerance_db"),
                       shift_margin=float(params.shift_margin), shift_min_volumes=int(params.shift_min_volumes),
                       clean_tie_db=float(params.clean_tie_db), clean_tie_ssim=float(params.clean_tie_ssim))
write_table(table, snakemake.output.csv, snakemake.output.md, findings_markdown(table))
for row in table.itertuples(index=False):
    log.info("%s: %s (reproduces: %s)", row.finding, row.measured, row.reproduces)
