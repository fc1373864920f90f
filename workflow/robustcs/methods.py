"""Every reconstruction method behind one interface, for the rules that reconstruct, attack and probe.

A :class:`Method` is built from a variant's config block (:func:`load_method`) and offers

``reconstruct(item, kspace=None)``
    the method run from scratch on one slice (``item`` a :class:`~robustcs.recon_io.SliceInput`);
    ``kspace`` [C, H, W] replaces the slice's own measurements (an attacked or re-simulated
    k-space; the mask is applied here). Returns (magnitude [>= h, >= w], complex image or None)
    as numpy arrays, the format :func:`~robustcs.recon_io.run_reconstruction` writes.
``differentiable(item)``
    a function y -> magnitude [h, w] (torch, centre-cropped to the reference) whose graph reaches
    the measured k-space y [C, H, W]: the adversarial attacks back-propagate through it. The
    ConvDecoder has none (its fit is attacked by the joint scheme of :mod:`robustcs.attacks`).
``attack_start(item, y)`` / ``attack(state, y, mask, radius, spec, seed)``
    the method's attack strategy (:func:`robustcs.attacks.attack_slices` calls them): the clean output
    and a state, then the perturbation of one budget. By default projected gradient ascent through
    ``differentiable``; the ConvDecoder attacks its fit jointly with its weights. With ``batches_slices``
    the item is a stack of slices (:func:`robustcs.recon_io.stack_slices`), one PGD batch for all of them.

Which class serves a family is the registry's business (:mod:`robustcs.families`).
"""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Callable

import numpy as np
import torch

from . import families
from .fastmri_io import center_crop
from .physics import MultiCoilOperator, as_complex_tensor, mask_tensor, rss, zero_filled
from .specs import CGSenseSpec, ConvDecoderSpec, L1Spec
from .recon_io import SliceInput
from .util import stable_seed


