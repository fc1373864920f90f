"""Distribution shifts: the in- vs out-of-distribution linear fit, effective robustness, the adversarially
filtered target set, and test-time training's share of the gap closed.

Study (ICML 2021): every method variant tuned or trained on a source P is one
point, x = its SSIM on P's test slices (in distribution), y = its SSIM on the shifted set Q (out of
distribution). Groups: ℓ1, un-trained (ConvDecoder), U-Net, VarNet. The figure shows the least-squares line
over all points, one per group and y = x; the finding is that all groups lie close to one line.

Here, per shift:

* ``shift_points``: the mean SSIM of each variant on both sides (every variant on the same slices);
* ``fit_table``: per shift the common line ("all"), least squares over the points of the papers' four
  families (:data:`~robustcs.families.FIT_GROUPS`: ℓ1, ConvDecoder, U-Net, VarNet), and one row per group
  present with its own line (slope, intercept, R²) and its *effective robustness* (Taori et al. 2020): the
  mean residual y − (a·x + b) of its points. A papers' group's residual is taken against the line fitted
  *without* its own points (leave-group-out: a group's points cannot pull the line towards themselves); any
  other family (the zero-filled baseline, CG-SENSE: column ``fitted`` False) gets its residual against the
  line over all papers' families and shapes no line. The interval is a percentile bootstrap over *volumes*
  (slices of one volume are not independent; :func:`volume_bootstrap_means`), one draw for every variant
  so the pairing across variants stays, the means, lines and residuals recomputed on each draw. When the
  two sides share volumes (a filtered shift's target slices are source slices; an acceleration shift
  rescans the same volumes) one draw over the union of their volumes serves both sides
  (:func:`paired_volume_bootstrap_means`; column ``paired``; a draw holding none of one side's volumes is left
  out, ``n_boot`` counts the draws kept); sides without a common volume are drawn independently.
  ``verdict`` (:func:`shift_verdict`) compares the interval with a margin ±δ: "on the line", "above",
  "below" or "undecided" (also whenever a side has fewer than ``min_volumes`` volumes: the interval then
  cannot see between-volume variation);
* ``filtered_slices``: the adversarially filtered target set, the worst fraction of the source test
  slices by the SSIM of a filter variant that is not among the evaluated ones (study: i-RIM);
* ``gap_closed``: (P→Q+TTT − P→Q) / (Q→Q − P→Q).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .families import FIT_GROUPS, rank

PER_SLICE_COLUMNS = ("shift", "side", "method", "family", "stem", "slice", "ssim")
FIT_COLUMNS = ["shift", "group", "fitted", "n_points", "slope", "intercept", "r2", "residual", "residual_low",
               "residual_high", "verdict", "n_boot", "n_volumes_in", "n_volumes_out", "paired"]
#: Defaults of config findings.shift_margin (SSIM; the papers' points lie within a few hundredths of their line)
#: and findings.min_volumes (fewer volumes on a side leave a group undecided; the attack, feature and TTT
#: verdicts read the same setting and this default).
SHIFT_MARGIN = 0.02
MIN_VOLUMES = 3


@dataclass(frozen=True)
class LineFit:
    slope: float
    intercept: float
    r2: float
    n: int

    def predict(self, x):
        return self.slope * np.asarray(x, dtype=float) + self.intercept


def linear_fit(x, y) -> LineFit:
    """Ordinary least squares y = slope·x + intercept. NaN fit for fewer than 2 points or constant x;
    R² = 1 − SS_res/SS_tot, NaN when all y are equal."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"x and y must be 1-D of one length, got {x.shape} and {y.shape}")
    if np.isnan(x).any() or np.isnan(y).any():
        raise ValueError("linear_fit: NaN in the points")
    n = len(x)
    if n < 2 or np.ptp(x) == 0:
        return LineFit(math.nan, math.nan, math.nan, n)
    xm, ym = x.mean(), y.mean()
    slope = float(((x - xm) * (y - ym)).sum() / ((x - xm) ** 2).sum())
    intercept = float(ym - slope * xm)
    ss_tot = float(((y - ym) ** 2).sum())
    ss_res = float(((y - (slope * x + intercept)) ** 2).sum())
    return LineFit(slope, intercept, 1 - ss_res / ss_tot if ss_tot > 0 else math.nan, n)


def _check_columns(per_slice: pd.DataFrame) -> None:
    missing = [c for c in PER_SLICE_COLUMNS if c not in per_slice.columns]
    if missing:
        raise ValueError(f"per-slice shift table lacks columns {missing}")


