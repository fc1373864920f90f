"""The attack verdicts: is every family vulnerable to the adversarial perturbation, and are the networks more
vulnerable than ℓ1? Computed per attacked variant from the per-slice attack rows (rule ``attack``), at the
study's ε = 0.08 when it was attacked, else the largest ε.

Per variant, on its attacked slices:

* the excess drop = mean over slices of (drop under the attack − drop under random noise of the same norm),
  in PSNR (dB; the attack's objective, which decides) and SSIM (shown beside it), with a percentile interval from a
  bootstrap that resamples whole volumes (:func:`robustcs.shifts.volume_bootstrap_means`); the variant is
  *vulnerable* when the PSNR interval lies wholly above ``margin_db``, *not vulnerable* when it lies wholly below,
  undecided otherwise;
* the relative drop = mean over slices of (PSNR drop under the attack / clean PSNR), and its difference to the
  reference ℓ1 variant's, with a *paired* bootstrap interval: every variant is attacked on the same slices, so one
  draw of volumes serves every variant and the slice-to-slice spread common to all methods cancels in the
  difference. *No more vulnerable than ℓ1* when the interval's upper bound is ≤ ``comparison_margin``, *clearly
  more vulnerable* when its lower bound is above it, undecided otherwise.

Both verdicts are undecided when fewer than ``min_volumes`` volumes were attacked. When several ℓ1 variants were
attacked, the reference is the one with the best mean clean SSIM on the attacked slices (name breaks ties): the
variant a user would pick, as the tuning does on the validation split.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .families import PAPER_FAMILIES
from .shifts import MIN_VOLUMES, percentile_interval, volume_bootstrap_means
from .tables import family_sorted, frame_markdown

#: The ε of the study's attacks (a share of the full k-space norm): judged when attacked, else the largest ε.
STUDY_EPSILON = 0.08
#: The family the networks are compared with (the papers' traditional method).
REFERENCE_FAMILY = "l1"
#: The papers' network families (compared with the reference).
NETWORK_FAMILIES = tuple(f for f in PAPER_FAMILIES if f != REFERENCE_FAMILY)
MARGIN_DB = 1.0
COMPARISON_MARGIN = 0.05
N_BOOT = 2000
#: comparison labels
NO_MORE, MORE, UNDECIDED, REFERENCE = "no more vulnerable", "clearly more vulnerable", "undecided", "reference"

_NEEDED = ["dataset", "mask", "family", "method", "stem", "slice", "epsilon", "kind", "ssim", "psnr"]
_CASE = ["dataset", "mask"]
_VARIANT = ["dataset", "mask", "family", "method"]


def chosen_epsilon(epsilons) -> float:
    """The study's ε when it is among ``epsilons`` (to float precision), else the largest one."""
    eps = np.unique(np.asarray(list(epsilons), dtype=float))
    eps = eps[eps > 0]
    if not eps.size:
        raise ValueError("attack rows: no ε > 0 among the perturbed rows")
    hit = eps[np.isclose(eps, STUDY_EPSILON, rtol=0, atol=1e-9)]
    return float(hit[0]) if hit.size else float(eps.max())


