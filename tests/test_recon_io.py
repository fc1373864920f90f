"""Parts of a split (several files per job) and the reconstruction / maps files that hold one group per file."""

import logging

import h5py
import numpy as np
import pytest

from robustcs.fastmri_io import DataValidationError
from robustcs.metrics import slice_metrics
from robustcs.paths import PART, volume_parts
from robustcs.recon_io import (
    SliceInput,
    check_reconstruction,
    iter_slices,
    maps_index,
    read_maps,
    read_reconstructions,
    read_scores,
    run_reconstruction,
)
from robustcs.util import ResultFileError, read_result_csv


def test_volume_parts_cover_every_file_once_in_sorted_order():
    stems = [f"f{i:02d}" for i in (7, 3, 1, 9, 5)]
    parts = volume_parts("test", stems, 2)
    assert parts == {"test-0": ["f01", "f03"], "test-1": ["f05", "f07"], "test-2": ["f09"]}
    assert volume_parts("val", stems, 1)["val-4"] == ["f09"] and len(volume_parts("val", stems, 1)) == 5
    assert volume_parts("train", stems, 50) == {"train-0": sorted(stems)}
    assert volume_parts("train", [], 3) == {}
    import re
    assert all(re.fullmatch(PART, p) for p in parts) and not re.fullmatch(PART, "f01")
    with pytest.raises(ValueError, match="volumes_per_job"):
        volume_parts("test", stems, 0)


def _write_volume(path, slices, width=16):
    rng = np.random.default_rng(len(str(path)))
    k = (rng.standard_normal((slices, 2, 16, width)) + 1j * rng.standard_normal((slices, 2, 16, width))).astype(np.complex64)
    with h5py.File(path, "w") as f:
        f["kspace"] = k
        f["reconstruction_rss"] = np.abs(k).sum(1).astype(np.float32)[:, 2:14, 2:14]
    return k


def test_a_part_file_holds_each_file_of_the_part_and_reads_back(tmp_path, caplog):
    manifest = tmp_path / "manifest.csv"
    lines = ["stem,slice,max,path,split"]
    for stem, slices in (("a", [0, 1]), ("b", [2])):
        _write_volume(tmp_path / f"{stem}.h5", 3)
        lines += [f"{stem},{s},2.5,{tmp_path / stem}.h5,test" for s in slices]
    manifest.write_text("\n".join(lines) + "\n")
    with h5py.File(tmp_path / "masks.h5", "w") as f:
        for stem in "ab":
            f[stem] = np.ones(16, np.float32)
            f[stem].attrs["num_low_frequencies"] = 4
    maps = tmp_path / "maps.h5"
    with h5py.File(maps, "w") as f:
        for stem, slices in (("a", [0, 1]), ("b", [2])):
            f[f"{stem}/sens"] = np.full((len(slices), 2, 16, 16), 1 + len(stem), np.complex64) * np.arange(1, len(slices) + 1)[:, None, None, None]
            f[f"{stem}/slices"] = np.asarray(slices, np.int32)
    assert maps_index([maps]) == {"a": str(maps), "b": str(maps)}
    assert read_maps(maps, "a", 1)[0, 0, 0] == 4
    with pytest.raises(DataValidationError, match="no ESPIRiT maps"):
        read_maps(maps, "c", 0)

    items = [it for stem in "ab" for it in iter_slices(manifest, stem, None, tmp_path / "masks.h5", maps)]
    assert [(it.stem, it.slice) for it in items] == [("a", 0), ("a", 1), ("b", 2)]
    assert all(isinstance(it, SliceInput) and it.sens.shape == it.kspace.shape for it in items)
    assert items[1].sens[0, 0, 0] == 4  # file a's second slice: its own maps, not b's
    # more central slices asked for than a file has: all of them, and the job's log says so (a folder's files are not
    # read at start-up; robustcs.study_limits refuses the same for demo data)
    with caplog.at_level(logging.WARNING, logger="robustcs"):
        capped = list(iter_slices(manifest, "a", None, tmp_path / "masks.h5", maps, count=5))
    assert [it.slice for it in capped] == [0, 1]
    assert "a: 5 central slices asked for, the file has 2 used slice(s); all 2 taken" in caplog.text
    caplog.clear()
    assert [it.slice for it in iter_slices(manifest, "a", None, tmp_path / "masks.h5", maps, count=1)] == [0]
    assert "asked for" not in caplog.text

    out = tmp_path / "part.h5"
    scores = run_reconstruction(iter(items), lambda it: (np.abs(it.kspace).sum(0) + it.slice + 1, None), out, {"family": "x"})
    assert [(row["stem"], row["slice"]) for row in scores] == [("a", 0), ("a", 1), ("b", 2)]
    for row, it in zip(scores, items):  # scored against the slice's reference with the volume max
        expected = slice_metrics(it.target, np.abs(it.kspace).sum(0) + it.slice + 1, it.maxval)
        assert {k: row[k] for k in expected} == expected and row["seconds"] >= 0
    files, attrs = read_reconstructions(out)
    assert attrs["family"] == "x" and sorted(files) == ["a", "b"]
    slices, recons, seconds = files["a"]
    assert slices == [0, 1] and recons.shape == (2, 12, 12) and seconds >= 0
    # stored as float32: equal to float32 rounding (the data, seeded by the path's length, vary by machine)
    np.testing.assert_allclose(recons[1], (np.abs(items[1].kspace).sum(0) + 2)[2:14, 2:14], rtol=1e-6)
    assert files["b"][0] == [2]


