"""Aggregate tables: per-slice metric rows -> mean ± std per group, as CSV and Markdown."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .families import rank
from .metrics import METRICS
from .shifts import MIN_GAP, gap_closed, volume_bootstrap_means



def family_sorted(frame: pd.DataFrame, before: list[str]) -> pd.DataFrame:
    """``frame`` sorted (stably) by the columns ``before``, then family in the registry's display order (unknown
    families last), then method; index reset."""
    order = frame["family"].map(rank)
    out = frame.assign(_order=order).sort_values([*before, "_order", "method"], kind="stable")
    return out.drop(columns="_order").reset_index(drop=True)


def summarise(per_slice: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Mean, sample standard deviation and count of every metric per group of ``keys``."""
    missing = [c for c in [*keys, *METRICS] if c not in per_slice.columns]
    if missing:
        raise ValueError(f"per-slice table lacks columns {missing}")
    grouped = per_slice.groupby(keys, sort=False)
    out = grouped.size().rename("n").to_frame()
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
    Every number of a row comes from the same slices: each perturbed row is paired with its slice's clean row."""
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


def to_markdown(summary: pd.DataFrame) -> str:
    """A Markdown table with 'mean ± std' cells (SSIM 3 decimals, PSNR 2, NMSE 4)."""
    digits = {"ssim": 3, "psnr": 2, "nmse": 4}
    keys = [c for c in summary.columns if c != "n" and not c.endswith(("_mean", "_std"))]
    header = [*keys, "n", *(m.upper() for m in METRICS)]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in summary.itertuples(index=False):
        r = row._asdict()
        cells = [str(r[k]) for k in keys] + [str(r["n"])]
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
    """Per variant (and dataset, mask): mean whole-image SSIM/PSNR over slices and mean feature metrics
    over features (or pathology boxes: ``metrics`` and ``count`` name them), with the numbers of slices and
    features."""
    keys = ["dataset", "mask", "family", "method"]
    slices = per_feature.drop_duplicates([*keys, "stem", "slice"])
    out = slices.groupby(keys, sort=False)[["ssim", "psnr"]].mean()
    out["slices"] = slices.groupby(keys, sort=False).size()
    out = out.join(per_feature.groupby(keys, sort=False)[list(metrics)].mean())
    out[count] = per_feature.groupby(keys, sort=False).size()
    out = out.reset_index()
    return family_sorted(out, ["dataset", "mask"])


def feature_correlation(summary: pd.DataFrame, metrics=FEATURE_METRICS) -> pd.DataFrame:
    """Across the variants of each (dataset, mask): Pearson and Spearman correlation of each feature metric
    with the whole-image SSIM (the study's finding: feature recovery tracks overall quality, i.e. a negative
    correlation for the MSEs and a positive one for the contrast recovery)."""
    rows = []
    for (dataset, mask), group in summary.groupby(["dataset", "mask"], sort=False):
        for metric in metrics:
            enough = len(group) >= 3 and group[metric].nunique() > 1 and group["ssim"].nunique() > 1
            rows.append({"dataset": dataset, "mask": mask, "metric": metric, "variants": len(group),
                         "pearson": group["ssim"].corr(group[metric]) if enough else float("nan"),
                         "spearman": group["ssim"].corr(group[metric], method="spearman") if enough else float("nan")})
    return pd.DataFrame(rows)


TTT_SETTINGS = ("p_q", "p_q_ttt", "q_q")
#: the optional fourth setting (ttt.reference_ttt): the network trained on Q, test-time trained on the slice
TTT_REFERENCE = "q_q_ttt"


