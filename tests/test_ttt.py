"""Test-time training: the networks' k-space predictions, the self-supervised loss, the self-validation
split and stopping rule, joint training of the complex U-Net, and TTT leaving its checkpoint alone."""

import h5py
import numpy as np
import pandas as pd
import pytest
import torch
from conftest import variant_error

from robustcs.ingest import build_manifest, read_manifest
from robustcs.masks import MaskSpec, make_mask
from robustcs.methods import load_method
from robustcs.networks import (
    forward,
    init_model,
    needs_maps,
    reconstruct,
    save_model,
    self_supervised_loss,
    spec_from_config,
)
from robustcs.varnet import varnet_forward
from robustcs.physics import fft2c, ifft2c
from robustcs.recon_io import SliceInput, read_maps
from robustcs.sensitivities import EspiritSpec, espirit_maps
from robustcs.tables import ttt_summary
from robustcs.training import train
from robustcs.ttt import TTTSpec, holdout_split, should_stop, adapt_slice

SEED = 3
# 2x: lines outside the 8 central ones, from which TTT draws its held-out points (holdout_center)
MASK = MaskSpec(type="random", acceleration=2, center_fraction=0.25)
DEMO = {"size": 32, "coils": 3, "noise": 0.01, "slices_per_volume": 2, "volumes": {"train": 2, "val": 1, "test": 1}}
UNET_C = {"family": "unet", "input": "complex", "self_supervised": 1.0, "chans": 4, "pools": 2, "batch_size": 2,
          "epochs": 2}
VARNET = {"family": "varnet", "cascades": 1, "chans": 4, "pools": 2, "sens_chans": 2, "sens_pools": 2, "epochs": 1}
VARNET_E = {**VARNET, "maps": "espirit", "self_supervised": 1.0}
ESPIRIT = EspiritSpec(calib_width=8, kernel_width=4, lowres_factor=2, max_iter=30)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """A tiny demo dataset, its manifest, and ESPIRiT maps of every file (stem -> maps file)."""
    work = tmp_path_factory.mktemp("ttt_data")
    csv = work / "manifest.csv"
    build_manifest("tiny", {"kind": "demo", "demo": DEMO}, csv, work, work / "downloads", seed=SEED)
    table = read_manifest(csv)
    maps = {}
    for stem, rows in table.groupby("stem"):
        with h5py.File(rows["path"].iloc[0]) as f:
            kspace = f["kspace"][()]
        mask, _, _ = make_mask(MASK, kspace.shape[-1], 0)
        sens = np.stack([espirit_maps(kspace[s], mask.astype(bool), ESPIRIT) for s in rows["slice"]])
        maps[stem] = work / f"{stem}_maps.h5"
        with h5py.File(maps[stem], "w") as f:  # the sensitivities rule's layout: a group per file
            f[f"{stem}/sens"], f[f"{stem}/slices"] = sens, rows["slice"].to_numpy(np.int32)
    return table, maps


def _item(table, maps, split="test", index=0):
    row = table[table["split"] == split].iloc[index]
    with h5py.File(row["path"]) as f:
        kspace, target = f["kspace"][int(row["slice"])], f["reconstruction_rss"][int(row["slice"])]
    mask, num_low, _ = make_mask(MASK, kspace.shape[-1], 11)
    sens = read_maps(maps[row["stem"]], row["stem"], int(row["slice"]))
    return SliceInput(row["stem"], int(row["slice"]), kspace.astype(np.complex64), mask.astype(np.float32), num_low,
                      sens.astype(np.complex64), target.astype(np.float32), float(row["max"]))


def _batch(item):
    k = torch.from_numpy(item.kspace)[None]
    return k, torch.from_numpy(item.mask)[None], torch.from_numpy(item.sens)[None]


# ------------------------------------------------------------------------------------- the pieces


def test_self_supervised_loss_is_the_normalised_l1():
    g = torch.Generator().manual_seed(0)
    y = torch.randn(2, 3, 4, 5, dtype=torch.complex64, generator=g)
    k = torch.randn(2, 3, 4, 5, dtype=torch.complex64, generator=g)
    w = (torch.rand(4, 5, generator=g) > 0.5).float()
    expected = [
        (torch.view_as_real(w * (y[i] - k[i])).abs().sum() / torch.view_as_real(w * y[i]).abs().sum()).item()
        for i in range(2)
    ]
    assert self_supervised_loss(k, y, w).item() == pytest.approx(np.mean(expected), rel=1e-6)
    assert self_supervised_loss(y, y, w).item() == 0
    # points outside the weight do not count
    assert self_supervised_loss(k + (1 - w) * 100, y, w).item() == pytest.approx(np.mean(expected), rel=1e-6)


