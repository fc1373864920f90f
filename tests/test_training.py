"""Training stage: both families train, checkpoints survive SIGKILL bit-exactly, models round-trip,
``reconstruct`` is differentiable and crops oversampled k-space, configs are checked."""

import json
import logging
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import variant_error

from robustcs.demo import DemoSpec, simulate_volume
from robustcs.fastmri_io import rss_target
from robustcs.ingest import build_manifest, read_manifest
from robustcs.masks import MaskSpec, make_mask
from robustcs import training as T
from robustcs.networks import (
    CheckpointError,
    UnetSpec,
    VarNetSpec,
    build_model,
    init_model,
    load_model,
    reconstruct,
    save_model,
    spec_from_config,
)
from robustcs.training import train

from conftest import ROOT

SEED = 7
MASK = MaskSpec(type="random", acceleration=4, center_fraction=0.16)
DEMO = {"size": 32, "coils": 3, "noise": 0.01, "slices_per_volume": 2, "volumes": {"train": 2, "val": 1, "test": 0}}
TINY_UNET = {"family": "unet", "chans": 4, "pools": 2, "batch_size": 2, "epochs": 3}
TINY_VARNET = {"family": "varnet", "cascades": 2, "chans": 4, "pools": 2, "sens_chans": 2, "sens_pools": 2,
               "batch_size": 1, "epochs": 3}
CPU = torch.device("cpu")


# Tiny networks gain nothing from intra-op threads, and spinning OpenMP threads stall on a busy machine.
pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def manifest_csv(tmp_path_factory):
    work = tmp_path_factory.mktemp("train_data")
    csv = work / "manifest.csv"
    build_manifest("tiny", {"kind": "demo", "demo": DEMO}, csv, work, work / "downloads", seed=SEED)
    return csv


@pytest.fixture(scope="module")
def manifest(manifest_csv):
    return read_manifest(manifest_csv)


def _spec(cfg, **over):
    return spec_from_config({**cfg, **over})


def _assert_same_weights(a: torch.nn.Module, b: torch.nn.Module):
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k


# ------------------------------------------------------------------------------------------ training


@pytest.mark.parametrize("cfg", [TINY_UNET, TINY_VARNET], ids=["unet", "varnet"])
def test_train_runs_and_reports(cfg, manifest, tmp_path, caplog):
    spec = _spec(cfg, epochs=2)
    log = logging.getLogger("test_training")
    with caplog.at_level(logging.INFO, logger="test_training"):
        model, hist = train(spec, manifest, MASK, SEED, tmp_path / "ckpt", CPU, log=log)
    assert list(hist.columns) == ["epoch", "train_loss", "val_loss", "val_ssim", "seconds"]
    assert hist["epoch"].tolist() == [0, 1]
    assert np.isfinite(hist[["train_loss", "val_loss", "val_ssim"]].to_numpy()).all()
    assert ((hist["val_ssim"] > -1) & (hist["val_ssim"] <= 1)).all()
    assert sum("epoch 2/2" in r.getMessage() for r in caplog.records) == 1
    # The checkpoint is readable with weights_only=True and holds the documented keys.
    state = torch.load(tmp_path / "ckpt" / "last.pt", weights_only=True)
    assert {"epoch", "spec", "family", "model", "optimizer", "scheduler", "history"} <= set(state)
    assert state["epoch"] == 1 and state["family"] == cfg["family"] and len(state["history"]) == 2


def test_unet_loss_decreases(manifest, tmp_path):
    _, hist = train(_spec(TINY_UNET, epochs=6), manifest, MASK, SEED, tmp_path, CPU)
    losses = hist["train_loss"].to_numpy()
    assert losses[-1] < losses[0]


def test_no_val_rows_and_ssim_loss(manifest, tmp_path):
    """Without val rows the val columns are NaN; the U-Net also trains with the SSIM loss."""
    spec = _spec(TINY_UNET, epochs=1, loss="ssim")
    _, hist = train(spec, manifest[manifest["split"] == "train"], MASK, SEED, tmp_path, CPU)
    assert np.isnan(hist["val_loss"]).all() and np.isnan(hist["val_ssim"]).all()
    assert 0 < hist["train_loss"].iloc[0] < 2


def test_train_fraction_nested(manifest):
    big = pd.concat([manifest.assign(stem=manifest["stem"] + f"_{i}") for i in range(5)])
    stems = {f: set(T.training_rows(big, f, SEED)["stem"]) for f in (0.2, 0.5, 1.0)}
    n = big[big["split"] == "train"]["stem"].nunique()  # 10
    assert [len(stems[f]) for f in (0.2, 0.5, 1.0)] == [2, 5, n]
    assert stems[0.2] <= stems[0.5] <= stems[1.0]


