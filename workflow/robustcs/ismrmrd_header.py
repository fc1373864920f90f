"""ISMRMRD XML headers: parsing with checks (every problem a DataValidationError naming the file), the user
parameters as a dict, and the header of a Cartesian acquisition written by the demo and the tests."""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET

import ismrmrd.xsd as xsd

from .fastmri_io import DataValidationError


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


def _child(node: ET.Element, name: str) -> ET.Element | None:
    """The first child element called ``name``, whatever its XML namespace."""
    for child in node:
        if isinstance(child.tag, str) and child.tag.rsplit("}", 1)[-1] == name:
            return child
    return None


def parse_header(path: str | os.PathLike, key: str, xml: str) -> xsd.ismrmrdHeader:
    """Parse and check an ISMRMRD XML header; every problem is a DataValidationError naming the file."""
    try:
        root = ET.fromstring(xml)
    except ET.ParseError as exc:
        raise DataValidationError(path, key, f"header XML does not parse: {exc}") from exc
    enc = _child(root, "encoding")
    if enc is None:
        raise DataValidationError(path, key, "header has no <encoding>")
    for space in ("encodedSpace", "reconSpace"):
        node = _child(enc, space)
        if node is None or _child(node, "matrixSize") is None:
            raise DataValidationError(
                path, key, f"header has no <encoding><{space}><matrixSize>: the size of the k-space grid is unknown"
            )
    if _child(enc, "encodingLimits") is None:
        raise DataValidationError(
            path, key, "header has no <encodingLimits>: cannot place the phase-encoding lines on the k-space grid"
        )
    try:
        header = xsd.CreateFromDocument(xml)
    except (ValueError, TypeError) as exc:  # syntax the schema rejects, required elements missing
        raise DataValidationError(path, key, f"header does not follow the ISMRMRD schema: {exc}") from exc
    enc = header.encoding[0]
    for space in ("encodedSpace", "reconSpace"):
        size = getattr(enc, space).matrixSize
        for axis in "xyz":
            value = getattr(size, axis)
            if not isinstance(value, int) or value < 1:
                raise DataValidationError(
                    path, key, f"<{space}><matrixSize><{axis}> is {value!r}, not a positive integer"
                )
    return header
