"""Variants that load published weights (``checkpoint:``, robustcs.pretrained): checkpoints written here in fastMRI's
state-dict layout (fastmri.models.Unet / VarNet at small sizes), offline. Loading, checksum and shape refusals, the
start-up checks, the rule graph (no train job) and a small end-to-end run."""

import copy
import json
import re

import pandas as pd
import pytest
import torch
import yaml
from fastmri.models import Unet, VarNet

from robustcs.download import ChecksumError, sha256sum
from robustcs.methods import load_method
from robustcs.networks import CheckpointError, load_published, reconstruct, save_model, spec_from_config
from robustcs.study import Study

from conftest import TINY_CONFIG as TINY, snakemake
from test_workflow import job_counts

UNET = {"family": "unet", "chans": 4, "pools": 2}
VARNET = {"family": "varnet", "cascades": 2, "chans": 4, "pools": 2, "sens_chans": 2, "sens_pools": 2}


def _fastmri_network(settings, seed=3):
    """A fastMRI network built as fastMRI's own scripts build their published ones (not through robustcs)."""
    torch.manual_seed(seed)
    if settings["family"] == "unet":
        return Unet(in_chans=1, out_chans=1, chans=settings["chans"], num_pool_layers=settings["pools"], drop_prob=0.0)
    return VarNet(num_cascades=settings["cascades"], sens_chans=settings["sens_chans"],
                  sens_pools=settings["sens_pools"], chans=settings["chans"], pools=settings["pools"])


def _write_checkpoint(folder, settings, name="state_dict.pt", seed=3):
    """A published-style file: the network's plain state dict, saved with torch.save. Returns (path, sha, network)."""
    net = _fastmri_network(settings, seed).eval()
    path = folder / name
    torch.save(net.state_dict(), path)
    return path, sha256sum(path), net


def _kspace(seed=0, coils=3, h=32, w=24):
    g = torch.Generator().manual_seed(seed)
    return torch.complex(torch.randn(2, coils, h, w, generator=g), torch.randn(2, coils, h, w, generator=g))


@pytest.mark.parametrize("settings", [UNET, VARNET], ids=["unet", "varnet"])
def test_checkpoint_loads_and_reconstructs_as_the_network_it_came_from(tmp_path, settings, one_torch_thread):
    path, sha, original = _write_checkpoint(tmp_path, settings)
    spec = spec_from_config(settings)
    loaded = load_published(path, spec, "v", sha)
    mask = torch.zeros(24)
    mask[::3] = 1
    mask[10:14] = 1
    y = _kspace()
    with torch.no_grad():
        ours = reconstruct(loaded, spec, y, mask, (20, 20), 4)
        theirs = reconstruct(original, spec, y, mask, (20, 20), 4)
        fresh = reconstruct(_fastmri_network(settings, seed=4).eval(), spec, y, mask, (20, 20), 4)
    assert torch.equal(ours, theirs)
    assert not torch.allclose(fresh, theirs)  # other weights reconstruct otherwise: the comparison can fail
    # the model file the rule writes and the method every later stage loads from it give the same images
    save_model(tmp_path / "model.pt", spec, loaded)
    method = load_method("v", json.dumps(settings), model_path=str(tmp_path / "model.pt"))
    with torch.no_grad():
        again = reconstruct(method.model, method.spec, y, mask, (20, 20), 4)
    assert torch.equal(again, theirs)


def test_wrong_sha256_is_refused_naming_the_file(tmp_path):
    path, sha, _ = _write_checkpoint(tmp_path, UNET)
    wrong = ("0" if sha[0] != "0" else "1") + sha[1:]
    with pytest.raises(ChecksumError, match=rf"{path}.*variant 'unet_v'.*SHA-256 mismatch: expected {wrong}, got {sha}"):
        load_published(path, spec_from_config(UNET), "unet_v", wrong)


@pytest.mark.parametrize("other, words", [
    ({**UNET, "chans": 8}, r"key 'down_sample_layers\.0\.layers\.0\.weight' has shape \(4, 1, 3, 3\) in the checkpoint "
                           r"but \(8, 1, 3, 3\) in the variant's network"),
    ({**UNET, "pools": 3}, r"key 'down_sample_layers\.2\.layers\.0\.weight' of the variant's network \(shape "
                           r"\(16, 8, 3, 3\)\) is missing from the checkpoint"),
    (VARNET, r"key 'sens_net\.norm_unet\.unet\.down_sample_layers\.0\.layers\.0\.weight' of the variant's network .* "
             r"is missing"),
])
def test_wrong_shapes_are_refused_naming_both(tmp_path, other, words):
    path, sha, _ = _write_checkpoint(tmp_path, UNET)
    with pytest.raises(CheckpointError, match=rf"{path} \(checkpoint of variant 'unet_x'\): {words}"):
        load_published(path, spec_from_config(other), "unet_x", sha)


