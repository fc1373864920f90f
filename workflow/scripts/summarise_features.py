"""Rule summarise_features: the per-feature table, per-variant means, and how feature recovery tracks overall
quality across variants (Pearson and Spearman correlation, with a bootstrap interval over test volumes and a
permutation p-value; robustcs.feature_stats), beside the feature's error relative to its surroundings."""


from robustcs.feature_stats import RELATIVE_METRIC, add_relative_error, correlation_intervals
from robustcs.tables import FEATURE_METRICS, feature_by_size, feature_correlation, feature_summary, frame_markdown
from robustcs.util import atomic_path, read_result_csvs, script_logger

log = script_logger(snakemake.log[0])
out, params = snakemake.output, snakemake.params
per_feature = read_result_csvs(sorted(snakemake.input))  # sorted: rows do not follow the config order
per_feature = add_relative_error(per_feature, int(params.margin))
metrics = (*FEATURE_METRICS, RELATIVE_METRIC)
summary = feature_summary(per_feature, metrics)
intervals = correlation_intervals(per_feature, metrics, "index", seed=int(params.seed))
correlation = feature_correlation(summary, metrics, intervals).assign(
    min_correlation=float(params.min_correlation), min_volumes=int(params.min_volumes))  # the verdict's settings
by_size = feature_by_size(per_feature)
for frame, path in ((per_feature, out.csv), (summary, out.summary), (correlation, out.correlation), (by_size, out.by_size)):
    with atomic_path(path, suffix=".csv") as tmp:
        frame.to_csv(tmp, index=False)
with atomic_path(out.md, suffix=".md") as tmp:
    tmp.write_text(frame_markdown(summary) + "\n\n" + frame_markdown(correlation, 3) + "\n\n" + frame_markdown(by_size) + "\n")
for row in correlation.itertuples(index=False):
    log.info("%s/%s: %s vs SSIM over %d variants and %s volumes: Pearson %.3f [%.3f, %.3f] (permutation p %.3g), "
             "Spearman %.3f", row.dataset, row.mask, row.metric, row.variants, row.volumes, row.pearson,
             row.pearson_low, row.pearson_high, row.pearson_p, row.spearman)
