"""The validator: each bad-input class gets a clear error naming file and key, and no output."""

import h5py
import numpy as np
import pandas as pd
import pytest

from robustcs.fastmri_io import DataValidationError, rss_target, validate_file, write_volume
from robustcs.ingest import build_manifest


def test_good_file_passes(good_file, tiny_volume):
    info = validate_file(good_file)
    kspace = tiny_volume[0]
    assert (info.slices, info.coils, info.height, info.width) == kspace.shape
    assert info.max == pytest.approx(float(tiny_volume[1].max()))


def _write(path, **datasets):
    with h5py.File(path, "w") as f:
        for k, v in datasets.items():
            f.create_dataset(k, data=v)
    return path


def _bad(tmp_path, name, kspace=None, target=None, **extra):
    data = {}
    if kspace is not None:
        data["kspace"] = kspace
    if target is not None:
        data["reconstruction_rss"] = target
    data.update(extra)
    return _write(tmp_path / f"{name}.h5", **data)


def _ks(shape=(2, 3, 8, 8)):
    rng = np.random.default_rng(0)
    return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(np.complex64)


def _expect(path, key, words):
    with pytest.raises(DataValidationError) as err:
        validate_file(path)
    msg = str(err.value)
    assert str(path) in msg
    if key:
        assert f"'{key}'" in msg
    assert words in msg
    return msg


def test_truncated_hdf5(good_file):
    data = good_file.read_bytes()
    good_file.write_bytes(data[: len(data) // 3])
    _expect(good_file, None, "not a readable HDF5 file")


def test_not_hdf5_at_all(tmp_path):
    p = tmp_path / "text.h5"
    p.write_text("hello")
    _expect(p, None, "not a readable HDF5 file")


def test_missing_kspace(tmp_path):
    _expect(_bad(tmp_path, "nok", target=np.ones((2, 8, 8), np.float32)), "kspace", "missing")


def test_wrong_rank(tmp_path):
    _expect(_bad(tmp_path, "rank", kspace=_ks((3, 8, 8))), "kspace", "expected rank 4")


def test_real_dtype(tmp_path):
    _expect(_bad(tmp_path, "real", kspace=np.ones((2, 3, 8, 8), np.float32)), "kspace", "complex dtype")


def test_nan_and_inf(tmp_path):
    ks = _ks()
    ks[1, 0, 2, 2] = np.nan
    _expect(_bad(tmp_path, "nan", kspace=ks, target=np.ones((2, 8, 8), np.float32)), "kspace", "slice 1 contains NaN or Inf")
    ks = _ks()
    ks[0, 2, 0, 0] = np.inf
    _expect(_bad(tmp_path, "inf", kspace=ks, target=np.ones((2, 8, 8), np.float32)), "kspace", "NaN or Inf")


def test_zero_coils(tmp_path):
    _expect(_bad(tmp_path, "coils", kspace=np.zeros((2, 0, 8, 8), np.complex64)), "kspace", "zero coils")


def test_zero_slices_and_empty_slice(tmp_path):
    _expect(_bad(tmp_path, "noslices", kspace=np.zeros((0, 3, 8, 8), np.complex64)), "kspace", "zero slices")
    ks = _ks()
    ks[1] = 0
    _expect(_bad(tmp_path, "empty", kspace=ks, target=np.ones((2, 8, 8), np.float32)), "kspace", "slice 1 is empty")


def test_odd_height_or_width(tmp_path):
    _expect(_bad(tmp_path, "oddh", kspace=_ks((2, 3, 7, 8))), "kspace", "must be even")
    _expect(_bad(tmp_path, "oddw", kspace=_ks((2, 3, 8, 9))), "kspace", "must be even")


def test_slices_disagree_in_shape(tmp_path):
    _expect(_bad(tmp_path, "count", kspace=_ks(), target=np.ones((3, 8, 8), np.float32)),
            "reconstruction_rss", "slices disagree")
    _expect(_bad(tmp_path, "rank3", kspace=_ks(), target=np.ones((2, 8), np.float32)),
            "reconstruction_rss", "expected rank 3")
    _expect(_bad(tmp_path, "bigger", kspace=_ks(), target=np.ones((2, 10, 8), np.float32)),
            "reconstruction_rss", "larger than the k-space grid")


def test_missing_target_when_required(tmp_path):
    _expect(_bad(tmp_path, "notarget", kspace=_ks()), "reconstruction_rss", "missing")
    assert validate_file(tmp_path / "notarget.h5", require_target=False).target_height == 8


def test_rss_target_matches_definition(tiny_volume):
    kspace, target, _ = tiny_volume
    img = np.fft.fftshift(np.fft.ifft2(np.fft.ifftshift(kspace, axes=(-2, -1)), norm="ortho"), axes=(-2, -1))
    np.testing.assert_allclose(target, np.sqrt((np.abs(img) ** 2).sum(1)), rtol=1e-5, atol=1e-9)
    np.testing.assert_allclose(rss_target(kspace, target.shape[-2:]), target)


def test_ingest_writes_no_manifest_when_a_file_is_bad(tmp_path, tiny_volume):
    folder = tmp_path / "src"
    folder.mkdir()
    kspace, target, _ = tiny_volume
    write_volume(folder / "a.h5", kspace, target, acquisition="T", patient_id="a")
    bad = kspace.copy()
    bad[0, 0, 0, 0] = np.nan
    write_volume(folder / "b.h5", bad, target, acquisition="T", patient_id="b")
    out = tmp_path / "work" / "manifest.csv"
    cfg = {"kind": "fastmri", "splits": {"test": {"path": str(folder)}}}
    with pytest.raises(DataValidationError, match="b.h5"):
        build_manifest("ds", cfg, out, tmp_path / "work", tmp_path / "dl", seed=0)
    assert not out.exists()
    assert not list((tmp_path / "work").glob("*manifest*"))
    (folder / "b.h5").unlink()
    table = build_manifest("ds", cfg | {"slices": {"middle": 1}}, out, tmp_path / "work", tmp_path / "dl", seed=0)
    # two slices, the central one by the floor convention (n - k) // 2
    assert list(pd.read_csv(out)["slice"]) == [0] == list(table["slice"])
