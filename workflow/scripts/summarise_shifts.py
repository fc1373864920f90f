"""Rule summarise_shifts: for every distribution shift, one point per variant (SSIM on the source's test
slices vs on the shifted set), the least-squares lines (the papers' families' common line and one per method
group) with slope, intercept, R², each group's effective robustness (mean residual to the line fitted without
it; other families to the common line) with its volume-bootstrap interval and its verdict (params margin and
min_volumes: config findings.shift_margin, findings.min_volumes). An adversarially filtered shift's target set
is the worst fraction of the source test slices by its filter variant's SSIM."""


import pandas as pd

from robustcs import params as decode, paths
from robustcs.shifts import filtered_slices, fit_table, residuals_markdown, shift_points
from robustcs.util import atomic_path, read_result_csv, script_logger

log = script_logger(snakemake.log[0])
params = snakemake.params
pairs = decode.plain(params.pairs)
COLUMNS = ["shift", "side", "method", "family", "stem", "slice", "ssim"]


def evaluation(dataset, mask, method):
    path = paths.EVAL.format(dataset=dataset, mask=mask, method=method)
    if path not in snakemake.input:
        raise ValueError(f"{path} is not an input of summarise_shifts")
    table = read_result_csv(path)
    if table.empty:
        raise ValueError(f"{path}: no evaluated slices")
    return table


frames = []
for name, cfg in pairs.items():
    source = pd.concat([evaluation(cfg["source"], cfg["mask"], m) for m in params.methods], ignore_index=True)
    frames.append(source.assign(shift=name, side="in"))
    if cfg["kind"] == "filtered":
        kept = filtered_slices(evaluation(cfg["source"], cfg["mask"], cfg["filter"])[["stem", "slice", "ssim"]],
                               cfg["fraction"])
        log.info("%s: filter %s keeps %d slices (SSIM <= %.4f): %s", name, cfg["filter"], len(kept), kept["ssim"].max(),
                 ", ".join(f"{s}[{i}]" for s, i in zip(kept["stem"], kept["slice"])))
        target = source.merge(kept[["stem", "slice"]], on=["stem", "slice"])
    else:
        target = pd.concat([evaluation(cfg["target"], cfg["target_mask"], m) for m in params.methods], ignore_index=True)
    frames.append(target.assign(shift=name, side="out"))
per_slice = pd.concat(frames, ignore_index=True)[COLUMNS]

points = shift_points(per_slice)
fits = fit_table(per_slice, n_boot=int(params.bootstrap), seed=int(params.seed), margin=float(params.margin),
                 min_volumes=int(params.min_volumes))
out = snakemake.output
for frame, path in ((points, out.points), (per_slice, out.slices), (fits, out.fit)):
    with atomic_path(path, suffix=".csv") as tmp:
        frame.to_csv(tmp, index=False)
with atomic_path(out.md, suffix=".md") as tmp:
    tmp.write_text(residuals_markdown(fits) + "\n")
for row in fits.itertuples(index=False):
    log.info("%s %s%s: %d points, slope %.3f, intercept %.3f, R² %.3f, residual %.4f [%.4f, %.4f] %s (%d resamples, "
             "%s draws)", row.shift, row.group, "" if row.fitted else " (not fitted)", row.n_points, row.slope,
             row.intercept, row.r2, row.residual, row.residual_low, row.residual_high, row.verdict or "", row.n_boot,
             "paired" if row.paired else "independent")
