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
