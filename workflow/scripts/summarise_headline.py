"""Rule summarise_headline: the study at a glance, one row per variant (robustcs.tables.headline)."""

import pandas as pd

from robustcs.tables import frame_markdown, headline
from robustcs.util import atomic_path, script_logger

log = script_logger(snakemake.log[0])
inp, params = snakemake.input, snakemake.params
optional = {key: pd.read_csv(inp[key]) for key in ("adversarial", "features", "shifts") if key in inp.keys()}
table, notes = headline(pd.read_csv(inp.clean), params.dataset, params.mask, adversarial=optional.get("adversarial"),
                        features=optional.get("features"), points=optional.get("shifts"))
with atomic_path(snakemake.output.csv, suffix=".csv") as tmp:
    table.to_csv(tmp, index=False)
with atomic_path(snakemake.output.md, suffix=".md") as tmp:
    tmp.write_text(frame_markdown(table, digits=3) + "\n\n" + "\n".join(f"- {n}" for n in notes) + "\n")
log.info("headline of %d variants: %s", len(table), "; ".join(notes))
