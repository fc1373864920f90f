"""The demo generator and the masks."""

import h5py
import numpy as np
import pytest

from robustcs.demo import DemoSpec, add_fine_structure, simulate_volume, write_dataset
from robustcs.fastmri_io import ifft2c_np, validate_file
from robustcs.masks import MaskSpec, centred_sampled_width, file_mask, make_mask, realised_acceleration

from conftest import TINY


def test_demo_is_deterministic_and_volumes_differ():
    k1, t1, _ = simulate_volume(TINY, seed=5)
    k2, t2, _ = simulate_volume(TINY, seed=5)
    k3, _, _ = simulate_volume(TINY, seed=6)
    assert np.array_equal(k1, k2) and np.array_equal(t1, t2)
    assert not np.allclose(k1, k3)


def test_fine_structure_adds_small_details_inside_the_object():
    spec = DemoSpec(size=48, coils=2, noise=0.0, slices_per_volume=1, volumes={"test": 1})
    _, plain, _ = simulate_volume(spec, seed=4)
    _, detailed, _ = simulate_volume(DemoSpec(**{**spec.__dict__, "fine_structure": 10}), seed=4)
    changed = np.abs(detailed - plain) > 1e-3 * plain.max()
    assert 10 <= changed.sum() < 0.1 * changed.size  # small structures, not a new image
    obj = plain > 0.05 * plain.max()
    assert changed[0][~obj[0]].sum() <= 0.2 * changed.sum()  # (almost) all inside the head
    image = np.ones((32, 32), np.float32)
    a = add_fine_structure(image, 5, np.random.default_rng(1))
    np.testing.assert_array_equal(a, add_fine_structure(image, 5, np.random.default_rng(1)))  # seeded
    assert (a >= 0).all() and not np.array_equal(a, image)
    np.testing.assert_array_equal(add_fine_structure(image, 0, np.random.default_rng(1)), image)


def test_demo_coil_images_are_maps_times_image(tiny_volume):
    """Without noise, every coil image is the coil map times one common complex image."""
    spec = DemoSpec(**{**TINY.__dict__, "noise": 0.0})
    kspace, _, maps = simulate_volume(spec, seed=123)
    coil_img = ifft2c_np(kspace[0])
    combined = np.sum(maps.conj() * coil_img, 0) / np.maximum(np.sum(np.abs(maps) ** 2, 0), 1e-12)
    np.testing.assert_allclose(coil_img, maps * combined, atol=1e-6 * np.abs(coil_img).max())


def test_demo_noise_level_matches_spec():
    spec = DemoSpec(**{**TINY.__dict__, "noise": 0.05})
    k_noisy, _, _ = simulate_volume(spec, seed=9)
    k_clean, _, _ = simulate_volume(DemoSpec(**{**TINY.__dict__, "noise": 0.0}), seed=9)
    noise = (k_noisy - k_clean) / 1e-3
    assert np.std(noise.real) == pytest.approx(0.05 / np.sqrt(2), rel=0.05)


def test_demo_files_follow_fastmri_format(tmp_path):
    from fastmri.data.mri_data import SliceDataset

    spec = DemoSpec(**{**TINY.__dict__, "readout_oversampling": 2, "coils": 3})
    records = write_dataset("demo", spec, tmp_path, seed=0)
    assert {r["split"] for r in records} == {"train", "test"}
    for r in records:
        info = validate_file(r["path"])
        assert (info.coils, info.height, info.width) == (3, 96, 48)
        assert (info.target_height, info.target_width) == (48, 48)
        with h5py.File(r["path"]) as f:
            assert f["kspace"].dtype == np.complex64
            assert f.attrs["max"] == pytest.approx(f["reconstruction_rss"][()].max())
            assert f.attrs["norm"] == pytest.approx(np.linalg.norm(f["reconstruction_rss"][()]))
            assert {"acquisition", "patient_id"} <= set(f.attrs)
    # fastMRI's own data loader reads the files, including their ISMRMRD header.
    ds = SliceDataset(tmp_path / "train", challenge="multicoil", transform=None)
    kspace, _, target, attrs, _, _ = ds[0]
    assert kspace.shape == (3, 96, 48) and target.shape == (48, 48)
    assert attrs["encoding_size"] == (96, 48, 1) and attrs["recon_size"] == (48, 48, 1)


def test_demo_distributions_differ_like_shifts():
    t1 = simulate_volume(TINY, seed=1)[1]
    t2 = simulate_volume(DemoSpec(**{**TINY.__dict__, "contrast": "t2"}), seed=1)[1]
    # same geometry (seed), different contrast: strongly different intensities, same support
    assert np.corrcoef(t1.ravel(), t2.ravel())[0, 1] < 0.9
    sag = simulate_volume(DemoSpec(**{**TINY.__dict__, "orientation": "sagittal"}), seed=1)[1]
    assert not np.allclose(sag, t1)


@pytest.mark.parametrize("mtype", ["random", "equispaced_fraction", "equispaced"])
def test_masks_seeded_per_file(mtype):
    spec = MaskSpec(mtype, 4, 0.08)
    a, nl, _ = file_mask(spec, "m", "file1", 368, study_seed=0)
    b, _, _ = file_mask(spec, "m", "file1", 368, study_seed=0)
    c, _, _ = file_mask(spec, "m", "file2", 368, study_seed=0)
    assert np.array_equal(a, b)
    assert nl == round(368 * 0.08)
    assert centred_sampled_width(a) >= nl
    if mtype == "random":
        assert not np.array_equal(a, c)


def test_random_mask_redrawn_to_target_acceleration():
    spec = MaskSpec("random", 4, 0.08, max_deviation=0.03)
    for seed in range(20):
        mask, _, used = make_mask(spec, 368, seed)
        assert abs(realised_acceleration(mask) - 4) <= 0.03
        assert used >= seed


def test_equispaced_fraction_is_exact():
    mask, _, _ = make_mask(MaskSpec("equispaced_fraction", 4, 0.08), 368, 0)
    assert realised_acceleration(mask) == pytest.approx(4, abs=0.05)


def test_centred_sampled_width():
    m = np.zeros(16, bool)
    m[6:11] = True  # columns 6..10 around centre 8
    assert centred_sampled_width(m) == 5  # [6, 11): sigpy crops a width-5 block at 8 - 5 // 2 = 6
    m[5] = True
    assert centred_sampled_width(m) == 6
    assert centred_sampled_width(np.zeros(16, bool)) == 0