def slice_drops(per_slice: pd.DataFrame) -> pd.DataFrame:
    """One row per attacked slice of each variant at its case's :func:`chosen_epsilon`: the clean PSNR/SSIM, the
    drops (clean − perturbed) under the attack and under the noise, the excess (attack − noise) and the relative
    PSNR drop (attack drop / clean PSNR). Every perturbed row is paired with its slice's clean row."""
    missing = [c for c in _NEEDED if c not in per_slice.columns]
    if missing:
        raise ValueError(f"per-slice attack table lacks columns {missing}")
    keys = [*_VARIANT, "stem", "slice"]
    clean = per_slice[per_slice["kind"] == "clean"].set_index(keys)[["ssim", "psnr"]]
    if clean.index.duplicated().any():
        raise ValueError(f"per-slice attack table: several clean rows for {clean.index[clean.index.duplicated()][0]}")
    parts = []
    for case, rows in per_slice[per_slice["kind"] != "clean"].groupby(_CASE, sort=False):
        eps = chosen_epsilon(rows["epsilon"])
        at = rows[np.isclose(rows["epsilon"].astype(float), eps, rtol=0, atol=1e-9)]
        adv = at[at["kind"] == "adversarial"].set_index(keys)[["ssim", "psnr"]]
        rnd = at[at["kind"] == "random"].set_index(keys)[["ssim", "psnr"]]
        if not adv.index.sort_values().equals(rnd.index.sort_values()) or not adv.index.isin(clean.index).all():
            raise ValueError(f"attack rows of {case} at ε = {eps:g}: adversarial, random and clean rows are not "
                             "on the same slices")
        rnd, base = rnd.loc[adv.index], clean.loc[adv.index]
        out = pd.DataFrame({"epsilon": eps, "psnr_clean": base["psnr"], "ssim_clean": base["ssim"]}, index=adv.index)
        for m in ("psnr", "ssim"):
            out[f"{m}_drop"] = base[m] - adv[m]
            out[f"{m}_drop_random"] = base[m] - rnd[m]
            out[f"{m}_excess"] = out[f"{m}_drop"] - out[f"{m}_drop_random"]
        out["relative_drop"] = out["psnr_drop"] / out["psnr_clean"]
        parts.append(out.reset_index())
    if not parts:
        raise ValueError("per-slice attack table has no adversarial or random rows")
    return pd.concat(parts, ignore_index=True)


def reference_method(drops: pd.DataFrame) -> str | None:
    """The ℓ1 variant the networks are compared with (best mean clean SSIM, then name); None if none attacked."""
    ref = drops[drops["family"] == REFERENCE_FAMILY]
    if ref.empty:
        return None
    ssim = ref.groupby("method")["ssim_clean"].mean().reset_index()
    return str(ssim.sort_values(["ssim_clean", "method"], ascending=[False, True]).iloc[0]["method"])


def vulnerable_label(low: float, high: float, margin_db: float, enough: bool) -> str:
    """"yes" when the excess PSNR interval lies above the margin, "no" wholly below it, else "undecided"."""
    if not enough or not (np.isfinite(low) and np.isfinite(high)):
        return "undecided"
    return "yes" if low > margin_db else ("no" if high < margin_db else "undecided")


def comparison_label(low: float, high: float, margin: float, enough: bool) -> str:
    """The difference of relative drops (variant − ℓ1): :data:`NO_MORE`, :data:`MORE` or :data:`UNDECIDED`."""
    if not enough or not (np.isfinite(low) and np.isfinite(high)):
        return UNDECIDED
    return NO_MORE if high <= margin else (MORE if low > margin else UNDECIDED)


def _matrix(case: pd.DataFrame) -> tuple[list[str], pd.DataFrame]:
    """(variants, slices × (variant, quantity) table) of one case; every variant on the same slices."""
    methods = list(dict.fromkeys(case["method"]))
    wide = case.pivot_table(index=["stem", "slice"], columns="method", aggfunc="first",
                            values=["psnr_excess", "ssim_excess", "relative_drop"])
    lacking = sorted({m for (_, m) in wide.columns[wide.isna().any(axis=0)]})
    if lacking:
        raise ValueError(f"attack case {tuple(case[_CASE].iloc[0])}: variants {lacking} lack attacked slices that "
                         "others have (every variant must be attacked on the same slices)")
    return methods, wide.sort_index()


