"""What a rule script receives from its rule, decoded.

A rule passes every setting its job depends on as canonical JSON (:func:`robustcs.study.canonical`: sorted
keys, so that Snakemake's params trigger reruns a job exactly when a setting it reads changes). The scripts turn
them back into the specs the library takes here, one function per kind of setting; no script parses JSON.
The study model (:class:`robustcs.study.Study`) has validated the config against config/schema.yaml, filled every
default and run every cross-field check before a job starts, so these functions only give the values their spec's
types (:func:`robustcs.specs.from_block`); a key they reject means a rule and its script disagree.
"""

from __future__ import annotations

import json
from typing import Any, NamedTuple

from . import families
from .specs import AttackSpec, FeatureSpec, TTTSpec, from_block


def plain(text: str) -> Any:
    """A setting that is plain data (figure settings, shift pairs, accelerations, a dataset block)."""
    return json.loads(text)


def network(text: str) -> Any:
    """A trained variant's network spec (robustcs.specs.UnetSpec or VarNetSpec) from its settings."""
    return families.spec_from_config(json.loads(text))


def mask(text: str) -> Any:
    """A mask's robustcs.masks.MaskSpec."""
    from .masks import MaskSpec

    return MaskSpec(**json.loads(text))


def espirit(text: str) -> Any:
    """The robustcs.sensitivities.EspiritSpec of the ESPIRiT block (sensitivities.espirit, defaults filled in)."""
    from .sensitivities import EspiritSpec

    return from_block(EspiritSpec, json.loads(text), "sensitivities.espirit")


def features(text: str) -> FeatureSpec:
    return FeatureSpec.from_config(json.loads(text))


class AttackPlan(NamedTuple):
    spec: AttackSpec
    slices: int  # central slices attacked per volume
    save_perturbations: bool


def attack(text: str) -> AttackPlan:
    """The attacks block (Study.attack_settings)."""
    block = json.loads(text)
    return AttackPlan(AttackSpec.from_config(block["spec"]), int(block["slices"]), bool(block["save_perturbations"]))


class TTTPlan(NamedTuple):
    spec: TTTSpec
    slices: int  # central slices adapted to per target volume
    reference_ttt: bool = False  # also adapt the variant trained on Q (Q->Q+TTT)
    ablation_hidden: bool = False  # also adapt P->Q with the held-out points hidden from the input (P->Q+TTT hidden)


def ttt(text: str) -> TTTPlan:
    """The TTT settings of one shift (Study.ttt_settings)."""
    block = json.loads(text)
    return TTTPlan(TTTSpec.from_config(block["spec"]), int(block["slices"]), bool(block.get("reference_ttt", False)),
                   bool(block.get("ablation_hidden", False)))


class PathologyPlan(NamedTuple):
    annotations: str  # the annotation CSV
    flip_vertical: bool  # its rows count from the image's bottom (fastMRI+)
    labels: list[str] | None  # the labels kept; None: all


def pathology(text: str) -> PathologyPlan:
    """The pathology block (Study.pathology_settings)."""
    return PathologyPlan(**json.loads(text))
