"""One image space: every method is scored on the same kind of image as the reference (RSS of coil images).

A method that reconstructs one image x through the ESPIRiT maps is scored on the RSS of its data-consistent
coil images F^H(M y + (1 - M) F S x). Fed fully sampled k-space, every such output path must
reproduce the reference, on the demo data and on a real scan's slice with its measured noise floor; scoring
|x| instead fails there (the checks below show how badly, so that the test would catch a return to it)."""

import numpy as np
import pytest
import torch

from robustcs.demo import DemoSpec, scanned_head_slice, simulate_volume
from robustcs.fastmri_io import rss_target
from robustcs.masks import MaskSpec, file_mask
from robustcs.methods import load_method
from robustcs.metrics import slice_metrics
from robustcs.networks import forward, init_model, save_model, spec_from_config
from robustcs.physics import MultiCoilOperator, as_complex_tensor, ifft2c
from robustcs.recon_io import SliceInput
from robustcs.families import family
from robustcs.sensitivities import EspiritSpec, espirit_maps

# Every output path that goes through the maps (ℓ1, ConvDecoder sense, complex U-Net, ESPIRiT VarNet) and
# the two that need none (zero-filled, ConvDecoder with per-coil output). Networks are untrained: the point
# is the scoring path, which must not depend on what the network outputs where the data are measured.
THROUGH_MAPS = {
    "zf": {"family": "zero_filled"},
    "l1": {"family": "l1", "lam": 0.001, "iterations": 20},
    "cgsense": {"family": "cgsense", "lam": 0.001, "iterations": 20},
    "cd_sense": {"family": "convdecoder", "mode": "sense", "channels": 8, "layers": 3, "input_shape": [4, 4], "iterations": 5},
    "cd_coils": {"family": "convdecoder", "mode": "coils", "channels": 8, "layers": 3, "input_shape": [4, 4], "iterations": 5},
    "unet_complex": {"family": "unet", "input": "complex", "chans": 4, "pools": 2},
    "varnet_espirit": {"family": "varnet", "maps": "espirit", "cascades": 2, "chans": 4, "pools": 2, "sens_chans": 2, "sens_pools": 2},
}


def _slice(kind: str):
    """(kspace [C, H, W], true maps) of a low-noise demo slice or a real scan with its noise floor (+ receiver noise)."""
    if kind == "demo":
        kspace, _, maps = simulate_volume(DemoSpec(size=64, coils=4, noise=0.003, slices_per_volume=1,
                                                   volumes={"test": 1}), seed=7)
        return kspace[0], maps
    return scanned_head_slice(coils=4, noise=0.02, seed=1)


def _item(kspace, mask, sens, num_low=8) -> SliceInput:
    target = rss_target(kspace[None], kspace.shape[-2:])[0]
    return SliceInput("f", 0, kspace, mask.astype(np.float32), num_low, sens, target, float(target.max()))


def _method(name, tmp_path):
    settings = THROUGH_MAPS[name]
    path = None
    if family(settings["family"]).trained:
        spec = spec_from_config(settings)
        path = tmp_path / f"{name}.pt"
        save_model(path, spec, init_model(spec, 0))
    return load_method(name, settings, model_path=path, seed=0)


@pytest.mark.parametrize("kind", ["demo", "scanned_noisy"])
@pytest.mark.parametrize("maps", ["exact", "espirit"])
def test_every_family_reproduces_the_reference_when_fully_sampled(kind, maps, tmp_path, one_torch_thread):
    kspace, true_maps = _slice(kind)
    full = np.ones(kspace.shape[-1])
    sens = true_maps if maps == "exact" else espirit_maps(kspace, full, EspiritSpec(calib_width=16, kernel_width=5))
    item = _item(kspace, full, sens)
    for name in THROUGH_MAPS:
        magnitude, image = _method(name, tmp_path).reconstruct(item)
        ssim = slice_metrics(item.target, magnitude, item.maxval)["ssim"]
        assert ssim >= 0.98, f"{name} on the fully sampled {kind} slice ({maps} maps): SSIM {ssim:.4f}"
    if kind == "scanned_noisy" and maps == "espirit":
        # |x| of the SENSE combination, the scoring this replaced: zero where the maps are cropped, so the
        # reference's noise floor counts as error (measured SSIM about 0.3 here)
        x = _method("l1", tmp_path).reconstruct(item)[1]
        assert slice_metrics(item.target, np.abs(x), item.maxval)["ssim"] < 0.9


