"""The ISMRMRD -> fastMRI converter, on files written by Debian's generator and by the ismrmrd package."""

import re
import subprocess

import h5py
import ismrmrd
import numpy as np
import pytest
import sigpy.mri as mr

from robustcs.fastmri_io import DataValidationError, center_crop, fft2c_np, ifft2c_np, validate_file
from robustcs.ismrmrd_convert import (
    MAX_KSPACE_BYTES,
    _centered_ifft1,
    convert_ismrmrd,
    make_header,
    read_ismrmrd_kspace,
)

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


def _write_3d(path, coil_img, *, rx, skip_ky=0, chop=True, noise_scans=2, rng=None, keep=None):
    """Write 3D Cartesian k-space of coil images [C, X, Y, Z] as ISMRMRD acquisitions with the ismrmrd package.

    skip_ky: the first ky lines are not acquired (partial Fourier); the encoding centre moves accordingly.
    chop: lines are sign-alternated in ky and kz and ChopY/ChopZ = 0 says so (as in the Stanford files).
    keep: if given, only the (ky_raw, kz) encode steps for which keep(ky_raw, kz) is true are written.
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
            if keep is not None and not keep(ky_raw, kz):
                continue
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


# --- what the converter accepts as fully sampled ground truth, and what it refuses


def _kspace_2d(c=4, nx=32, ny=16, seed=5):
    """Fully sampled 2D k-space [C, x, y] of a small random object."""
    rng = np.random.default_rng(seed)
    img = np.zeros((c, nx, ny), np.complex64)
    img[:, nx // 4 : 3 * nx // 4, ny // 4 : 3 * ny // 4] = rng.standard_normal((c, nx // 2, ny // 2)) + 1j
    return fft2c_np(img).astype(np.complex64)


def _line(data, ky=0, *, flags=(), center=None, **idx):
    """One acquisition of samples [C, N] at phase-encoding step ky; idx fields and flags as given."""
    acq = ismrmrd.Acquisition.from_array(np.ascontiguousarray(data, dtype=np.complex64))
    acq.idx.kspace_encode_step_1 = ky
    for name, value in idx.items():
        if name == "encoding_space_ref":
            acq.encoding_space_ref = value
        else:
            setattr(acq.idx, name, value)
    acq.center_sample = data.shape[-1] // 2 if center is None else center
    for flag in flags:
        acq.set_flag(flag)
    return acq


def _write(path, header, acquisitions):
    ds = ismrmrd.Dataset(str(path), "dataset", create_if_needed=True)
    ds.write_xml_header(header)
    for acq in acquisitions:
        ds.append_acquisition(acq)
    ds.close()
    return path


def _header_2d(k, **kwargs):
    c, nx, ny = k.shape
    return make_header(encoded=(nx, ny, 1), recon=(nx, ny, 1), coils=c, **kwargs)


def _full_2d(k, **idx):
    return [_line(k[:, :, ky], ky, **idx) for ky in range(k.shape[-1])]


def test_debian_accelerated_file_is_refused_as_undersampled(tmp_path):
    raw = _shepp_logan(tmp_path, "-m", "32", "-c", "2", "-a", "2", "-w", "8")
    # every other line per repetition; the 4 separate calibration lines of the centre do not fill the gaps
    with pytest.raises(
        DataValidationError,
        match=r"raw\.h5.*slice 0, repetition 0: 16 of 32 phase-encoding lines.*missing.*look undersampled",
    ):
        convert_ismrmrd(raw, tmp_path / "out.h5")
    assert not (tmp_path / "out.h5").exists()


def test_3d_missing_partition_lines_are_refused_but_partial_fourier_is_not(tmp_path):
    coil_img = _phantom_3d()
    # partial Fourier (limits narrower than the matrix) with one (ky, kz) step missing inside the limits
    _write_3d(tmp_path / "gap3d.h5", coil_img, rx=24, skip_ky=3, keep=lambda ky, kz: (ky, kz) != (5, 7))
    with pytest.raises(
        DataValidationError,
        match=r"gap3d\.h5.*slice 0, repetition 0: 1 of 156 phase-encoding lines.*\(5, 7\).*look undersampled",
    ):
        read_ismrmrd_kspace(tmp_path / "gap3d.h5")


def test_separate_calibration_lines_are_skipped(tmp_path):
    k = _kspace_2d()
    c, nx, ny = k.shape
    rng = np.random.default_rng(7)
    lines = []
    for ky in range(ny):
        # the centre lines are imaging and calibration at once: they belong to the image
        flags = (ismrmrd.ACQ_IS_PARALLEL_CALIBRATION_AND_IMAGING,) if 6 <= ky < 10 else ()
        lines.append(_line(k[:, :, ky], ky, flags=flags))
    for ky in range(5, 11):  # separate calibration lines (another contrast in a real scan): junk here
        junk = rng.standard_normal((c, nx)) * 1e3
        lines.append(_line(junk, ky, flags=(ismrmrd.ACQ_IS_PARALLEL_CALIBRATION,)))
    raw = _write(tmp_path / "calib.h5", _header_2d(k), lines)
    kspace, _, stats = read_ismrmrd_kspace(raw)
    assert stats["skipped_calibration"] == 6 and stats["imaging"] == ny
    np.testing.assert_allclose(kspace[0, :, 0], k.transpose(0, 2, 1), atol=1e-6)


def test_reversed_readouts_are_refused(tmp_path):
    k = _kspace_2d()
    lines = [_line(k[:, :, ky], ky, flags=(ismrmrd.ACQ_IS_REVERSE,) if ky % 2 else ()) for ky in range(k.shape[-1])]
    raw = _write(tmp_path / "epi.h5", _header_2d(k), lines)
    with pytest.raises(
        DataValidationError, match=r"epi\.h5.*8 imaging acquisitions.*reversed readout lines \(EPI\) are not supported"
    ):
        convert_ismrmrd(raw, tmp_path / "out.h5")


@pytest.mark.parametrize(
    "field,problem",
    [
        ("contrast", r"2 contrasts \(echoes\), idx\.contrast = \[0, 1\]"),
        ("phase", r"2 cardiac/respiratory phases, idx\.phase = \[0, 1\]"),
        ("set", r"2 sets, idx\.set = \[0, 1\]"),
        ("encoding_space_ref", r"encoding spaces \[0, 1\]"),
    ],
    ids=["contrast", "phase", "set", "encoding-space"],
)
def test_several_images_in_one_file_are_refused(tmp_path, field, problem):
    k = _kspace_2d()
    raw = _write(tmp_path / f"multi_{field}.h5", _header_2d(k), _full_2d(k) + _full_2d(k, **{field: 1}))
    with pytest.raises(DataValidationError, match=rf"multi_{field}\.h5.*{problem}"):
        convert_ismrmrd(raw, tmp_path / "out.h5")


def test_true_repetitions_are_averaged(tmp_path):
    k = _kspace_2d()
    rng = np.random.default_rng(11)
    noisy = [k + 0.1 * (rng.standard_normal(k.shape) + 1j * rng.standard_normal(k.shape)) for _ in range(2)]
    lines = [_line(noisy[r][:, :, ky], ky, repetition=r) for r in range(2) for ky in range(k.shape[-1])]
    raw = _write(tmp_path / "reps.h5", _header_2d(k), lines)
    kspace, _, stats = read_ismrmrd_kspace(raw)
    assert stats["repetitions"] == 2
    mean = (noisy[0] + noisy[1]) / 2
    np.testing.assert_allclose(kspace[0, :, 0], mean.transpose(0, 2, 1), atol=1e-6)
    assert np.abs(kspace[0, :, 0] - noisy[0].transpose(0, 2, 1)).max() > 0.01  # not just one of them
    convert_ismrmrd(raw, tmp_path / "out.h5")
    with h5py.File(tmp_path / "out.h5") as f:
        np.testing.assert_allclose(f["kspace"][0], mean, atol=1e-6)


def test_averages_are_averaged_within_each_repetition(tmp_path):
    """Repetition 0 acquires each line twice (idx.average 0, 1), repetition 1 once: each repetition counts half."""
    k = _kspace_2d()
    rng = np.random.default_rng(12)
    a, b, c = (k + rng.standard_normal(k.shape) for _ in range(3))
    lines = []
    for ky in range(k.shape[-1]):
        lines += [_line(a[:, :, ky], ky, average=0), _line(b[:, :, ky], ky, average=1)]
        lines.append(_line(c[:, :, ky], ky, repetition=1))
    raw = _write(tmp_path / "avg.h5", _header_2d(k), lines)
    kspace, _, _ = read_ismrmrd_kspace(raw)
    expected = ((a + b) / 2 + c) / 2  # not (a + b + c) / 3
    np.testing.assert_allclose(kspace[0, :, 0], expected.transpose(0, 2, 1), atol=1e-5)


def test_readout_oversampling_mismatch_is_refused(tmp_path):
    k = _kspace_2d(nx=32)
    c, nx, ny = k.shape
    # the header says 64 readout samples (oversampling 2), the lines carry 32 with the echo in the middle
    header = make_header(encoded=(2 * nx, ny, 1), recon=(nx, ny, 1), coils=c)
    raw = _write(tmp_path / "os.h5", header, _full_2d(k))
    with pytest.raises(
        DataValidationError,
        match=r"os\.h5.*32 samples with a centred echo.*x=64: the header's readout oversampling does not match",
    ):
        convert_ismrmrd(raw, tmp_path / "out.h5")


def test_asymmetric_echo_is_placed_at_its_centre(tmp_path):
    k = _kspace_2d(nx=32)
    c, nx, ny = k.shape
    # partial echo: the first 8 samples were not acquired; the echo centre is sample 8 of 24
    lines = [_line(k[:, 8:, ky], ky, center=8) for ky in range(ny)]
    raw = _write(tmp_path / "asym.h5", _header_2d(k), lines)
    kspace, _, _ = read_ismrmrd_kspace(raw)
    expected = k.copy()
    expected[:, :8] = 0
    np.testing.assert_allclose(kspace[0, :, 0], expected.transpose(0, 2, 1), atol=1e-6)


@pytest.mark.parametrize(
    "edit,problem",
    [
        (lambda x: x[: len(x) // 2], r"header XML does not parse"),
        (lambda x: re.sub(r"<encodingLimits>.*</encodingLimits>", "", x, flags=re.S),
         r"no <encodingLimits>: cannot place the phase-encoding lines"),
        (lambda x: re.sub(r"<kspace_encoding_step_1>.*?</kspace_encoding_step_1>", "", x, flags=re.S),
         r"no <encodingLimits><kspace_encoding_step_1>: cannot place the phase-encoding lines"),
        (lambda x: re.sub(r"(<encodedSpace>)\s*<matrixSize>.*?</matrixSize>", r"\1", x, flags=re.S),
         r"no <encoding><encodedSpace><matrixSize>"),
        (lambda x: re.sub(r"(<reconSpace>)\s*<matrixSize>.*?</matrixSize>", r"\1", x, flags=re.S),
         r"no <encoding><reconSpace><matrixSize>"),
    ],
    ids=["truncated", "no-limits", "no-step1-limits", "no-encoded-matrix", "no-recon-matrix"],
)
def test_header_problems_name_the_file(tmp_path, edit, problem):
    k = _kspace_2d()
    xml = _header_2d(k)
    edited = edit(xml)
    assert edited != xml
    raw = _write(tmp_path / "hdr.h5", edited, _full_2d(k))
    with pytest.raises(DataValidationError, match=rf"hdr\.h5: key 'dataset/xml': .*{problem}"):
        convert_ismrmrd(raw, tmp_path / "out.h5")


def test_missing_slice_is_refused(tmp_path):
    k = _kspace_2d()
    raw = _write(tmp_path / "slices.h5", _header_2d(k, slices=3), _full_2d(k) + _full_2d(k, slice=2))
    with pytest.raises(DataValidationError, match=r"slices\.h5.*slices \[1\] of 0\.\.2 have no imaging acquisitions"):
        convert_ismrmrd(raw, tmp_path / "out.h5")


def test_grid_above_the_size_limit_is_refused_before_allocating(tmp_path):
    k = _kspace_2d()
    raw = _write(tmp_path / "small.h5", _header_2d(k), _full_2d(k))
    with pytest.raises(
        DataValidationError, match=r"small\.h5.*k-space grid \(1, 4, 1, 16, 32\).*16384 bytes.*more than the limit of 1000"
    ):
        read_ismrmrd_kspace(raw, max_bytes=1000)
    # a header announcing a 256 x 4096 x 4096 grid: one acquired line (limits [0, 0], asymmetric echo) is
    # consistent, and the default limit refuses the 32 GiB grid without trying to allocate it
    header = make_header(encoded=(4096, 4096, 256), recon=(4096, 4096, 256), coils=1, center=(0, 0), limits_max=(0, 0))
    huge = _write(tmp_path / "huge.h5", header, [_line(np.ones((1, 16)), 0, center=4, kspace_encode_step_2=0)])
    assert MAX_KSPACE_BYTES == 16 * 2**30
    with pytest.raises(
        DataValidationError, match=r"huge\.h5.*\(1, 1, 256, 4096, 4096\).*\(32\.0 GiB\), more than the limit.*\(16\.0 GiB\)"
    ):
        convert_ismrmrd(huge, tmp_path / "out.h5")
