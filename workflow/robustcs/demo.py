"""The embedded demo data: fastMRI-format multi-coil volumes built from real MR images in wheels.

Source images: the ICBM 2009a nonlinear symmetric MNI template (T1 and grey/white-matter probability
maps, 1 mm isotropic) that ships inside the nilearn wheel. No real multi-coil k-space can be had
offline, so coil sensitivities (sigpy's birdcage model), a smooth background phase and complex
Gaussian receiver noise are simulated. Every volume ("patient") gets its own random in-plane
rotation, scaling, shift and smooth intensity bias and its own slab of template slices, so that the
volumes of a split are not identical.

A dataset is described by a :class:`DemoSpec`; distributions differ the way real shifts do:
contrast (T1 vs a synthetic T2-like contrast from the tissue maps), anatomy/orientation (axial vs
sagittal) and scanner (coil count, SNR, readout oversampling).
"""

from __future__ import annotations

import functools
import os
from importlib import util as importlib_util
from pathlib import Path

import numpy as np
import sigpy.mri as mr
from scipy import ndimage

from .fastmri_io import fft2c_np, rss_target, write_volume
from .ismrmrd_header import make_header
from .specs import DemoSpec  # noqa: F401 (re-exported)
from .util import stable_seed

TEMPLATE_FILES = {
    "t1": "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz",
    "gm": "mni_icbm152_gm_tal_nlin_sym_09a_converted.nii.gz",
    "wm": "mni_icbm152_wm_tal_nlin_sym_09a_converted.nii.gz",
}
#: Template slice ranges (1 mm slices) that cross the head, per orientation.
SLICE_RANGE = {"axial": (45, 150), "sagittal": (35, 160), "coronal": (40, 190)}
#: Scale of the simulated k-space, close to the order of magnitude of fastMRI multi-coil data.
KSPACE_SCALE = 1e-3


def template_dir() -> Path:
    spec = importlib_util.find_spec("nilearn")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(
            "the demo data needs the MNI template shipped in the nilearn wheel: "
            "pip install --no-deps nilearn==0.14.1"
        )
    return Path(list(spec.submodule_search_locations)[0]) / "datasets" / "data"


@functools.lru_cache(maxsize=None)
def load_contrast(contrast: str) -> np.ndarray:
    """The template as a float32 volume in [0, 1] with the requested contrast, axes (x, y, z)."""
    import nibabel as nib

    def load(key: str) -> np.ndarray:
        path = template_dir() / TEMPLATE_FILES[key]
        if not path.is_file():
            raise FileNotFoundError(f"demo template image not found: {path}")
        return np.asarray(nib.load(str(path)).dataobj, dtype=np.float32) / 255.0

    t1 = load("t1")
    if contrast == "t1":
        return t1
    if contrast == "t2":
        gm, wm = load("gm"), load("wm")
        head = ndimage.binary_fill_holes(ndimage.binary_closing(t1 > 0.08, iterations=2))
        rest = np.clip(1.0 - gm - wm, 0.0, 1.0) * head
        # T2-like: CSF (dark on T1) bright, white matter darker than grey matter, fat moderately bright.
        return (0.30 * wm + 0.55 * gm + rest * (1.0 - 0.6 * t1)).astype(np.float32)
    raise ValueError(f"unknown demo contrast {contrast!r}; expected 't1' or 't2'")


def template_slice(vol: np.ndarray, orientation: str, index: int) -> np.ndarray:
    """A 2D slice with the head upright/anterior at the top, padded to a square."""
    if orientation == "axial":
        img = np.flipud(vol[:, :, index].T)  # rows: anterior->posterior, cols: left->right
    elif orientation == "sagittal":
        img = np.flipud(vol[index, :, :].T)  # rows: superior->inferior, cols: posterior->anterior
    elif orientation == "coronal":
        img = np.flipud(vol[:, index, :].T)
    else:
        raise ValueError(f"unknown orientation {orientation!r}")
    n = max(img.shape)
    out = np.zeros((n, n), np.float32)
    top, left = (n - img.shape[0]) // 2, (n - img.shape[1]) // 2
    out[top : top + img.shape[0], left : left + img.shape[1]] = img
    return out


