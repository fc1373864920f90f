"""The ISMRMRD -> fastMRI converter, on files written by Debian's generator and by the ismrmrd package."""

import subprocess

import h5py
import ismrmrd
import numpy as np
import pytest
import sigpy.mri as mr

from robustcs.fastmri_io import DataValidationError, center_crop, fft2c_np, ifft2c_np, validate_file
from robustcs.ismrmrd_convert import _centered_ifft1, convert_ismrmrd, make_header

from conftest import require_tool


def _shepp_logan(tmp_path, *args):
    tool = require_tool("ismrmrd_generate_cartesian_shepp_logan")
    out = tmp_path / "raw.h5"
    subprocess.run([tool, "-o", str(out), *args], check=True, capture_output=True)
    return out


@pytest.mark.parametrize("coils,noise_cal", [(4, True), (5, False)])
def test_debian_shepp_logan_converts_exactly(tmp_path, coils, noise_cal):
    raw = _shepp_logan(tmp_path, "-m", "64", "-c", str(coils), "-n", "0", *(["-C"] if noise_cal else []))
    stats = convert_ismrmrd(raw, tmp_path / "out.h5")
    assert stats["skipped_noise"] == (1 if noise_cal else 0)
    assert stats["imaging"] == 64 and stats["coils"] == coils
    info = validate_file(tmp_path / "out.h5")
    # readout oversampling 2 (128 samples) removed: the grid is the 64x64 reconstruction matrix
    assert (info.slices, info.coils, info.height, info.width) == (1, coils, 64, 64)
    with h5py.File(raw) as f:
        truth = f["dataset/coil_images"][0]
        truth = (truth["real"] + 1j * truth["imag"])[:, :, 32:96]  # [coils, y, x], x cropped to the FOV
    with h5py.File(tmp_path / "out.h5") as f:
        kspace = f["kspace"][0]
        target = f["reconstruction_rss"][0]
        assert b"ismrmrdHeader" in f["ismrmrd_header"][()]
    img = ifft2c_np(kspace).transpose(0, 2, 1)  # fastMRI puts the readout (x) along H
    np.testing.assert_allclose(img, truth, atol=1e-4 * np.abs(truth).max())
    np.testing.assert_allclose(target, np.sqrt((np.abs(truth) ** 2).sum(0)).T, atol=1e-4 * target.max())


def test_debian_noisy_file_validates(tmp_path):
    raw = _shepp_logan(tmp_path, "-m", "32", "-c", "8", "-C")
    convert_ismrmrd(raw, tmp_path / "out.h5", scale=1e-3)
    assert validate_file(tmp_path / "out.h5").coils == 8


