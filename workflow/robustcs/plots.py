"""Figures of the experiments (matplotlib, Agg backend). Each function returns a figure; ``save`` writes it,
atomically, in every format asked for (the workflow writes PNG for the report and PDF for papers)."""

from __future__ import annotations

import math
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from .families import colour as family_colour  # noqa: E402
from .families import is_baseline, rank, variant_label  # noqa: E402
from .shifts import number_text  # noqa: E402
from .util import atomic_path  # noqa: E402


#: Fixed metadata, so that the same figure is written as the same bytes (PDF and PNG embed no date).
_METADATA = {"png": {"Software": None}, "pdf": {"CreationDate": None, "ModDate": None, "Producer": None, "Creator": None}}


#: The least resolution of a PNG figure (config plots.dpi has it as its minimum and default).
MIN_DPI = 200


def save(fig, *paths: str | os.PathLike, dpi: int = MIN_DPI) -> None:
    """Write a figure to every path (format from its suffix: png, pdf, svg) atomically, then close it. The PNG
    records its resolution (``dpi``); PDF and SVG are vector copies."""
    try:
        for path in paths:
            fmt = os.path.splitext(str(path))[1].lstrip(".").lower()
            with atomic_path(path, suffix="." + fmt) as tmp:
                fig.savefig(tmp, dpi=dpi, bbox_inches="tight", format=fmt, metadata=_METADATA.get(fmt))
    finally:
        plt.close(fig)


#: Axis labels of the quality metrics, with their units.
METRIC_LABELS = {"psnr": "PSNR (dB)", "ssim": "SSIM", "nmse": "NMSE"}

#: Label of the perturbation budget axis.
EPSILON_LABEL = "budget ε (‖e‖ ≤ ε·‖k‖)"

#: Markers of the variants within a family (told apart in greyscale too).
_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")


def metric_label(metric: str) -> str:
    """Axis label of a quality metric, with its unit (PSNR in dB)."""
    return METRIC_LABELS.get(metric, metric.upper())


def _family_label(name: str) -> str:
    from .families import FAMILIES

    return FAMILIES[name].label if name in FAMILIES else name


def _grid_columns(n: int) -> int:
    """Columns of a near-square grid of n panels: a single row up to 3, then ceil(sqrt(n))."""
    if n < 1:
        raise ValueError(f"a figure needs at least one panel, got {n}")
    return n if n <= 3 else math.ceil(math.sqrt(n))


def _panel_slots(n: int, cols: int) -> list[tuple[int, int]]:
    """(row, first half-column) of each of n panels in a grid of ``cols`` columns, each panel two
    half-columns wide; a short last row is centred, so that no cell of the grid stays empty."""
    slots = []
    for i in range(n):
        row, col = divmod(i, cols)
        in_row = min(cols, n - row * cols)
        slots.append((row, 2 * col + (cols - in_row)))
    return slots


def _panel_grid(fig, n: int, rows_per_panel: int = 1):
    """n panels (each ``rows_per_panel`` axes stacked) in a near-square grid of ``fig`` (a figure or a
    subfigure). Returns one list of stacked axes per panel, and the grid's (rows, columns)."""
    cols = _grid_columns(n)
    rows = math.ceil(n / cols)
    grid = fig.add_gridspec(rows * rows_per_panel, 2 * cols)
    panels = []
    for row, half in _panel_slots(n, cols):
        panels.append([fig.add_subplot(grid[row * rows_per_panel + k, half:half + 2]) for k in range(rows_per_panel)])
    return panels, (rows, cols)


def _signed(value: float | None, digits: int = 3) -> str:
    """:func:`~robustcs.shifts.number_text` without a sign on a value that rounds to zero (figure labels)."""
    return number_text(value, digits, negative_zero=False)


