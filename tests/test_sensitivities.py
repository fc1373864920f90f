"""ESPIRiT maps: the fast crop-and-interpolate path against sigpy at full resolution, the simulated
truth, and BART."""

import numpy as np
import pytest
import sigpy.mri as mr

from robustcs.bart import bart_ecalib, read_cfl, write_cfl
from robustcs.demo import DemoSpec, simulate_volume
from robustcs.masks import MaskSpec, file_mask
from robustcs.sensitivities import EspiritSpec, espirit_maps, map_agreement, map_support

from conftest import require_tool

SPEC = DemoSpec(size=96, coils=6, noise=0.005, slices_per_volume=2)


@pytest.fixture(scope="module")
def slice_and_mask():
    kspace, _, maps = simulate_volume(SPEC, seed=4)
    mask, _, _ = file_mask(MaskSpec("random", 4, 0.25, 0.1), "m", "f", kspace.shape[-1], 0)
    return kspace[1], mask, maps


def _support(*maps):
    return np.all([map_support(m) for m in maps], axis=0)


def test_lowres_path_agrees_with_sigpy_full_resolution(slice_and_mask):
    kspace, mask, _ = slice_and_mask
    full = espirit_maps(kspace, mask, EspiritSpec(lowres_factor=1))
    # the full-resolution path is sigpy's EspiritCalib itself (up to the phase reference)
    calib = 24
    ref = mr.app.EspiritCalib(kspace * mask, calib_width=calib, crop=0.95, show_pbar=False).run()
    sup = _support(full, ref)
    assert map_agreement(full, ref)[sup].min() > 0.9999
    for f in (2, 4):
        low = espirit_maps(kspace, mask, EspiritSpec(lowres_factor=f))
        sup = _support(full, low)
        assert map_agreement(full, low)[sup].mean() > 0.9999
        # the eigenvalue crop moves by at most a pixel's worth at the edge of the object
        assert abs(int(map_support(low).sum()) - int(sup.sum())) < 0.02 * sup.sum()


def test_maps_are_unit_norm_and_match_the_simulated_coils(slice_and_mask):
    kspace, mask, truth = slice_and_mask
    maps = espirit_maps(kspace, mask, EspiritSpec())
    sup = _support(maps)
    norms = np.sqrt((np.abs(maps) ** 2).sum(0))[sup]
    np.testing.assert_allclose(norms, 1.0, atol=1e-4)
    # inside the object (where the sensitivities are identifiable) they match the simulation
    _, target, _ = simulate_volume(SPEC, seed=4)
    obj = sup & (target[1] > 0.2 * target[1].max())
    assert map_agreement(maps, truth)[obj].mean() > 0.99


def test_phase_is_smooth(slice_and_mask):
    kspace, mask, _ = slice_and_mask
    maps = espirit_maps(kspace, mask, EspiritSpec())
    sup = _support(maps)
    # neighbouring pixels' map vectors are nearly parallel without a phase jump
    inner = sup[:, 1:] & sup[:, :-1]
    dots = np.abs(np.sum(maps[:, :, 1:] * maps[:, :, :-1].conj(), 0))
    phase = np.angle(np.sum(maps[:, :, 1:] * maps[:, :, :-1].conj(), 0))
    assert dots[inner].mean() > 0.99 and np.abs(phase[inner]).max() < 0.5


def test_calibration_uses_only_sampled_centre(slice_and_mask):
    kspace, mask, _ = slice_and_mask
    sparse = np.zeros_like(mask)
    sparse[::4] = True
    with pytest.raises(ValueError, match="fully sampled centre columns"):
        espirit_maps(kspace, sparse, EspiritSpec())
    # unsampled columns of k-space never influence the maps
    noisy = kspace.copy()
    noisy[:, :, ~mask] += 100.0
    np.testing.assert_array_equal(espirit_maps(noisy, mask, EspiritSpec()), espirit_maps(kspace, mask, EspiritSpec()))


def test_cfl_roundtrip(tmp_path, rng):
    a = (rng.standard_normal((3, 4, 1, 5)) + 1j * rng.standard_normal((3, 4, 1, 5))).astype(np.complex64)
    write_cfl(tmp_path / "a", a)
    np.testing.assert_array_equal(read_cfl(tmp_path / "a"), a)


def test_agrees_with_bart_ecalib(slice_and_mask):
    require_tool("bart")
    kspace, mask, _ = slice_and_mask
    spec = EspiritSpec()
    ours = espirit_maps(kspace, mask, spec)
    bart = bart_ecalib(kspace * mask, calib_width=24, kernel_width=spec.kernel_width, threshold=spec.threshold, crop=spec.crop)
    sup = _support(ours, bart)
    assert sup.sum() > 0.3 * map_support(ours).sum()
    assert map_agreement(ours, bart)[sup].mean() > 0.98
