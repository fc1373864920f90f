"""ISMRMRD raw data to the fastMRI multi-coil format.

Handles the two Cartesian layouts the study meets:

* 2D multi-slice (``encodedSpace.matrixSize.z == 1``): each acquisition is one readout line at
  phase-encoding step ``kspace_encode_step_1`` of slice ``idx.slice``. Readout oversampling is removed
  by cropping to the reconstruction matrix in the image domain, and the output k-space is
  ``[slices, coils, readout, phase]`` (fastMRI puts the readout along H).
* 3D Cartesian (the Stanford Fullysampled 3D FSE Knees of mridata.org): acquisitions carry
  ``kspace_encode_step_1`` (ky) and ``kspace_encode_step_2`` (kz). The inverse FFT along the readout
  gives one 2D (ky, kz) k-space per readout position; readout oversampling is removed by keeping the
  central ``reconSpace.matrixSize.x`` positions, which become the slices.

In both, each phase-encoding axis is zero-padded as the header's encoding limits (centre) and
encoded matrix say, the phase-chopping flags ``ChopY``/``ChopZ`` among the user parameters are
undone (a value 0 means every other line was sign-alternated), noise-calibration acquisitions (and
other non-imaging ones: navigators, phase correction, dummy scans, separate parallel-imaging
calibration lines) are skipped, and the original XML header is stored as ``ismrmrd_header``.

The output is used as fully sampled ground truth, so the reader checks what was acquired before
it builds anything and refuses, with a :class:`DataValidationError`, every file that is not one
fully sampled Cartesian acquisition: a header that does not parse or lacks the encoded/recon
matrices or the encoding limits; phase-encoding steps between the encoding limits that were not
acquired in some slice/repetition (accelerated data; limits narrower than the encoded matrix,
i.e. partial Fourier, stay allowed); reversed readouts (EPI); several contrasts, cardiac phases,
sets or encoding spaces; centred echoes shorter than the encoded readout (the header's readout
oversampling does not match the data); and grids larger than ``MAX_KSPACE_BYTES``. Lines acquired
several times within a repetition (averages) are averaged, and so are fully sampled repetitions.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple

import h5py
import ismrmrd
import ismrmrd.xsd as xsd
import numpy as np

from .fastmri_io import DataValidationError, fft2c_np, rss_target, write_volume
from .ismrmrd_header import make_header, parse_header, user_parameters

#: Flags of acquisitions that carry no imaging data for the reconstruction.
SKIPPED_FLAGS = {
    "noise": ismrmrd.ACQ_IS_NOISE_MEASUREMENT,
    "navigation": ismrmrd.ACQ_IS_NAVIGATION_DATA,
    "phasecorr": ismrmrd.ACQ_IS_PHASECORR_DATA,
    "dummyscan": ismrmrd.ACQ_IS_DUMMYSCAN_DATA,
    "rtfeedback": ismrmrd.ACQ_IS_RTFEEDBACK_DATA,
    "hpfeedback": ismrmrd.ACQ_IS_HPFEEDBACK_DATA,
    "surfacecoilcorrection": ismrmrd.ACQ_IS_SURFACECOILCORRECTIONSCAN_DATA,
    # Separate calibration lines; lines flagged ACQ_IS_PARALLEL_CALIBRATION_AND_IMAGING are imaging lines.
    "calibration": ismrmrd.ACQ_IS_PARALLEL_CALIBRATION,
}

#: Largest k-space grid (slices x coils x kz x ky x kx complex64) the reader allocates: 16 GiB.
MAX_KSPACE_BYTES = 16 * 1024**3

#: Loop counters other than slice/repetition/average whose values must not vary: each value is another image.
SINGLE_VALUED_COUNTERS = {
    "contrast": "contrasts (echoes)",
    "phase": "cardiac/respiratory phases",
    "set": "sets",
}


def _flag_mask(flag: int) -> int:
    """The bit of an ISMRMRD acquisition flag in the header's ``flags`` word."""
    return 1 << (flag - 1)


def _centered_ifft1(x: np.ndarray, axis: int) -> np.ndarray:
    x = np.fft.ifftshift(x, axes=axis)
    x = np.fft.ifft(x, axis=axis, norm="ortho")
    return np.fft.fftshift(x, axes=axis)


