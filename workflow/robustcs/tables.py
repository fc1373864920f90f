"""Aggregate tables: per-slice metric rows -> per-volume scores -> mean ± std over volumes per group, as CSV and
Markdown. PSNR and NMSE are a volume's (``fastmri.evaluate``'s convention: over all its voxels), SSIM the mean of
its slices'; where a table means a per-slice quantity (the attack drops), its docstring says so."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .families import rank
from .metrics import METRICS, volume_nmse, volume_psnr
from .shifts import MIN_GAP, gap_closed, percentile_interval, volume_bootstrap_means



def family_sorted(frame: pd.DataFrame, before: list[str]) -> pd.DataFrame:
    """``frame`` sorted (stably) by the columns ``before``, then family in the registry's display order (unknown
    families last), then method; index reset."""
    order = frame["family"].map(rank)
    out = frame.assign(_order=order).sort_values([*before, "_order", "method"], kind="stable")
    return out.drop(columns="_order").reset_index(drop=True)


def volume_scores(per_slice: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """One row per group of ``keys`` and volume (``stem``): the number of slices, the volume's SSIM (mean of its
    slices', as ``fastmri.evaluate.ssim``), PSNR (:func:`robustcs.metrics.volume_psnr`) and, when the rows carry
    NMSE, NMSE (:func:`robustcs.metrics.volume_nmse`), as ``fastmri.evaluate`` computes them over the volume."""
    needed = [*keys, "stem", "ssim", "psnr"]
    missing = [c for c in needed if c not in per_slice.columns]
    if missing:
        raise ValueError(f"per-slice table lacks columns {missing}")
    grouped = per_slice.groupby([*keys, "stem"], sort=False)
    out = grouped.size().rename("slices").to_frame()
    out["ssim"] = grouped["ssim"].mean()
    out["psnr"] = grouped["psnr"].agg(volume_psnr)
    if "nmse" in per_slice.columns:
        out["nmse"] = grouped[["psnr", "nmse"]].apply(lambda v: volume_nmse(v["psnr"], v["nmse"]))
    return out.reset_index()


def summarise(per_slice: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Per group of ``keys``: the number of slices ``n`` and of volumes, and the mean and sample standard deviation
    over volumes of every metric's per-volume score (:func:`volume_scores`; ``fastmri.evaluate`` reports the same
    mean ± std over volumes)."""
    missing = [c for c in [*keys, "stem", *METRICS] if c not in per_slice.columns]
    if missing:
        raise ValueError(f"per-slice table lacks columns {missing}")
    volumes = volume_scores(per_slice, keys)
    grouped = volumes.groupby(keys, sort=False)
    out = grouped["slices"].sum().rename("n").to_frame()
    out["volumes"] = grouped.size()
    for m in METRICS:
        out[f"{m}_mean"] = grouped[m].mean()
        out[f"{m}_std"] = grouped[m].std(ddof=1).fillna(0.0)
    out = out.reset_index()
    if "family" in keys:
        return family_sorted(out, [k for k in keys if k not in ("family", "method")])
    return out.reset_index(drop=True)


