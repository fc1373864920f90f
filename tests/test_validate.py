"""The validator: each bad-input class gets a clear error naming file and key, and no output."""

import os

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


def test_acquisition_filter_splits_one_folder_into_two_datasets(tmp_path, tiny_volume):
    """fastMRI knee folders mix PD and PD-FS; `acquisitions` keeps one of them (the contrast shifts' datasets)."""
    kspace, target, _ = tiny_volume
    for split, acqs in {"train": ["CORPD_FBK", "CORPDFS_FBK", "CORPD_FBK"], "test": ["CORPDFS_FBK", "CORPD_FBK"]}.items():
        (tmp_path / split).mkdir()
        for i, acq in enumerate(acqs):
            write_volume(tmp_path / split / f"{split}{i}.h5", kspace, target, acquisition=acq, patient_id=f"{split}{i}")
    cfg = {"kind": "fastmri", "slices": {"middle": 1}, "splits": {s: {"path": str(tmp_path / s)} for s in ("train", "test")}}
    pd_only = build_manifest("pd", cfg | {"acquisitions": ["CORPD_FBK"]}, tmp_path / "pd.csv", tmp_path / "w", tmp_path / "d", 0)
    assert sorted(pd_only["stem"]) == ["test1", "train0", "train2"] and set(pd_only["acquisition"]) == {"CORPD_FBK"}
    fs = build_manifest("fs", cfg | {"acquisitions": ["CORPDFS_FBK"]}, tmp_path / "fs.csv", tmp_path / "w", tmp_path / "d", 0)
    assert sorted(fs["stem"]) == ["test0", "train1"]
    both = build_manifest("all", cfg, tmp_path / "all.csv", tmp_path / "w", tmp_path / "d", 0)
    assert len(both) == 5
    # a filter that empties a split is an error naming the field and what the split holds
    with pytest.raises(ValueError, match=r"datasets\.t2\.acquisitions: no file of split 'train'.*CORPD_FBK"):
        build_manifest("t2", cfg | {"acquisitions": ["AXT2"]}, tmp_path / "t2.csv", tmp_path / "w", tmp_path / "d", 0)
    assert not (tmp_path / "t2.csv").exists()


def test_shares_split_one_folder_by_file_into_disjoint_splits(tmp_path, tiny_volume):
    """Stanford's volumes come in one folder: train [0, 0.75] and test [0.75, 1] partition its files, by their
    names alone (the same split from another folder, whatever the listing order)."""
    from robustcs.ingest import share_of

    kspace, target, _ = tiny_volume
    folder = tmp_path / "all"
    folder.mkdir()
    names = [f"vol{i:02d}.h5" for i in range(19)]
    for name in names:
        write_volume(folder / name, kspace, target, acquisition="CORPD_FBK", patient_id=name)
    cfg = {"kind": "fastmri", "slices": {"middle": 1},
           "splits": {"train": {"path": str(folder), "share": [0, 0.75]}, "test": {"path": str(folder), "share": [0.75, 1]}}}
    table = build_manifest("st", cfg, tmp_path / "st.csv", tmp_path / "w", tmp_path / "d", 0)
    train, test = (set(table.loc[table["split"] == s, "stem"]) for s in ("train", "test"))
    assert len(train) == 14 and len(test) == 5 and not train & test and len(train | test) == 19
    files = [folder / n for n in names]
    assert share_of(files[::-1], [0.75, 1]) == share_of(files, [0.75, 1]) == sorted(folder / f"{s}.h5" for s in test)
    assert [f.name for f in share_of([tmp_path / n for n in names], [0.75, 1])] == sorted(f"{s}.h5" for s in test)
    # shares [0, 0.5], [0.5, 1] of two files: one each; a share that keeps none is an error naming the field
    assert [len(share_of(files[:2], s)) for s in ([0, 0.5], [0.5, 1])] == [1, 1]
    cfg["splits"]["test"]["share"] = [0.98, 0.99]
    with pytest.raises(ValueError, match=r"datasets\.st\.splits\.test\.share: \[0\.98, 0\.99\] of the 19"):
        build_manifest("st", cfg, tmp_path / "none.csv", tmp_path / "w", tmp_path / "d", 0)
    assert not (tmp_path / "none.csv").exists()


