"""Generated files of the real study's shapes, for rehearsing config/real.yaml without the real data (CI's
tests/test_rehearsal.py and the GPU check bench/gpu_check.sh):

- fastMRI-format knee files with 15 coils and 640x368 / 640x372 k-space (readout oversampled; PD and PD-FS
  acquisitions), brain files with 16 coils and 640x320 k-space (AXT2 and AXT1PRE in the same folders), a knee
  file for the pathology boxes;
- ISMRMRD raw 3D volumes shaped like the Stanford 3D FSE knees (8 coils, 320x320 slices, noise scans, ChopY/Z):
  one for the evaluated dataset shift, two in the folder that test-time training's dataset shift splits by file;
- a bounding-box CSV in the fastMRI+ layout;
- small state dicts in fastMRI's layout for config/real.yaml's checkpoint variants (:func:`write_checkpoints`).

    python -m robustcs.rehearsal DIR    # writes the files under DIR and DIR/paths.yaml, the config overlay
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import h5py
import ismrmrd
import numpy as np
import sigpy.mri as mr
import yaml
from ismrmrd.hdf5 import acquisition_dtype, acquisition_header_dtype

from .demo import write_real_shaped
from .ismrmrd_header import make_header

#: (dataset, split) -> [(coils, height, width, acquisition)] of the generated fastMRI-format files.
FASTMRI_FILES = {
    ("knee", "train"): [(15, 640, 368, "CORPD_FBK"), (15, 640, 372, "CORPDFS_FBK")],
    ("knee", "val"): [(15, 640, 368, "CORPD_FBK"), (15, 640, 372, "CORPDFS_FBK")],
    ("knee", "test"): [(15, 640, 368, "CORPD_FBK"), (15, 640, 372, "CORPDFS_FBK")],
    ("knee_pathology", "test"): [(15, 640, 368, "CORPD_FBK")],
    # AXT2 (the brain dataset) and AXT1PRE (brain_t1pre, the modality shift's target) in the same folders
    ("brain", "train"): [(16, 640, 320, "AXT2"), (16, 640, 320, "AXT1PRE")],
    ("brain", "val"): [(16, 640, 320, "AXT2"), (16, 640, 320, "AXT1PRE")],
    ("brain", "test"): [(16, 640, 320, "AXT2"), (16, 640, 320, "AXT1PRE")],
}

#: The networks of config/real.yaml's checkpoint variants in a rehearsal (robustcs.pretrained; small, like the
#: trained networks of tests/config/rehearsal_ci.yaml): written as state dicts in fastMRI's layout.
CHECKPOINT_NETWORKS = {"unet": {"chans": 8, "pools": 4},
                       "varnet": {"cascades": 2, "chans": 6, "pools": 3, "sens_chans": 4, "sens_pools": 3}}
REAL = Path(__file__).resolve().parents[2] / "config" / "real.yaml"

#: The annotated file's boxes: a study-level row, a meniscus tear on each slice and a box of another label.
BOXES = ("file,slice,study_level,x,y,width,height,label\n"
         "knee_pathology_test_0.h5,,Yes,,,,,Exam Quality\n"
         "knee_pathology_test_0.h5,0,No,150,140,14,8,Meniscus Tear\n"
         "knee_pathology_test_0.h5,1,No,120,170,10,10,Meniscus Tear\n"
         "knee_pathology_test_0.h5,1,No,60,60,10,10,Bone-Marrow Edema\n")


def write_3d_raw(path: str | os.PathLike, coil_img: np.ndarray, *, rx: int, noise_scans: int = 2, seed: int = 0) -> None:
    """3D Cartesian k-space of coil images [C, X, Y, Z] as ISMRMRD acquisitions (one per (ky, kz), readout X,
    sign-chopped in ky and kz with ChopY = ChopZ = 0 as in the Stanford files, noise scans first), written in
    one block with h5py: the ismrmrd package's one-by-one append takes minutes for a 320x320 encoding."""
    c, x, y, z = coil_img.shape
    k = np.fft.fftshift(np.fft.fftn(np.fft.ifftshift(coil_img, axes=(1, 2, 3)), axes=(1, 2, 3), norm="ortho"),
                        axes=(1, 2, 3)).astype(np.complex64)
    header = make_header(encoded=(x, y, z), recon=(rx, y, z), coils=c, user_long={"ChopY": 0, "ChopZ": 0})
    template = ismrmrd.Acquisition.from_array(np.zeros((c, x), np.complex64))
    template.center_sample = x // 2
    head = np.frombuffer(template.getHead(), dtype=acquisition_header_dtype)[0]
    ky, kz = np.meshgrid(np.arange(y), np.arange(z), indexing="ij")
    ky, kz = ky.ravel(), kz.ravel()
    n = noise_scans + ky.size
    records = np.empty(n, dtype=acquisition_dtype)
    heads = np.repeat(head[None], n)
    heads["flags"][:noise_scans] = 1 << (ismrmrd.ACQ_IS_NOISE_MEASUREMENT - 1)
    heads["idx"]["kspace_encode_step_1"][noise_scans:] = ky
    heads["idx"]["kspace_encode_step_2"][noise_scans:] = kz
    heads["scan_counter"] = np.arange(n)
    records["head"] = heads
    rng = np.random.default_rng(seed)
    lines = np.transpose(k, (2, 3, 0, 1)) * ((-1.0) ** (ky + kz)).reshape(y, z)[..., None, None]  # [Y, Z, C, X]
    data = [(rng.standard_normal((c, x)) * 1e3).astype(np.complex64) for _ in range(noise_scans)]
    data += list(lines.reshape(y * z, c, x).astype(np.complex64))
    records["data"] = [np.ascontiguousarray(d).view(np.float32).ravel() for d in data]
    records["traj"] = [np.zeros(0, np.float32)] * n
    with h5py.File(path, "w") as f:
        group = f.create_group("dataset")
        group.create_dataset("xml", data=np.array([header.encode()], dtype=h5py.special_dtype(vlen=bytes)))
        group.create_dataset("data", data=records, maxshape=(None,))


