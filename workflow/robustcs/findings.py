"""The papers' findings, checked on a run's tables: one row per finding with the measured statistic, the
papers' value and whether it reproduces. Every cell is computed from the run's tables; a finding that
does not reproduce names what the tables show about why (which variants, groups or slices break it).

Findings:

1. clean quality ordering: with each family represented by its variant chosen on the validation split, the
   VarNet is the best and ℓ1 the worst of the four families on both PSNR and SSIM, differences under a tolerance
   counting as ties (robustcs.clean_stats) (study, one knee slice, PSNR: VarNet 35.72, ConvDecoder 30.46,
   U-Net 30.33, ℓ1 26.74);
2. adversarial perturbations: every papers' family is vulnerable (its PSNR drop under the attack exceeds the
   drop under random noise of the same norm by more than a margin, interval over volumes) and no network is
   more vulnerable than ℓ1 (relative PSNR drops, paired interval; robustcs.attack_stats) (study at
   ε = 0.08: VarNet −25 %, U-Net −35 %, ℓ1 −39 %, ConvDecoder −5 %);
3. small features: feature recovery tracks overall quality, i.e. across all variants the feature MSE falls
   as SSIM rises: Pearson's volume-bootstrap interval below −findings.feature_min_correlation, beside the
   feature's error relative to its surroundings (robustcs.feature_stats) (study, over its four methods: −0.36 for
   its synthetic features, −0.60 for the meniscus-tear boxes);
4. distribution shifts: per shift the papers' groups lie on one line: each group's effective robustness
   (against the line fitted without it, volume-bootstrap interval) lies within a margin of 0;
5. test-time training closes most of the gap: every (shift, variant) closes more than half of it
   (study: 87–99 % for the VarNet).
"""

from __future__ import annotations

import math

import pandas as pd

from .attack_stats import MORE, NO_MORE, REFERENCE, REFERENCE_FAMILY, UNDECIDED
from .clean_stats import TIE_DB, TIE_SSIM, clean_verdict, edge_notes
from .feature_stats import INTERVAL_COLUMNS, MIN_CORRELATION, RELATIVE_METRIC, correlation_verdict
from .families import PAPER_FAMILIES, family
from .shifts import MIN_VOLUMES as SHIFT_MIN_VOLUMES, SHIFT_MARGIN, check_verdict_settings, shift_verdict

COLUMNS = ["finding", "statistic", "measured", "papers", "reproduces", "details"]
#: The papers' four families, and their clean order best to worst as the ICML paper reports it.
FAMILIES = PAPER_FAMILIES
PAPERS_ORDER = sorted(FAMILIES, key=lambda f: -family(f).papers_psnr)


def _fmt(v: float, digits: int = 3) -> str:
    return "nan" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{digits}f}"


def _yes(ok: bool | None) -> str:
    return "undecided" if ok is None else ("yes" if ok else "no")  # not "n/a": CSV readers take that for missing


def clean_ordering(clean: pd.DataFrame, dataset: str, mask: str, tuning: pd.DataFrame | None = None,
                   tie_db: float = TIE_DB, tie_ssim: float = TIE_SSIM) -> dict:
    """Each papers' family by its variant chosen on the validation split (``tuning``: tables/tuning.csv), ordered
    by mean PSNR and SSIM over the clean test volumes of (dataset, mask), judged on both with the tie tolerances
    (robustcs.clean_stats: "undecided" where the verdict hinges on a tie or a family has no validation choice)."""
    rows = clean[(clean["dataset"] == dataset) & (clean["mask"] == mask)]
    ok, measured, parts = clean_verdict(rows, tuning, tie_db, tie_ssim)
    parts.insert(1, f"mean over the clean test volumes of {dataset}, mask {mask}, of each volume's PSNR and SSIM")
    parts += edge_notes(tuning)
    psnr = [family(f).papers_psnr for f in PAPERS_ORDER]
    papers = family(PAPERS_ORDER[0]).label + "".join(  # '≈' where the paper's values differ by under 0.5 dB
        f" {psnr[i]} {'≈' if psnr[i] - psnr[i + 1] < 0.5 else '>'} {family(f).label}" for i, f in enumerate(PAPERS_ORDER[1:])) + f" {psnr[-1]}"
    return {"finding": f"clean quality: {family(PAPERS_ORDER[0]).label} best, {family(PAPERS_ORDER[-1]).label} worst",
            "statistic": "PSNR and SSIM of each family's variant chosen on the validation split",
            "measured": measured, "papers": f"PSNR: {papers} dB (one knee slice; no SSIM reported for it)",
            "reproduces": _yes(ok), "details": "; ".join(parts)}