def test_holdout_split_partitions_the_sampled_points():
    mask = np.zeros(16, np.float32)
    mask[[0, 3, 7, 8, 12]] = 1
    train_w, val_w = holdout_split(mask, 20, 0.05, seed=1)
    sampled = np.broadcast_to(mask, (20, 16))
    assert torch.equal(train_w + val_w, torch.from_numpy(np.ascontiguousarray(sampled)))
    assert ((train_w * val_w) == 0).all()
    assert val_w.sum().item() == round(0.05 * sampled.sum())
    again, other = holdout_split(mask, 20, 0.05, seed=1)[1], holdout_split(mask, 20, 0.05, seed=2)[1]
    assert torch.equal(val_w, again) and not torch.equal(val_w, other)


def test_holdout_keeps_the_fully_sampled_centre():
    """holdout_center: the mask's central num_low_frequencies columns (where fastMRI's mask functions put
    them) stay in the loss and the input; the held-out points come from the other sampled columns."""
    spec = MaskSpec(type="random", acceleration=4, center_fraction=0.2, max_deviation=0.5)
    mask, nlf, _ = make_mask(spec, 64, seed=3)
    pad = (64 - nlf + 1) // 2
    assert mask[pad : pad + nlf].all()  # the centre the function sampled is the block kept
    train_w, val_w = holdout_split(mask, 64, 0.05, seed=1, keep_center=nlf)
    outer = mask.astype(bool).copy()
    outer[pad : pad + nlf] = False
    assert torch.equal(train_w + val_w, torch.from_numpy(np.broadcast_to(mask, (64, 64)).astype(np.float32)))
    assert val_w[:, pad : pad + nlf].sum() == 0 and val_w.sum() == round(0.05 * 64 * outer.sum())
    # without it, draws reach the centre (the study's notebooks)
    assert any(holdout_split(mask, 64, 0.05, seed=s)[1][:, pad : pad + nlf].sum() > 0 for s in range(3))
    with pytest.raises(ValueError, match="outside its 64 central columns"):
        holdout_split(mask, 64, 0.05, seed=1, keep_center=64)


def test_stopping_rule():
    w = 3
    falling = list(np.linspace(1, 0.5, 20))
    assert not any(should_stop(falling[:n], w) for n in range(1, 21))
    rising_late = falling[:9] + [0.9, 0.9, 0.9]
    assert not should_stop(rising_late[:8], w)  # fewer than 3W values: never
    assert should_stop(rising_late, w)  # last W mean 0.9 > previous W mean


@pytest.mark.parametrize("cfg", [UNET_C, VARNET, VARNET_E], ids=["unet_complex", "varnet", "varnet_espirit"])
def test_predicted_kspace_and_magnitude(cfg, data):
    table, maps = data
    item = _item(table, maps)
    spec = spec_from_config(cfg)
    model = init_model(spec, 0).eval()
    k, m, sens = _batch(item)
    with torch.no_grad():
        magnitude, predicted = forward(model, spec, k, m, item.target_shape, item.num_low_frequencies, sens, True)
        plain = reconstruct(model, spec, k, m[0], item.target_shape, item.num_low_frequencies, sens[0])
    assert predicted.shape == k.shape and magnitude.shape == (1, *item.target_shape)
    torch.testing.assert_close(magnitude, plain)
    if cfg == VARNET:
        # the k-space path repeats fastMRI's VarNet.forward before its RSS
        torch.testing.assert_close(magnitude, varnet_forward(model, k, m, item.target_shape, item.num_low_frequencies))
    else:
        # predicted = F S x for the network's image x, whose cropped magnitude is the reconstruction
        image = (sens.conj() * ifft2c(predicted)).sum(-3)
        torch.testing.assert_close(fft2c(sens * image.unsqueeze(-3)), predicted, atol=1e-5, rtol=1e-4)


