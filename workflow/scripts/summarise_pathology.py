"""Rule summarise_pathology: the per-box table of the annotated pathology, per-variant means, and how recovery
inside the boxes tracks overall quality across variants (the study: Pearson −0.60 over its four methods)."""

import pandas as pd

from robustcs.tables import PATHOLOGY_METRICS, feature_correlation, feature_summary, frame_markdown
from robustcs.util import atomic_path, script_logger

log = script_logger(snakemake.log[0])
out = snakemake.output
per_box = pd.concat([pd.read_csv(p) for p in sorted(snakemake.input)], ignore_index=True)
summary = feature_summary(per_box, PATHOLOGY_METRICS, count="boxes")
correlation = feature_correlation(summary, PATHOLOGY_METRICS)
for frame, path in ((per_box, out.csv), (summary, out.summary), (correlation, out.correlation)):
    with atomic_path(path, suffix=".csv") as tmp:
        frame.to_csv(tmp, index=False)
with atomic_path(out.md, suffix=".md") as tmp:
    tmp.write_text(frame_markdown(summary) + "\n\n" + frame_markdown(correlation, 3) + "\n")
for row in correlation.itertuples(index=False):
    log.info("%s/%s: %s vs SSIM over %d variants: Pearson %.3f, Spearman %.3f", row.dataset, row.mask, row.metric,
             row.variants, row.pearson, row.spearman)
