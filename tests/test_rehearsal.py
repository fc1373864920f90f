"""Rehearsal of the real study (config/real.yaml + config/rehearsal.yaml) on generated files of the real shapes:
fastMRI-format knee files with 15 coils and 640x368 / 640x372 k-space (readout oversampled, PD and PD-FS
acquisitions), brain files with 16 coils and 640x320 k-space (AXT2), and ISMRMRD raw 3D volumes shaped like
the Stanford 3D FSE knees (8 coils, 320x320 slices). Every rule of the real study runs at least once, with the
networks made small (tests/config/rehearsal_ci.yaml says why)."""

import h5py
import ismrmrd
import numpy as np
import pandas as pd
import pytest
import sigpy.mri as mr
import yaml
from ismrmrd.hdf5 import acquisition_dtype, acquisition_header_dtype

from robustcs.demo import write_real_shaped
from robustcs.ismrmrd_convert import convert_ismrmrd
from robustcs.ismrmrd_header import make_header

from conftest import ROOT, snakemake


def write_3d_raw(path, coil_img: np.ndarray, *, rx: int, noise_scans: int = 2, seed: int = 0) -> None:
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


def test_bulk_raw_writer_matches_the_ismrmrd_package(tmp_path):
    """The block writer's file converts to the same volume as one written acquisition by acquisition."""
    from test_convert import _phantom_3d, _write_3d

    img = _phantom_3d(c=3, x=8, y=16, z=12)
    _write_3d(tmp_path / "slow.h5", img, rx=4)
    write_3d_raw(tmp_path / "fast.h5", img, rx=4)
    convert_ismrmrd(tmp_path / "slow.h5", tmp_path / "slow_out.h5", scale=1.0)
    convert_ismrmrd(tmp_path / "fast.h5", tmp_path / "fast_out.h5", scale=1.0)
    with h5py.File(tmp_path / "slow_out.h5") as a, h5py.File(tmp_path / "fast_out.h5") as b:
        np.testing.assert_allclose(a["kspace"][()], b["kspace"][()], atol=1e-6)
        np.testing.assert_allclose(a["reconstruction_rss"][()], b["reconstruction_rss"][()], atol=1e-6)


#: (dataset, split) -> [(coils, height, width, acquisition)] of the generated fastMRI-format files.
FASTMRI_FILES = {
    ("knee", "train"): [(15, 640, 368, "CORPD_FBK"), (15, 640, 372, "CORPDFS_FBK")],
    ("knee", "val"): [(15, 640, 368, "CORPD_FBK")],
    ("knee", "test"): [(15, 640, 368, "CORPD_FBK"), (15, 640, 372, "CORPDFS_FBK")],
    ("knee_pathology", "test"): [(15, 640, 368, "CORPD_FBK")],
    ("brain", "train"): [(16, 640, 320, "AXT2")],
    ("brain", "val"): [(16, 640, 320, "AXT2")],
    ("brain", "test"): [(16, 640, 320, "AXT2")],
}


@pytest.fixture(scope="module")
def rehearsal_data(tmp_path_factory):
    root = tmp_path_factory.mktemp("rehearsal_data")
    paths = {}
    for (dataset, split), files in FASTMRI_FILES.items():
        folder = root / dataset / split
        folder.mkdir(parents=True)
        for i, (coils, height, width, acq) in enumerate(files):
            write_real_shaped(folder / f"{dataset}_{split}_{i}.h5", coils=coils, height=height, width=width,
                              slices=2, acquisition=acq, orientation="axial" if dataset == "brain" else "sagittal",
                              seed=i + 10 * len(paths))
        paths.setdefault(dataset, {})[split] = {"path": str(folder)}
    raw = root / "stanford"
    raw.mkdir()
    write_3d_raw(raw / "stanford_000.h5", stanford_like(seed=3), rx=4)
    paths["stanford"] = {"test": {"path": str(raw)}}
    boxes = root / "boxes.csv"  # fastMRI+ layout: a study-level row, a tear on each slice, another label
    boxes.write_text("file,slice,study_level,x,y,width,height,label\n"
                     "knee_pathology_test_0.h5,,Yes,,,,,Exam Quality\n"
                     "knee_pathology_test_0.h5,0,No,150,140,14,8,Meniscus Tear\n"
                     "knee_pathology_test_0.h5,1,No,120,170,10,10,Meniscus Tear\n"
                     "knee_pathology_test_0.h5,1,No,60,60,10,10,Bone-Marrow Edema\n")
    return {"datasets": {name: {"splits": splits} for name, splits in paths.items()},
            "pathology": {"annotations": str(boxes)}}