def test_spec_checks():
    assert needs_maps(spec_from_config(UNET_C)) and not needs_maps(spec_from_config({"family": "unet"}))
    with pytest.raises(ValueError, match="input: complex"):
        spec_from_config({"family": "unet", "self_supervised": 1.0})
    # the settings' own ranges are the schema's, checked at start-up naming the variant's field
    assert "methods.v.input: 'phase' is not allowed" in variant_error({"family": "unet", "input": "phase"})
    assert "methods.v.self_supervised" in variant_error({"family": "varnet", "self_supervised": -1})
    # the values' ranges are config/schema.yaml's (tests/test_schema_specs.py); the spec checks max_steps vs window
    assert TTTSpec.from_config({"lr": {"unet": 1e-4}}).lr == {"unet": 1e-4}  # Study fills the other families
    assert TTTSpec.from_config({}).holdout_center is True
    # the TTT study's protocol: held-out points leave the loss only (the input keeps them); the stop rule needs
    # room (>= 5 windows)
    assert TTTSpec.from_config({}).hide_holdout is False
    assert TTTSpec.from_config({"max_steps": 100, "window": 20}).max_steps == 100
    with pytest.raises(ValueError, match=r"max_steps 99 < 5 x window 20"):
        TTTSpec.from_config({"max_steps": 99, "window": 20})


# ------------------------------------------------------------------------------- training and TTT


@pytest.fixture(scope="module")
def trained_unet(data, tmp_path_factory):
    table, maps = data
    spec = spec_from_config({**UNET_C, "epochs": 4})
    model, history = train(spec, table, MASK, SEED, tmp_path_factory.mktemp("ckpt"), "cpu", maps=maps)
    return spec, model, history


def test_complex_unet_trains_on_the_joint_loss(trained_unet, data, tmp_path):
    spec, model, history = trained_unet
    assert history["train_loss"].iloc[-1] < history["train_loss"].iloc[0]
    assert np.isfinite(history["val_ssim"]).all()
    with pytest.raises(ValueError, match="ESPIRiT maps"):
        train(spec, data[0], MASK, SEED, tmp_path, "cpu")
    # as a method: reads the slice's maps, refuses a slice without them
    save_model(tmp_path / "m.pt", spec, model)
    method = load_method("unet_c", {"family": "unet"}, "cpu", model_path=tmp_path / "m.pt")
    item = _item(*data)
    magnitude, _ = method.reconstruct(item)
    assert magnitude.shape == item.target_shape and np.isfinite(magnitude).all()
    with pytest.raises(ValueError, match="ESPIRiT maps"):
        method.reconstruct(SliceInput(**{**item.__dict__, "sens": None}))


@pytest.mark.parametrize("family", ["unet", "varnet", "varnet_espirit"])
def test_ttt_fits_the_slice_and_leaves_the_checkpoint_alone(family, trained_unet, data):
    table, maps = data
    if family == "unet":
        spec, model, _ = trained_unet
    else:
        spec = spec_from_config(VARNET if family == "varnet" else VARNET_E)
        model = init_model(spec, 0).eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    ttt = TTTSpec(max_steps=12, window=3, lr={"unet": 3e-3, "varnet": 3e-3})
    a, b = _item(table, maps, index=0), _item(table, maps, index=1)
    first_a = adapt_slice(model, spec, a, ttt, seed=5)
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k  # the checkpoint is untouched
    # each slice starts from the checkpoint: slice b after a == slice b alone == slice b again
    after_a = adapt_slice(model, spec, b, ttt, seed=6)
    alone = adapt_slice(model if family == "unet" else init_model(spec, 0).eval(), spec, b, ttt, seed=6)
    np.testing.assert_array_equal(after_a.magnitude, alone.magnitude)
    assert after_a.val_error == alone.val_error
    # the record: one held-out error per network seen, the loss falls, the stop obeys the rule
    for r in (first_a, after_a):
        assert len(r.val_error) == r.steps + 1 and len(r.train_loss) == r.steps
        # a stopped run's last record triggered the rule; a run to max_steps ends with the last update's error,
        # which no rule check saw
        assert r.stopped_early == should_stop(r.val_error if r.stopped_early else r.val_error[:-1], ttt.window)
        assert not any(should_stop(r.val_error[:n], ttt.window) for n in range(1, len(r.val_error)))
    assert first_a.train_loss[-1] < first_a.train_loss[0]
    # the adapted network differs from the checkpoint's reconstruction
    k, m, sens = _batch(a)
    with torch.no_grad():
        plain = reconstruct(model, spec, k, m[0], a.target_shape, a.num_low_frequencies, sens[0])[0].numpy()
    assert np.abs(plain - first_a.magnitude).max() > 0