def _attack_case(verdicts: pd.DataFrame, dataset: str | None, mask: str | None) -> tuple[pd.DataFrame, str]:
    """The rows of the attacked (dataset, mask) the row decides on: the source case when it was attacked, else
    the first one of the table; and a note when it is not the source case."""
    here = verdicts[(verdicts["dataset"] == dataset) & (verdicts["mask"] == mask)]
    if not here.empty:
        return here, ""
    first = verdicts.iloc[0]
    return (verdicts[(verdicts["dataset"] == first["dataset"]) & (verdicts["mask"] == first["mask"])],
            f"; the source case {dataset}/{mask} was not attacked")


def _names(case: pd.DataFrame) -> dict:
    """How each variant is named in the row: its family, or family/variant where a family has several."""
    return {r.method: (r.family if (case["family"] == r.family).sum() == 1 else f"{r.family}/{r.method}")
            for r in case.itertuples()}


def _ci(v: float, lo: float, hi: float, digits: int = 2, scale: float = 1.0) -> str:
    return f"{scale * v:+.{digits}f} [{scale * lo:+.{digits}f}, {scale * hi:+.{digits}f}]"


def _effort_frame(effort: pd.DataFrame | None, tolerance_db: float | None) -> pd.DataFrame | None:
    """The effort check as verdicts (family, method, converged, change_db): a verdict frame as it is, the raw
    table of robustcs.attack_effort through its effort_verdicts (then ``tolerance_db`` is needed)."""
    if effort is None or effort.empty:
        return None
    if {"family", "method", "converged", "change_db"} <= set(effort.columns):
        return effort
    if tolerance_db is None:
        raise ValueError("attack effort table without a 'converged' column: pass findings.attack_effort_tolerance_db "
                         "to judge its raw rows")
    from .attack_effort import effort_verdicts

    return effort_verdicts(effort, tolerance_db)


def _attack_parts(case: pd.DataFrame) -> tuple[bool | None, bool | None, list[str]]:
    """(vulnerable part, comparison part, their details) of the papers' families' verdict rows."""
    name = _names(case)
    paper = case[case["family"].isin(FAMILIES)]
    networks = paper[paper["family"] != REFERENCE_FAMILY]
    missing = [f for f in FAMILIES if f not in set(paper["family"])]
    margin, cmargin = float(case["margin_db"].iloc[0]), float(case["comparison_margin"].iloc[0])
    details = []
    if missing:
        details.append(f"not attacked: {missing} (the row cannot be yes)")
    weak = paper[paper["vulnerable"] == "no"]
    if not weak.empty:
        details.append("not vulnerable (attack − noise PSNR drop wholly below " f"{margin:g} dB): " + ", ".join(
            f"{name[r.method]} {_ci(r.psnr_excess, r.psnr_excess_low, r.psnr_excess_high)} dB" for r in weak.itertuples()))
    open_ = paper[paper["vulnerable"] == "undecided"]
    if not open_.empty:
        details.append(f"vulnerability undecided (interval straddles {margin:g} dB or too few volumes): "
                       + ", ".join(name[m] for m in open_["method"]))
    vulnerable = False if not weak.empty else (True if not missing and (paper["vulnerable"] == "yes").all() else None)
    more = networks[networks["comparison"] == MORE]
    if not more.empty:
        details.append("clearly more vulnerable than ℓ1 (relative PSNR drop − ℓ1's above " f"{100 * cmargin:g} pp): "
                       + ", ".join(f"{name[r.method]} {_ci(r.vs_l1, r.vs_l1_low, r.vs_l1_high, 0, 100)} pp"
                                   for r in more.itertuples()))
    reference = (case["comparison"] == REFERENCE).any()
    if not reference:
        details.append("ℓ1 not attacked: the comparison with ℓ1 is undecided")
    undecided = networks[networks["comparison"] == UNDECIDED]
    if reference and not undecided.empty:
        details.append(f"comparison with ℓ1 undecided (interval straddles {100 * cmargin:g} pp or too few volumes): "
                       + ", ".join(name[m] for m in undecided["method"]))
    no_more = reference and not networks.empty and (networks["comparison"] == NO_MORE).all()
    compared = False if not more.empty else (True if no_more and not missing else None)
    return vulnerable, compared, details


