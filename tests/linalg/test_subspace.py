"""Tests of subspace iteration's orthonormalisation and Rayleigh-Ritz step.

Oracle: ``numpy.linalg.svd`` of the same matrix.
"""

import numpy as np
from numpy.testing import assert_allclose
from sklearn.utils import check_random_state

from fasttsne.linalg._svd._operators import _ONE_CALL_PRODUCTS as PRODUCTS
from fasttsne.linalg._svd._operators import _LinearOperator
from fasttsne.linalg._svd._subspace import _orthonormal_range, _project_and_svd
from tests._oracles import rank_deficient


def test_orthonormal_range_of_a_rank_deficient_block(rng):
    """A block of rank 3 in 6 columns (no Gram matrix can resolve it): an
    orthonormal basis whose range holds the block."""
    Y = rank_deficient(rng, 300, 6, rank=3)
    Q = _orthonormal_range(Y, PRODUCTS)
    assert Q.shape == (300, 6)
    assert_allclose(Q.T @ Q, np.eye(6), atol=1e-13)
    assert_allclose(Q @ (Q.T @ Y), Y, atol=1e-12)


def test_project_and_svd_on_the_exact_range_is_the_svd(rng):
    """Projected on an orthonormal basis of range(A), the SVD is exact."""
    A = rank_deficient(rng, 300, 80, rank=6)
    Q = np.linalg.qr(A @ rng.standard_normal((80, 6)))[0]
    U, S, Vt = _project_and_svd(_LinearOperator(A), Q, check_random_state(0), PRODUCTS)
    Ue, Se, Vte = np.linalg.svd(A, full_matrices=False)
    assert_allclose(S, Se[:6], rtol=1e-12)
    assert_allclose((U * S) @ Vt, A, atol=1e-11)
    assert_allclose(np.abs(np.sum(Vt * Vte[:6], axis=1)), 1, atol=1e-10)
    assert_allclose(np.abs(np.sum(U * Ue[:, :6], axis=0)), 1, atol=1e-10)
