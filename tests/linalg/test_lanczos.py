"""Tests of block Lanczos with partial reorthogonalisation and block Krylov.

Oracles: ``numpy.linalg.svd`` of the same matrix, and the orthogonality of the
basis measured directly (``V^T V - I``).
"""

from unittest import mock

import numpy as np
import pytest
from numpy.testing import assert_allclose
from sklearn.utils import check_random_state

from fasttsne.linalg._svd import _lanczos
from fasttsne.linalg._svd._lanczos import _BlockLanczos
from fasttsne.linalg._svd._operators import _ONE_CALL_PRODUCTS, _LinearOperator
from fasttsne.linalg._svd._orthogonal import _orthonormalize, _project_out
from fasttsne.linalg._svd._randomized import _randomized_svd
from tests._oracles import power_law

pytestmark = pytest.mark.usefixtures("one_blas_thread")


def _decaying(rng, shape, rank, rate, noise):
    """``rank`` singular values ``1000 exp(-i / rate)`` plus Gaussian noise."""
    m, n = shape
    U = np.linalg.qr(rng.standard_normal((m, rank)))[0]
    V = np.linalg.qr(rng.standard_normal((n, rank)))[0]
    A = (U * 1000.0 * np.exp(-np.arange(rank) / rate)) @ V.T
    return A + noise * rng.standard_normal((m, n))