def attack_drops(per_slice: pd.DataFrame) -> pd.DataFrame:
    """Per variant and ε, on the attacked slices only: clean, attacked and randomly perturbed SSIM/PSNR, the
    drops (clean − perturbed; the drop from random noise of the same norm beside the attack's), the share of
    slices hurt more by the attack than by the noise (in PSNR, the attack's objective) and the attack's
    convergence (largest ``plateau_rise`` over the slices, share of slices with a rise below 1 %; the rise
    over the second half of the steps beside it, a stricter view since the step length decays).
    Every number of a row comes from the same slices: each perturbed row is paired with its slice's clean row.
    Per slice, not per volume: the attack perturbs one slice's k-space, so its quantities (and the drops'
    PSNR columns) are means over the attacked slices of each slice's score (:data:`PER_SLICE_NOTE`)."""
    keys = ["dataset", "mask", "family", "method"]
    slice_keys = [*keys, "stem", "slice"]
    clean = per_slice[per_slice["kind"] == "clean"].set_index(slice_keys)[["ssim", "psnr"]]
    rows = []
    perturbed = per_slice[per_slice["kind"] != "clean"]
    for key, part in perturbed.groupby([*keys, "epsilon"], sort=False):
        adv = part[part["kind"] == "adversarial"].set_index(slice_keys)
        rnd = part[part["kind"] == "random"].set_index(slice_keys)
        if not adv.index.equals(rnd.index) or not adv.index.isin(clean.index).all():
            raise ValueError(f"attack rows of {key}: adversarial, random and clean rows are not on the same slices")
        base = clean.loc[adv.index]
        drop = {m: base[m].to_numpy() - adv[m].to_numpy() for m in ("ssim", "psnr")}
        drop_rnd = {m: base[m].to_numpy() - rnd[m].to_numpy() for m in ("ssim", "psnr")}
        rise = adv["plateau_rise"].to_numpy(dtype=float)
        rise_half = adv["rise_second_half"].to_numpy(dtype=float)
        rows.append({
            **dict(zip([*keys, "epsilon"], key)), "n": len(adv),
            "ssim_clean": base["ssim"].mean(), "ssim_attacked": adv["ssim"].mean(), "ssim_random": rnd["ssim"].mean(),
            "psnr_clean": base["psnr"].mean(), "psnr_attacked": adv["psnr"].mean(), "psnr_random": rnd["psnr"].mean(),
            "ssim_drop": drop["ssim"].mean(), "ssim_drop_random": drop_rnd["ssim"].mean(),
            "psnr_drop": drop["psnr"].mean(), "psnr_drop_random": drop_rnd["psnr"].mean(),
            "share_attack_worse": float((drop["psnr"] > drop_rnd["psnr"]).mean()),
            "plateau_rise_max": float(rise.max()), "share_converged": float((rise < 0.01).mean()),
            "rise_second_half_max": float(rise_half.max()),
        })
    out = pd.DataFrame(rows)
    if out.empty:
        return out
    return family_sorted(out, ["dataset", "mask", "epsilon"])


#: What the attack drops' Markdown table says under it about its PSNR columns.
PER_SLICE_NOTE = ("Per slice: every SSIM and PSNR column is the mean over the attacked slices of each slice's score "
                  "(the attack acts on one slice); the clean table's PSNR is per volume.")


def to_markdown(summary: pd.DataFrame) -> str:
    """A Markdown table with 'mean ± std' cells (SSIM 3 decimals, PSNR 2, NMSE 4)."""
    digits = {"ssim": 3, "psnr": 2, "nmse": 4}
    counts = [c for c in ("n", "volumes") if c in summary.columns]
    keys = [c for c in summary.columns if c not in counts and not c.endswith(("_mean", "_std"))]
    header = [*keys, *counts, *(m.upper() for m in METRICS)]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in summary.itertuples(index=False):
        r = row._asdict()
        cells = [str(r[k]) for k in keys + counts]
        cells += [f"{r[f'{m}_mean']:.{digits[m]}f} ± {r[f'{m}_std']:.{digits[m]}f}" for m in METRICS]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def frame_markdown(frame: pd.DataFrame, digits: int = 4) -> str:
    """Any table as Markdown, floats with ``digits`` decimals; a missing value (NaN) as "—"."""
    def cell(v) -> str:
        if isinstance(v, float):
            return "—" if np.isnan(v) else f"{v:.{digits}f}"
        return str(v)

    cells = [[cell(v) for v in row] for row in frame.itertuples(index=False)]
    lines = ["| " + " | ".join(map(str, frame.columns)) + " |", "|" + "---|" * len(frame.columns)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in cells])


FEATURE_METRICS = ("mse_feature", "mse_window", "contrast_recovery", "mse_feature_meanstd")
#: Per-box metrics of the annotated pathology (robustcs.features.box_metrics).
PATHOLOGY_METRICS = ("mse_box", "mse_box_meanstd")


def feature_by_size(per_feature: pd.DataFrame) -> pd.DataFrame:
    """Per variant and feature size (and dataset, mask): the mean feature metrics and the number of features."""
    keys = ["dataset", "mask", "family", "method", "size"]
    grouped = per_feature.groupby(keys, sort=False)
    out = grouped[list(FEATURE_METRICS)].mean()
    out["features"] = grouped.size()
    out = out.reset_index()
    return family_sorted(out, ["dataset", "mask", "size"])


