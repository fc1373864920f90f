"""Adversarial attacks: the budget projection, PGD and the ConvDecoder's joint scheme, and that every method
is hurt more by the attack than by random noise of the same norm."""

import numpy as np
import pytest
import torch

from robustcs.attacks import (
    AttackSpec, attack_slice, attack_slices, budget, convdecoder_joint_attack, pgd_attack, plateau_rise, project, random_perturbation,
    step_schedule)
from robustcs.masks import MaskSpec, make_mask
from robustcs.methods import load_method
from robustcs.metrics import magnitude_crop, slice_metrics
from robustcs.networks import init_model, save_model, spec_from_config
from robustcs.recon_io import SliceInput

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def item(tiny_volume):
    kspace, target, maps = tiny_volume
    mask, num_low, _ = make_mask(MaskSpec("random", 4, 0.16), kspace.shape[-1], seed=0)
    return SliceInput("tiny", 0, kspace[0].astype(np.complex64), mask.astype(np.float32), int(num_low),
                      maps.astype(np.complex64), target[0].astype(np.float32), float(target.max()))


@pytest.fixture(scope="module")
def unet_file(tmp_path_factory):
    spec = spec_from_config({"family": "unet", "chans": 4, "pools": 2})
    path = tmp_path_factory.mktemp("model") / "model.pt"
    save_model(path, spec, init_model(spec, seed=0))
    return path


def test_projection_keeps_the_budget_and_the_sampled_locations(rng):
    mask = torch.from_numpy((rng.random(24) < 0.3).astype(np.float32))
    e = torch.from_numpy(rng.standard_normal((3, 16, 24)) + 1j * rng.standard_normal((3, 16, 24))).to(torch.complex64)
    for radius in (0.1, 1.0, 1e3):
        p = project(e, mask, radius)
        assert float(torch.linalg.vector_norm(p)) <= radius * (1 + 1e-6)
        assert torch.all(p[..., mask == 0] == 0)
        assert torch.allclose(project(p, mask, radius), p)  # idempotent
    inside = project(e, mask, 1e3)
    assert torch.allclose(inside, mask * e)  # inside the ball only the mask acts
    assert float(torch.linalg.vector_norm(project(e, mask, 0.5))) == pytest.approx(0.5, rel=1e-5)


def test_budget_references(item):
    k = torch.from_numpy(item.kspace)
    mask = torch.from_numpy(item.mask)
    full, measured = budget(k, mask, 0.1, "full"), budget(k, mask, 0.1, "measured")
    assert full == pytest.approx(0.1 * float(torch.linalg.vector_norm(k)), rel=1e-6)
    assert measured == pytest.approx(0.1 * float(torch.linalg.vector_norm(mask * k)), rel=1e-6)
    assert measured < full


def test_random_perturbation_norm_and_support(item):
    mask = torch.from_numpy(item.mask)
    e = random_perturbation(item.kspace.shape, mask, 0.25, seed=3)
    assert float(torch.linalg.vector_norm(e)) == pytest.approx(0.25, rel=1e-5)
    assert torch.all(e[..., mask == 0] == 0)
    assert torch.equal(e, random_perturbation(item.kspace.shape, mask, 0.25, seed=3))


def test_pgd_increases_the_loss_within_the_budget(item):
    method = load_method("l1", {"family": "l1", "lam": 1e-3, "iterations": 20})
    psi = method.differentiable(item)
    y = method.measurements(item)
    mask = torch.from_numpy(item.mask)
    radius = budget(torch.from_numpy(item.kspace), mask, 0.02, "full")
    spec = AttackSpec(epsilons=(0.02,), steps=6)
    result = pgd_attack(psi, y, mask, radius, spec, seed=0)
    e = result.perturbation
    assert float(torch.linalg.vector_norm(e)) <= radius * (1 + 1e-5)
    assert torch.all(e[..., mask == 0] == 0)
    assert max(result.losses) == result.losses[result.best_step]
    assert max(result.losses) > 100 * result.losses[0]  # from the tiny random start to a real attack
    with torch.no_grad():
        clean = psi(y)
        noise = random_perturbation(y.shape, mask, float(torch.linalg.vector_norm(e)), seed=1)
        attacked = float((psi(y + e) - clean).square().sum())
        random = float((psi(y + noise) - clean).square().sum())
    assert attacked == pytest.approx(max(result.losses), rel=1e-4)  # the kept iterate is the worst one
    assert attacked > 3 * random


