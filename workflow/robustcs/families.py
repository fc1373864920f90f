"""The method families: the one place that says what each family is.

A family is a kind of reconstruction method (ℓ1-wavelet, ConvDecoder, U-Net, ...); a config variant is one
configured member (``methods: {l1_a: {family: l1, lam: 0.01}}``). Everything the workflow needs to know
about a family is a field of its :class:`Family` here: how its settings are parsed and checked, how a
:class:`~robustcs.methods.Method` is built, whether it is trained, reads ESPIRiT maps, is seeded or uses a
GPU, how long its jobs may run, its learning rate for test-time training, its colour and its place in every
table. Rules, scripts, tables and plots ask this registry; no other module branches on a family's name.

To add a family: write its solver and a ``Method`` subclass (robustcs.methods), then one ``Family(...)``
entry in :data:`REGISTRY` below (its position is its display order); a trained family's entry
(:func:`trained_family`) also names its spec class and its network (:class:`robustcs.networks.Network`). Its
settings then validate at start-up, its variants reconstruct, evaluate, get attacked and probed, and appear in
every table.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from . import external, specs

# robustcs.specs is a leaf (the standard library only, no family names): the start-up checks run where only
# Snakemake is installed, and this registry is what ties each family to its spec class.


def trained_family(name: str, network_spec: type, network: Any, *args, **kwargs) -> "Family":
    """A trained family: its settings are its network spec class's fields (checked and defaulted), whether it
    reads maps or predicts k-space follows from the parsed spec (:class:`robustcs.specs.NetworkSpec`), and
    ``network`` ("module:NAME" in robustcs, or the object itself) is its torch side
    (:class:`robustcs.networks.Network`)."""

    def parse(settings: dict) -> Any:
        return specs.network_spec_from_config(network_spec, name, settings)

    return Family(name, parse, *args, reads_maps=specs.needs_maps, trained=True, kspace_output=specs.has_kspace_output,
                  network_spec=network_spec, network=network, **kwargs)


def _no_settings(settings: dict) -> None:
    """zero_filled has no settings (config/schema.yaml ``$defs`` ``method_zero_filled`` refuses any at start-up)."""
    return None


@dataclass(frozen=True)
class Family:
    name: str
    #: settings (the variant's block with its ``family`` key, without workflow keys) -> spec; ValueError if bad
    parse: Callable[[dict], Any]
    #: class (or factory) name in robustcs.methods; built as cls(name, device, settings=..., model_path=..., seed=...)
    method: str
    label: str  # display name in prose
    colour: str
    description: str
    #: spec -> whether a variant reads the ESPIRiT maps of its data
    reads_maps: Callable[[Any], bool] = field(default=lambda spec: True)
    trained: bool = False
    #: spec -> whether a trained variant predicts k-space (what test-time training needs)
    kspace_output: Callable[[Any], bool] = field(default=lambda spec: False)
    seeded: bool = False  # its reconstruction is random (seeded per slice from the config seed)
    gpu: bool = False  # its jobs ask for the configured GPUs
    in_papers: bool = True  # one of the papers' four families (their findings are about these)
    recon_minutes: int = 30  # runtime limit of a reconstruction job (one volume), minutes
    attack_minutes: int = 60  # runtime limit of an attack job (one volume)
    ttt_lr: float | None = None  # the study's test-time-training learning rate (trained families)
    network_spec: type | None = None  # a trained family's spec class in robustcs.specs (what its checkpoints store)
    #: a trained family's network (robustcs.networks.Network): "module:NAME" of robustcs, imported on first use
    #: (the registry stays on the standard library), or the object itself
    network: Any = None
    papers_psnr: float | None = None  # clean PSNR (dB) the ICML paper reports (one knee slice, 4x)
    #: spec -> whether a variant can be attacked (a differentiable forward or its own attack strategy)
    attackable: Callable[[Any], bool] = field(default=lambda spec: True)

    @property
    def fitted(self) -> bool:
        """Whether its variants shape the common in- vs out-of-distribution line of a shift: the papers' families
        only (their finding is about them). The others (zero-filled, CG-SENSE; a family added later sets
        ``in_papers=False``) get residuals against that line and take no part in it."""
        return self.in_papers


REGISTRY: tuple[Family, ...] = (
    Family("zero_filled", _no_settings, "ZeroFilled", "zero-filled", "tab:gray",
           "RSS of the zero-filled coil images: the baseline every method must beat",
           reads_maps=lambda spec: False, in_papers=False),
    Family("l1", specs.L1Spec.from_config, "L1Wavelet", "ℓ1", "tab:blue",
           "ℓ1-wavelet sparse recovery (FISTA through the ESPIRiT maps)", recon_minutes=60, attack_minutes=240,
           papers_psnr=26.7),
    Family("cgsense", specs.CGSenseSpec.from_config, "CGSense", "CG-SENSE", "tab:purple",
           "CG-SENSE with Tikhonov regularisation (a standard parallel-imaging baseline)",
           in_papers=False, recon_minutes=30, attack_minutes=120),
    Family("convdecoder", specs.ConvDecoderSpec.from_config, "ConvDecoderMethod", "ConvDecoder", "tab:green",
           "un-trained ConvDecoder fitted to each slice", seeded=True, gpu=True, recon_minutes=240,
           attack_minutes=480, papers_psnr=30.5),
    trained_family("unet", specs.UnetSpec, "unet:NETWORK", "Trained", "U-Net", "tab:orange", "end-to-end U-Net (fastMRI)",
             gpu=True, ttt_lr=1e-5, papers_psnr=30.3),
    trained_family("varnet", specs.VarNetSpec, "varnet:NETWORK", "Trained", "VarNet", "tab:red",
             "end-to-end variational network (fastMRI)", gpu=True, ttt_lr=1e-4, papers_psnr=35.7),
    # a class from the user's own file (robustcs.external, docs/own_method.md): untrained, its own shift group
    Family("external", external.ExternalSpec.from_config, "external_method", "own method", "tab:brown",
           "the user's own method: a class in a Python file outside the library", reads_maps=lambda spec: spec.maps,
           in_papers=False, attackable=lambda spec: spec.attackable),
)

FAMILIES: dict[str, Family] = {f.name: f for f in REGISTRY}
NAMES: tuple[str, ...] = tuple(FAMILIES)
#: The papers' four families in display order (their findings are stated about these).
PAPER_FAMILIES: tuple[str, ...] = tuple(f.name for f in REGISTRY if f.in_papers)
#: Families whose variants shape the common line of the shift fits (the papers' four; the others get residuals only).
FIT_GROUPS: tuple[str, ...] = tuple(f.name for f in REGISTRY if f.fitted)
#: The network spec class of each trained family.
NETWORK_SPECS: dict[str, type] = {f.name: f.network_spec for f in REGISTRY if f.trained}
#: The study's test-time-training learning rate of each family that has one.
STUDY_LR: dict[str, float] = {f.name: f.ttt_lr for f in REGISTRY if f.ttt_lr is not None}


def family(name: str) -> Family:
    """The family called ``name``; a ValueError listing the known ones otherwise."""
    try:
        return FAMILIES[name]
    except KeyError:
        raise ValueError(f"unknown family {name!r}; expected one of {NAMES}") from None


def names(**flags: bool) -> tuple[str, ...]:
    """Family names, in display order, whose boolean fields equal ``flags`` (e.g. ``names(trained=True)``)."""
    return tuple(f.name for f in REGISTRY if all(getattr(f, k) == v for k, v in flags.items()))


def rank(name: str) -> int:
    """Display position of a family (unknown names after every known one)."""
    return NAMES.index(name) if name in FAMILIES else len(NAMES)


def colour(name: str) -> str:
    return FAMILIES[name].colour if name in FAMILIES else "black"


def is_baseline(name: str) -> bool:
    """A known family outside the common line of the shift fits (drawn hollow in the figures)."""
    return name in FAMILIES and not FAMILIES[name].fitted


def spec_from_config(cfg: dict) -> specs.Spec:
    """A trained family's network spec from a model config (``cfg["family"]`` picks the class); ValueError
    naming the key for a bad family, unknown keys and bad values."""
    if not isinstance(cfg, dict):
        raise ValueError(f"model config must be a mapping, got {type(cfg).__name__}")
    name = cfg.get("family")
    trained = _network_specs()
    if name not in trained:
        raise ValueError(f"family: expected one of {tuple(trained)}, got {name!r}")
    return specs.network_spec_from_config(trained[name], name, cfg)


def _network_specs() -> dict[str, type]:
    """The spec class of each trained family, read from :data:`FAMILIES` (where a test may register one)."""
    return {f.name: f.network_spec for f in FAMILIES.values() if f.trained}


def family_of(spec: specs.Spec) -> str:
    """The trained family whose spec class ``spec`` is."""
    for name, cls in _network_specs().items():
        if type(spec) is cls:
            return name
    raise TypeError(f"not a model spec: {spec!r}")


def variant_label(method: str, family_name: str) -> str:
    """A variant's display name in figures: its family's label and the rest of its name as settings, e.g.
    ``cd_c8_l3_i60`` of the ConvDecoder -> "ConvDecoder (c8, l3, i60)", ``l1_lam1e4`` -> "ℓ1 (lam1e4)". The name's
    first part is dropped when it names the family (the family's name or label, a prefix of either, or the
    label's capitals: ``cd`` for ConvDecoder); a variant named as its family is the label alone."""
    fam = FAMILIES.get(family_name)
    if fam is None:
        return method
    label = fam.label
    if family_name == "external":  # the user's own class: its variant's name says what it is
        return method
    if method == family_name:
        return label
    parts = [p for p in method.split("_") if p]
    plain = "".join(c for c in label.lower() if c.isalnum())
    initials = "".join(c for c in label if c.isupper()).lower()
    if len(parts) > 1 and (family_name.startswith(parts[0]) or plain.startswith(parts[0]) or parts[0] == initials):
        parts = parts[1:]
    return f"{label} ({', '.join(parts)})"
