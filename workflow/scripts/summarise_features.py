"""Rule summarise_features: the per-feature table, per-variant means, and how feature recovery tracks overall
quality across variants (Pearson and Spearman correlation)."""

import pandas as pd

from robustcs.tables import feature_by_size, feature_correlation, feature_summary, frame_markdown
from robustcs.util import atomic_path, script_logger

log = script_logger(snakemake.log[0])
out = snakemake.output
per_feature = pd.concat([pd.read_csv(p) for p in sorted(snakemake.input)], ignore_index=True)  # sorted: rows do not follow the config order
summary = feature_summary(per_feature)
correlation = feature_correlation(summary)
by_size = feature_by_size(per_feature)
for frame, path in ((per_feature, out.csv), (summary, out.summary), (correlation, out.correlation), (by_size, out.by_size)):
    with atomic_path(path, suffix=".csv") as tmp:
        frame.to_csv(tmp, index=False)
with atomic_path(out.md, suffix=".md") as tmp:
    tmp.write_text(frame_markdown(summary) + "\n\n" + frame_markdown(correlation, 3) + "\n\n" + frame_markdown(by_size) + "\n")
for row in correlation.itertuples(index=False):
    log.info("%s/%s: %s vs SSIM over %d variants: Pearson %.3f, Spearman %.3f", row.dataset, row.mask, row.metric,
             row.variants, row.pearson, row.spearman)