def test_the_fused_l1_attack_follows_the_reference_path(item):
    """The ℓ1 attack through the fused solver (implementation: fused) reaches what the reference's reaches: losses
    to 2 %, the best loss to 0.5 %, attacked outputs to 2 % of their norm. The first steps start from a loss near 0,
    where float32 rounding steers the gradient: the reference itself, run on k-space scaled by 1 + 2^-18 (only the
    rounding changes; λ and budget are relative), moved its losses by up to 0.7 %, its outputs by 1 % and its
    perturbations by 16 % (measured; the fused solver: 0.9 %, 0.6 %, 10 %), so the perturbations are not compared."""
    spec = AttackSpec(epsilons=(0.02, 0.08), steps=6)
    got = {impl: attack_slice(load_method("l1", {"family": "l1", "lam": 1e-3, "iterations": 20,
                                                 "implementation": impl}), item, spec, seed=3)
           for impl in ("reference", "fused")}
    ref, fused = got["reference"], got["fused"]
    np.testing.assert_allclose(fused.clean, ref.clean, rtol=0, atol=1e-5 * float(ref.clean.max()))
    for i in range(len(spec.epsilons)):
        np.testing.assert_allclose(fused.losses[i], ref.losses[i], rtol=2e-2)
        assert max(fused.losses[i]) == pytest.approx(max(ref.losses[i]), rel=5e-3)
        assert np.linalg.norm(fused.adversarial[i] - ref.adversarial[i]) < 2e-2 * np.linalg.norm(ref.adversarial[i])
        assert fused.norms[i] <= fused.budgets[i] * (1 + 1e-5)


@pytest.mark.parametrize(
    "name, settings",
    [
        ("zf", {"family": "zero_filled"}),
        pytest.param("l1", {"family": "l1", "lam": 1e-3, "iterations": 20}, marks=pytest.mark.slow),  # ~11 s
        ("cgsense", {"family": "cgsense", "lam": 1e-2, "iterations": 10}),
        # 80 fit iterations: after 40 the fit is still moving so much that at ε 0.03 a fresh fit on y + e changed
        # as much under random noise as under the attack (ratio 0.997 on one machine, 1.25 with 80)
        pytest.param("cd", {"family": "convdecoder", "channels": 16, "layers": 3, "input_shape": [4, 4], "iterations": 80},
                     marks=pytest.mark.slow),  # ~6 s
        ("unet", {"family": "unet"}),
    ],
)
def test_attack_hurts_more_than_random_noise_of_the_same_norm(item, unet_file, name, settings):
    method = load_method(name, settings, model_path=unet_file if name == "unet" else None, seed=0)
    spec = AttackSpec(epsilons=(0.03, 0.08), steps=100)  # the same steps for every method (the joint scheme needs them)
    result = attack_slice(method, item, spec, seed=7)
    clean, _ = method.reconstruct(item)
    np.testing.assert_allclose(result.clean, magnitude_crop(clean, item.target_shape), rtol=1e-5)
    mask = item.mask
    for i, eps in enumerate(spec.epsilons):
        assert result.norms[i] <= result.budgets[i] * (1 + 1e-5)
        assert result.budgets[i] == pytest.approx(eps * np.linalg.norm(item.kspace), rel=1e-5)
        assert np.all(result.perturbations[i][..., mask == 0] == 0)
        err_adv = np.linalg.norm(result.adversarial[i] - result.clean)
        err_rand = np.linalg.norm(result.random[i] - result.clean)
        assert err_adv > err_rand, f"{name} eps={eps}: attack {err_adv:.3g} vs random {err_rand:.3g}"
    if name != "unet":  # an untrained U-Net has no quality to lose; the others must lose quality
        score = lambda img: slice_metrics(item.target, img, item.maxval)  # noqa: E731
        adv, rand = score(result.adversarial[-1]), score(result.random[-1])
        assert adv["psnr"] < rand["psnr"]  # the attack ascends an l2 distance: PSNR falls more than under noise
        if name != "cd":
            # The ConvDecoder's fit (clean SSIM 0.745 after 80 iterations) is as noisy as random noise makes it: its
            # SSIM under attack against noise depends on the machine's float order (0.725 vs 0.721 on one, the
            # reverse on another) while its PSNR falls 0.5 dB more under attack at every seed and fit length tried.
            assert adv["ssim"] < rand["ssim"]