def _draw_counts(n_volumes: int, rng: np.random.Generator, n_boot: int) -> np.ndarray:
    """[n_boot, n_volumes]: how often each volume is drawn in each resample of n_volumes draws with replacement."""
    draws = rng.integers(0, n_volumes, size=(n_boot, n_volumes))
    counts = np.zeros((n_boot, n_volumes))
    np.add.at(counts, (np.repeat(np.arange(n_boot), n_volumes), draws.ravel()), 1.0)
    return counts


def _weighted_means(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """[n_boot, rows]: each row of values [rows, slices] averaged with each resample's slice weights (NaN where a
    resample weights no slice)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return (weights @ values.T) / weights.sum(1, keepdims=True)


def percentile_interval(draws: np.ndarray, level: float) -> tuple[float, float]:
    """Two-sided percentile interval at ``level`` of the finite bootstrap draws; (NaN, NaN) when none is finite."""
    draws = np.asarray(draws, dtype=float)
    draws = draws[np.isfinite(draws)]
    if not draws.size:
        return math.nan, math.nan
    lo, hi = np.quantile(draws, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)


def volume_bootstrap_means(values: np.ndarray, stems, rng: np.random.Generator, n_boot: int) -> np.ndarray:
    """Bootstrap means of each row of ``values`` [rows, slices] resampling whole volumes: ``stems`` names the
    volume of each column; a resample draws as many volumes as there are, with replacement, and weights each
    column by how often its volume was drawn. Returns [n_boot, rows]. The same draw serves every row."""
    labels, volume_of = np.unique(np.asarray(stems), return_inverse=True)
    return _weighted_means(values, _draw_counts(len(labels), rng, n_boot)[:, volume_of])


def paired_volume_bootstrap_means(sides, rng: np.random.Generator, n_boot: int) -> list[np.ndarray]:
    """Bootstrap means of several tables of the same volumes under one draw: ``sides`` is a sequence of (values
    [rows, slices], stems of its columns); each resample draws from the union of their volumes (as many as there
    are, with replacement) and weights every side's columns by how often their volume was drawn, so a volume
    that is hard on one side weighs as much on the other. One [n_boot, rows] array per side; NaN on a side
    where a resample drew none of its volumes (a volume may lack slices on one side)."""
    sides = [(np.asarray(values, dtype=float), [str(s) for s in stems]) for values, stems in sides]
    labels = sorted(set().union(*(stems for _, stems in sides)))
    index = {label: i for i, label in enumerate(labels)}
    counts = _draw_counts(len(labels), rng, n_boot)
    return [_weighted_means(values, counts[:, [index[s] for s in stems]]) for values, stems in sides]


def _matrices(rows: pd.DataFrame, shift: str):
    """(methods, families, {side: SSIM matrix [methods, slices]}, {side: volume of each column}) of one shift;
    every method must have exactly the slices the others have on each side."""
    methods = _ordered_methods(rows)
    families = [rows.loc[rows["method"] == m, "family"].iloc[0] for m in methods]
    out, stems = {}, {}
    for side in ("in", "out"):
        part = rows[rows["side"] == side]
        for m in methods:
            if not (part["method"] == m).any():
                raise ValueError(f"shift {shift!r}: method {m!r} has no slices on side {side!r}")
        wide = part.pivot_table(index="method", columns=["stem", "slice"], values="ssim", aggfunc="mean")
        wide = wide.reindex(methods).sort_index(axis=1)
        if wide.isna().any().any():
            bad = wide.index[wide.isna().any(axis=1)].tolist()
            raise ValueError(f"shift {shift!r}: methods {bad} lack slices that others have on side {side!r}")
        out[side] = wide.to_numpy(dtype=float)
        stems[side] = [stem for stem, _ in wide.columns]
    return methods, families, out, stems


def _ordered_methods(rows: pd.DataFrame) -> list[str]:
    pairs = rows[["method", "family"]].drop_duplicates("method")
    pairs = pairs.assign(_r=pairs["family"].map(rank))
    return pairs.sort_values(["_r", "method"], kind="stable")["method"].tolist()


def _shifts(per_slice: pd.DataFrame) -> list[str]:
    return list(dict.fromkeys(per_slice["shift"]))


def shift_points(per_slice: pd.DataFrame) -> pd.DataFrame:
    """One row per (shift, variant): family, ssim_in, ssim_out, n_in, n_out."""
    _check_columns(per_slice)
    rows = []
    for shift in _shifts(per_slice):
        methods, families, mats, _ = _matrices(per_slice[per_slice["shift"] == shift], shift)
        for i, (m, f) in enumerate(zip(methods, families)):
            rows.append({"shift": shift, "method": m, "family": f, "ssim_in": mats["in"][i].mean(),
                         "ssim_out": mats["out"][i].mean(), "n_in": mats["in"].shape[1], "n_out": mats["out"].shape[1]})
    return pd.DataFrame(rows, columns=["shift", "method", "family", "ssim_in", "ssim_out", "n_in", "n_out"])


def _batched_fit(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares slope and intercept of each row of x, y [B, n] (NaN where x is constant)."""
    xm, ym = x.mean(1, keepdims=True), y.mean(1, keepdims=True)
    sxx = ((x - xm) ** 2).sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        slope = np.where(sxx > 0, ((x - xm) * (y - ym)).sum(1) / sxx, np.nan)
    return slope, ym[:, 0] - slope * xm[:, 0]


def shift_verdict(low: float, high: float, margin: float, n_volumes_in: int, n_volumes_out: int,
                  min_volumes: int) -> str:
    """A group's place relative to the line from its effective-robustness interval [low, high]: "on the line"
    when it lies within [−margin, margin], "above" or "below" when it lies wholly beyond +margin or −margin,
    "undecided" otherwise, and whenever a side has fewer than ``min_volumes`` volumes or the interval is
    missing."""
    if min(n_volumes_in, n_volumes_out) < min_volumes or not (np.isfinite(low) and np.isfinite(high)):
        return "undecided"
    if -margin <= low and high <= margin:
        return "on the line"
    if low > margin:
        return "above"
    if high < -margin:
        return "below"
    return "undecided"


def check_verdict_settings(margin, min_volumes) -> None:
    """ValueError naming the config field for a bad margin or minimum volume count."""
    if isinstance(margin, bool) or not isinstance(margin, (int, float)) or not 0 <= margin < 1:
        raise ValueError(f"findings.shift_margin must be a number in [0, 1) (SSIM), got {margin!r}")
    if isinstance(min_volumes, bool) or not isinstance(min_volumes, (int, np.integer)) or min_volumes < 1:
        raise ValueError(f"findings.min_volumes must be an integer >= 1, got {min_volumes!r}")


def fit_table(per_slice: pd.DataFrame, n_boot: int = 1000, seed: int = 0, level: float = 0.95,
              margin: float = SHIFT_MARGIN, min_volumes: int = MIN_VOLUMES) -> pd.DataFrame:
    """Per shift: the common line of the papers' families ("all") and one row per group present, with the
    groups' effective robustness, its bootstrap interval and verdict (see the module docstring)."""
    _check_columns(per_slice)
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot}")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    check_verdict_settings(margin, min_volumes)
    out = []
    for shift in _shifts(per_slice):
        out += _shift_fits(per_slice[per_slice["shift"] == shift], shift, n_boot, seed, level, margin, min_volumes)
    return pd.DataFrame(out, columns=FIT_COLUMNS)


