"""Variants that load published weights instead of training: the ``checkpoint:`` setting of a U-Net or VarNet.

A variant with ``checkpoint: {url: ..., sha256: ...}`` (or ``{path: ..., sha256: ...}``) is a trained-family
variant whose model file is made from a state dict in fastMRI's layout (``fastmri.models.Unet`` /
``fastmri.models.VarNet``, as fastMRI publishes its leaderboard networks) by the rule ``pretrained``
(workflow/rules/train.smk), never by ``train``. A URL is fetched once by the ``download`` rule's code
(:func:`robustcs.download.download`, checksummed, resumable) into :data:`robustcs.paths.PRETRAINED_DOWNLOAD`; a
local file is read where it is, its SHA-256 checked before use. The weights are then loaded with
``torch.load(weights_only=True)`` and every key and shape is checked against the network the variant's spec builds
(:func:`robustcs.networks.load_published`).

This module holds the start-up checks and is, like :mod:`robustcs.study`, standard library only.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from .download import archive_name

#: Settings of a network spec that only training reads: a checkpoint variant that sets one is refused.
TRAINING_KEYS = ("epochs", "lr", "lr_step", "lr_gamma", "batch_size", "loss", "train_fraction", "self_supervised")
SHA256 = re.compile(r"[0-9a-f]{64}")
FILE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]*")

#: fastMRI's published multi-coil leaderboard networks (fastmri_examples/{unet,varnet}/run_pretrained_*_inference.py
#: of the fastMRI repository; no checksum is published): file, and the spec settings that build their network.
PUBLISHED = {
    "https://dl.fbaipublicfiles.com/fastMRI/trained_models/unet/knee_mc_leaderboard_state_dict.pt":
        {"family": "unet", "chans": 256, "pools": 4},
    "https://dl.fbaipublicfiles.com/fastMRI/trained_models/unet/brain_leaderboard_state_dict.pt":
        {"family": "unet", "chans": 256, "pools": 4},
    "https://dl.fbaipublicfiles.com/fastMRI/trained_models/varnet/knee_leaderboard_state_dict.pt":
        {"family": "varnet", "cascades": 12, "chans": 18, "pools": 4, "sens_chans": 8, "sens_pools": 4},
    "https://dl.fbaipublicfiles.com/fastMRI/trained_models/varnet/brain_leaderboard_state_dict.pt":
        {"family": "varnet", "cascades": 12, "chans": 18, "pools": 4, "sens_chans": 8, "sens_pools": 4},
}


def check_checkpoint(name: str, variant: dict, spec: Any) -> None:
    """The ``checkpoint`` block of variant ``name`` (its config block ``variant``, its parsed ``spec``): exactly one
    of url or path, a SHA-256 of 64 hex digits, a file name fit for a folder, an existing local file, the published
    input convention and no training settings. ValueError naming the key otherwise (the caller prefixes the field)."""
    ckpt = variant["checkpoint"]
    if not isinstance(ckpt, dict):
        raise ValueError(f"expected a mapping {{url: ..., sha256: ...}} or {{path: ..., sha256: ...}}, got {ckpt!r}")
    if ("url" in ckpt) == ("path" in ckpt):
        raise ValueError("give exactly one of url (downloaded once) or path (a local file)")
    sha = ckpt.get("sha256")
    if sha is None:
        raise ValueError("sha256 is missing: no file is used unchecked. fastMRI publishes no checksum; download the "
                         "file once yourself (e.g. curl -O <url>), run `sha256sum` on it and fill in its 64 hex digits")
    if not isinstance(sha, str) or not SHA256.fullmatch(sha):
        raise ValueError(f"sha256: expected 64 lower-case hex digits, got {sha!r}")
    if "url" in ckpt:
        fname = archive_name(ckpt["url"])
        if not FILE_NAME.fullmatch(fname):
            raise ValueError(f"url: file name {fname!r} must contain only letters, digits, '.', '_' and '-'")
        published = PUBLISHED.get(ckpt["url"])
        if published is not None:  # the architecture fastMRI's file holds, named before any download
            given = {k: getattr(spec, k, variant.get(k)) for k in published}
            if mismatch := {k: v for k, v in published.items() if given[k] != v}:
                raise ValueError(f"url: fastMRI's {fname} holds a {published['family']} with "
                                 f"{ {k: v for k, v in published.items() if k != 'family'} }; set {mismatch} "
                                 f"(the variant has { {k: given[k] for k in mismatch} })")
    elif not Path(ckpt["path"]).expanduser().is_file():
        raise ValueError(f"path: file {ckpt['path']!r} does not exist")
    spec.check_published()  # the network's own conditions (robustcs.specs.NetworkSpec), e.g. fastMRI's input
    if given := [k for k in TRAINING_KEYS if k in variant]:
        raise ValueError(f"{given} only set how a network is trained; a checkpoint variant is not trained")


def check_study(study: Any) -> None:
    """Every variant's checkpoint block (only trained families take one) and the experiments that cannot use a
    checkpoint variant (test-time training compares the network trained on P with one trained on Q)."""
    for name in study.pretrained_methods():  # (a family that is not trained is refused with train_on, train_mask)
        try:
            check_checkpoint(name, study.methods[name], study.spec(name))
        except (TypeError, ValueError) as err:
            raise ValueError(f"config methods.{name}.checkpoint: {err}") from None
    for name in (study.config.get("ttt") or {}).get("methods", []):
        if name in study.pretrained_methods():
            raise ValueError(f"config ttt.methods: {name!r} loads a checkpoint; test-time training needs the variant "
                             "trained on each shift's source and on its target (the Q->Q reference)")


def checkpoint_source(checkpoint: dict, method: str, pattern: str) -> str:
    """The file the ``pretrained`` rule reads: the download's place (``pattern``, robustcs.paths.PRETRAINED_DOWNLOAD,
    per variant: fastMRI's U-Net and VarNet brain files share a name) or the local path."""
    if "url" in checkpoint:
        return pattern.format(method=method, archive=archive_name(checkpoint["url"]))
    return str(Path(checkpoint["path"]).expanduser())