def _transform(img: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """Random rotation/scale/shift of a square slice, resampled to ``size`` x ``size``."""
    n = img.shape[0]
    angle = np.deg2rad(rng.uniform(-10, 10))
    zoom = rng.uniform(0.9, 1.1) * size / n * 1.3  # the template has a wide margin around the brain
    shift = rng.uniform(-0.04, 0.04, size=2) * size
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    matrix = rot / zoom
    centre_out = (np.array([size, size]) - 1) / 2 + shift
    centre_in = (np.array([n, n]) - 1) / 2
    offset = centre_in - matrix @ centre_out
    out = ndimage.affine_transform(img, matrix, offset=offset, output_shape=(size, size), order=3, mode="constant")
    return np.clip(out, 0.0, None)


def _smooth_field(shape: tuple[int, int], rng: np.random.Generator, amplitude: float) -> np.ndarray:
    """A smooth random field (2nd-order polynomial) with values in about [-amplitude, amplitude]."""
    y, x = np.meshgrid(np.linspace(-1, 1, shape[0]), np.linspace(-1, 1, shape[1]), indexing="ij")
    terms = [x, y, x * y, x**2 - 1 / 3, y**2 - 1 / 3]
    coef = rng.normal(size=len(terms))
    coef *= amplitude / max(np.sum(np.abs(coef)), 1e-12)
    return sum(c * t for c, t in zip(coef, terms))


def add_fine_structure(img: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    """``count`` small structures inside the object of a magnitude image (where it exceeds 20 % of its max):
    dots of radius 0.5-1.5 px and lines 1 px wide, 4-10 px long, each raising or lowering the local intensity
    by 15-40 % of the image max (never below 0)."""
    out = img.astype(np.float32).copy()
    h, w = img.shape
    inside = np.argwhere(img > 0.2 * img.max())
    if inside.size == 0:
        return out
    yy, xx = np.mgrid[:h, :w]
    peak = float(img.max())
    for _ in range(int(count)):
        r0, c0 = inside[rng.integers(len(inside))]
        amplitude = peak * rng.uniform(0.15, 0.4) * rng.choice([-1.0, 1.0])
        if rng.random() < 0.5:
            radius = rng.uniform(0.5, 1.5)
            shape = ((yy - r0) ** 2 + (xx - c0) ** 2) <= radius**2
        else:
            length, angle = rng.uniform(4, 10), rng.uniform(0, np.pi)
            t = np.linspace(-length / 2, length / 2, int(4 * length))
            rows = np.clip(np.round(r0 + t * np.sin(angle)).astype(int), 0, h - 1)
            cols = np.clip(np.round(c0 + t * np.cos(angle)).astype(int), 0, w - 1)
            shape = np.zeros((h, w), bool)
            shape[rows, cols] = True
        out[shape] = np.maximum(out[shape] + amplitude, 0.0)
    return out


def simulate_volume(spec: DemoSpec, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Simulate one volume. Returns (kspace [S, C, H, W], target [S, size, size], coil maps [C, H, W])."""
    rng = np.random.default_rng(seed)
    vol = load_contrast(spec.contrast)
    lo, hi = SLICE_RANGE[spec.orientation]
    span = 2 * spec.slices_per_volume  # slices 2 mm apart
    if hi - lo < span:
        raise ValueError(f"slices_per_volume={spec.slices_per_volume} exceeds the template's range")
    first = int(rng.integers(lo, hi - span + 1))
    indices = first + 2 * np.arange(spec.slices_per_volume)

    size, ro = spec.size, spec.readout_oversampling
    height = size * ro
    maps = mr.birdcage_maps((spec.coils, height, size), r=rng.uniform(1.3, 1.6), nzz=spec.coils).astype(np.complex64)
    # The same geometric transform and bias field for every slice of one volume (one patient).
    state = rng.bit_generator.state
    bias = 1.0 + _smooth_field((size, size), rng, 0.15)
    kspace = np.zeros((len(indices), spec.coils, height, size), np.complex64)
    for s, idx in enumerate(indices):
        rng.bit_generator.state = state
        img = _transform(template_slice(vol, spec.orientation, int(idx)), size, rng) * bias
        srng = np.random.default_rng([seed, s])
        if spec.fine_structure:
            img = add_fine_structure(img, spec.fine_structure, np.random.default_rng([seed, s, 1]))
        phase = np.exp(1j * np.pi * _smooth_field((size, size), srng, 0.5))
        full = np.zeros((height, size), np.complex64)
        top = (height - size) // 2
        full[top : top + size] = img * phase
        coil_images = maps * full[None]
        noise = spec.noise * (srng.standard_normal(coil_images.shape) + 1j * srng.standard_normal(coil_images.shape))
        kspace[s] = KSPACE_SCALE * (fft2c_np(coil_images) + noise / np.sqrt(2))
    target = rss_target(kspace, (size, size))
    return kspace, target, maps


def write_dataset(name: str, spec: DemoSpec, out_dir: str | os.PathLike, seed: int, progress=None) -> list[dict]:
    """Write every volume of a demo dataset; returns one record (split, path) per volume."""
    out_dir = Path(out_dir)
    records = []
    jobs = [(split, i) for split in ("train", "val", "test") for i in range(int(spec.volumes.get(split, 0)))]
    for split, i in progress(jobs) if progress else jobs:
        vseed = stable_seed(seed, name, split, i)
        kspace, target, _ = simulate_volume(spec, vseed)
        path = out_dir / split / f"{name}_{split}_{i:03d}.h5"
        header = make_header(
            encoded=(kspace.shape[-2], kspace.shape[-1], 1),
            recon=(spec.size, spec.size, 1),
            coils=spec.coils,
            slices=kspace.shape[0],
        )
        write_volume(
            path,
            kspace,
            target,
            acquisition=f"DEMO_{spec.orientation.upper()}_{spec.contrast.upper()}",
            patient_id=f"{name}-{split}-{i:03d}",
            ismrmrd_header=header,
            extra_attrs={"demo_seed": vseed},
        )
        records.append({"split": split, "path": str(path)})
    return records


def write_real_shaped(
    path: str | os.PathLike, *, coils: int, height: int, width: int, target: tuple[int, int] = (320, 320),
    slices: int = 2, acquisition: str = "CORPD_FBK", contrast: str = "t1", orientation: str = "sagittal",
    noise: float = 0.02, seed: int = 0,
) -> None:
    """One fastMRI-format file with a real dataset's shapes, for rehearsals of the real study: k-space
    [slices, coils, height, width] with the readout (height) oversampled as fastMRI's (height = 2 x target
    rows for knee and brain), the object in a target-sized field of view centred across the width (so
    widths of 368 and 372 hold the same anatomy), birdcage coils, a smooth phase, receiver noise of std
    ``noise`` (relative to the object's max) everywhere (a noise floor in the background, as in a scan),
    ``reconstruction_rss`` the RSS centre crop, the ``acquisition`` attribute (the acquisition filters
    read it) and an ISMRMRD header with the encoded and reconstruction matrices."""
    rng = np.random.default_rng(seed)
    vol = load_contrast(contrast)
    lo, hi = SLICE_RANGE[orientation]
    th, tw = target
    side = min(th, tw)
    maps = mr.birdcage_maps((coils, height, width), r=1.5, nzz=coils).astype(np.complex64)
    kspace = np.zeros((slices, coils, height, width), np.complex64)
    for s, idx in enumerate(np.linspace(lo + 20, hi - 20, slices).astype(int)):
        img = _transform(template_slice(vol, orientation, int(idx)), side, rng)
        img = img / max(float(img.max()), 1e-12)
        full = np.zeros((height, width), np.complex64)
        top, left = (height - side) // 2, (width - side) // 2
        full[top : top + side, left : left + side] = img * np.exp(1j * np.pi * _smooth_field((side, side), rng, 0.5))
        coil_images = maps * full[None]
        coil_images = coil_images + noise * (rng.standard_normal(coil_images.shape)
                                             + 1j * rng.standard_normal(coil_images.shape)) / np.sqrt(2)
        kspace[s] = KSPACE_SCALE * fft2c_np(coil_images)
    header = make_header(encoded=(height, width, 1), recon=(th, tw, 1), coils=coils, slices=slices)
    write_volume(path, kspace, rss_target(kspace, target), acquisition=acquisition,
                 patient_id=Path(path).stem, ismrmrd_header=header, extra_attrs={"rehearsal_seed": seed})


def scanned_head_slice(coils: int = 8, noise: float = 0.0, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A real scan's slice with its own background noise floor, as multi-coil k-space: matplotlib's sample
    ``s1045.ima`` (256x256 sagittal head T1, big-endian uint16), normalised to max 1, times sigpy birdcage
    maps and a smooth phase, plus complex Gaussian noise of std ``noise`` (relative to the max) per coil,
    at the demo's k-space scale. Returns (kspace [C, 256, 256] complex64, true maps [C, 256, 256]).
    Unlike the template-based demo, its background is a measured noise floor, not zero: the test data for
    everything that must score like the RSS reference (image spaces, ℓ1 at realistic noise)."""
    from matplotlib import cbook

    with cbook.get_sample_data("s1045.ima.gz") as f:
        img = np.frombuffer(f.read(), ">u2").reshape(256, 256).astype(np.float64)
    img /= img.max()
    rng = np.random.default_rng(seed)
    maps = mr.birdcage_maps((coils, 256, 256), r=1.5, nzz=coils).astype(np.complex64)
    phase = np.exp(1j * np.pi * _smooth_field((256, 256), rng, 0.5))
    coil_images = maps * (img * phase)
    coil_images = coil_images + noise * (rng.standard_normal(coil_images.shape) + 1j * rng.standard_normal(coil_images.shape)) / np.sqrt(2)
    return (KSPACE_SCALE * fft2c_np(coil_images)).astype(np.complex64), maps
