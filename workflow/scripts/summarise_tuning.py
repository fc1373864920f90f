"""Rule summarise_tuning: each tuned variant's quality on the source's validation split, per family the variant
selected by its validation SSIM, and whether that choice lies at the edge of the family's grid
(robustcs.tables.tuning_table)."""

import pandas as pd

from robustcs import params as decode
from robustcs.tables import frame_markdown, tuning_table
from robustcs.util import atomic_path, read_result_csvs, script_logger

log = script_logger(snakemake.log[0])
per_slice = read_result_csvs(sorted(snakemake.input))
table = tuning_table(per_slice, decode.plain(snakemake.params.settings))
with atomic_path(snakemake.output.csv, suffix=".csv") as tmp:
    table.to_csv(tmp, index=False)
shown = table.assign(grid_value=table["grid_value"].map(lambda v: "—" if pd.isna(v) else f"{v:g}"))
with atomic_path(snakemake.output.md, suffix=".md") as tmp:
    tmp.write_text(frame_markdown(shown) + "\n")
for row in table[table["selected"]].itertuples(index=False):
    log.info("%s: %s selected (validation SSIM %.4f)%s", row.family, row.method, row.ssim_val,
             f"; at the edge of its {row.grid_setting} grid" if row.at_edge else "")