def test_joint_attack_leaves_its_start_unchanged(item):
    """Every ε starts from the same clean fit: a first attack must not leak into the second (Adam moments
    restored by load_state_dict alias the saved tensors, which once let one attack change the next one's start)."""
    method = load_method("cd", {"family": "convdecoder", "channels": 8, "layers": 3, "input_shape": [4, 4],
                                "iterations": 20})
    y = method.measurements(item)
    start = method.fit(item, y, keep_state=True).state
    spec = AttackSpec(epsilons=(0.05,), steps=10)
    radius = budget(torch.from_numpy(item.kspace), torch.from_numpy(item.mask), 0.05, "full")
    first = convdecoder_joint_attack(start, y, radius, spec)
    second = convdecoder_joint_attack(start, y, radius, spec)
    assert torch.equal(first.perturbation, second.perturbation)
    assert first.losses == second.losses


def test_attack_is_deterministic(item):
    method = load_method("l1", {"family": "l1", "lam": 1e-3, "iterations": 10})
    spec = AttackSpec(epsilons=(0.05,), steps=3)
    a, b = attack_slice(method, item, spec, seed=5), attack_slice(method, item, spec, seed=5)
    np.testing.assert_array_equal(a.adversarial[0], b.adversarial[0])
    np.testing.assert_array_equal(a.perturbations[0], b.perturbations[0])


def test_measured_reference_and_spec_errors(item):
    method = load_method("zf", {"family": "zero_filled"})
    spec = AttackSpec.from_config({"epsilons": [0.05], "reference": "measured", "steps": 2})
    result = attack_slice(method, item, spec, seed=0)
    assert result.budgets[0] == pytest.approx(0.05 * np.linalg.norm(item.kspace * item.mask), rel=1e-5)
    # unknown keys; the values' ranges are config/schema.yaml's (tests/test_schema_specs.py)
    for bad, key in (({"cd_steps": 10}, "cd_steps"), ({"epsilon": [0.1]}, "epsilon")):
        with pytest.raises(ValueError, match=key):
            AttackSpec.from_config(bad)


def test_plateau_rise_and_step_schedule():
    assert plateau_rise([0.0] + [1.0] * 9 + [1.005]) == pytest.approx(0.005)  # the last 10 %: one of 11 values
    assert plateau_rise(list(range(1, 11))) == pytest.approx((10 - 9) / 9)  # still rising: 11 % in the last step
    assert plateau_rise([3.0, 2.0, 1.0]) == 0.0  # the best was found early: nothing gained at the end
    assert plateau_rise([1.0, 2.0, 2.0, 2.0], tail=0.5) == 0.0 and plateau_rise([1.0, 1.0, 1.0, 2.0], tail=0.5) == 1.0
    assert step_schedule(0, 10) == 1.0 and step_schedule(5, 10) == pytest.approx(0.5) and step_schedule(10, 10) == 0.0


def test_every_method_gets_the_same_steps_and_records_its_loss(item, unet_file):
    """Equal effort: PGD methods and the ConvDecoder's joint scheme run the configured steps (steps + 1 loss
    values: the start and after each step); with the decaying schedule the attacks on this slice settle."""
    spec = AttackSpec(epsilons=(0.04,), steps=12)
    methods = {"zf": {"family": "zero_filled"}, "l1": {"family": "l1", "lam": 1e-3, "iterations": 10},
               "cd": {"family": "convdecoder", "channels": 8, "layers": 3, "input_shape": [4, 4], "iterations": 20}}
    rises = {}
    for name, settings in methods.items():
        result = attack_slice(load_method(name, settings), item, spec, seed=2)
        assert [len(losses) for losses in result.losses] == [spec.steps + 1]
        rises[name] = plateau_rise(result.losses[0])
    result = attack_slice(load_method("unet", {"family": "unet"}, model_path=unet_file), item, spec, seed=2)
    assert len(result.losses[0]) == spec.steps + 1
    assert rises["zf"] < 0.01 and rises["l1"] < 0.01, rises


