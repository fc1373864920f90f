"""The method families: the one place that says what each family is.

A family is a kind of reconstruction method (ℓ1-wavelet, ConvDecoder, U-Net, ...); a config variant is one
configured member (``methods: {l1_a: {family: l1, lam: 0.01}}``). Everything the workflow needs to know
about a family is a field of its :class:`Family` here: how its settings are parsed and checked, how a
:class:`~robustcs.methods.Method` is built, whether it is trained, reads ESPIRiT maps, is seeded or uses a
GPU, how long its jobs may run, its learning rate for test-time training, its colour and its place in every
table. Rules, scripts, tables and plots ask this registry; no other module branches on a family's name.

To add a family: write its solver and a ``Method`` subclass (robustcs.methods), then one ``Family(...)``
entry in :data:`REGISTRY` below (its position is its display order). Its settings then validate at
start-up, its variants reconstruct, evaluate, get attacked and probed, and appear in every table.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable


def _parser(cls: str) -> Callable[[dict], Any]:
    """The settings parser of a spec class in robustcs.specs (a module without torch: the start-up checks run
    where only Snakemake is installed)."""

    def parse(settings: dict) -> Any:
        from . import specs

        return getattr(specs, cls).from_config(settings)

    return parse


def _network_spec(settings: dict) -> Any:
    from .specs import spec_from_config

    return spec_from_config(settings)


def _network_maps(spec: Any) -> bool:
    from .specs import needs_maps

    return needs_maps(spec)


def _network_kspace(spec: Any) -> bool:
    from .specs import has_kspace_output

    return has_kspace_output(spec)


def _no_settings(settings: dict) -> None:
    extra = sorted(set(settings) - {"family"})
    if extra:
        raise ValueError(f"zero_filled takes no settings, got {extra}")


@dataclass(frozen=True)
class Family:
    name: str
    #: settings (the variant's block with its ``family`` key, without workflow keys) -> spec; ValueError if bad
    parse: Callable[[dict], Any]
    #: class name in robustcs.methods; built as cls(name, device, settings=..., model_path=..., seed=...)
    method: str
    label: str  # display name in prose
    colour: str
    description: str
    #: spec -> whether a variant reads the ESPIRiT maps of its data
    reads_maps: Callable[[Any], bool] = field(default=lambda spec: True)
    trained: bool = False
    #: spec -> whether a trained variant predicts k-space (what test-time training needs)
    kspace_output: Callable[[Any], bool] = field(default=lambda spec: False)
    tuned: bool = False  # tuned on the source's validation split unless config tuning.families says otherwise
    seeded: bool = False  # its reconstruction is random (seeded per slice from the config seed)
    gpu: bool = False  # its jobs ask for the configured GPUs
    in_papers: bool = True  # one of the papers' four families (their findings are about these)
    fitted: bool = True  # a group of its own in the in- vs out-of-distribution fits (a baseline is not)
    recon_minutes: int = 30  # runtime limit of a reconstruction job (one volume), minutes
    attack_minutes: int = 60  # runtime limit of an attack job (one volume)
    ttt_lr: float | None = None  # the study's test-time-training learning rate (trained families)
    network_spec: str | None = None  # a trained family's spec class in robustcs.specs (what its checkpoints store)
    papers_psnr: float | None = None  # clean PSNR (dB) the ICML paper reports (one knee slice, 4x)


REGISTRY: tuple[Family, ...] = (
    Family("zero_filled", _no_settings, "ZeroFilled", "zero-filled", "tab:gray",
           "RSS of the zero-filled coil images: the baseline every method must beat",
           reads_maps=lambda spec: False, in_papers=False, fitted=False),
    Family("l1", _parser("L1Spec"), "L1Wavelet", "ℓ1", "tab:blue",
           "ℓ1-wavelet sparse recovery (FISTA through the ESPIRiT maps)", tuned=True, recon_minutes=60, attack_minutes=240,
           papers_psnr=26.7),
    Family("cgsense", _parser("CGSenseSpec"), "CGSense", "CG-SENSE", "tab:purple",
           "CG-SENSE with Tikhonov regularisation (a standard parallel-imaging baseline)",
           in_papers=False, recon_minutes=30, attack_minutes=120),
    Family("convdecoder", _parser("ConvDecoderSpec"), "ConvDecoderMethod", "ConvDecoder", "tab:green",
           "un-trained ConvDecoder fitted to each slice", seeded=True, gpu=True, recon_minutes=240,
           attack_minutes=480, papers_psnr=30.5),
    Family("unet", _network_spec, "Trained", "U-Net", "tab:orange", "end-to-end U-Net (fastMRI)",
           reads_maps=_network_maps, trained=True, kspace_output=_network_kspace, gpu=True, ttt_lr=1e-5,
           network_spec="UnetSpec", papers_psnr=30.3),
    Family("varnet", _network_spec, "Trained", "VarNet", "tab:red", "end-to-end variational network (fastMRI)",
           reads_maps=_network_maps, trained=True, kspace_output=_network_kspace, gpu=True, ttt_lr=1e-4,
           network_spec="VarNetSpec", papers_psnr=35.7),
)

FAMILIES: dict[str, Family] = {f.name: f for f in REGISTRY}
NAMES: tuple[str, ...] = tuple(FAMILIES)
#: The papers' four families in display order (their findings are stated about these).
PAPER_FAMILIES: tuple[str, ...] = tuple(f.name for f in REGISTRY if f.in_papers)
#: Families with a group of their own in the shift fits.
FIT_GROUPS: tuple[str, ...] = tuple(f.name for f in REGISTRY if f.fitted)


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
    """A known family outside the shift fits (drawn hollow in the figures)."""
    return name in FAMILIES and not FAMILIES[name].fitted