def ttt_summary(per_slice: pd.DataFrame, n_boot: int = 1000, seed: int = 0, level: float = 0.95) -> pd.DataFrame:
    """Per (shift, variant): mean SSIM of P->Q, P->Q+TTT and Q->Q over the adapted slices, the gap
    Q->Q - P->Q, TTT's change P->Q+TTT - P->Q, the share of the gap it closes (of the means; NaN for a gap
    not above :data:`robustcs.shifts.MIN_GAP`; :func:`robustcs.shifts.gap_closed`) with a
    percentile bootstrap interval (volumes resampled, the three settings paired on the same draw; see
    :func:`robustcs.shifts.volume_bootstrap_means`), the number of volumes, the mean number of TTT steps and the
    share of slices stopped by self-validation. Every slice must have all three settings.

    With Q->Q+TTT rows (``ttt.reference_ttt``; then on every slice): its mean SSIM, ``ceiling`` = the better of
    Q->Q and Q->Q+TTT (of the means; per bootstrap draw for the interval), and ``gap_closed_ceiling`` (with its
    interval) = the share of the distance P->Q to that ceiling that TTT closes: a small network trained on Q is no
    ceiling when TTT lifts it too."""
    keys = ["shift", "family", "method"]
    wide = per_slice.pivot_table(index=[*keys, "stem", "slice"], columns="setting", values="ssim", aggfunc="first")
    reference = TTT_REFERENCE in wide.columns
    needed = TTT_SETTINGS + ((TTT_REFERENCE,) if reference else ())
    missing = [s for s in needed if s not in wide.columns]
    incomplete = wide[list(needed)].isna().any(axis=1) if not missing else None
    if missing or incomplete.any():
        where = missing or [tuple(i) for i in wide.index[incomplete]]
        raise ValueError(f"TTT table lacks settings for {where}; every slice needs {needed}")
    ttt_rows = per_slice[per_slice["setting"] == "p_q_ttt"].set_index([*keys, "stem", "slice"])
    wide["steps"] = ttt_rows["steps"].astype(float)
    wide["stopped_early"] = ttt_rows["stopped_early"].astype(float)
    out = wide.groupby(keys, sort=False).agg(
        slices=("p_q", "size"), ssim_p_q=("p_q", "mean"), ssim_p_q_ttt=("p_q_ttt", "mean"), ssim_q_q=("q_q", "mean"),
        steps=("steps", "mean"), stopped_early=("stopped_early", "mean"),
    ).reset_index()
    out["gap"] = out["ssim_q_q"] - out["ssim_p_q"]
    out["gap_closed"] = gap_closed(out["ssim_p_q"], out["ssim_p_q_ttt"], out["ssim_q_q"], MIN_GAP)
    out["ttt_change"] = out["ssim_p_q_ttt"] - out["ssim_p_q"]

    def interval(boot: np.ndarray, ceiling: np.ndarray) -> tuple[float, float]:
        """Percentile interval of the share closed over the draws (P->Q, P->Q+TTT: boot's first two columns)."""
        dist = gap_closed(boot[:, 0], boot[:, 1], ceiling, MIN_GAP)
        dist = dist[np.isfinite(dist)]
        lo, hi = np.quantile(dist, [(1 - level) / 2, (1 + level) / 2]) if dist.size else (np.nan, np.nan)
        return float(lo), float(hi)

    shares, ceiling_shares, volumes = [], [], []
    for key in out[keys].itertuples(index=False):
        part = wide.loc[tuple(key)]  # rows (stem, slice)
        stems = part.index.get_level_values("stem")
        rng = np.random.default_rng(np.random.SeedSequence([int(seed), *"/".join(map(str, key)).encode()]))
        boot = volume_bootstrap_means(part[list(needed)].to_numpy(dtype=float).T, stems, rng, n_boot)
        shares.append(interval(boot, boot[:, 2]))
        if reference:
            ceiling_shares.append(interval(boot, np.maximum(boot[:, 2], boot[:, 3])))
        volumes.append(len(set(stems)))
    out["gap_closed_low"], out["gap_closed_high"] = zip(*shares)
    out["volumes"] = volumes
    if reference:  # after the papers' columns
        out["ssim_q_q_ttt"] = wide.groupby(keys, sort=False)[TTT_REFERENCE].mean().to_numpy()
        out["ceiling"] = np.maximum(out["ssim_q_q"], out["ssim_q_q_ttt"])
        out["gap_closed_ceiling"] = gap_closed(out["ssim_p_q"], out["ssim_p_q_ttt"], out["ceiling"], MIN_GAP)
        out["gap_closed_ceiling_low"], out["gap_closed_ceiling_high"] = zip(*ceiling_shares)
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
    notes = [f"ssim, psnr: clean test slices of {d}, mask {m}"]
    if adversarial is not None:
        adv, d, m = _one_case(adversarial, dataset, mask, "adversarial")
        eps = adv["epsilon"].max()
        drops = adv[adv["epsilon"] == eps].set_index("method")
        for column in ("ssim_drop", "psnr_drop", "psnr_drop_random"):
            out[column] = out["method"].map(drops[column])
        notes.append(f"ssim_drop, psnr_drop (psnr_drop_random): clean minus attacked (randomly perturbed) quality on "
                     f"the same attacked slices of {d}, mask {m}, perturbation ε = {eps:g} of the full k-space norm")
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


def tuning_table(per_slice: pd.DataFrame) -> pd.DataFrame:
    """Per tuned variant: mean SSIM/PSNR on the validation slices and the number of slices; ``selected`` marks
    the variant of each family with the highest validation SSIM (ties: the first by name), the study's tuning
    of λ on the source's validation split. The test split plays no part in the choice."""
    grouped = per_slice.groupby(["dataset", "mask", "family", "method"], sort=True)
    out = grouped.agg(slices=("ssim", "size"), ssim_val=("ssim", "mean"), psnr_val=("psnr", "mean")).reset_index()
    best = out.sort_values(["family", "ssim_val", "method"], ascending=[True, False, True]).groupby("family").head(1)
    out["selected"] = out.index.isin(best.index)
    return out
