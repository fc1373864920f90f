"""A user's own method from a file outside the library (robustcs.external, docs/own_method.md): the start-up
parser's and the job-side loader's errors, the rule params' file hash, the study's refusals (attacks without a
differentiable forward, TTT, training), and the shipped example docs/examples/tv_recon.py (a correct TV solver
that beats zero-filled and back-propagates for the attacks)."""

import copy
import json
import re

import numpy as np
import pytest
import torch
import yaml

from robustcs import families
from robustcs.demo import DemoSpec, simulate_volume
from robustcs.external import ExternalSpec
from robustcs.fastmri_io import rss_target
from robustcs.masks import MaskSpec, file_mask
from robustcs.methods import load_method
from robustcs.metrics import slice_metrics
from robustcs.recon_io import SliceInput
from robustcs.study import Study

from conftest import ROOT, TINY_CONFIG

EXAMPLE = ROOT / "docs" / "examples" / "tv_recon.py"
TV = f"{EXAMPLE}:TVRecon"

GOOD = '''
from robustcs.methods import Method
from robustcs.physics import mask_tensor, rss, zero_filled


class Base(Method):
    def forward(self, item, y):
        return rss(zero_filled(y, mask_tensor(item.mask, y.device))), None


class Mine(Base):
    def __init__(self, name, device, settings=None, seed=0, **_):
        super().__init__(name, device)
        self.settings = settings


class OnlyRecon:
    def reconstruct(self, item, kspace=None, tqdm_file=None):
        return None, None
'''


