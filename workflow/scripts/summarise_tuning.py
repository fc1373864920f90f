"""Rule summarise_tuning: each tuned variant's quality on the source's validation split and, per family, the
variant selected by its validation SSIM (robustcs.tables.tuning_table)."""

import pandas as pd

from robustcs.tables import frame_markdown, tuning_table
from robustcs.util import atomic_path, script_logger

log = script_logger(snakemake.log[0])
per_slice = pd.concat([pd.read_csv(p) for p in sorted(snakemake.input)], ignore_index=True)
table = tuning_table(per_slice)
with atomic_path(snakemake.output.csv, suffix=".csv") as tmp:
    table.to_csv(tmp, index=False)
with atomic_path(snakemake.output.md, suffix=".md") as tmp:
    tmp.write_text(frame_markdown(table) + "\n")
for row in table[table["selected"]].itertuples(index=False):
    log.info("%s: %s selected (validation SSIM %.4f)", row.family, row.method, row.ssim_val)
