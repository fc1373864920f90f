"""Figures of the experiments (matplotlib, Agg backend). Each function returns a figure; ``save`` writes it,
atomically, in every format asked for (the workflow writes PNG for the report and PDF for papers)."""

from __future__ import annotations

import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from .families import colour as family_colour  # noqa: E402
from .families import is_baseline, rank  # noqa: E402
from .util import atomic_path  # noqa: E402


#: Fixed metadata, so that the same figure is written as the same bytes (PDF and PNG embed no date).
_METADATA = {"png": {"Software": None}, "pdf": {"CreationDate": None, "ModDate": None, "Producer": None, "Creator": None}}


def save(fig, *paths: str | os.PathLike, dpi: int = 120) -> None:
    """Write a figure to every path (format from its suffix: png, pdf, svg) atomically, then close it."""
    try:
        for path in paths:
            fmt = os.path.splitext(str(path))[1].lstrip(".").lower()
            with atomic_path(path, suffix="." + fmt) as tmp:
                fig.savefig(tmp, dpi=dpi, bbox_inches="tight", format=fmt, metadata=_METADATA.get(fmt))
    finally:
        plt.close(fig)


def quality_vs_epsilon(summary: pd.DataFrame, metrics: tuple[str, ...] = ("psnr", "ssim")):
    """Mean quality against ε: one column per family, one row per (dataset, mask) and metric (PSNR first,
    the study's attack metric), one colour per variant; solid = adversarial, dashed = random perturbation
    of the same norm; ε = 0 is the clean quality."""
    panels = [(d, m, metric) for d, m in summary[["dataset", "mask"]].drop_duplicates().itertuples(index=False)
              for metric in metrics]
    families = sorted(summary["family"].unique(), key=rank)
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
    return fig


def feature_recovery_vs_ssim(summary: pd.DataFrame, correlation: pd.DataFrame, metric: str = "mse_feature"):
    """One point per variant: whole-image SSIM (x) against mean feature ``metric`` (y), coloured by family,
    one panel per (dataset, mask), Pearson / Spearman correlation in the title."""
    panels = list(summary[["dataset", "mask"]].drop_duplicates().itertuples(index=False))
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.6), squeeze=False, layout="constrained")
    for ax, (dataset, mask) in zip(axes[0], panels):
        rows = summary[(summary["dataset"] == dataset) & (summary["mask"] == mask)]
        for family in sorted(rows["family"].unique(), key=rank):
            fam = rows[rows["family"] == family]
            ax.scatter(fam["ssim"], fam[metric], color=family_colour(family), label=family, s=25)
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
    return fig