def attack_vs_noise(verdicts: pd.DataFrame | None, effort: pd.DataFrame | None = None, drops: pd.DataFrame | None = None,
                    dataset: str | None = None, mask: str | None = None,
                    effort_tolerance_db: float | None = None) -> dict:
    """The papers' claim on adversarial perturbations, from the attack verdict table (robustcs.attack_stats:
    results/tables/attack_verdicts.csv): every papers' family is vulnerable (its attack − noise PSNR drop
    interval above the margin) and no network family is more vulnerable than ℓ1 (difference of relative PSNR
    drops, paired interval, at most the comparison margin). "no" when a family is not vulnerable or a network
    is clearly more vulnerable; "undecided" otherwise, also when the effort check (``effort``) finds a papers'
    family under-attacked. ``drops`` (tables/adversarial_drops.csv) adds the loss-plateau note."""
    statistic = "attack − noise PSNR drop [95 % CI] per family; relative PSNR drop − ℓ1's [95 % CI]"
    papers = ("all four vulnerable, the networks no more than ℓ1 (ε = 0.08, PSNR: VarNet 35.72 → 26.62, U-Net "
              "30.33 → 19.66, ℓ1 26.74 → 16.21, ConvDecoder 30.46 → 29.04; −25, −35, −39, −5 %)")
    row = {"finding": "every method vulnerable to the attack, the networks no more than ℓ1", "papers": papers}
    if verdicts is None or verdicts.empty:
        return {**row, "statistic": statistic, "measured": "nan", "reproduces": _yes(None),
                "details": "the per-slice attack verdicts (tables/attack_verdicts.csv) were not given"}
    case, where = _attack_case(verdicts, dataset, mask)
    eps = float(case["epsilon"].iloc[0])
    name = _names(case)
    paper = case[case["family"].isin(FAMILIES)]
    measured = "no papers' family attacked" if paper.empty else "; ".join([
        "attack − noise " + ", ".join(f"{name[r.method]} {_ci(r.psnr_excess, r.psnr_excess_low, r.psnr_excess_high)} dB"
                                      for r in paper.itertuples()),
        "relative PSNR drop " + ", ".join(f"{name[r.method]} {-100 * r.relative_drop:.0f} %" for r in paper.itertuples()),
        "minus ℓ1's " + (", ".join(f"{name[r.method]} {_ci(r.vs_l1, r.vs_l1_low, r.vs_l1_high, 0, 100)} pp"
                                   for r in paper.itertuples() if r.comparison not in (REFERENCE,)) or "—")])
    vulnerable, compared, details = _attack_parts(case)
    ok = False if (vulnerable is False or compared is False) else (True if vulnerable and compared else None)
    reference = case.loc[case["comparison"] == REFERENCE, "method"]
    head = (f"ε = {eps:g} on {case['dataset'].iloc[0]}/{case['mask'].iloc[0]}{where}, {int(case['slices'].min())}–"
            f"{int(case['slices'].max())} slices of {int(case['volumes'].max())} volume(s) per variant; vulnerable when "
            f"the PSNR interval lies above {float(case['margin_db'].iloc[0]):g} dB, no more vulnerable than ℓ1"
            f"{f' ({reference.iloc[0]})' if len(reference) else ''} when the difference's upper bound ≤ "
            f"{100 * float(case['comparison_margin'].iloc[0]):g} pp; SSIM attack − noise "
            + ", ".join(f"{name[r.method]} {_ci(r.ssim_excess, r.ssim_excess_low, r.ssim_excess_high, 3)}"
                        for r in paper.itertuples()))
    details = [head, *details]
    notes = sorted({n for n in paper["note"] if isinstance(n, str) and n})
    details += notes
    others = case[~case["family"].isin(FAMILIES)]
    if not others.empty:
        details.append("not decisive (not among the papers' families): " + ", ".join(
            f"{name[r.method]} {_ci(r.psnr_excess, r.psnr_excess_low, r.psnr_excess_high)} dB, relative drop "
            f"{-100 * r.relative_drop:.0f} %" for r in others.itertuples()))
    ok, effort_notes = _effort_check(_effort_frame(effort, effort_tolerance_db), ok)
    details += effort_notes
    if drops is not None and not drops.empty and "share_converged" in drops.columns:
        rising = drops.loc[(drops["share_converged"] < 1) & drops["family"].isin(FAMILIES), "method"].unique().tolist()
        if rising:
            details.append(f"attack loss still rising ≥ 1 % in the last 10 % of steps for {rising}")
    return {**row, "statistic": f"{statistic} at ε = {eps:g}", "measured": measured, "reproduces": _yes(ok),
            "details": "; ".join(details)}


