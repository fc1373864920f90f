"""Rule summarise_ttt: every TTT slice (P->Q, P->Q+TTT, Q->Q) in one table, and per shift and variant
the mean SSIMs, the gap and the share of it closed by test-time training."""

import pandas as pd

from robustcs.tables import frame_markdown, ttt_summary
from robustcs.util import atomic_path, read_result_csvs, script_logger

log = script_logger(snakemake.log[0])
per_slice = read_result_csvs(sorted(snakemake.input))  # sorted: rows do not follow the config order
summary = ttt_summary(per_slice, n_boot=int(snakemake.params.bootstrap), seed=int(snakemake.params.seed))
out = snakemake.output
with atomic_path(out.csv, suffix=".csv") as tmp:
    per_slice.to_csv(tmp, index=False)
with atomic_path(out.summary, suffix=".csv") as tmp:
    summary.to_csv(tmp, index=False)
with atomic_path(out.md, suffix=".md") as tmp:
    tmp.write_text(frame_markdown(summary, digits=3) + "\n")
for row in summary.itertuples(index=False):
    if pd.isna(row.gap_closed):  # no gap to close (Q->Q not above P->Q by MIN_GAP): no share to report
        closed = "no gap to close (Q->Q not above P->Q)"
    else:
        closed = f"gap closed {100 * row.gap_closed:.0f}% ({100 * row.gap_closed_low:.0f}% to {100 * row.gap_closed_high:.0f}%)"
    log.info("%s %s: SSIM P->Q %.4f, +TTT %.4f, Q->Q %.4f; %s", row.shift, row.method, row.ssim_p_q, row.ssim_p_q_ttt,
             row.ssim_q_q, closed)