def _bootstrap_sides(mats: dict, stems: dict, rng: np.random.Generator, n_boot: int):
    """(bootstrap means in, out [n_boot, variants], paired): one draw for both sides when they share a volume."""
    if set(stems["in"]) & set(stems["out"]):
        b_in, b_out = paired_volume_bootstrap_means([(mats["in"], stems["in"]), (mats["out"], stems["out"])], rng,
                                                    n_boot)
        return b_in, b_out, True
    return (volume_bootstrap_means(mats["in"], stems["in"], rng, n_boot),
            volume_bootstrap_means(mats["out"], stems["out"], rng, n_boot), False)


def _shift_fits(rows: pd.DataFrame, shift: str, n_boot: int, seed: int, level: float, margin: float,
                min_volumes: int) -> list[dict]:
    methods, families, mats, stems = _matrices(rows, shift)
    fam = np.array(families)
    paper = np.isin(fam, FIT_GROUPS)
    x, y = mats["in"].mean(1), mats["out"].mean(1)
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), *shift.encode()]))
    bx, by, paired = _bootstrap_sides(mats, stems, rng, n_boot)
    valid = np.isfinite(bx).all(1) & np.isfinite(by).all(1)  # a paired draw may miss every volume of one side
    bx, by = bx[valid], by[valid]
    n_in, n_out = len(set(stems["in"])), len(set(stems["out"]))
    others = sorted(set(families) - set(FIT_GROUPS), key=lambda g: (rank(g), g))
    out = []
    for group in ["all", *[g for g in FIT_GROUPS if g in families], *others]:
        sel = paper if group == "all" else fam == group
        # the line a group is measured against: every papers' family but its own (all of them for "all")
        against = paper if group == "all" else paper & ~sel
        own = linear_fit(x[sel], y[sel])
        r, lo, hi = _effective_robustness(x, y, bx, by, sel, against, level)
        verdict = "" if group == "all" else shift_verdict(lo, hi, margin, n_in, n_out, min_volumes)
        out.append({"shift": shift, "group": group, "fitted": group == "all" or group in FIT_GROUPS,
                    "n_points": int(sel.sum()), "slope": own.slope, "intercept": own.intercept, "r2": own.r2,
                    "residual": r, "residual_low": lo, "residual_high": hi, "verdict": verdict,
                    "n_boot": int(valid.sum()), "n_volumes_in": n_in, "n_volumes_out": n_out, "paired": paired})
    return out


