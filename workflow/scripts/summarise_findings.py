"""Rule summarise_findings: the papers' findings checked on this run's tables (robustcs.findings)."""

import pandas as pd

from robustcs.findings import findings_markdown, findings_table
from robustcs.util import atomic_path, script_logger

log = script_logger(snakemake.log[0])
inp, params = snakemake.input, snakemake.params
optional = {key: pd.read_csv(inp[key]) for key in ("drops", "correlation", "pathology", "fits", "ttt", "tuning") if key in inp.keys()}
table = findings_table(pd.read_csv(inp.clean), params.dataset, params.mask, **optional)
with atomic_path(snakemake.output.csv, suffix=".csv") as tmp:
    table.to_csv(tmp, index=False)
with atomic_path(snakemake.output.md, suffix=".md") as tmp:
    tmp.write_text(findings_markdown(table) + "\n")
for row in table.itertuples(index=False):
    log.info("%s: %s (reproduces: %s)", row.finding, row.measured, row.reproduces)
