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

from .util import atomic_path


class DataValidationError(ValueError):
    """A data file is not usable; the message names the file, the key and what was expected."""

    def __init__(self, path: str | os.PathLike, key: str | None, problem: str):
        where = f"{path}" + (f": key '{key}'" if key else "")
        super().__init__(f"{where}: {problem}")
        self.path = str(path)
        self.key = key


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


# Slices are read one at a time for the finiteness/emptiness checks, so large volumes stay cheap.
def validate_file(path: str | os.PathLike, require_target: bool = True) -> VolumeInfo:
    """Check a fastMRI multi-coil file and return its shape information.

    Raises DataValidationError for: an unreadable or truncated HDF5 file, a missing ``kspace``,
    wrong rank, a real dtype, zero coils or slices, odd H or W, NaN/Inf values, an all-zero slice,
    and a ``reconstruction_rss`` whose slices disagree in number or shape with the k-space.
    """
    path = Path(path)
    if not path.is_file():
        raise DataValidationError(path, None, "file does not exist")
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise DataValidationError(path, None, f"not a readable HDF5 file (truncated or corrupt?): {exc}") from exc
    with f:
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
        for i in range(n_slices):
            try:
                sl = ks[i]
            except (OSError, KeyError) as exc:
                raise DataValidationError(path, "kspace", f"slice {i} cannot be read (truncated file?): {exc}") from exc
            if not np.all(np.isfinite(sl)):
                raise DataValidationError(path, "kspace", f"slice {i} contains NaN or Inf")
            if not np.any(sl):
                raise DataValidationError(path, "kspace", f"slice {i} is empty (all zeros)")

        th, tw = height, width
        vmax = float("nan")
        if "reconstruction_rss" in f:
            tg = f["reconstruction_rss"]
            if tg.ndim != 3:
                raise DataValidationError(
                    path, "reconstruction_rss", f"expected rank 3 [slices, h, w], got shape {tg.shape}"
                )
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
            target = tg[()]
            if not np.all(np.isfinite(target)):
                raise DataValidationError(path, "reconstruction_rss", "contains NaN or Inf")
            vmax = float(f.attrs.get("max", target.max()))
        elif require_target:
            raise DataValidationError(path, "reconstruction_rss", "missing (needed as the ground truth)")
        acq = f.attrs.get("acquisition", "")
        if isinstance(acq, bytes):
            acq = acq.decode()
    return VolumeInfo(str(path), n_slices, n_coils, height, width, th, tw, str(acq), vmax)


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