def _consistent(tmp_path, name, kspace, target=None, *, chunked=False, **attrs):
    """A file whose target is the RSS of its k-space (unless ``target`` is given), optionally stored in
    gzip-compressed chunks of one slice."""
    if target is None:
        target = rss_target(kspace, kspace.shape[-2:])
    path = tmp_path / f"{name}.h5"
    opts = {"compression": "gzip"} if chunked else {}
    with h5py.File(path, "w") as f:
        f.create_dataset("kspace", data=kspace, chunks=(1, *kspace.shape[1:]) if chunked else None, **opts)
        f.create_dataset("reconstruction_rss", data=target, chunks=(1, *target.shape[1:]) if chunked else None, **opts)
        for k, v in attrs.items():
            f.attrs[k] = v
    return path


def test_target_that_is_not_the_rss_of_the_kspace(tmp_path, tiny_volume):
    kspace, target, _ = tiny_volume
    other = target.copy()
    other[1] = np.flipud(other[1])  # slice 1 belongs to another orientation
    msg = _expect(_consistent(tmp_path, "flipped", kspace, other), "reconstruction_rss",
                  "slice 1 does not match the RSS of its k-space")
    assert "NMSE" in msg and "slice 0" not in msg
    scaled = target.copy()
    scaled[0] *= 1.1  # a 10 % intensity change: NMSE 1e-2
    _expect(_consistent(tmp_path, "scaled", kspace, scaled), "reconstruction_rss", "slice 0 does not match the RSS")
    # float32 rounding of a recomputed target is far inside the tolerance
    assert validate_file(_consistent(tmp_path, "rounded", kspace, target * np.float32(1 + 1e-6))).slices == 2


@pytest.mark.parametrize("value,words", [
    (np.nan, "got nan"), (np.inf, "got inf"), (0.0, "got 0.0"), (-1.0, "got -1.0"),
    ("big", "got 'big'"), (b"1.0", "got '1.0'"), (np.array([1.0, 2.0]), "shape (2,)"),
])
def test_bad_max_attribute(tmp_path, tiny_volume, value, words):
    kspace, _, _ = tiny_volume
    msg = _expect(_consistent(tmp_path, "max", kspace, max=value), "max", "must be one finite positive number")
    assert words in msg


def test_max_attribute_absent_or_integer(tmp_path, tiny_volume):
    kspace, target, _ = tiny_volume
    assert validate_file(_consistent(tmp_path, "nomax", kspace)).max == pytest.approx(float(target.max()))
    assert validate_file(_consistent(tmp_path, "intmax", kspace, max=3)).max == 3.0


def test_undersampled_kspace(tmp_path, tiny_volume):
    kspace, _, _ = tiny_volume
    under = kspace.copy()
    under[1, :, :, 10:40:3] = 0  # every third phase-encoding column of slice 1 left out
    msg = _expect(_consistent(tmp_path, "under", under), "kspace", "looks undersampled: slice 1 has 10 empty")
    assert "columns 0-47 of W=48" in msg
    # one missing column inside the band is enough; the target is consistent, so only the k-space is to blame
    one = kspace.copy()
    one[0, :, :, 20] = 0
    _expect(_consistent(tmp_path, "one", one), "kspace", "slice 0 has 1 empty (all-zero) phase-encoding columns")


@pytest.mark.parametrize("key", ["kspace", "reconstruction_rss"])
def test_corrupt_chunk(tmp_path, tiny_volume, key):
    kspace, _, _ = tiny_volume
    path = _consistent(tmp_path, "corrupt", kspace, chunked=True)
    with h5py.File(path, "r") as f:
        info = f[key].id.get_chunk_info(1)  # the compressed chunk of slice 1
        offset, size = info.byte_offset, info.size
    data = bytearray(path.read_bytes())
    middle = offset + size // 2
    data[middle : middle + 64] = bytes(range(64))
    path.write_bytes(bytes(data))
    msg = _expect(path, key, "slice 1 cannot be read (truncated file or corrupt chunk?)")
    assert "Traceback" not in msg


