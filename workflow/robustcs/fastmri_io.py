"""Reading, writing and validating fastMRI-format multi-coil HDF5 files.

The fastMRI multi-coil format (Zbontar et al., 2018):
    kspace              complex64 [slices, coils, H, W]   (H = readout, possibly oversampled)
    reconstruction_rss  float32   [slices, h, w]          RSS of the orthonormal IFFT, centre-cropped
    ismrmrd_header      the acquisition's ISMRMRD XML header (optional for our own files)
    attrs: acquisition, max (of reconstruction_rss), norm, patient_id

Every file that enters the workflow goes through :func:`validate_file`, which raises
:class:`DataValidationError` naming the file, the key and what was expected.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path

import h5py
import numpy as np

from .manifest import DataValidationError  # noqa: F401 (there: the workflow's parse-time reader raises it too)
from .util import atomic_path




@dataclass(frozen=True)
class VolumeInfo:
    path: str
    slices: int
    coils: int
    height: int
    width: int
    target_height: int
    target_width: int
    acquisition: str
    max: float

    def as_dict(self) -> dict:
        return asdict(self)


#: Largest single read :func:`validate_file` attempts: one slice of ``kspace`` or ``reconstruction_rss``, in bytes.
#: Shapes are checked against it before anything is read, so a corrupt or hostile header that claims an enormous
#: grid is refused with a message instead of exhausting memory. The RSS consistency check needs a few times one
#: slice of k-space on top (the coil images and their magnitudes).
MAX_SLICE_BYTES = 64 * 2**30
#: The read limit is also at most this share of the machine's physical memory (:func:`max_slice_bytes`): a header
#: that declares 4 GiB slices on a 16 GiB machine is refused up front, not read until memory runs out.
MEMORY_SHARE = 1 / 8
#: Largest normalised squared error allowed between a stored ``reconstruction_rss`` slice and the RSS recomputed
#: from the file's k-space. Files written by this workflow match exactly and real fastMRI files are expected to match to
#: float32 rounding, so anything above this is a target that belongs to other data or was processed differently.
TARGET_NMSE_TOLERANCE = 1e-3


def _read(path: Path, key: str, dataset: h5py.Dataset, index, what: str) -> np.ndarray:
    """Read ``dataset[index]``; any failure (a truncated file, a chunk that does not decompress, a failing
    filter) becomes a DataValidationError naming the file and the key."""
    try:
        return dataset[index]
    except Exception as exc:  # h5py raises OSError, KeyError, ValueError or RuntimeError depending on the damage
        raise DataValidationError(
            path, key, f"{what} cannot be read (truncated file or corrupt chunk?): {type(exc).__name__}: {exc}"
        ) from exc


def physical_memory() -> int | None:
    """The machine's physical memory in bytes (POSIX ``sysconf``), None where the platform does not say."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, ValueError, OSError):
        return None


def max_slice_bytes() -> int:
    """The largest one-slice read: :data:`MAX_SLICE_BYTES`, or :data:`MEMORY_SHARE` of the physical memory if less."""
    memory = physical_memory()
    return MAX_SLICE_BYTES if not memory or memory <= 0 else min(MAX_SLICE_BYTES, int(memory * MEMORY_SHARE))


def _check_read_size(path: Path, key: str, shape: tuple[int, ...], dtype: np.dtype) -> None:
    """Refuse a slice whose read would need more than :func:`max_slice_bytes`, naming its declared size."""
    nbytes = int(np.prod(shape, dtype=object)) * dtype.itemsize
    limit = max_slice_bytes()
    if nbytes > limit:
        memory = physical_memory()
        why = (f"{MEMORY_SHARE:g} of this machine's {memory / 2**30:.1f} GiB of memory"
               if limit < MAX_SLICE_BYTES and memory else "MAX_SLICE_BYTES")
        raise DataValidationError(
            path,
            key,
            f"one slice of shape {tuple(shape)} ({dtype}) would need {nbytes / 2**30:.1f} GiB to read, more than "
            f"the limit of {limit / 2**30:.1f} GiB ({why}; at most MAX_SLICE_BYTES, "
            f"{MAX_SLICE_BYTES / 2**30:.0f} GiB); the header's shape is implausible",
        )