def feature_summary(per_feature: pd.DataFrame, metrics=FEATURE_METRICS, count: str = "features") -> pd.DataFrame:
    """Per variant (and dataset, mask): whole-image SSIM/PSNR of the featured slices (the mean over volumes of
    each volume's, :func:`volume_scores`) and mean feature metrics over features (or pathology boxes: ``metrics``
    and ``count`` name them), with the numbers of slices and features."""
    keys = ["dataset", "mask", "family", "method"]
    slices = per_feature.drop_duplicates([*keys, "stem", "slice"])
    volumes = volume_scores(slices[[*keys, "stem", "ssim", "psnr"]], keys).groupby(keys, sort=False)
    out = volumes[["ssim", "psnr"]].mean()
    out["slices"] = volumes["slices"].sum()
    out = out.join(per_feature.groupby(keys, sort=False)[list(metrics)].mean())
    out[count] = per_feature.groupby(keys, sort=False).size()
    out = out.reset_index()
    return family_sorted(out, ["dataset", "mask"])


def feature_correlation(summary: pd.DataFrame, metrics=FEATURE_METRICS, intervals: pd.DataFrame | None = None
                        ) -> pd.DataFrame:
    """Across the variants of each (dataset, mask): Pearson and Spearman correlation of each feature metric
    with the whole-image SSIM (the study's finding: feature recovery tracks overall quality, i.e. a negative
    correlation for the MSEs and a positive one for the contrast recovery). ``intervals``
    (:func:`robustcs.feature_stats.correlation_intervals`) adds each Pearson's bootstrap interval over volumes,
    its permutation p-value and the number of volumes (NaN for a metric it does not cover)."""
    rows = []
    for (dataset, mask), group in summary.groupby(["dataset", "mask"], sort=False):
        for metric in metrics:
            enough = len(group) >= 3 and group[metric].nunique() > 1 and group["ssim"].nunique() > 1
            rows.append({"dataset": dataset, "mask": mask, "metric": metric, "variants": len(group),
                         "pearson": group["ssim"].corr(group[metric]) if enough else float("nan"),
                         "spearman": group["ssim"].corr(group[metric], method="spearman") if enough else float("nan")})
    out = pd.DataFrame(rows)
    if intervals is not None:
        out = out.merge(intervals, on=["dataset", "mask", "metric"], how="left", validate="one_to_one")
    return out


TTT_SETTINGS = ("p_q", "p_q_ttt", "q_q")
#: the optional fourth setting (ttt.reference_ttt): the network trained on Q, test-time trained on the slice
TTT_REFERENCE = "q_q_ttt"
#: the optional ablation (ttt.ablation_hidden): P->Q+TTT with the held-out points hidden from the network's input
TTT_HIDDEN = "p_q_ttt_hidden"


def _share_interval(boot: np.ndarray, adapted: np.ndarray, ceiling: np.ndarray, level: float) -> tuple[float, float]:
    """Percentile interval over the bootstrap draws of the share of the gap closed: P->Q is boot's first column,
    ``adapted`` the draws' P->Q+TTT means, ``ceiling`` the draws' reference."""
    return percentile_interval(gap_closed(boot[:, 0], adapted, ceiling, MIN_GAP), level)


def _ttt_wide(per_slice: pd.DataFrame, keys: list[str]) -> tuple[pd.DataFrame, tuple[str, ...]]:
    """SSIM per slice [(keys, stem, slice) x setting] with the step counts of each adapted setting, and the settings
    present (the papers' three, then the optional ones in a fixed order); ValueError when a slice lacks one."""
    wide = per_slice.pivot_table(index=[*keys, "stem", "slice"], columns="setting", values="ssim", aggfunc="first")
    needed = TTT_SETTINGS + tuple(s for s in (TTT_REFERENCE, TTT_HIDDEN) if s in wide.columns)
    missing = [s for s in needed if s not in wide.columns]
    incomplete = wide[list(needed)].isna().any(axis=1) if not missing else None
    if missing or incomplete.any():
        where = missing or [tuple(i) for i in wide.index[incomplete]]
        raise ValueError(f"TTT table lacks settings for {where}; every slice needs {needed}")
    for setting, suffix in (("p_q_ttt", ""), (TTT_HIDDEN, "_hidden")):
        if setting in needed:
            rows = per_slice[per_slice["setting"] == setting].set_index([*keys, "stem", "slice"])
            wide["steps" + suffix] = rows["steps"].astype(float)
            wide["stopped_early" + suffix] = rows["stopped_early"].astype(float)
    return wide, needed


