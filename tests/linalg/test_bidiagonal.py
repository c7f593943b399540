"""Tests of block Golub-Kahan-Lanczos bidiagonalisation and of the switch to it.

Oracles: ``numpy.linalg.svd`` of the same matrix, the relation ``A V = U B``
and the orthonormality of both bases, measured directly.
"""

from unittest import mock

import numpy as np
import pytest
from numpy.testing import assert_allclose
from sklearn.utils import check_random_state

from fasttsne.linalg._svd import _bidiagonal
from fasttsne.linalg._svd._bidiagonal import _BlockBidiagonal, _needs_bidiagonal
from fasttsne.linalg._svd._lanczos import _BlockLanczos
from fasttsne.linalg._svd._operators import _ONE_CALL_PRODUCTS, _LinearOperator
from fasttsne.linalg._svd._randomized import _randomized_svd
from tests._oracles import rank_deficient, rounding_floor, steep_spectrum

pytestmark = pytest.mark.usefixtures("one_blas_thread")


def _run(A, block, n_iter):
    """All ``n_iter + 1`` steps of the bidiagonalisation of ``A``."""
    solver = _BlockBidiagonal(
        _LinearOperator(A),
        block,
        (n_iter + 1) * block,
        check_random_state(0),
        _ONE_CALL_PRODUCTS,
        full=True,
    )
    for j in range(n_iter + 1):
        solver.step(j, last=j == n_iter)
    return solver


def test_bidiagonal_relation_and_orthonormal_bases(rng):
    """On a steep spectrum (condition 1e8 and beyond): A V = U B to rounding,
    both bases orthonormal where they are not zero, and the singular values of
    B those of A down to eps s_1 (relative eps s_1 / s_i)."""
    A = steep_spectrum(rng, 800, 300)
    solver = _run(A, 10, 7)
    size = 80
    V = solver.V[:, :size]
    U = np.hstack(solver._left)
    B = solver.B[:size, :size]
    assert_allclose(A @ V, U @ B, atol=1e-12 * 1000)
    assert_allclose(V.T @ V, np.eye(size), atol=1e-13)
    kept = np.linalg.norm(U, axis=0) > 0.5  # zero columns: noise dropped
    assert_allclose(U[:, kept].T @ U[:, kept], np.eye(kept.sum()), atol=1e-12)
    S_exact = np.linalg.svd(A, compute_uv=False)[:40]
    S_B = np.linalg.svd(B, compute_uv=False)[:40]
    assert np.all(np.abs(S_B - S_exact) / S_exact <= rounding_floor(S_exact, A.dtype))


def test_one_sided_beyond_the_memory_limit(rng):
    """Left blocks that do not fit in _MAX_KEPT_BYTES are not kept: only the
    recurrence orthogonalises them, which suffices on a well-conditioned
    matrix, and A V Y is recomputed."""
    A = rng.standard_normal((600, 200))
    with mock.patch.object(_bidiagonal, "_MAX_KEPT_BYTES", 1000):
        solver = _run(A, 8, 10)
        assert not solver._left
        U, S, Vt = solver.ritz_svd(88, 5, 15)
    # 11 blocks of 8 do not converge a flat spectrum further (Lanczos alike).
    assert_allclose(S, np.linalg.svd(A, compute_uv=False)[:5], rtol=1e-3)
    assert_allclose(A @ Vt.T, U * S, atol=1e-10)
    assert_allclose(U.T @ U, np.eye(5), atol=1e-13)


def test_rank_deficient_drops_noise(rng):
    """Exactly rank 8: the left blocks beyond it are noise and become zero
    columns; the right basis continues with random directions, and the top
    singular values are exact."""
    A = rank_deficient(rng, 500, 200)
    solver = _run(A, 4, 6)
    assert solver._dropped
    U, S, Vt = solver.ritz_svd(28, 8, 18)
    assert_allclose(S, np.linalg.svd(A, compute_uv=False)[:8], rtol=1e-12)
    assert_allclose(Vt @ Vt.T, np.eye(8), atol=1e-13)
    assert_allclose(A @ Vt.T, U * S, atol=1e-10)


def test_switch_rule():
    """The Krylov solver switches when s_k / s_1 falls below 1e-2 (float64) or
    1/8 (float32); one value, or none, never switches."""
    assert _needs_bidiagonal(np.array([1.0, 0.5, 0.009]), np.float64)
    assert not _needs_bidiagonal(np.array([1.0, 0.5, 0.011]), np.float64)
    assert _needs_bidiagonal(np.array([1.0, 0.1], dtype=np.float32), np.float32)
    assert not _needs_bidiagonal(np.array([1.0, 0.2], dtype=np.float32), np.float32)
    assert not _needs_bidiagonal(np.array([1.0]), np.float64)
    assert not _needs_bidiagonal(np.zeros(3), np.float64)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_explicit_bidiagonal_algorithm(rng, dtype):
    """algorithm="bidiagonal" runs it directly, in the working precision, and
    agrees with the automatic switch."""
    A = steep_spectrum(rng, 500, 200).astype(dtype)
    U, S, Vt, info = _randomized_svd(
        A, 30, algorithm="bidiagonal", random_state=0, return_info=True
    )
    assert info["algorithm"] == "bidiagonal"
    assert U.dtype == S.dtype == Vt.dtype == dtype
    auto = _randomized_svd(A, 30, random_state=0, return_info=True)
    assert auto[3]["algorithm"] == "bidiagonal"
    S_exact = np.linalg.svd(A.astype(np.float64), compute_uv=False)[:30]
    rank = 30 if dtype == np.float64 else 25
    for values in (S, auto[1]):
        error = np.abs(values[:rank] - S_exact[:rank]) / S_exact[:rank]
        assert np.all(error <= rounding_floor(S_exact[:rank], dtype))


def test_steep_first_block_abandons_block_lanczos(rng):
    """When the first block's Ritz values already span too wide a range, block
    Lanczos stops after that block and bidiagonalisation takes over; otherwise
    block Lanczos runs to the end and is kept."""
    steep = steep_spectrum(rng, 800, 300)
    flat = rng.standard_normal((800, 300))
    with mock.patch.object(
        _BlockLanczos, "step", autospec=True, side_effect=_BlockLanczos.step
    ) as step:
        info = _randomized_svd(steep, 40, random_state=0, return_info=True)[3]
        assert info["algorithm"] == "bidiagonal" and step.call_count == 1
        step.reset_mock()
        info = _randomized_svd(flat, 40, random_state=0, return_info=True)[3]
        assert info["algorithm"] == "krylov" and step.call_count == info["n_iter"] + 1
