"""Tests of Gram-Schmidt projections, SVQB and ``_orthonormalize``.

Oracles: orthonormality (``Q^T Q = I``) and reconstruction (``Q R = Z``) measured
in float64, and the dense projector ``I - B B^T``.
"""

import numpy as np
import pytest
from numpy.testing import assert_allclose
from sklearn.utils import check_random_state

from fasttsne.linalg._svd._operators import _ONE_CALL_PRODUCTS as PRODUCTS
from fasttsne.linalg._svd._orthogonal import (
    _gram_threshold,
    _orthonormalize,
    _project_out,
    _svqb,
    _svqb_twice_if_needed,
)


def test_project_out_matches_the_dense_projector(rng):
    """``Z - B B^T Z`` in place, and the coefficients ``B^T Z``."""
    basis = np.linalg.qr(rng.standard_normal((200, 6)))[0]
    Z = rng.standard_normal((200, 3))
    expected = Z - basis @ (basis.T @ Z)
    coef = _project_out(Z, basis, PRODUCTS)
    assert_allclose(Z, expected, atol=1e-14)
    assert_allclose(basis.T @ Z, 0, atol=1e-15)
    assert_allclose(coef, basis.T @ (expected + basis @ coef), atol=1e-14)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_svqb_orthonormalises_ill_conditioned_blocks(rng, dtype):
    """Columns of condition number 1e3: one pass loses ``eps cond^2`` of
    orthogonality (``exact`` is False), a second is orthonormal to working
    precision."""
    U = np.linalg.qr(rng.standard_normal((500, 6)))[0]
    W = np.linalg.qr(rng.standard_normal((6, 6)))[0]
    Z = ((U * np.geomspace(1, 1e-3, 6)) @ W).astype(dtype)
    threshold = _gram_threshold(6, dtype)
    _, exact = _svqb(Z, threshold, PRODUCTS)
    assert not exact
    Q = _svqb_twice_if_needed(Z, threshold, PRODUCTS)
    assert Q.dtype == dtype and Q.shape == (500, 6)
    eps = float(np.spacing(dtype(1)))  # machine epsilon of dtype
    Q64 = Q.astype(np.float64)
    assert_allclose(Q64.T @ Q64, np.eye(6), atol=64 * eps)
    # Same range: Z is reproduced from Q (to the conditioning of Z).
    Z64 = Z.astype(np.float64)
    residual = Z64 - Q64 @ (Q64.T @ Z64)
    assert np.linalg.norm(residual) <= 1e4 * eps * np.linalg.norm(Z64)


def test_orthonormalize_fills_dependent_directions(rng):
    """Dependent and zero columns are replaced by orthogonal random directions."""
    basis = np.linalg.qr(rng.standard_normal((50, 5)))[0]
    Z = rng.standard_normal((50, 3))
    Z = Z - basis @ (basis.T @ Z)
    Z = np.hstack([Z, Z[:, :1] + Z[:, 1:2], np.zeros((50, 1))])  # rank 3 of 5
    Q, R = _orthonormalize(Z, check_random_state(0), PRODUCTS, basis=basis)
    assert Q.shape == (50, 5)
    assert_allclose(Q.T @ Q, np.eye(5), atol=1e-13)
    assert_allclose(basis.T @ Q, 0, atol=1e-13)
    assert_allclose(Q @ R, Z, atol=1e-12)


def test_orthonormalize_discards_rounding_noise(rng):
    """A column that kept less than sqrt(eps) of its norm after the projection
    is noise: it is replaced by a random direction, not normalised."""
    basis = np.linalg.qr(rng.standard_normal((80, 4)))[0]
    noise = 1e-12 * rng.standard_normal((80, 1))
    Z = np.hstack([rng.standard_normal((80, 2)), noise])
    Z -= basis @ (basis.T @ Z)
    norms_before = np.array([1.0, 1.0, 1e3])  # the last column lost almost all
    Q, R = _orthonormalize(
        Z, check_random_state(0), PRODUCTS, basis=basis, norms_before=norms_before
    )
    assert_allclose(Q.T @ Q, np.eye(3), atol=1e-13)
    assert_allclose(basis.T @ Q, 0, atol=1e-13)
    # The noise column's direction is not kept: R holds ~nothing of it.
    assert np.abs(R[:, 2]).max() < 1e-11


def test_orthonormalize_pads_with_zeros_when_the_space_is_exhausted(rng):
    """More columns than dimensions left: the extra columns are zero."""
    basis = np.linalg.qr(rng.standard_normal((10, 8)))[0]
    Z = rng.standard_normal((10, 4))
    Z -= basis @ (basis.T @ Z)  # rank 2: the complement of the basis
    Q, R = _orthonormalize(Z, check_random_state(0), PRODUCTS, basis=basis)
    assert Q.shape == (10, 4)
    assert_allclose(Q[:, :2].T @ Q[:, :2], np.eye(2), atol=1e-13)
    assert not Q[:, 2:].any()
    assert_allclose(Q @ R, Z, atol=1e-12)