def quality_vs_epsilon(summary: pd.DataFrame, metrics: tuple[str, ...] = ("psnr", "ssim")):
    """Mean quality against ε: one block per family in a near-square grid, each block one panel per metric
    stacked (PSNR first, the study's attack metric), one colour and marker per variant; solid =
    adversarial, dashed = random perturbation of the same norm; ε = 0 is the clean quality. One metric
    shares its y scale across families. Several (dataset, mask) cases are stacked as subfigures."""
    from matplotlib.lines import Line2D

    cases = list(summary[["dataset", "mask"]].drop_duplicates().itertuples(index=False))
    families = sorted(summary["family"].unique(), key=rank)
    cols = _grid_columns(len(families))
    rows = math.ceil(len(families) / cols)
    fig = plt.figure(figsize=(3.7 * cols, (2.05 * len(metrics) + 1.1) * rows * len(cases) + 0.5),
                     layout="constrained")
    subfigs = fig.subfigures(len(cases), 1, squeeze=False)[:, 0]
    for sub, (dataset, mask) in zip(subfigs, cases):
        rows_case = summary[(summary["dataset"] == dataset) & (summary["mask"] == mask)]
        panels, _ = _panel_grid(sub, len(families), rows_per_panel=len(metrics))
        first: dict[str, object] = {}
        for family, axes in zip(families, panels):
            fam = rows_case[rows_case["family"] == family]
            variants = sorted(fam["method"].unique())
            for k, (ax, metric) in enumerate(zip(axes, metrics)):
                if metric in first:
                    ax.sharey(first[metric])
                else:
                    first[metric] = ax
                if k:
                    ax.sharex(axes[0])
                for i, method in enumerate(variants):
                    group = fam[fam["method"] == method]
                    clean = group[group["kind"] == "clean"]
                    colour = plt.cm.viridis(0.85 * i / max(1, len(variants) - 1))
                    for kind, style in (("adversarial", "-"), ("random", "--")):
                        line = pd.concat([clean, group[group["kind"] == kind]]).sort_values("epsilon")
                        ax.plot(line["epsilon"], line[f"{metric}_mean"], style, marker=_MARKERS[i % len(_MARKERS)],
                                ms=3.5, lw=1.2, color=colour,
                                label=variant_label(method, family) if kind == "adversarial" else None)
                ax.set_ylabel(metric_label(metric), fontsize=8)
                ax.set_xticks(sorted(fam["epsilon"].unique()) if len(fam) else [])
                ax.tick_params(labelsize=7)
                ax.grid(alpha=0.3)
                if k < len(metrics) - 1:
                    ax.tick_params(labelbottom=False)
            axes[0].set_title(f"{_family_label(family)} ({family})" if _family_label(family) != family else family,
                              fontsize=9)
            axes[-1].set_xlabel(EPSILON_LABEL, fontsize=8)
            if variants:
                axes[-1].legend(loc="upper center", bbox_to_anchor=(0.5, -0.32), ncol=2, fontsize=7,
                                frameon=False, handlelength=1.8, columnspacing=1.0)
        sub.suptitle(f"{dataset}, mask {mask}", fontsize=10)
    styles = [Line2D([], [], color="black", ls="-", label="adversarial perturbation (projected gradient ascent)"),
              Line2D([], [], color="black", ls="--", label="random perturbation of the same norm")]
    fig.legend(handles=styles, loc="outside lower center", ncol=2, fontsize=8, frameon=False)
    return fig


def feature_recovery_vs_ssim(summary: pd.DataFrame, correlation: pd.DataFrame, metric: str = "mse_feature"):
    """One point per variant: whole-image SSIM (x) against mean feature ``metric`` (y), coloured by family,
    one panel per (dataset, mask) in a near-square grid, Pearson / Spearman correlation in the title."""
    labels = {"mse_feature": "MSE inside the features", "mse_window": "MSE around the features",
              "contrast_recovery": "contrast recovered"}
    cases = list(summary[["dataset", "mask"]].drop_duplicates().itertuples(index=False))
    cols = _grid_columns(len(cases))
    fig = plt.figure(figsize=(4.4 * cols, 3.8 * math.ceil(len(cases) / cols)), layout="constrained")
    panels, _ = _panel_grid(fig, len(cases))
    for (ax,), (dataset, mask) in zip(panels, cases):
        rows = summary[(summary["dataset"] == dataset) & (summary["mask"] == mask)]
        for family in sorted(rows["family"].unique(), key=rank):
            fam = rows[rows["family"] == family]
            ax.scatter(fam["ssim"], fam[metric], color=family_colour(family), label=_family_label(family), s=25)
        corr = correlation[(correlation["dataset"] == dataset) & (correlation["mask"] == mask)
                           & (correlation["metric"] == metric)]
        title = f"{dataset}, mask {mask}"
        if len(corr):
            title += f"\nPearson {_signed(corr['pearson'].iloc[0], 2)}, Spearman {_signed(corr['spearman'].iloc[0], 2)}"
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("SSIM (whole image, with features)")
        ax.set_ylabel(f"{labels.get(metric, metric)} (normalised images)")
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    return fig