class Method:
    """One configured method variant (see the module docstring). Subclasses are built as
    ``cls(name, device, settings, model_path=..., seed=...)`` and take what they need."""

    family: str = ""  # the registry's name, set by load_method
    # forward() takes a stack of slices (recon_io.stack_slices) and treats its items independently, so the
    # attacks run several slices in one batch
    batches_slices: bool = True

    def __init__(self, name: str, device: torch.device, settings: dict | None = None, model_path: str | None = None,
                 seed: int = 0):
        self.name = name
        self.device = torch.device(device)

    def attrs(self) -> dict:
        """What a reconstruction file records about the method."""
        return {"method": self.name, "family": self.family}

    def measurements(self, item: SliceInput, kspace=None) -> torch.Tensor:
        """M·k for the slice's own k-space or a replacement, complex64 on the method's device."""
        k = item.kspace if kspace is None else kspace
        return mask_tensor(item.mask, self.device) * as_complex_tensor(k, self.device)

    def forward(self, item: SliceInput, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(magnitude on the full or cropped grid, complex image or None) of measured k-space y [C, H, W], or of
        a batch of them [E, C, H, W] (versions of the slice's measurements, each reconstructed on its own)."""
        raise NotImplementedError

    #: slices of one shape that :meth:`reconstruct_many` takes at once in a reconstruction job
    reconstruct_batch: int = 1

    def reconstruct_many(self, items: list[SliceInput], tqdm_file=None) -> list[tuple[np.ndarray, np.ndarray | None]]:
        """:meth:`reconstruct` of each slice's own k-space (a method with ``reconstruct_batch`` > 1 runs them
        together)."""
        return [self.reconstruct(item, tqdm_file=tqdm_file) for item in items]

    def reconstruct(self, item: SliceInput, kspace=None, tqdm_file=None) -> tuple[np.ndarray, np.ndarray | None]:
        with torch.no_grad():
            magnitude, image = self.forward(item, self.measurements(item, kspace))
        return magnitude.detach().cpu().numpy(), None if image is None else image.detach().cpu().numpy()

    def differentiable(self, item: SliceInput) -> Callable[[torch.Tensor], torch.Tensor]:
        """Ψ: measured k-space [..., C, H, W] -> magnitude cropped to the reference [..., h, w]."""

        def psi(y: torch.Tensor) -> torch.Tensor:
            magnitude, _ = self.forward(item, y)
            return center_crop(magnitude, item.target_shape)

        return psi

    def attack_start(self, item: SliceInput, y: torch.Tensor, tqdm_file=None) -> tuple[np.ndarray, object]:
        """(clean magnitude as numpy, state for :meth:`attack`) of measured k-space y."""
        psi = self.differentiable(item)
        with torch.no_grad():
            clean = psi(y)
        return clean.cpu().numpy(), (psi, clean)

    def attack(self, state, y: torch.Tensor, mask: torch.Tensor, radii: list[float], spec, seeds: list[int],
               tqdm_file=None, desc: str = ""):
        """Per radius, the perturbation of norm <= radius that most changes the output (AttackResults): projected
        gradient ascent on every budget at once, one batch through :meth:`forward`."""
        from .attacks import pgd_attacks

        psi, clean = state
        return pgd_attacks(psi, y, mask, radii, spec, seeds, tqdm_file, desc, clean=clean)

    def operator(self, item: SliceInput) -> MultiCoilOperator:
        if item.sens is None:
            raise ValueError(f"{self.family} method {self.name!r} needs ESPIRiT maps for {item.stem} slice {item.slice}")
        return MultiCoilOperator(item.mask, as_complex_tensor(item.sens, self.device))


class ZeroFilled(Method):
    def forward(self, item, y):
        return rss(zero_filled(y, mask_tensor(item.mask, y.device))), None


class ThroughMaps(Method):
    """A solver that reconstructs one image x through the ESPIRiT maps, scored (like the reference) as the RSS
    of its data-consistent coil images; subclasses name their spec class and their solver ``solve(y, op, spec)``
    as "module:function" of robustcs, imported on first use (a job imports only its own solver)."""

    spec_class: type
    solver: str

    @property
    def batches_slices(self) -> bool:  # the power method estimates one step for a whole batch
        return getattr(self.spec, "power_iterations", 0) == 0

    def __init__(self, name, device, settings: dict, **_):
        super().__init__(name, device)
        self.spec = self.spec_class.from_config(settings)

    def attrs(self):
        return {**super().attrs(), "spec": self.spec.as_dict()}

    def forward(self, item, y):
        import importlib

        module, function = self.solver.split(":")
        solve = getattr(importlib.import_module(f"robustcs.{module}"), function)
        op = self.operator(item)
        x = solve(y, op, self.spec)
        return rss(op.data_consistent(x, y)), x


class L1Wavelet(ThroughMaps):
    spec_class, solver = L1Spec, "l1wavelet:l1_wavelet_recon"


class CGSense(ThroughMaps):
    spec_class, solver = CGSenseSpec, "cgsense:cg_sense_recon"


class ConvDecoderMethod(Method):
    batches_slices = False  # one fit per slice; attacked by the joint scheme, slice by slice

    def __init__(self, name, device, settings: dict, seed: int = 0, **_):
        super().__init__(name, device)
        self.spec = ConvDecoderSpec.from_config(settings)
        self.seed = int(seed)

    def attrs(self):
        return {**super().attrs(), "spec": asdict(self.spec)}

    def slice_seed(self, item: SliceInput) -> int:
        """The fit's seed: the same for a slice's clean, attacked and featured reconstructions."""
        return stable_seed(self.seed, self.name, item.stem, item.slice)

    def fit(self, item: SliceInput, y: torch.Tensor, tqdm_file=None, keep_state: bool = False):
        """:func:`~robustcs.convdecoder.fit_convdecoder` on measured k-space y with the slice's maps and seed."""
        if item.sens is None and self.spec.mode == "sense":
            self.operator(item)  # raises the error naming the variant and slice
        from .convdecoder import fit_convdecoder

        sens = None if item.sens is None else as_complex_tensor(item.sens, self.device)
        return fit_convdecoder(
            y, mask_tensor(item.mask, self.device), sens, self.spec, seed=self.slice_seed(item), tqdm_file=tqdm_file,
            desc=f"ConvDecoder {item.stem}[{item.slice}]", keep_state=keep_state,
        )

    @property
    def reconstruct_batch(self) -> int:
        return self.spec.fit_batch

    def reconstruct(self, item, kspace=None, tqdm_file=None):
        return self._outputs(self.fit(item, self.measurements(item, kspace), tqdm_file))

    @staticmethod
    def _outputs(result) -> tuple[np.ndarray, np.ndarray | None]:
        image = None if result.image is None else result.image.detach().cpu().numpy()
        return result.magnitude.detach().cpu().numpy(), image

    def reconstruct_many(self, items, tqdm_file=None):
        """The slices' own k-space fitted together (:func:`robustcs.convdecoder_batch.fit_convdecoders`, each slice
        with its own seed: its lone fit up to float rounding); the slices share one k-space shape."""
        if len(items) == 1:
            return [self.reconstruct(items[0], tqdm_file=tqdm_file)]
        from .convdecoder_batch import fit_convdecoders

        for item in items:
            if item.sens is None and self.spec.mode == "sense":
                self.operator(item)  # raises the error naming the variant and slice
        slices = [(self.measurements(item), mask_tensor(item.mask, self.device),
                   None if item.sens is None else as_complex_tensor(item.sens, self.device)) for item in items]
        first = items[0]
        results = fit_convdecoders(slices, self.spec, [self.slice_seed(item) for item in items], tqdm_file,
                                   desc=f"ConvDecoder {first.stem}[{first.slice}..]")
        return [self._outputs(result) for result in results]

    def differentiable(self, item):
        raise NotImplementedError("the ConvDecoder fit is attacked by the joint scheme (robustcs.attacks)")

    def attack_start(self, item, y, tqdm_file=None):
        """The clean fit, whose network state is where every joint attack starts."""
        fit = self.fit(item, y, tqdm_file, keep_state=True)
        return fit.magnitude.cpu().numpy(), fit.state

    def attack(self, state, y, mask, radii, spec, seeds, tqdm_file=None, desc=""):
        """The joint scheme, one budget after the other (each continues the same clean fit)."""
        from .attacks import convdecoder_joint_attack

        return [convdecoder_joint_attack(state, y, radius, spec, tqdm_file, desc) for radius in radii]


class Trained(Method):
    """A trained network (U-Net, VarNet, any trained family's kind) loaded from its model file (weights_only)."""

    def __init__(self, name, device, settings: dict | None = None, model_path: str | None = None, **_):
        super().__init__(name, device)
        from .networks import family_of, load_model, needs_maps

        if model_path is None:
            raise ValueError(f"method {name!r} ({(settings or {}).get('family')}) needs its trained model file")

        self.spec, self.model = load_model(model_path, self.device)
        self.needs_maps = needs_maps(self.spec)
        self.model.eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.family = family_of(self.spec)
        self.model_path = str(model_path)
        if settings and settings.get("family") not in (None, self.family):
            raise ValueError(f"method {name!r} is configured as {settings['family']} but {model_path} holds a "
                             f"{self.family}")

    def attrs(self):
        return {**super().attrs(), "model": self.model_path}

    def forward(self, item, y):
        from .networks import reconstruct

        batch = y if y.ndim == 4 else y[None]
        sens = None
        if self.needs_maps:  # raises the error naming the variant and slice without maps
            sens = self.operator(item).sens
            sens = sens if sens.ndim == 4 else sens[None].expand(batch.shape[0], *sens.shape)
        out = reconstruct(self.model, self.spec, batch, mask_tensor(item.mask, y.device), item.target_shape,
                          item.num_low_frequencies, sens)
        return (out if y.ndim == 4 else out[0]), None


def external_method(name: str, device, settings: dict, seed: int = 0, **_) -> Method:
    """A user's own method (robustcs.external, docs/own_method.md): the class its file defines, checked for the
    Method interface and built as ``cls(name, device, settings, seed=seed)`` with its own settings."""
    from .external import ExternalSpec, load_class

    try:
        spec = ExternalSpec.from_config(settings)
        cls = load_class(spec)
    except ValueError as err:
        raise ValueError(f"method {name!r}: {err}") from None
    where = f"method {name!r}: class {spec.name} in {spec.path}"
    missing = [m for m in ("reconstruct", "differentiable", "attack_start", "attack", "attrs") if
               not callable(getattr(cls, m, None))]
    if missing:
        raise ValueError(f"{where} lacks the Method interface {missing}: subclass robustcs.methods.Method "
                         "(docs/own_method.md)")
    if issubclass(cls, Method) and cls.forward is Method.forward and cls.reconstruct is Method.reconstruct:
        raise ValueError(f"{where} lacks the Method interface: it overrides neither forward nor reconstruct")
    method = cls(name, device, spec.settings, seed=seed)
    if not isinstance(getattr(method, "device", None), torch.device):
        raise ValueError(f"{where}: its instance has no torch.device 'device' (call Method.__init__)")
    return method


def load_method(
    name: str,
    settings: dict | str,
    device: torch.device | str = "cpu",
    model_path: str | None = None,
    seed: int = 0,
) -> Method:
    """The method variant ``name`` from its config block (a dict or its canonical JSON text), built by the
    class its family names in the registry. Trained families need ``model_path`` (a trained variant's family
    may be left out of ``settings``: the model file says it); the ConvDecoder's fits are seeded from ``seed``.
    """
    if isinstance(settings, str):
        settings = json.loads(settings)
    try:
        fam = families.family(settings.get("family"))
    except ValueError as err:
        raise ValueError(f"method {name!r}: {err}") from None
    rest = {k: v for k, v in settings.items() if k != "family"}
    cls = globals()[fam.method]  # a Method class, or a function building one (external_method)
    if fam.trained:  # the model file says which network it holds (checked against the config's family)
        return cls(name, device, settings, model_path=model_path, seed=seed)
    method = cls(name, device, rest, model_path=model_path, seed=seed)
    method.family = fam.name
    return method
