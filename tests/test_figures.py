"""Figures a reviewer accepts: every figure rule writes a PNG of at least 200 dpi and a vector copy, variants
carry display names (not the config's internal names), and no two texts of a rendered figure overlap."""

import re
from itertools import combinations
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from robustcs.families import variant_label
from robustcs.plots import MIN_DPI, feature_recovery_vs_ssim, quality_vs_epsilon, save, shift_scatter, variant_numbers
from robustcs.plots_ttt import ttt_bars

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(__file__).resolve().parent / "data"
#: the shifts of the demo's config (panel titles), as plot_shifts receives them
PAIRS = {"scanner": {"kind": "dataset", "source": "brain_t1", "target": "scanner_b"},
         "anatomy": {"kind": "anatomy", "source": "brain_t1", "target": "brain_sag"},
         "contrast": {"kind": "contrast", "source": "brain_t1", "target": "brain_t2"},
         "filtered": {"kind": "filtered", "source": "brain_t1", "filter": "unet_filter", "fraction": 0.5}}


def _demo_shifts():
    """The demo's shift tables (16 variants of five families per panel, crowded where the networks agree)."""
    return pd.read_csv(DATA / "demo_shifts.csv"), pd.read_csv(DATA / "demo_shift_fit.csv")


def _overlaps(fig) -> list[tuple[str, str, float]]:
    """(text, text, overlap in px²) for every pair of visible, non-empty texts of the drawn figure whose boxes
    overlap by more than 1 px² (tick labels, titles, axis labels, legends and point labels alike)."""
    from matplotlib.text import Text

    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    undrawn = set()  # labels of ticks outside the view: matplotlib keeps them but does not draw them
    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            lo, hi = sorted(axis.get_view_interval())
            tol = 1e-9 * max(1.0, abs(hi - lo))
            for tick in axis.get_major_ticks() + axis.get_minor_ticks():
                if not lo - tol <= tick.get_loc() <= hi + tol:
                    undrawn |= {id(tick.label1), id(tick.label2)}
    boxes = [(t.get_text(), t.get_window_extent(renderer)) for t in fig.findobj(Text)
             if t.get_visible() and t.get_text().strip() and id(t) not in undrawn]
    hits = []
    for (a, ba), (b, bb) in combinations(boxes, 2):
        w = min(ba.x1, bb.x1) - max(ba.x0, bb.x0)
        h = min(ba.y1, bb.y1) - max(ba.y0, bb.y0)
        if w > 0 and h > 0 and w * h > 1.0:
            hits.append((a, b, round(float(w * h), 1)))
    return hits


def test_the_demo_shift_figure_has_no_overlapping_texts_and_no_internal_names():
    points, fits = _demo_shifts()
    fig = shift_scatter(points, fits, PAIRS)
    assert _overlaps(fig) == []
    numbers = variant_numbers(points)
    key = [t.get_text() for t in fig.legends[0].get_texts()]
    for (method, family), n in numbers.items():  # the key names each variant by family and settings
        assert f"{n}  {variant_label(method, family)}" in key
    everything = " ".join(t.get_text() for t in fig.findobj(lambda a: hasattr(a, "get_text")))
    assert "cd_c8_l3_i60" not in everything and "varnet_k5_c12_e15" not in everything
    assert "8  ConvDecoder (c8, l3, i60)" in key and "1  zero-filled" in key