def _effective_robustness(x, y, bx, by, sel, against, level) -> tuple[float, float, float]:
    """Mean residual of the points ``sel`` to the least-squares line of the points ``against``, and its percentile
    interval over the bootstrap means bx, by [n_boot, points] (the line refitted on each); NaN without a line."""
    line = linear_fit(x[against], y[against])
    if math.isnan(line.slope):
        return math.nan, math.nan, math.nan
    r = float((y[sel] - line.predict(x[sel])).mean())
    slope, intercept = _batched_fit(bx[:, against], by[:, against])
    dist = (by[:, sel] - (slope[:, None] * bx[:, sel] + intercept[:, None])).mean(1)
    return (r, *percentile_interval(dist, level))


def filtered_slices(filter_ssim: pd.DataFrame, fraction: float) -> pd.DataFrame:
    """The worst ceil(fraction·n) slices (at least one) by the filter's SSIM, lowest first, ties by
    (stem, slice). ``filter_ssim`` has columns stem, slice, ssim."""
    if not isinstance(fraction, (int, float)) or isinstance(fraction, bool) or not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction!r}")
    if filter_ssim.empty:
        raise ValueError("the filter variant has no evaluated slices to select from")
    keep = max(1, math.ceil(round(fraction * len(filter_ssim), 9)))
    ordered = filter_ssim[["stem", "slice", "ssim"]].sort_values(["ssim", "stem", "slice"], kind="stable")
    return ordered.head(keep).reset_index(drop=True)


#: Smallest gap Q→Q − P→Q (SSIM) whose share closed is reported: below it the share divides by noise (a gap of
#: 0.001 turned a TTT that lowered SSIM by 0.1 into "16,000 % closed"), and there is nothing for TTT to close.
MIN_GAP = 0.005


def gap_closed(p_to_q, p_to_q_ttt, q_to_q, min_gap: float = 0.0):
    """(P→Q+TTT − P→Q) / (Q→Q − P→Q); NaN where the gap is 0 or, given ``min_gap``, not above it. Scalars or
    arrays/Series."""
    pq, ttt, qq = (np.asarray(v, dtype=float) for v in (p_to_q, p_to_q_ttt, q_to_q))
    gap = qq - pq
    valid = (gap != 0) & (gap > min_gap) if min_gap > 0 else gap != 0
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(valid, (ttt - pq) / np.where(valid, gap, 1), np.nan)
    if isinstance(p_to_q, pd.Series):
        return pd.Series(out, index=p_to_q.index)
    return float(out) if out.ndim == 0 else out


def number_text(v: float | None, digits: int = 3, negative_zero: bool = True) -> str:
    """A number with a true minus sign, "–" for a missing one; ``negative_zero=False`` writes a value that rounds
    to zero without its sign ("0.000", not "−0.000")."""
    if v is None or pd.isna(v):
        return "–"
    text = f"{v:.{digits}f}"
    if not negative_zero and float(text) == 0:
        return text.lstrip("-")
    return text.replace("-", "−")


def residuals_markdown(fits: pd.DataFrame) -> str:
    """The fit table as Markdown: slope, intercept, R², the residual with its bootstrap interval (a papers'
    group against the line without it, any other family against the common line) and the verdict."""
    lines = ["| shift | group | points | slope | intercept | R² | effective robustness [95% CI] | verdict |",
             "|---|---|---|---|---|---|---|---|"]
    for r in fits.itertuples(index=False):
        # the residual point estimate of group "all" is zero by construction (least squares): no sign for rounding noise
        resid = (f"{number_text(r.residual, negative_zero=False)} [{number_text(r.residual_low)}, "
                 f"{number_text(r.residual_high)}]")
        group = r.group if r.fitted else f"{r.group} (not fitted)"
        verdict = r.verdict if isinstance(r.verdict, str) and r.verdict else "–"
        lines.append(f"| {r.shift} | {group} | {r.n_points} | {number_text(r.slope)} | {number_text(r.intercept)} "
                     f"| {number_text(r.r2)} | {resid} | {verdict} |")
    return "\n".join(lines)