def _effort_check(effort: pd.DataFrame | None, ok: bool | None) -> tuple[bool | None, list[str]]:
    """An under-attacked papers' family leaves the row undecided unless it is already "no"; others are noted."""
    if effort is None:
        return ok, []
    loose = effort[~effort["converged"].astype(bool)]
    decisive = loose[loose["family"].isin(FAMILIES)]
    notes = [f"under-attacked: {r.family} ({_effort_change(r)})" for r in decisive.itertuples()]
    notes += [f"under-attacked (not decisive): {r.family} ({_effort_change(r)})"
              for r in loose[~loose["family"].isin(FAMILIES)].itertuples()]
    if not decisive.empty and ok is not False:
        ok = None
    return ok, notes


def _effort_change(r) -> str:
    doubled = getattr(r, "change_2x_db", float("nan"))
    if isinstance(doubled, (int, float)) and math.isfinite(doubled):
        return f"doubling the steps changed the drop by {doubled:+.2f} dB"
    return f"more steps changed the drop by {r.change_db:+.2f} dB"


def _correlation_cell(row: pd.Series) -> str:
    """Pearson with its interval: "-0.519 [-0.61, -0.42]"."""
    return f"{_fmt(float(row['pearson']))} [{_fmt(float(row['pearson_low']), 2)}, {_fmt(float(row['pearson_high']), 2)}]"


def _volumes(row: pd.Series) -> int:
    return 0 if pd.isna(row["volumes"]) else int(row["volumes"])


def features_track_quality(correlation: pd.DataFrame, dataset: str, mask: str, metric: str = "mse_feature",
                           what: str = "feature", min_correlation: float | None = None,
                           min_volumes: int | None = None) -> dict:
    """Recovery of the synthetic features (``metric`` mse_feature) or of the annotated pathology boxes
    (``what`` "box", ``metric`` mse_box) against SSIM across variants, decided by the Pearson correlation's
    bootstrap interval over test volumes (:func:`robustcs.feature_stats.correlation_verdict`: "yes" when it lies
    below −``min_correlation``, "no" when above, else "undecided"; "undecided" with fewer than ``min_volumes``
    volumes). Both settings default to the table's own columns (the config's findings block, written there by
    the summarise rule). The features' second statistic (the feature's error over that of its surroundings,
    :data:`robustcs.feature_stats.RELATIVE_METRIC`) is shown with its own verdict in the details, never decisive."""
    missing = [c for c in ("dataset", "mask", "metric", "variants", "pearson", "spearman", *INTERVAL_COLUMNS)
               if c not in correlation.columns]
    if missing:
        raise ValueError(f"{what} correlation table lacks columns {missing} (written by rule summarise_features "
                         "or summarise_pathology)")
    rows = correlation[correlation["metric"] == metric]
    if rows.empty:
        raise ValueError(f"{what} correlation table has no row with metric {metric!r}")
    here = rows[(rows["dataset"] == dataset) & (rows["mask"] == mask)]
    row = (here if not here.empty else rows).iloc[0]

    def setting(name: str, given, default):
        if given is not None:
            return given
        return row[name] if name in row.index and not pd.isna(row[name]) else default

    rho = float(setting("min_correlation", min_correlation, MIN_CORRELATION))
    need = int(setting("min_volumes", min_volumes, SHIFT_MIN_VOLUMES))

    def judged(r: pd.Series) -> tuple[bool | None, str]:
        return correlation_verdict(float(r["pearson_low"]), float(r["pearson_high"]), _volumes(r), int(r["variants"]),
                                   rho, need)

    ok, reason = judged(row)
    measured = (f"{_correlation_cell(row)} (Spearman {_fmt(float(row['spearman']))}, {int(row['variants'])} variants, "
                f"{_volumes(row)} volumes)")
    details = [f"{row['dataset']}, mask {row['mask']}", f"yes needs the interval below {-rho:.2f}, no above it: {reason}",
               f"permutation p {float(row['pearson_p']):.2g} (pairing of the variants' means)"]
    second = correlation[(correlation["metric"] == RELATIVE_METRIC) & (correlation["dataset"] == row["dataset"])
                         & (correlation["mask"] == row["mask"])]
    if not second.empty:
        other = second.iloc[0]
        verdict, why = judged(other)
        measured += f"; relative to surroundings {_correlation_cell(other)}"
        details.append(f"second statistic, Pearson(SSIM, log10 of the feature's MSE over the MSE of the ring around "
                       f"it): {_correlation_cell(other)}, {_yes(verdict)} ({why})")
    finding = "feature recovery" if what == "feature" else "recovery of annotated pathology"
    return {"finding": f"{finding} tracks overall quality",
            "statistic": f"Pearson(SSIM, {what} MSE) across variants [95 % CI, bootstrap over test volumes]",
            "measured": measured,
            "papers": "negative: −0.36 (synthetic features), −0.60 (pathology boxes), over the 4 methods",
            "reproduces": _yes(ok), "details": "; ".join(details)}