def test_joint_attack_settles_and_keeps_the_farthest_state(item):
    """The joint scheme's distance (the network's move on the sampled k-space) is bounded for cd_weight < 1: the
    attack settles (< 1 % rise in the last 10 % of the steps; with the whole-image distance it kept rising), and
    the e kept uses the whole budget, on the sampled locations only."""
    method = load_method("cd", {"family": "convdecoder", "channels": 8, "layers": 3, "input_shape": [4, 4],
                                "iterations": 60})
    y = method.measurements(item)
    start = method.fit(item, y, keep_state=True).state
    radius = budget(torch.from_numpy(item.kspace), torch.from_numpy(item.mask), 0.08, "full")
    result = convdecoder_joint_attack(start, y, radius, AttackSpec(epsilons=(0.08,), steps=40))
    assert len(result.losses) == 41 and result.losses[0] == 0.0
    assert max(result.losses) > 0 and plateau_rise(result.losses) < 0.01, result.losses[-6:]
    assert float(torch.linalg.vector_norm(result.perturbation)) == pytest.approx(radius, rel=1e-4)
    assert torch.all(result.perturbation[..., torch.from_numpy(item.mask) == 0] == 0)


@pytest.fixture(scope="module")
def varnet_file(tmp_path_factory):
    spec = spec_from_config({"family": "varnet", "cascades": 2, "chans": 4, "pools": 2, "sens_chans": 2, "sens_pools": 2})
    path = tmp_path_factory.mktemp("varnet") / "model.pt"
    save_model(path, spec, init_model(spec, seed=0))
    return path


# every projected-gradient family (and ℓ1 with the power method, which attacks slice by slice)
PGD_METHODS = [
    ("zf", {"family": "zero_filled"}),
    ("l1", {"family": "l1", "lam": 1e-2, "iterations": 15}),
    ("l1_power", {"family": "l1", "lam": 1e-2, "iterations": 15, "power_iterations": 5}),
    ("l1_fused", {"family": "l1", "lam": 1e-2, "iterations": 15, "implementation": "fused"}),
    ("cgsense", {"family": "cgsense", "lam": 1e-2, "iterations": 8}),
    ("unet", {"family": "unet"}),
    ("varnet", {"family": "varnet"}),
]


@pytest.mark.parametrize("name, settings", PGD_METHODS)
def test_budgets_attacked_in_one_batch_follow_their_own_paths(item, unet_file, varnet_file, name, settings):
    """The ε of a slice go through the method as one batch (spec.batch 0): each must get the perturbation, loss
    curve and scores it gets when attacked alone (batch 1), so the batch is only a speed-up. Per-item data
    scales (ℓ1's relative λ) and per-item projections are what this catches."""
    model = {"unet": unet_file, "varnet": varnet_file}.get(name)
    method = load_method(name, settings, model_path=model)
    y = method.measurements(item)
    ys = torch.stack([y, 2.5 * y, 0.1 * y])  # items of very different scale: a shared λ or L would show
    together = method.forward(item, ys)[0]
    for i in range(3):
        torch.testing.assert_close(together[i], method.forward(item, ys[i])[0], rtol=1e-4, atol=1e-4 * float(together[i].abs().max()))
    spec = AttackSpec(epsilons=(0.01, 0.04, 0.08), steps=6)
    batched = attack_slice(method, item, spec, seed=3)
    alone = attack_slice(method, item, AttackSpec(epsilons=(0.01, 0.04, 0.08), steps=6, batch=1), seed=3)
    # a network's convolutions round differently for a batch of 3 than for 1 (float32), and the attack's first
    # gradients act on a loss near 0, where that rounding matters: the paths agree to ~1 %, not to 1e-3
    tol = 2e-2 if name in ("unet", "varnet") else 2e-3
    for i in range(3):
        np.testing.assert_allclose(batched.losses[i][1:], alone.losses[i][1:], rtol=tol)
        if name not in ("unet", "varnet"):  # (an untrained VarNet's attack reaches the same loss along other e)
            diff = np.linalg.norm(batched.perturbations[i] - alone.perturbations[i]) / np.linalg.norm(alone.perturbations[i])
            assert diff < tol, f"eps {spec.epsilons[i]}: perturbations differ by {diff:.2%}"
        change = np.linalg.norm(batched.adversarial[i] - alone.adversarial[i]) / np.linalg.norm(alone.clean)
        assert change < tol, f"eps {spec.epsilons[i]}: attacked outputs differ by {change:.2%} of the clean one"
    assert AttackSpec.from_config({"batch": 2}).batch == 2


