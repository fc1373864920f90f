"""Shift analysis: the least-squares fits, effective robustness with its bootstrap, the filtered target
set, the gap formula and the scatter figure."""

import warnings

import numpy as np
import pandas as pd
import pytest

from robustcs.families import FIT_GROUPS, PAPER_FAMILIES, is_baseline
from robustcs.plots import save, shift_scatter
from robustcs.shifts import (
    filtered_slices,
    fit_table,
    gap_closed,
    linear_fit,
    paired_volume_bootstrap_means,
    residuals_markdown,
    shift_points,
    shift_verdict,
)

GROUPS = {"l1": ["l1_a", "l1_b", "l1_c"], "convdecoder": ["cd_a", "cd_b", "cd_c"], "unet": ["u_a", "u_b", "u_c"],
          "varnet": ["v_a", "v_b", "v_c"]}


def _table(shift="s", offsets=None, slope=0.8, intercept=0.1, n_slices=12, noise=0.02, seed=0, extra=()):
    """Per-slice rows of one shift: variant i of each group has quality q; in-distribution slices scatter
    around q, shifted slices around slope·q + intercept (+ the group's offset)."""
    rng = np.random.default_rng(seed)
    offsets = offsets or {}
    base_in = rng.normal(0, noise, n_slices)  # slice difficulty, shared by all variants
    base_out = rng.normal(0, noise, n_slices)
    rows = []
    members = [(f, m) for f, ms in GROUPS.items() for m in ms] + list(extra)
    for k, (family, method) in enumerate(members):
        q = 0.6 + 0.3 * (k % 3) / 2 + 0.01 * (k // 3)
        for side, base, centre in (("in", base_in, q), ("out", base_out, slope * q + intercept + offsets.get(family, 0))):
            for i in range(n_slices):
                rows.append({"shift": shift, "side": side, "method": method, "family": family, "stem": f"f{i // 3}",
                             "slice": i % 3, "ssim": centre + base[i]})
    return pd.DataFrame(rows)


def _volumes(offsets=None, quality=None, n_volumes=8, slices=3, noise=0.01, shift="s", seed=0, extra=(), shared=False):
    """Per-slice rows of one shift from ``n_volumes`` test volumes per side with a known truth: variant quality q
    in distribution, 0.8·q + 0.1 + its group's offset under the shift (so a group's effective robustness against
    the other groups' line is its offset). Each (variant, volume) has its own error (sd ``noise``), shared by the
    volume's slices, plus slice noise: the interval must resample volumes. ``shared``: both sides are the same
    volumes (one stem) with the same per-volume error, as when the shifted slices are source slices."""
    rng = np.random.default_rng(seed)
    offsets, quality = offsets or {}, quality or {}
    members = [(f, m) for f, ms in GROUPS.items() for m in ms] + list(extra)
    rows = []
    for k, (family, method) in enumerate(members):
        q = quality.get(family, (0.6, 0.75, 0.9))[k % 3] if family in GROUPS else 0.75
        error = {side: rng.normal(0, noise, n_volumes) for side in ("in", "out")}
        if shared:
            error["out"] = error["in"]
        for side, centre in (("in", q), ("out", 0.8 * q + 0.1 + offsets.get(family, 0))):
            for v in range(n_volumes):
                for i in range(slices):
                    rows.append({"shift": shift, "side": side, "method": method, "family": family,
                                 "stem": f"vol{v}" if shared else f"{side}{v}", "slice": i,
                                 "ssim": centre + error[side][v] + rng.normal(0, noise / 4)})
    return pd.DataFrame(rows)


def test_linear_fit():
    x = np.array([0.5, 0.6, 0.8, 0.9])
    fit = linear_fit(x, 0.7 * x + 0.2)
    assert fit.slope == pytest.approx(0.7) and fit.intercept == pytest.approx(0.2) and fit.r2 == pytest.approx(1)
    y = 0.7 * x + np.array([0.01, -0.02, 0.015, 0.0])
    fit = linear_fit(x, y)
    slope, intercept = np.polyfit(x, y, 1)
    assert fit.slope == pytest.approx(slope) and fit.intercept == pytest.approx(intercept)
    assert fit.r2 == pytest.approx(np.corrcoef(x, y)[0, 1] ** 2)
    assert fit.predict([1.0]) == pytest.approx(slope + intercept)
    assert np.isnan(linear_fit([0.5], [0.4]).slope) and linear_fit([0.5], [0.4]).n == 1
    assert np.isnan(linear_fit([0.5, 0.5], [0.4, 0.6]).slope)
    assert np.isnan(linear_fit([0.5, 0.6], [0.4, 0.4]).r2)
    with pytest.raises(ValueError, match="NaN"):
        linear_fit([0.5, np.nan], [0.4, 0.6])


def test_shift_points_means_counts_and_checks():
    table = _table()
    points = shift_points(table)
    assert len(points) == 12 and list(points["family"].unique()) == ["l1", "convdecoder", "unet", "varnet"]
    row = points[points["method"] == "u_b"].iloc[0]
    sel = table[table["method"] == "u_b"]
    assert row["ssim_in"] == pytest.approx(sel[sel["side"] == "in"]["ssim"].mean())
    assert row["ssim_out"] == pytest.approx(sel[sel["side"] == "out"]["ssim"].mean())
    assert row["n_in"] == row["n_out"] == 12
    with pytest.raises(ValueError, match="ssim"):
        shift_points(table.drop(columns="ssim"))
    short = table.drop(table[(table["method"] == "cd_b") & (table["side"] == "out")].index[:1])
    with pytest.raises(ValueError, match="cd_b"):
        shift_points(short)
    with pytest.raises(ValueError, match="v_c"):
        shift_points(table[~((table["method"] == "v_c") & (table["side"] == "in"))])


def test_one_common_line_gives_zero_effective_robustness():
    table = _table(noise=0.01)
    fits = fit_table(table, n_boot=300, seed=1)
    assert list(fits["group"]) == ["all", "l1", "convdecoder", "unet", "varnet"]
    points = shift_points(table)
    common = linear_fit(points["ssim_in"], points["ssim_out"])
    line = fits.iloc[0]
    assert line["slope"] == pytest.approx(common.slope) and line["r2"] == pytest.approx(common.r2)
    for row in fits.itertuples():
        assert abs(row.residual) < 1e-9
        assert row.residual_low <= 0 <= row.residual_high
    # each group's own line is the same line
    assert fits["slope"].to_numpy() == pytest.approx(np.full(5, 0.8), abs=1e-9)


def test_a_group_above_the_line_has_positive_effective_robustness():
    fits = fit_table(_table(offsets={"convdecoder": 0.05}, noise=0.01), n_boot=500, seed=0).set_index("group")
    assert fits.loc["convdecoder", "residual"] > 0.025
    assert fits.loc["convdecoder", "residual_low"] > 0  # the interval excludes 0
    for group in ("l1", "unet", "varnet"):
        assert fits.loc[group, "residual"] < 0
    assert fits.loc["all", "residual"] == pytest.approx(0, abs=1e-12)


def test_only_the_papers_families_shape_the_line_the_others_get_residuals():
    """The zero-filled baseline and CG-SENSE far off the line change neither the common line nor any papers'
    group's row; they get rows of their own (fitted False) with their residual to the papers' line."""
    assert FIT_GROUPS == PAPER_FAMILIES and is_baseline("cgsense") and is_baseline("zero_filled")
    table = _volumes()
    extra = [("zero_filled", "zf"), ("cgsense", "cg_a"), ("cgsense", "cg_b")]
    with_others = _volumes(extra=extra)
    out = (with_others["side"] == "out") & with_others["family"].isin(["zero_filled", "cgsense"])
    with_others.loc[out & (with_others["family"] == "cgsense"), "ssim"] += 0.2  # far above the line
    with_others.loc[out & (with_others["family"] == "zero_filled"), "ssim"] -= 0.3  # far below
    a, b = fit_table(table, n_boot=200), fit_table(with_others, n_boot=200)
    assert list(b["group"]) == ["all", *GROUPS, "zero_filled", "cgsense"]
    pd.testing.assert_frame_equal(a, b[b["fitted"]].reset_index(drop=True))
    others = b[~b["fitted"]].set_index("group")
    points = shift_points(with_others)
    papers = points[points["family"].isin(PAPER_FAMILIES)]
    line = linear_fit(papers["ssim_in"], papers["ssim_out"])
    for group, verdict in (("cgsense", "above"), ("zero_filled", "below")):
        mine = points[points["family"] == group]
        assert others.loc[group, "residual"] == pytest.approx((mine["ssim_out"] - line.predict(mine["ssim_in"])).mean())
        assert others.loc[group, "verdict"] == verdict and others.loc[group, "n_points"] == len(mine)
    assert (a["verdict"].iloc[1:] == "on the line").all()
    assert "zf" in set(shift_points(with_others)["method"])


def test_verdict_rules():
    """Two-sided with a margin: inside ±δ on the line, wholly beyond it above/below, else (or with too few
    volumes, or no interval) undecided."""
    on, few = (0.02, 10, 10, 3), (0.02, 2, 10, 3)
    assert shift_verdict(-0.01, 0.015, *on) == "on the line"
    assert shift_verdict(-0.02, 0.02, *on) == "on the line"
    assert shift_verdict(0.025, 0.06, *on) == "above" and shift_verdict(-0.06, -0.021, *on) == "below"
    assert shift_verdict(0.01, 0.03, *on) == "undecided" and shift_verdict(-0.03, -0.01, *on) == "undecided"
    assert shift_verdict(-0.03, 0.03, *on) == "undecided"  # a wide interval decides nothing
    assert shift_verdict(0.025, 0.06, *few) == "undecided" and shift_verdict(-0.01, 0.01, *few) == "undecided"
    assert shift_verdict(-0.01, 0.01, 0.02, 10, 2, 2) == "on the line"
    assert shift_verdict(np.nan, np.nan, *on) == "undecided"
    for bad in (-0.01, 1.5, "0.02", True):
        with pytest.raises(ValueError, match="findings.shift_margin"):
            fit_table(_table(), n_boot=10, margin=bad)
    for bad in (0, 2.5, True):
        with pytest.raises(ValueError, match="findings.min_volumes"):
            fit_table(_table(), n_boot=10, min_volumes=bad)


@pytest.mark.parametrize("offset, verdict",
                         [(0.0, "on the line"), (-0.05, "below"), (0.05, "above"), (0.02, "undecided")])
def test_a_groups_verdict_follows_the_planted_offset(offset, verdict):
    """VarNet planted ``offset`` off the other groups' line (margin 0.02): on the line, below, above, or, with
    the offset at the margin, an interval that straddles it."""
    fits = fit_table(_volumes({"varnet": offset}), n_boot=500, seed=2).set_index("group")
    row = fits.loc["varnet"]
    assert row["residual"] == pytest.approx(offset, abs=0.006)  # the truth, up to the noise
    assert row["verdict"] == verdict
    if verdict == "undecided":
        assert row["residual_low"] < 0.02 < row["residual_high"]
    assert fits.loc["all", "verdict"] == "" and not fits["paired"].any() and (fits["n_boot"] == 500).all()


def test_too_few_volumes_leave_every_group_undecided():
    table = _volumes({"varnet": -0.05}, n_volumes=2)
    fits = fit_table(table, n_boot=300).set_index("group")
    assert (fits["n_volumes_in"] == 2).all() and (fits.drop("all")["verdict"] == "undecided").all()
    assert fit_table(table, n_boot=300, min_volumes=2).set_index("group").loc["varnet", "verdict"] == "below"


def test_leave_group_out_keeps_a_group_from_pulling_the_line_to_itself():
    """A VarNet group of the best variants, planted 0.04 below the others' line, tilts a line fitted through its
    own points towards itself: against that line it would look within the margin (residual about −0.018); against
    the line of the other families its residual is the planted −0.04 and it lies below."""
    table = _volumes({"varnet": -0.04}, quality={"varnet": (0.9, 0.95, 1.0)})
    points = shift_points(table)
    with_itself = linear_fit(points["ssim_in"], points["ssim_out"])
    varnet = points[points["family"] == "varnet"]
    pulled = float((varnet["ssim_out"] - with_itself.predict(varnet["ssim_in"])).mean())
    assert -0.02 < pulled < -0.01
    fits = fit_table(table, n_boot=500).set_index("group")
    assert fits.loc["varnet", "residual"] == pytest.approx(-0.04, abs=0.003)
    assert fits.loc["varnet", "verdict"] == "below"
    # the "all" row keeps the line over every papers' family
    assert fits.loc["all", "slope"] == pytest.approx(with_itself.slope)
    assert fits.loc["all", "intercept"] == pytest.approx(with_itself.intercept)


def test_paired_draw_serves_both_sides_that_share_volumes():
    rng = np.random.default_rng(0)
    values = rng.random((2, 6))
    stems = ["a", "a", "b", "c", "c", "d"]
    same_in, same_out = paired_volume_bootstrap_means([(values, stems), (values, stems)], np.random.default_rng(1), 300)
    np.testing.assert_array_equal(same_in, same_out)  # one draw: identical sides stay identical on every draw
    # a side with a subset of the volumes (a filtered target): weights from the same draw over the union, NaN
    # where the draw holds none of its volumes
    sub = values[:, [2, 5]]  # the slices of volumes b and d
    full, part = paired_volume_bootstrap_means([(values, stems), (sub, ["b", "d"])], np.random.default_rng(1), 300)
    counts = np.zeros((300, 4))
    draws = np.random.default_rng(1).integers(0, 4, size=(300, 4))
    for i, d in enumerate(draws):
        np.add.at(counts[i], d, 1)
    w = counts[:, [0, 0, 1, 2, 2, 3]]
    np.testing.assert_allclose(full, (w @ values.T) / w.sum(1, keepdims=True))
    has = counts[:, [1, 3]].sum(1) > 0
    assert not has.all() and np.isnan(part[~has]).all()
    wp = counts[has][:, [1, 3]]
    np.testing.assert_allclose(part[has], (wp @ sub.T) / wp.sum(1, keepdims=True))


def test_pairing_narrows_the_interval_when_errors_are_shared_per_volume():
    """Both sides from the same volumes, each variant's error per volume the same on both sides (a volume hard
    in distribution is hard under the shift): one draw for both sides lets the error cancel in the residual;
    drawing the sides independently (the same numbers, the target's volumes renamed) does not."""
    table = _volumes({"varnet": -0.05}, shared=True, noise=0.02)
    apart = table.assign(stem=np.where(table["side"] == "out", "other_" + table["stem"], table["stem"]))
    paired, independent = (fit_table(t, n_boot=500).set_index("group").drop("all") for t in (table, apart))
    assert paired["paired"].all() and not independent["paired"].any()
    pd.testing.assert_series_equal(paired["residual"], independent["residual"])
    width = {name: f["residual_high"] - f["residual_low"] for name, f in (("p", paired), ("i", independent))}
    assert (width["p"] < 0.5 * width["i"]).all(), width
    assert paired.loc["varnet", "verdict"] == "below"
    # a filtered target: a subset of the source slices; a draw without any of its volumes is left out
    source = table[table["side"] == "in"]
    target = source[source["stem"].isin(["vol0", "vol1"])].assign(side="out")
    fits = fit_table(pd.concat([source, target]), n_boot=400)
    assert fits["paired"].all() and (fits["n_volumes_out"] == 2).all()
    assert 400 * (1 - (6 / 8) ** 8) - 40 < fits["n_boot"].iloc[0] < 400  # P(a draw holds vol0 or vol1) = 1 − (6/8)^8


def test_fit_table_is_deterministic_and_independent_of_order_and_other_shifts():
    table = _table(offsets={"unet": 0.02})
    a = fit_table(table, n_boot=200, seed=3)
    pd.testing.assert_frame_equal(a, fit_table(table.sample(frac=1, random_state=0), n_boot=200, seed=3))
    both = pd.concat([_table(shift="other", seed=5), table])
    pd.testing.assert_frame_equal(a, fit_table(both, n_boot=200, seed=3).query("shift == 's'").reset_index(drop=True))
    assert not fit_table(table, n_boot=200, seed=4).equals(a)


def test_filtered_slices():
    table = pd.DataFrame({"stem": ["b", "a", "a", "c", "b"], "slice": [0, 1, 0, 0, 1],
                          "ssim": [0.7, 0.5, 0.9, 0.5, 0.6]})
    out = filtered_slices(table, 0.5)  # ceil(2.5) = 3, ties at 0.5 by (stem, slice)
    assert list(zip(out["stem"], out["slice"])) == [("a", 1), ("c", 0), ("b", 1)]
    assert len(filtered_slices(table, 0.01)) == 1 and len(filtered_slices(table, 1.0)) == 5
    for bad in (0, 1.5, -0.1):
        with pytest.raises(ValueError, match="fraction"):
            filtered_slices(table, bad)
    with pytest.raises(ValueError, match="no evaluated"):
        filtered_slices(table.iloc[:0], 0.5)


def test_gap_closed():
    assert gap_closed(0.855, 0.919, 0.922) == pytest.approx((0.919 - 0.855) / (0.922 - 0.855))
    np.testing.assert_allclose(gap_closed(np.array([0.5, 0.6]), np.array([0.6, 0.6]), np.array([0.7, 0.8])), [0.5, 0])
    series = gap_closed(pd.Series([0.5]), pd.Series([0.6]), pd.Series([0.7]))
    assert isinstance(series, pd.Series) and series.iloc[0] == pytest.approx(0.5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert np.isnan(gap_closed(0.7, 0.75, 0.7))
        assert np.isnan(gap_closed(np.array([0.7]), np.array([0.8]), np.array([0.7]))[0])


def test_markdown_and_figure(tmp_path):
    table = pd.concat([_table(offsets={"l1": -0.03}), _table(shift="t", seed=2, extra=[("zero_filled", "zf")])])
    # a shift where one group has a single variant: its own line is undefined (NaN) but drawn without it
    table = table[~table["method"].isin(["v_b", "v_c"]) | (table["shift"] == "s")]
    fits = fit_table(table, n_boot=100)
    assert np.isnan(fits[(fits["shift"] == "t") & (fits["group"] == "varnet")]["slope"].iloc[0])
    md = residuals_markdown(fits)
    row = fits[(fits["shift"] == "s") & (fits["group"] == "l1")].iloc[0]
    assert f"[{row['residual_low']:.3f}, {row['residual_high']:.3f}]".replace("-", "−") in md
    assert "| t | varnet | 1 | – | – | – |" in md
    assert "| t | zero_filled (not fitted) | 1 |" in md and md.count("| all |") == 2
    for r in fits[fits["group"] != "all"].itertuples():
        assert md.count(f"| {r.verdict} |") >= 1
    # group "all": its mean residual is zero up to rounding, written without a sign either way
    for sign in (-1, 1):
        tiny = fits.assign(residual=np.where(fits["group"] == "all", sign * 1e-15, fits["residual"]))
        assert "| s | all |" in residuals_markdown(tiny) and "| −0.000 [" not in residuals_markdown(tiny)
    fig = shift_scatter(shift_points(table), fits, {"s": {"kind": "dataset", "source": "p", "target": "q"}})
    # one panel per shift, titled source → target; its solid black line is the common fit
    common = fits[(fits["shift"] == "s") & (fits["group"] == "all")].iloc[0]
    ax = next(a for a in fig.axes if a.get_title() == "p → q (s: dataset shift)")
    assert any(a.get_title() == "t" for a in fig.axes)  # a shift without its config block: the name alone
    solid = [ln for ln in ax.get_lines() if ln.get_linestyle() == "-" and ln.get_color() == "black"]
    assert len(solid) == 1
    x, y = solid[0].get_data()
    np.testing.assert_allclose(y, common["slope"] * np.asarray(x) + common["intercept"])
    path = tmp_path / "shifts.png"
    save(fig, path)
    assert path.stat().st_size > 10_000


def test_volume_bootstrap_resamples_whole_volumes():
    """Slices of one volume move together: each resample draws volumes (all their slices), not slices."""
    from robustcs.shifts import volume_bootstrap_means

    rng = np.random.default_rng(0)
    stems = ["a", "a", "a", "b", "c", "c"]
    values = rng.random((2, 6))
    boot = volume_bootstrap_means(values, stems, np.random.default_rng(5), 400)
    draws = np.random.default_rng(5).integers(0, 3, size=(400, 3))  # the same draws, done by hand
    columns = {0: [0, 1, 2], 1: [3], 2: [4, 5]}
    expected = np.array([[np.mean(np.concatenate([values[r, columns[v]] for v in d])) for r in range(2)] for d in draws])
    np.testing.assert_allclose(boot, expected)
    # one volume: nothing to resample between volumes, every resample is the mean of all its slices
    np.testing.assert_allclose(volume_bootstrap_means(values, ["a"] * 6, rng, 50), np.tile(values.mean(1), (50, 1)))
    # a slice bootstrap would shrink the interval of volume-level variation by about sqrt(slices per volume)
    per_volume = np.repeat(rng.normal(0, 1, 20), 10)[None]
    spread = volume_bootstrap_means(per_volume, np.repeat(np.arange(20), 10), rng, 2000).std()
    assert spread == pytest.approx(np.std(per_volume) / np.sqrt(20), rel=0.2)
    fits = fit_table(_table(), n_boot=50)
    assert (fits["n_volumes_in"] == 4).all() and (fits["n_volumes_out"] == 4).all()
