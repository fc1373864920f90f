"""Rule summarise_pathology: the per-box table of the annotated pathology, per-variant means, and how recovery
inside the boxes tracks overall quality across variants (the study: Pearson −0.60 over its four methods), with a
bootstrap interval over test volumes and a permutation p-value (robustcs.feature_stats)."""


from robustcs.feature_stats import correlation_intervals
from robustcs.tables import PATHOLOGY_METRICS, feature_correlation, feature_summary, frame_markdown
from robustcs.util import atomic_path, read_result_csvs, script_logger

log = script_logger(snakemake.log[0])
out, params = snakemake.output, snakemake.params
per_box = read_result_csvs(sorted(snakemake.input))
summary = feature_summary(per_box, PATHOLOGY_METRICS, count="boxes")
intervals = correlation_intervals(per_box, PATHOLOGY_METRICS, "line", seed=int(params.seed))
correlation = feature_correlation(summary, PATHOLOGY_METRICS, intervals).assign(
    min_correlation=float(params.min_correlation), min_volumes=int(params.min_volumes))  # the verdict's settings
for frame, path in ((per_box, out.csv), (summary, out.summary), (correlation, out.correlation)):
    with atomic_path(path, suffix=".csv") as tmp:
        frame.to_csv(tmp, index=False)
with atomic_path(out.md, suffix=".md") as tmp:
    tmp.write_text(frame_markdown(summary) + "\n\n" + frame_markdown(correlation, 3) + "\n")
for row in correlation.itertuples(index=False):
    log.info("%s/%s: %s vs SSIM over %d variants and %s volumes: Pearson %.3f [%.3f, %.3f] (permutation p %.3g), "
             "Spearman %.3f", row.dataset, row.mask, row.metric, row.variants, row.volumes, row.pearson,
             row.pearson_low, row.pearson_high, row.pearson_p, row.spearman)