def test_implausible_header_shape_is_refused_before_reading(tmp_path, good_file, monkeypatch):
    import robustcs.fastmri_io as fio

    path = tmp_path / "huge.h5"
    with h5py.File(path, "w") as f:
        # 16 coils of 2^20 x 2^20 complex64: 128 TiB per slice; chunked, so nothing is allocated on disk
        f.create_dataset("kspace", shape=(2, 16, 2**20, 2**20), dtype=np.complex64, chunks=(1, 1, 64, 64))
        f.create_dataset("reconstruction_rss", shape=(2, 320, 320), dtype=np.float32)
    msg = _expect(path, "kspace", "one slice of shape (16, 1048576, 1048576) (complex64) would need 131072.0 GiB")
    assert "MAX_SLICE_BYTES" in msg
    # the limit is the module constant
    monkeypatch.setattr(fio, "MAX_SLICE_BYTES", 1024)
    _expect(good_file, "kspace", "more than the limit")


def test_realistic_file_with_oversampling_and_zero_edges_validates(tmp_path):
    """The shape features of real fastMRI knee files: the readout is oversampled 2x (k-space H = 2 h), the
    phase-encoding axis is zero-padded at its edges (W > w, empty columns outside the sampled band), the
    target is the centre-cropped RSS, and ``max`` is stored as an attribute."""
    from robustcs.demo import DemoSpec, simulate_volume

    spec = DemoSpec(size=32, coils=3, noise=0.01, readout_oversampling=2, slices_per_volume=3)
    kspace, _, _ = simulate_volume(spec, seed=5)  # [3, 3, 64, 32]
    padded = np.zeros((*kspace.shape[:3], 40), np.complex64)
    padded[..., 5:35] = kspace[..., 1:31]  # 5 empty columns left, 5 right, and the band's own edges cut
    target = rss_target(padded, (32, 32))
    path = _consistent(tmp_path, "knee_like", padded, target, chunked=True, max=float(target.max()),
                       acquisition="CORPD_FBK")
    info = validate_file(path)
    assert (info.height, info.width, info.target_height, info.target_width) == (64, 40, 32, 32)
    assert info.max == pytest.approx(float(target.max()))


def test_manifest_keeps_names_that_look_like_numbers(tmp_path):
    """A file 0012.h5 has the stem "0012" (not the number 12), an acquisition "NA" stays text, and the numbers stay
    numbers: every rule finds the file by its stem."""
    from robustcs.ingest import COLUMNS, read_manifest

    row = {"dataset": "knee", "split": "test", "stem": "0012", "path": "data/0012.h5", "slice": 3, "slices_total": 30,
           "coils": 15, "height": 640, "width": 368, "target_height": 320, "target_width": 320,
           "acquisition": "NA", "max": 0.0004}
    path = tmp_path / "manifest.csv"
    pd.DataFrame([row], columns=COLUMNS).to_csv(path, index=False)
    table = read_manifest(path)
    assert table.loc[0, "stem"] == "0012" and table.loc[0, "acquisition"] == "NA"
    assert table.loc[0, "slice"] == 3 and table.loc[0, "max"] == 0.0004


def test_parallel_ingest_writes_the_same_manifest_and_names_the_bad_file(tmp_path, tiny_volume):
    """Files validated by several processes: the same manifest, row for row, as one process; a bad file among
    them fails the whole ingest with its name, and no manifest is written."""
    kspace, target, _ = tiny_volume
    folder = tmp_path / "src"
    folder.mkdir()
    for i in range(5):
        write_volume(folder / f"v{i}.h5", kspace * (1 + i), target * (1 + i), acquisition="T", patient_id=f"v{i}")
    cfg = {"kind": "fastmri", "splits": {"test": {"path": str(folder)}}}
    serial = build_manifest("ds", cfg, tmp_path / "serial.csv", tmp_path / "w", tmp_path / "d", 0, workers=1)
    parallel = build_manifest("ds", cfg, tmp_path / "parallel.csv", tmp_path / "w", tmp_path / "d", 0, workers=3)
    pd.testing.assert_frame_equal(serial, parallel)
    assert (tmp_path / "serial.csv").read_bytes() == (tmp_path / "parallel.csv").read_bytes()
    bad = kspace.copy()
    bad[0, 0, 0, 0] = np.nan
    write_volume(folder / "v2.h5", bad, target, acquisition="T", patient_id="v2")
    with pytest.raises(DataValidationError, match="v2.h5"):
        build_manifest("ds", cfg, tmp_path / "again.csv", tmp_path / "w", tmp_path / "d", 0, workers=3)
    assert not (tmp_path / "again.csv").exists()


