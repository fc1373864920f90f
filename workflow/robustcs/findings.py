"""The papers' findings, checked on a run's tables: one row per finding with the measured statistic, the
papers' value and whether it reproduces. Every cell is computed from the run's tables; a finding that
does not reproduce names what the tables show about why (which variants, groups or slices break it).

Findings (study.md §3–§7):

1. clean quality ordering: the best VarNet is the best method and the best ℓ1 variant the worst of the
   four families (study, one knee slice, PSNR: VarNet 35.72, ConvDecoder 30.46, U-Net 30.33, ℓ1 26.74);
2. adversarial perturbations: every method loses more quality (PSNR, the attack's objective) under the
   attack than under random noise of the same norm, on the same slices; the relative drops are listed
   (study at ε = 0.08: VarNet −25 %, U-Net −35 %, ℓ1 −39 %, ConvDecoder −5 %);
3. small features: feature recovery tracks overall quality, i.e. across all variants the feature MSE falls
   as SSIM rises (Pearson correlation < 0; computed from the study's four methods: −0.36 for its synthetic
   features, −0.60 for the meniscus-tear boxes);
4. distribution shifts: per shift all groups lie on one line, no group's effective robustness interval
   lies above 0;
5. test-time training closes most of the gap: every (shift, variant) closes more than half of it
   (study: 87–99 % for the VarNet).
"""

from __future__ import annotations

import math

import pandas as pd

from .families import PAPER_FAMILIES, family

COLUMNS = ["finding", "statistic", "measured", "papers", "reproduces", "details"]
#: The papers' four families, and their clean order best to worst as the ICML paper reports it.
FAMILIES = PAPER_FAMILIES
PAPERS_ORDER = sorted(FAMILIES, key=lambda f: -family(f).papers_psnr)


def _fmt(v: float, digits: int = 3) -> str:
    return "nan" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{digits}f}"


def _yes(ok: bool | None) -> str:
    return "undecided" if ok is None else ("yes" if ok else "no")  # not "n/a": CSV readers take that for missing


def clean_ordering(clean: pd.DataFrame, dataset: str, mask: str, tuning: pd.DataFrame | None = None) -> dict:
    rows = clean[(clean["dataset"] == dataset) & (clean["mask"] == mask) & clean["family"].isin(FAMILIES)]
    chosen = rows.loc[rows.groupby("family")["ssim_mean"].idxmax()].set_index("family")
    tuned = []
    if tuning is not None and not tuning.empty:
        # a family tuned on the validation split is represented by its selected variant, not its best on test
        for row in tuning[tuning["selected"].astype(bool)].itertuples(index=False):
            hit = rows[rows["method"] == row.method]
            if not hit.empty and row.family in chosen.index:
                chosen.loc[row.family] = hit.iloc[0].drop("family")
                tuned.append(row.family)
    best, best_variant = chosen["ssim_mean"].astype(float), chosen["method"]
    order = best.sort_values(ascending=False)
    measured = " > ".join(f"{f} {_fmt(v)}" for f, v in order.items())
    complete = set(FAMILIES) <= set(best.index)
    ok = complete and order.index[0] == PAPERS_ORDER[0] and order.index[-1] == PAPERS_ORDER[-1]
    details = (f"best variant per family ({', '.join(best_variant[f] for f in order.index)}), mean SSIM on the clean "
               f"test slices of {dataset}, mask {mask}")
    if tuned:
        details += f"; {', '.join(tuned)}: the variant selected on the validation split (tables/tuning.csv)"
    if not complete:
        details += f"; families missing: {sorted(set(FAMILIES) - set(best.index))}"
    psnr = [family(f).papers_psnr for f in PAPERS_ORDER]
    papers = family(PAPERS_ORDER[0]).label + "".join(  # '≈' where the paper's values differ by under 0.5 dB
        f" {psnr[i]} {'≈' if psnr[i] - psnr[i + 1] < 0.5 else '>'} {family(f).label}" for i, f in enumerate(PAPERS_ORDER[1:])) + f" {psnr[-1]}"
    return {"finding": f"clean quality: {family(PAPERS_ORDER[0]).label} best, {family(PAPERS_ORDER[-1]).label} worst",
            "statistic": "best SSIM per family", "measured": measured, "papers": f"{papers} dB (one knee slice)",
            "reproduces": _yes(ok if complete else None), "details": details}


