"""Rule summarise_runtime: wall time and peak memory of every job of the run, summed per stage, from the
benchmark files Snakemake writes for each job (robustcs.tables.runtime_table)."""

from pathlib import Path

from robustcs.tables import frame_markdown, runtime_table
from robustcs.util import atomic_path, script_logger

log = script_logger(snakemake.log[0])
root = Path(snakemake.params.benchmarks)
table = runtime_table(root)
with atomic_path(snakemake.output.csv, suffix=".csv") as tmp:
    table.to_csv(tmp, index=False)
with atomic_path(snakemake.output.md, suffix=".md") as tmp:
    tmp.write_text(frame_markdown(table, digits=1) + "\n")
log.info("%d jobs, %.0f s of job time in all (%s)", int(table["jobs"].sum()), table["seconds"].sum(), root)
