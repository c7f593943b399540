"""Tests of the ``RandomizedSVD`` transformer.

Oracles: ``numpy.linalg.svd``, scikit-learn's ``PCA(svd_solver="full")`` and
``TruncatedSVD(algorithm="arpack")`` on the same (densified) data.
"""

import pickle
from unittest import mock

import numpy as np
import pytest
import scipy.sparse as sp
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.base import clone
from sklearn.decomposition import PCA, TruncatedSVD

from fasttsne import RandomizedSVD
from fasttsne.linalg._svd._operators import _LinearOperator
from tests._oracles import flat_spectrum, low_rank_plus_noise, rank_deficient

pytestmark = pytest.mark.usefixtures("one_blas_thread")

N_SAMPLES, N_FEATURES, K = 400, 120, 10


def _sparse_low_rank(rng, n_samples=N_SAMPLES, n_features=N_FEATURES, rank=5):
    """Product of sparse non-negative factors: sparse (~55% zeros), exact rank."""
    B = rng.random((n_samples, rank)) * (rng.random((n_samples, rank)) < 0.3)
    C = rng.random((rank, n_features)) * (rng.random((rank, n_features)) < 0.5)
    return B @ C


def test_center_is_pca_and_never_densifies_sparse(rng):
    """center=True is PCA, computed on sparse input without densifying it."""
    # A = B C is rank 5 and so is A - 1 mean^T = (B - 1 mean_B^T) C: 5 components
    # are exact.
    A = _sparse_low_rank(rng)
    X = sp.csr_matrix(A)
    with mock.patch.object(
        sp.csr_matrix, "toarray", side_effect=AssertionError("densified")
    ):
        svd = RandomizedSVD(5, center=True, random_state=0).fit(X)
    pca = PCA(5, svd_solver="full").fit(A)
    assert_allclose(svd.mean_, pca.mean_, rtol=1e-12)
    assert_allclose(svd.singular_values_, pca.singular_values_, rtol=1e-10)
    assert_allclose(svd.explained_variance_, pca.explained_variance_, rtol=1e-10)
    assert_allclose(
        svd.explained_variance_ratio_, pca.explained_variance_ratio_, rtol=1e-10
    )
    # Both use the V-based sign convention of scikit-learn >= 1.5.
    assert_allclose(svd.components_, pca.components_, atol=1e-8)
    assert_allclose(svd.transform(X), pca.transform(A), atol=1e-8)
    assert_allclose(svd.transform(A), pca.transform(A), atol=1e-8)


def test_truncated_svd_semantics(rng):
    """center=False matches TruncatedSVD, attributes included."""
    A = np.abs(low_rank_plus_noise(rng, N_SAMPLES, N_FEATURES))
    X = sp.csr_matrix(A)
    ours = RandomizedSVD(K, random_state=0)
    theirs = TruncatedSVD(K, algorithm="arpack", random_state=0)
    X_fit = ours.fit_transform(X)
    X_ref = theirs.fit_transform(X)
    assert ours.mean_ is None
    assert_allclose(ours.singular_values_, theirs.singular_values_, rtol=1e-10)
    assert_allclose(ours.explained_variance_, theirs.explained_variance_, rtol=1e-8)
    assert_allclose(
        ours.explained_variance_ratio_, theirs.explained_variance_ratio_, rtol=1e-8
    )
    assert_allclose(np.abs(X_fit), np.abs(X_ref), atol=1e-8)
    # Krylov: U S = X V^T to rounding, so fit_transform is transform.
    assert_allclose(X_fit, ours.transform(X), atol=1e-10)


def test_inverse_transform_recovers_low_rank(rng):
    """inverse_transform(transform(X)) is X for X of rank n_components."""
    A = rank_deficient(rng, N_SAMPLES, N_FEATURES)
    svd = RandomizedSVD(8, random_state=0)
    assert_allclose(svd.inverse_transform(svd.fit_transform(A)), A, atol=1e-9)
    svd = RandomizedSVD(8, center=True, random_state=0)
    assert_allclose(
        svd.inverse_transform(svd.fit_transform(A + 3.0)), A + 3.0, atol=1e-9
    )


