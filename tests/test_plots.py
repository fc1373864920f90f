"""Figures, the headline table and the README block: what they show, not only that they exist."""

import numpy as np
import pandas as pd
import pytest

from robustcs.features import Feature
from robustcs.plots import adversarial_examples, feature_examples, save, ttt_bars
from robustcs.tables import attack_drops, headline
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
    assert texts == ["gap closed\n25%", "gap closed\n83%"]


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
    assert any("ε = 0.04" in n for n in notes)
    only_clean, notes = headline(clean, "e", "m")
    assert list(only_clean["method"]) == ["l1_a"] and len(notes) == 1
    # a dataset without clean rows falls back to the table's first one, and the note names that one
    fallback, notes = headline(clean, "missing", "m")
    assert list(fallback["method"]) == ["l1_a", "unet_a"] and notes == ["ssim, psnr: clean test slices of d, mask m"]


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
