"""Rule summarise_attack_effort: every attacked variant's effort reruns in one table (results/tables/
attack_effort.csv, one row per variant, step count and slice), and per variant whether more steps still move
its mean PSNR drop (robustcs.attack_effort.effort_verdicts with config findings.attack_effort_tolerance_db) as
Markdown."""


from robustcs.attack_effort import effort_verdicts
from robustcs.tables import frame_markdown
from robustcs.util import read_result_csvs, script_logger, write_table

log = script_logger(snakemake.log[0])
rows = read_result_csvs(snakemake.input)
over = rows["norm"] > rows["budget"] * (1 + 1e-5)
if over.any():
    raise ValueError(f"perturbations over their budget: {rows.loc[over, ['method', 'stem', 'slice', 'steps']]}")
rows = rows.sort_values(["dataset", "mask", "family", "method", "steps", "stem", "slice"], ignore_index=True)
verdicts = effort_verdicts(rows, float(snakemake.params.tolerance_db))
write_table(rows, snakemake.output.csv, snakemake.output.md, frame_markdown(verdicts.drop(columns="details"), digits=2))
for row in verdicts.itertuples(index=False):
    (log.info if row.converged else log.warning)("%s/%s %s: %s", row.dataset, row.mask, row.method, row.details)