def test_the_overlap_check_sees_an_overlap():
    """The check itself: two texts drawn on the same spot are reported."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    ax.text(0.5, 0.5, "one label")
    ax.text(0.52, 0.5, "another label")
    assert [(a, b) for a, b, _ in _overlaps(fig)] == [("one label", "another label")]
    plt.close(fig)


def _figures():
    """The data figures from small fixtures (the example figures are images with titles, tested in test_plots)."""
    families = ["zero_filled", "l1", "convdecoder", "unet", "varnet"]
    rows = []
    for family in families:
        for v, method in enumerate((f"{family}_a1", f"{family}_b22")):
            rows.append({"dataset": "d", "mask": "m", "family": family, "method": method, "epsilon": 0.0,
                         "kind": "clean", "psnr_mean": 30.0 - v, "ssim_mean": 0.9})
            for eps in (0.02, 0.04, 0.08):
                for kind, drop in (("adversarial", 100), ("random", 10)):
                    rows.append({"dataset": "d", "mask": "m", "family": family, "method": method, "epsilon": eps,
                                 "kind": kind, "psnr_mean": 30.0 - drop * eps, "ssim_mean": 0.9 - drop * eps / 50})
    summary = pd.DataFrame({"dataset": "d", "mask": "m", "family": families, "method": [f"{f}_a" for f in families],
                            "ssim": [0.6, 0.7, 0.75, 0.8, 0.85], "mse_feature": [0.05, 0.03, 0.02, 0.02, 0.01]})
    correlation = pd.DataFrame({"dataset": ["d"], "mask": "m", "metric": "mse_feature", "pearson": [-0.9],
                                "spearman": [-0.9]})
    ttt = pd.DataFrame({"shift": ["anatomy"] * 2 + ["scanner"] * 2, "family": ["unet", "varnet"] * 2,
                        "method": ["unet_ttt_c8_e12", "varnet_ttt_k2_c8_e6"] * 2, "ssim_p_q": [0.6, 0.7, 0.65, 0.72],
                        "ssim_p_q_ttt": [0.65, 0.8, 0.7, 0.75], "ssim_q_q": [0.8, 0.82, 0.78, 0.8],
                        "gap_closed": [0.25, 0.83, 0.38, 0.38], "gap_closed_low": [0.1, 0.6, 0.2, 0.1],
                        "gap_closed_high": [0.4, 1.0, 0.5, 0.6]})
    points, fits = _demo_shifts()
    return {"adversarial": lambda: quality_vs_epsilon(pd.DataFrame(rows)),
            "features_vs_ssim": lambda: feature_recovery_vs_ssim(summary, correlation),
            "ttt": lambda: ttt_bars(ttt, PAIRS),
            "shifts": lambda: shift_scatter(points, fits, PAIRS)}


@pytest.mark.parametrize("name", ["adversarial", "features_vs_ssim", "ttt", "shifts"])
def test_each_data_figure_is_written_at_200_dpi_with_a_vector_copy_and_no_overlaps(name, tmp_path):
    from PIL import Image

    fig = _figures()[name]()
    assert _overlaps(fig) == [], name
    texts = " ".join(t.get_text() for t in fig.findobj(lambda a: hasattr(a, "get_text")))
    assert not re.search(r"\b(unet_ttt_c8_e12|varnet_ttt_k2_c8_e6|convdecoder_a1|l1_b22)\b", texts), name
    dpi = yaml.safe_load((ROOT / "config" / "schema.yaml").read_text())["properties"]["plots"]["properties"]["dpi"]
    save(fig, tmp_path / f"{name}.png", tmp_path / f"{name}.pdf", dpi=dpi["default"])
    with Image.open(tmp_path / f"{name}.png") as png:
        assert min(png.info["dpi"]) >= 199.5  # the PNG records its resolution (pHYs), rounding aside
        assert min(png.size) >= 3 * 200  # every figure is a few inches wide and high
    assert (tmp_path / f"{name}.pdf").read_bytes()[:5] == b"%PDF-"


def test_every_figure_rule_writes_a_png_and_a_pdf_and_the_configs_ask_200_dpi():
    rules = "\n".join(p.read_text() for p in sorted((ROOT / "workflow" / "rules").glob("*.smk")))
    blocks = re.findall(r"^rule (plot_\w+):\n(.*?)(?=^rule |\Z)", rules, re.S | re.M)
    assert len(blocks) >= 6
    for name, body in blocks:
        output = body.split("output:", 1)[1].split("params:", 1)[0]
        pngs = re.findall(r'paths\.figure\("([\w/]+)", "png"\)', output)  # rules take paths from robustcs.paths
        pdfs = re.findall(r'paths\.figure\("([\w/]+)", "pdf"\)', output)
        assert pngs and pngs == pdfs, f"rule {name}: a PNG and a PDF of each figure, got {pngs} and {pdfs}"
        assert 'plots["dpi"]' in (ROOT / "workflow" / "scripts" / f"{name}.py").read_text() or \
            'params.plots)["dpi"]' in (ROOT / "workflow" / "scripts" / f"{name}.py").read_text(), name
    dpi = yaml.safe_load((ROOT / "config" / "schema.yaml").read_text())["properties"]["plots"]["properties"]["dpi"]
    assert dpi["minimum"] >= MIN_DPI and dpi["default"] >= MIN_DPI == 200
    for config in ("config.yaml", "demo_full.yaml", "real.yaml", "rehearsal.yaml"):
        plots = (yaml.safe_load((ROOT / "config" / config).read_text()) or {}).get("plots") or {}
        assert plots.get("dpi", dpi["default"]) >= 200, config


def test_variant_labels_name_the_family_and_the_settings():
    assert variant_label("cd_c8_l3_i60", "convdecoder") == "ConvDecoder (c8, l3, i60)"
    assert variant_label("l1_lam1e4", "l1") == "ℓ1 (lam1e4)"
    assert variant_label("unet_c4_half_e10", "unet") == "U-Net (c4, half, e10)"
    assert variant_label("zero_filled", "zero_filled") == "zero-filled"
    assert variant_label("fast", "varnet") == "VarNet (fast)"  # a name that does not start with the family's
    assert variant_label("x_1", "no_such_family") == "x_1"
    table = pd.DataFrame({"method": ["v", "a", "l", "v"], "family": ["varnet", "unet", "l1", "varnet"]})
    numbers = variant_numbers(table)
    assert numbers == {("l", "l1"): 1, ("a", "unet"): 2, ("v", "varnet"): 3}  # family order, then name
    assert np.all(np.diff(list(numbers.values())) == 1)