def one_line_per_shift(fits: pd.DataFrame, margin: float = SHIFT_MARGIN,
                       min_volumes: int = SHIFT_MIN_VOLUMES) -> dict:
    """Decided by the papers' groups of every fitted shift, each judged by :func:`robustcs.shifts.shift_verdict`
    (two-sided, margin ±``margin``, effective robustness against the line without the group): "yes" when every
    one lies on the line, "no" when any lies above or below it, "undecided" otherwise. Other families (baselines,
    CG-SENSE) are listed in the details and decide nothing."""
    check_verdict_settings(margin, min_volumes)
    missing = [c for c in ("shift", "group", "residual", "residual_low", "residual_high", "n_volumes_in",
                           "n_volumes_out") if c not in fits.columns]
    if missing:
        raise ValueError(f"shift fit table lacks columns {missing}")
    groups = fits[fits["group"] != "all"]
    groups = groups.assign(verdict=[shift_verdict(r.residual_low, r.residual_high, margin, r.n_volumes_in,
                                                  r.n_volumes_out, min_volumes) for r in groups.itertuples()])
    papers, others = groups[groups["group"].isin(FAMILIES)], groups[~groups["group"].isin(FAMILIES)]
    counts = papers["verdict"].value_counts()
    off = papers[papers["verdict"].isin(["above", "below"])]
    undecided = papers[papers["verdict"] == "undecided"]
    ok = None if papers.empty or (off.empty and len(undecided)) else off.empty
    lines = "; ".join(f"{r.shift}: R² {_fmt(r.r2, 2)}, slope {_fmt(r.slope, 2)}"
                      for r in fits[fits["group"] == "all"].itertuples())
    measured = (f"{counts.get('on the line', 0)} of {len(papers)} papers' groups on the line, "
                f"{counts.get('above', 0)} above, {counts.get('below', 0)} below, "
                f"{counts.get('undecided', 0)} undecided ({lines})")

    def interval(r) -> str:
        return f"{_fmt(r.residual)} [{_fmt(r.residual_low)}, {_fmt(r.residual_high)}]"

    def why(r) -> str:
        if min(r.n_volumes_in, r.n_volumes_out) < min_volumes:
            return f"fewer than {min_volumes} volumes on a side ({r.n_volumes_in} in, {r.n_volumes_out} out)"
        return "no interval" if math.isnan(r.residual_low) else f"interval reaches past ±{margin:g}"

    parts = [f"{r.shift}/{r.group} {r.verdict} the line by {_fmt(abs(r.residual))}: {interval(r)}"
             for r in off.itertuples()]
    parts += [f"{r.shift}/{r.group} undecided, {interval(r)}: {why(r)}" for r in undecided.itertuples()]
    if not parts and len(papers):
        parts.append(f"every papers' group within ±{margin:g} of the line without it")
    if len(others):
        parts.append("not deciding (not among the papers' families), against the papers' line: " + ", ".join(
            f"{r.shift}/{r.group} {interval(r)} {r.verdict}" for r in others.itertuples()))
    volumes = int(min(fits["n_volumes_in"].min(), fits["n_volumes_out"].min()))
    parts.append(f"bootstrap over ≥ {volumes} volume(s) per side")
    if "paired" in fits.columns and fits["paired"].astype(bool).any():
        paired = sorted(set(fits.loc[fits["paired"].astype(bool), "shift"]))
        parts.append(f"one draw of volumes for both sides of {', '.join(paired)} (they share volumes)")
    return {"finding": "one common line per shift",
            "statistic": f"papers' groups' effective robustness [95 % CI] (two-sided, margin ±{margin:g}, "
                         "leave-group-out line)",
            "measured": measured, "papers": "every group on the common line",
            "reproduces": _yes(ok), "details": "; ".join(parts)}


