"""Small-feature recovery: spec validation, placement, k-space re-simulation and the per-feature metrics."""

import dataclasses
import json

import numpy as np
import pytest
import torch
from scipy import ndimage

from robustcs.fastmri_io import center_crop
from robustcs.features import (
    Feature,
    FeatureSpec,
    feature_map,
    feature_metrics,
    insert_features,
    normalise,
    place_features,
)
from robustcs.physics import as_complex_tensor, fft2c, ifft2c, rss

torch.set_num_threads(1)

TARGET = (64, 64)
SPEC = FeatureSpec(sizes=(3, 5), contrasts=(1 / 6, 1 / 3), shapes=("square", "disc"), margin=2)


def _phantom(grid, target_shape=TARGET, coils=4, noise=0.0, zero_outside=False, seed=0):
    """(kspace [C,H,W], maps [C,H,W], target [h,w]) of an ellipse with smooth phase on grid [H, W].

    The object sits in the central target_shape region (as with readout oversampling); the maps are
    normalised to sum_c |S_c|^2 = 1 everywhere, or inside the ellipse only (zero_outside).
    """
    H, W = grid
    h, w = target_shape
    r = np.arange(H)[:, None] - (H - 1) / 2
    c = np.arange(W)[None, :] - (W - 1) / 2
    inside = (r / (0.42 * h)) ** 2 + (c / (0.38 * w)) ** 2 <= 1
    magnitude = inside * (1.0 + 0.3 * np.cos(2 * np.pi * r / h) * np.sin(2 * np.pi * c / (2 * w)))
    image = magnitude * np.exp(1j * (0.04 * r + 0.03 * c + 0.5))
    centres = [(-0.5 * h, 0), (0.5 * h, 0), (0, -0.5 * w), (0, 0.5 * w)][:coils]
    maps = np.stack([
        np.exp(-((r - cr) ** 2 + (c - cc) ** 2) / (2 * (0.6 * h) ** 2)) * np.exp(1j * (0.02 * k * r - 0.01 * c + k))
        for k, (cr, cc) in enumerate(centres)
    ])
    maps /= np.sqrt((np.abs(maps) ** 2).sum(0))
    if zero_outside:
        maps *= inside
    maps = maps.astype(np.complex64)
    kspace = fft2c(as_complex_tensor(maps * image)).numpy()
    if noise:
        g = np.random.default_rng(seed)
        kspace = kspace + noise * (g.standard_normal(kspace.shape) + 1j * g.standard_normal(kspace.shape))
    kspace = kspace.astype(np.complex64)
    target = center_crop(rss(ifft2c(as_complex_tensor(kspace))).numpy(), target_shape).astype(np.float32)
    return kspace, maps, target


@pytest.fixture(scope="module")
def phantom():
    return _phantom(TARGET)


def _gap_ok(a, b):
    """True when windows a and b (r0, r1, c0, c1) are at least one pixel apart."""
    return a[1] < b[0] or b[1] < a[0] or a[3] < b[2] or b[3] < a[2]


# ---------------------------------------------------------------- spec


def test_spec_round_trip():
    cfg = {"sizes": [5, 2], "contrasts": [0.1, 0.5], "shapes": ["disc", "square"], "margin": 0,
           "min_intensity": 0.0, "slices": 3}
    spec = FeatureSpec.from_config(cfg)
    assert spec.sizes == (5, 2) and spec.shapes == ("disc", "square") and spec.contrasts == (0.1, 0.5)
    assert spec.as_dict() == cfg
    assert FeatureSpec.from_config(spec.as_dict()) == spec
    assert FeatureSpec.from_config({}) == FeatureSpec()
    assert FeatureSpec.from_config({"sizes": 4, "shapes": "disc"}).sizes == (4,)
    assert FeatureSpec.from_config({"shapes": "disc"}).shapes == ("disc",)
    assert FeatureSpec().contrasts == (pytest.approx(1 / 6),)


@pytest.mark.parametrize(
    "key, value",
    [("colour", "red")],  # the values' ranges are config/schema.yaml's (tests/test_schema_specs.py)
)
def test_spec_rejects(key, value):
    with pytest.raises(ValueError, match=key):
        FeatureSpec.from_config({key: value})


# ---------------------------------------------------------------- feature geometry