def test_a_link_is_named_with_its_target_and_a_folder_is_no_file(tmp_path, good_file):
    link = tmp_path / "x.h5"
    link.symlink_to("/etc/passwd")
    with pytest.raises(DataValidationError) as err:
        validate_file(link)
    msg = str(err.value)
    assert msg.startswith(f"{link} (a link to /etc/passwd): ") and "not a readable HDF5 file" in msg
    dangling = tmp_path / "gone.h5"
    dangling.symlink_to(tmp_path / "nowhere.h5")
    _expect(dangling, None, "is a link to nothing")
    folder = tmp_path / "dir.h5"
    folder.mkdir()
    msg = _expect(folder, None, "is a directory, expected an HDF5 file")
    assert "does not exist" not in msg
    _expect(tmp_path / "absent.h5", None, "file does not exist")
    # a link to a good file is read through, under the link's own name
    good_link = tmp_path / "alias.h5"
    good_link.symlink_to(good_file)
    assert validate_file(good_link).path == str(good_link)


def test_ingest_names_a_linked_file_by_its_link(tmp_path, tiny_volume):
    folder = tmp_path / "src"
    folder.mkdir()
    kspace, target, _ = tiny_volume
    write_volume(folder / "a.h5", kspace, target, acquisition="T", patient_id="a")
    (folder / "x.h5").symlink_to("/etc/passwd")
    cfg = {"kind": "fastmri", "splits": {"test": {"path": str(folder)}}}
    with pytest.raises(DataValidationError, match=r"x\.h5 \(a link to /etc/passwd\): not a readable HDF5 file"):
        build_manifest("ds", cfg, tmp_path / "m.csv", tmp_path / "work", tmp_path / "dl", seed=0)


def test_the_read_limit_follows_the_machines_memory(tmp_path, good_file, monkeypatch):
    import robustcs.fastmri_io as fio

    path = tmp_path / "big.h5"
    with h5py.File(path, "w") as f:
        # 1 coil of 2^15 x 2^14 complex64: 4 GiB per slice, declared only (chunked, nothing allocated on disk)
        f.create_dataset("kspace", shape=(2, 1, 2**15, 2**14), dtype=np.complex64, chunks=(1, 1, 64, 64))
        f.create_dataset("reconstruction_rss", shape=(2, 320, 320), dtype=np.float32)
    monkeypatch.setattr(fio, "physical_memory", lambda: 16 * 2**30)
    assert fio.max_slice_bytes() == 2 * 2**30
    msg = _expect(path, "kspace", "one slice of shape (1, 32768, 16384) (complex64) would need 4.0 GiB to read, more "
                                  "than the limit of 2.0 GiB (0.125 of this machine's 16.0 GiB of memory")
    # a machine with 64 GiB allows slices of up to 8 GiB
    monkeypatch.setattr(fio, "physical_memory", lambda: 64 * 2**30)
    assert fio.max_slice_bytes() == 8 * 2**30
    # where the platform does not say, the fixed cap alone
    monkeypatch.setattr(fio, "physical_memory", lambda: None)
    assert fio.max_slice_bytes() == fio.MAX_SLICE_BYTES
    # on this machine: an eighth of its memory, at most the cap
    monkeypatch.undo()
    assert fio.max_slice_bytes() <= min(fio.MAX_SLICE_BYTES, os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 8)