def test_extra_keys_are_refused(tmp_path):
    """A checkpoint with a key the network lacks (e.g. saved from a wrapper module) is refused, not half-loaded."""
    state = _fastmri_network(UNET).state_dict()
    torch.save({**state, "unet.extra": torch.zeros(2, 3)}, tmp_path / "extra.pt")
    with pytest.raises(CheckpointError, match=r"key 'unet\.extra' of the checkpoint \(shape \(2, 3\)\) is not in the "
                                              r"variant's network \(1 such keys\)"):
        load_published(tmp_path / "extra.pt", spec_from_config(UNET), "v", sha256sum(tmp_path / "extra.pt"))


def test_only_a_plain_state_dict_is_read(tmp_path):
    """A model file of ours (a dict holding the state dict) and a pickled module are refused, the latter by
    weights_only before any code of the file could run."""
    spec = spec_from_config(UNET)
    net = _fastmri_network(UNET)
    save_model(tmp_path / "ours.pt", spec, net)
    with pytest.raises(CheckpointError, match="not a plain state dict"):
        load_published(tmp_path / "ours.pt", spec, "v", sha256sum(tmp_path / "ours.pt"))
    torch.save(net, tmp_path / "module.pt")
    with pytest.raises(CheckpointError, match=r"(?s)module\.pt: cannot read the checkpoint .*Unsupported global.*variant 'v'"):
        load_published(tmp_path / "module.pt", spec, "v", sha256sum(tmp_path / "module.pt"))


# ---- start-up checks ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny():
    return yaml.safe_load(TINY.read_text())


def _with_variant(tiny, block):
    cfg = copy.deepcopy(tiny)
    cfg["methods"]["unet_pre"] = block
    return cfg


URL = "https://dl.fbaipublicfiles.com/fastMRI/trained_models/unet/knee_mc_leaderboard_state_dict.pt"
SHA = "a" * 64


@pytest.mark.parametrize("block, words", [
    ({**UNET, "checkpoint": {"url": URL}}, r"checkpoint: sha256 is missing: no file is used unchecked"),
    ({**UNET, "checkpoint": {"url": URL, "sha256": "abc"}}, r"checkpoint: sha256: expected 64 lower-case hex"),
    ({**UNET, "checkpoint": {"url": URL, "path": "/x", "sha256": SHA}}, r"checkpoint: give exactly one of url"),
    ({**UNET, "checkpoint": {"sha256": SHA}}, r"checkpoint: give exactly one of url"),
    ({**UNET, "checkpoint": {"path": "/no/such/file.pt", "sha256": SHA}}, r"path: file '/no/such/file.pt' does not"),
    ({**UNET, "checkpoint": {"url": "https://x.org/a b.pt", "sha256": SHA}}, r"url: file name 'a b.pt'"),
    # fastMRI's file holds a 256-channel U-Net: named at start-up, before a 2 GB download
    ({**UNET, "checkpoint": {"url": URL, "sha256": SHA}}, r"knee_mc_leaderboard_state_dict.pt holds a unet .* set "
                                                          r"\{'chans': 256, 'pools': 4\} \(the variant has "
                                                          r"\{'chans': 4, 'pools': 2\}\)"),
    ({**UNET, "input": "complex", "checkpoint": {"url": "https://x.org/a.pt", "sha256": SHA}}, r"input: a checkpoint "
                                                                                                r"U-Net takes fastMRI's"),
    ({**VARNET, "maps": "espirit", "checkpoint": {"url": "https://x.org/a.pt", "sha256": SHA}}, r"maps: learned"),
    ({**UNET, "epochs": 3, "checkpoint": {"url": "https://x.org/a.pt", "sha256": SHA}}, r"\['epochs'\] only set how"),
    ({"family": "l1", "checkpoint": {"url": "https://x.org/a.pt", "sha256": SHA}}, r"only apply to trained families"),
    ({**UNET, "checkpoint": {"url": "https://x.org/a.pt", "sha256": SHA, "md5": "x"}},
     r"checkpoint\.md5: unknown key; expected one of: path, sha256, url"),
])
def test_bad_checkpoint_settings_are_refused_at_start_up(tiny, block, words):
    with pytest.raises(ValueError, match=r"methods\.unet_pre") as err:
        Study.from_config(_with_variant(tiny, block))
    assert re.search(words, str(err.value)), str(err.value)


def test_checkpoint_variant_cannot_be_test_time_trained(tiny):
    cfg = _with_variant(tiny, {**VARNET, "checkpoint": {"url": "https://x.org/a.pt", "sha256": SHA}})
    cfg["ttt"]["methods"] = ["unet_pre"]
    with pytest.raises(ValueError, match=r"ttt\.methods: 'unet_pre' loads a checkpoint"):
        Study.from_config(cfg)


