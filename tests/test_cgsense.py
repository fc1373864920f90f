"""CG-SENSE with Tikhonov regularisation: against sigpy's SenseRecon, exactness, gradients, config errors."""

import numpy as np
import pytest
import sigpy.mri as mr
import torch
from conftest import variant_error

from robustcs.cgsense import CGSenseSpec, absolute_lambda, cg_sense, cg_sense_recon, eigenvalue_bound
from robustcs.physics import MultiCoilOperator, as_complex_tensor


@pytest.fixture(scope="module")
def problem(tiny_volume):
    """One undersampled slice (20 % random columns + 10 centre lines) of the tiny volume, 4 coils."""
    kspace, _, maps = tiny_volume
    w = kspace.shape[-1]
    mask = (np.random.default_rng(1).random(w) < 0.2).astype(np.float32)
    mask[w // 2 - 5 : w // 2 + 5] = 1
    return kspace[0] * mask, mask, maps


def unit_maps(maps):
    """The maps normalised to Σ_c |S_c|² = 1 in every pixel (the simulated birdcage maps cover every pixel)."""
    return maps / np.sqrt((np.abs(maps) ** 2).sum(0, keepdims=True))


def rel_err(a, b):
    return np.linalg.norm(a - b) / np.linalg.norm(b)


@pytest.mark.parametrize("lam,scale", [(1e-2, 1.0), (1e-2, 2.0), (1e-4, 1.0)])
def test_agrees_with_sigpy_senserecon(problem, lam, scale):
    """Same normal equations (sigpy minimises 1/2||Ax-y||² + λ/2||x||², lamda = our λ_abs), same CG from 0,
    same centred orthonormal FFT: relative error < 1e-3 after 30 iterations (measured ~1e-5 for λ = 1e-2,
    ~7e-5 for λ = 1e-4: float32 rounding of two implementations); a wrong λ scaling (λ_abs off by 2) is
    far outside it. The simulated maps have Σ_c|S_c|² = 1, so scale = 2 (maps and k-space) checks
    λ_abs = λ · max Σ_c|S_c|² = 4λ."""
    y, mask, maps = problem
    y, maps = scale * y, scale * maps
    op = MultiCoilOperator(mask, as_complex_tensor(maps))
    spec = CGSenseSpec(lam=lam, iterations=30)
    ours = cg_sense_recon(as_complex_tensor(y), op, spec).numpy()
    lam_abs = float(absolute_lambda(spec, op))
    assert lam_abs == pytest.approx(lam * float((np.abs(maps) ** 2).sum(0).max()), rel=1e-6)
    weights = np.broadcast_to(mask, y.shape[1:]).copy()
    theirs = mr.app.SenseRecon(y, maps, lamda=lam_abs, weights=weights, max_iter=30, show_pbar=False).run()
    assert rel_err(ours, theirs) < 1e-3
    if lam >= 1e-2:
        off = mr.app.SenseRecon(y, maps, lamda=2 * lam_abs, weights=weights, max_iter=30, show_pbar=False).run()
        assert rel_err(ours, off) > 1e-2


def test_relative_lambda_is_scale_invariant(problem):
    """Scaling the k-space by a and the maps by s scales the solution by a/s, for the same relative λ."""
    y, mask, maps = problem
    spec = CGSenseSpec(lam=1e-2, iterations=30)
    x = cg_sense_recon(as_complex_tensor(y), MultiCoilOperator(mask, as_complex_tensor(maps)), spec).numpy()
    a, s = 1e-3, 3.0
    op2 = MultiCoilOperator(mask, as_complex_tensor(s * maps))
    x2 = cg_sense_recon(as_complex_tensor(a * y), op2, spec).numpy()
    assert rel_err(x2, (a / s) * x) < 1e-3


def test_fully_sampled_lambda_zero_reproduces_the_image(rng):
    """Exact unit-norm maps, full k-space, λ = 0: A^H A = I in the support, the image comes back (and x is
    0 outside the support, where the maps are cropped)."""
    c, h, w = 4, 32, 32
    maps = unit_maps(mr.birdcage_maps((c, h, w), r=1.5, nzz=c)).astype(np.complex64)
    maps[:, :3] = 0  # cropped rows: outside the support
    image = (rng.standard_normal((h, w)) + 1j * rng.standard_normal((h, w))).astype(np.complex64)
    image[:3] = 0
    op = MultiCoilOperator(np.ones(w, np.float32), as_complex_tensor(maps))
    y = op.forward(as_complex_tensor(image))
    x = cg_sense_recon(y, op, CGSenseSpec(lam=0.0, iterations=30))
    assert torch.isfinite(x.abs()).all()
    assert rel_err(x.numpy(), image) < 1e-5
    assert x[:3].abs().max().item() == 0
    assert float(eigenvalue_bound(op)) == pytest.approx(1.0, rel=1e-5)


def test_gradient_matches_finite_difference(problem):
    """d/dε f(cg(y + ε v)) by central differences (complex128) equals Re<∇_y f, v> from autograd."""
    y, mask, maps = problem
    op = MultiCoilOperator(mask, torch.as_tensor(maps.astype(np.complex128)))
    y0 = torch.as_tensor(y.astype(np.complex128))
    g = torch.Generator().manual_seed(0)
    v = torch.as_tensor(mask) * torch.randn(y0.shape, dtype=torch.complex128, generator=g) * y0.abs().mean()
    spec = CGSenseSpec(lam=1e-2, iterations=10)

    def f(yy):
        return (cg_sense_recon(yy, op, spec).abs() ** 2).sum()

    yt = y0.clone().requires_grad_()
    f(yt).backward()
    assert torch.isfinite(yt.grad.abs()).all() and yt.grad.abs().sum() > 0
    eps = 1e-4
    with torch.no_grad():
        fd = (f(y0 + eps * v) - f(y0 - eps * v)) / (2 * eps)
    ad = torch.vdot(yt.grad.flatten(), v.flatten()).real
    assert float(abs(ad - fd) / abs(fd)) < 1e-6


@pytest.mark.parametrize("lam", [0.0, 1e-2])
def test_zero_residual_gives_finite_output_and_gradient(lam, rng):
    """y = 0 (residual exactly 0 from the start) and a converged fully sampled λ = 0 solve run past
    convergence: no NaN in the output or the gradient."""
    c, h, w = 4, 32, 32
    maps = as_complex_tensor(unit_maps(mr.birdcage_maps((c, h, w), r=1.5, nzz=c)))
    op = MultiCoilOperator(np.ones(w, np.float32), maps)
    spec = CGSenseSpec(lam=lam, iterations=20)
    zero = torch.zeros((c, h, w), dtype=torch.complex64, requires_grad=True)
    x = cg_sense_recon(zero, op, spec)
    x.abs().sum().backward()
    assert (x == 0).all() and torch.isfinite(zero.grad.abs()).all()
    image = as_complex_tensor(rng.standard_normal((h, w)))
    y = op.forward(image).detach().requires_grad_()
    x = cg_sense_recon(y, op, spec)
    (x.abs() ** 2).sum().backward()
    assert torch.isfinite(x.abs()).all() and torch.isfinite(y.grad.abs()).all()
    if lam == 0:
        assert rel_err(x.detach().numpy(), image.numpy()) < 1e-5


def test_batch_items_are_independent_systems(problem):
    y, mask, maps = problem
    op = MultiCoilOperator(mask, as_complex_tensor(maps))
    yt = as_complex_tensor(y)
    batch = torch.stack([yt, 10 * yt.flip(-1)])
    x = cg_sense(batch, op, 1e-2, 15)
    for i in range(2):
        single = cg_sense(batch[i], op, 1e-2, 15).numpy()
        np.testing.assert_allclose(x[i].numpy(), single, rtol=0, atol=1e-4 * float(x[i].abs().max()))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_runs_on_cuda(problem):
    y, mask, maps = problem
    spec = CGSenseSpec(lam=1e-2, iterations=30)
    cpu = cg_sense_recon(as_complex_tensor(y), MultiCoilOperator(mask, as_complex_tensor(maps)), spec)
    dev = torch.device("cuda")
    yt = as_complex_tensor(y, dev).requires_grad_()
    out = cg_sense_recon(yt, MultiCoilOperator(mask, as_complex_tensor(maps, dev)), spec)
    assert out.device.type == "cuda"
    assert rel_err(out.detach().cpu().numpy(), cpu.numpy()) < 1e-4
    out.abs().sum().backward()
    assert torch.isfinite(yt.grad.abs()).all()


def test_spec_from_config_and_errors():
    spec = CGSenseSpec.from_config({"family": "cgsense", "lam": 0.05, "iterations": 12})
    assert spec == CGSenseSpec(lam=0.05, iterations=12)
    assert spec.as_dict() == {"lam": 0.05, "iterations": 12}
    assert CGSenseSpec.from_config({}) == CGSenseSpec()
    with pytest.raises(ValueError, match="cgsense method: unknown key.*lamda"):
        CGSenseSpec.from_config({"family": "cgsense", "lamda": 0.01})
    # ranges: config/schema.yaml method_cgsense, checked at start-up (NaN: Study.from_config's finite check)
    assert "config methods.v.lamda: unknown key (did you mean 'lam'?)" in variant_error(
        {"family": "cgsense", "lamda": 0.01})
    for key, value in (("lam", -1e-3), ("lam", "x"), ("iterations", 0), ("iterations", 2.5), ("iterations", True)):
        assert f"config methods.v.{key}: got {value!r}; expected" in variant_error({"family": "cgsense", key: value})
    assert variant_error({"family": "cgsense", "lam": 0, "iterations": 1}) == ""