def ttt_summary(per_slice: pd.DataFrame, n_boot: int = 1000, seed: int = 0, level: float = 0.95) -> pd.DataFrame:
    """Per (shift, variant): mean SSIM of P->Q, P->Q+TTT and Q->Q over the adapted slices, the gap
    Q->Q - P->Q, TTT's change P->Q+TTT - P->Q, the share of the gap it closes (of the means; NaN for a gap
    not above :data:`robustcs.shifts.MIN_GAP`; :func:`robustcs.shifts.gap_closed`) with a
    percentile bootstrap interval (volumes resampled, the settings paired on the same draw; see
    :func:`robustcs.shifts.volume_bootstrap_means`), the number of volumes, the mean number of TTT steps and the
    share of slices stopped by self-validation. Every slice must have every setting present.

    With Q->Q+TTT rows (``ttt.reference_ttt``): its mean SSIM, ``ceiling`` = the better of Q->Q and Q->Q+TTT (of
    the means; per bootstrap draw for the interval), and ``gap_closed_ceiling`` (with its interval) = the share of
    the distance P->Q to that ceiling that TTT closes: a small network trained on Q is no ceiling when TTT lifts it
    too. With P->Q+TTT-hidden rows (``ttt.ablation_hidden``): the same columns for the ablation with suffix
    ``_hidden`` (mean SSIM, share of the gap to Q->Q closed with its interval, steps, share stopped early)."""
    keys = ["shift", "family", "method"]
    wide, needed = _ttt_wide(per_slice, keys)
    hidden = TTT_HIDDEN in needed
    aggregations = {"slices": ("p_q", "size"), "ssim_p_q": ("p_q", "mean"), "ssim_p_q_ttt": ("p_q_ttt", "mean"),
                    "ssim_q_q": ("q_q", "mean"), "steps": ("steps", "mean"), "stopped_early": ("stopped_early", "mean")}
    out = wide.groupby(keys, sort=False).agg(**aggregations).reset_index()
    out["gap"] = out["ssim_q_q"] - out["ssim_p_q"]
    out["gap_closed"] = gap_closed(out["ssim_p_q"], out["ssim_p_q_ttt"], out["ssim_q_q"], MIN_GAP)
    out["ttt_change"] = out["ssim_p_q_ttt"] - out["ssim_p_q"]

    column = {s: i for i, s in enumerate(needed)}
    intervals: dict[str, list] = {"gap_closed": [], "gap_closed_ceiling": [], "gap_closed_hidden": []}
    volumes = []
    for key in out[keys].itertuples(index=False):
        part = wide.loc[tuple(key)]  # rows (stem, slice)
        stems = part.index.get_level_values("stem")
        rng = np.random.default_rng(np.random.SeedSequence([int(seed), *"/".join(map(str, key)).encode()]))
        boot = volume_bootstrap_means(part[list(needed)].to_numpy(dtype=float).T, stems, rng, n_boot)
        intervals["gap_closed"].append(_share_interval(boot, boot[:, 1], boot[:, 2], level))
        if TTT_REFERENCE in column:
            ceiling = np.maximum(boot[:, 2], boot[:, column[TTT_REFERENCE]])
            intervals["gap_closed_ceiling"].append(_share_interval(boot, boot[:, 1], ceiling, level))
        if hidden:
            intervals["gap_closed_hidden"].append(_share_interval(boot, boot[:, column[TTT_HIDDEN]], boot[:, 2], level))
        volumes.append(len(set(stems)))
    out["gap_closed_low"], out["gap_closed_high"] = zip(*intervals["gap_closed"])
    out["volumes"] = volumes
    means = wide.groupby(keys, sort=False)
    if TTT_REFERENCE in column:  # after the papers' columns
        out["ssim_q_q_ttt"] = means[TTT_REFERENCE].mean().to_numpy()
        out["ceiling"] = np.maximum(out["ssim_q_q"], out["ssim_q_q_ttt"])
        out["gap_closed_ceiling"] = gap_closed(out["ssim_p_q"], out["ssim_p_q_ttt"], out["ceiling"], MIN_GAP)
        out["gap_closed_ceiling_low"], out["gap_closed_ceiling_high"] = zip(*intervals["gap_closed_ceiling"])
    if hidden:
        out["ssim_p_q_ttt_hidden"] = means[TTT_HIDDEN].mean().to_numpy()
        out["gap_closed_hidden"] = gap_closed(out["ssim_p_q"], out["ssim_p_q_ttt_hidden"], out["ssim_q_q"], MIN_GAP)
        out["gap_closed_hidden_low"], out["gap_closed_hidden_high"] = zip(*intervals["gap_closed_hidden"])
        out["steps_hidden"] = means["steps_hidden"].mean().to_numpy()
        out["stopped_early_hidden"] = means["stopped_early_hidden"].mean().to_numpy()
    order = list(dict.fromkeys(per_slice["shift"]))
    out["_s"], out["_f"] = out["shift"].map(order.index), out["family"].map(rank)
    return out.sort_values(["_s", "_f", "method"], kind="stable").drop(columns=["_s", "_f"]).reset_index(drop=True)