@pytest.mark.parametrize("name, settings", PGD_METHODS)
def test_slices_attacked_in_one_batch_follow_their_own_paths(item, tiny_volume, unet_file, varnet_file, name, settings):
    """A job's slices go through a method that batches slices as one PGD batch of (slice, ε) items: each slice
    must get what it gets attacked alone. The slices differ in mask, maps (so in ℓ1's step 1/L), data scale and
    k-space width (a part of the knee data mixes 368 and 372 columns: batched by shape), which a shared mask,
    step or λ, or a mixed-up item order, would show."""
    kspace, target, maps = tiny_volume
    other_mask, other_low, _ = make_mask(MaskSpec("random", 4, 0.16), kspace.shape[-1], seed=1)
    assert other_low == item.num_low_frequencies and not np.array_equal(other_mask, item.mask)
    narrow = (slice(None), slice(None), slice(2, -2))
    items = [
        item,
        SliceInput("tiny", 1, kspace[1].astype(np.complex64), other_mask.astype(np.float32), int(other_low),
                   (1.5 * maps).astype(np.complex64), target[1].astype(np.float32), float(target.max())),
        SliceInput("narrow", 0, kspace[0][narrow].astype(np.complex64), item.mask[2:-2], item.num_low_frequencies,
                   maps[narrow].astype(np.complex64), target[0][:, 2:-2].astype(np.float32), float(target.max())),
        SliceInput("loud", 0, (3 * kspace[0]).astype(np.complex64), other_mask.astype(np.float32), int(other_low),
                   maps.astype(np.complex64), (3 * target[0]).astype(np.float32), 3 * float(target.max())),
    ]
    model = {"unet": unet_file, "varnet": varnet_file}.get(name)
    method = load_method(name, settings, model_path=model)
    assert method.batches_slices == (name != "l1_power")
    spec = AttackSpec(epsilons=(0.02, 0.08), steps=6)
    seeds = [3, 4, 5, 6]
    together = attack_slices(method, items, spec, seeds)
    tol = 2e-2 if name in ("unet", "varnet") else 2e-3  # (float rounding of batched convolutions, see above)
    for it, seed, got in zip(items, seeds, together):
        alone = attack_slice(method, it, spec, seed)
        np.testing.assert_allclose(got.clean, alone.clean, rtol=1e-4, atol=1e-4 * float(alone.clean.max()))
        assert got.budgets == pytest.approx(alone.budgets, rel=1e-9)
        for i, eps in enumerate(spec.epsilons):
            np.testing.assert_allclose(got.losses[i][1:], alone.losses[i][1:], rtol=tol, err_msg=f"{it.stem} {eps}")
            assert got.perturbations[i].shape == it.kspace.shape
            assert np.all(got.perturbations[i][..., it.mask == 0] == 0)  # on this slice's own sampled columns
            if name not in ("unet", "varnet"):
                diff = np.linalg.norm(got.perturbations[i] - alone.perturbations[i]) / np.linalg.norm(alone.perturbations[i])
                assert diff < tol, f"{it.stem} eps {eps}: perturbations differ by {diff:.2%}"
            change = np.linalg.norm(got.adversarial[i] - alone.adversarial[i]) / np.linalg.norm(alone.clean)
            assert change < tol, f"{it.stem} eps {eps}: attacked outputs differ by {change:.2%} of the clean one"
            noise = np.linalg.norm(got.random[i] - alone.random[i]) / np.linalg.norm(alone.clean)
            assert noise < 1e-3, f"{it.stem} eps {eps}: outputs for random noise differ by {noise:.2%}"