def _share(row, column: str) -> str:
    """A share of the gap closed with its interval, in %, or "no gap"."""
    value = getattr(row, column)
    if math.isnan(value):
        return "no gap"
    return f"{100 * value:.0f} % [{100 * getattr(row, column + '_low'):.0f}, {100 * getattr(row, column + '_high'):.0f}]"


def ttt_closes_gap(summary: pd.DataFrame, most: float = 0.5, min_volumes: int = SHIFT_MIN_VOLUMES) -> dict:
    """Decided on the (shift, variant) cases with a gap (Q→Q − P→Q above MIN_GAP, where gap_closed is a number) by
    each share's bootstrap interval: "yes" when every case's interval lies above ``most`` (more than half of the gap
    closed), "no" when some case's interval lies below it, "undecided" otherwise (or without a gap anywhere). The
    cases without a gap are reported with TTT's change there (TTT should then at least do no harm); the
    Q→Q+TTT ceiling (ttt.reference_ttt) and the hidden-input ablation (ttt.ablation_hidden) are reported in the
    details, never decisive. A case adapted on fewer than ``min_volumes`` target volumes (config findings.min_volumes)
    decides nothing: its interval cannot see how much patients differ; nor does one of a table without the column
    ``volumes``."""
    check_verdict_settings(0.0, min_volumes)
    closed = summary["gap_closed"]
    has_gap = closed.notna()
    cases = summary[has_gap]
    enough = cases["volumes"] >= min_volumes if "volumes" in cases.columns else pd.Series(False, index=cases.index)
    below, above = enough & (cases["gap_closed_high"] < most), enough & (cases["gap_closed_low"] > most)
    ok = None if cases.empty or not (below.any() or above.all()) else not below.any()
    measured = "; ".join(f"{r.shift}/{r.method} " + (_share(r, "gap_closed") if not math.isnan(r.gap_closed)
                                                    else f"no gap ({r.gap:+.3f})") for r in summary.itertuples())
    parts = [f"{r.shift}/{r.method}: P→Q {_fmt(r.ssim_p_q)}, +TTT {_fmt(r.ssim_p_q_ttt)}, Q→Q {_fmt(r.ssim_q_q)}, "
             f"{r.steps:.0f} steps, stopped early on {100 * r.stopped_early:.0f} % of slices, "
             + ("interval below" if h < most else "interval straddles") + f" {100 * most:.0f} %"
             for r, h in zip(cases[~above].itertuples(), cases.loc[~above, "gap_closed_high"])]
    parts += [f"{r.shift}/{r.method} has no gap to close (P→Q {_fmt(r.ssim_p_q)}, Q→Q {_fmt(r.ssim_q_q)}); TTT changed "
              f"SSIM by {r.ttt_change:+.3f} there" for r in summary[~has_gap].itertuples()]
    if (~enough).any():
        parts.append(f"{int((~enough).sum())} case(s) on fewer than findings.min_volumes = {min_volumes} volumes"
                     f"{'' if 'volumes' in cases.columns else ' (the TTT summary counts no volumes)'}: undecided")
    details = "; ".join(parts) or f"every case's interval lies above {100 * most:.0f} % of its gap"
    if "gap_closed_ceiling" in summary.columns:  # ttt.reference_ttt: Q->Q+TTT measured too
        against = "; ".join(f"{r.shift}/{r.method} {_share(r, 'gap_closed_ceiling')}" for r in summary.itertuples())
        details += f". Against the better of Q→Q and Q→Q+TTT (TTT also lifts networks trained on Q): {against}"
    if "gap_closed_hidden" in summary.columns:  # ttt.ablation_hidden
        hidden = "; ".join(f"{r.shift}/{r.method} {_share(r, 'gap_closed_hidden')} (P→Q+TTT {_fmt(r.ssim_p_q_ttt_hidden)}, "
                           f"{r.steps_hidden:.0f} steps)" for r in summary.itertuples())
        details += f". Ablation, held-out points also hidden from the network's input: {hidden}"
    return {"finding": "test-time training closes most of the gap",
            "statistic": f"share of the gap closed [95 % CI], every case above {100 * most:.0f} %",
            "measured": measured, "papers": "VarNet 87–99 % (anatomy 99 %)", "reproduces": _yes(ok), "details": details}


