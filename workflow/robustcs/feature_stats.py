"""How firmly feature recovery tracks overall quality: the correlation across variants with a bootstrap interval
over test volumes, a permutation p-value, a second statistic that divides out the local error level, and the
three-way verdict of the findings table (docs/methods.md, "Feature verdict").

Inputs are per-feature (or per-box) tables, one row per (variant, feature): ``method``, ``stem``, ``slice``, the
item's own key (``index`` of a synthetic feature, ``line`` of a pathology box), the whole-slice ``ssim``
(repeated on every feature of the slice) and the feature metrics. A variant's point is (mean SSIM over its
slices, mean metric over its features), as in :func:`robustcs.tables.feature_summary`.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd

from .shifts import MIN_VOLUMES, paired_volume_bootstrap_means, percentile_interval

#: Two-sided level of the percentile intervals, and their bootstrap draws (a fraction of a second per table).
LEVEL = 0.95
BOOTSTRAP = 2000
#: Library defaults of the verdict (config findings.feature_min_correlation and findings.min_volumes).
MIN_CORRELATION = 0.3
#: Fewest variants for a correlation across them.
MIN_VARIANTS = 3
#: The second statistic: log10 of the feature's MSE over the MSE of the rest of its window (:func:`add_relative_error`).
RELATIVE_METRIC = "log_relative_mse"
#: Random orderings of the permutation test above EXACT_UP_TO variants (all orderings are enumerated up to it).
PERMUTATIONS = 9999
EXACT_UP_TO = 8
#: Floor of both MSEs in the ratio (images scaled to max 1: far below any reconstruction's error).
FLOOR = 1e-12
INTERVAL_COLUMNS = ("pearson_low", "pearson_high", "pearson_p", "volumes")


def _require(frame: pd.DataFrame, columns, what: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{what} lacks columns {missing}")


def ring_mse(per_feature: pd.DataFrame, margin: int) -> np.ndarray:
    """MSE over each feature's window without its footprint (the ring of ``margin`` pixels around it), from the
    window and footprint MSEs of :func:`robustcs.features.feature_metrics`: window MSE × window pixels − footprint
    MSE × footprint pixels, over the ring's pixels. The window is the box grown by ``margin`` on each side,
    which the placement keeps inside the image. NaN for every feature when ``margin`` is 0 (no ring)."""
    from .features import Feature  # torch-backed module: imported only where needed

    _require(per_feature, ["shape", "size", "mse_feature", "mse_window"], "per-feature table")
    if int(margin) != margin or margin < 0:
        raise ValueError(f"features margin {margin!r} must be a whole number >= 0")
    if margin == 0:
        return np.full(len(per_feature), np.nan)
    pixels = {}
    for shape, size in per_feature[["shape", "size"]].drop_duplicates().itertuples(index=False):
        feature = Feature(index=0, shape=shape, size=int(size), contrast=0.0, row=0, col=0)
        pixels[(shape, int(size))] = int(feature.footprint().sum())
    inside = np.array([pixels[(s, int(z))] for s, z in zip(per_feature["shape"], per_feature["size"])], dtype=float)
    window = (per_feature["size"].to_numpy(dtype=float) + 2 * margin) ** 2
    total = window * per_feature["mse_window"].to_numpy(dtype=float)
    ring = (total - inside * per_feature["mse_feature"].to_numpy(dtype=float)) / (window - inside)
    return np.maximum(ring, 0.0)  # a last-digit rounding below 0 is 0


def add_relative_error(per_feature: pd.DataFrame, margin: int) -> pd.DataFrame:
    """``per_feature`` with :data:`RELATIVE_METRIC` = log10(mse_feature / ring MSE) (:func:`ring_mse`; both
    floored at :data:`FLOOR`): how much worse the feature comes back than the pixels right around it in the
    same reconstruction. 0: the feature is recovered as well as its surroundings; a method whose error is
    uniformly higher has a higher MSE on the feature but the same ratio."""
    ring = ring_mse(per_feature, margin)
    feature = np.maximum(per_feature["mse_feature"].to_numpy(dtype=float), FLOOR)
    with np.errstate(invalid="ignore"):
        ratio = np.log10(feature) - np.log10(np.maximum(ring, FLOOR))
    return per_feature.assign(**{RELATIVE_METRIC: np.where(np.isnan(ring), np.nan, ratio)})


def pearson_rows(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Pearson correlation of each row of ``x`` with the same row of ``y`` ([n, k] each); NaN for a row without
    spread in either."""
    x = x - x.mean(axis=1, keepdims=True)
    y = y - y.mean(axis=1, keepdims=True)
    denom = np.sqrt((x * x).sum(axis=1) * (y * y).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denom > 0, (x * y).sum(axis=1) / np.where(denom > 0, denom, 1.0), np.nan)