def test_l1_iterate_stays_in_the_map_support(tmp_path):
    kspace, _ = _slice("scanned_noisy")
    mask, num_low, _ = file_mask(MaskSpec("random", 4, 0.08, 0.03), "m", "f", kspace.shape[-1], 0)
    sens = espirit_maps(kspace, mask, EspiritSpec(calib_width=16, kernel_width=5))
    outside = (np.abs(sens) ** 2).sum(0) == 0
    assert 0.05 < outside.mean() < 0.9  # ESPIRiT crops the background of this slice
    _, x = _method("l1", tmp_path).reconstruct(_item(kspace, mask, sens, num_low))
    assert np.abs(x)[outside].max() == 0 and np.abs(x)[~outside].max() > 0


@pytest.mark.parametrize("kind, gain", [pytest.param("scanned", 0.2, marks=pytest.mark.slow), ("demo", 0.1),
                                        pytest.param("scanned_noisy", 0.0, marks=pytest.mark.slow)])  # ~5 s each at 320x320
def test_l1_at_4x_against_zero_filled(kind, gain, tmp_path):
    """Measured with the workflow's ESPIRiT maps from the undersampled data: on the low-noise images the best
    λ beats zero-filled clearly (scanned 0.48 -> 0.91, demo 0.73 -> 0.89), on the noise-dominated one it is no
    worse (0.71 -> 0.74); scored as |x| it was 0.43 against zero-filled's 0.73 there."""
    if kind == "demo":
        kspace, _, _ = simulate_volume(DemoSpec(size=128, coils=8, noise=0.003, slices_per_volume=2,
                                                volumes={"test": 1}), seed=1)
        kspace, centre = kspace[1], 0.16
    else:
        kspace, _ = scanned_head_slice(coils=8, noise=0.02 if kind == "scanned_noisy" else 0.0, seed=0)
        centre = 0.08
    mask, num_low, _ = file_mask(MaskSpec("random", 4, centre, 0.03), "m", "s", kspace.shape[-1], 0)
    sens = espirit_maps(kspace, mask, EspiritSpec(calib_width=24))
    item = _item(kspace, mask, sens, num_low)
    zf = slice_metrics(item.target, load_method("zf", {"family": "zero_filled"}).reconstruct(item)[0], item.maxval)["ssim"]
    best = max(
        slice_metrics(item.target, load_method("l1", {"family": "l1", "lam": lam, "iterations": 60}).reconstruct(item)[0],
                      item.maxval)["ssim"]
        for lam in (1e-4, 1e-3, 3e-3)
    )
    assert best >= zf + gain, f"{kind}: best ℓ1 SSIM {best:.4f}, zero-filled {zf:.4f}"


@pytest.mark.parametrize("name", ["unet_complex", "varnet_espirit"])
def test_scored_image_is_what_the_self_supervised_loss_fits(name, tmp_path):
    """TTT's loss compares M·F S x with the measurements; the scored image must be built from the same F S x
    (its unmeasured samples) with the measured ones put back, over the whole grid, not |x| inside the maps."""
    kspace, maps = _slice("scanned_noisy")
    mask, num_low, _ = file_mask(MaskSpec("random", 4, 0.08, 0.03), "m", "f", kspace.shape[-1], 0)
    settings = THROUGH_MAPS[name]
    spec = spec_from_config(settings)
    model = init_model(spec, 0).eval()
    k = as_complex_tensor(kspace)[None]
    m = torch.as_tensor(mask, dtype=torch.float32)[None]
    s = as_complex_tensor(maps)[None]
    with torch.no_grad():
        magnitude, predicted = forward(model, spec, k * m[:, None, None], m, kspace.shape[-2:], num_low, s, predict_kspace=True)
        expected = MultiCoilOperator(m[:, None, None], None).data_consistent(ifft2c(predicted), k)
    torch.testing.assert_close(magnitude, expected.abs().square().sum(-3).sqrt(), rtol=1e-4, atol=1e-9)