def findings_table(clean: pd.DataFrame, dataset: str, mask: str, drops: pd.DataFrame | None = None,
                   correlation: pd.DataFrame | None = None, fits: pd.DataFrame | None = None,
                   ttt: pd.DataFrame | None = None, tuning: pd.DataFrame | None = None,
                   pathology: pd.DataFrame | None = None, attacks: pd.DataFrame | None = None,
                   effort: pd.DataFrame | None = None, effort_tolerance_db: float | None = None,
                   shift_margin: float = SHIFT_MARGIN, shift_min_volumes: int = SHIFT_MIN_VOLUMES,
                   feature_min_correlation: float | None = None, feature_min_volumes: int | None = None,
                   clean_tie_db: float = TIE_DB, clean_tie_ssim: float = TIE_SSIM) -> pd.DataFrame:
    """One row per finding whose experiment ran (module docstring), columns :data:`COLUMNS`. The attack row is
    decided on ``attacks`` (tables/attack_verdicts.csv), with ``drops`` (tables/adversarial_drops.csv) and
    ``effort`` (the attack-effort check, verdicts or raw rows judged with ``effort_tolerance_db``) beside it. The
    shift row judges ``fits`` (tables/shift_fit.csv) with ``shift_margin`` and ``shift_min_volumes`` (config
    findings.shift_margin, findings.min_volumes).
    The small-feature rows (``correlation``: tables/features_correlation.csv, ``pathology``:
    tables/pathology_correlation.csv) judge Pearson's interval with ``feature_min_correlation`` and
    ``feature_min_volumes`` (config findings.feature_min_correlation, findings.min_volumes; None: the table's own
    columns, written there from the same config by the summarise rule). The clean row represents each family by
    its validation choice (``tuning``: tables/tuning.csv) and counts differences under ``clean_tie_db`` (PSNR) and
    ``clean_tie_ssim`` (SSIM) as ties (config findings.clean_tie_db, findings.clean_tie_ssim)."""
    rows = [clean_ordering(clean, dataset, mask, tuning, clean_tie_db, clean_tie_ssim)]
    if any(t is not None and not t.empty for t in (drops, attacks)):
        rows.append(attack_vs_noise(attacks, effort, drops, dataset, mask, effort_tolerance_db))
    if correlation is not None and not correlation.empty:
        rows.append(features_track_quality(correlation, dataset, mask, min_correlation=feature_min_correlation,
                                           min_volumes=feature_min_volumes))
    if pathology is not None and not pathology.empty:
        rows.append(features_track_quality(pathology, dataset, mask, metric="mse_box", what="box",
                                           min_correlation=feature_min_correlation, min_volumes=feature_min_volumes))
    if fits is not None and not fits.empty:
        rows.append(one_line_per_shift(fits, shift_margin, shift_min_volumes))
    if ttt is not None and not ttt.empty:
        rows.append(ttt_closes_gap(ttt, min_volumes=shift_min_volumes))
    return pd.DataFrame(rows, columns=COLUMNS)


def findings_markdown(table: pd.DataFrame) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for row in table.itertuples(index=False):
        lines.append("| " + " | ".join(str(v).replace("|", "/") for v in row) + " |")
    return "\n".join(lines)