def test_float32_end_to_end(rng):
    """float32 input: every product and every output stays float32."""
    X = low_rank_plus_noise(rng, N_SAMPLES, N_FEATURES).astype(np.float32)
    seen = []
    matmat, rmatmat = _LinearOperator.matmat, _LinearOperator.rmatmat

    def spy(product):
        def record(self, block):
            out = product(self, block)
            seen.append((block.dtype, out.dtype))
            return out

        return record

    with mock.patch.multiple(_LinearOperator, matmat=spy(matmat), rmatmat=spy(rmatmat)):
        for X_in in (X, sp.csr_matrix(X)):
            svd = RandomizedSVD(K, random_state=0)
            assert svd.fit_transform(X_in).dtype == np.float32
            assert svd.transform(X_in).dtype == np.float32
            assert svd.components_.dtype == np.float32
            assert svd.singular_values_.dtype == np.float32
    # Every product with X took a float32 block and gave a float32 block.
    assert seen and all(a == np.float32 and b == np.float32 for a, b in seen)
    assert_allclose(
        svd.singular_values_,
        np.linalg.svd(X.astype(np.float64), compute_uv=False)[:K],
        rtol=2e-5,  # float32 rounding: 10 * sqrt(n) * eps32
    )


def test_exactly_low_rank_stops_early(rng):
    """The residual test stops the Krylov iteration once it has converged."""
    A = rank_deficient(rng, 500, 300, rank=4)
    # n_iter=9 power iterations: 10 Krylov blocks of 4 after the first.
    params = {"algorithm": "krylov", "block_size": 4, "n_iter": 9, "random_state": 0}
    svd = RandomizedSVD(4, **params).fit(A)
    # The first block spans range(A^T): converged after one iteration.
    assert svd.n_iter_ < 10
    assert_allclose(
        svd.singular_values_, np.linalg.svd(A, compute_uv=False)[:4], rtol=1e-12
    )
    no_stop = RandomizedSVD(4, tol=0, **params)
    assert no_stop.fit(A).n_iter_ == 10
    assert_allclose(no_stop.singular_values_, svd.singular_values_, rtol=1e-12)


@pytest.mark.parametrize("tol", [1e-2, 1e-5])
def test_tolerance_bounds_the_error(rng, tol):
    """tol bounds the relative error of every top singular value, and the basis
    grows only as far as the iteration goes."""
    A = flat_spectrum(rng, 500, 300)
    S_exact = np.linalg.svd(A, compute_uv=False)[:K]
    svd = RandomizedSVD(
        K, algorithm="krylov", block_size=K, n_iter=24, tol=tol, random_state=0
    )
    svd.fit(A)
    # The stopping test is a residual bound, hence an upper bound on the error
    # (measured 1e-3 for tol=1e-2 after 9 iterations, 4e-11 for 1e-5 after 18).
    assert np.max(np.abs(svd.singular_values_ - S_exact) / S_exact) <= tol
    # 25 blocks after the first at most: grew past its first 8, stopped early.
    assert 8 < svd.n_iter_ < 25


def test_deterministic_and_picklable(rng):
    """A fixed random_state gives identical fits; the fitted model pickles."""
    X = sp.csr_matrix(low_rank_plus_noise(rng, N_SAMPLES, N_FEATURES))
    svd = RandomizedSVD(K, random_state=42).fit(X)
    again = clone(svd).fit(X)
    assert_array_equal(svd.components_, again.components_)
    restored = pickle.loads(pickle.dumps(svd))
    assert_array_equal(restored.transform(X), svd.transform(X))
    assert svd.algorithm_ == "krylov"
    assert list(svd.get_feature_names_out()) == [f"randomizedsvd{i}" for i in range(K)]


@pytest.mark.parametrize(
    "X, message",
    [
        (np.array([[1.0, np.nan], [2.0, 3.0], [4.0, 5.0]]), "NaN"),
        (np.array([[1.0, np.inf], [2.0, 3.0], [4.0, 5.0]]), "infinity"),
        (np.empty((0, 4)), "0 sample"),
        (np.ones((1, 4)), "1 sample"),
        (np.ones((5, 0)), "0 feature"),
    ],
)
def test_bad_input_raises(X, message):
    """NaN, infinity, empty input and a single sample raise clear errors."""
    with pytest.raises(ValueError, match=message):
        RandomizedSVD(1).fit(X)


def test_bad_parameters_raise(rng):
    """Too many components and invalid parameters raise clear errors."""
    X = rng.standard_normal((20, 5))
    with pytest.raises(ValueError, match=r"n_components=6 must be at most .*=5"):
        RandomizedSVD(6).fit(X)
    # scikit-learn's InvalidParameterError is a ValueError.
    with pytest.raises(ValueError, match="'n_iter' parameter"):
        RandomizedSVD(2, n_iter=-1).fit(X)


def test_inverse_transform_checks_the_width(rng):
    """Issue 13: data of the wrong width gave a gufunc message; now a ValueError
    names both widths."""
    X = rng.standard_normal((30, 8))
    svd = RandomizedSVD(3, random_state=0).fit(X)
    assert svd.inverse_transform(svd.transform(X)).shape == (30, 8)
    with pytest.raises(ValueError, match=r"X has 8 columns.*of the 3 components"):
        svd.inverse_transform(X)