def test_footprints_and_map():
    disc = lambda s: Feature(0, "disc", s, 0.5, 0, 0).footprint()  # noqa: E731
    assert Feature(0, "square", 4, 0.5, 0, 0).footprint().sum() == 16
    assert disc(1).sum() == 1
    assert disc(3).all()  # corner centres lie sqrt(2) < 1.5 from the centre
    assert disc(4).sum() == 12
    assert disc(5).sum() == 21 and not disc(5)[0, 0] and disc(5)[0, 1]
    for s in (3, 4, 5, 8):
        fp = disc(s)
        np.testing.assert_array_equal(fp, fp.T)
        np.testing.assert_array_equal(fp, fp[::-1, ::-1])
    f = Feature(3, "disc", 5, 0.25, 10, 20)
    assert f.box == (10, 15, 20, 25)
    assert f.window(3, (64, 64)) == (7, 18, 17, 28)
    assert Feature(0, "square", 3, 0.1, 1, 62).window(3, (64, 64)) == (0, 7, 59, 64)
    fmap = feature_map([f, Feature(4, "square", 3, 0.5, 40, 2)], (64, 64), maxval=2.0)
    assert fmap.dtype == np.float32 and fmap.shape == (64, 64)
    np.testing.assert_array_equal(fmap[10:15, 20:25], 0.5 * disc(5))
    np.testing.assert_array_equal(fmap[40:43, 2:5], 1.0)
    assert fmap.sum() == pytest.approx(21 * 0.5 + 9 * 1.0)
    with pytest.raises(ValueError, match="outside"):
        feature_map([Feature(0, "square", 5, 0.1, 62, 0)], (64, 64), 1.0)


# ---------------------------------------------------------------- placement


def test_placement_valid(phantom):
    _, _, target = phantom
    for seed in range(5):
        features = place_features(target, SPEC, np.random.default_rng(seed))
        combos = [(f.shape, f.size, f.contrast) for f in features]
        assert [f.index for f in features] == list(range(8))
        assert combos == [(s, z, c) for s in SPEC.shapes for z in SPEC.sizes for c in SPEC.contrasts]
        windows = []
        for f in features:
            r0, r1, c0, c1 = f.box
            wr0, wr1, wc0, wc1 = win = (r0 - SPEC.margin, r1 + SPEC.margin, c0 - SPEC.margin, c1 + SPEC.margin)
            assert f.window(SPEC.margin, target.shape) == win  # not clipped: fully inside the image
            assert wr0 >= 0 and wc0 >= 0 and wr1 <= target.shape[0] and wc1 <= target.shape[1]
            assert target[wr0:wr1, wc0:wc1].min() >= SPEC.min_intensity * target.max()
            windows.append(win)
        for i in range(len(windows)):
            for j in range(i):
                assert _gap_ok(windows[i], windows[j]), (windows[i], windows[j])


def test_placement_seeded(phantom):
    _, _, target = phantom
    a = place_features(target, SPEC, np.random.default_rng(7))
    b = place_features(target, SPEC, np.random.default_rng(7))
    c = place_features(target, SPEC, np.random.default_rng(8))
    assert a == b
    assert [(f.row, f.col) for f in a] != [(f.row, f.col) for f in c]
    # the workflow stores features as JSON (dataclasses.asdict) and reads them back with Feature(**d)
    assert [Feature(**d) for d in json.loads(json.dumps([dataclasses.asdict(f) for f in a]))] == a


def test_placement_covers_exactly_the_valid_positions():
    """Draws of one feature hit every valid top-left corner, and nothing else (brute force)."""
    target = np.full((16, 14), 0.4, np.float32)  # below the threshold 0.5, but not by much
    target[3:12, 2:10] = 1.0  # a 9 x 8 bright block
    target[0:4, 10:14] = 1.0  # a block in the corner, too small for a window
    spec = FeatureSpec(sizes=(3,), shapes=("square",), margin=1, min_intensity=0.5)
    extent = 3 + 2
    valid = {
        (r + 1, c + 1)
        for r in range(16 - extent + 1)
        for c in range(14 - extent + 1)
        if target[r : r + extent, c : c + extent].min() >= 0.5
    }
    assert len(valid) == 5 * 4
    rng = np.random.default_rng(0)
    hits = {(f.row, f.col) for _ in range(800) for f in place_features(target, spec, rng)}
    assert hits == valid
    # the whole image bright: windows may touch the image border
    full = np.ones((9, 9), np.float32)
    hits = {(f.row, f.col) for _ in range(300) for f in place_features(full, spec, rng)}
    assert hits == {(r, c) for r in range(1, 6) for c in range(1, 6)}