def _check_max_attr(path: Path, value) -> float:
    """The ``max`` attribute must be one finite positive real number."""
    arr = np.asarray(value)
    if arr.size != 1 or not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
        raise DataValidationError(
            path, "max", f"attribute must be one finite positive number, got {value!r} ({arr.dtype}, shape {arr.shape})"
        )
    vmax = float(arr.reshape(()))
    if not np.isfinite(vmax) or vmax <= 0:
        raise DataValidationError(path, "max", f"attribute must be one finite positive number, got {vmax}")
    return vmax


def _interior_empty_columns(sl: np.ndarray) -> tuple[int, int, int]:
    """All-zero phase-encoding columns (last axis) of one k-space slice [coils, H, W] that lie between its
    first and last non-zero column: (how many, first sampled column, last sampled column). Zero columns
    outside that band are zero padding (readout oversampling, partial Fourier) and are not counted."""
    sampled = np.flatnonzero(np.any(sl != 0, axis=(0, 1)))
    first, last = int(sampled[0]), int(sampled[-1])
    return (last - first + 1) - sampled.size, first, last


def _nmse(target: np.ndarray, reference: np.ndarray) -> float:
    """||target - reference||^2 / ||reference||^2 in float64 (0 when both are zero, inf when only the reference is)."""
    t, r = target.astype(np.float64), reference.astype(np.float64)
    err, ref = float(np.sum((t - r) ** 2)), float(np.sum(r**2))
    if ref == 0.0:
        return 0.0 if err == 0.0 else float("inf")
    return err / ref


def validate_file(path: str | os.PathLike, require_target: bool = True) -> VolumeInfo:
    """Check a fastMRI multi-coil file and return its shape information.

    Raises DataValidationError for:

    * an unreadable or truncated HDF5 file, and any slice of ``kspace`` or ``reconstruction_rss`` that
      cannot be read (a corrupt chunk, a failing decompression filter);
    * a missing ``kspace``, wrong rank, a real dtype, zero coils or slices, odd H or W;
    * a path that is a folder or does not exist (a symbolic link is followed, and an error names the link and
      its target);
    * a header shape whose single-slice read would need more than :func:`max_slice_bytes` (checked from
      the shapes alone, before any data is read);
    * NaN/Inf values or an all-zero slice in ``kspace``;
    * undersampled k-space: an all-zero phase-encoding column (last axis, W) between the first and last
      non-zero column of a slice. Zero columns at the edges are zero padding and are accepted;
    * a ``reconstruction_rss`` whose slices disagree in number or shape with the k-space, that contains
      NaN/Inf, or whose slices are not the RSS of the file's k-space: every slice is compared with
      :func:`rss_target` of its k-space slice (the definition of the fastMRI target) and refused when the
      normalised squared error exceeds :data:`TARGET_NMSE_TOLERANCE`;
    * a ``max`` attribute, when present, that is not one finite positive number.

    Slices are read one at a time, so memory stays at about one slice whatever the volume's size. Every slice
    is checked; the RSS comparison costs one inverse FFT per slice (numpy's FFT, one core), about 0.1 s for a
    15-coil 640x368 slice, so a 35-slice knee volume takes a few seconds.
    """
    path = Path(path)
    try:
        return _validate(path, require_target)
    except DataValidationError as err:
        if path.is_symlink():  # name the link the user put in the folder, and where it leads
            raise DataValidationError(f"{path} (a link to {os.path.realpath(path)})", err.key, err.problem) from err
        raise


def _validate(path: Path, require_target: bool) -> VolumeInfo:
    """:func:`validate_file` of one path, errors naming ``path``."""
    if path.is_dir():
        raise DataValidationError(path, None, "is a directory, expected an HDF5 file")
    if not path.is_file():
        raise DataValidationError(path, None, "is a link to nothing (its target does not exist)"
                                  if path.is_symlink() else "file does not exist")
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise DataValidationError(path, None, f"not a readable HDF5 file (truncated or corrupt?): {exc}") from exc
    with f:
        ks = _check_kspace_header(path, f)
        n_slices, n_coils, height, width = ks.shape
        # The target's shape is checked before any data is read; its values are checked slice by slice below.
        tg = _check_target_header(path, f, ks.shape, require_target)
        th, tw = tg.shape[1:] if tg is not None else (height, width)
        max_attr = _check_max_attr(path, f.attrs["max"]) if "max" in f.attrs else None
        target_max = _check_slices(path, ks, tg)
        vmax = float("nan")
        if tg is not None:
            vmax = max_attr if max_attr is not None else target_max
        acq = f.attrs.get("acquisition", "")
        if isinstance(acq, bytes):
            acq = acq.decode()
    return VolumeInfo(str(path), n_slices, n_coils, height, width, th, tw, str(acq), vmax)