def _run_lanczos(A, block, n_iter):
    """Block Lanczos on ``A^T A`` for ``n_iter + 1`` blocks.

    Returns the solver and the steps (from the third on, where the whole basis
    is more than the local blocks) that projected against the whole basis.
    """
    lanczos = _BlockLanczos(
        _LinearOperator(A),
        block,
        (n_iter + 1) * block,
        check_random_state(0),
        _ONE_CALL_PRODUCTS,
    )
    with mock.patch.object(_lanczos, "_project_out", wraps=_project_out) as spy:
        for j in range(n_iter + 1):
            lanczos.step(j, last=j == n_iter)
    # A full pass projects against V[:, :(j + 1) b], local passes against at
    # most two blocks: the width of the basis names the step.
    widths = {call.args[1].shape[1] for call in spy.call_args_list}
    full_steps = {width // block - 1 for width in widths if width > 2 * block}
    return lanczos, full_steps


def test_partial_reorthogonalisation_stays_semi_orthogonal(rng):
    """A flat spectrum: full passes are skipped, the basis stays orthogonal to
    far better than sqrt(eps) and the singular values match a dense SVD."""
    A = rng.standard_normal((1500, 400))
    lanczos, full_steps = _run_lanczos(A, 8, 40)
    # Steps 2 .. 39 project (the last one does not): some skipped the full pass.
    assert 0 < len(full_steps) < 38
    V = lanczos.V
    assert np.abs(V.T @ V - np.eye(V.shape[1])).max() < 1e-9
    U, S, Vt = lanczos.ritz_svd(V.shape[1], 10, 20)
    expected = np.linalg.svd(A, compute_uv=False)[:10]
    # 41 blocks of 8 do not converge a flat spectrum further (full passes alike).
    assert_allclose(S, expected, rtol=1e-6)
    # The returned triplets are orthonormal to working precision.
    assert_allclose(Vt @ Vt.T, np.eye(10), atol=1e-13)
    assert_allclose(U.T @ U, np.eye(10), atol=1e-13)
    assert_allclose(A @ Vt.T, U * S, atol=1e-10)


def test_float32_basis_always_fully_reorthogonalised(rng):
    """Rounding errors of float32 alone exceed the loss that skipping allows."""
    A = rng.standard_normal((1500, 400)).astype(np.float32)
    lanczos, full_steps = _run_lanczos(A, 8, 20)
    assert full_steps == set(range(2, 20))
    V = lanczos.V.astype(np.float64)
    # 168 columns of float32 rounding.
    assert np.abs(V.T @ V - np.eye(V.shape[1])).max() < 1e-5


def test_partial_reorthogonalisation_catches_cancellation(rng):
    """Once the Krylov space holds the signal, new blocks cancel almost to noise,
    which amplifies the basis's rounding errors: those steps reorthogonalise."""
    A = _decaying(rng, (3000, 800), 100, 50.0, 0.01)
    _, S, Vt = _randomized_svd(
        A, 50, algorithm="krylov", block_size=16, n_iter=20, tol=0, random_state=0
    )
    # Without the check, one singular value came out 100% wrong.
    assert_allclose(S, np.linalg.svd(A, compute_uv=False)[:50], rtol=1e-12)
    assert_allclose(Vt @ Vt.T, np.eye(50), atol=1e-13)


def test_partial_reorthogonalisation_bounds_growth_by_the_norm_of_a(rng):
    """Late Lanczos blocks of a steep spectrum live in its low part: the loss of
    orthogonality grows by ||A^T A|| / beta per step, not by their own norms."""
    A = _decaying(rng, (3000, 800), 100, 10.0, 1e-8)
    _, S, Vt = _randomized_svd(
        A, 20, algorithm="krylov", block_size=4, n_iter=120, tol=0, random_state=0
    )
    # With each block's own norm as the growth, sigma_9 came back as 8e-8.
    assert_allclose(S, np.linalg.svd(A, compute_uv=False)[:20], rtol=1e-12)
    assert_allclose(Vt @ Vt.T, np.eye(20), atol=1e-13)


def test_ritz_vectors_orthonormal_past_the_numerical_rank(rng):
    """Singular values below sqrt(eps) s_1 are out of reach through A^T A, but the
    returned vectors stay orthonormal and U S = A V^T still holds."""
    A = _decaying(rng, (2000, 600), 100, 3.0, 1e-9)
    U_, S, Vt = _randomized_svd(
        A, 50, algorithm="krylov", block_size=16, n_iter=30, tol=0, random_state=0
    )
    assert_allclose(Vt @ Vt.T, np.eye(50), atol=1e-13)
    assert_allclose(U_.T @ U_, np.eye(50), atol=1e-13)
    # Directions of A V Y below about sqrt(eps) of its norm are dropped: U S =
    # A V^T holds to about that level (2e-8 s_1 seen), not to rounding.
    assert_allclose(A @ Vt.T, U_ * S, atol=1e-7 * S[0])
    # The top singular values, well above sqrt(eps) s_1, are accurate (the
    # relative error grows like eps (s_1 / s_i)^2 through A^T A).
    assert_allclose(S[:15], np.linalg.svd(A, compute_uv=False)[:15], rtol=1e-10)


def test_kept_products_mapped_when_ritz_vectors_are_reorthonormalised(rng):
    """Dense input keeps A V_j. When the Ritz vectors of a semi-orthogonal basis
    are made orthonormal again, the kept products are mapped with them instead of
    recomputed, and U S = A V^T still holds."""
    A = power_law(rng, 1500, 500)
    lanczos, full_steps = _run_lanczos(A, 4, 30)
    assert len(full_steps) < 28  # some steps skipped the full pass
    with (
        mock.patch.object(
            lanczos.op, "matmat", side_effect=AssertionError("recomputed")
        ),
        mock.patch.object(
            _lanczos, "_orthonormalize", wraps=_orthonormalize
        ) as orthonormalize,
    ):
        U, S, Vt = lanczos.ritz_svd(lanczos.V.shape[1], 10, 20)
    # The 20 Ritz vectors (500 x 20) were orthonormalised again.
    assert (500, 20) in [call.args[0].shape for call in orthonormalize.call_args_list]
    assert_allclose(Vt @ Vt.T, np.eye(10), atol=1e-13)
    # U S = A V^T holds only if A V Y was mapped like V Y.
    assert_allclose(A @ Vt.T, U * S, atol=1e-13)
    assert_allclose(S, np.linalg.svd(A, compute_uv=False)[:10], rtol=1e-10)