def _part_files(tmp_path):
    """A part's reconstruction file and scores file (files a: slices 0, 1; b: slice 2), as a job writes them."""
    h5, scores = tmp_path / "test-0.h5", tmp_path / "test-0.csv"
    with h5py.File(h5, "w") as f:
        for stem, slices in (("a", [0, 1]), ("b", [2])):
            f[f"{stem}/reconstruction"] = np.ones((len(slices), 8, 8), np.float32)
            f[f"{stem}/slices"] = np.asarray(slices, np.int32)
    rows = ["dataset,stem,slice,ssim,psnr,nmse,seconds"] + [f"d,{s},{i},0.9,30.5,0.01,0.2" for s, i in
                                                             (("a", 0), ("a", 1), ("b", 2))]
    scores.write_text("\n".join(rows) + "\n")
    return h5, scores


def test_result_files_cut_short_are_refused_by_name(tmp_path):
    """A part's scores and reconstructions read back whole; truncated or malformed, each is refused naming the
    file (h5py's and the csv module's own errors name neither the file nor the line)."""
    h5, scores = _part_files(tmp_path)
    rows = read_scores(scores)
    assert [(r["stem"], int(r["slice"])) for r in rows] == [("a", 0), ("a", 1), ("b", 2)]
    check_reconstruction(h5, {"a": [0, 1], "b": [2]})
    assert list(read_result_csv(scores)["slice"]) == [0, 1, 2]

    text = scores.read_text()
    # inside the last number (the rest still parses), inside a row, inside the header
    for cut in (len(text) - 2, text.index("\n") + 12, 20):
        scores.write_text(text[:cut])
        for reader in (read_scores, read_result_csv):
            with pytest.raises(ResultFileError, match=f"{scores}.*delete it and rerun"):
                reader(scores)
    scores.write_text(text.replace("30.5", "x", 1))  # a score that is not a number
    with pytest.raises(ResultFileError, match="line 2"):
        read_scores(scores)
    scores.write_text(text.replace("0.2\n", "0.2,7\n", 1))  # a row with a field too many
    with pytest.raises(ResultFileError, match="line 2 has 8 fields"):
        read_result_csv(scores)

    data = h5.read_bytes()
    h5.write_bytes(data[: len(data) // 2])
    with pytest.raises(ResultFileError, match=f"{h5}: not a readable HDF5 file"):
        check_reconstruction(h5, {"a": [0, 1]})
    with pytest.raises(ResultFileError, match=f"{h5}: not a readable HDF5 file"):
        read_reconstructions(h5)
    h5.write_bytes(data)
    with pytest.raises(ResultFileError, match="holds slices \\[2\\] of 'b'.*lists \\[1, 2\\]"):
        check_reconstruction(h5, {"b": [1, 2]})
    with pytest.raises(ResultFileError, match="'c' is missing"):
        check_reconstruction(h5, {"c": [0]})