def permutation_p(x: np.ndarray, y: np.ndarray, rng: np.random.Generator, n_perm: int = PERMUTATIONS) -> float:
    """Two-sided permutation p-value of Pearson(x, y) over the pairing of the values: the share of orderings
    of ``y`` whose |r| reaches the observed |r|, every ordering counted up to :data:`EXACT_UP_TO` values,
    else ``n_perm`` random ones plus the observed. NaN below 3 values or without spread."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    n = len(x)
    observed = pearson_rows(x[None], y[None])[0]
    if n < MIN_VARIANTS or math.isnan(observed):
        return float("nan")
    if n <= EXACT_UP_TO:
        orders = np.array(list(itertools.permutations(range(n))))
    else:
        shuffled = rng.permuted(np.tile(np.arange(n), (int(n_perm), 1)), axis=1)
        orders = np.vstack([np.arange(n)[None], shuffled])
    r = pearson_rows(np.broadcast_to(x, orders.shape), y[orders])
    return float(np.mean(np.abs(r) >= abs(observed) - 1e-12))


def _wide(rows: pd.DataFrame, methods: list[str], keys: list[str], value: str, what: str) -> pd.DataFrame:
    """[variants, items] of ``value``; every variant must have every item (keys) exactly once."""
    if rows.duplicated(["method", *keys]).any():
        first = rows.loc[rows.duplicated(["method", *keys]), ["method", *keys]].iloc[0].tolist()
        raise ValueError(f"{what}: more than one row for (method, {', '.join(keys)}) = {first}")
    counts = rows.groupby(keys, sort=False)["method"].nunique()
    short = counts[counts < len(methods)]
    if len(short):
        raise ValueError(f"{what}: not every variant has {keys} = {list(short.index[:3])} (each variant must be "
                         f"scored on the same items)")
    return rows.set_index(["method", *keys])[value].unstack(keys).reindex(methods).sort_index(axis=1)


def volume_correlation(rows: pd.DataFrame, metrics, item: str, n_boot: int = BOOTSTRAP, seed: int = 0,
                       level: float = LEVEL, what: str = "per-feature table") -> list[dict]:
    """Per metric, across the variants of ``rows`` (one dataset and mask): the percentile interval of Pearson
    (SSIM, metric) resampling test volumes (one draw of volumes for SSIM and every metric, and for every
    variant: each draw recomputes every variant's mean SSIM over its slices and mean metric over its features),
    the permutation p-value of the variants' pairing, and the number of volumes. NaN interval for fewer than
    :data:`MIN_VARIANTS` variants or a metric with a missing value."""
    _require(rows, ["method", "stem", "slice", item, "ssim", *metrics], what)
    methods = sorted(rows["method"].unique())
    ssim = _wide(rows.drop_duplicates(["method", "stem", "slice"]), methods, ["stem", "slice"], "ssim", what)
    stems = [key[0] for key in ssim.columns]
    volumes = len(set(stems))
    out = []
    for metric in metrics:
        values = _wide(rows, methods, ["stem", "slice", item], metric, what)
        low = high = p = float("nan")
        matrix = values.to_numpy(dtype=float)
        if len(methods) >= MIN_VARIANTS and np.isfinite(matrix).all():
            seq = np.random.SeedSequence(int(seed))
            item_stems = [key[0] for key in values.columns]
            if set(item_stems) != set(stems):
                raise ValueError(f"{what}: the volumes with {metric} differ from those with SSIM")
            # one draw of volumes for SSIM (per slice) and the metric (per feature)
            boot_ssim, boot_metric = paired_volume_bootstrap_means(
                [(ssim.to_numpy(dtype=float), stems), (matrix, item_stems)], np.random.default_rng(seq), n_boot)
            low, high = percentile_interval(pearson_rows(boot_ssim, boot_metric), level)
            p = permutation_p(ssim.to_numpy().mean(axis=1), matrix.mean(axis=1), np.random.default_rng(seq))
        out.append({"metric": metric, "pearson_low": low, "pearson_high": high, "pearson_p": p, "volumes": volumes})
    return out


def correlation_intervals(per_feature: pd.DataFrame, metrics, item: str, n_boot: int = BOOTSTRAP, seed: int = 0,
                          level: float = LEVEL) -> pd.DataFrame:
    """:func:`volume_correlation` for every (dataset, mask) of ``per_feature``; columns dataset, mask, metric and
    :data:`INTERVAL_COLUMNS`."""
    _require(per_feature, ["dataset", "mask"], "per-feature table")
    rows = []
    for (dataset, mask), group in per_feature.groupby(["dataset", "mask"], sort=False):
        case_seed = np.random.SeedSequence([int(seed), *f"{dataset}/{mask}".encode()]).generate_state(1)[0]
        for row in volume_correlation(group, metrics, item, n_boot, int(case_seed), level,
                                      what=f"per-feature table of {dataset}/{mask}"):
            rows.append({"dataset": dataset, "mask": mask, **row})
    return pd.DataFrame(rows, columns=["dataset", "mask", "metric", *INTERVAL_COLUMNS])


def correlation_verdict(low: float, high: float, volumes: int, variants: int, min_correlation: float = MIN_CORRELATION,
                        min_volumes: int = MIN_VOLUMES) -> tuple[bool | None, str]:
    """(verdict, reason) for a correlation expected to be negative: True when the whole interval lies below
    −``min_correlation`` (a clearly at least moderate negative correlation), False when it lies above it
    (clearly weaker, including none or a positive one), None (undecided) when it straddles it, when there is no
    interval, or with fewer than ``min_volumes`` volumes or :data:`MIN_VARIANTS` variants."""
    if not 0 <= min_correlation < 1:
        raise ValueError(f"findings.feature_min_correlation {min_correlation!r} must lie in [0, 1)")
    bound = -min_correlation
    if variants < MIN_VARIANTS:
        return None, f"{variants} variant(s), fewer than {MIN_VARIANTS}"
    if volumes < min_volumes:
        return None, f"{volumes} test volume(s), fewer than findings.min_volumes = {min_volumes}"
    if math.isnan(low) or math.isnan(high):
        return None, "no interval"
    if high < bound:
        return True, f"interval below {bound:.2f}"
    if low > bound:
        return False, f"interval above {bound:.2f}: weaker than required"
    return None, f"interval straddles {bound:.2f}"