def shift_title(name: str, pair: dict | None = None) -> str:
    """"source → target (name)" of a configured shift (``pair``: its config block, kind, source, target,
    mask, target_mask, filter, fraction); the masks are named when they differ, the kind when it is not the
    name. Without a block, the name alone."""
    if not pair or "source" not in pair:
        return name
    source, target = str(pair["source"]), str(pair.get("target") or pair["source"])
    kind = pair.get("kind")
    if kind == "filtered":
        share = pair.get("fraction")
        worst = f"worst {100 * float(share):.0f} % of " if share is not None else "worst slices of "
        target = f"{worst}{source}" + (f" by {pair['filter']}" if pair.get("filter") else "")
    mask, target_mask = pair.get("mask"), pair.get("target_mask")
    if mask and target_mask and mask != target_mask:
        source, target = f"{source}, {mask}", f"{target}, {target_mask}"
    what = name if not kind or kind == name else f"{name}: {kind} shift"
    head = f"{source} → {target}"
    return f"{head} ({what})" if len(head) + len(what) <= 44 else f"{head}\n({what})"


def _shift_order(shifts, pairs: dict) -> list[str]:
    """The shifts of a table in the order of the configured pairs (the captions' order), any other after."""
    shifts = list(dict.fromkeys(shifts))
    return [s for s in pairs if s in shifts] + [s for s in shifts if s not in pairs]


def _place_labels(ax, xs, ys, labels, fontsize: float = 6.0, marker_pt: float = 3.5) -> list:
    """Label each point (x, y) with its text beside it, choosing per label among positions around the
    point the one that overlaps the other points and the labels placed so far least and stays inside the
    axes (the most crowded points choose first); a label pushed away from its point gets a thin leader.
    Call once the figure's layout is final and the figure drawn (once for all its panels: the labels take no part
    in the layout): positions are measured in display space."""
    fig = ax.figure
    renderer = fig.canvas.get_renderer()
    box = ax.get_window_extent(renderer)
    px = ax.transData.transform(np.column_stack([np.asarray(xs, float), np.asarray(ys, float)]))
    scale = fig.dpi / 72.0
    r = marker_pt * scale
    obstacles = [(x - r, y - r, x + r, y + r) for x, y in px]
    sizes = []
    for text in labels:
        probe = ax.text(0, 0, text, fontsize=fontsize)
        extent = probe.get_window_extent(renderer)
        probe.remove()
        sizes.append((extent.width, extent.height))
    angles = np.deg2rad([45, -45, 135, -135, 0, 180, 90, -90, 22.5, -22.5, 157.5, -157.5, 67.5, -67.5, 112.5, -112.5])
    directions = [(float(np.cos(a)), float(np.sin(a))) for a in angles]

    def overlap(a, b):
        w = min(a[2], b[2]) - max(a[0], b[0])
        h = min(a[3], b[3]) - max(a[1], b[1])
        return w * h if w > 0 and h > 0 else 0.0

    dist = np.hypot(px[:, None, 0] - px[None, :, 0], px[:, None, 1] - px[None, :, 1])
    order = np.argsort(-(dist < 40 * scale).sum(1), kind="stable")
    placed, texts = [], []
    for i in order:
        (x, y), (w, h) = px[i], sizes[i]
        best = None
        for ring, reach in enumerate((4.0, 9.0, 15.0, 22.0, 30.0)):
            for ux, uy in directions:
                ox, oy = ux * reach * scale, uy * 0.8 * reach * scale
                hx = "right" if ux < -0.3 else "center" if abs(ux) <= 0.3 else "left"
                vy = "top" if uy < -0.3 else "center" if abs(uy) <= 0.3 else "bottom"
                left = x + ox - {"right": w, "center": w / 2, "left": 0}[hx]
                bottom = y + oy - {"top": h, "center": h / 2, "bottom": 0}[vy]
                cand = (left, bottom, left + w, bottom + h)
                outside = w * h - overlap(cand, (box.x0, box.y0, box.x1, box.y1))
                cost = (3 * sum(overlap(cand, o) for j, o in enumerate(obstacles) if j != i)
                        + sum(overlap(cand, p) for p in placed) + 4 * outside + 0.03 * w * h * ring)
                if best is None or cost < best[0]:
                    best = (cost, cand, hx, vy, ox, oy, ring)
            if best[0] <= 0.03 * w * h * ring:
                break
        _, cand, ha, va, ox, oy, ring = best
        placed.append(cand)
        arrow = dict(arrowstyle="-", lw=0.4, color="0.45", shrinkA=0, shrinkB=2) if ring else None
        note = ax.annotate(labels[i], (xs[i], ys[i]), xytext=(ox / scale, oy / scale), textcoords="offset points",
                           ha=ha, va=va, fontsize=fontsize, color="0.15", arrowprops=arrow,
                           bbox=dict(boxstyle="square,pad=0.05", fc="white", ec="none", alpha=0.75))  # over lines
        note.set_in_layout(False)
        texts.append(note)
    return texts


