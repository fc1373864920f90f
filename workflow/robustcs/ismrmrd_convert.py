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
other non-imaging ones: navigators, phase correction, dummy scans) are skipped, and the original
XML header is stored as ``ismrmrd_header``.
"""

from __future__ import annotations

import os
from pathlib import Path

import h5py
import ismrmrd
import ismrmrd.xsd as xsd
import numpy as np

from .fastmri_io import DataValidationError, fft2c_np, rss_target, write_volume

#: Flags of acquisitions that carry no imaging data for the reconstruction.
SKIPPED_FLAGS = {
    "noise": ismrmrd.ACQ_IS_NOISE_MEASUREMENT,
    "navigation": ismrmrd.ACQ_IS_NAVIGATION_DATA,
    "phasecorr": ismrmrd.ACQ_IS_PHASECORR_DATA,
    "dummyscan": ismrmrd.ACQ_IS_DUMMYSCAN_DATA,
    "rtfeedback": ismrmrd.ACQ_IS_RTFEEDBACK_DATA,
    "hpfeedback": ismrmrd.ACQ_IS_HPFEEDBACK_DATA,
    "surfacecoilcorrection": ismrmrd.ACQ_IS_SURFACECOILCORRECTIONSCAN_DATA,
}


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


def user_parameters(header: xsd.ismrmrdHeader) -> dict:
    """The header's user parameters (long, double, string) as one name -> value dict."""
    params: dict = {}
    up = header.userParameters
    if up is None:
        return params
    for entry in list(up.userParameterLong) + list(up.userParameterDouble) + list(up.userParameterString):
        params[entry.name] = entry.value
    return params