def _one_case(table: pd.DataFrame, dataset: str, mask: str, what: str) -> tuple[pd.DataFrame, str, str]:
    """Rows of (dataset, mask), or of the table's first (dataset, mask) when the experiment ran elsewhere."""
    rows = table[(table["dataset"] == dataset) & (table["mask"] == mask)]
    if rows.empty:
        if table.empty:
            raise ValueError(f"headline: the {what} table is empty")
        dataset, mask = table[["dataset", "mask"]].iloc[0]
        rows = table[(table["dataset"] == dataset) & (table["mask"] == mask)]
    return rows, dataset, mask


def headline(clean: pd.DataFrame, dataset: str, mask: str, adversarial: pd.DataFrame | None = None,
             features: pd.DataFrame | None = None, points: pd.DataFrame | None = None) -> tuple[pd.DataFrame, list[str]]:
    """The study at a glance, one row per variant: clean SSIM/PSNR on (dataset, mask); SSIM and PSNR drop
    under the largest-ε adversarial perturbation (``adversarial``: :func:`attack_drops`, clean and attacked
    on the same slices) beside the PSNR drop from random noise of the same norm; mean squared error inside the inserted features; SSIM on
    the shifted side of every distribution shift. Returns the table and one line per column group saying
    on which data it was measured."""
    rows, d, m = _one_case(clean, dataset, mask, "clean")
    out = rows[["family", "method", "ssim_mean", "psnr_mean"]].rename(columns={"ssim_mean": "ssim", "psnr_mean": "psnr"})
    notes = [f"ssim, psnr: clean test volumes of {d}, mask {m} (mean over volumes; PSNR per volume)"]
    if adversarial is not None:
        adv, d, m = _one_case(adversarial, dataset, mask, "adversarial")
        eps = adv["epsilon"].max()
        drops = adv[adv["epsilon"] == eps].set_index("method")
        for column in ("ssim_drop", "psnr_drop", "psnr_drop_random"):
            out[column] = out["method"].map(drops[column])
        notes.append(f"ssim_drop, psnr_drop (psnr_drop_random): clean minus attacked (randomly perturbed) quality, per "
                     f"slice, on the same attacked slices of {d}, mask {m}, perturbation ε = {eps:g} of the full k-space norm")
        unattacked = int(out["psnr_drop"].isna().sum())
        if unattacked:
            notes.append(f"—: not attacked ({unattacked} of {len(out)} variants; the config's attacks.methods)")
    if features is not None:
        feat, d, m = _one_case(features, dataset, mask, "features")
        out["mse_feature"] = out["method"].map(feat.set_index("method")["mse_feature"])
        notes.append(f"mse_feature: mean squared error inside the inserted features (normalised images), {d}, mask {m}")
    if points is not None:
        for shift, pts in points.groupby("shift", sort=False):
            out[f"ssim_{shift}"] = out["method"].map(pts.set_index("method")["ssim_out"])
        notes.append("ssim_<shift>: SSIM on the shifted (out-of-distribution) side of each shift (tables/shifts.csv)")
    return out.reset_index(drop=True), notes


