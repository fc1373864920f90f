"""The HDF5 layouts of the experiments' per-file results, each as one writer/reader pair: the attacked
reconstructions (rule attack → plot_attack_examples, tests) and the featured slices (rule insert_features →
probe_features, plot_feature_examples). A script writes or reads a file's group only through these, so that the
key names live in one place. The reconstructions of a variant (recon_io.write_slices) have their own pair there."""

import json
from dataclasses import dataclass

import h5py
import numpy as np

from robustcs.fastmri_io import DataValidationError
from robustcs.recon_io import write_attrs


@dataclass(frozen=True)
class AttackGroup:
    """One file's attack results: ε [E] and the attacked slice indices [S]; the clean reconstructions
    [S, h, w], the adversarial and random ones [E, S, h, w]; the budgets and perturbation norms [E, S]; the
    attack's loss per step [E, S, steps + 1]; the perturbations [E, S, ...] where saved (else None)."""

    epsilons: np.ndarray
    slices: np.ndarray
    clean: np.ndarray
    adversarial: np.ndarray
    random: np.ndarray
    budgets: np.ndarray
    norms: np.ndarray
    losses: np.ndarray
    perturbation: np.ndarray | None = None


def write_attack(group: h5py.Group, epsilons, slices: list[int], results: list, save_perturbations: bool) -> None:
    """One file's attacks into ``group``: ``results`` holds one robustcs.attacks.SliceAttack per slice."""
    group.create_dataset("epsilons", data=np.asarray(epsilons, dtype=np.float64))
    group.create_dataset("slices", data=np.asarray(slices, dtype=np.int32))
    group.create_dataset("clean", data=np.stack([r.clean for r in results]))
    for key in ("adversarial", "random"):  # [E, S, h, w]
        group.create_dataset(key, data=np.stack([np.stack(getattr(r, key)) for r in results], axis=1))
    for key in ("budgets", "norms"):  # [E, S]
        group.create_dataset(key, data=np.asarray([getattr(r, key) for r in results], dtype=np.float64).T)
    # the attack's loss per step [E, S, steps + 1]: ||Ψ(y+e) − Ψ(y)||² (PGD) or the joint scheme's distance
    group.create_dataset("losses", data=np.asarray([r.losses for r in results], dtype=np.float64).transpose(1, 0, 2))
    if save_perturbations:
        group.create_dataset("perturbation", data=np.stack([np.stack(r.perturbations) for r in results], axis=1),
                             compression="gzip", shuffle=True)


def read_attack(part: h5py.File, stem: str, path: str) -> AttackGroup:
    """The attack results of file ``stem`` in the part file ``part`` (opened from ``path``, named in errors)."""
    if stem not in part:
        raise DataValidationError(path, stem, "no attack results of this file")
    group = part[stem]
    missing = [k for k in AttackGroup.__dataclass_fields__ if k != "perturbation" and k not in group]
    if missing:
        raise DataValidationError(path, stem, f"no {', '.join(missing)} (not an attack result file?)")
    arrays = {k: group[k][()] for k in AttackGroup.__dataclass_fields__ if k in group}
    return AttackGroup(**arrays)


@dataclass(frozen=True)
class FeaturedGroup:
    """One file's slices with features put in: slice indices [S], their k-space [S, C, H, W], the reference
    with the features [S, h, w] and without them [S, h, w], and each slice's features (robustcs.features.Feature
    fields as dicts)."""

    slices: np.ndarray
    kspace: np.ndarray
    target: np.ndarray
    original: np.ndarray
    features: list[list[dict]]


def write_featured(group: h5py.Group, featured: FeaturedGroup) -> None:
    group.create_dataset("kspace", data=np.stack(featured.kspace).astype(np.complex64))
    group.create_dataset("reconstruction_rss", data=np.stack(featured.target).astype(np.float32))
    group.create_dataset("original_rss", data=np.stack(featured.original).astype(np.float32))
    group.create_dataset("slices", data=np.asarray(featured.slices, dtype=np.int32))
    write_attrs(group, {"features": featured.features})


def read_featured(part: h5py.File, stem: str, path: str, kspace: bool = True) -> FeaturedGroup:
    """The featured slices of file ``stem`` in the part file ``part`` (opened from ``path``, named in errors);
    ``kspace=False`` leaves the k-space unread (None)."""
    if stem not in part:
        raise DataValidationError(path, stem, "no featured slices of this file")
    group = part[stem]
    missing = [k for k in ("kspace", "reconstruction_rss", "original_rss", "slices") if k not in group]
    if missing or "features" not in group.attrs:
        raise DataValidationError(path, stem, f"no {', '.join(missing or ['features'])} (not a featured file?)")
    return FeaturedGroup(slices=group["slices"][()], kspace=group["kspace"][()] if kspace else None,
                         target=group["reconstruction_rss"][()], original=group["original_rss"][()],
                         features=json.loads(group.attrs["features"]))