def attack_vs_noise(drops: pd.DataFrame) -> dict:
    eps = drops["epsilon"].max()
    at = drops[(drops["epsilon"] == eps) & drops["family"].isin(FAMILIES)]
    worse = at["psnr_drop"] > at["psnr_drop_random"]
    rel = (at["psnr_drop"] / at["psnr_clean"]).groupby(at["family"]).mean()
    measured = (f"{int(worse.sum())} of {len(at)} variants; relative PSNR drop "
                + ", ".join(f"{f} {100 * rel[f]:.0f} %" for f in FAMILIES if f in rel.index))
    failing = at.loc[~worse, "method"].tolist()
    unconverged = at.loc[at["share_converged"] < 1, "method"].tolist()
    details = [f"ε = {eps:g}, {int(at['n'].min())}–{int(at['n'].max())} attacked slices per variant"]
    if failing:
        details.append(f"attack no worse than noise for {failing}")
    if unconverged:
        details.append(f"attack loss still rising ≥ 1 % in the last 10 % of steps for {unconverged}")
    elif (drops.loc[drops["family"].isin(FAMILIES), "share_converged"] == 1).all():
        details.append("every attack settled (loss rise < 1 % in the last 10 % of the steps, every slice and ε)")
    return {"finding": "every method hurt more by the attack than by random noise",
            "statistic": f"variants with PSNR drop (attack) > drop (noise) at ε = {eps:g}", "measured": measured,
            "papers": "all four (ε = 0.08: VarNet −25 %, U-Net −35 %, ℓ1 −39 %, ConvDecoder −5 % PSNR)",
            "reproduces": _yes(bool(worse.all()) if len(at) else None), "details": "; ".join(details)}


def features_track_quality(correlation: pd.DataFrame, dataset: str, mask: str, metric: str = "mse_feature",
                           what: str = "feature") -> dict:
    """Recovery of the synthetic features (``metric`` mse_feature) or of the annotated pathology boxes
    (``what`` "box", ``metric`` mse_box) against SSIM across variants."""
    rows = correlation[(correlation["metric"] == metric)]
    here = rows[(rows["dataset"] == dataset) & (rows["mask"] == mask)]
    row = (here if not here.empty else rows).iloc[0]
    r = float(row["pearson"])
    ok = None if math.isnan(r) else r < 0
    finding = "feature recovery" if what == "feature" else "recovery of annotated pathology"
    return {"finding": f"{finding} tracks overall quality",
            "statistic": f"Pearson(SSIM, {what} MSE) across variants",
            "measured": f"{_fmt(r)} (Spearman {_fmt(float(row['spearman']))}, {int(row['variants'])} variants)",
            "papers": "negative: −0.36 (synthetic features), −0.60 (pathology boxes), over the 4 methods",
            "reproduces": _yes(ok), "details": f"{row['dataset']}, mask {row['mask']}"}


def one_line_per_shift(fits: pd.DataFrame) -> dict:
    groups = fits[fits["group"] != "all"]
    above = groups[groups["residual_low"] > 0]
    common = fits[fits["group"] == "all"]
    measured = "; ".join(f"{r.shift}: R² {_fmt(r.r2, 2)}, slope {_fmt(r.slope, 2)}" for r in common.itertuples())
    details = "; ".join(f"{r.shift}/{r.group} above the line by {_fmt(r.residual)} [{_fmt(r.residual_low)}, "
                        f"{_fmt(r.residual_high)}]" for r in above.itertuples()) or "no group's interval above 0"
    volumes = int(min(fits["n_volumes_in"].min(), fits["n_volumes_out"].min())) if "n_volumes_in" in fits else None
    if volumes is not None:
        details += f"; bootstrap over ≥ {volumes} volume(s) per side"
    return {"finding": "one common line per shift", "statistic": "groups with effective-robustness interval > 0",
            "measured": f"{len(above)} of {len(groups)} groups ({measured})",
            "papers": "none: every group lies on the common line",
            "reproduces": _yes(above.empty if len(groups) else None), "details": details}


