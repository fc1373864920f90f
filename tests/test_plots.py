"""Figures, the headline table and the README block: what they show, not only that they exist."""

import numpy as np
import pandas as pd
import pytest

from robustcs.features import Feature
from robustcs.plots import (adversarial_examples, feature_examples, feature_recovery_vs_ssim, metric_label,
                            quality_vs_epsilon, save, shift_scatter, shift_title)
from robustcs.plots_ttt import ttt_bars
from robustcs.tables import attack_drops, frame_markdown, headline
from robustcs.util import replace_marked_block


def _images(ax):
    return ax.get_images()


def test_save_writes_every_format_identically_each_time(tmp_path):
    import matplotlib.pyplot as plt

    def draw():
        fig, ax = plt.subplots()
        ax.plot([0, 1], [1, 0])
        return fig

    first = [tmp_path / "a.png", tmp_path / "a.pdf"]
    second = [tmp_path / "b.png", tmp_path / "b.pdf"]
    save(draw(), *first, dpi=80)
    save(draw(), *second, dpi=80)
    assert first[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and first[1].read_bytes()[:5] == b"%PDF-"
    for a, b in zip(first, second):  # no dates or versions in the files: a rerun gives the same bytes
        assert a.read_bytes() == b.read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.pdf", "a.png", "b.pdf", "b.png"]  # no temporaries


def test_adversarial_examples_share_colour_scales(rng):
    truth = rng.random((16, 12)) * 3.0
    rows = [(name, truth + 0.1 * rng.standard_normal(truth.shape), truth + k * rng.standard_normal(truth.shape))
            for k, name in ((0.2, "l1_a"), (0.9, "unet_a"))]
    fig = adversarial_examples(truth, rows, 0.04, error_max=0.25, title="case")
    images = [im for ax in fig.axes for im in _images(ax)]
    assert len(images) == 1 + 4 * len(rows)
    grey = [im for im in images if im.get_cmap().name == "gray"]
    errors = [im for im in images if im.get_cmap().name == "magma"]
    assert len(grey) == 1 + 2 * len(rows) and len(errors) == 2 * len(rows)
    assert {im.get_clim() for im in grey} == {(0.0, truth.max())}
    assert {im.get_clim() for im in errors} == {(0.0, 0.25 * truth.max())}
    # the error maps are |reconstruction - truth| of the row's own images
    np.testing.assert_allclose(errors[-1].get_array(), np.abs(rows[-1][2] - truth))
    labels = [ax.get_ylabel() for ax in fig.axes if ax.get_ylabel()]
    assert labels == ["l1_a", "unet_a"]
    with pytest.raises(ValueError, match="no variants"):
        adversarial_examples(truth, [], 0.04)


def test_feature_examples_outline_every_feature_and_zoom_on_them(rng):
    original = rng.random((24, 24))
    features = [Feature(index=0, shape="square", size=3, contrast=0.2, row=5, col=6),
                Feature(index=1, shape="square", size=2, contrast=0.2, row=12, col=14)]
    featured = original.copy()
    for f in features:
        featured[f.row:f.row + f.size, f.col:f.col + f.size] += 0.2
    rows = [("cd_a", featured + 0.05), ("varnet_a", original)]
    fig = feature_examples(featured, original, rows, features)
    panels = [ax for ax in fig.axes if _images(ax)]
    assert len(panels) == 3 + 3 * len(rows)
    inserted = _images(panels[1])[0].get_array()
    np.testing.assert_allclose(inserted, featured - original)
    # the ground truth and every reconstruction and error map carry one outline per feature
    outlined = [ax for ax in panels if ax.patches]
    assert len(outlined) == 1 + 2 * len(rows) and all(len(ax.patches) == len(features) for ax in outlined)
    zoom = _images(panels[2])[0].get_array()
    # 6 px around the features' bounding box (rows 5..13, cols 6..15), clipped to the image
    np.testing.assert_allclose(zoom, featured[0:20, 0:22])
    assert {im.get_clim() for ax in panels for im in _images(ax) if im.get_cmap().name == "gray"} == {(0.0, featured.max())}


def test_ttt_bars_show_the_three_settings():
    summary = pd.DataFrame({"shift": ["s", "s"], "family": ["unet", "varnet"], "method": ["u", "v"],
                            "ssim_p_q": [0.6, 0.7], "ssim_p_q_ttt": [0.65, 0.8], "ssim_q_q": [0.8, 0.82],
                            "gap_closed": [0.25, 10 / 12]})
    fig = ttt_bars(summary)
    heights = sorted(round(p.get_height(), 6) for p in fig.axes[0].patches)
    assert heights == sorted([0.6, 0.7, 0.65, 0.8, 0.8, 0.82])
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert texts == ["gap closed\n25 %", "gap closed\n83 %"]
    # with Q→Q+TTT (ttt.reference_ttt): a fourth bar per variant and the share against the better Q reference
    fig = ttt_bars(summary.assign(ssim_q_q_ttt=[0.85, 0.8], gap_closed_ceiling=[0.2, 10 / 12]))
    heights = sorted(round(p.get_height(), 6) for p in fig.axes[0].patches)
    assert heights == sorted([0.6, 0.7, 0.65, 0.8, 0.8, 0.82, 0.85, 0.8])
    assert [t.get_text() for t in fig.axes[0].texts] == ["gap closed\n25 %\n20 % of best Q", "gap closed\n83 %\n83 % of best Q"]
    assert any("Q→Q + TTT" in t.get_text() for t in fig.legends[0].get_texts())


def _ttt_summary():
    rows = []
    for shift, base in (("near", 0.9), ("far", 0.3)):  # very different SSIMs: separate scales would differ
        for method, closed in (("u", 0.5), ("v", np.nan)):
            rows.append({"shift": shift, "family": "unet", "method": method, "ssim_p_q": base, "ssim_p_q_ttt": base + 0.02,
                         "ssim_q_q": base + 0.04, "gap_closed": closed, "gap_closed_low": closed - 0.25,
                         "gap_closed_high": closed + 0.25})
    return pd.DataFrame(rows)


def test_ttt_bars_share_one_scale_and_name_the_shift():
    pairs = {"near": {"kind": "anatomy", "source": "knee", "target": "brain"}}
    fig = ttt_bars(_ttt_summary(), pairs)
    assert len(fig.axes) == 2
    assert len({ax.get_ylim() for ax in fig.axes}) == 1  # one y scale for every panel
    low, high = fig.axes[0].get_ylim()
    assert low <= 0.3 and high >= 0.94
    assert fig.axes[0].get_title() == "knee → brain (near: anatomy shift)" and fig.axes[1].get_title() == "far"
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert texts == ["gap closed\n50 % [25, 75]", "gap closed\n–"]  # the interval, and "–" for no share
    assert fig.legends and any("Q→Q" in t.get_text() for t in fig.legends[0].get_texts())


def _per_row(axes) -> dict:
    """Number of axes per row of the figure (rows told apart by the bottom of each axes)."""
    axes[0].figure.canvas.draw()
    rows: dict = {}
    for ax in axes:
        y = round(ax.get_position().y0, 3)
        rows[y] = rows.get(y, 0) + 1
    return rows


def _shift_tables(n: int):
    """Points and fit rows of n shifts, each with a baseline and two variants of each of the papers' four families
    (as the demo: a legend of six entries under every panel)."""
    points, fits = [], []
    for s in range(n):
        shift = f"shift{s}"
        for i, (method, family) in enumerate((("zf", "zero_filled"), ("l1_a", "l1"), ("l1_b", "l1"),
                                              ("cd_a", "convdecoder"), ("cd_b", "convdecoder"),
                                              ("unet_a", "unet"), ("unet_b", "unet"),
                                              ("varnet_a", "varnet"), ("varnet_b", "varnet"))):
            points.append({"shift": shift, "method": method, "family": family, "ssim_in": 0.6 + 0.03 * i,
                           "ssim_out": 0.55 + 0.025 * i + 0.01 * s})
        fits.append({"shift": shift, "group": "all", "n_points": 4, "slope": 0.8, "intercept": 0.07, "r2": 0.9,
                     "residual": 0.0, "residual_low": -1e-16, "residual_high": 1e-16})
        for group, r in (("l1", -0.012), ("convdecoder", 0.040), ("unet", 0.0214), ("varnet", -0.002)):
            fits.append({"shift": shift, "group": group, "n_points": 2, "slope": 0.8, "intercept": 0.07 + r, "r2": 1.0,
                         "residual": r, "residual_low": r - 0.01, "residual_high": r + 0.005, "verdict": "undecided"})
        fits.append({"shift": shift, "group": "zero_filled", "n_points": 1, "slope": np.nan, "intercept": np.nan,
                     "r2": np.nan, "residual": 0.029, "residual_low": 0.015, "residual_high": 0.039,
                     "verdict": "undecided"})
    return pd.DataFrame(points), pd.DataFrame(fits)


@pytest.mark.parametrize("n", [1, 2, 3, pytest.param(4, marks=pytest.mark.slow), pytest.param(5, marks=pytest.mark.slow)])
def test_shift_scatter_fills_its_grid_and_labels_every_variant(n):
    points, fits = _shift_tables(n)
    pairs = {f"shift{s}": {"kind": "dataset", "source": f"src{s}", "target": f"tgt{s}"} for s in range(n)}
    fig = shift_scatter(points, fits, pairs)
    axes = fig.axes
    assert len(axes) == n  # no empty cell: one axes per shift, none switched off
    assert all(ax.get_visible() and ax.axison and ax.collections for ax in axes)
    rows = _per_row(axes)
    assert len(rows) == (1 if n <= 3 else 2) and max(rows.values()) <= 3  # near-square, not a strip
    for s, ax in enumerate(axes):
        title = ax.get_title()
        assert "→" in title and f"src{s}" in title and f"tgt{s}" in title and f"shift{s}" in title
        assert title.index(f"src{s}") < title.index("→") < title.index(f"tgt{s}")
        # every point labelled with its variant's number in the key under the panels
        shown = points[points["shift"] == f"shift{s}"]
        assert sorted(t.get_text() for t in ax.texts) == sorted(str(i + 1) for i in range(len(shown)))
        legend = [t.get_text() for t in ax.get_legend().get_texts()]
        # each fitted group's effective robustness with its bootstrap interval, from the fit table
        assert "ℓ1: −0.012 [−0.022, −0.007] undecided" in legend and "U-Net: 0.021 [0.011, 0.026] undecided" in legend
        assert "zero-filled, not fitted: 0.029 [0.015, 0.039] undecided" in legend
        assert any("slope 0.80, R² 0.90" in t for t in legend)
        # the legend under the panel leaves the panel its room (two columns of such entries once squeezed the
        # scatter to a sliver): the axes keep at least half of their share of the figure's width
        fig_width = fig.get_size_inches()[0] * fig.dpi
        assert ax.get_window_extent().width >= 0.5 * fig_width / max(rows.values())
        # labels stay inside their panel
        box = ax.get_window_extent()
        for t in ax.texts:
            extent = t.get_window_extent()
            assert box.x0 - 1 <= extent.x0 and extent.x1 <= box.x1 + 1 and box.y0 - 1 <= extent.y0 and extent.y1 <= box.y1 + 1
    if n == 1:  # without the config: the name (one panel is enough to tell)
        assert shift_scatter(points, fits).axes[0].get_title() == "shift0"


def test_shift_title_names_source_target_and_what_differs():
    assert shift_title("anatomy", {"kind": "anatomy", "source": "knee", "target": "brain"}) == "knee → brain (anatomy)"
    long = shift_title("acc", {"kind": "acceleration", "source": "knee", "target": "knee", "mask": "random4x",
                               "target_mask": "random2x"})
    assert long == "knee, random4x → knee, random2x\n(acc: acceleration shift)"  # a long title wraps before the name
    filtered = shift_title("filtered", {"kind": "filtered", "source": "knee", "filter": "unet_f", "fraction": 0.25})
    assert filtered.startswith("knee → worst 25 % of knee by unet_f") and filtered.endswith("(filtered)")
    assert shift_title("s", None) == "s"


def _attack_summary(families):
    rows = []
    for family in families:
        for v in ("a", "b"):
            method = f"{family}_{v}"
            rows.append({"dataset": "d", "mask": "m", "family": family, "method": method, "epsilon": 0.0, "kind": "clean",
                         "psnr_mean": 30.0, "ssim_mean": 0.9})
            for eps in (0.02, 0.04):
                for kind, drop in (("adversarial", 100), ("random", 10)):
                    rows.append({"dataset": "d", "mask": "m", "family": family, "method": method, "epsilon": eps,
                                 "kind": kind, "psnr_mean": 30.0 - drop * eps, "ssim_mean": 0.9 - drop * eps / 50})
    return pd.DataFrame(rows)


def test_quality_vs_epsilon_is_a_grid_with_units():
    families = ["zero_filled", "l1", "convdecoder", "unet", "varnet"]
    fig = quality_vs_epsilon(_attack_summary(families))
    axes = fig.axes
    assert len(axes) == 2 * len(families)  # a PSNR and an SSIM panel per family
    psnr = [ax for ax in axes if "PSNR" in ax.get_ylabel()]
    ssim = [ax for ax in axes if ax.get_ylabel() == "SSIM"]
    assert len(psnr) == len(ssim) == len(families)
    assert all(ax.get_ylabel() == "PSNR (dB)" for ax in psnr)
    # not a strip: the families sit in at least 2 rows of at most 3
    rows = _per_row(psnr)
    assert len(rows) >= 2 and max(rows.values()) <= 3
    assert all("ε" in ax.get_xlabel() for ax in ssim)
    assert len({ax.get_ylim() for ax in psnr}) == 1 and len({ax.get_ylim() for ax in ssim}) == 1  # one scale per metric
    for ax in ssim:  # every family's variants in its legend
        assert len(ax.get_legend().get_texts()) == 2
    assert fig.legends and any("random" in t.get_text() for t in fig.legends[0].get_texts())


def test_metric_labels_carry_units():
    assert metric_label("psnr") == "PSNR (dB)" and metric_label("ssim") == "SSIM"


def test_feature_recovery_panels_fill_their_grid():
    summary = pd.DataFrame({"dataset": ["d", "d", "e", "e"], "mask": "m", "family": ["l1", "unet"] * 2,
                            "method": ["l1_a", "unet_a"] * 2, "ssim": [0.8, 0.9, 0.7, 0.85],
                            "mse_feature": [0.02, 0.01, 0.03, 0.02]})
    correlation = pd.DataFrame({"dataset": ["d", "e"], "mask": "m", "metric": "mse_feature", "pearson": [-0.5, -1.0],
                                "spearman": [-0.4, -1.0]})
    fig = feature_recovery_vs_ssim(summary, correlation)
    assert len(fig.axes) == 2 and all(ax.collections for ax in fig.axes)
    assert "Pearson −0.50" in fig.axes[0].get_title()


def test_headline_joins_the_experiments_per_variant():
    clean = pd.DataFrame({"dataset": ["d", "d", "e"], "mask": ["m", "m", "m"], "family": ["l1", "unet", "l1"],
                          "method": ["l1_a", "unet_a", "l1_a"], "ssim_mean": [0.8, 0.9, 0.1], "psnr_mean": [30.0, 32.0, 5.0]})
    # per-slice attack rows: one attacked slice per variant, clean quality there differs from the clean table's mean
    per_slice = pd.DataFrame({
        "dataset": "d", "mask": "m", "family": ["l1"] * 5 + ["unet"] * 5, "method": ["l1_a"] * 5 + ["unet_a"] * 5,
        "stem": "f", "slice": 3, "epsilon": [0.0, 0.02, 0.02, 0.04, 0.04] * 2,
        "kind": ["clean", "adversarial", "random", "adversarial", "random"] * 2,
        "ssim": [0.75, 0.7, 0.74, 0.6, 0.73, 0.95, 0.6, 0.9, 0.5, 0.85],
        "psnr": [31.0, 28.0, 30.0, 27.0, 29.5, 33.0, 26.0, 32.0, 24.0, 31.0],
        "plateau_rise": [np.nan, 0.0, np.nan, 0.02, np.nan] * 2, "rise_second_half": [np.nan, 0.1, np.nan, 0.2, np.nan] * 2})
    adversarial = attack_drops(per_slice)
    features = pd.DataFrame({"dataset": "d", "mask": "m", "method": ["unet_a", "l1_a"], "mse_feature": [0.3, 0.2]})
    points = pd.DataFrame({"shift": ["s1", "s1", "s2", "s2"], "method": ["l1_a", "unet_a"] * 2,
                           "ssim_out": [0.7, 0.75, 0.5, 0.55]})
    table, notes = headline(clean, "d", "m", adversarial=adversarial, features=features, points=points)
    assert list(table["method"]) == ["l1_a", "unet_a"]
    assert list(table.columns) == ["family", "method", "ssim", "psnr", "ssim_drop", "psnr_drop", "psnr_drop_random",
                                   "mse_feature", "ssim_s1", "ssim_s2"]
    # the largest ε, clean and attacked on the same slice (not the clean table's 0.8 / 30 dB)
    np.testing.assert_allclose(table["ssim_drop"], [0.15, 0.45])
    np.testing.assert_allclose(table["psnr_drop"], [4.0, 9.0])
    np.testing.assert_allclose(table["psnr_drop_random"], [1.5, 2.0])
    np.testing.assert_allclose(table["mse_feature"], [0.2, 0.3])
    np.testing.assert_allclose(table["ssim_s2"], [0.5, 0.55])
    assert any("ε = 0.04" in n for n in notes) and not any("not attacked" in n for n in notes)
    # a variant left out of the attacks: no drop (shown as "—" in Markdown), and a note says so
    partial, notes = headline(clean, "d", "m", adversarial=adversarial[adversarial["method"] == "unet_a"])
    assert np.isnan(partial["psnr_drop"].iloc[0]) and partial["psnr_drop"].iloc[1] == 9.0
    assert "not attacked (1 of 2 variants" in notes[-1]
    assert "| l1 | l1_a | 0.800 | 30.000 | — | — | — |" in frame_markdown(partial, digits=3)
    only_clean, notes = headline(clean, "e", "m")
    assert list(only_clean["method"]) == ["l1_a"] and len(notes) == 1
    # a dataset without clean rows falls back to the table's first one, and the note names that one
    fallback, notes = headline(clean, "missing", "m")
    assert list(fallback["method"]) == ["l1_a", "unet_a"] and notes == ["ssim, psnr: clean test volumes of d, mask m (mean over volumes; PSNR per volume)"]


def test_replace_marked_block():
    text = "intro\n<!-- headline:begin -->\nold\n<!-- headline:end -->\nrest\n"
    assert replace_marked_block(text, "headline", "new\n") == "intro\n<!-- headline:begin -->\nnew\n<!-- headline:end -->\nrest\n"
    for bad in ("no markers", "<!-- headline:end -->\n<!-- headline:begin -->", text + text):
        with pytest.raises(ValueError, match="README.md"):
            replace_marked_block(bad, "headline", "x", source="README.md")


def test_runtime_table_sums_benchmarks_per_stage(tmp_path):
    from robustcs.tables import runtime_table

    header = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"
    for rel, s, rss in (("train/d/m/a.tsv", 10.0, 300.0), ("train/d/m/b.tsv", 20.0, 500.0), ("summarise_clean.tsv", 1.5, "NA")):
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(header + f"{s}\t0:00:{int(s):02d}\t{rss}\t1\t1\t1\t0\t0\t0\t{s}\n")
    table = runtime_table(tmp_path)
    assert list(table["stage"]) == ["train", "summarise_clean", "total"]
    row = table.set_index("stage").loc["train"]
    assert row["jobs"] == 2 and row["seconds"] == 30.0 and row["max_job_seconds"] == 20.0 and row["max_rss_mb"] == 500.0
    assert table.set_index("stage").loc["total", "seconds"] == 31.5
    with pytest.raises(ValueError, match="no benchmark files"):
        runtime_table(tmp_path / "empty")


def test_ttt_caption_defines_the_gap_closed_as_computed():
    from conftest import ROOT
    from robustcs.shifts import MIN_GAP, gap_closed

    caption = " ".join((ROOT / "workflow" / "report" / "ttt.rst").read_text().split())
    assert "(SSIM(P→Q + TTT) − SSIM(P→Q)) / (SSIM(Q→Q) − SSIM(P→Q)) × 100 %" in caption
    assert f"not above {MIN_GAP:g} SSIM" in caption and '"–" means' in caption
    assert gap_closed(0.6, 0.65, 0.8, MIN_GAP) == pytest.approx(0.25)  # the formula the caption states
    assert np.isnan(gap_closed(0.6, 0.7, 0.6 + MIN_GAP / 2, MIN_GAP))  # a gap not above MIN_GAP: "–"
    report = ROOT / "workflow" / "report"
    assert '"source → target (shift)"' in " ".join((report / "shifts.rst").read_text().split())
    assert "PSNR (dB" in (report / "adversarial.rst").read_text()


def test_shift_panels_follow_the_configured_order():
    points, fits = _shift_tables(3)
    pairs = {f"shift{s}": {"kind": "dataset", "source": "a", "target": f"b{s}"} for s in (2, 0)}  # shift1 unconfigured
    titles = [ax.get_title() for ax in shift_scatter(points, fits, pairs).axes]
    assert titles == ["a → b2 (shift2: dataset shift)", "a → b0 (shift0: dataset shift)", "shift1"]
