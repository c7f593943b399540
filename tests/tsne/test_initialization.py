"""Tests of the initial embeddings (``tsne/_initialization.py``)."""

import numpy as np
import pytest
import scipy.sparse as sp
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.utils import check_random_state

from fasttsne import RandomizedSVD
from fasttsne.tsne._initialization import pca_init, spectral_init
from tests._oracles import random_affinities


@pytest.mark.parametrize("sparse", [False, True])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_pca_init_is_the_estimators_pca(rng, sparse, dtype):
    """The PCA initialisation calls the SVD solver, not the estimator, and gets
    bitwise what ``RandomizedSVD(center=True).fit_transform`` gives."""
    X = rng.standard_normal((200, 12)).astype(dtype) + 3.0
    X = sp.csr_matrix(X) if sparse else X
    Y = pca_init(X, 2, check_random_state(0))
    expected = RandomizedSVD(2, center=True, random_state=check_random_state(0))
    assert_array_equal(Y, expected.fit_transform(X).astype(np.float64))


def test_pca_init_pads_missing_directions_with_noise(rng):
    """Data with fewer directions than components get noise of the first axis'
    scale in the missing columns, never a column that stays zero."""
    X = np.column_stack([rng.standard_normal(100), np.zeros(100)])
    Y = pca_init(X, 3, check_random_state(0))
    assert Y.shape == (100, 3)
    assert np.all(Y.std(axis=0) > 0)
    assert_allclose(Y[:, 2].std(), Y[:, 0].std(), rtol=0.5)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_spectral_init_against_dense_eigenvectors(rng, dtype):
    """The layout is D^-1/2 times the 2nd and 3rd eigenvectors of D^-1/2 P
    D^-1/2 (dense, float64), each up to its sign, for P's values in either
    dtype."""
    P = random_affinities(rng, 150, 8, dtype=dtype)
    Y = spectral_init(P, 2, check_random_state(0))
    dense = P.toarray().astype(np.float64)
    degree = dense.sum(axis=1)
    _, vectors = np.linalg.eigh(dense / np.sqrt(np.outer(degree, degree)))
    expected = vectors[:, ::-1][:, 1:3] / np.sqrt(degree)[:, None]
    expected *= np.sign((Y * expected).sum(axis=0))
    # ARPACK stops at tol=1e-6: the vectors agree to about that, absolutely.
    assert_allclose(Y, expected, rtol=1e-4, atol=1e-5 * np.abs(expected).max())


def test_spectral_init_is_a_deterministic_eigenvector_layout():
    """Leading non-trivial eigenvectors of the normalised affinity matrix, with
    a deterministic sign, independent of the numbering of the points."""
    P = random_affinities(np.random.default_rng(3), 150, 8)
    Y = spectral_init(P, 2, check_random_state(0))
    assert Y.shape == (150, 2)
    assert_array_equal(Y, spectral_init(P, 2, check_random_state(0)))
    # Renumbered points, the order passed along: the same layout per point.
    order = np.random.default_rng(4).permutation(150)
    renumbered = P[order][:, order]
    Y_renumbered = spectral_init(renumbered, 2, check_random_state(0), order=order)
    assert_allclose(np.abs(Y_renumbered), np.abs(Y[order]), rtol=1e-5, atol=1e-9)