def _centered_fft1(x: np.ndarray, axis: int) -> np.ndarray:
    x = np.fft.ifftshift(x, axes=axis)
    x = np.fft.fft(x, axis=axis, norm="ortho")
    return np.fft.fftshift(x, axes=axis)


def _crop_axis(x: np.ndarray, axis: int, n: int) -> np.ndarray:
    size = x.shape[axis]
    start = (size - n) // 2
    return np.take(x, np.arange(start, start + n), axis=axis)


def _open_dataset(path: Path, group: str):
    try:
        with h5py.File(path, "r") as f:
            if group not in f:
                raise DataValidationError(path, group, f"missing ISMRMRD group; the file has {sorted(f.keys())}")
            for key in ("xml", "data"):
                if key not in f[group]:
                    raise DataValidationError(path, f"{group}/{key}", "missing (not an ISMRMRD raw data file?)")
    except OSError as exc:
        raise DataValidationError(path, None, f"not a readable HDF5 file (truncated or corrupt?): {exc}") from exc
    return ismrmrd.Dataset(str(path), group, create_if_needed=False)


def _read_heads(path: Path, group: str) -> np.ndarray:
    """The acquisition headers of the file (a structured array), read without the samples."""
    key = f"{group}/data"
    try:
        with h5py.File(path, "r") as f:
            data = f[key]
            if data.dtype.names is None or "head" not in data.dtype.names:
                raise DataValidationError(path, key, f"not ISMRMRD acquisitions (fields {data.dtype.names})")
            return data.fields("head")[()]
    except (OSError, KeyError, ValueError, TypeError) as exc:
        raise DataValidationError(path, key, f"acquisition headers cannot be read: {exc}") from exc


def _imaging_samples(path: Path, group: str, imaging: np.ndarray, block: int = 8192):
    """(j, acquisition index, complex samples [coils * samples]) of every imaging acquisition, in order, read
    in blocks of the compound dataset's ``data`` field (one h5py read per block: reading acquisition by
    acquisition through the ismrmrd package took minutes for a 320x320-line 3D volume)."""
    key = f"{group}/data"
    with h5py.File(path, "r") as f:
        field = f[key].fields("data")
        for lo in range(0, len(imaging), block):
            part = imaging[lo : lo + block]
            rows = field[int(part[0]) : int(part[-1]) + 1]  # contiguous: imaging indices are sorted
            for k, i in enumerate(part):
                yield lo + k, i, np.asarray(rows[int(i - part[0])], dtype=np.float32).view(np.complex64)


def _step_limits(path: Path, key: str, limit, name: str, size: int) -> tuple[int, int, int]:
    """(minimum, maximum, centre) of one phase-encoding axis, checked to fit an encoded matrix of ``size``."""
    if limit is None:
        raise DataValidationError(
            path, key, f"header has no <encodingLimits><{name}>: cannot place the phase-encoding lines on the grid"
        )
    lo, hi, centre = int(limit.minimum), int(limit.maximum), int(limit.center)
    if lo > hi or lo - centre + size // 2 < 0 or hi - centre + size // 2 >= size:
        raise DataValidationError(
            path,
            key,
            f"<encodingLimits><{name}> minimum {lo}, maximum {hi}, centre {centre} do not fit "
            f"the encoded matrix of {size} steps",
        )
    return lo, hi, centre


def _first(mask: np.ndarray, index: np.ndarray) -> int:
    """The acquisition number of the first True entry of ``mask``."""
    return int(index[np.flatnonzero(mask)[0]])


class _Encoding(NamedTuple):
    """The encoded matrix, each phase-encoding axis's limits (minimum, maximum, centre; 0s for kz in 2D) and the
    sign alternation to undo along ky and kz (1 where ChopY/ChopZ is 0)."""

    ex: int
    ey: int
    ez: int
    min1: int
    max1: int
    c1: int
    min2: int
    max2: int
    c2: int
    chop_y: int
    chop_z: int


