"""Attack effort that is shown, not assumed: the attack rerun with more steps on a few slices.

Every method is attacked with the same number of steps on the same decaying schedule (:mod:`robustcs.attacks`),
but equal step counts are not equal effort: an attack that is still far from its optimum under-states a
method's sensitivity, and the loss curve of a cosine schedule flattens at its end whatever the attack has
reached (its last 10 % of steps are at most 2.5 % of the first step). So, on a subset of the attacked slices
(config ``attacks.effort``: one central slice of each of the first ``slices`` test files, stems sorted), each
attacked variant is attacked again at the largest ε with ``factor`` × the steps for every configured factor, the
same schedule shape, slice seed and random start as the main attack; the base step count is rerun beside
them. Each perturbation is scored as the main attack's are: the method rerun from scratch on y + e, PSNR and
SSIM against the reference, the drop from the clean reconstruction of the same slice (:func:`effort_rows`).

:func:`effort_verdicts` then asks, per variant, whether the mean PSNR drop still moves when the steps grow:
converged when every step from one step count to the next (base → 2× → 4×) changes the mean drop by less
than a tolerance (config ``findings.attack_effort_tolerance_db``, docs/methods.md says why its default).

This module's top level imports only the standard library: the study model (:mod:`robustcs.study`) checks the
``effort`` block with :func:`effort_settings` on a machine that may have only Snakemake.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from .specs import AttackSpec

#: Defaults of the ``attacks.effort`` block's keys.
EFFORT_DEFAULTS = {"slices": 2, "factors": [2, 4]}
#: Columns :func:`effort_verdicts` needs in the effort table.
REQUIRED = ("family", "method", "epsilon", "stem", "slice", "steps", "psnr_drop")
#: Columns of :func:`effort_verdicts` after the grouping keys.
VERDICT_COLUMNS = ["epsilon", "slices", "base_steps", "max_steps", "drop_base", "drop_2x", "drop_more", "change_2x_db",
                   "change_db", "max_step_change_db", "converged", "details"]


def _is_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def effort_settings(block) -> dict | None:
    """The ``attacks.effort`` block checked, defaults filled in: {"slices": int, "factors": sorted ints > 1};
    None when the block is absent (no effort check is run). Errors name the key."""
    if block is None:
        return None
    if not isinstance(block, dict):
        raise ValueError(f"expected a mapping with keys {sorted(EFFORT_DEFAULTS)}, got {block!r}")
    if unknown := sorted(set(block) - set(EFFORT_DEFAULTS)):
        raise ValueError(f"unknown key(s) {unknown}; expected some of {sorted(EFFORT_DEFAULTS)}")
    out = {**EFFORT_DEFAULTS, **block}
    if not (_is_int(out["slices"]) and out["slices"] >= 1):
        raise ValueError(f"slices must be a positive integer (test files, one central slice each), "
                         f"got {out['slices']!r}")
    factors = out["factors"]
    if (not isinstance(factors, (list, tuple)) or not factors
            or not all(_is_int(f) and f >= 2 for f in factors) or len(set(factors)) != len(factors)):
        raise ValueError(f"factors must be a non-empty list of distinct integers >= 2 (multiples of attacks.steps), "
                         f"got {factors!r}")
    return {"slices": int(out["slices"]), "factors": sorted(int(f) for f in factors)}


def effort_specs(spec: AttackSpec, factors: list[int]) -> list[tuple[int, AttackSpec]]:
    """(factor, spec) of every rerun: the largest ε alone, the base steps (factor 1), then factor × the steps;
    everything else (schedule, step size, start, batch) as the main attack's ``spec``."""
    single = dataclasses.replace(spec, epsilons=(max(spec.epsilons),))
    return [(k, dataclasses.replace(single, steps=k * spec.steps)) for k in [1, *sorted(factors)]]


def effort_rows(method, items: list, spec: AttackSpec, factors: list[int], seeds: list[int], tqdm_file=None,
                log=None) -> list[dict]:
    """Attack ``items`` (SliceInputs, one seed each: the main attack's slice seeds) at the largest ε of ``spec``
    with the base steps and every factor × them (:func:`effort_specs`, :func:`robustcs.attacks.attack_slices`,
    no random-noise scoring); one row per (steps, slice): the attack's objective (best and last), its
    convergence (plateau rise), PSNR/SSIM clean and attacked and their drops. The time per slice goes to the log
    only: the table must be the same bytes on every run."""
    from .attacks import attack_slices, plateau_rise
    from .metrics import slice_metrics

    rows = []
    for factor, rerun in effort_specs(spec, factors):
        start = time.perf_counter()
        found = attack_slices(method, items, rerun, seeds, tqdm_file, noise=False)
        seconds = (time.perf_counter() - start) / max(1, len(items))
        for item, res in zip(items, found):
            clean = slice_metrics(item.target, res.clean, item.maxval)
            attacked = slice_metrics(item.target, res.adversarial[0], item.maxval)
            losses = res.losses[0]
            rows.append({"family": method.family, "method": method.name, "epsilon": rerun.epsilons[0],
                         "stem": item.stem, "slice": item.slice, "factor": factor, "steps": rerun.steps,
                         "loss": max(losses), "loss_last": losses[-1], "plateau_rise": plateau_rise(losses),
                         "norm": res.norms[0], "budget": res.budgets[0],
                         "psnr_clean": clean["psnr"], "psnr_attacked": attacked["psnr"],
                         "psnr_drop": clean["psnr"] - attacked["psnr"], "ssim_clean": clean["ssim"],
                         "ssim_attacked": attacked["ssim"], "ssim_drop": clean["ssim"] - attacked["ssim"]})
            if log is not None:
                log.info("%s %s[%d] eps %g, %d steps: loss %.4g, PSNR drop %.2f dB (%.1f s per slice)", method.name,
                         item.stem, item.slice, rerun.epsilons[0], rerun.steps, rows[-1]["loss"],
                         rows[-1]["psnr_drop"], seconds)
    return rows