def _check_kspace_header(path: Path, f: h5py.File) -> h5py.Dataset:
    """The file's ``kspace`` dataset once its kind, rank, dtype and shape are checked (no data read)."""
    if "kspace" not in f:
        raise DataValidationError(path, "kspace", f"missing; the file has keys {sorted(f.keys())}")
    ks = f["kspace"]
    if not isinstance(ks, h5py.Dataset):
        raise DataValidationError(path, "kspace", "expected a dataset, found a group")
    if ks.ndim != 4:
        raise DataValidationError(
            path, "kspace", f"expected rank 4 [slices, coils, H, W] (multi-coil), got shape {ks.shape}"
        )
    if not np.issubdtype(ks.dtype, np.complexfloating):
        raise DataValidationError(path, "kspace", f"expected a complex dtype, got {ks.dtype}")
    n_slices, n_coils, height, width = ks.shape
    if n_slices == 0:
        raise DataValidationError(path, "kspace", "has zero slices")
    if n_coils == 0:
        raise DataValidationError(path, "kspace", "has zero coils")
    if height % 2 or width % 2:
        raise DataValidationError(
            path, "kspace", f"H and W must be even (centred FFT convention), got H={height}, W={width}"
        )
    _check_read_size(path, "kspace", ks.shape[1:], ks.dtype)
    return ks


def _check_target_header(path: Path, f: h5py.File, kspace_shape: tuple, require_target: bool) -> h5py.Dataset | None:
    """The file's ``reconstruction_rss`` dataset once its kind, rank, dtype and shape are checked against the
    k-space's (no data read); None when the file has none and ``require_target`` is false."""
    if "reconstruction_rss" not in f:
        if require_target:
            raise DataValidationError(path, "reconstruction_rss", "missing (needed as the ground truth)")
        return None
    n_slices, _, height, width = kspace_shape
    tg = f["reconstruction_rss"]
    if not isinstance(tg, h5py.Dataset):
        raise DataValidationError(path, "reconstruction_rss", "expected a dataset, found a group")
    if tg.ndim != 3:
        raise DataValidationError(path, "reconstruction_rss", f"expected rank 3 [slices, h, w], got shape {tg.shape}")
    if tg.shape[0] != n_slices:
        raise DataValidationError(
            path,
            "reconstruction_rss",
            f"slices disagree: {tg.shape[0]} target slices but {n_slices} k-space slices",
        )
    th, tw = tg.shape[1:]
    if th > height or tw > width:
        raise DataValidationError(
            path,
            "reconstruction_rss",
            f"slice shape {(th, tw)} is larger than the k-space grid {(height, width)}",
        )
    if not np.issubdtype(tg.dtype, np.floating):
        raise DataValidationError(path, "reconstruction_rss", f"expected a real float dtype, got {tg.dtype}")
    _check_read_size(path, "reconstruction_rss", tg.shape[1:], tg.dtype)
    return tg


def _check_slices(path: Path, ks: h5py.Dataset, tg: h5py.Dataset | None) -> float:
    """One pass over the slices; returns the target's largest value (-inf without a target). A problem with the
    k-space is reported before any problem with the target (the target is derived from the k-space), so the
    first target problem is kept until the pass ends."""
    width = ks.shape[-1]
    target_problem: DataValidationError | None = None
    target_max = -np.inf
    for i in range(ks.shape[0]):
        sl = _read(path, "kspace", ks, i, f"slice {i}")
        if not np.all(np.isfinite(sl)):
            raise DataValidationError(path, "kspace", f"slice {i} contains NaN or Inf")
        if not np.any(sl):
            raise DataValidationError(path, "kspace", f"slice {i} is empty (all zeros)")
        empty, first, last = _interior_empty_columns(sl)
        if empty:
            raise DataValidationError(
                path,
                "kspace",
                f"looks undersampled: slice {i} has {empty} empty (all-zero) phase-encoding columns inside "
                f"its sampled band, columns {first}-{last} of W={width}; ground truth needs fully sampled k-space",
            )
        if tg is None or target_problem is not None:
            continue
        try:
            target_max = max(target_max, _check_target_slice(path, tg, i, sl))
        except DataValidationError as exc:
            target_problem = exc
    if target_problem is not None:
        raise target_problem
    return target_max


