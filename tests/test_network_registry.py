"""Trained networks behind the registry: no library module outside a network's own branches on a spec class, each
family's network object is what the generic code reaches, and a third network kind defined here trains, is saved,
loads and reconstructs through the generic code with nothing but its registry entry."""

import ast
from dataclasses import dataclass

import h5py
import numpy as np
import pytest
import torch

from robustcs import families, specs
from robustcs import training as T
from robustcs.fastmri_io import center_crop
from robustcs.ingest import build_manifest, read_manifest
from robustcs.masks import MaskSpec, make_mask
from robustcs.methods import load_method
from robustcs.netspecs import NetworkSpec
from robustcs.networks import Network, build_model, coil_mask, forward, network_of, save_model, spec_from_config
from robustcs.physics import rss, zero_filled
from robustcs.recon_io import SliceInput
from robustcs.specs import needs_maps

from conftest import ROOT

LIBRARY = ROOT / "workflow" / "robustcs"
SCRIPTS = ROOT / "workflow" / "scripts"
SEED = 5
MASK = MaskSpec(type="random", acceleration=4, center_fraction=0.16)
DEMO = {"size": 32, "coils": 3, "noise": 0.01, "slices_per_volume": 2, "volumes": {"train": 2, "val": 1, "test": 1}}
#: A spec class a module may name in isinstance besides the networks' own: the ConvDecoder solver's type guard.
OWN_MODULES = {"ConvDecoderSpec": {"convdecoder"}}

pytestmark = pytest.mark.usefixtures("one_torch_thread")


# ------------------------------------------------------------------------------------------ no isinstance branch


def spec_class_names() -> set[str]:
    """Every class robustcs.specs and robustcs.netspecs define, and the names bound to a union of them."""
    names = set()
    for module in ("specs", "netspecs"):
        tree = ast.parse((LIBRARY / f"{module}.py").read_text())
        names |= {n.name for n in tree.body if isinstance(n, ast.ClassDef)}
        names |= {t.id for n in tree.body if isinstance(n, ast.Assign) and isinstance(n.value, (ast.BinOp, ast.Name))
                  for t in n.targets if isinstance(t, ast.Name) and t.id[0].isupper()}
    return names


def _named(node: ast.AST) -> list[str]:
    """The class names an isinstance's second argument (or a type comparison) names: X, mod.X, (X, Y)."""
    if isinstance(node, ast.Tuple):
        return [n for e in node.elts for n in _named(e)]
    if isinstance(node, ast.BinOp):
        return _named(node.left) + _named(node.right)
    if isinstance(node, ast.Attribute):
        return [node.attr]
    return [node.id] if isinstance(node, ast.Name) else []


def spec_branches(source: str, classes: set[str]) -> list[tuple[int, str]]:
    """(line, class) of every isinstance/issubclass on a spec class, and of every ``type(x) is/== SpecClass``."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("isinstance",
                                                                                                "issubclass"):
            found += [(node.lineno, n) for n in _named(node.args[1]) if n in classes] if len(node.args) == 2 else []
        if isinstance(node, ast.Compare) and any(isinstance(op, (ast.Is, ast.Eq, ast.IsNot, ast.NotEq))
                                                 for op in node.ops):
            sides = [node.left, *node.comparators]
            if any(isinstance(s, ast.Call) and isinstance(s.func, ast.Name) and s.func.id == "type" for s in sides):
                found += [(node.lineno, n) for s in sides for n in _named(s) if n in classes]
    return sorted(found)


def network_modules() -> dict[str, set[str]]:
    """Spec class name -> the modules allowed to branch on it: each trained family's network module."""
    owners = {name: set(mods) for name, mods in OWN_MODULES.items()}
    for fam in families.REGISTRY:
        if fam.trained and isinstance(fam.network, str):
            owners.setdefault(fam.network_spec.__name__, set()).add(fam.network.split(":")[0])
    return owners