def ttt_closes_gap(summary: pd.DataFrame) -> dict:
    """Decided on the (shift, variant) cases with a gap (Q→Q − P→Q above MIN_GAP, where gap_closed is a number);
    the cases without one are reported with TTT's change there (TTT should then at least do no harm)."""
    closed = summary["gap_closed"]
    has_gap = closed.notna()
    ok = bool((closed[has_gap] > 0.5).all()) if has_gap.any() else None
    measured = "; ".join(
        (f"{r.shift}/{r.method} {100 * r.gap_closed:.0f} % [{100 * r.gap_closed_low:.0f}, {100 * r.gap_closed_high:.0f}]"
         if not math.isnan(r.gap_closed) else f"{r.shift}/{r.method} no gap ({r.gap:+.3f})")
        for r in summary.itertuples())
    failing = summary[has_gap & ~(closed > 0.5)]
    parts = [f"{r.shift}/{r.method}: P→Q {_fmt(r.ssim_p_q)}, +TTT {_fmt(r.ssim_p_q_ttt)}, Q→Q {_fmt(r.ssim_q_q)}, "
             f"{r.steps:.0f} steps, stopped early on {100 * r.stopped_early:.0f} % of slices" for r in failing.itertuples()]
    parts += [f"{r.shift}/{r.method} has no gap to close (P→Q {_fmt(r.ssim_p_q)}, Q→Q {_fmt(r.ssim_q_q)}); TTT changed "
              f"SSIM by {r.ttt_change:+.3f} there" for r in summary[~has_gap].itertuples()]
    details = "; ".join(parts) or "every variant closes more than half of every gap"
    if "gap_closed_ceiling" in summary.columns:  # ttt.reference_ttt: Q->Q+TTT measured too
        against = "; ".join(
            f"{r.shift}/{r.method} {100 * r.gap_closed_ceiling:.0f} % [{100 * r.gap_closed_ceiling_low:.0f}, "
            f"{100 * r.gap_closed_ceiling_high:.0f}]" if not math.isnan(r.gap_closed_ceiling)
            else f"{r.shift}/{r.method} no gap" for r in summary.itertuples())
        details += f". Against the better of Q→Q and Q→Q+TTT (TTT also lifts networks trained on Q): {against}"
    return {"finding": "test-time training closes most of the gap", "statistic": "share of the gap closed [95 % CI]",
            "measured": measured, "papers": "VarNet 87–99 % (anatomy 99 %)", "reproduces": _yes(ok), "details": details}


def findings_table(clean: pd.DataFrame, dataset: str, mask: str, drops: pd.DataFrame | None = None,
                   correlation: pd.DataFrame | None = None, fits: pd.DataFrame | None = None,
                   ttt: pd.DataFrame | None = None, tuning: pd.DataFrame | None = None,
                   pathology: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per finding whose experiment ran (module docstring), columns :data:`COLUMNS`."""
    rows = [clean_ordering(clean, dataset, mask, tuning)]
    if drops is not None and not drops.empty:
        rows.append(attack_vs_noise(drops))
    if correlation is not None and not correlation.empty:
        rows.append(features_track_quality(correlation, dataset, mask))
    if pathology is not None and not pathology.empty:
        rows.append(features_track_quality(pathology, dataset, mask, metric="mse_box", what="box"))
    if fits is not None and not fits.empty:
        rows.append(one_line_per_shift(fits))
    if ttt is not None and not ttt.empty:
        rows.append(ttt_closes_gap(ttt))
    return pd.DataFrame(rows, columns=COLUMNS)


def findings_markdown(table: pd.DataFrame) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for row in table.itertuples(index=False):
        lines.append("| " + " | ".join(str(v).replace("|", "/") for v in row) + " |")
    return "\n".join(lines)