def _check_table(effort: pd.DataFrame, tolerance_db: float) -> None:
    if isinstance(tolerance_db, bool) or not isinstance(tolerance_db, numbers.Real) or not (
            math.isfinite(tolerance_db) and tolerance_db > 0):
        raise ValueError(f"findings.attack_effort_tolerance_db must be a positive number (dB), got {tolerance_db!r}")
    if missing := [c for c in REQUIRED if c not in effort.columns]:
        raise ValueError(f"attack effort table: missing column(s) {missing}")


def _verdict(method: str, group: pd.DataFrame, tolerance_db: float) -> dict:
    """One variant's rows at its largest ε: the mean PSNR drop per step count and what more steps changed."""
    eps = float(group["epsilon"].max())
    group = group[group["epsilon"] == eps]
    slices = {steps: frozenset(zip(g["stem"], g["slice"])) for steps, g in group.groupby("steps")}
    if len(slices) < 2:
        raise ValueError(f"attack effort of {method}: needs the base steps and at least one larger step count, "
                         f"got steps {sorted(slices)}")
    if len(set(slices.values())) != 1:
        raise ValueError(f"attack effort of {method}: the step counts {sorted(slices)} ran on different slices")
    if group.duplicated(["steps", "stem", "slice"]).any():
        raise ValueError(f"attack effort of {method}: a (steps, stem, slice) appears twice")
    if not group["psnr_drop"].map(math.isfinite).all():
        raise ValueError(f"attack effort of {method}: non-finite psnr_drop")
    means = group.groupby("steps")["psnr_drop"].mean().sort_index()
    base, most = int(means.index[0]), int(means.index[-1])
    changes = means.diff().iloc[1:]
    largest = float(changes.abs().max())
    converged = bool((changes.abs() < tolerance_db).all())
    drop_2x = float(means[2 * base]) if 2 * base in means.index else float("nan")
    levels = ", ".join(f"{d:.2f} dB at {s} steps" for s, d in means.items())
    details = (f"mean PSNR drop on {len(next(iter(slices.values())))} slices at ε {eps:g}: {levels}; largest change "
               f"between successive step counts {largest:.2f} dB (tolerance {tolerance_db:g} dB)")
    if not converged:
        details += f"; the attack at {base} steps is not converged: more steps still move the drop"
    return {"epsilon": eps, "slices": len(next(iter(slices.values()))), "base_steps": base, "max_steps": most,
            "drop_base": float(means.iloc[0]), "drop_2x": drop_2x, "drop_more": float(means.iloc[-1]),
            "change_2x_db": drop_2x - float(means.iloc[0]), "change_db": float(means.iloc[-1] - means.iloc[0]),
            "max_step_change_db": largest, "converged": converged, "details": details}


def effort_verdicts(effort: pd.DataFrame, tolerance_db: float) -> pd.DataFrame:
    """One row per attacked variant (and dataset and mask, where the table has those columns): family, method,
    base_steps, max_steps, drop_base / drop_2x / drop_more (mean PSNR drop, clean − attacked, in dB, at the
    base steps, twice them and the most steps), change_2x_db and change_db (drop at 2× and at the most steps −
    drop at the base), max_step_change_db (largest |change| between successive step counts), converged (every
    such change < ``tolerance_db``) and details. ``effort``: the rows of :func:`effort_rows`
    (results/tables/attack_effort.csv); only each variant's largest ε is read."""
    import pandas as pd

    _check_table(effort, tolerance_db)
    keys = [c for c in ("dataset", "mask") if c in effort.columns] + ["family", "method"]
    rows = []
    for key, group in effort.groupby(keys, sort=True):
        rows.append({**dict(zip(keys, key)), **_verdict(str(key[-1]), group, float(tolerance_db))})
    return pd.DataFrame(rows, columns=[*keys, *VERDICT_COLUMNS])