def _write(tmp_path, text=GOOD, name="mine.py"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_the_start_up_side_imports_only_the_standard_library():
    # the registry imports it, and Snakemake parses the workflow where only Snakemake is installed
    import sys

    from test_structure import MODULES, _imports

    own, other = _imports(MODULES["external"])
    assert not own and other <= set(sys.stdlib_module_names) | {"__future__"}, (own, other)


def test_spec_reads_class_settings_and_hash_without_running_the_file(tmp_path):
    path = _write(tmp_path, GOOD + "\nraise SystemExit('the start-up checks must not run this')\n")
    spec = ExternalSpec.from_config({"family": "external", "class": f"{path}:Mine", "alpha": 2, "maps": False})
    assert spec.name == "Mine" and spec.settings == {"alpha": 2} and not spec.maps
    assert spec.attackable  # forward from its base class in the same file
    assert len(spec.sha256) == 64 and spec.stamp() == {"sha256": spec.sha256}
    only = ExternalSpec.from_config({"class": f"{path}:OnlyRecon"})
    assert only.maps and not only.attackable


@pytest.mark.parametrize("target, words", [
    (None, "class: expected 'path/to/file.py:ClassName'"),
    ("mine.py", "class: expected 'path/to/file.py:ClassName'"),
    ("{dir}/mine.py:not a name", "class: expected"),
    ("{dir}/absent.py:Mine", "absent.py does not exist"),
    ("{dir}/mine.py:Other", "defines no top-level class 'Other'"),
    ("{dir}/lacking.py:Lacking", "lacks the Method interface: it defines neither forward nor reconstruct"),
    ("{dir}/broken.py:Mine", "broken.py is not valid Python (line 1"),
])
def test_spec_errors_name_the_key_file_and_class(tmp_path, target, words):
    _write(tmp_path)
    _write(tmp_path, "class Lacking:\n    def helper(self):\n        pass\n", "lacking.py")
    _write(tmp_path, "class Mine(:\n", "broken.py")
    cfg = {"family": "external"} if target is None else {"family": "external", "class": target.format(dir=tmp_path)}
    with pytest.raises(ValueError, match=words.replace("(", r"\(").replace(".", r"\.")):
        ExternalSpec.from_config(cfg)
    with pytest.raises(ValueError, match="maps: expected true or false"):
        ExternalSpec.from_config({"class": f"{tmp_path}/mine.py:Mine", "maps": "yes"})


def test_loader_builds_the_class_with_its_settings_and_refuses_a_changed_file(tmp_path):
    path = _write(tmp_path)
    settings = {"family": "external", "class": f"{path}:Mine", "alpha": 2}
    params = {**settings, **ExternalSpec.from_config(settings).stamp()}  # what the rule passes
    method = load_method("mine", json.dumps(params), "cpu")
    assert type(method).__name__ == "Mine" and method.family == "external" and method.settings == {"alpha": 2}
    path.write_text(GOOD + "\n# edited\n")
    with pytest.raises(ValueError, match="method 'mine': class: .*mine.py changed after the workflow started"):
        load_method("mine", params, "cpu")
    with pytest.raises(ValueError, match=r"lacks the Method interface \['differentiable', 'attack_start'"):
        load_method("only", {"family": "external", "class": f"{path}:OnlyRecon"}, "cpu")


def test_only_top_level_classes_pass_and_the_job_finds_what_running_the_file_defines(tmp_path):
    path = _write(tmp_path, "if False:\n    class Ghost:\n        def forward(self, item, y):\n            pass\n"
                            "class Gone:\n    def forward(self, item, y):\n        pass\n\n\ndel Gone\n")
    with pytest.raises(ValueError, match="defines no top-level class 'Ghost'"):
        ExternalSpec.from_config({"class": f"{path}:Ghost"})
    assert ExternalSpec.from_config({"class": f"{path}:Gone"}).attackable  # its text defines it ...
    with pytest.raises(ValueError, match=r"method 'gone': class: .*mine.py defines no class 'Gone'"):  # ... running it does not
        load_method("gone", {"family": "external", "class": f"{path}:Gone"}, "cpu")


# ---- the study ---------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny():
    return yaml.safe_load(TINY_CONFIG.read_text())


def _study(tiny, **methods):
    cfg = copy.deepcopy(tiny)
    cfg["methods"].update(methods)
    return cfg


def test_study_runs_an_external_variant_as_its_own_untrained_unfitted_group(tiny, tmp_path):
    path = _write(tmp_path)
    only = {"family": "external", "class": f"{path}:OnlyRecon"}
    study = Study.from_config(_study(tiny, mine={"family": "external", "class": f"{path}:Mine", "a": 1}, only=only))
    fam = study.family("mine")
    assert fam.name == "external" and not fam.trained and not fam.fitted and "external" not in families.FIT_GROUPS
    assert families.is_baseline("external") and families.variant_label("my_tv", "external") == "my_tv"
    assert "mine" in study.evaluated_methods() and "mine" not in study.trained_methods()
    # the attacks leave out by default what cannot be attacked; the features take both
    assert "mine" in study.experiment("attacks")["methods"] and "only" not in study.experiment("attacks")["methods"]
    assert {"mine", "only"} <= set(study.experiment("features")["methods"])
    params = study.method_params("mine")
    assert params == {"family": "external", "class": f"{path}:Mine", "a": 1, "sha256": study.spec("mine").sha256}
    # without an external variant nothing changes: the same params text (no rerun) and the same attacked variants
    plain = Study.from_config(copy.deepcopy(tiny))
    assert all(plain.method_params(m) == plain.variant_settings(m) for m in plain.methods)
    assert plain.experiment("attacks")["methods"] == plain.evaluated_methods()
    path.write_text(GOOD + "\n# edited\n")  # editing the file changes the params: its jobs rerun
    assert Study.from_config(_study(tiny, mine=study.methods["mine"], only=only)).method_params("mine") != params


@pytest.mark.parametrize("change, words", [
    (lambda c: c.setdefault("attacks", {}).update(methods=["only"]),
     r"config attacks.methods: \['only'\] offer no differentiable forward"),
    (lambda c: c["ttt"].update(methods=["mine"]), "config ttt.methods: 'mine' cannot be test-time trained"),
    (lambda c: c["methods"]["mine"].update(train_on="tiny_src"), r"config methods.mine: \['train_on'\] only apply to trained"),
    (lambda c: c["methods"]["mine"].update({"class": "nowhere.py:Mine"}), "config methods.mine: class: file nowhere.py does not exist"),
])
def test_study_refusals_name_the_field(tiny, tmp_path, change, words):
    path = _write(tmp_path)
    cfg = _study(tiny, mine={"family": "external", "class": f"{path}:Mine"},
                 only={"family": "external", "class": f"{path}:OnlyRecon"})
    change(cfg)
    with pytest.raises(ValueError, match=words):
        Study.from_config(cfg)


# ---- the shipped example ----------------------------------------------------------------------------------

def _tiny_item():
    spec = DemoSpec(size=48, coils=4, noise=0.01, slices_per_volume=1, volumes={"test": 1})
    kspace, _, maps = simulate_volume(spec, seed=3)
    kspace = kspace[0]
    mask, num_low, _ = file_mask(MaskSpec("random", 4, 0.08, 0.03), "m", "f", kspace.shape[-1], 0)
    target = rss_target(kspace[None], kspace.shape[-2:])[0]
    return SliceInput("f", 0, kspace, mask.astype(np.float32), num_low, maps, target, float(target.max()))


def test_example_gradient_and_divergence_are_adjoint():
    from robustcs.external import ExternalSpec, load_class  # the example's module, loaded as the jobs load it

    module = __import__("sys").modules[load_class(ExternalSpec.from_config({"class": TV})).__module__]
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 7, 6, dtype=torch.complex64, generator=g)
    p = torch.randn(2, 3, 7, 6, dtype=torch.complex64, generator=g)
    lhs = (module.gradient(x).conj() * p).sum()
    rhs = -(x.conj() * module.divergence(p)).sum()
    assert torch.allclose(lhs, rhs, rtol=1e-4, atol=1e-4)


