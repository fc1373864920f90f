"""The clean-ordering verdict of the findings table (robustcs.findings.clean_ordering).

Each of the papers' four families is represented by its variant chosen on the source's validation split
(tables/tuning.csv: the highest validation SSIM, ties by name), never by its best variant on the test slices
(that choice would look at the test split twice and favour a family with many variants). A family without a
validation choice is missing, and the verdict is then undecided. The representatives' mean PSNR and mean SSIM
over the clean test volumes (the clean table: each volume's PSNR over all its voxels, as fastmri.evaluate) are
ordered per metric; differences smaller than a tolerance (config ``findings.clean_tie_db``,
``findings.clean_tie_ssim``) are ties.

On each metric the papers' ordering makes two claims: the VarNet lies above every other family, ℓ1 below every
other family. A claim *holds* when every margin is at least the tolerance, *fails* when some rival beats it by
at least the tolerance, and otherwise *hinges on a tie*. The verdict is "no" when any of the four claims (two per
metric) fails, "yes" when all four hold, and undecided otherwise.
"""

from __future__ import annotations

import math

import pandas as pd

from .families import PAPER_FAMILIES, family

#: Default tolerances: differences below these count as ties (config findings.clean_tie_db / clean_tie_ssim).
TIE_DB = 0.2
TIE_SSIM = 0.002
#: The papers' best and worst family on clean data (their reported PSNR).
BEST = max(PAPER_FAMILIES, key=lambda f: family(f).papers_psnr)
WORST = min(PAPER_FAMILIES, key=lambda f: family(f).papers_psnr)
#: (column of the clean table, label, decimals, unit) of each judged metric, PSNR first (the papers' metric).
METRICS = (("psnr_mean", "PSNR", 2, " dB"), ("ssim_mean", "SSIM", 3, ""))