def _volumes(manifest, sizes):
    """A manifest of train volumes with the given slice counts (and the fixture's val volume)."""
    train = manifest[manifest["split"] == "train"].iloc[:1]
    parts = [pd.concat([train.assign(stem=f"vol{i:02d}", slice=j) for j in range(n)]) for i, n in enumerate(sizes)]
    return pd.concat([*parts, manifest[manifest["split"] == "val"]], ignore_index=True)


def test_slice_cap_keeps_whole_volumes_in_a_seeded_order():
    sizes = [3, 5, 2, 4, 6, 1, 3, 5, 2, 4]
    big = _volumes(_manifest_rows(), sizes)
    per_stem = big[big["split"] == "train"].groupby("stem").size()
    picks = {}
    for cap in (6, 12, 20, 34, 35, 100):
        rows = T.training_rows(big, 1.0, SEED, cap)
        again = T.training_rows(big.sample(frac=1, random_state=1), 1.0, SEED, cap)  # row order does not matter
        pd.testing.assert_frame_equal(rows, again)
        kept = set(rows["stem"])
        assert len(rows) <= cap and len(rows) > min(cap, per_stem.sum()) - per_stem.max()
        assert all((rows["stem"] == s).sum() == per_stem[s] for s in kept)  # whole volumes only
        picks[cap] = kept
    assert picks[6] <= picks[12] <= picks[20] <= picks[34] <= picks[35] <= picks[100] == set(per_stem.index)
    other_seeds = {frozenset(T.training_rows(big, 1.0, seed, 12)["stem"]) for seed in range(8)}
    assert len(other_seeds) > 1  # the order follows the seed
    with pytest.raises(ValueError, match="max_train_slices: 0 slices are fewer"):
        T.training_rows(big, 1.0, SEED, 0)


def _manifest_rows():
    return pd.DataFrame([{"dataset": "d", "split": s, "stem": f"{s}0", "path": "x.h5", "slice": 0, "max": 1.0}
                         for s in ("train", "val")])


def test_train_uses_the_capped_sets_and_adam(manifest, tmp_path, caplog):
    spec = _spec(TINY_UNET, epochs=1, max_train_slices=3, max_val_slices=2, optimizer="adam", batch_size=1)
    caplog.set_level(logging.INFO)
    train(spec, manifest, MASK, SEED, tmp_path, CPU, log=logging.getLogger("capped"))
    # 2 train volumes of 2 slices: a cap of 3 keeps one whole volume; the val volume fits its cap of 2
    assert "on 2 slices (1 volumes), 2 validation slices" in caplog.text
    with pytest.raises(ValueError, match="max_val_slices: 1 slices are fewer than the 2 val slices"):
        train(_spec(TINY_UNET, max_val_slices=1), manifest, MASK, SEED, tmp_path / "b", CPU)
    assert isinstance(T.make_optimizer(spec, init_model(spec, 0)), torch.optim.Adam)
    assert isinstance(T.make_optimizer(_spec(TINY_UNET), init_model(_spec(TINY_UNET), 0)), torch.optim.RMSprop)


def test_batch_of_different_shapes_is_an_error(manifest, tmp_path):
    row = manifest[manifest["split"] == "train"].iloc[0].to_dict()
    a = T.load_example(row, MASK, 1)
    b = T.Example(a.stem, 1, a.kspace[:, :-2], a.mask, a.num_low, a.target, a.max)
    with pytest.raises(ValueError, match="batch_size: 1"):
        T.collate([a, b], CPU)


def test_slices_of_different_widths_are_batched_by_shape(manifest, tmp_path):
    """fastMRI knee widths differ between files: a batch holds slices of one shape, every slice once, and a
    U-Net with batch size 4 trains on the mixed set."""
    other_csv = tmp_path / "manifest.csv"
    build_manifest("wide", {"kind": "demo", "demo": {**DEMO, "size": 36, "coils": 4}}, other_csv, tmp_path,
                   tmp_path / "downloads", seed=SEED)
    mixed = pd.concat([manifest, read_manifest(other_csv)], ignore_index=True)
    rows = mixed[mixed["split"] == "train"].to_dict("records")
    order = np.random.default_rng(0).permutation(len(rows))
    seen = []
    for batch in T._batches(rows, order, 3, MASK, lambda r: 1, CPU):
        assert batch.kspace.shape[0] <= 3 and len({tuple(t.shape) for t in batch.target}) == 1
        seen.append(batch.kspace.shape[0])
    assert sum(seen) == len(rows) and len({r["width"] for r in rows}) == 2
    model, hist = train(_spec(TINY_UNET, batch_size=4, epochs=1), mixed, MASK, SEED, tmp_path / "ckpt", CPU)
    assert len(hist) == 1 and np.isfinite(hist["train_loss"]).all()