def test_checkpoint_variant_is_evaluated_but_not_tuned(tiny):
    study = Study.from_config(_with_variant(tiny, {**UNET, "checkpoint": {"url": "https://x.org/a.pt", "sha256": SHA}}))
    assert study.pretrained_methods() == ["unet_pre"]
    assert "unet_pre" in study.evaluated_methods() and "unet_pre" in study.trained_methods()
    assert "unet_pre" not in study.tuning_case()[3] and "unet_a" in study.tuning_case()[3]
    assert "checkpoint" not in study.variant_settings("unet_pre")  # the spec the jobs get (the model file is theirs)


# ---- the rule graph and a run -----------------------------------------------------------------------------------


def _config(tmp_path, tiny, methods, **extra):
    cfg = copy.deepcopy(tiny)
    cfg["methods"].update(methods)
    cfg.update(extra)
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_dry_run_has_no_train_job_for_a_checkpoint_variant(tmp_path, tiny):
    """Published weights replace the train job: one pretrained job per checkpoint variant, one download per URL."""
    local, sha, _ = _write_checkpoint(tmp_path, UNET)
    remote, vsha, _ = _write_checkpoint(tmp_path, VARNET, "knee_leaderboard_state_dict.pt")
    cfg = _config(tmp_path, tiny, {"unet_pre": {**UNET, "checkpoint": {"path": str(local), "sha256": sha}},
                                   "varnet_pre": {**VARNET, "checkpoint": {"url": remote.as_uri(), "sha256": vsha}}})
    work = tmp_path / "work"
    target = "results/models/tiny_src/random4x/{}/model.pt"
    proc = snakemake("-n", "--cores", "1", "--quiet", "rules", "--configfile", str(cfg), "--directory", str(work),
                     "--", *(target.format(m) for m in ("unet_pre", "varnet_pre", "unet_a")))
    counts = job_counts(proc)
    assert counts["pretrained"] == 2 and counts["download_checkpoint"] == 1 and counts["train"] == 1  # unet_a's
    out = snakemake("-n", "--cores", "1", "--configfile", str(cfg), "--directory", str(work), "--",
                    target.format("unet_pre"), target.format("varnet_pre")).stdout
    assert "rule train:" not in out and "results/downloads/_pretrained/varnet_pre/knee_leaderboard_state_dict.pt" in out


@pytest.mark.long  # a Snakemake run of its own (~40 s): make test-long
def test_checkpoint_variant_runs_end_to_end(tmp_path, tiny):
    """A small study with a checkpoint U-Net and VarNet beside the zero-filled baseline: the model files hold the
    checkpoints' weights, no train job ran, and both are scored in the clean table; a changed file then fails its
    checksum in the pretrained job."""
    local, sha, unet = _write_checkpoint(tmp_path, UNET)
    remote, vsha, _ = _write_checkpoint(tmp_path, VARNET, "knee_leaderboard_state_dict.pt")
    small = {k: tiny[k] for k in ("seed", "datasets", "masks", "sensitivities", "training", "compute")}
    small["datasets"] = {"tiny_src": small["datasets"]["tiny_src"]}
    small["methods"] = {"zf": {"family": "zero_filled"},
                        "unet_pre": {**UNET, "checkpoint": {"path": str(local), "sha256": sha}},
                        "varnet_pre": {**VARNET, "checkpoint": {"url": remote.as_uri(), "sha256": vsha}}}
    small["tuning"] = {"families": []}
    cfg = tmp_path / "small.yaml"
    cfg.write_text(yaml.safe_dump(small))
    work = tmp_path / "work"
    snakemake("--cores", "2", "--configfile", str(cfg), "--directory", str(work), "--", "results/tables/clean.csv")
    res = work / "results"
    assert not (res / "benchmarks" / "train").exists() and (res / "benchmarks" / "pretrained").is_dir()
    state = torch.load(res / "models/tiny_src/random4x/unet_pre/model.pt", weights_only=True)["state_dict"]
    assert all(torch.equal(state[k], v) for k, v in unet.state_dict().items())
    assert (res / "downloads/_pretrained/varnet_pre/knee_leaderboard_state_dict.pt").is_file()
    clean = pd.read_csv(res / "tables/clean.csv")
    # (untrained weights: scores of any sign, but scores)
    assert set(clean["method"]) == {"zf", "unet_pre", "varnet_pre"} and clean["ssim_mean"].between(-1, 1).all()
    # another file under the configured checksum: the job fails naming the file and writes no model
    torch.save(_fastmri_network(UNET, seed=9).state_dict(), local)
    (res / "models/tiny_src/random4x/unet_pre/model.pt").unlink()
    proc = snakemake("--cores", "1", "--configfile", str(cfg), "--directory", str(work), "--",
                     "results/models/tiny_src/random4x/unet_pre/model.pt", check=False)
    log = (res / "logs/pretrained/tiny_src/random4x/unet_pre.log").read_text()
    assert proc.returncode != 0 and f"{local} (checkpoint of variant 'unet_pre'): SHA-256 mismatch" in log
    assert not (res / "models/tiny_src/random4x/unet_pre/model.pt").exists()