def test_placement_impossible(phantom):
    tiny = np.zeros((64, 64), np.float32)
    tiny[30:36, 30:36] = 1.0
    with pytest.raises(ValueError, match="cannot place"):
        place_features(tiny, FeatureSpec(sizes=(5,), margin=1), np.random.default_rng(0))
    # 9x9 windows: two fit side by side in a 9x19 spot (gap of exactly one pixel), not in a 9x18 one
    two = FeatureSpec(sizes=(5,), contrasts=(0.1, 0.2), margin=2)
    spot = np.zeros((64, 64), np.float32)
    spot[20:29, 20:39] = 1.0
    a, b = place_features(spot, two, np.random.default_rng(0))
    assert {a.col, b.col} == {22, 32} and a.row == b.row == 22
    spot[:, 38] = 0
    place_features(spot, FeatureSpec(sizes=(5,), margin=2), np.random.default_rng(0))
    with pytest.raises(ValueError, match="cannot place"):
        place_features(spot, two, np.random.default_rng(0))
    with pytest.raises(ValueError):
        place_features(np.zeros((64, 64), np.float32), SPEC, np.random.default_rng(0))
    _, _, target = phantom
    with pytest.raises(ValueError, match="cannot place"):
        place_features(target, FeatureSpec(sizes=(40,)), np.random.default_rng(0))


# ---------------------------------------------------------------- insertion


def _delta(kspace, maps, fmap_full):
    x = (maps.conj() * ifft2c(as_complex_tensor(kspace)).numpy()).sum(0)
    return fmap_full * np.exp(1j * np.angle(x))


@pytest.mark.parametrize("grid", [(64, 64), (128, 64), (129, 67)])
def test_insert_adds_the_feature_map(grid):
    """Noise-free, maps with sum |S|^2 = 1: the new reference is the old one plus the feature map, in place."""
    kspace, maps, target = _phantom(grid)
    features = place_features(target, SPEC, np.random.default_rng(1))
    maxval = float(target.max())
    before = kspace.copy()
    new_kspace, new_target = insert_features(kspace, maps, features, TARGET, maxval)
    np.testing.assert_array_equal(kspace, before)  # inputs untouched
    assert new_kspace.dtype == np.complex64 and new_kspace.shape == kspace.shape
    assert new_target.dtype == np.float32 and new_target.shape == TARGET
    fmap = feature_map(features, TARGET, maxval)
    np.testing.assert_allclose(new_target - target, fmap, atol=2e-5 * maxval)
    # linearity: the k-space change is exactly F(S * delta), delta embedded at the centre-crop position
    H, W = grid
    top, left = (H - TARGET[0]) // 2, (W - TARGET[1]) // 2
    full = np.zeros(grid)
    full[top : top + TARGET[0], left : left + TARGET[1]] = fmap
    expected = fft2c(as_complex_tensor(maps * _delta(kspace, maps, full))).numpy()
    scale = np.abs(kspace).max()
    np.testing.assert_allclose(new_kspace - kspace, expected, atol=1e-5 * scale)


def test_insert_with_maps_zero_outside():
    """ESPIRiT-like maps (zero outside the object): exact inside, nothing changes outside the object."""
    kspace, maps, target = _phantom((128, 64), zero_outside=True)
    features = place_features(target, SPEC, np.random.default_rng(2))
    maxval = float(target.max())
    _, new_target = insert_features(kspace, maps, features, TARGET, maxval)
    np.testing.assert_allclose(new_target - target, feature_map(features, TARGET, maxval), atol=2e-5 * maxval)


def test_insert_with_noise():
    """Noisy data: the noise stays, the feature raises the reference by about its contrast."""
    kspace, maps, target = _phantom((128, 64), noise=0.01, seed=3)
    features = place_features(target, SPEC, np.random.default_rng(3))
    maxval = float(target.max())
    new_kspace, new_target = insert_features(kspace, maps, features, TARGET, maxval)
    fmap = feature_map(features, TARGET, maxval)
    rss_new = center_crop(rss(ifft2c(as_complex_tensor(new_kspace))).numpy(), TARGET)
    np.testing.assert_allclose(new_target, rss_new, rtol=1e-6, atol=1e-7 * maxval)  # recomputed, with its noise
    diff = new_target - target
    for f in features:
        r0, r1, c0, c1 = f.box
        fp = f.footprint()
        assert diff[r0:r1, c0:c1][fp].mean() == pytest.approx(f.contrast * maxval, rel=0.05)
    np.testing.assert_allclose(diff[fmap == 0], 0, atol=1e-4 * maxval)
    # the change is noise-free: the same features in the noise-free data give the same k-space change
    clean, _, _ = _phantom((128, 64))
    clean_new, _ = insert_features(clean, maps, features, TARGET, maxval)
    np.testing.assert_allclose(new_kspace - kspace, clean_new - clean, atol=0.05 * np.abs(clean_new - clean).max())