def _family_points(ax, pts: pd.DataFrame, shift_fits: pd.DataFrame, families: list[str]) -> list:
    """One panel of :func:`shift_scatter`: a point per variant, coloured by family (hollow outside the papers'
    four); returns a legend handle per family with its effective robustness from the panel's fits."""
    from matplotlib.lines import Line2D

    handles = []
    for family in families:
        fam = pts[pts["family"] == family]
        if fam.empty:
            continue
        colour = family_colour(family)
        hollow = is_baseline(family)
        ax.scatter(fam["ssim_in"], fam["ssim_out"], s=28, edgecolors=colour, linewidths=1.1,
                   facecolors="none" if hollow else colour, zorder=3)
        group, text = shift_fits[shift_fits["group"] == family], f"{_family_label(family)}: not fitted"
        if len(group):  # a papers' group against the line without it; any other family against the common line
            g = group.iloc[0]
            text = (f"{_family_label(family)}{', not fitted' if hollow else ''}: {_signed(g['residual'])} "
                    f"[{_signed(g['residual_low'])}, {_signed(g['residual_high'])}]"
                    + (f" {g['verdict']}" if isinstance(g.get("verdict"), str) else ""))
        handles.append(Line2D([], [], marker="o", ls="", color=colour, markerfacecolor="none" if hollow else colour,
                              label=text))
    return handles


def _fit_lines(ax, pts: pd.DataFrame, shift_fits: pd.DataFrame) -> None:
    """One panel of :func:`shift_scatter`: the papers' families' line (solid black, over the panel's in-distribution
    range) and each group's line (dashed, over that group's range)."""
    xs = pd.Series([pts["ssim_in"].min(), pts["ssim_in"].max()])
    for fit in shift_fits.itertuples(index=False):
        if pd.isna(fit.slope):
            continue
        if fit.group == "all":
            ax.plot(xs, fit.slope * xs + fit.intercept, "-", color="black", lw=1.2, zorder=2)
        else:
            gx = pts.loc[pts["family"] == fit.group, "ssim_in"]
            gx = pd.Series([gx.min(), gx.max()])
            ax.plot(gx, fit.slope * gx + fit.intercept, "--", color=family_colour(fit.group), lw=1, zorder=2)