def _read_encoding(path: Path, ds, xml_key: str) -> tuple[str, _Encoding]:
    """(XML header text, its Cartesian encoding) of an open ISMRMRD dataset."""
    try:
        xml = ds.read_xml_header()
        xml = xml.decode() if isinstance(xml, bytes) else str(xml)
    except (ValueError, TypeError, UnicodeDecodeError) as exc:
        raise DataValidationError(path, xml_key, f"header cannot be read as text: {exc}") from exc
    header = parse_header(path, xml_key, xml)
    enc = header.encoding[0]
    if enc.trajectory is not None and str(enc.trajectory.value).lower() != "cartesian":
        raise DataValidationError(path, xml_key, f"trajectory {enc.trajectory.value!r} is not Cartesian")
    ex, ey, ez = enc.encodedSpace.matrixSize.x, enc.encodedSpace.matrixSize.y, enc.encodedSpace.matrixSize.z
    lim = enc.encodingLimits
    step1 = _step_limits(path, xml_key, lim.kspace_encoding_step_1, "kspace_encoding_step_1", ey)
    if ez > 1:
        step2 = _step_limits(path, xml_key, lim.kspace_encoding_step_2, "kspace_encoding_step_2", ez)
    else:
        step2 = (0, 0, 0)
    params = user_parameters(header)
    # ChopY/ChopZ == 0 marks sign-alternated phase encoding that must be undone.
    chop = (1 - int(params.get("ChopY", 1)), 1 - int(params.get("ChopZ", 1)))
    return xml, _Encoding(ex, ey, ez, *step1, *step2, *chop)


def _has(flags: np.ndarray, flag: int) -> np.ndarray:
    """Which acquisitions (their ``flags`` words as uint64) carry an ISMRMRD acquisition flag."""
    return (flags & np.uint64(_flag_mask(flag))) != 0


def _classify(path: Path, group: str) -> tuple[np.ndarray, np.ndarray, dict]:
    """(every acquisition header, indices of the imaging acquisitions, count of skipped ones per kind), on the
    headers alone."""
    heads = _read_heads(path, group)
    flags = heads["flags"].astype(np.uint64)
    is_imaging = np.ones(len(heads), bool)
    skipped = {}
    for kind, flag in SKIPPED_FLAGS.items():
        hit = is_imaging & _has(flags, flag)
        if kind == "calibration":
            hit &= ~_has(flags, ismrmrd.ACQ_IS_PARALLEL_CALIBRATION_AND_IMAGING)
        skipped[kind] = int(hit.sum())
        is_imaging &= ~hit
    imaging = np.flatnonzero(is_imaging)
    if not len(imaging):
        raise DataValidationError(path, f"{group}/data", "contains no imaging acquisitions")
    return heads, imaging, skipped


def _check_imaging_heads(path: Path, data_key: str, heads: np.ndarray, imaging: np.ndarray) -> int:
    """The number of coils, once the imaging acquisitions are checked to be forward readouts of one image in
    encoding space 0, all with that many active channels."""
    h = heads[imaging]
    idx = h["idx"]
    reverse = _has(h["flags"].astype(np.uint64), ismrmrd.ACQ_IS_REVERSE)
    if reverse.any():
        raise DataValidationError(
            path,
            data_key,
            f"{int(reverse.sum())} imaging acquisitions (the first is acquisition {_first(reverse, imaging)}) "
            "are flagged ACQ_IS_REVERSE: reversed readout lines (EPI) are not supported",
        )
    for counter, what in SINGLE_VALUED_COUNTERS.items():
        values = np.unique(idx[counter])
        if len(values) > 1:
            raise DataValidationError(
                path,
                data_key,
                f"imaging acquisitions carry {len(values)} {what}, idx.{counter} = {values.tolist()}; "
                "one image per file is expected",
            )
    spaces = np.unique(h["encoding_space_ref"])
    if spaces.tolist() != [0]:
        raise DataValidationError(
            path,
            data_key,
            f"imaging acquisitions refer to encoding spaces {spaces.tolist()}; only encoding 0 is supported",
        )
    channels = h["active_channels"].astype(np.int64)
    coils = int(channels[0])
    if (channels != coils).any():
        i = _first(channels != coils, imaging)
        raise DataValidationError(
            path, data_key, f"acquisition {i} has {int(heads[i]['active_channels'])} channels, expected {coils}"
        )
    if coils < 1:
        raise DataValidationError(path, data_key, f"acquisition {int(imaging[0])} has no active channels")
    return coils