# ---------------------------------------------------------------------------------------- checkpoints

KILLER = textwrap.dedent(
    """
    import json, os, signal, sys
    sys.path.insert(0, {workflow!r})
    import torch
    torch.set_num_threads({threads})
    from robustcs import training as T
    from robustcs.ingest import read_manifest
    from robustcs.masks import MaskSpec
    from robustcs.networks import spec_from_config

    original = T._save_checkpoint

    def save_then_die(path, state):
        original(path, state)
        if state["epoch"] == 1:
            os.kill(os.getpid(), signal.SIGKILL)

    T._save_checkpoint = save_then_die
    spec = spec_from_config(json.loads({spec!r}))
    T.train(spec, read_manifest({manifest!r}), MaskSpec(**json.loads({mask!r})), {seed}, {ckpt!r}, torch.device("cpu"))
    print("not killed")
    """
)


@pytest.mark.slow  # ~5 s: a real SIGKILL of a training process
def test_sigkill_then_resume_is_bit_identical_unet(manifest_csv, tmp_path, caplog):
    manifest = read_manifest(manifest_csv)
    spec = _spec(TINY_UNET)
    ckpt = tmp_path / "killed"
    code = KILLER.format(
        workflow=str(ROOT / "workflow"), threads=torch.get_num_threads(), spec=json.dumps(TINY_UNET),
        manifest=str(manifest_csv), mask=json.dumps(MASK.__dict__), seed=SEED, ckpt=str(ckpt),
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stdout + proc.stderr
    assert (ckpt / "last.pt").is_file()
    assert not [p for p in ckpt.iterdir() if p.name != "last.pt"]  # no temporary files left behind
    assert torch.load(ckpt / "last.pt", weights_only=True)["epoch"] == 1

    log = logging.getLogger("test_training")
    with caplog.at_level(logging.INFO, logger="test_training"):
        resumed, hist_resumed = train(spec, manifest, MASK, SEED, ckpt, CPU, log=log)
    assert any("resuming" in r.getMessage() for r in caplog.records)
    straight, hist_straight = train(spec, manifest, MASK, SEED, tmp_path / "straight", CPU)
    _assert_same_weights(resumed, straight)
    assert hist_resumed["train_loss"].tolist() == hist_straight["train_loss"].tolist()
    assert hist_resumed["val_ssim"].tolist() == hist_straight["val_ssim"].tolist()


def test_crash_then_resume_is_bit_identical_varnet(manifest, tmp_path, monkeypatch):
    spec = _spec(TINY_VARNET)
    original = T._save_checkpoint

    def save_then_crash(path, state):
        original(path, state)
        if state["epoch"] == 0:
            raise KeyboardInterrupt

    monkeypatch.setattr(T, "_save_checkpoint", save_then_crash)
    with pytest.raises(KeyboardInterrupt):
        train(spec, manifest, MASK, SEED, tmp_path / "crashed", CPU)
    monkeypatch.setattr(T, "_save_checkpoint", original)
    resumed, hist_resumed = train(spec, manifest, MASK, SEED, tmp_path / "crashed", CPU)
    straight, hist_straight = train(spec, manifest, MASK, SEED, tmp_path / "straight", CPU)
    _assert_same_weights(resumed, straight)
    assert hist_resumed["train_loss"].tolist() == hist_straight["train_loss"].tolist()


def test_finished_checkpoint_is_not_retrained(manifest, tmp_path, monkeypatch):
    spec = _spec(TINY_UNET, epochs=1)
    first, hist = train(spec, manifest, MASK, SEED, tmp_path, CPU)
    monkeypatch.setattr(T, "_validate", lambda *a, **k: pytest.fail("retrained a finished run"))
    again, hist_again = train(spec, manifest, MASK, SEED, tmp_path, CPU)
    _assert_same_weights(first, again)
    assert hist_again["train_loss"].tolist() == hist["train_loss"].tolist()


def test_other_spec_or_seed_starts_afresh(manifest, tmp_path, caplog):
    train(_spec(TINY_UNET, epochs=1), manifest, MASK, SEED, tmp_path, CPU)
    log = logging.getLogger("test_training")
    with caplog.at_level(logging.WARNING, logger="test_training"):
        _, hist = train(_spec(TINY_UNET, epochs=1, lr=5e-4), manifest, MASK, SEED, tmp_path, CPU, log=log)
        _, hist2 = train(_spec(TINY_UNET, epochs=1, lr=5e-4), manifest, MASK, SEED + 1, tmp_path, CPU, log=log)
    assert len(hist) == len(hist2) == 1
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2 and all("starting afresh" in r.getMessage() for r in warnings)


def test_changed_data_starts_afresh(manifest, tmp_path, caplog):
    """Same variant and seed, but the data changed since the checkpoint (here a volume's max):
    the workflow reuses one checkpoint folder per variant, so train() must not resume it."""
    train(_spec(TINY_UNET, epochs=1), manifest, MASK, SEED, tmp_path, CPU)
    changed = manifest.assign(max=manifest["max"] * 2)
    log = logging.getLogger("test_training")
    with caplog.at_level(logging.WARNING, logger="test_training"):
        _, hist = train(_spec(TINY_UNET, epochs=2), changed, MASK, SEED, tmp_path, CPU, log=log)
    assert len(hist) == 2
    assert any("starting afresh" in r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)


@pytest.mark.parametrize("content", [b"", b"garbage bytes \x00\x01", "list"])
def test_corrupt_checkpoint_is_an_error(manifest, tmp_path, content):
    ckpt = tmp_path / "last.pt"
    if content == "list":
        torch.save([1, 2, 3], ckpt)
    else:
        ckpt.write_bytes(content)
    with pytest.raises(CheckpointError, match=str(ckpt)):
        train(_spec(TINY_UNET, epochs=1), manifest, MASK, SEED, tmp_path, CPU)


# ---------------------------------------------------------------------------------------- model files


@pytest.mark.parametrize("cfg", [TINY_UNET, TINY_VARNET], ids=["unet", "varnet"])
def test_save_load_round_trip(cfg, tmp_path):
    spec = _spec(cfg, lr="1e-4")
    model = build_model(spec)
    hist = pd.DataFrame([{"epoch": 0, "train_loss": 0.5, "val_loss": np.nan, "val_ssim": np.nan, "seconds": 1.0}])
    path = tmp_path / "model.pt"
    save_model(path, spec, model, hist)
    raw = torch.load(path, weights_only=True)
    assert raw["family"] == cfg["family"] and raw["spec"]["lr"] == 1e-4
    spec2, model2 = load_model(path, CPU)
    assert spec2 == spec
    _assert_same_weights(model, model2)


@pytest.mark.parametrize("content", [b"not a checkpoint", "list", "dict"])
def test_load_model_rejects_other_files(tmp_path, content):
    path = tmp_path / "model.pt"
    if content == "list":
        torch.save([torch.zeros(2)], path)
    elif content == "dict":
        torch.save({"model": {}}, path)
    else:
        path.write_bytes(content)
    with pytest.raises(CheckpointError, match=str(path)):
        load_model(path, CPU)


# ---------------------------------------------------------------------------------------- reconstruct


@pytest.fixture(scope="module")
def oversampled():
    """Readout-oversampled k-space [2, C, 2*32, 32] (H = 2 th), its target and a mask [32]."""
    spec = DemoSpec(size=32, coils=3, readout_oversampling=2, slices_per_volume=2)
    kspace, target, _ = simulate_volume(spec, seed=5)
    mask, num_low, _ = make_mask(MASK, kspace.shape[-1], 3)
    return torch.from_numpy(kspace), target, mask, num_low


@pytest.mark.parametrize("cfg", [TINY_UNET, TINY_VARNET], ids=["unet", "varnet"])
@pytest.mark.parametrize("mask_kind", ["vector", "batch"])
def test_reconstruct_shape_and_gradient(cfg, mask_kind, oversampled):
    kspace, target, mask, num_low = oversampled
    assert kspace.shape[-2] == 2 * target.shape[-2]
    spec = _spec(cfg)
    model = init_model(spec, 0).eval()
    m = torch.from_numpy(mask).float()
    if mask_kind == "batch":
        m = m.expand(kspace.shape[0], -1)
    k = kspace.clone().requires_grad_(True)
    out = reconstruct(model, spec, k, m, target.shape[-2:], num_low)
    assert out.shape == (kspace.shape[0], *target.shape[-2:])
    out.sum().backward()
    assert k.grad is not None and torch.isfinite(torch.view_as_real(k.grad)).all()
    assert k.grad.abs().sum() > 0
    # Only sampled columns can influence the reconstruction.
    assert k.grad[..., ~torch.from_numpy(mask)].abs().max() == 0


def test_reconstruct_unet_input_is_the_cropped_zero_filled_image(oversampled):
    """With an identity network the U-Net path returns the zero-filled RSS cropped to the target."""
    kspace, target, mask, _ = oversampled
    out = reconstruct(torch.nn.Identity(), UnetSpec(), kspace, torch.from_numpy(mask), target.shape[-2:])
    expected = rss_target(kspace.numpy() * mask, target.shape[-2:])
    zf = torch.from_numpy(expected)
    norm = (zf - zf.mean((-2, -1), keepdim=True)) / zf.std((-2, -1), keepdim=True)
    inside = norm.abs() < 6  # outside the clamp the identity "network" saturates
    torch.testing.assert_close(out[inside], zf[inside], rtol=1e-4, atol=1e-6 * float(zf.max()))


def test_reconstruct_varnet_crops_the_full_output(oversampled):
    kspace, target, mask, num_low = oversampled
    spec = _spec(TINY_VARNET)
    model = init_model(spec, 0).eval()
    m = torch.from_numpy(mask)
    with torch.no_grad():
        out = reconstruct(model, spec, kspace, m, target.shape[-2:], num_low)
        masked = torch.view_as_real(kspace * m.float())
        full = model(masked, m[None, None, None, :, None].expand(kspace.shape[0], 1, 1, -1, 1), num_low)
    assert full.shape[-2:] == kspace.shape[-2:]
    h = (full.shape[-2] - target.shape[-2]) // 2
    torch.testing.assert_close(out, full[:, h : h + target.shape[-2], :])


# ---------------------------------------------------------------------------------------- configs


def test_spec_from_config_defaults_and_workflow_keys():
    spec = spec_from_config({"family": "varnet", "train_on": "brain_t1", "train_mask": "random4x"})
    assert spec == VarNetSpec()
    assert spec_from_config({"family": "unet", "lr": 1, "train_fraction": 0.5}) == UnetSpec(lr=1.0, train_fraction=0.5)


@pytest.mark.parametrize(
    "cfg, key",
    [
        ({"family": "unet", "chanels": 8}, "chanels"),
        ({"family": "unet", "max_train_slices": 300, "train_fraction": 0.5}, "max_train_slices"),  # cross-field
        ({"family": "varnet", "optimizer": "adam"}, "optimizer"),
        ({"family": "unet", "sens_chans": 4}, "sens_chans"),
        ({"family": "resnet"}, "family"),
        ({"chans": 4}, "family"),
    ],
)
def test_spec_from_config_errors_name_the_key(cfg, key):
    with pytest.raises(ValueError, match=key):
        spec_from_config(cfg)


@pytest.mark.parametrize(
    "cfg, key",
    [
        ({"family": "unet", "chanels": 8}, "chanels: unknown key (did you mean 'chans'?)"),
        ({"family": "varnet", "cascades": 0}, "cascades: got 0; expected integer >= 1"),
        ({"family": "unet", "pools": 2.5}, "pools: got 2.5"),
        ({"family": "unet", "epochs": True}, "epochs: got True"),
        ({"family": "unet", "loss": "l2"}, "loss: 'l2' is not allowed"),
        ({"family": "varnet", "train_fraction": 0}, "train_fraction: got 0; expected number > 0"),
        ({"family": "varnet", "train_fraction": 1.5}, "train_fraction: got 1.5; expected number > 0 <= 1"),
        ({"family": "unet", "max_train_slices": 0}, "max_train_slices: got 0"),
        ({"family": "varnet", "max_val_slices": 2.5}, "max_val_slices: got 2.5"),
        ({"family": "unet", "max_train_slices": True}, "max_train_slices: got True"),
        ({"family": "unet", "optimizer": "sgd"}, "optimizer: 'sgd' is not allowed"),
        ({"family": "varnet", "optimizer": "adam"}, "optimizer: unknown key"),
        ({"family": "unet", "lr": "fast"}, "lr: got 'fast'"),
        ({"family": "unet", "lr": -1e-3}, "lr: got -0.001"),
        ({"family": "unet", "self_supervised": -1}, "self_supervised: got -1"),
        ({"family": "varnet", "maps": "sense"}, "maps: 'sense' is not allowed"),
        ({"family": "unet", "precision": "fp64"}, "precision: 'fp64' is not allowed"),
    ],
)
def test_network_settings_are_checked_at_start_up_against_the_schema(cfg, key):
    """Types and ranges of a network variant: config/schema.yaml method_unet / method_varnet (Study.from_config)."""
    assert f"config methods.v.{key}" in variant_error(cfg)