def check_tolerances(tie_db: float, tie_ssim: float) -> None:
    """A ValueError naming the config field unless both tolerances are numbers >= 0."""
    for key, value in (("clean_tie_db", tie_db), ("clean_tie_ssim", tie_ssim)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
            raise ValueError(f"config findings.{key}: expected a number >= 0, got {value!r}")


def representatives(rows: pd.DataFrame, tuning: pd.DataFrame | None) -> tuple[pd.DataFrame, dict[str, str]]:
    """(the clean-table rows of each papers' family's validation choice, indexed by family; {missing family: why}).
    ``rows``: the clean table of one (dataset, mask); ``tuning``: tables/tuning.csv (None: no tuning ran)."""
    selected = pd.DataFrame(columns=["family", "method"]) if tuning is None or tuning.empty else \
        tuning[tuning["selected"].astype(bool)]
    chosen, missing = {}, {}
    for fam in PAPER_FAMILIES:
        picks = sorted(selected.loc[selected["family"] == fam, "method"])
        if not picks:
            missing[fam] = "no variant scored on the validation split"
            continue
        hit = rows[rows["method"] == picks[0]]
        if hit.empty:
            missing[fam] = f"its validation choice {picks[0]} is not in the clean test table"
            continue
        chosen[fam] = hit.iloc[0]
    return pd.DataFrame(list(chosen.values()), index=list(chosen)), missing


def claim(values: pd.Series, fam: str, tol: float, above: bool) -> tuple[bool | None, list[str]]:
    """Whether ``fam`` lies above (``above``) or below every other family of ``values`` by at least ``tol``: True;
    False when some rival beats the claim by at least ``tol``; None when it hinges on a tie. With the rivals that
    decide a False or None."""
    margin = (values[fam] - values.drop(fam)) * (1 if above else -1)
    beaten = margin[(margin < 0) & (-margin >= tol)]
    if len(beaten):
        return False, list(beaten.index)
    tied = margin[~((margin > 0) & (margin >= tol))]
    return (None, list(tied.index)) if len(tied) else (True, [])


def order_text(values: pd.Series, tol: float, digits: int, unit: str) -> str:
    """The families best to worst, '≈' between neighbours closer than ``tol``, e.g. 'varnet 31.20 > unet 30.10 ≈ …'."""
    order = values.sort_values(ascending=False, kind="stable")
    text = f"{order.index[0]} {order.iloc[0]:.{digits}f}"
    for i in range(1, len(order)):
        sign = "≈" if order.iloc[i - 1] - order.iloc[i] < tol else ">"
        text += f" {sign} {order.index[i]} {order.iloc[i]:.{digits}f}"
    return text + unit


def _reason(fam: str, ok: bool | None, rivals: list[str], values: pd.Series, above: bool, digits: int,
            unit: str, tol: float) -> str:
    word = "best" if above else "worst"
    if ok:
        return f"{fam} {word}"
    gaps = ", ".join(f"{r} {abs(values[r] - values[fam]):.{digits}f}{unit}" for r in rivals)
    if ok is False:
        return f"{fam} not {word}: {gaps} {'above' if above else 'below'} it"
    return f"{fam} {word} only within the tie tolerance ({tol:g}{unit}): {gaps} from it"


def clean_verdict(rows: pd.DataFrame, tuning: pd.DataFrame | None, tie_db: float = TIE_DB,
                  tie_ssim: float = TIE_SSIM) -> tuple[bool | None, str, list[str]]:
    """(verdict, measured cell, detail parts) of the clean ordering on the clean rows of one (dataset, mask)."""
    check_tolerances(tie_db, tie_ssim)
    chosen, missing = representatives(rows, tuning)
    tolerances = {"psnr_mean": tie_db, "ssim_mean": tie_ssim}
    cells, claims = [], []
    for column, label, digits, unit in METRICS:
        if chosen.empty:
            break
        values = chosen[column].astype(float)
        if values.isna().any():
            missing.update({f: f"no {label} in the clean table" for f in values.index[values.isna()]})
            continue
        cells.append(f"{label}: {order_text(values, tolerances[column], digits, unit)}")
        if BEST in values.index and WORST in values.index and not missing:
            for fam, above in ((BEST, True), (WORST, False)):
                ok, rivals = claim(values, fam, tolerances[column], above)
                claims.append((ok, f"{label}: " + _reason(fam, ok, rivals, values, above, digits, unit,
                                                          tolerances[column])))
    verdicts = [ok for ok, _ in claims]
    ok = None if missing else (False if False in verdicts else (True if all(verdicts) else None))
    parts = []
    if len(chosen):
        parts.append("each family's variant chosen on the validation split (tables/tuning.csv: highest validation "
                     f"SSIM): {', '.join(f'{f} {m}' for f, m in chosen['method'].items())}")
    parts += [text for _, text in claims]
    parts.append(f"ties: differences under {tie_db:g} dB PSNR or {tie_ssim:g} SSIM")
    if missing:
        parts.append("families missing: " + "; ".join(f"{f} ({why})" for f, why in missing.items()))
    return ok, "; ".join(cells) or "no family with a validation choice", parts


def edge_notes(tuning: pd.DataFrame | None) -> list[str]:
    """One note per selected variant at the edge of its family's grid (tables/tuning.csv column at_edge)."""
    if tuning is None or tuning.empty or "at_edge" not in tuning.columns:
        return []
    notes = []
    for row in tuning[tuning["selected"].astype(bool) & tuning["at_edge"].astype(bool)].itertuples(index=False):
        grid = tuning.loc[tuning["family"] == row.family, "grid_value"].astype(float)
        end = "smallest" if math.isclose(float(row.grid_value), grid.min()) else "largest"
        notes.append(f"{row.family}: the validation choice {row.method} ({row.grid_setting} {float(row.grid_value):g}) "
                     f"is the {end} of its grid ({grid.min():g} … {grid.max():g}); widen the grid")
    return notes