def case_verdicts(case: pd.DataFrame, margin_db: float, comparison_margin: float, min_volumes: int,
                  n_boot: int, seed: int, level: float) -> pd.DataFrame:
    """The verdict rows of one (dataset, mask) case (rows of :func:`slice_drops`); see the module docstring."""
    methods, wide = _matrix(case)
    stems = wide.index.get_level_values("stem")
    volumes = len(set(stems))
    enough = volumes >= min_volumes
    quantities = ("psnr_excess", "ssim_excess", "relative_drop")
    values = np.stack([wide[(q, m)].to_numpy(dtype=float) for q in quantities for m in methods])
    key = "/".join(map(str, case[_CASE].iloc[0]))
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), *key.encode()]))
    boot = volume_bootstrap_means(values, stems, rng, n_boot).reshape(n_boot, len(quantities), len(methods))
    ref = reference_method(case)
    rows = []
    for j, method in enumerate(methods):
        part = case[case["method"] == method]
        fam = part["family"].iloc[0]
        row = {**dict(zip(_VARIANT, part[_VARIANT].iloc[0])), "in_papers": fam in PAPER_FAMILIES,
               "epsilon": float(part["epsilon"].iloc[0]), "slices": len(part), "volumes": volumes}
        for col in ("psnr_clean", "ssim_clean", "psnr_drop", "psnr_drop_random", "ssim_drop", "ssim_drop_random"):
            row[col] = float(part[col].mean())
        for i, q in enumerate(quantities[:2]):
            row[q] = float(wide[(q, method)].mean())
            row[f"{q}_low"], row[f"{q}_high"] = percentile_interval(boot[:, i, j], level)
        row["relative_drop"] = float(wide[("relative_drop", method)].mean())
        row.update(_versus_reference(wide, boot, methods, method, ref, level))
        row["reference"] = ref if ref is not None else ""
        row["margin_db"], row["comparison_margin"] = float(margin_db), float(comparison_margin)
        row["vulnerable"] = vulnerable_label(row["psnr_excess_low"], row["psnr_excess_high"], margin_db, enough)
        if method == ref:
            row["comparison"] = REFERENCE
        else:
            row["comparison"] = comparison_label(row["vs_l1_low"], row["vs_l1_high"], comparison_margin, enough)
        notes = [] if enough else [f"{volumes} volume(s) attacked, fewer than findings.min_volumes = {min_volumes}"]
        if ref is None:
            notes.append("no ℓ1 variant attacked: no comparison")
        row["note"] = "; ".join(notes)
        rows.append(row)
    return pd.DataFrame(rows)


def _versus_reference(wide, boot, methods, method, ref, level) -> dict:
    """The difference of relative drops (variant − reference) with its paired interval (the same draws)."""
    if ref is None:
        return {"vs_l1": np.nan, "vs_l1_low": np.nan, "vs_l1_high": np.nan}
    diff = wide[("relative_drop", method)] - wide[("relative_drop", ref)]
    low, high = percentile_interval(boot[:, 2, methods.index(method)] - boot[:, 2, methods.index(ref)], level)
    return {"vs_l1": float(diff.mean()), "vs_l1_low": low, "vs_l1_high": high}


def attack_verdicts(per_slice: pd.DataFrame, margin_db: float = MARGIN_DB, comparison_margin: float = COMPARISON_MARGIN,
                    min_volumes: int = MIN_VOLUMES, n_boot: int = N_BOOT, seed: int = 0,
                    level: float = 0.95) -> pd.DataFrame:
    """One row per attacked variant and (dataset, mask) of the per-slice attack rows (module docstring): its ε,
    slices and volumes, mean clean PSNR/SSIM, mean drops under the attack and the noise, the excess (attack − noise)
    in PSNR and SSIM with intervals, the relative PSNR drop and its difference to the reference ℓ1 variant's
    (``vs_l1``, paired interval), the margins, ``vulnerable`` (yes/no/undecided), ``comparison`` and a note."""
    if not (np.isfinite(margin_db) and np.isfinite(comparison_margin)):
        raise ValueError(f"findings.attack_margin_db / attack_comparison_margin must be numbers, got "
                         f"{margin_db!r} / {comparison_margin!r}")
    if int(min_volumes) < 1 or int(n_boot) < 1:
        raise ValueError(f"findings.min_volumes and the bootstrap count must be ≥ 1, got {min_volumes}, {n_boot}")
    drops = slice_drops(per_slice)
    out = pd.concat([case_verdicts(case, margin_db, comparison_margin, int(min_volumes), int(n_boot), seed, level)
                     for _, case in drops.groupby(_CASE, sort=False)], ignore_index=True)
    return family_sorted(out, _CASE)


def verdicts_markdown(table: pd.DataFrame) -> str:
    """The verdict table as Markdown: intervals as '[low, high]' beside their estimate."""
    shown = table.copy()
    for q, digits in (("psnr_excess", 2), ("ssim_excess", 3), ("vs_l1", 3)):
        shown[q] = [f"{v:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]" if np.isfinite(v) else "—"
                    for v, lo, hi in zip(table[q], table[f"{q}_low"], table[f"{q}_high"])]
        shown = shown.drop(columns=[f"{q}_low", f"{q}_high"])
    return frame_markdown(shown, digits=3)