def _np_rss_of_data_consistent(kspace: np.ndarray, mask: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """RSS of F^H(M y + (1 − M) k̂) in numpy: fastMRI's centred orthonormal inverse FFT written out (ifftshift,
    ifft2 with norm 'ortho', fftshift), independent of robustcs.physics."""
    combined = np.where(mask[None, None, :] > 0, kspace, predicted)
    images = np.fft.fftshift(np.fft.ifft2(np.fft.ifftshift(combined, axes=(-2, -1)), norm="ortho"), axes=(-2, -1))
    return np.sqrt((np.abs(images) ** 2).sum(0))


def _np_fft(images: np.ndarray) -> np.ndarray:
    return np.fft.fftshift(np.fft.fft2(np.fft.ifftshift(images, axes=(-2, -1)), norm="ortho"), axes=(-2, -1))


# (the ConvDecoder returns S^H of its data-consistent coil images, not its fitted x, so its k̂ is not recoverable here;
# its per-coil and sense paths are compared with their own fit in tests/test_convdecoder.py)
@pytest.mark.parametrize("name", ["zf", "l1", "cgsense", "unet_complex", "varnet_espirit"])
def test_partially_sampled_scoring_path_against_numpy(name, tmp_path, one_torch_thread):
    """At 4x the scored image depends on what the method puts in the unmeasured samples, so this checks the
    forward itself, not only the wiring (a fully sampled mask gives F^H y whatever the method does): the scored
    magnitude equals the RSS of F^H(M y + (1 − M) k̂) computed in numpy, with k̂ = F S x for a method that returns
    its image x, the network's k-space prediction for a network, 0 for zero-filled. Scoring |x|, dropping the
    measured samples or a wrong FFT convention would each fail. The method must also change the unmeasured part:
    its result differs from zero-filled."""
    kspace, _ = _slice("demo")
    mask, num_low, _ = file_mask(MaskSpec("random", 4, 0.16, 0.03), "m", "f", kspace.shape[-1], 0)
    assert 0.2 < mask.mean() < 0.35
    sens = espirit_maps(kspace, mask, EspiritSpec(calib_width=10, kernel_width=5))
    item = _item(kspace, mask, sens, num_low)
    method = _method(name, tmp_path)
    magnitude, image = method.reconstruct(item)
    measured = kspace * mask[None, None, :]
    if name == "zf":
        predicted = np.zeros_like(kspace)
    elif image is not None:
        predicted = _np_fft(sens * image[None])
    else:
        spec = spec_from_config(THROUGH_MAPS[name])
        model = init_model(spec, 0).eval()
        k = as_complex_tensor(measured)[None]
        m = torch.as_tensor(mask, dtype=torch.float32)[None]
        with torch.no_grad():
            _, k_hat = forward(model, spec, k, m, kspace.shape[-2:], num_low, as_complex_tensor(sens)[None],
                               predict_kspace=True)
        predicted = k_hat[0].numpy()
    expected = _np_rss_of_data_consistent(kspace, mask, predicted)
    np.testing.assert_allclose(magnitude, expected, rtol=2e-4, atol=2e-5 * expected.max())
    zero_filled = _np_rss_of_data_consistent(kspace, mask, np.zeros_like(kspace))
    if name != "zf":
        assert np.abs(magnitude - zero_filled).max() > 1e-3 * zero_filled.max(), f"{name} left the unmeasured samples at 0"


@pytest.mark.parametrize("name", ["unet_complex", "varnet_espirit"])
def test_untrained_network_is_not_bypassed(name, tmp_path, one_torch_thread):
    """Two untrained networks of different initialisation give different scored images at 4x: the network's
    output reaches the scored image (a forward that returned the zero-filled or measured data alone would not)."""
    kspace, _ = _slice("demo")
    mask, num_low, _ = file_mask(MaskSpec("random", 4, 0.16, 0.03), "m", "f", kspace.shape[-1], 0)
    sens = espirit_maps(kspace, mask, EspiritSpec(calib_width=10, kernel_width=5))
    item = _item(kspace, mask, sens, num_low)
    spec = spec_from_config(THROUGH_MAPS[name])
    out = []
    for seed in (0, 1):
        path = tmp_path / f"{name}_{seed}.pt"
        save_model(path, spec, init_model(spec, seed))
        out.append(load_method(name, THROUGH_MAPS[name], model_path=path, seed=0).reconstruct(item)[0])
    assert np.abs(out[0] - out[1]).max() > 1e-3 * out[0].max()
