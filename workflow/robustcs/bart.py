"""Interop with the BART toolbox (a reference tool for tests and benchmarks, not a runtime dependency).

BART stores arrays as .cfl (complex64, column-major) with a text .hdr giving the dimensions.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np


def write_cfl(base: str | os.PathLike, array: np.ndarray) -> None:
    base = str(base)
    with open(base + ".hdr", "w") as f:
        f.write("# Dimensions\n" + " ".join(str(d) for d in array.shape) + "\n")
    np.asarray(array, dtype=np.complex64).ravel(order="F").tofile(base + ".cfl")


def read_cfl(base: str | os.PathLike) -> np.ndarray:
    base = str(base)
    with open(base + ".hdr") as f:
        lines = [ln for ln in f if not ln.startswith("#")]
    dims = [int(d) for d in lines[0].split()]
    data = np.fromfile(base + ".cfl", dtype=np.complex64)
    return data.reshape(dims, order="F")


def bart_ecalib(kspace: np.ndarray, *, calib_width: int, kernel_width: int, threshold: float, crop: float) -> np.ndarray:
    """One set of ESPIRiT maps from BART's ``ecalib -m1``. kspace: [C, H, W]; returns [C, H, W]."""
    exe = shutil.which("bart")
    if exe is None:
        raise FileNotFoundError("bart is not installed (Debian package 'bart')")
    with tempfile.TemporaryDirectory() as tmp:
        write_cfl(Path(tmp) / "ksp", np.transpose(kspace, (1, 2, 0))[:, :, None, :])
        subprocess.run(
            [exe, "ecalib", "-m1", "-r", str(calib_width), "-k", str(kernel_width), "-t", str(threshold),
             "-c", str(crop), str(Path(tmp) / "ksp"), str(Path(tmp) / "maps")],
            check=True, capture_output=True,
        )
        maps = read_cfl(Path(tmp) / "maps")
    return np.transpose(maps.reshape(maps.shape[0], maps.shape[1], -1), (2, 0, 1))


def bart_pics_l1(kspace: np.ndarray, maps: np.ndarray, *, lam: float, iterations: int) -> np.ndarray:
    """BART's ℓ1-wavelet ``pics -l1 -r lam -i iterations -S`` (rescaled output). kspace, maps: [C, H, W];
    returns the complex image [H, W]."""
    exe = shutil.which("bart")
    if exe is None:
        raise FileNotFoundError("bart is not installed (Debian package 'bart')")
    with tempfile.TemporaryDirectory() as tmp:
        write_cfl(Path(tmp) / "ksp", np.transpose(kspace, (1, 2, 0))[:, :, None, :])
        write_cfl(Path(tmp) / "sens", np.transpose(maps, (1, 2, 0))[:, :, None, :])
        subprocess.run(
            [exe, "pics", "-l1", "-r", str(lam), "-i", str(iterations), "-S",
             str(Path(tmp) / "ksp"), str(Path(tmp) / "sens"), str(Path(tmp) / "img")],
            check=True, capture_output=True,
        )
        img = read_cfl(Path(tmp) / "img")
    return img.reshape(img.shape[0], img.shape[1])