def test_the_checker_finds_spec_branches():
    classes = {"UnetSpec", "VarNetSpec", "Spec"}
    src = ("if isinstance(spec, UnetSpec) and isinstance(x, int): pass\n"
           "ok = isinstance(s, (int, specs.VarNetSpec))\n"
           "same = type(spec) is UnetSpec\n"
           "fine = isinstance(s, dict) or type(s) is int or s == UnetSpec.chans\n")
    assert spec_branches(src, classes) == [(1, "UnetSpec"), (2, "VarNetSpec"), (3, "UnetSpec")]
    assert {"UnetSpec", "VarNetSpec", "ConvDecoderSpec", "NetworkSpec", "Spec"} <= spec_class_names()


def test_no_module_branches_on_a_spec_class_outside_its_network():
    classes, owners = spec_class_names(), network_modules()
    assert owners["UnetSpec"] == {"unet"} and owners["VarNetSpec"] == {"varnet"}
    offenders = []
    for path in sorted([*LIBRARY.glob("*.py"), *SCRIPTS.glob("*.py")]):
        for line, name in spec_branches(path.read_text(), classes):
            if path.parent != LIBRARY or path.stem not in owners.get(name, ()):
                offenders.append(f"{path.relative_to(ROOT)}:{line} branches on {name}")
    assert not offenders, "ask the spec or its network (robustcs.netspecs, robustcs.networks.network_of): " + \
        "; ".join(offenders)


# ------------------------------------------------------------------------------------------ dispatch


@pytest.mark.parametrize("cfg, kind, optimiser, maps, kspace", [
    ({"family": "unet"}, "UnetNetwork", torch.optim.RMSprop, False, False),
    ({"family": "unet", "input": "complex", "optimizer": "adam"}, "UnetNetwork", torch.optim.Adam, True, True),
    ({"family": "varnet"}, "VarNetNetwork", torch.optim.Adam, False, True),
    ({"family": "varnet", "maps": "espirit"}, "VarNetNetwork", torch.optim.Adam, True, True),
], ids=["unet", "unet_complex", "varnet", "varnet_espirit"])
def test_each_family_reaches_its_own_network(cfg, kind, optimiser, maps, kspace):
    small = {"unet": {"chans": 2, "pools": 1}, "varnet": {"cascades": 1, "chans": 2, "pools": 1, "sens_chans": 2,
                                                          "sens_pools": 1}}[cfg["family"]]
    spec = spec_from_config({**cfg, **small})
    network = network_of(spec)
    assert type(network).__name__ == kind and network.__module__ == f"robustcs.{cfg['family']}"
    assert isinstance(T.make_optimizer(spec, build_model(spec)), optimiser)
    assert (needs_maps(spec), spec.kspace_output()) == (maps, kspace)
    assert families.family(cfg["family"]).reads_maps(spec) == maps


def test_a_spec_of_no_family_is_refused():
    with pytest.raises(TypeError, match="not a model spec"):
        network_of(ToySpec())


# ------------------------------------------------------------------------------------------ a third kind


@dataclass(frozen=True)
class ToySpec(NetworkSpec):
    """A residual two-layer CNN on the zero-filled RSS image."""

    chans: int = 4
    epochs: int = 3
    lr: float = 3e-3
    lr_step: int = 40
    lr_gamma: float = 0.1
    batch_size: int = 2
    loss: str = "l1"
    train_fraction: float = 1.0
    self_supervised: float = 0.0
    max_train_slices: int | None = None
    max_val_slices: int | None = None
    precision: str = "fp32"


def zero_filled_rss(kspace, mask, target_shape):
    return center_crop(rss(zero_filled(kspace, coil_mask(mask))), tuple(target_shape))


class ToyNetwork(Network):
    def build(self, spec):
        return torch.nn.Sequential(torch.nn.Conv2d(1, spec.chans, 3, padding=1), torch.nn.ReLU(),
                                   torch.nn.Conv2d(spec.chans, 1, 3, padding=1))

    def forward(self, model, spec, kspace, mask, target_shape, num_low_frequencies, sens, predict_kspace):
        if predict_kspace:
            raise ValueError("the toy network has no k-space prediction")
        zf = zero_filled_rss(kspace, mask, target_shape)
        return zf + model(zf.unsqueeze(1)).squeeze(1), None