def _readout_starts(path: Path, data_key: str, heads: np.ndarray, imaging: np.ndarray, ex: int):
    """(samples, first grid column) of each imaging acquisition: each echo is placed so that its centre sample
    lands on the grid centre ``ex // 2``."""
    h = heads[imaging]
    ns = h["number_of_samples"].astype(np.int64)
    centre = h["center_sample"].astype(np.int64)
    centre = np.where(centre > 0, centre, ns // 2)
    short_centred = (ns < ex) & (centre == ns // 2)
    if short_centred.any():
        i = _first(short_centred, imaging)
        raise DataValidationError(
            path,
            data_key,
            f"acquisition {i} has {int(heads[i]['number_of_samples'])} samples with a centred echo but the encoded "
            f"matrix has x={ex}: the header's readout oversampling does not match the data",
        )
    start = ex // 2 - centre
    misfit = (start < 0) | (start + ns > ex)
    if misfit.any():
        i = _first(misfit, imaging)
        raise DataValidationError(
            path,
            data_key,
            f"acquisition {i}: {int(heads[i]['number_of_samples'])} samples (centre sample "
            f"{int(heads[i]['center_sample'])}) do not fit the encoded matrix x={ex}",
        )
    return ns, start


def _grid_rows(path: Path, data_key: str, imaging: np.ndarray, idx: np.ndarray, enc: _Encoding):
    """(ky, kz, slice) grid positions of each imaging acquisition, checked to lie on the grid, and the number
    of slices (each must have imaging acquisitions)."""
    ky_raw = idx["kspace_encode_step_1"].astype(np.int64)
    kz_raw = idx["kspace_encode_step_2"].astype(np.int64)
    ky = ky_raw - enc.c1 + enc.ey // 2
    kz = kz_raw - enc.c2 + enc.ez // 2 if enc.ez > 1 else np.zeros_like(kz_raw)
    outside = (ky < 0) | (ky >= enc.ey) | (kz < 0) | (kz >= enc.ez)
    if outside.any():
        j = np.flatnonzero(outside)[0]
        raise DataValidationError(
            path,
            data_key,
            f"acquisition {int(imaging[j])}: encode step ({int(ky_raw[j])}, {int(kz_raw[j])}) lies outside "
            f"the encoded matrix ({enc.ey}, {enc.ez})",
        )
    slices = idx["slice"].astype(np.int64)
    n_slices = int(slices.max()) + 1
    absent = np.setdiff1d(np.arange(n_slices), slices)
    if len(absent):
        raise DataValidationError(
            path, data_key, f"slices {absent.tolist()} of 0..{n_slices - 1} have no imaging acquisitions"
        )
    return ky, kz, slices, n_slices


def _check_grid_bytes(path: Path, data_key: str, shape: tuple, max_bytes: int) -> None:
    nbytes = int(np.prod(shape, dtype=np.int64)) * np.dtype(np.complex64).itemsize
    if nbytes > max_bytes:
        raise DataValidationError(
            path,
            data_key,
            f"the k-space grid {shape} (slices, coils, kz, ky, kx) would take {nbytes} bytes "
            f"({nbytes / 2**30:.1f} GiB), more than the limit of {max_bytes} bytes ({max_bytes / 2**30:.1f} GiB)",
        )


def _check_coverage(path: Path, data_key: str, enc: _Encoding, idx: np.ndarray, slices, n_slices: int, reps):
    """Each slice/repetition must hold every phase-encoding step between the encoding limits. ``reps`` is
    (distinct repetition values, each acquisition's index into them)."""
    rep_values, rep = reps
    min1, max1, min2, max2 = enc.min1, enc.max1, enc.min2, enc.max2
    ky_raw = idx["kspace_encode_step_1"].astype(np.int64)
    kz_raw = idx["kspace_encode_step_2"].astype(np.int64)
    n_reps, ez = len(rep_values), enc.ez
    n1, n2 = max1 - min1 + 1, (max2 - min2 + 1 if ez > 1 else 1)
    group_id = slices * n_reps + rep
    inside = (ky_raw >= min1) & (ky_raw <= max1)
    if ez > 1:
        inside &= (kz_raw >= min2) & (kz_raw <= max2)
    step = (kz_raw - min2) * n1 + (ky_raw - min1) if ez > 1 else ky_raw - min1
    acquired = np.unique(group_id[inside] * (n1 * n2) + step[inside])
    groups = np.unique(group_id)
    covered = np.zeros(n_slices * n_reps, np.int64)
    np.add.at(covered, acquired // (n1 * n2), 1)
    incomplete = groups[covered[groups] < n1 * n2]
    if not len(incomplete):
        return
    g = int(incomplete[0])
    s, r = divmod(g, n_reps)
    have = np.zeros(n1 * n2, bool)
    have[(acquired[acquired // (n1 * n2) == g] % (n1 * n2))] = True
    gaps = np.flatnonzero(~have)
    if ez > 1:
        where = ", ".join(f"({min1 + q % n1}, {min2 + q // n1})" for q in gaps[:5])
        what = f"kspace_encode_step_1 {min1}..{max1} x kspace_encode_step_2 {min2}..{max2}"
    else:
        where = ", ".join(str(min1 + q) for q in gaps[:5])
        what = f"kspace_encode_step_1 {min1}..{max1}"
    raise DataValidationError(
        path,
        data_key,
        f"slice {s}, repetition {int(rep_values[r])}: {len(gaps)} of {n1 * n2} phase-encoding lines "
        f"({what}) are missing, e.g. {where}{', ...' if len(gaps) > 5 else ''}: the data look "
        f"undersampled (accelerated), not fully sampled ({len(incomplete)} of {len(groups)} "
        "slice/repetition combinations are incomplete)",
    )


def _line_factors(enc: _Encoding, idx: np.ndarray, rows, n_reps: int, rep: np.ndarray) -> np.ndarray:
    """Each acquisition's factor on the grid: average the lines acquired several times within a repetition
    (averages), then the repetitions that acquired the line, so every repetition counts the same whatever its
    averages; times the sign that undoes phase chopping. ``rows`` is (ky, kz, slice) on the grid."""
    ky, kz, slices = rows
    position = (slices * enc.ez + kz) * enc.ey + ky
    keys, inverse, per_rep = np.unique(position * n_reps + rep, return_inverse=True, return_counts=True)
    _, key_pos, reps_per_position = np.unique(keys // n_reps, return_inverse=True, return_counts=True)
    inverse = inverse.reshape(-1)
    weight = 1.0 / (per_rep[inverse] * reps_per_position[key_pos.reshape(-1)][inverse])
    ky_raw = idx["kspace_encode_step_1"].astype(np.int64)
    kz_raw = idx["kspace_encode_step_2"].astype(np.int64)
    sign = np.where((ky_raw * enc.chop_y + kz_raw * enc.chop_z) % 2, -1.0, 1.0)
    return (weight * sign).astype(np.float32)


def read_ismrmrd_kspace(
    path: str | os.PathLike, group: str = "dataset", *, max_bytes: int = MAX_KSPACE_BYTES
) -> tuple[np.ndarray, str, dict]:
    """Read one fully sampled Cartesian ISMRMRD acquisition into a zero-padded k-space grid.

    Returns (kspace [slices, coils, kz, ky, kx] complex64, xml header, statistics). Everything is
    checked on the acquisition headers before the grid of ``slices x coils x kz x ky x kx x 8`` bytes is
    allocated; a grid above ``max_bytes`` is refused. Raises DataValidationError for files that are
    not one fully sampled Cartesian acquisition (see the module docstring).
    """
    path = Path(path)
    data_key = f"{group}/data"
    ds = _open_dataset(path, group)
    try:
        xml, enc = _read_encoding(path, ds, f"{group}/xml")
        heads, imaging, skipped = _classify(path, group)
        idx = heads[imaging]["idx"]
        coils = _check_imaging_heads(path, data_key, heads, imaging)
        ns, start = _readout_starts(path, data_key, heads, imaging, enc.ex)
        ky, kz, slices, n_slices = _grid_rows(path, data_key, imaging, idx, enc)
        shape = (n_slices, coils, enc.ez, enc.ey, enc.ex)
        _check_grid_bytes(path, data_key, shape, max_bytes)
        rep_values, rep = np.unique(idx["repetition"], return_inverse=True)
        rep = rep.reshape(-1).astype(np.int64)
        _check_coverage(path, data_key, enc, idx, slices, n_slices, (rep_values, rep))
        factor = _line_factors(enc, idx, (ky, kz, slices), len(rep_values), rep)

        kspace = np.zeros(shape, dtype=np.complex64)
        for j, i, data in _imaging_samples(path, group, imaging):
            if data.size != coils * ns[j]:
                raise DataValidationError(
                    path,
                    data_key,
                    f"acquisition {int(i)}: {data.size} complex samples, the header says {coils} x {int(ns[j])}",
                )
            a = int(start[j])
            kspace[slices[j], :, kz[j], ky[j], a : a + int(ns[j])] += factor[j] * data.reshape(coils, int(ns[j]))
    finally:
        ds.close()
    stats = {
        "acquisitions": len(heads),
        "imaging": len(imaging),
        "repetitions": len(rep_values),
        **{f"skipped_{k}": v for k, v in skipped.items()},
    }
    return kspace, xml, stats


def convert_ismrmrd(
    src: str | os.PathLike,
    dst: str | os.PathLike,
    *,
    scale: float = 1.0,
    group: str = "dataset",
    acquisition: str = "",
    max_bytes: int = MAX_KSPACE_BYTES,
) -> dict:
    """Convert one fully sampled ISMRMRD file to a fastMRI-format file; returns conversion statistics.

    Raises DataValidationError (naming the file) for files :func:`read_ismrmrd_kspace` refuses.
    """
    src = Path(src)
    kspace, xml, stats = read_ismrmrd_kspace(src, group, max_bytes=max_bytes)
    header = xsd.CreateFromDocument(xml)
    enc = header.encoding[0]
    rx, ry, rz = enc.reconSpace.matrixSize.x, enc.reconSpace.matrixSize.y, enc.reconSpace.matrixSize.z
    n_slices, coils, ez, ey, ex = kspace.shape
    if ez > 1:
        # 3D: the readout positions become slices, each a 2D (ky, kz) k-space.
        if n_slices != 1:
            raise DataValidationError(src, f"{group}/data", f"3D data with {n_slices} slabs is not supported")
        hybrid = _centered_ifft1(kspace[0], axis=-1)  # [coils, kz, ky, x]
        hybrid = _crop_axis(hybrid, -1, min(rx, ex))
        out = np.ascontiguousarray(np.transpose(hybrid, (3, 0, 2, 1)))  # [x, coils, ky, kz]
        target_shape = (min(ry, ey), min(rz, ez))
    else:
        out = np.ascontiguousarray(np.transpose(kspace[:, :, 0], (0, 1, 3, 2)))  # [slices, coils, kx, ky]
        if rx < ex:
            img = _centered_ifft1(out, axis=-2)
            out = _centered_fft1(_crop_axis(img, -2, rx), axis=-2)
        target_shape = (min(rx, out.shape[-2]), min(ry, ey))
    out = (out * scale).astype(np.complex64)
    h, w = out.shape[-2:]
    if h % 2 or w % 2:
        raise DataValidationError(src, f"{group}/xml", f"converted k-space grid {(h, w)} is not even-sized")
    target = rss_target(out, target_shape)
    write_volume(
        dst,
        out,
        target,
        acquisition=acquisition or ("3D" if ez > 1 else "2D"),
        patient_id=src.stem,
        ismrmrd_header=xml,
        extra_attrs={f"convert_{k}": v for k, v in stats.items()} | {"convert_scale": scale},
    )
    return stats | {"slices": out.shape[0], "coils": coils, "height": h, "width": w}


__all__ = [
    "MAX_KSPACE_BYTES",
    "convert_ismrmrd",
    "read_ismrmrd_kspace",
    "parse_header",
    "make_header",
    "user_parameters",
    "fft2c_np",
]
