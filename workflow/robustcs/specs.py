"""The settings of every configurable part of the study, as frozen dataclasses: typed views of config blocks.

Where a setting's block is described by ``config/schema.yaml`` (attacks, features, ttt, sensitivities.espirit), the
schema is the one home of its types, ranges and defaults: the study model (:mod:`robustcs.study`) validates the
whole config against it at start-up, with the defaults filled in, and the spec is built from the checked block by
one generic function, :func:`from_block` (unknown keys refused, lists made tuples, integers in float fields made
floats). Such a spec checks only what spans its fields (each such check says so). ``tests/test_schema_specs.py``
keeps every dataclass default equal to the schema's default. The method families' settings (``L1Spec`` ...
``VarNetSpec``) are described by the schema's per-family definitions (``$defs`` ``method_<family>``), against which
the study model checks each variant without filling defaults in (a variant's rule params are its keys as given);
their specs too are built by :func:`from_block`, the dataclass defaults standing for the schema's.

This module imports only the standard library (no NumPy, torch, sigpy, h5py, matplotlib, jsonschema or YAML), so
that the study model checks a whole config when Snakemake parses the workflow, on a machine that has only Snakemake:
with ``--sdm conda`` the rule environments carry the rest. The solvers import their spec from here
(``robustcs.l1wavelet.L1Spec`` is this module's ``L1Spec``). It knows no family by name: the registry
(:mod:`robustcs.families`) maps each family to its spec class and imports this module, never the reverse.
"""

from __future__ import annotations

import numbers
import typing
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from .netspecs import NetworkSpec, UnetTraits, VarNetTraits


def unknown_keys(cfg: dict, cls: type, ignore: tuple[str, ...] = ()) -> list[str]:
    """Keys of a config block that are not fields of the spec ``cls`` (nor in ``ignore``), sorted."""
    return sorted(set(cfg) - {f.name for f in fields(cls)} - set(ignore))


def field_names(cls: type) -> list[str]:
    return sorted(f.name for f in fields(cls))


