"""The test-time-training figure: mean SSIM per shift and variant before and after TTT, against the network
trained on the target, with the share of the gap closed."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from .families import variant_label
from .plots import _grid_columns, _panel_grid, _shift_order, _signed, plt, shift_title


TTT_LEGEND = {"ssim_p_q": "P→Q: trained on source P, applied to target Q",
              "ssim_p_q_ttt": "P→Q + TTT: the same after test-time training on Q",
              "ssim_q_q": "Q→Q: trained on Q (reference)",
              "ssim_q_q_ttt": "Q→Q + TTT: trained on Q, then test-time trained on Q",
              "ssim_p_q_ttt_hidden": "P→Q + TTT hidden: the held-out points also hidden from the input (ablation)"}


def gap_closed_label(row) -> str:
    """"gap closed" with the share in % and its interval where the row has one; "–" for no share (the gap
    Q→Q − P→Q is not above robustcs.shifts.MIN_GAP)."""
    closed = row.get("gap_closed")
    if closed is None or pd.isna(closed):
        return "gap closed\n–"
    text = f"gap closed\n{_signed(100 * closed, 0)} %"
    low, high = row.get("gap_closed_low"), row.get("gap_closed_high")
    if low is not None and high is not None and not (pd.isna(low) or pd.isna(high)):
        text += f" [{_signed(100 * low, 0)}, {_signed(100 * high, 0)}]"
    ceiling = row.get("gap_closed_ceiling")  # ttt.reference_ttt: against the better of Q→Q and Q→Q+TTT
    if ceiling is not None and not pd.isna(ceiling):
        text += f"\n{_signed(100 * ceiling, 0)} % of best Q"
    hidden = row.get("gap_closed_hidden")  # ttt.ablation_hidden: the ablation's share against Q→Q
    if hidden is not None and not pd.isna(hidden):
        text += f"\nhidden: {_signed(100 * hidden, 0)} %"
    return text


def ttt_bars(summary: pd.DataFrame, pairs: dict | None = None):
    """Per shift (panel, titled "source → target (shift)" from ``pairs``, in their order) and variant (group
    of bars): mean SSIM of the network trained on P applied to Q, the same after test-time training, and the
    network trained on Q, with the share of the gap closed (and its bootstrap interval where the summary has
    one). Every panel has the same y scale."""
    from matplotlib.patches import Patch

    pairs = pairs or {}
    shifts = _shift_order(summary["shift"], pairs)
    per_panel = int(summary.groupby("shift").size().max())
    cols = _grid_columns(len(shifts))
    rows_n = math.ceil(len(shifts) / cols)
    fig = plt.figure(figsize=(cols * (1.4 + 1.35 * per_panel), 3.3 * rows_n + 0.6), layout="constrained")
    panels, _ = _panel_grid(fig, len(shifts))
    labels = [c for c in TTT_LEGEND if c in summary.columns]  # Q→Q+TTT where ttt.reference_ttt measured it
    colours = ["tab:gray", "tab:purple", "tab:olive", "tab:cyan", "tab:pink"]
    width = 0.78 / len(labels)
    values = summary[labels].to_numpy(dtype=float)
    low = max(0.0, float(np.nanmin(values)) - 0.05)
    # room above the highest bar for its label (past 1.0 if need be: no tick is drawn there)
    lines = 2 + sum(c in summary.columns for c in ("gap_closed_ceiling", "gap_closed_hidden"))  # of each bar label
    high = float(np.nanmax(values)) + 0.03 * lines + 0.03
    first = panels[0][0]
    for (ax,), shift in zip(panels, shifts):
        if ax is not first:
            ax.sharey(first)
        rows = summary[summary["shift"] == shift].reset_index(drop=True)
        x = np.arange(len(rows))
        for k, column in enumerate(labels):
            ax.bar(x + (k - (len(labels) - 1) / 2) * width, rows[column], width, color=colours[k],
                   label=TTT_LEGEND[column].split(":")[0])
        for i, row in rows.iterrows():
            top = row[labels].max()
            ax.annotate(gap_closed_label(row), (i, top), xytext=(0, 3), textcoords="offset points",
                        ha="center", va="bottom", fontsize=6.5)
        ax.set_xticks(x, [variant_label(m, f) for m, f in zip(rows["method"], rows["family"])], fontsize=7, rotation=12)
        ax.set_xlim(-0.6, len(rows) - 0.4)
        ax.set_title(shift_title(shift, pairs.get(shift)), fontsize=9)
        ax.set_ylabel("mean SSIM on Q", fontsize=8)
        ax.tick_params(axis="y", labelsize=7)
        ax.grid(alpha=0.3, axis="y")
    first.set_ylim(low, high)
    first.set_yticks([t for t in first.get_yticks() if low <= t <= 1.0 + 1e-9])
    handles = [Patch(color=colours[k], label=TTT_LEGEND[c]) for k, c in enumerate(labels)]
    fig.legend(handles=handles, loc="outside lower center", ncol=1 if cols == 1 else 2, fontsize=7, frameon=False)
    return fig