@pytest.fixture
def toy_family(monkeypatch):
    """The toy kind registered as family ``toy``: its registry entry is the only change."""
    entry = families.trained_family("toy", ToySpec, ToyNetwork(), "Trained", "toy", "black", "a test's toy CNN")
    monkeypatch.setitem(families.FAMILIES, "toy", entry)
    return entry


@pytest.fixture(scope="module")
def manifest(tmp_path_factory):
    work = tmp_path_factory.mktemp("registry_data")
    csv = work / "manifest.csv"
    build_manifest("tiny", {"kind": "demo", "demo": DEMO}, csv, work, work / "downloads", seed=SEED)
    return read_manifest(csv)


def _test_item(manifest) -> SliceInput:
    row = manifest[manifest["split"] == "test"].iloc[0]
    with h5py.File(row["path"]) as f:
        kspace, target = f["kspace"][int(row["slice"])], f["reconstruction_rss"][int(row["slice"])]
    mask, num_low, _ = make_mask(MASK, kspace.shape[-1], 3)
    return SliceInput(row["stem"], int(row["slice"]), kspace.astype(np.complex64), mask.astype(np.float32), num_low,
                      None, target.astype(np.float32), float(row["max"]))


def test_a_registered_third_network_trains_and_reconstructs(toy_family, manifest, tmp_path):
    spec = spec_from_config({"family": "toy", "chans": 3, "train_on": "tiny"})  # parsed by the generic spec checks
    assert spec == ToySpec(chans=3) and not needs_maps(spec)
    with pytest.raises(ValueError, match=r"toy model: unknown key\(s\) \['depth'\]"):
        spec_from_config({"family": "toy", "depth": 2})
    model, hist = T.train(spec, manifest, MASK, SEED, tmp_path / "ckpt", torch.device("cpu"))
    assert hist["epoch"].tolist() == [0, 1, 2] and np.isfinite(hist[["train_loss", "val_loss"]].to_numpy()).all()
    assert hist["train_loss"].iloc[-1] < hist["train_loss"].iloc[0]
    untrained = build_model(spec)
    assert any(not torch.equal(a, b) for a, b in zip(model.state_dict().values(), untrained.state_dict().values()))

    save_model(tmp_path / "toy.pt", spec, model, hist)
    method = load_method("toy_a", {"family": "toy"}, "cpu", model_path=tmp_path / "toy.pt")
    assert method.family == "toy" and method.spec == spec
    item = _test_item(manifest)
    magnitude, image = method.reconstruct(item)
    assert image is None and magnitude.shape == item.target.shape
    k, m = torch.from_numpy(item.kspace * item.mask)[None], torch.from_numpy(item.mask)[None]
    with torch.no_grad():
        expected = forward(model.eval(), spec, k, m, item.target_shape)[0][0]
        zf = zero_filled_rss(k, m, item.target_shape)[0]
    np.testing.assert_allclose(magnitude, expected.numpy(), rtol=1e-5, atol=1e-6)
    assert not np.allclose(magnitude, zf.numpy())  # the trained residual is part of the output

    # resuming the finished run trains nothing and gives the same weights
    again, hist2 = T.train(spec, manifest, MASK, SEED, tmp_path / "ckpt", torch.device("cpu"))
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), again.state_dict().values()))
    assert hist2["train_loss"].tolist() == hist["train_loss"].tolist()


def test_a_trained_family_without_a_network_is_named(monkeypatch):
    entry = families.trained_family("toy", ToySpec, None, "Trained", "toy", "black", "a test's toy CNN")
    monkeypatch.setitem(families.FAMILIES, "toy", entry)
    with pytest.raises(TypeError, match="trained family 'toy' names no network"):
        build_model(ToySpec())