def _typed(hint: Any, value: Any) -> Any:
    """``value`` in the shape of the field's type ``hint``: a tuple field takes a list (or one scalar) as a tuple,
    a float field an integer (or a number's text, as YAML 1.1 reads "1e-3") as a float, an integer field a whole
    float as an integer, a ``dict[str, float]`` its values as floats; anything else as it is (the schema has
    checked the values; this only gives them the spec's types)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is float and isinstance(value, str):  # YAML 1.1 reads "1e-3" as a string (a block built by hand)
        try:
            return float(value)
        except ValueError:
            return value
    if hint is float:
        return float(value) if isinstance(value, numbers.Real) and not isinstance(value, bool) else value
    if hint is int and isinstance(value, float) and value.is_integer():  # JSON Schema's integer admits 2.0
        return int(value)
    if origin is tuple:
        items = (value,) if isinstance(value, (str, numbers.Number)) else tuple(value)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_typed(args[0], v) for v in items)
        return tuple(_typed(a, v) for a, v in zip(args, items)) if len(args) == len(items) else items
    if origin is dict and len(args) == 2 and isinstance(value, dict):
        return {k: _typed(args[1], v) for k, v in value.items()}
    return value


def from_block(cls: type, block: dict | None, where: str, ignore: tuple[str, ...] = ()) -> Any:
    """The spec ``cls`` of a config block whose values the schema has checked (the study model validates every
    config at start-up; a rule's params come from it): keys left out take the dataclass defaults, which equal the
    schema's. A key that is no field of ``cls`` (nor in ``ignore``) is a ValueError naming ``where`` and the key."""
    if not isinstance(block, dict | None):
        raise ValueError(f"{where}: expected a mapping, got {block!r}")
    block = dict(block or {})
    if unknown := unknown_keys(block, cls, ignore):
        raise ValueError(f"{where}: unknown key(s) {unknown}; expected some of {field_names(cls)}")
    hints = typing.get_type_hints(cls)
    return cls(**{k: _typed(hints[k], v) for k, v in block.items() if k not in ignore})


# ---- reconstruction methods -------------------------------------------------------------------------------------


def _discrete_wavelets() -> list[str] | None:
    """PyWavelets' discrete wavelets, or None where PyWavelets is not installed (the Snakemake-only machine of a
    ``--sdm conda`` run; the ℓ1 jobs then check the name when they build the transform)."""
    try:
        import pywt
    except ImportError:
        return None
    return pywt.wavelist(kind="discrete")


@dataclass(frozen=True)
class L1Spec:
    lam: float = 1e-3
    iterations: int = 100
    wavelet: str = "db4"
    levels: int | None = None  # None: PyWavelets' maximum for the image size
    penalize_approximation: bool = False
    # 0: step 1 / max_pixel sum_c |S_c|^2, an upper bound of L (||M F S x|| <= ||S x||) that is tight for
    # ESPIRiT maps and a mask holding the k-space centre; > 0: the power method with that many steps.
    power_iterations: int = 0
    # cycle spinning: each wavelet step on a randomly shifted image (robustcs.l1wavelet.l1_wavelet_fista; BART's
    # default). Off: the fixed objective sigpy's L1WaveletRecon minimises.
    random_shifts: bool = False
    # "fused"/"compiled": fewer, larger operations per iteration (robustcs.l1wavelet.l1_wavelet_fista_fused)
    implementation: str = "reference"

    @classmethod
    def from_config(cls, cfg: dict) -> "L1Spec":
        """From a variant's block (types, ranges, defaults: config/schema.yaml ``$defs`` ``method_l1``)."""
        spec = from_block(cls, cfg, "l1 method", ("family",))
        wavelets = _discrete_wavelets()  # outside the schema: the names PyWavelets knows, where it is installed
        if wavelets is not None and spec.wavelet not in wavelets:
            raise ValueError(f"l1 method: wavelet {spec.wavelet!r} is not a discrete PyWavelets wavelet")
        return spec

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class CGSenseSpec:
    lam: float = 1e-2  # relative Tikhonov weight: λ_abs = lam · max_pixel Σ_c|S_c|²
    iterations: int = 30  # CG iterations, a fixed count (differentiable unrolled solve)

    @classmethod
    def from_config(cls, cfg: dict) -> "CGSenseSpec":
        """From a variant's block (types, ranges, defaults: config/schema.yaml ``$defs`` ``method_cgsense``)."""
        return from_block(cls, cfg, "cgsense method", ("family",))

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class ConvDecoderSpec:
    """Hyper-parameters of one ConvDecoder configuration (the config's method block)."""

    mode: str = "sense"  # "sense" | "coils"
    channels: int = 64
    layers: int = 5
    input_shape: tuple[int, int] = (8, 4)
    iterations: int = 300
    lr: float = 0.008
    fit_batch: int = 1  # slices of a reconstruction job fitted at once (robustcs.convdecoder_batch); 1: one by one

    @classmethod
    def from_config(cls, cfg: dict[str, Any]) -> "ConvDecoderSpec":
        """From a variant's block (types, ranges, defaults: config/schema.yaml ``$defs`` ``method_convdecoder``;
        the key ``family`` is ignored); ValueError naming an unknown key."""
        return from_block(cls, cfg, "convdecoder method", ("family",))


# ---- networks ---------------------------------------------------------------------------------------------

#: Keys of a model config that belong to the workflow, not to the network.
WORKFLOW_KEYS = ("family", "train_on", "train_mask")


@dataclass(frozen=True)
class UnetSpec(UnetTraits):
    """Hyper-parameters of a U-Net (defaults: the study's fastMRI baseline)."""

    chans: int = 32
    pools: int = 4
    epochs: int = 50
    lr: float = 1e-3
    lr_step: int = 40
    lr_gamma: float = 0.1
    batch_size: int = 16
    loss: str = "l1"
    train_fraction: float = 1.0
    input: str = "rss"
    self_supervised: float = 0.0
    optimizer: str = "rmsprop"
    max_train_slices: int | None = None
    max_val_slices: int | None = None
    precision: str = "fp32"


@dataclass(frozen=True)
class VarNetSpec(VarNetTraits):
    """Hyper-parameters of an end-to-end VarNet (defaults: the fastMRI VarNet)."""

    cascades: int = 12
    chans: int = 18
    pools: int = 4
    sens_chans: int = 8
    sens_pools: int = 4
    epochs: int = 50
    lr: float = 3e-4
    lr_step: int = 40
    lr_gamma: float = 0.1
    batch_size: int = 1
    loss: str = "ssim"
    train_fraction: float = 1.0
    self_supervised: float = 0.0
    maps: str = "learned"
    max_train_slices: int | None = None
    max_val_slices: int | None = None
    precision: str = "fp32"


#: A trained network's spec (type hints; the generic code asks its :class:`NetworkSpec` methods).
Spec = NetworkSpec


def network_spec_from_config(cls: type, family: str, cfg: dict) -> Spec:
    """A network spec of class ``cls`` (a :class:`NetworkSpec`: :class:`UnetSpec`, :class:`VarNetSpec`) from the
    model config of a ``family`` variant (types, ranges, defaults: config/schema.yaml ``$defs``
    ``method_<family>``, checked at start-up); the class's own cross-field ``check()`` runs last.

    The keys ``family``, ``train_on`` and ``train_mask`` are ignored (workflow level); missing fields take the
    defaults. Raises ValueError for an unknown key and for the cross-field checks. Which class a family name
    picks is the registry's (:func:`robustcs.families.spec_from_config`).
    """
    spec = from_block(cls, cfg, f"{family} model", WORKFLOW_KEYS)
    if spec.max_train_slices is not None and spec.train_fraction != 1.0:  # cross-field: two ways to subsample
        raise ValueError("max_train_slices: set either it or train_fraction (they choose the training volumes "
                         "in different orders), not both")
    spec.check()
    return spec


def needs_maps(spec: Spec) -> bool:
    """Whether the network reads ESPIRiT maps (the complex-input U-Net, the VarNet with ``maps: espirit``)."""
    return spec.reads_maps()


def has_kspace_output(spec: Spec) -> bool:
    """Whether the network yields a predicted k-space F S f(A^H y), needed by test-time training."""
    return spec.kspace_output()


def spec_to_dict(spec: Spec) -> dict:
    """The spec's fields as a plain dict (without the family)."""
    return asdict(spec)


# ---- experiments ------------------------------------------------------------------------------------------

REFERENCES = ("full", "measured")


@dataclass(frozen=True)
class AttackSpec:
    """The attacks block's attack settings (less datasets, masks, methods, slices, save_perturbations, effort).
    Types, ranges and defaults: config/schema.yaml ``attacks`` (cd_weight < 1 keeps the joint objective bounded)."""

    epsilons: tuple[float, ...] = (0.01, 0.02, 0.04, 0.08)
    reference: str = "full"  # "full": ε·||k||, the study's budget; "measured": ε·||M k||
    steps: int = 20  # attack steps of every method: PGD steps, or joint steps after the ConvDecoder's clean fit
    step_size: float = 0.25  # first step length as a share of the budget's radius (cosine decay to 0)
    init: float = 1e-3  # norm of the random start, as a share of the radius
    cd_weight: float = 0.5  # λ₁ of the ConvDecoder joint scheme (study: 0.05 with another distance)
    batch: int = 0  # (slice, ε) items attacked together in one batch through the method (PGD; 0: all), for memory

    @classmethod
    def from_config(cls, cfg: dict) -> "AttackSpec":
        return from_block(cls, cfg, "attacks")

    def as_dict(self) -> dict:
        return {**asdict(self), "epsilons": list(self.epsilons)}


SHAPES = ("square", "disc")


@dataclass(frozen=True)
class FeatureSpec:
    """What features to insert (the config's ``features:`` block, less datasets/masks/methods). Types, ranges
    and defaults: config/schema.yaml ``features``."""

    sizes: tuple[int, ...] = (3, 5)  # side length (square) or diameter (disc) in pixels of the target frame
    contrasts: tuple[float, ...] = (1 / 6,)  # added intensity as a share of maxval (study: 1/6)
    shapes: tuple[str, ...] = ("square",)  # "square" | "disc"
    margin: int = 3  # scoring window = bounding box grown by this many pixels on each side
    min_intensity: float = 0.2  # the window lies where target >= min_intensity * target.max()
    slices: int = 2  # central slices of each volume that get features (used by the workflow)

    @classmethod
    def from_config(cls, cfg: dict | None) -> "FeatureSpec":
        """The spec of a config block (a list setting may be given as one scalar); unknown keys raise ValueError."""
        return from_block(cls, cfg, "features")

    def as_dict(self) -> dict:
        """Plain JSON/YAML-friendly dict; ``from_config(spec.as_dict()) == spec``."""
        return {f.name: list(v) if isinstance(v := getattr(self, f.name), tuple) else v for f in fields(self)}

    def combinations(self) -> list[tuple[str, int, float]]:
        """(shape, size, contrast) of each feature, in index order."""
        return [(shape, size, c) for shape in self.shapes for size in self.sizes for c in self.contrasts]


#: max_steps must allow this many windows W, so that the self-validation stop (checked from 3 W on) can act.
MIN_WINDOWS = 5

@dataclass(frozen=True)
class TTTSpec:
    """Settings of test-time training (defaults: the study's)."""

    max_steps: int = 2500
    window: int = 100
    holdout: float = 0.05
    #: learning rate per trained family; the study model fills the registry's ``ttt_lr`` (the study's rates)
    #: for every family the config leaves out (robustcs.study.Study.ttt_settings)
    lr: dict[str, float] = field(default_factory=dict)
    #: False (default, the TTT study's protocol): the held-out points leave the loss only; the network's input,
    #: the maps and the VarNet's data consistency use every measurement. True (an ablation, labelled so in every
    #: table): they are also removed from the network's input during TTT, so that their error is a validation
    #: error on points the network never saw; the final reconstruction uses every measurement either way.
    hide_holdout: bool = False
    #: True (default): the held-out points are drawn outside the fully sampled centre (the mask's
    #: num_low_frequencies central columns, fastMRI's placement), so that both protocols (hide_holdout) hold out
    #: the same points and differ only in what the network sees. With hide_holdout, a draw that takes central points removes much of the image's energy from the input
    #: (measured on the demo: one slice's P->Q+TTT SSIM ranged 0.83-0.90 over four draws; 0.90-0.91 with the
    #: centre kept). False: drawn from every sampled point, as the authors' notebooks.
    holdout_center: bool = True
    #: False (default, the study): single points are held out. True: whole sampled lines (an ablation: with
    #: hide_holdout, their error is measured where the network must interpolate, as on the unmeasured lines).
    holdout_lines: bool = False
    #: float precision of the adaptation steps (robustcs.precision); the final reconstruction is in float32
    precision: str = "fp32"

    @classmethod
    def from_config(cls, cfg: dict) -> "TTTSpec":
        """From a checked config block (types, ranges, defaults: config/schema.yaml ``ttt``); ValueError naming
        the key for unknown keys, and for the one check that spans two fields."""
        spec = from_block(cls, cfg, "ttt")
        if spec.max_steps < MIN_WINDOWS * spec.window:  # cross-field: max_steps against window
            raise ValueError(f"max_steps {spec.max_steps} < {MIN_WINDOWS} x window {spec.window}: the stopping rule "
                             f"(first checked after 3 windows) could hardly act; raise max_steps or lower window")
        return spec

    def as_dict(self) -> dict:
        return asdict(self)


# ---- data -------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class DemoSpec:
    """One demo distribution (all fields come from the config's ``demo:`` block)."""

    contrast: str = "t1"  # t1 | t2
    orientation: str = "axial"  # axial | sagittal | coronal
    size: int = 128  # reconstruction matrix (square)
    coils: int = 8
    noise: float = 0.01  # receiver noise std relative to the image maximum
    readout_oversampling: int = 1  # 2 doubles the readout FOV as in fastMRI knee data
    slices_per_volume: int = 8
    volumes: dict = field(default_factory=lambda: {"train": 8, "val": 2, "test": 2})
    #: Small structures per slice (dots of 1-3 px, short thin lines, brighter or darker than the tissue, inside the
    #: head): the template is smooth, so without them no network ever sees fine detail and the small-feature
    #: experiment cannot show whether recovering it tracks quality. 0: none.
    fine_structure: int = 0
