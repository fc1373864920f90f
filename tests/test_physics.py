"""The shared forward operator A = M·F·S: adjointness, agreement with sigpy, differentiability."""

import numpy as np
import pytest
import sigpy as sp
import sigpy.mri as mr
import torch

from robustcs.physics import MultiCoilOperator, as_complex_tensor, fft2c, ifft2c, rss, zero_filled


def _crandn(rng, *shape):
    return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(np.complex64)


@pytest.fixture
def problem(rng):
    coils, h, w = 5, 24, 20
    maps = mr.birdcage_maps((coils, h, w)).astype(np.complex64)
    mask = (rng.random(w) < 0.4).astype(np.float32)
    mask[w // 2 - 2 : w // 2 + 2] = 1
    return maps, mask


def _inner(a, b):
    return torch.vdot(a.flatten(), b.flatten())


def test_adjoint(problem, rng):
    maps, mask = problem
    op = MultiCoilOperator(mask, as_complex_tensor(maps))
    x = as_complex_tensor(_crandn(rng, *maps.shape[1:]))
    y = as_complex_tensor(_crandn(rng, *maps.shape))
    lhs, rhs = _inner(op(x), y), _inner(x, op.adjoint(y))
    assert abs(lhs - rhs) / abs(lhs) < 1e-5


def test_adjoint_coil_operator_batched(rng):
    mask = np.zeros((3, 1, 1, 16), np.float32)
    mask[..., ::2] = 1
    op = MultiCoilOperator(mask)  # no maps: per-coil images, batched masks
    x = as_complex_tensor(_crandn(rng, 3, 4, 12, 16))
    y = as_complex_tensor(_crandn(rng, 3, 4, 12, 16))
    lhs, rhs = _inner(op(x), y), _inner(x, op.adjoint(y))
    assert abs(lhs - rhs) / abs(lhs) < 1e-5
    assert op.image_shape(y) == y.shape


def test_agrees_with_sigpy_sense(problem, rng):
    maps, mask = problem
    op = MultiCoilOperator(mask, as_complex_tensor(maps))
    A = mr.linop.Sense(maps, weights=mask)  # binary weights: sqrt(w) = w
    x = _crandn(rng, *maps.shape[1:])
    y = _crandn(rng, *maps.shape)
    ours = op(as_complex_tensor(x)).numpy()
    theirs = A(x)
    assert np.linalg.norm(ours - theirs) / np.linalg.norm(theirs) < 1e-6
    ours_h = op.adjoint(as_complex_tensor(y)).numpy()
    theirs_h = A.H(y)
    assert np.linalg.norm(ours_h - theirs_h) / np.linalg.norm(theirs_h) < 1e-6


def test_fft_is_orthonormal_and_matches_sigpy(rng):
    x = _crandn(rng, 2, 10, 14)
    k = fft2c(as_complex_tensor(x))
    np.testing.assert_allclose(np.linalg.norm(k.numpy()), np.linalg.norm(x), rtol=1e-5)
    np.testing.assert_allclose(k.numpy(), sp.fft(x, axes=(-2, -1)), atol=1e-5)
    np.testing.assert_allclose(ifft2c(k).numpy(), x, atol=1e-5)


def test_max_eigenvalue_matches_sigpy(problem):
    maps, mask = problem
    op = MultiCoilOperator(mask, as_complex_tensor(maps))
    ours = op.max_eigenvalue(maps.shape[1:], iterations=60)
    A = mr.linop.Sense(maps, weights=mask)
    theirs = sp.app.MaxEig(A.N, dtype=np.complex64, max_iter=60, show_pbar=False).run()
    assert ours == pytest.approx(theirs, rel=1e-3)


def test_gradients_flow_through_operator(problem, rng):
    maps, mask = problem
    op = MultiCoilOperator(mask, as_complex_tensor(maps))
    x = as_complex_tensor(_crandn(rng, *maps.shape[1:])).requires_grad_()
    y = as_complex_tensor(_crandn(rng, *maps.shape))
    loss = 0.5 * (op(x) - y).abs().pow(2).sum()
    loss.backward()
    # d/dx* of 1/2||Ax - y||^2 is A^H(Ax - y); torch returns the conjugate-Wirtinger gradient times 2.
    expected = op.adjoint(op(x.detach()) - y)
    assert torch.allclose(x.grad, expected, atol=1e-4)


def test_zero_filled_rss_unmasked_is_rss_of_images(tiny_volume):
    kspace, _, _ = tiny_volume
    k = as_complex_tensor(kspace[0])
    images = zero_filled(k, np.ones(k.shape[-1], np.float32))
    np.testing.assert_allclose(rss(images).numpy(), np.sqrt((np.abs(np.fft.fftshift(
        np.fft.ifft2(np.fft.ifftshift(kspace[0], axes=(-2, -1)), norm="ortho"), axes=(-2, -1))) ** 2).sum(0)),
        rtol=1e-4, atol=1e-7)


@pytest.mark.parametrize("shape,mask_shape", [((24, 20), (20,)), ((24, 20), (24, 20)), ((23, 20), (20,)),
                                              ((24, 20), (3, 1, 1, 20)), ((24, 21), (21,)), ((23, 20), (23, 20)),
                                              ((23, 20), (3, 1, 1, 20))])
@pytest.mark.parametrize("with_maps", [True, False])
def test_normal_operator_equals_adjoint_of_forward(rng, shape, mask_shape, with_maps):
    """The fast paths of A^H A against the plain composition: a column mask transforms along the columns only
    (any row count), a 2-D mask along both axes; an odd size along a transformed axis takes the plain one."""
    coils = 4
    maps = as_complex_tensor(_crandn(rng, coils, *shape)) if with_maps else None
    mask = (rng.random(mask_shape) < 0.5).astype(np.float32)
    op = MultiCoilOperator(mask, maps)
    batch = (3,) if len(mask_shape) == 4 else ()
    x = as_complex_tensor(_crandn(rng, *batch, *((() if with_maps else (coils,)) + shape)))
    expected = op.adjoint(op(x))
    assert torch.allclose(op.normal(x), expected, atol=1e-5 * float(expected.abs().max()))