def shift_scatter(points: pd.DataFrame, fits: pd.DataFrame):
    """In- vs out-of-distribution SSIM, one panel per shift: a point per variant coloured by family (the
    zero-filled baseline hollow: it is not fitted), the common least-squares line (solid black), each
    group's line (dashed, its colour) and y = x (dotted); the common slope and R² in the title."""
    from matplotlib.lines import Line2D

    shifts = list(dict.fromkeys(points["shift"]))
    cols = min(3, len(shifts))
    rows_n = -(-len(shifts) // cols)
    fig, axes = plt.subplots(rows_n, cols, figsize=(4.2 * cols, 3.9 * rows_n), squeeze=False, layout="constrained")
    families = sorted(points["family"].unique(), key=rank)
    for ax, shift in zip(axes.ravel(), shifts):
        pts = points[points["shift"] == shift]
        lo = float(min(pts["ssim_in"].min(), pts["ssim_out"].min()))
        hi = float(max(pts["ssim_in"].max(), pts["ssim_out"].max()))
        pad = 0.05 * max(hi - lo, 0.02)
        ax.plot([lo - pad, hi + pad], [lo - pad, hi + pad], ":", color="grey", lw=1)
        xs = pd.Series([pts["ssim_in"].min(), pts["ssim_in"].max()])
        for family in families:
            fam = pts[pts["family"] == family]
            colour = family_colour(family)
            hollow = is_baseline(family)
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
                ax.plot(gx, fit.slope * gx + fit.intercept, "--", color=family_colour(fit.group), lw=1)
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
    handles = [Line2D([], [], marker="o", ls="", color=family_colour(f),
                      markerfacecolor="none" if is_baseline(f) else family_colour(f), label=f)
               for f in families]
    handles += [Line2D([], [], color="black", label="fit, all groups"),
                Line2D([], [], color="grey", ls="--", label="fit per group"),
                Line2D([], [], color="grey", ls=":", label="y = x")]
    fig.legend(handles=handles, loc="outside lower center", ncol=min(len(handles), 4), fontsize=7)
    return fig


def _image_grid(rows: int, cols: int, size: float = 1.9):
    fig, axes = plt.subplots(rows, cols, figsize=(size * cols + 0.9, size * rows + 0.4), squeeze=False,
                             layout="constrained")
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
        for spine in ax.spines.values():
            spine.set_visible(False)
    return fig, axes


def _show(ax, image, vmax: float, cmap: str, title: str | None = None, ylabel: str | None = None):
    handle = ax.imshow(image, cmap=cmap, vmin=0.0, vmax=vmax, interpolation="nearest")
    if title:
        ax.set_title(title, fontsize=7)
    if ylabel:
        ax.set_ylabel(ylabel, fontsize=7)
    return handle


def adversarial_examples(reference, rows, epsilon: float, *, error_max: float = 0.2, cmap: str = "gray",
                         error_cmap: str = "magma", title: str = ""):
    """Ground truth and, per variant (``rows``: (label, clean, attacked) magnitudes in the reference frame),
    the clean and the attacked reconstruction with their absolute error maps. One colour scale for every
    image ([0, max of the ground truth]) and one for every error map ([0, error_max x that max])."""
    if not rows:
        raise ValueError("adversarial_examples: no variants to show")
    vmax = float(np.max(reference))
    emax = error_max * vmax
    fig, axes = _image_grid(len(rows) + 1, 4)
    image = _show(axes[0, 0], reference, vmax, cmap, "ground truth")
    for ax in axes[0, 1:]:
        ax.axis("off")
    for r, (label, clean, attacked) in enumerate(rows, start=1):
        _show(axes[r, 0], clean, vmax, cmap, "clean" if r == 1 else None, ylabel=label)
        _show(axes[r, 1], attacked, vmax, cmap, f"attacked, ε = {epsilon:g}" if r == 1 else None)
        error = _show(axes[r, 2], np.abs(clean - reference), emax, error_cmap, "|clean − truth|" if r == 1 else None)
        _show(axes[r, 3], np.abs(attacked - reference), emax, error_cmap, "|attacked − truth|" if r == 1 else None)
    fig.colorbar(image, ax=axes[:, :2], shrink=0.3, location="bottom", label="magnitude")
    fig.colorbar(error, ax=axes[:, 2:], shrink=0.3, location="bottom", label="absolute error")
    if title:
        fig.suptitle(title, fontsize=8)
    return fig


def _outline(ax, features, colour: str = "cyan") -> None:
    from matplotlib.patches import Rectangle

    for feat in features:  # (row, col) is the top-left corner of the bounding box
        ax.add_patch(Rectangle((feat.col - 1.5, feat.row - 1.5), feat.size + 2, feat.size + 2, fill=False,
                               edgecolor=colour, lw=0.6))


def _zoom_box(features, shape, pad: int = 6) -> tuple[slice, slice]:
    """Rows and columns around every feature, ``pad`` pixels wider, clipped to the image."""
    top = max(0, min(f.row for f in features) - pad)
    left = max(0, min(f.col for f in features) - pad)
    bottom = min(shape[0], max(f.row + f.size for f in features) + pad)
    right = min(shape[1], max(f.col + f.size for f in features) + pad)
    return slice(top, bottom), slice(left, right)


def feature_examples(featured, original, rows, features, *, error_max: float = 0.2, cmap: str = "gray",
                     error_cmap: str = "magma", title: str = ""):
    """The featured ground truth (features outlined), the inserted features alone (``featured - original``)
    and a zoom on them; then per variant (``rows``: (label, reconstruction of the featured slice)) the
    reconstruction, its absolute error to the featured truth and the same zoom. One colour scale for every
    image, one for every error map (as ``adversarial_examples``)."""
    if not rows:
        raise ValueError("feature_examples: no variants to show")
    if not features:
        raise ValueError("feature_examples: no features to show")
    vmax = float(np.max(featured))
    emax = error_max * vmax
    box = _zoom_box(features, featured.shape)
    fig, axes = _image_grid(len(rows) + 1, 3)
    image = _show(axes[0, 0], featured, vmax, cmap, "ground truth with features")
    _outline(axes[0, 0], features)
    _show(axes[0, 1], featured - original, vmax, cmap, "inserted features")
    _show(axes[0, 2], featured[box], vmax, cmap, "zoom")
    for r, (label, recon) in enumerate(rows, start=1):
        _show(axes[r, 0], recon, vmax, cmap, "reconstruction" if r == 1 else None, ylabel=label)
        _outline(axes[r, 0], features)
        error = _show(axes[r, 1], np.abs(recon - featured), emax, error_cmap, "|recon − truth|" if r == 1 else None)
        _outline(axes[r, 1], features)
        _show(axes[r, 2], recon[box], vmax, cmap, "zoom" if r == 1 else None)
    fig.colorbar(image, ax=axes, shrink=0.25, location="right", label="magnitude")
    fig.colorbar(error, ax=axes[:, 1], shrink=0.8, location="bottom", label="absolute error")
    if title:
        fig.suptitle(title, fontsize=8)
    return fig


TTT_LABELS = {"ssim_p_q": "P→Q", "ssim_p_q_ttt": "P→Q + TTT", "ssim_q_q": "Q→Q"}


def ttt_bars(summary: pd.DataFrame):
    """Per shift (panel) and variant (group of bars): mean SSIM of the network trained on P applied to Q,
    the same after test-time training, and the network trained on Q, with the share of the gap closed."""
    shifts = list(dict.fromkeys(summary["shift"]))
    fig, axes = plt.subplots(1, len(shifts), figsize=(1.6 + 1.5 * summary.groupby("shift").size().max(), 3.4),
                             squeeze=False, layout="constrained")
    colours = ["tab:gray", "tab:purple", "tab:olive"]
    width = 0.26
    for ax, shift in zip(axes[0], shifts):
        rows = summary[summary["shift"] == shift].reset_index(drop=True)
        x = np.arange(len(rows))
        for k, (column, label) in enumerate(TTT_LABELS.items()):
            ax.bar(x + (k - 1) * width, rows[column], width, color=colours[k], label=label)
        for i, row in rows.iterrows():
            top = row[list(TTT_LABELS)].max()
            closed = "–" if pd.isna(row["gap_closed"]) else f"{100 * row['gap_closed']:.0f}%"
            ax.annotate(f"gap closed\n{closed}", (i, top), xytext=(0, 3), textcoords="offset points",
                        ha="center", fontsize=6)
        low = float(rows[list(TTT_LABELS)].min().min())
        ax.set_ylim(max(0.0, low - 0.1), min(1.0, float(rows[list(TTT_LABELS)].max().max()) + 0.08))
        ax.set_xticks(x, rows["method"], fontsize=7, rotation=15)
        ax.set_title(shift, fontsize=9)
        ax.set_ylabel("SSIM")
        ax.grid(alpha=0.3, axis="y")
    axes[0, 0].legend(fontsize=7, loc="lower left")
    return fig