def test_insert_rejects_bad_shapes(phantom):
    kspace, maps, target = phantom
    features = place_features(target, SPEC, np.random.default_rng(0))
    with pytest.raises(ValueError, match="do not match"):
        insert_features(kspace, maps[:2], features, TARGET, 1.0)
    with pytest.raises(ValueError, match="larger"):
        insert_features(kspace, maps, features, (80, 64), 1.0)


# ---------------------------------------------------------------- metrics


def test_normalise():
    img = np.random.default_rng(0).random((8, 9)).astype(np.float32) * 5 + 2
    out = normalise(img)
    assert out.dtype == np.float64
    assert out.mean() == pytest.approx(0, abs=1e-12) and out.std() == pytest.approx(1, abs=1e-12)
    with pytest.raises(ValueError):
        normalise(np.full((4, 4), 3.0))


@pytest.fixture(scope="module")
def featured(phantom):
    kspace, maps, target = phantom
    features = place_features(target, SPEC, np.random.default_rng(4))
    _, new_target = insert_features(kspace, maps, features, TARGET, float(target.max()))
    return target, new_target, features


def test_metrics_perfect_and_affine(featured):
    _, new_target, features = featured
    for recon in (new_target, new_target.astype(np.complex64), 3 * new_target + 5, 2 * new_target):
        rows = feature_metrics(new_target, recon, features, margin=SPEC.margin)
        assert len(rows) == len(features)
        exact = np.allclose(np.abs(recon), new_target)
        for row, f in zip(rows, features):
            assert {k: row[k] for k in ("index", "shape", "size", "contrast", "row", "col")} == \
                {"index": f.index, "shape": f.shape, "size": f.size, "contrast": f.contrast, "row": f.row, "col": f.col}
            # the study's mean/std scaling forgives any affine change; the reference-max scale does not
            assert row["mse_feature_meanstd"] == pytest.approx(0, abs=1e-10)
            if exact:
                assert row["mse_feature"] == pytest.approx(0, abs=1e-10)
                assert row["mse_window"] == pytest.approx(0, abs=1e-10)
                assert row["contrast_recovery"] == pytest.approx(1, abs=1e-6)
            else:
                assert row["mse_feature"] > 0.1 and row["contrast_recovery"] > 1.5


def test_metrics_missing_and_blurred(featured):
    original, new_target, features = featured
    gone = feature_metrics(new_target, original, features, margin=SPEC.margin)
    blurred = feature_metrics(new_target, ndimage.gaussian_filter(new_target, 1.0), features, margin=SPEC.margin)
    for g, b in zip(gone, blurred):
        assert abs(g["contrast_recovery"]) < 0.1
        # in units of the reference max, a missing feature costs about its contrast squared
        assert g["mse_feature"] == pytest.approx(g["contrast"] ** 2, rel=0.5) and g["mse_window"] > 0
        assert 0.1 < b["contrast_recovery"] < 0.9
        assert 0 < b["mse_feature"] < g["mse_feature"]
    # stronger features are missed by more (same shape and size, larger contrast)
    assert gone[1]["mse_feature"] > gone[0]["mse_feature"]


def test_metrics_values_by_hand(featured):
    _, new_target, features = featured
    recon = new_target.copy()
    f = features[2]  # the 5x5 square
    r0, r1, c0, c1 = f.box
    recon[r0, c0] += 1.0
    rows = feature_metrics(new_target, recon, [f], margin=1)
    t64, r64 = new_target.astype(np.float64), recon.astype(np.float64)
    a, b = t64 / t64.max(), r64 / t64.max()
    fp = np.zeros_like(a, dtype=bool)
    fp[r0:r1, c0:c1] = True
    win = np.zeros_like(fp)
    win[r0 - 1 : r1 + 1, c0 - 1 : c1 + 1] = True
    ring = win & ~fp
    assert rows[0]["mse_feature"] == pytest.approx(((a - b)[fp] ** 2).mean(), rel=1e-10)
    assert rows[0]["mse_window"] == pytest.approx(((a - b)[win] ** 2).mean(), rel=1e-10)
    expected = (b[fp].mean() - b[ring].mean()) / (a[fp].mean() - a[ring].mean())
    assert rows[0]["contrast_recovery"] == pytest.approx(expected, rel=1e-10)
    assert rows[0]["mse_window"] < rows[0]["mse_feature"]
    sa, sb = normalise(new_target), normalise(recon)
    assert rows[0]["mse_feature_meanstd"] == pytest.approx(((sa - sb)[fp] ** 2).mean(), rel=1e-10)


def test_metrics_rejects_shape_mismatch(featured):
    _, new_target, features = featured
    with pytest.raises(ValueError, match="same shape"):
        feature_metrics(new_target, new_target[:, :-1], features, margin=2)