def test_ttt_refuses_networks_without_kspace_output(data):
    spec = spec_from_config({"family": "unet", "chans": 4, "pools": 2})
    with pytest.raises(ValueError, match="input: complex"):
        adapt_slice(init_model(spec, 0), spec, _item(*data), TTTSpec(max_steps=2), seed=0)
    spec = spec_from_config({"family": "unet", "chans": 4, "pools": 2, "input": "complex"})
    with pytest.raises(ValueError, match="no learning rate for the unet family"):
        adapt_slice(init_model(spec, 0), spec, _item(*data), TTTSpec(max_steps=10, window=2, lr={"varnet": 1e-3}), seed=0)


def test_ttt_summary_gap_closed():
    rows = []
    for stem, (pq, ttt, qq) in {"a": (0.80, 0.86, 0.90), "b": (0.70, 0.72, 0.80)}.items():
        for setting, ssim in (("p_q", pq), ("p_q_ttt", ttt), ("q_q", qq)):
            extra = {"steps": 10, "stopped_early": stem == "a"} if setting == "p_q_ttt" else {}
            rows.append({"shift": "s", "method": "v", "family": "varnet", "stem": stem, "slice": 0,
                         "setting": setting, "ssim": ssim, **extra})
    out = ttt_summary(pd.DataFrame(rows)).iloc[0]
    assert out["ssim_p_q"] == pytest.approx(0.75) and out["ssim_q_q"] == pytest.approx(0.85)
    assert out["gap"] == pytest.approx(0.10) and out["gap_closed"] == pytest.approx((0.79 - 0.75) / 0.10)
    assert out["slices"] == 2 and out["stopped_early"] == pytest.approx(0.5)
    # the interval: volumes resampled (a alone closes 60 %, b alone 20 %; both: 40 %); the draws hold no other value
    assert out["volumes"] == 2
    assert out["gap_closed_low"] == pytest.approx(0.2) and out["gap_closed_high"] == pytest.approx(0.6)
    assert ttt_summary(pd.DataFrame(rows), n_boot=50, seed=1).equals(ttt_summary(pd.DataFrame(rows), n_boot=50, seed=1))
    with pytest.raises(ValueError, match="q_q"):
        ttt_summary(pd.DataFrame([r for r in rows if not (r["stem"] == "b" and r["setting"] == "q_q")]))
    assert "gap_closed_ceiling" not in out.index  # no Q->Q+TTT rows, no ceiling columns


def test_ttt_summary_against_q_q_ttt():
    """ttt.reference_ttt: where TTT lifts the network trained on Q above Q->Q, the share is also measured against
    that ceiling (here TTT overshoots Q->Q: 140 %, but closes 70 % of the way to Q->Q+TTT); where TTT lowers the
    Q-trained network, Q->Q stays the ceiling. The papers' share against Q->Q is unchanged by the extra rows."""
    def rows_for(qq_ttt):
        rows = []
        for stem, (pq, ttt, qq) in {"a": (0.80, 0.87, 0.85), "b": (0.70, 0.77, 0.75)}.items():
            for setting, ssim in (("p_q", pq), ("p_q_ttt", ttt), ("q_q", qq), ("q_q_ttt", qq_ttt[stem])):
                extra = {"steps": 10, "stopped_early": False} if setting.endswith("ttt") else {}
                rows.append({"shift": "s", "method": "v", "family": "varnet", "stem": stem, "slice": 0,
                             "setting": setting, "ssim": ssim, **extra})
        return pd.DataFrame(rows)

    lifted = ttt_summary(rows_for({"a": 0.90, "b": 0.80})).iloc[0]
    assert lifted["gap_closed"] == pytest.approx(0.07 / 0.05)
    assert lifted["ssim_q_q_ttt"] == pytest.approx(0.85) and lifted["ceiling"] == pytest.approx(0.85)
    assert lifted["gap_closed_ceiling"] == pytest.approx(0.07 / 0.10)
    assert lifted["gap_closed_ceiling_low"] == pytest.approx(0.7) and lifted["gap_closed_ceiling_high"] == pytest.approx(0.7)
    lowered = ttt_summary(rows_for({"a": 0.80, "b": 0.70})).iloc[0]
    assert lowered["ceiling"] == pytest.approx(0.80) and lowered["gap_closed_ceiling"] == pytest.approx(lowered["gap_closed"])
    three = rows_for({"a": 0.9, "b": 0.8})
    base = ttt_summary(three[three["setting"] != "q_q_ttt"])
    assert ttt_summary(three)[base.columns].equals(base)
    with pytest.raises(ValueError, match="q_q_ttt"):  # present for some slices only
        ttt_summary(three.drop(three.index[(three["stem"] == "b") & (three["setting"] == "q_q_ttt")]))