def shift_scatter(points: pd.DataFrame, fits: pd.DataFrame, pairs: dict | None = None):
    """In- vs out-of-distribution SSIM, one panel per shift (in the order of ``pairs``) in a near-square
    grid (a short last row centred, no empty cell), titled "source → target (shift)" from ``pairs`` (shift
    name -> its config block; the name alone without one). A point per variant, labelled with its number in the key
    under the panels (the variants' display names, :func:`robustcs.families.variant_label`) and coloured by family
    (hollow outside the papers' four: they shape no line); the papers' families' least-squares line (solid black,
    the fit table's "all" row), each group's line (dashed) and y = x (dotted). Each panel's legend gives every
    group's effective robustness (a papers' group against the line without it, another family against the common
    line), bootstrap interval and verdict, and the common slope and R², all from ``fits`` (the fit table)."""
    from matplotlib.lines import Line2D

    pairs = pairs or {}
    shifts = _shift_order(points["shift"], pairs)
    cols = _grid_columns(len(shifts))
    rows_n = math.ceil(len(shifts) / cols)
    fig = plt.figure(figsize=(5.0 * cols, 6.2 * rows_n + 0.4), layout="constrained")
    panels, _ = _panel_grid(fig, len(shifts))
    families = sorted(points["family"].unique(), key=rank)
    number = variant_numbers(points)
    to_label = []
    for (ax,), shift in zip(panels, shifts):
        pts = points[points["shift"] == shift]
        shift_fits = fits[fits["shift"] == shift]
        lo = float(min(pts["ssim_in"].min(), pts["ssim_out"].min()))
        hi = float(max(pts["ssim_in"].max(), pts["ssim_out"].max()))
        pad = 0.06 * max(hi - lo, 0.02)
        ax.plot([lo - pad, hi + pad], [lo - pad, hi + pad], ":", color="grey", lw=1)
        ax.set_xlim(lo - pad, hi + pad)
        ax.set_ylim(lo - pad, hi + pad)
        handles = _family_points(ax, pts, shift_fits, families)
        _fit_lines(ax, pts, shift_fits)
        c = shift_fits[shift_fits["group"] == "all"].iloc[0] if (shift_fits["group"] == "all").any() else None
        if c is not None and not pd.isna(c["slope"]):  # the line of the papers' families
            handles.append(Line2D([], [], color="black", label=f"papers' line: slope {_signed(c['slope'], 2)}, "
                                                                  f"R² {_signed(c['r2'], 2)}"))
        ax.set_title(shift_title(shift, pairs.get(shift)), fontsize=9.5)
        ax.set_xlabel("SSIM in distribution (source)", fontsize=8.5)
        ax.set_ylabel("SSIM under shift (target)", fontsize=8.5)
        ax.tick_params(labelsize=7.5)
        ax.set_aspect("equal", adjustable="box")
        ax.grid(alpha=0.3)
        # one column: an entry carries the residual, its interval and the verdict, and two columns of them were wider
        # than the panel, which constrained layout then shrank to nothing
        ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=1, fontsize=6.5,
                  frameon=False, title="effective robustness (leave-group-out line) [95 % interval]", title_fontsize=6.5,
                  handletextpad=0.3, columnspacing=0.8)
        to_label.append((ax, pts))
    key = [Line2D([], [], marker="o", ls="", color=family_colour(fam), label=f"{n}  {variant_label(method, fam)}",
                  markerfacecolor="none" if is_baseline(fam) else family_colour(fam))
           for (method, fam), n in number.items()]
    styles = [Line2D([], [], color="black", label="least squares, the papers' four families"),
              Line2D([], [], color="grey", ls="--", label="least squares per group"),
              Line2D([], [], color="grey", ls=":", label="y = x"),
              Line2D([], [], marker="o", ls="", color="grey", markerfacecolor="none", label="other family, not fitted")]
    fig.legend(handles=key + styles, loc="outside lower center", ncol=min(4, 2 * cols), fontsize=7.5, frameon=False,
               title="variants (the number beside each point)", title_fontsize=8)
    fig.canvas.draw()  # the final layout, measured once for every panel's labels
    for ax, pts in to_label:
        labels = [str(number[(m, f)]) for m, f in zip(pts["method"], pts["family"])]
        _place_labels(ax, pts["ssim_in"].to_numpy(), pts["ssim_out"].to_numpy(), labels, fontsize=6.5)
    return fig


def variant_numbers(points: pd.DataFrame) -> dict[tuple[str, str], int]:
    """{(variant, family): its number in a figure's key}: 1, 2, … in family display order, then by name."""
    pairs = sorted(set(zip(points["method"], points["family"])), key=lambda p: (rank(p[1]), p[1], p[0]))
    return {pair: i + 1 for i, pair in enumerate(pairs)}


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
