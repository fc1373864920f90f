"""The metrics module against fastmri.evaluate and against the definitions."""

import numpy as np
import pytest
from fastmri import evaluate

from robustcs.metrics import magnitude_crop, slice_metrics


@pytest.fixture
def volume(rng):
    ref = rng.random((3, 32, 28)) * np.linspace(0.2, 1.0, 28)
    noisy = np.abs(ref + 0.05 * rng.standard_normal(ref.shape))  # a magnitude image
    return ref, noisy


def test_mean_slice_ssim_equals_fastmri_volume_ssim(volume):
    ref, pred = volume
    maxval = ref.max()
    per_slice = [slice_metrics(r, p, maxval)["ssim"] for r, p in zip(ref, pred)]
    assert np.mean(per_slice) == pytest.approx(np.asarray(evaluate.ssim(ref, pred, maxval=maxval)).item(), rel=1e-12)


def test_each_slice_equals_fastmri_evaluate_at_a_realistic_size(rng):
    # A 320x320 magnitude slice with a Rician-like noise floor (the fastMRI target size): SSIM, PSNR and NMSE
    # must equal fastmri.evaluate's to rounding, with the volume max (not the slice max) as data range.
    yy, xx = np.mgrid[-1:1:320j, -1:1:320j]
    obj = (xx**2 / 0.7**2 + yy**2 / 0.9**2 < 1) * (1.0 + 0.3 * np.sin(9 * xx))
    ref = np.abs(obj + 0.02 * (rng.standard_normal(obj.shape) + 1j * rng.standard_normal(obj.shape)))
    pred = np.abs(ref + 0.05 * rng.standard_normal(ref.shape))
    maxval = 1.4 * ref.max()
    m = slice_metrics(ref, pred, maxval)
    assert m["ssim"] == pytest.approx(np.asarray(evaluate.ssim(ref[None], pred[None], maxval=maxval)).item(), rel=1e-12)
    assert m["psnr"] == pytest.approx(float(evaluate.psnr(ref, pred, maxval=maxval)), rel=1e-12)
    assert m["nmse"] == pytest.approx(float(evaluate.nmse(ref, pred)), rel=1e-12)


def test_volume_max_is_the_data_range(volume):
    ref, pred = volume
    # A larger data range makes the same errors look smaller: SSIM and PSNR must both rise.
    a = slice_metrics(ref[0], pred[0], ref[0].max())
    b = slice_metrics(ref[0], pred[0], 2 * ref[0].max())
    assert b["ssim"] > a["ssim"] and b["psnr"] == pytest.approx(a["psnr"] + 20 * np.log10(2))


def test_psnr_nmse_definitions(volume):
    ref, pred = volume
    m = slice_metrics(ref[1], pred[1], 1.5)
    mse = np.mean((ref[1] - pred[1]) ** 2)
    assert m["psnr"] == pytest.approx(10 * np.log10(1.5**2 / mse))
    assert m["nmse"] == pytest.approx(np.sum((ref[1] - pred[1]) ** 2) / np.sum(ref[1] ** 2))
    assert m["nmse"] == pytest.approx(float(evaluate.nmse(ref[1], pred[1])))


def test_complex_oversampled_reconstruction_is_cropped_magnitude(volume, rng):
    ref, pred = volume
    # Pad to a larger grid (readout oversampling) and give it a random phase: the metrics must not change.
    phase = np.exp(1j * rng.uniform(-np.pi, np.pi, pred[0].shape))
    big = np.zeros((64, 40), complex)
    big[16:48, 6:34] = pred[0] * phase
    np.testing.assert_allclose(magnitude_crop(big, ref[0].shape), pred[0])
    assert slice_metrics(ref[0], big, ref.max()) == pytest.approx(slice_metrics(ref[0], pred[0], ref.max()))


@pytest.mark.filterwarnings("ignore:divide by zero")
def test_perfect_reconstruction(volume):
    ref, _ = volume
    m = slice_metrics(ref[0], ref[0], ref.max())
    assert m["ssim"] == pytest.approx(1.0) and m["nmse"] == 0.0 and m["psnr"] == np.inf


def test_bad_inputs(volume):
    ref, pred = volume
    with pytest.raises(ValueError, match="smaller than the reference"):
        slice_metrics(ref[0], pred[0][:10], 1.0)
    with pytest.raises(ValueError, match="positive"):
        slice_metrics(ref[0], pred[0], 0.0)
    with pytest.raises(ValueError, match="NaN"):
        slice_metrics(ref[0], np.full_like(pred[0], np.nan), 1.0)
    with pytest.raises(ValueError, match="at least 7x7"):
        slice_metrics(ref[0][:6, :6], pred[0][:6, :6], 1.0)