@pytest.mark.slow
def test_real_study_rehearsal(tmp_path, rehearsal_data):
    overlay = tmp_path / "paths.yaml"
    overlay.write_text(yaml.safe_dump(rehearsal_data))
    work = tmp_path / "work"
    snakemake("--cores", "2", "--resources", "mem_mb=20000", "--configfile", str(ROOT / "config/real.yaml"),
              str(ROOT / "config/rehearsal.yaml"), str(ROOT / "tests/config/rehearsal_ci.yaml"), str(overlay), "--directory", str(work), "--", "all")
    res = work / "results"
    # every rule of the real study ran (each writes a benchmark) ...
    rules = {p.name for p in (res / "benchmarks").iterdir() if p.is_dir()}
    rules |= {p.stem for p in (res / "benchmarks").glob("*.tsv")}
    rules |= {f"plot_{p.stem}" for p in (res / "benchmarks/plot").glob("*.tsv")}
    expected = {"ingest", "masks", "sensitivities", "train", "reconstruct", "evaluate", "tune", "attack",
                "features", "pathology", "ttt", "summarise_clean", "summarise_pathology", "summarise_tuning", "summarise_attacks", "summarise_features",
                "summarise_shifts", "summarise_ttt", "summarise_headline", "summarise_findings", "plot_adversarial",
                "plot_adversarial_examples", "plot_features_vs_ssim", "plot_feature_examples", "plot_shifts",
                "plot_ttt"}
    assert expected <= rules, f"rules that did not run: {sorted(expected - rules)}"
    # ... at the real shapes: both knee widths, 15/16/8 coils, 320x320 references and slices
    knee = pd.read_csv(res / "data/knee/manifest.csv")
    assert set(knee["width"]) == {368, 372} and set(knee["coils"]) == {15} and set(knee["height"]) == {640}
    assert set(zip(knee["target_height"], knee["target_width"])) == {(320, 320)}
    brain = pd.read_csv(res / "data/brain/manifest.csv")
    assert set(brain["coils"]) == {16} and set(brain["width"]) == {320}
    stanford = pd.read_csv(res / "data/stanford/manifest.csv")
    assert set(stanford["coils"]) == {8} and set(zip(stanford["height"], stanford["width"])) == {(320, 320)}
    with h5py.File(next((res / "recon/knee/random4x/varnet_k12_c18_e50").glob("*.h5"))) as f:
        assert all(group["reconstruction"].shape[-2:] == (320, 320) for group in f.values()) and len(f)
    # every configured variant is in the clean table, every shift in the fit table, every TTT shift summarised
    cfg = yaml.safe_load((ROOT / "config/real.yaml").read_text())
    clean = pd.read_csv(res / "tables/clean.csv")
    filters = {p["filter"] for p in cfg["shifts"]["pairs"].values() if p["kind"] == "filtered"}
    assert set(clean["method"]) == set(cfg["methods"]) - filters
    assert clean["ssim_mean"].between(0, 1).all()
    fits = pd.read_csv(res / "tables/shift_fit.csv")
    assert set(fits["shift"]) == set(cfg["shifts"]["pairs"])
    # ESPIRiT maps only where a job reads them: none for the masks no experiment uses on a dataset
    sens = {(p.parent.parent.name, p.name) for p in (res / "data").glob("*/sens/*")}
    assert ("knee", "random4x") in sens and ("brain", "equispaced4x") in sens and ("knee", "random2x") in sens
    assert not sens & {("knee", "equispaced8x"), ("brain", "random4x"), ("stanford", "random2x")}, sorted(sens)
    # the meniscus-tear boxes (not the other label) of the annotated file, scored by every variant
    boxes = pd.read_csv(res / "tables/pathology.csv")
    assert set(boxes["label"]) == {"Meniscus Tear"} and len(boxes) == 2 * len(set(cfg["methods"]) - filters)
    ttt = pd.read_csv(res / "tables/ttt_summary.csv")
    assert set(ttt["shift"]) == set(cfg["ttt"]["shifts"]) and set(ttt["method"]) == set(cfg["ttt"]["methods"])