def test_ttt_summary_reports_the_hidden_ablation_beside_the_study_protocol():
    """ttt.ablation_hidden: P->Q+TTT with the held-out points hidden gets its own columns (mean SSIM, share of
    the gap to Q->Q with its interval, steps); the study protocol's columns are those of a run without it."""
    rows = []
    for stem, (pq, ttt, qq, hidden) in {"a": (0.80, 0.88, 0.90, 0.82), "b": (0.70, 0.78, 0.80, 0.74)}.items():
        for setting, ssim in (("p_q", pq), ("p_q_ttt", ttt), ("q_q", qq), ("p_q_ttt_hidden", hidden)):
            extra = ({"steps": 30 if setting == "p_q_ttt" else 12, "stopped_early": setting != "p_q_ttt"}
                     if "ttt" in setting else {})
            rows.append({"shift": "s", "method": "v", "family": "varnet", "stem": stem, "slice": 0,
                         "setting": setting, "ssim": ssim, **extra})
    table = pd.DataFrame(rows)
    out = ttt_summary(table).iloc[0]
    assert out["gap_closed"] == pytest.approx(0.8) and out["gap_closed_hidden"] == pytest.approx(0.03 / 0.10)
    assert out["gap_closed_hidden_low"] == pytest.approx(0.2) and out["gap_closed_hidden_high"] == pytest.approx(0.4)
    assert out["steps"] == 30 and out["steps_hidden"] == 12 and out["stopped_early_hidden"] == 1.0
    base = ttt_summary(table[table["setting"] != "p_q_ttt_hidden"])
    assert ttt_summary(table)[base.columns].equals(base) and "gap_closed_hidden" not in base.columns
    with pytest.raises(ValueError, match="p_q_ttt_hidden"):  # present for some slices only
        ttt_summary(table.drop(table.index[(table["stem"] == "b") & (table["setting"] == "p_q_ttt_hidden")]))


@pytest.mark.parametrize("hide", [False, True])
def test_hidden_holdout_points_do_not_reach_the_network(hide, data):
    """With hide_holdout the held-out measurements only enter the validation error; without it (the
    study's notebooks) they are part of the network's input and so change the training trajectory."""
    table, maps = data
    spec = spec_from_config(VARNET)
    model = init_model(spec, 0).eval()
    item = _item(table, maps)
    ttt = TTTSpec(max_steps=4, window=10, hide_holdout=hide, lr={"unet": 1e-3, "varnet": 1e-3})
    _, held = holdout_split(item.mask, item.kspace.shape[-2], ttt.holdout, seed=9, keep_center=item.num_low_frequencies)
    changed = SliceInput(**{**item.__dict__, "kspace": item.kspace + 5 * held.numpy() * np.abs(item.kspace).max()})
    a, b = adapt_slice(model, spec, item, ttt, seed=9), adapt_slice(model, spec, changed, ttt, seed=9)
    assert a.val_error[0] != b.val_error[0]
    assert (a.train_loss == b.train_loss) == hide


def test_varnet_with_espirit_maps_trains_and_needs_them(data, tmp_path):
    table, maps = data
    spec = spec_from_config({**VARNET_E, "epochs": 2})
    assert needs_maps(spec)
    _, history = train(spec, table, MASK, SEED, tmp_path / "a", "cpu", maps=maps)
    assert np.isfinite(history["train_loss"]).all() and np.isfinite(history["val_ssim"]).all()
    with pytest.raises(ValueError, match="ESPIRiT maps"):
        train(spec, table, MASK, SEED, tmp_path / "b", "cpu")
    # the cascades use the given maps: other maps, another reconstruction
    item = _item(table, maps)
    model = init_model(spec, 0).eval()
    k, m, sens = _batch(item)
    with torch.no_grad():
        a = reconstruct(model, spec, k, m[0], item.target_shape, item.num_low_frequencies, sens[0])
        b = reconstruct(model, spec, k, m[0], item.target_shape, item.num_low_frequencies, sens[0].roll(3, -1))
    assert not torch.allclose(a, b)