def _write_3d(path, coil_img, *, rx, skip_ky=0, chop=True, noise_scans=2, rng=None):
    """Write 3D Cartesian k-space of coil images [C, X, Y, Z] as ISMRMRD acquisitions with the ismrmrd package.

    skip_ky: the first ky lines are not acquired (partial Fourier); the encoding centre moves accordingly.
    chop: lines are sign-alternated in ky and kz and ChopY/ChopZ = 0 says so (as in the Stanford files).
    """
    c, x, y, z = coil_img.shape
    k = np.fft.fftshift(np.fft.fftn(np.fft.ifftshift(coil_img, axes=(1, 2, 3)), axes=(1, 2, 3), norm="ortho"), axes=(1, 2, 3))
    header = make_header(
        encoded=(x, y, z), recon=(rx, y, z), coils=c, center=(y // 2 - skip_ky, z // 2),
        limits_max=(y - 1 - skip_ky, z - 1), user_long={"ChopY": 0 if chop else 1, "ChopZ": 0 if chop else 1},
    )
    ds = ismrmrd.Dataset(str(path), "dataset", create_if_needed=True)
    ds.write_xml_header(header)
    rng = rng or np.random.default_rng(0)
    for _ in range(noise_scans):
        acq = ismrmrd.Acquisition.from_array((rng.standard_normal((c, x)) * 1e3).astype(np.complex64))
        acq.set_flag(ismrmrd.ACQ_IS_NOISE_MEASUREMENT)
        ds.append_acquisition(acq)
    for kz in range(z):
        for ky in range(skip_ky, y):
            ky_raw = ky - skip_ky
            sign = (-1) ** (ky_raw + kz) if chop else 1
            acq = ismrmrd.Acquisition.from_array((sign * k[:, :, ky, kz]).astype(np.complex64))
            acq.idx.kspace_encode_step_1 = ky_raw
            acq.idx.kspace_encode_step_2 = kz
            acq.center_sample = x // 2
            ds.append_acquisition(acq)
    ds.close()
    return k


def _phantom_3d(c=3, x=24, y=16, z=12):
    rng = np.random.default_rng(1)
    vol = np.zeros((x, y, z), np.complex64)
    vol[6:18, 4:12, 3:9] = 1.0
    vol[9:13, 6:9, 5:7] = 2.0
    vol *= np.exp(1j * rng.uniform(0, 0.3))
    maps = mr.birdcage_maps((c, y, z), r=1.2)[:, None]
    return (maps * vol[None]).astype(np.complex64)


def test_3d_fse_conversion_recovers_volume(tmp_path):
    coil_img = _phantom_3d()  # [C, X=24, Y=16, Z=12]
    _write_3d(tmp_path / "knee3d.h5", coil_img, rx=12)
    stats = convert_ismrmrd(tmp_path / "knee3d.h5", tmp_path / "out.h5", scale=1.0)
    assert stats["skipped_noise"] == 2
    info = validate_file(tmp_path / "out.h5")
    # readout positions become slices, cropped from 24 (oversampled) to the 12 of the recon matrix
    assert (info.slices, info.coils, info.height, info.width) == (12, 3, 16, 12)
    with h5py.File(tmp_path / "out.h5") as f:
        kspace, target = f["kspace"][()], f["reconstruction_rss"][()]
    img = ifft2c_np(kspace)  # [x, C, y, z]
    truth = np.transpose(coil_img[:, 6:18], (1, 0, 2, 3))
    np.testing.assert_allclose(img, truth, atol=1e-5)
    np.testing.assert_allclose(target, np.sqrt((np.abs(truth) ** 2).sum(1)), atol=1e-5)


def test_3d_partial_fourier_and_chop_are_undone(tmp_path):
    coil_img = _phantom_3d()
    k = _write_3d(tmp_path / "pf.h5", coil_img, rx=24, skip_ky=3)
    convert_ismrmrd(tmp_path / "pf.h5", tmp_path / "out.h5")
    with h5py.File(tmp_path / "out.h5") as f:
        kspace = f["kspace"][()]
    expected = k.copy()
    expected[:, :, :3] = 0  # lines never acquired stay zero, at their place on the grid
    expected = np.transpose(_centered_ifft1(expected, axis=1), (1, 0, 2, 3))
    np.testing.assert_allclose(kspace, expected, atol=1e-5)
    # the same data without the ChopY/ChopZ flags would be read sign-alternated: a different result
    _write_3d(tmp_path / "nochop.h5", coil_img, rx=24, skip_ky=3, chop=False)
    convert_ismrmrd(tmp_path / "nochop.h5", tmp_path / "out2.h5")
    with h5py.File(tmp_path / "out2.h5") as f:
        np.testing.assert_allclose(f["kspace"][()], expected, atol=1e-5)


def test_2d_multislice_from_ismrmrd_package(tmp_path):
    """2D, 3 slices, 7 coils (odd count), readout oversampling 2, written with the ismrmrd package."""
    rng = np.random.default_rng(3)
    c, nx, ny, ns = 7, 32, 16, 3
    img = np.zeros((ns, c, nx, ny), np.complex64)
    img[:, :, 12:20, 4:12] = rng.standard_normal((ns, c, 8, 8)) + 1j
    k = fft2c_np(img)  # [slice, C, x, y]
    header = make_header(encoded=(nx, ny, 1), recon=(nx // 2, ny, 1), coils=c, slices=ns)
    ds = ismrmrd.Dataset(str(tmp_path / "ms.h5"), "dataset", create_if_needed=True)
    ds.write_xml_header(header)
    for s in range(ns):
        for ky in range(ny):
            acq = ismrmrd.Acquisition.from_array(np.ascontiguousarray(k[s, :, :, ky]))
            acq.idx.kspace_encode_step_1 = ky
            acq.idx.slice = s
            acq.center_sample = nx // 2
            ds.append_acquisition(acq)
    ds.close()
    convert_ismrmrd(tmp_path / "ms.h5", tmp_path / "out.h5")
    with h5py.File(tmp_path / "out.h5") as f:
        out = f["kspace"][()]
    assert out.shape == (ns, c, nx // 2, ny)
    np.testing.assert_allclose(ifft2c_np(out), center_crop(img, (nx // 2, ny)), atol=1e-5)


def test_converter_errors_name_the_file(tmp_path):
    bad = tmp_path / "junk.h5"
    bad.write_bytes(b"not hdf5")
    with pytest.raises(DataValidationError, match="junk.h5.*not a readable HDF5"):
        convert_ismrmrd(bad, tmp_path / "out.h5")
    with h5py.File(tmp_path / "empty.h5", "w") as f:
        f.create_group("other")
    with pytest.raises(DataValidationError, match="'dataset'.*missing ISMRMRD group"):
        convert_ismrmrd(tmp_path / "empty.h5", tmp_path / "out.h5")
    assert not (tmp_path / "out.h5").exists()
