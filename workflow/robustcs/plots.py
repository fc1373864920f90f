"""Figures of the experiments (matplotlib, Agg backend), written atomically."""

from __future__ import annotations

import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from .tables import FAMILY_ORDER  # noqa: E402
from .util import atomic_path  # noqa: E402

FAMILY_COLOURS = {"zero_filled": "tab:gray", "l1": "tab:blue", "convdecoder": "tab:green",
                  "unet": "tab:orange", "varnet": "tab:red"}


def save(fig, path: str | os.PathLike) -> None:
    """Write a figure to ``path`` (format from its suffix) atomically and close it."""
    suffix = os.path.splitext(str(path))[1]
    with atomic_path(path, suffix=suffix) as tmp:
        fig.savefig(tmp, dpi=120, bbox_inches="tight", format=suffix.lstrip("."))
    plt.close(fig)


def _family_rank(family: str) -> int:
    return FAMILY_ORDER.index(family) if family in FAMILY_ORDER else len(FAMILY_ORDER)


def quality_vs_epsilon(summary: pd.DataFrame, path, metrics: tuple[str, ...] = ("psnr", "ssim")) -> None:
    """Mean quality against ε: one column per family, one row per (dataset, mask) and metric (PSNR first,
    the study's attack metric), one colour per variant; solid = adversarial, dashed = random perturbation
    of the same norm; ε = 0 is the clean quality."""
    panels = [(d, m, metric) for d, m in summary[["dataset", "mask"]].drop_duplicates().itertuples(index=False)
              for metric in metrics]
    families = sorted(summary["family"].unique(), key=_family_rank)
    fig, axes = plt.subplots(len(panels), len(families), figsize=(3.2 * len(families), 2.8 * len(panels)),
                             squeeze=False, sharey="row", layout="constrained")
    for r, (dataset, mask, metric) in enumerate(panels):
        rows = summary[(summary["dataset"] == dataset) & (summary["mask"] == mask)]
        for c, family in enumerate(families):
            ax = axes[r, c]
            fam = rows[rows["family"] == family]
            variants = sorted(fam["method"].unique())
            for i, method in enumerate(variants):
                group = fam[fam["method"] == method]
                clean = group[group["kind"] == "clean"]
                colour = plt.cm.viridis(0.8 * i / max(1, len(variants) - 1))
                for kind, style in (("adversarial", "-"), ("random", "--")):
                    line = pd.concat([clean, group[group["kind"] == kind]]).sort_values("epsilon")
                    ax.plot(line["epsilon"], line[f"{metric}_mean"], style, marker="o", ms=3, color=colour,
                            label=method if kind == "adversarial" else None)
            ax.set_title(f"{family} - {dataset}, {mask}", fontsize=8)
            ax.set_xlabel("ε (budget / ||k||)")
            if c == 0:
                ax.set_ylabel(metric.upper())
            ax.legend(fontsize=6, title="solid: attack, dashed: random", title_fontsize=6)
            ax.grid(alpha=0.3)
    save(fig, path)


def feature_recovery_vs_ssim(summary: pd.DataFrame, correlation: pd.DataFrame, path,
                             metric: str = "mse_feature") -> None:
    """One point per variant: whole-image SSIM (x) against mean feature ``metric`` (y), coloured by family,
    one panel per (dataset, mask), Pearson / Spearman correlation in the title."""
    panels = list(summary[["dataset", "mask"]].drop_duplicates().itertuples(index=False))
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.6), squeeze=False, layout="constrained")
    for ax, (dataset, mask) in zip(axes[0], panels):
        rows = summary[(summary["dataset"] == dataset) & (summary["mask"] == mask)]
        for family in sorted(rows["family"].unique(), key=_family_rank):
            fam = rows[rows["family"] == family]
            ax.scatter(fam["ssim"], fam[metric], color=FAMILY_COLOURS.get(family, "black"), label=family, s=25)
        corr = correlation[(correlation["dataset"] == dataset) & (correlation["mask"] == mask)
                           & (correlation["metric"] == metric)]
        title = f"{dataset}, {mask}"
        if len(corr):
            title += f"\nPearson {corr['pearson'].iloc[0]:.2f}, Spearman {corr['spearman'].iloc[0]:.2f}"
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("SSIM (whole image, with features)")
        ax.set_ylabel(f"{metric} (normalised images)")
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    save(fig, path)


def shift_scatter(points: pd.DataFrame, fits: pd.DataFrame, path) -> None:
    """In- vs out-of-distribution SSIM, one panel per shift: a point per variant coloured by family (the
    zero-filled baseline hollow: it is not fitted), the common least-squares line (solid black), each
    group's line (dashed, its colour) and y = x (dotted); the common slope and R² in the title."""
    from matplotlib.lines import Line2D

    shifts = list(dict.fromkeys(points["shift"]))
    cols = min(3, len(shifts))
    rows_n = -(-len(shifts) // cols)
    fig, axes = plt.subplots(rows_n, cols, figsize=(4.2 * cols, 3.9 * rows_n), squeeze=False, layout="constrained")
    families = sorted(points["family"].unique(), key=_family_rank)
    for ax, shift in zip(axes.ravel(), shifts):
        pts = points[points["shift"] == shift]
        lo = float(min(pts["ssim_in"].min(), pts["ssim_out"].min()))
        hi = float(max(pts["ssim_in"].max(), pts["ssim_out"].max()))
        pad = 0.05 * max(hi - lo, 0.02)
        ax.plot([lo - pad, hi + pad], [lo - pad, hi + pad], ":", color="grey", lw=1)
        xs = pd.Series([pts["ssim_in"].min(), pts["ssim_in"].max()])
        for family in families:
            fam = pts[pts["family"] == family]
            colour = FAMILY_COLOURS.get(family, "black")
            hollow = family == "zero_filled"
            ax.scatter(fam["ssim_in"], fam["ssim_out"], s=30, edgecolors=colour,
                       facecolors="none" if hollow else colour)
        for fit in fits[fits["shift"] == shift].itertuples(index=False):
            if pd.isna(fit.slope):
                continue
            if fit.group == "all":
                ax.plot(xs, fit.slope * xs + fit.intercept, "-", color="black", lw=1.2)
            else:
                gx = pts.loc[pts["family"] == fit.group, "ssim_in"]
                gx = pd.Series([gx.min(), gx.max()])
                ax.plot(gx, fit.slope * gx + fit.intercept, "--", color=FAMILY_COLOURS.get(fit.group, "black"), lw=1)
        common = fits[(fits["shift"] == shift) & (fits["group"] == "all")]
        title = shift
        if len(common) and not pd.isna(common["slope"].iloc[0]):
            title += f"  slope {common['slope'].iloc[0]:.2f}, R² {common['r2'].iloc[0]:.2f}"
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("SSIM in distribution")
        ax.set_ylabel("SSIM under shift")
        ax.grid(alpha=0.3)
    for ax in axes.ravel()[len(shifts):]:
        ax.axis("off")
    handles = [Line2D([], [], marker="o", ls="", color=FAMILY_COLOURS.get(f, "black"),
                      markerfacecolor="none" if f == "zero_filled" else FAMILY_COLOURS.get(f, "black"), label=f)
               for f in families]
    handles += [Line2D([], [], color="black", label="fit, all groups"),
                Line2D([], [], color="grey", ls="--", label="fit per group"),
                Line2D([], [], color="grey", ls=":", label="y = x")]
    fig.legend(handles=handles, loc="outside lower center", ncol=min(len(handles), 4), fontsize=7)
    save(fig, path)