def _ttt_case(low, high, closed=None, **extra):
    closed = (low + high) / 2 if closed is None else closed
    return {"shift": "s", "method": "v", "ssim_p_q": 0.8, "ssim_p_q_ttt": 0.8 + 0.1 * closed, "ssim_q_q": 0.9,
            "gap": 0.1, "gap_closed": closed, "gap_closed_low": low, "gap_closed_high": high, "steps": 100.0,
            "stopped_early": 1.0, "ttt_change": 0.1 * closed, "volumes": 5, **extra}


@pytest.mark.parametrize("interval,verdict", [((0.6, 0.9), "yes"), ((0.1, 0.4), "no"), ((0.3, 0.8), "undecided")])
def test_ttt_verdict_reads_the_interval(interval, verdict):
    """"Most of the gap": yes only when the whole interval lies above one half, no when it lies below, else
    undecided; a case without a gap never decides."""
    from robustcs.findings import ttt_closes_gap

    rows = [_ttt_case(*interval), {**_ttt_case(0.9, 0.9), "method": "w", "gap_closed": float("nan")}]
    row = ttt_closes_gap(pd.DataFrame(rows))
    assert row["reproduces"] == verdict, row
    assert "s/w has no gap" in row["details"]


def test_ttt_verdict_reports_the_hidden_ablation_without_deciding_on_it():
    from robustcs.findings import ttt_closes_gap

    hidden = {"gap_closed_hidden": 0.1, "gap_closed_hidden_low": 0.0, "gap_closed_hidden_high": 0.2,
              "ssim_p_q_ttt_hidden": 0.81, "steps_hidden": 60.0}
    row = ttt_closes_gap(pd.DataFrame([_ttt_case(0.7, 0.9, **hidden)]))
    assert row["reproduces"] == "yes"
    assert "hidden from the network's input: s/v 10 % [0, 20] (P→Q+TTT 0.810, 60 steps)" in row["details"]


def test_holdout_lines_hold_out_whole_sampled_columns():
    """holdout_lines: the held-out pattern is whole sampled columns outside the centre, about the fraction of them;
    the loss keeps the rest of the mask; seeded."""
    mask = np.zeros(64, bool)
    mask[28:36] = True  # the centre
    mask[np.arange(0, 64, 3)] = True
    train_w, val_w = holdout_split(mask, 16, 0.2, seed=3, keep_center=8, lines=True)
    held = val_w.numpy()
    columns = np.flatnonzero(held.any(0))
    assert held[:, columns].all() and held.sum() == 16 * len(columns)  # whole columns
    assert mask[columns].all() and not (held[:, 28:36]).any()  # sampled ones, never the centre
    candidates = int(mask.sum()) - 8
    assert len(columns) == round(0.2 * candidates)
    np.testing.assert_array_equal(train_w.numpy() + held, np.broadcast_to(mask, (16, 64)).astype(np.float32))
    assert torch.equal(holdout_split(mask, 16, 0.2, seed=3, keep_center=8, lines=True)[1], val_w)
    assert not torch.equal(holdout_split(mask, 16, 0.2, seed=4, keep_center=8, lines=True)[1], val_w)
    with pytest.raises(ValueError, match="lines"):
        holdout_split(mask, 16, 0.2, seed=3, keep_center=64, lines=True)


def test_ttt_verdict_is_undecided_on_too_few_volumes():
    from robustcs.findings import ttt_closes_gap

    row = pd.DataFrame([_ttt_case(0.7, 0.9, volumes=2)])
    assert ttt_closes_gap(row, min_volumes=3)["reproduces"] == "undecided"
    assert ttt_closes_gap(row, min_volumes=2)["reproduces"] == "yes"
    assert "fewer than findings.min_volumes = 3" in ttt_closes_gap(row, min_volumes=3)["details"]