def _check_target_slice(path: Path, tg: h5py.Dataset, i: int, kspace_slice: np.ndarray) -> float:
    """Slice ``i`` of the target checked against the RSS of its k-space; returns its largest value."""
    t = _read(path, "reconstruction_rss", tg, i, f"slice {i}")
    if not np.all(np.isfinite(t)):
        raise DataValidationError(path, "reconstruction_rss", f"slice {i} contains NaN or Inf")
    nmse = _nmse(t, rss_target(kspace_slice, tg.shape[1:]))
    if not nmse <= TARGET_NMSE_TOLERANCE:
        raise DataValidationError(
            path,
            "reconstruction_rss",
            f"slice {i} does not match the RSS of its k-space (centre-cropped RSS of the orthonormal "
            f"centred IFFT): NMSE {nmse:.3g} > {TARGET_NMSE_TOLERANCE:g}",
        )
    return float(t.max())


def ifft2c_np(kspace: np.ndarray) -> np.ndarray:
    """Centred orthonormal 2D inverse FFT over the last two axes (fastMRI's ``ifft2c`` in numpy)."""
    x = np.fft.ifftshift(kspace, axes=(-2, -1))
    x = np.fft.ifft2(x, axes=(-2, -1), norm="ortho")
    return np.fft.fftshift(x, axes=(-2, -1))


def fft2c_np(image: np.ndarray) -> np.ndarray:
    """Centred orthonormal 2D FFT over the last two axes (fastMRI's ``fft2c`` in numpy)."""
    x = np.fft.ifftshift(image, axes=(-2, -1))
    x = np.fft.fft2(x, axes=(-2, -1), norm="ortho")
    return np.fft.fftshift(x, axes=(-2, -1))


def center_crop(x: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Crop the last two axes to ``shape`` around the centre (fastMRI's convention); numpy or torch."""
    h, w = x.shape[-2:]
    ch, cw = shape
    if ch > h or cw > w:
        raise ValueError(f"cannot crop {(h, w)} to larger {shape}")
    top, left = (h - ch) // 2, (w - cw) // 2
    return x[..., top : top + ch, left : left + cw]


def rss_target(kspace: np.ndarray, target_shape: tuple[int, int]) -> np.ndarray:
    """fastMRI's ``reconstruction_rss``: RSS over coils of the orthonormal IFFT, centre-cropped.

    kspace: [..., coils, H, W] complex. Returns float32 [..., h, w].
    """
    img = ifft2c_np(kspace)
    rss = np.sqrt(np.sum(np.abs(img) ** 2, axis=-3))
    return center_crop(rss, target_shape).astype(np.float32)


def write_volume(
    path: str | os.PathLike,
    kspace: np.ndarray,
    target: np.ndarray,
    *,
    acquisition: str,
    patient_id: str,
    ismrmrd_header: str | bytes | None = None,
    extra_attrs: dict | None = None,
) -> None:
    """Write a fastMRI-format multi-coil file atomically (temp file, then rename)."""
    if kspace.ndim != 4:
        raise ValueError(f"kspace must be [slices, coils, H, W], got {kspace.shape}")
    with atomic_path(path, suffix=".h5") as tmp:
        with h5py.File(tmp, "w") as f:
            f.create_dataset("kspace", data=kspace.astype(np.complex64), chunks=(1, *kspace.shape[1:]))
            f.create_dataset("reconstruction_rss", data=target.astype(np.float32))
            if ismrmrd_header is not None:
                hdr = ismrmrd_header.encode() if isinstance(ismrmrd_header, str) else ismrmrd_header
                f.create_dataset("ismrmrd_header", data=np.bytes_(hdr))
            f.attrs["acquisition"] = acquisition
            f.attrs["patient_id"] = patient_id
            f.attrs["max"] = float(target.max())
            f.attrs["norm"] = float(np.linalg.norm(target))
            for k, v in (extra_attrs or {}).items():
                f.attrs[k] = v