def test_example_tv_beats_zero_filled_and_back_propagates(one_torch_thread):
    item = _tiny_item()
    zf = load_method("zf", {"family": "zero_filled"})
    tv = load_method("tv", {"family": "external", "class": TV})  # its defaults: lam 0.02, 100 iterations
    scores = {}
    for name, method in (("zf", zf), ("tv", tv)):
        magnitude, _ = method.reconstruct(item)
        scores[name] = slice_metrics(item.target, magnitude, item.maxval)
    assert scores["tv"]["psnr"] > scores["zf"]["psnr"] + 3, scores  # measured: 22.2 against 17.6 dB
    assert scores["tv"]["ssim"] > scores["zf"]["ssim"], scores
    # λ = 0 is plain least squares from x = 0: TV must do better than it too (the penalty is what helps)
    plain = load_method("ls", {"family": "external", "class": TV, "lam": 0.0})
    assert scores["tv"]["psnr"] > slice_metrics(item.target, plain.reconstruct(item)[0], item.maxval)["psnr"]
    y = tv.measurements(item).requires_grad_(True)
    tv.differentiable(item)(y).sum().backward()
    assert torch.isfinite(y.grad).all() and y.grad.abs().sum() > 0
    with pytest.raises(ValueError, match=r"unknown setting\(s\) \['lambda'\]"):
        load_method("tv", {"family": "external", "class": TV, "lambda": 0.1})


# ---- end to end ---------------------------------------------------------------------------------------------

def _reduced_tiny(tiny: dict) -> dict:
    """The tiny config without its trained networks (no training, no TTT, no filtered shift) and with three ℓ1
    variants, so that the papers' fitted line has points of its own: what is left is every experiment the
    external variant takes part in."""
    cfg = copy.deepcopy(tiny)
    cfg["methods"] = {"zf": tiny["methods"]["zf"], "l1_a": tiny["methods"]["l1_a"], "cg_a": tiny["methods"]["cg_a"],
                      "l1_b": {"family": "l1", "lam": 0.01, "iterations": 30},
                      "l1_c": {"family": "l1", "lam": 0.1, "iterations": 30}}
    for key in ("training", "ttt"):
        cfg.pop(key)
    cfg["tuning"] = {"families": []}
    cfg["attacks"].pop("effort")
    cfg["shifts"]["pairs"] = {"shift_a": {**tiny["shifts"]["pairs"]["shift_a"], "mask": "random4x"}}  # no training.mask
    return cfg


@pytest.mark.long  # a whole Snakemake run of its own (~70 s): make test-long
def test_end_to_end_with_the_example_overlay(tiny, tmp_path):
    import shutil

    import pandas as pd

    from conftest import snakemake

    work = tmp_path / "work"
    (work / "docs" / "examples").mkdir(parents=True)
    shutil.copy(EXAMPLE, work / "docs" / "examples")  # the overlay's class path is relative to the working directory
    base = tmp_path / "reduced.yaml"
    base.write_text(yaml.safe_dump(_reduced_tiny(tiny)))
    overlay = ROOT / "docs" / "examples" / "external.yaml"
    targets = [f"results/tables/{t}.csv" for t in ("clean", "adversarial", "features", "shift_fit")]
    snakemake("--cores", "2", "--configfile", str(base), str(overlay), "--directory", str(work), *targets,
              "results/figures/shifts.png", "results/figures/adversarial.png")
    tables = {t: pd.read_csv(work / "results" / "tables" / f"{t}.csv") for t in ("clean", "adversarial", "features")}
    for name, table in tables.items():
        assert "my_tv" in set(table["method"]), name
    clean = tables["clean"].set_index(["dataset", "method"])
    assert clean.loc[("tiny_src", "my_tv"), "psnr_mean"] > clean.loc[("tiny_src", "zf"), "psnr_mean"]
    fits = pd.read_csv(work / "results" / "tables" / "shift_fit.csv")
    mine = fits[fits["group"] == "external"]
    assert len(mine) == 1 and not mine["fitted"].iloc[0]  # its own group, outside the papers' line
    assert set(fits.loc[fits["fitted"], "group"]) == {"all", "l1"}
    # editing the user's file reruns its jobs and only its jobs: one reconstruction per evaluated dataset (one part
    # each), its attack and its feature probe
    copied = work / "docs" / "examples" / "tv_recon.py"
    copied.write_text(copied.read_text() + "\n# edited\n")
    common = ["--cores", "1", "--configfile", str(base), str(overlay), "--directory", str(work)]
    proc = snakemake("-n", "--quiet", "rules", *common, *targets)
    dry = proc.stdout + proc.stderr
    counts = {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)$", dry, re.M)}
    assert (counts["reconstruct"], counts["attack"], counts["probe_features"]) == (2, 1, 1), dry
    untouched = snakemake("-n", *common, "results/recon/tiny_src/random4x/l1_a/test-0.h5")
    assert "Nothing to be done" in untouched.stdout + untouched.stderr