def _zero_filled_volumes(rng, slices_per_volume=(4, 2)):
    """Reconstructions of two phantom volumes (different slice counts, slices of different energy): the RSS of
    the zero-filled 4x-undersampled k-space of 4 coils, beside its fully sampled reference."""
    yy, xx = np.mgrid[-1:1:48j, -1:1:40j]
    out = []
    for v, n in enumerate(slices_per_volume):
        ref, pred = [], []
        for s in range(n):
            obj = (xx**2 / 0.8**2 + yy**2 / (0.5 + 0.1 * s) ** 2 < 1) * (1 + v + 0.4 * np.sin((5 + s) * xx))
            coils = obj * np.exp(-((xx - np.array([-1, 1, 0, 0])[:, None, None]) ** 2 + yy**2)) + 0.01 * (
                rng.standard_normal((4, 48, 40)) + 1j * rng.standard_normal((4, 48, 40)))
            k = np.fft.fft2(coils)
            mask = rng.random(40) < 0.25
            mask[:4] = mask[-4:] = True  # the low frequencies of an unshifted FFT
            ref.append(np.sqrt((np.abs(coils) ** 2).sum(0)))
            pred.append(np.sqrt((np.abs(np.fft.ifft2(k * mask)) ** 2).sum(0)))
        out.append((np.stack(ref), np.stack(pred)))
    return out


def test_volume_scores_equal_fastmri_evaluate_on_a_reconstruction(rng):
    """Per-slice scores aggregated by the tables equal fastmri.evaluate's per-volume PSNR, NMSE and SSIM (the volume
    max as data range, fastmri.evaluate's default), and the clean table's mean ± std over volumes equals
    fastmri.evaluate.Metrics'. The mean of slice PSNRs (the old convention) is measurably different."""
    import pandas as pd

    from robustcs.tables import summarise, volume_scores

    volumes = _zero_filled_volumes(rng)
    rows, fm = [], evaluate.Metrics(evaluate.METRIC_FUNCS)
    for v, (ref, pred) in enumerate(volumes):
        maxval = ref.max()
        for s in range(len(ref)):
            rows.append({"method": "zf", "stem": f"v{v}", "slice": s, **slice_metrics(ref[s], pred[s], maxval)})
        fm.push(ref, pred)
    per_slice = pd.DataFrame(rows)
    scores = volume_scores(per_slice, ["method"]).set_index("stem")
    for v, (ref, pred) in enumerate(volumes):
        got = scores.loc[f"v{v}"]
        assert got["slices"] == len(ref)
        assert got["psnr"] == pytest.approx(float(evaluate.psnr(ref, pred)), abs=1e-9)
        assert got["nmse"] == pytest.approx(float(evaluate.nmse(ref, pred)), rel=1e-9)
        assert got["ssim"] == pytest.approx(np.asarray(evaluate.ssim(ref, pred)).item(), abs=1e-9)
    slice_mean = per_slice.loc[per_slice["stem"] == "v0", "psnr"].mean()
    assert abs(slice_mean - scores.loc["v0", "psnr"]) > 1e-3  # the fixture tells the two conventions apart
    table = summarise(per_slice, ["method"]).iloc[0]
    assert table["n"] == 6 and table["volumes"] == 2
    means, stds = fm.means(), fm.stddevs()
    for ours, theirs in (("psnr", "PSNR"), ("nmse", "NMSE"), ("ssim", "SSIM")):
        assert table[f"{ours}_mean"] == pytest.approx(float(np.asarray(means[theirs]).item()), rel=1e-9, abs=1e-9)
        assert table[f"{ours}_std"] == pytest.approx(float(np.asarray(stds[theirs]).item()), rel=1e-6, abs=1e-9)


@pytest.mark.filterwarnings("ignore:divide by zero")
def test_volume_psnr_and_nmse_from_slice_scores():
    from robustcs.metrics import volume_nmse, volume_psnr

    # two slices of one size and data range 1: squared errors 0.01 and 0.04 per pixel, energies 1 and 4 per pixel
    psnr, nmse = [20.0, 10 * np.log10(1 / 0.04)], [0.01, 0.01]
    assert volume_psnr(psnr) == pytest.approx(10 * np.log10(1 / 0.025))
    assert volume_nmse(psnr, nmse) == pytest.approx(0.05 / 5)
    assert volume_psnr([30.0]) == 30.0 and volume_nmse([30.0], [0.2]) == pytest.approx(0.2)
    assert volume_psnr([np.inf, np.inf]) == np.inf and volume_nmse([np.inf, np.inf], [0.0, 0.0]) == 0.0
    # an exact slice adds no error; its energy is taken as the other slices' mean
    assert volume_nmse([20.0, np.inf], [0.01, 0.0]) == pytest.approx(0.01 / 2)
    with pytest.raises(ValueError, match="one PSNR and one NMSE per slice"):
        volume_nmse([20.0], [0.1, 0.2])
    with pytest.raises(ValueError, match="slice PSNRs"):
        volume_psnr([])