def make_header(
    *,
    encoded: tuple[int, int, int],
    recon: tuple[int, int, int],
    coils: int,
    center: tuple[int, int] | None = None,
    limits_max: tuple[int, int] | None = None,
    slices: int = 1,
    fov_mm: tuple[float, float, float] = (220.0, 220.0, 3.0),
    user_long: dict | None = None,
) -> str:
    """A minimal but valid ISMRMRD XML header (encoded/recon matrices, limits, user parameters).

    ``encoded`` and ``recon`` are (x=readout, y=phase, z=partition) matrix sizes. ``center`` and
    ``limits_max`` give (step_1, step_2) encoding centres and maxima; defaults describe a fully
    sampled symmetric acquisition.
    """
    ex, ey, ez = encoded
    c1, c2 = center if center is not None else (ey // 2, ez // 2)
    m1, m2 = limits_max if limits_max is not None else (ey - 1, ez - 1)
    scale_x = ex / recon[0]
    enc = xsd.encodingType(
        encodedSpace=xsd.encodingSpaceType(
            matrixSize=xsd.matrixSizeType(x=ex, y=ey, z=ez),
            fieldOfView_mm=xsd.fieldOfViewMm(x=fov_mm[0] * scale_x, y=fov_mm[1], z=fov_mm[2]),
        ),
        reconSpace=xsd.encodingSpaceType(
            matrixSize=xsd.matrixSizeType(x=recon[0], y=recon[1], z=recon[2]),
            fieldOfView_mm=xsd.fieldOfViewMm(x=fov_mm[0], y=fov_mm[1], z=fov_mm[2]),
        ),
        encodingLimits=xsd.encodingLimitsType(
            kspace_encoding_step_1=xsd.limitType(minimum=0, maximum=m1, center=c1),
            kspace_encoding_step_2=xsd.limitType(minimum=0, maximum=m2, center=c2),
            slice=xsd.limitType(minimum=0, maximum=slices - 1, center=0),
        ),
        trajectory=xsd.trajectoryType("cartesian"),
    )
    header = xsd.ismrmrdHeader(
        experimentalConditions=xsd.experimentalConditionsType(H1resonanceFrequency_Hz=127_740_000),
        acquisitionSystemInformation=xsd.acquisitionSystemInformationType(receiverChannels=coils),
        encoding=[enc],
    )
    if user_long:
        header.userParameters = xsd.userParametersType(
            userParameterLong=[xsd.userParameterLongType(name=k, value=int(v)) for k, v in user_long.items()]
        )
    return xsd.ToXML(header)


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


def read_ismrmrd_kspace(path: str | os.PathLike, group: str = "dataset") -> tuple[np.ndarray, str, dict]:
    """Read Cartesian ISMRMRD raw data into a zero-padded k-space grid.

    Returns (kspace [slices, coils, kz, ky, kx] complex64, xml header, statistics).
    """
    path = Path(path)
    ds = _open_dataset(path, group)
    try:
        xml = ds.read_xml_header()
        xml = xml.decode() if isinstance(xml, bytes) else xml
        header = xsd.CreateFromDocument(xml)
        if not header.encoding:
            raise DataValidationError(path, f"{group}/xml", "header has no <encoding>")
        enc = header.encoding[0]
        if enc.trajectory is not None and str(enc.trajectory.value).lower() != "cartesian":
            raise DataValidationError(path, f"{group}/xml", f"trajectory {enc.trajectory.value!r} is not Cartesian")
        ex, ey, ez = enc.encodedSpace.matrixSize.x, enc.encodedSpace.matrixSize.y, enc.encodedSpace.matrixSize.z
        lim = enc.encodingLimits
        c1 = lim.kspace_encoding_step_1.center if lim.kspace_encoding_step_1 is not None else ey // 2
        c2 = lim.kspace_encoding_step_2.center if (lim.kspace_encoding_step_2 is not None and ez > 1) else ez // 2
        params = user_parameters(header)
        # ChopY/ChopZ == 0 marks sign-alternated phase encoding that must be undone.
        chop_y = 1 - int(params.get("ChopY", 1))
        chop_z = 1 - int(params.get("ChopZ", 1))

        n_acq = ds.number_of_acquisitions()
        imaging = []
        skipped = {k: 0 for k in SKIPPED_FLAGS}
        max_slice, coils = 0, None
        for i in range(n_acq):
            acq = ds.read_acquisition(i)
            flagged = [k for k, flag in SKIPPED_FLAGS.items() if acq.is_flag_set(flag)]
            if flagged:
                skipped[flagged[0]] += 1
                continue
            if coils is None:
                coils = acq.active_channels
            elif acq.active_channels != coils:
                raise DataValidationError(
                    path, f"{group}/data", f"acquisition {i} has {acq.active_channels} channels, expected {coils}"
                )
            imaging.append(i)
            max_slice = max(max_slice, acq.idx.slice)
        if not imaging:
            raise DataValidationError(path, f"{group}/data", "contains no imaging acquisitions")

        n_slices = max_slice + 1
        kspace = np.zeros((n_slices, coils, ez, ey, ex), dtype=np.complex64)
        counts = np.zeros((n_slices, ez, ey), dtype=np.int32)
        for i in imaging:
            acq = ds.read_acquisition(i)
            data = acq.data
            ns = data.shape[-1]
            # Place the echo so that its centre sample lands on the grid centre ex // 2.
            start = ex // 2 - (acq.center_sample if acq.center_sample else ns // 2)
            if start < 0 or start + ns > ex:
                raise DataValidationError(
                    path, f"{group}/data", f"acquisition {i}: {ns} samples do not fit the encoded matrix x={ex}"
                )
            ky_raw, kz_raw = acq.idx.kspace_encode_step_1, acq.idx.kspace_encode_step_2
            ky = ky_raw - c1 + ey // 2
            kz = kz_raw - c2 + ez // 2 if ez > 1 else 0
            if not (0 <= ky < ey and 0 <= kz < ez):
                raise DataValidationError(
                    path,
                    f"{group}/data",
                    f"acquisition {i}: encode step ({ky_raw}, {kz_raw}) lies outside the encoded matrix ({ey}, {ez})",
                )
            sign = -1.0 if (ky_raw * chop_y + kz_raw * chop_z) % 2 else 1.0
            kspace[acq.idx.slice, :, kz, ky, start : start + ns] += sign * data
            counts[acq.idx.slice, kz, ky] += 1
        # Average repeated lines (averages / repetitions) instead of summing them.
        kspace /= np.maximum(counts, 1)[:, None, :, :, None]
    finally:
        ds.close()
    stats = {"acquisitions": n_acq, "imaging": len(imaging), **{f"skipped_{k}": v for k, v in skipped.items()}}
    return kspace, xml, stats


def convert_ismrmrd(
    src: str | os.PathLike,
    dst: str | os.PathLike,
    *,
    scale: float = 1.0,
    group: str = "dataset",
    acquisition: str = "",
) -> dict:
    """Convert one ISMRMRD file to a fastMRI-format file; returns conversion statistics."""
    src = Path(src)
    kspace, xml, stats = read_ismrmrd_kspace(src, group)
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


__all__ = ["convert_ismrmrd", "read_ismrmrd_kspace", "make_header", "user_parameters", "fft2c_np"]