def runtime_table(benchmarks) -> pd.DataFrame:
    """Per stage (the first folder or file name under ``benchmarks``): number of jobs, total and largest
    wall time in seconds, and the largest peak memory (max RSS, MB) of any job, from Snakemake's benchmark
    files (tab-separated, columns ``s`` and ``max_rss``); a last row ``total``. Stages ordered by time."""
    from pathlib import Path

    root = Path(benchmarks)
    files = sorted(root.rglob("*.tsv"))
    if not files:
        raise ValueError(f"{root}: no benchmark files (every rule writes one under it)")
    rows = []
    for path in files:
        bench = pd.read_csv(path, sep="\t")
        for column in ("s", "max_rss"):
            if column not in bench.columns:
                raise ValueError(f"{path}: benchmark file without column {column!r}")
        stage = path.relative_to(root).parts[0].removesuffix(".tsv")
        max_rss = pd.to_numeric(bench["max_rss"], errors="coerce")
        rows.append({"stage": stage, "s": float(bench["s"].iloc[-1]), "max_rss": float(max_rss.iloc[-1])})
    jobs = pd.DataFrame(rows)
    out = jobs.groupby("stage").agg(jobs=("s", "size"), seconds=("s", "sum"), max_job_seconds=("s", "max"),
                                    max_rss_mb=("max_rss", "max")).reset_index()
    out = out.sort_values(["seconds", "stage"], ascending=[False, True], kind="stable").reset_index(drop=True)
    total = {"stage": "total", "jobs": int(out["jobs"].sum()), "seconds": out["seconds"].sum(),
             "max_job_seconds": out["max_job_seconds"].max(), "max_rss_mb": out["max_rss_mb"].max()}
    return pd.concat([out, pd.DataFrame([total])], ignore_index=True)


def _one_setting_grid(settings: dict[str, dict]) -> tuple[str | None, str]:
    """(the one setting, a number, in which a family's variants differ; or None and why there is none)."""
    if len(settings) < 2:
        return None, "one variant"
    keys = sorted(set().union(*settings.values()))
    varying = [k for k in keys if len({repr(s.get(k)) for s in settings.values()}) > 1]
    if len(varying) != 1:
        return None, "no setting varies" if not varying else f"{len(varying)} settings vary ({', '.join(varying)})"
    values = [s.get(varying[0]) for s in settings.values()]
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        return None, f"{varying[0]} varies but is not a number"
    return varying[0], ""


def tuning_table(per_slice: pd.DataFrame, settings: dict[str, dict] | None = None) -> pd.DataFrame:
    """Per tuned variant: SSIM/PSNR on the validation split (the mean over volumes of each volume's,
    :func:`volume_scores`) and the number of slices; ``selected`` marks
    the variant of each family with the highest validation SSIM (ties: the first by name), the study's tuning
    on the source's validation split. The test split plays no part in the choice.

    The grid check (``settings``: each variant's settings, its family's defaults filled in): where a family's
    variants differ in exactly one numeric setting (ℓ1's ``lam``), ``grid_setting`` names it, ``grid_value`` is
    the variant's value and ``at_edge`` (on the selected row) says whether the selected value is the smallest or
    largest of the family's grid: the optimum may then lie outside it. Other families (one variant, several
    settings varying, a setting that is not a number) have no grid: ``at_edge`` False, ``grid_setting`` and
    ``grid_value`` missing, and ``grid_note`` says why (missing for the families with a grid)."""
    keys = ["dataset", "mask", "family", "method"]
    grouped = volume_scores(per_slice.drop(columns="nmse", errors="ignore"), keys).groupby(keys, sort=True)
    out = grouped.agg(slices=("slices", "sum"), ssim_val=("ssim", "mean"), psnr_val=("psnr", "mean")).reset_index()
    best = out.sort_values(["family", "ssim_val", "method"], ascending=[True, False, True]).groupby("family").head(1)
    out["selected"] = out.index.isin(best.index)
    out = out.assign(grid_setting=np.nan, grid_value=np.nan, at_edge=False, grid_note=np.nan).astype(
        {"grid_setting": object, "grid_note": object})
    for _, rows in out.groupby("family"):
        if settings is None:
            key, note = None, "settings not given"
        else:
            lacking = [m for m in rows["method"] if m not in settings]
            if lacking:
                raise ValueError(f"tuning table: no settings for the tuned variants {lacking}")
            key, note = _one_setting_grid({m: settings[m] for m in rows["method"]})
        if key is None:
            out.loc[rows.index, "grid_note"] = note
            continue
        values = rows["method"].map(lambda m: float(settings[m][key]))
        out.loc[rows.index, "grid_setting"] = key
        out.loc[rows.index, "grid_value"] = values
        chosen = values[rows["selected"]].iloc[0]
        out.loc[rows.index[rows["selected"]], "at_edge"] = chosen in (values.min(), values.max())
    return family_sorted(out, ["dataset", "mask"])