def stanford_like(c: int = 8, x: int = 8, y: int = 320, z: int = 320, seed: int = 0) -> np.ndarray:
    """Coil images [C, X, Y, Z] of an elliptical knee-sized object with a noise floor (8 coils, 320x320)."""
    rng = np.random.default_rng(seed)
    yy, zz = np.mgrid[-1 : 1 : y * 1j, -1 : 1 : z * 1j]
    obj = ((yy / 0.7) ** 2 + (zz / 0.55) ** 2 < 1) * (1 + 0.3 * np.cos(6 * yy) * np.sin(4 * zz))
    vol = np.repeat(obj[None], x, 0).astype(np.complex64)
    maps = mr.birdcage_maps((c, y, z), r=1.2).astype(np.complex64)[:, None]
    img = maps * vol[None]
    return (img + 0.02 * (rng.standard_normal(img.shape) + 1j * rng.standard_normal(img.shape))).astype(np.complex64)


def write_rehearsal_data(root: str | os.PathLike) -> dict:
    """Every file of a rehearsal under ``root`` (a new or empty folder); returns the config overlay that points
    config/real.yaml's datasets and pathology annotations at them."""
    root = Path(root)
    paths: dict = {}
    for (dataset, split), files in FASTMRI_FILES.items():
        folder = root / dataset / split
        folder.mkdir(parents=True)
        for i, (coils, height, width, acq) in enumerate(files):
            write_real_shaped(folder / f"{dataset}_{split}_{i}.h5", coils=coils, height=height, width=width,
                              slices=2, acquisition=acq, orientation="axial" if dataset == "brain" else "sagittal",
                              contrast="t2" if acq == "AXT2" else "t1",
                              seed=i + 10 * len(paths))
        paths.setdefault(dataset, {})[split] = {"path": str(folder)}
    raw = root / "stanford"
    raw.mkdir()
    write_3d_raw(raw / "stanford_000.h5", stanford_like(seed=3), rx=4)
    paths["stanford"] = {"test": {"path": str(raw)}}
    # the TTT dataset shift's target: two volumes in one folder, split by file into train and test by real.yaml's
    # shares (of two files, [0, 0.75] keeps one and [0.75, 1] the other)
    split = root / "stanford_split"
    split.mkdir()
    for i in range(2):
        write_3d_raw(split / f"stanford_split_{i:03d}.h5", stanford_like(seed=4 + i), rx=4)
    paths["stanford_split"] = {"train": {"path": str(split)}, "test": {"path": str(split)}}
    boxes = root / "boxes.csv"
    boxes.write_text(BOXES)
    methods = write_checkpoints(root / "checkpoints", yaml.safe_load(REAL.read_text())["methods"])
    paths["brain_t1pre"] = paths["brain"]  # the same folders, the other acquisition (config/real.yaml's filter)
    paths["knee_pdfs"] = paths["knee"]  # likewise: the PD-FS scans of the knee folders
    return {"datasets": {name: {"splits": splits} for name, splits in paths.items()},
            "pathology": {"annotations": str(boxes)}, **({"methods": methods} if methods else {})}


def write_checkpoints(folder: Path, methods: dict) -> dict:
    """A state dict in fastMRI's layout (seeded weights) for every variant of ``methods`` that loads a checkpoint
    (robustcs.pretrained), at the small sizes of :data:`CHECKPOINT_NETWORKS` (fastMRI's 256-channel U-Net file is
    1.9 GB); returns the overlay that sets each such variant to its network and its file (a file:// URL, so that
    the rehearsal downloads it through the download rule's code, and its SHA-256)."""
    import torch

    from .download import sha256sum
    from .networks import init_model, spec_from_config

    overlay = {}
    for i, (name, settings) in enumerate(sorted((n, s) for n, s in methods.items() if "checkpoint" in s)):
        network = {"family": settings["family"], **CHECKPOINT_NETWORKS[settings["family"]]}
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{name}_state_dict.pt"
        torch.save(init_model(spec_from_config(network), seed=i).state_dict(), path)
        overlay[name] = {**CHECKPOINT_NETWORKS[settings["family"]],
                         "checkpoint": {"url": path.resolve().as_uri(), "sha256": sha256sum(path)}}
    return overlay


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("root", type=Path, help="a new or empty folder for the files")
    args = ap.parse_args()
    args.root.mkdir(parents=True, exist_ok=True)
    if any(args.root.iterdir()):
        raise SystemExit(f"{args.root}: not empty; the rehearsal data goes into a new folder")
    overlay = write_rehearsal_data(args.root)
    (args.root / "paths.yaml").write_text(json.dumps(overlay, indent=1))  # JSON is YAML: a config file as it is
    print(args.root / "paths.yaml")


if __name__ == "__main__":
    main()
