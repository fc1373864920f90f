"""Distribution shifts: the in- vs out-of-distribution linear fit, effective robustness, the adversarially
filtered target set, and test-time training's share of the gap closed.

Study (ICML 2021, ../shared/docs/study.md §6): every method variant tuned or trained on a source P is one
point, x = its SSIM on P's test slices (in distribution), y = its SSIM on the shifted set Q (out of
distribution). Groups: ℓ1, un-trained (ConvDecoder), U-Net, VarNet. The figure shows the least-squares line
over all points, one per group and y = x; the finding is that all groups lie close to one line.

Here, per shift:

* ``shift_points``: the mean SSIM of each variant on both sides (every variant on the same slices);
* ``fit_table``: least squares over all fitted points ("all") and per group, with slope, intercept and R²,
  and each group's *effective robustness* (Taori et al. 2020): the mean residual of its points to the
  common line, y − (a·x + b), with a percentile bootstrap interval. A bootstrap resample draws the
  *volumes* of each side with replacement, each with all its slices (slices of one volume are not
  independent; :func:`volume_bootstrap_means`), the same draw for every variant so the pairing across
  variants stays, recomputes every variant's means, refits the common line and the residuals. With one
  volume on a side the interval cannot see between-volume variation (it is then as narrow as the slices
  make it: report it with the volume count, ``n_volumes_in``/``n_volumes_out``). Families outside
  :data:`~robustcs.families.FIT_GROUPS` (the zero-filled baseline) are plotted but take part in no fit;
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
FIT_COLUMNS = ["shift", "group", "n_points", "slope", "intercept", "r2", "residual", "residual_low",
               "residual_high", "n_boot", "n_volumes_in", "n_volumes_out"]


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


def volume_bootstrap_means(values: np.ndarray, stems, rng: np.random.Generator, n_boot: int) -> np.ndarray:
    """Bootstrap means of each row of ``values`` [rows, slices] resampling whole volumes: ``stems`` names the
    volume of each column; a resample draws as many volumes as there are, with replacement, and weights each
    column by how often its volume was drawn. Returns [n_boot, rows]. The same draw serves every row."""
    labels, volume_of = np.unique(np.asarray(stems), return_inverse=True)
    draws = rng.integers(0, len(labels), size=(n_boot, len(labels)))
    counts = np.zeros((n_boot, len(labels)))
    np.add.at(counts, (np.repeat(np.arange(n_boot), len(labels)), draws.ravel()), 1.0)
    weights = counts[:, volume_of]  # [n_boot, slices]
    return (weights @ values.T) / weights.sum(1, keepdims=True)


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


def fit_table(per_slice: pd.DataFrame, n_boot: int = 1000, seed: int = 0, level: float = 0.95) -> pd.DataFrame:
    """Per shift: the common line ("all") and one line per group present, with the groups' effective
    robustness and its bootstrap interval (see the module docstring)."""
    _check_columns(per_slice)
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot}")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    out = []
    for shift in _shifts(per_slice):
        methods, families, mats, stems = _matrices(per_slice[per_slice["shift"] == shift], shift)
        fitted = np.array([f in FIT_GROUPS for f in families])
        fam = np.array(families)
        x_in, y_out = mats["in"][fitted], mats["out"][fitted]
        x, y = x_in.mean(1), y_out.mean(1)
        common = linear_fit(x, y)
        rng = np.random.default_rng(np.random.SeedSequence([int(seed), *shift.encode()]))
        bx = volume_bootstrap_means(x_in, stems["in"], rng, n_boot)  # [n_boot, points]
        by = volume_bootstrap_means(y_out, stems["out"], rng, n_boot)
        b_slope, b_int = _batched_fit(bx, by)
        b_resid = by - (b_slope[:, None] * bx + b_int[:, None])
        resid = y - common.predict(x)
        groups = ["all", *[g for g in FIT_GROUPS if g in fam[fitted]]]
        for group in groups:
            sel = np.ones(len(x), bool) if group == "all" else fam[fitted] == group
            line = common if group == "all" else linear_fit(x[sel], y[sel])
            if math.isnan(common.slope):
                r = lo = hi = math.nan
            else:
                r = float(resid[sel].mean())
                dist = b_resid[:, sel].mean(1)
                dist = dist[np.isfinite(dist)]
                lo, hi = (np.quantile(dist, [(1 - level) / 2, (1 + level) / 2]) if dist.size else (math.nan, math.nan))
            out.append({"shift": shift, "group": group, "n_points": int(sel.sum()), "slope": line.slope,
                        "intercept": line.intercept, "r2": line.r2, "residual": r, "residual_low": float(lo),
                        "residual_high": float(hi), "n_boot": n_boot, "n_volumes_in": len(set(stems["in"])),
                        "n_volumes_out": len(set(stems["out"]))})
    return pd.DataFrame(out, columns=FIT_COLUMNS)


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
    """The fit table as Markdown: slope, intercept, R² and the residual with its bootstrap interval."""
    lines = ["| shift | group | points | slope | intercept | R² | effective robustness [95% CI] |",
             "|---|---|---|---|---|---|---|"]
    for r in fits.itertuples(index=False):
        # the residual point estimate of group "all" is zero by construction (least squares): no sign for rounding noise
        resid = (f"{number_text(r.residual, negative_zero=False)} [{number_text(r.residual_low)}, "
                 f"{number_text(r.residual_high)}]")
        lines.append(f"| {r.shift} | {r.group} | {r.n_points} | {number_text(r.slope)} | {number_text(r.intercept)} | {number_text(r.r2)} "
                     f"| {resid} |")
    return "\n".join(lines)
