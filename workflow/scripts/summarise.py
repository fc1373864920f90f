"""Rule summarise_clean: mean ± std per method variant, dataset and mask, as CSV and Markdown."""



from robustcs import params as decode
from robustcs.tables import summarise, to_markdown
from robustcs.util import atomic_path, read_result_csvs, script_logger

log = script_logger(snakemake.log[0])
accelerations = decode.plain(snakemake.params.accelerations)
per_slice = read_result_csvs(snakemake.input)
per_slice["acceleration"] = per_slice["mask"].map(accelerations)
summary = summarise(per_slice, ["dataset", "mask", "acceleration", "family", "method"])
with atomic_path(snakemake.output.csv, suffix=".csv") as tmp:
    summary.to_csv(tmp, index=False)
with atomic_path(snakemake.output.md, suffix=".md") as tmp:
    tmp.write_text(to_markdown(summary) + "\n")
log.info("summary of %d slices, %d rows", len(per_slice), len(summary))
