"""scikit-learn's own test cases for ``randomized_svd`` and ``TruncatedSVD``.

The cases of ``sklearn/utils/tests/test_extmath.py`` and
``sklearn/decomposition/tests/test_truncated_svd.py`` (scikit-learn 1.9.1) that
concern a randomized SVD, ported (the cases, not the code) to
:func:`fasttsne.randomized_svd` and :class:`fasttsne.RandomizedSVD`. Where the
documentation promises "the same as scikit-learn" (signs, the meaning of
``n_iter``, warnings, attributes), the test runs scikit-learn itself next to
ours; where scikit-learn asserts a property of its own algorithm (that too few
power iterations miss the noise), we assert instead that we are at least as
accurate.
"""

import numpy as np
import pytest
import scipy.linalg
import scipy.sparse as sp
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.datasets import make_low_rank_matrix
from sklearn.decomposition import PCA, TruncatedSVD
from sklearn.utils.extmath import randomized_svd as sklearn_randomized_svd

from fasttsne import RandomizedSVD, randomized_svd
from fasttsne.linalg._svd._randomized import _flip_signs

pytestmark = pytest.mark.usefixtures("one_blas_thread")


def _worst_error(S, S_exact):
    """Worst relative error of the singular values ``S``."""
    k = len(S)
    return float(np.max(np.abs(S - S_exact[:k]) / S_exact[:k]))


# --- randomized_svd: sklearn/utils/tests/test_extmath.py ----------------------


@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.float32, np.float64])
@pytest.mark.parametrize("normalizer", ["auto", "LU", "QR"])
def test_low_rank_matrix_every_dtype(dtype, normalizer):
    """A structured matrix of effective rank 5, k = 10: the singular values up to
    the rank and the rank-k reconstruction match LAPACK's, in the input's float
    dtype (integers become float64), dense and CSR."""
    X = make_low_rank_matrix(
        100, 500, effective_rank=5, tail_strength=0.0, random_state=0
    ).astype(dtype)
    U, S, Vt = scipy.linalg.svd(X.astype(np.float64), full_matrices=False)
    out_dtype = np.float32 if dtype == np.float32 else np.float64
    tol = 1e-5 if dtype == np.float32 else 1e-7  # scikit-learn's decimal=5 / 7
    for M in (X, sp.csr_matrix(X)):
        Ua, Sa, Vta = randomized_svd(
            M, 10, power_iteration_normalizer=normalizer, random_state=0
        )
        assert Ua.dtype == Sa.dtype == Vta.dtype == out_dtype
        assert Ua.shape == (100, 10) and Sa.shape == (10,) and Vta.shape == (10, 500)
        assert_allclose(Sa[:5], S[:5], atol=tol)
        assert_allclose((Ua * Sa) @ Vta, (U[:, :10] * S[:10]) @ Vt[:10], atol=tol)


@pytest.mark.parametrize("tail_strength, n_iter", [(0.1, "auto"), (1.0, 5)])
@pytest.mark.parametrize("normalizer", ["auto", "none", "LU", "QR"])
def test_noisy_and_infinite_rank(tail_strength, n_iter, normalizer):
    """A noisy low-rank matrix and one of infinite rank: with power iterations
    the top 10 singular values are within 1e-3 (scikit-learn's test), and with
    none (n_iter=0) ours are at least as accurate as scikit-learn's."""
    X = make_low_rank_matrix(
        100, 500, effective_rank=5, tail_strength=tail_strength, random_state=0
    )
    S = scipy.linalg.svdvals(X)
    params = {"power_iteration_normalizer": normalizer, "random_state": 0}
    ours = randomized_svd(X, 10, n_iter=0, **params)[1]
    theirs = sklearn_randomized_svd(X, 10, n_iter=0, **params)[1]
    assert _worst_error(ours, S) <= _worst_error(theirs, S)
    assert_allclose(
        randomized_svd(X, 10, n_iter=n_iter, **params)[1], S[:10], atol=1e-3
    )


def test_transpose_consistency():
    """n_iter=3 on a wide matrix: transposed or not, the singular values within
    1e-3 and the reconstruction within 1e-2; "auto" transposes it."""
    X = make_low_rank_matrix(
        100, 500, effective_rank=4, tail_strength=0.5, random_state=0
    )
    U, S, Vt = scipy.linalg.svd(X, full_matrices=False)
    best = (U[:, :10] * S[:10]) @ Vt[:10]
    results = {}
    for transpose in (False, True, "auto"):
        Ua, Sa, Vta = randomized_svd(
            X, 10, n_iter=3, transpose=transpose, random_state=0
        )
        assert_allclose(Sa, S[:10], atol=1e-3)
        assert_allclose((Ua * Sa) @ Vta, best, atol=1e-2)
        results[transpose] = Sa
    assert_array_equal(results[True], results["auto"])


@pytest.mark.parametrize("n_iter", [0, 1, 2, 3, 5])
@pytest.mark.parametrize("transpose", [False, True])
def test_explicit_n_iter_at_least_as_accurate_as_sklearn(n_iter, transpose):
    """Issue 13: an explicit n_iter meant Krylov blocks (n_iter=3 gave 8e-3 where
    scikit-learn gets 1.2e-3). It now means power iterations, as there, and the
    Krylov space contains the subspace-iteration space: never less accurate."""
    X = make_low_rank_matrix(
        100, 500, effective_rank=4, tail_strength=0.5, random_state=0
    )
    S = scipy.linalg.svdvals(X)
    params = {"n_iter": n_iter, "transpose": transpose, "random_state": 0}
    ours = randomized_svd(X, 10, **params)[1]
    theirs = sklearn_randomized_svd(X, 10, **params)[1]
    # Ritz values from a larger space are larger (closer): error by error.
    assert np.all(ours >= theirs - 1e-13 * S[0])
    assert _worst_error(ours, S) <= _worst_error(theirs, S) + 1e-13


@pytest.mark.parametrize("normalizer", ["LU", "QR", "auto"])
def test_normalizers_stable_with_many_iterations(normalizer):
    """A matrix of effective rank 50 plus a binary pattern: the residual after 5,
    10 or 50 power iterations stays within 15 of that after 2 (scikit-learn's
    bound), for the normalisers that keep subspace iteration stable."""
    rng = np.random.RandomState(42)
    X = make_low_rank_matrix(100, 500, effective_rank=50, random_state=rng)
    X += 3 * rng.randint(0, 2, size=X.shape)

    def residual(n_iter, algorithm):
        U, S, Vt = randomized_svd(
            X,
            50,
            n_iter=n_iter,
            power_iteration_normalizer=normalizer,
            algorithm=algorithm,
            random_state=0,
        )
        return scipy.linalg.norm(X - (U * S) @ Vt)

    for algorithm in ("auto", "subspace"):
        base = residual(2, algorithm)
        for n_iter in (5, 10, 50):
            assert abs(base - residual(n_iter, algorithm)) < 15


def test_unnormalised_power_iteration_diverges_like_sklearn():
    """Subspace iteration without normaliser loses precision as scikit-learn's
    does (its residual moves by more than 100 from 2 to 20 iterations); the
    Krylov solvers always orthonormalise and do not."""
    rng = np.random.RandomState(42)
    X = make_low_rank_matrix(100, 500, effective_rank=50, random_state=rng)
    X += 3 * rng.randint(0, 2, size=X.shape)

    def residual(func, n_iter, **kwargs):
        U, S, Vt = func(
            X,
            50,
            n_iter=n_iter,
            power_iteration_normalizer="none",
            random_state=0,
            **kwargs,
        )
        return scipy.linalg.norm(X - (U * S) @ Vt)

    for func, kwargs in [
        (sklearn_randomized_svd, {}),
        (randomized_svd, {"algorithm": "subspace"}),
    ]:
        assert abs(residual(func, 2, **kwargs) - residual(func, 20, **kwargs)) > 100
    assert abs(residual(randomized_svd, 2) - residual(randomized_svd, 20)) < 15


@pytest.mark.parametrize("container", [sp.lil_matrix, sp.dok_matrix, sp.lil_array])
def test_lil_and_dok_warn_like_sklearn(container):
    """LIL and DOK input are converted with scikit-learn's SparseEfficiencyWarning
    and message; the result equals that of CSR input."""
    rng = np.random.RandomState(42)
    X = make_low_rank_matrix(50, 20, effective_rank=10, random_state=rng)
    message = (
        f"Calculating SVD of a {container.__name__} is expensive. "
        "CSR format is more efficient."
    )
    params = {"n_iter": 1, "power_iteration_normalizer": "none", "random_state": 0}
    for func in (sklearn_randomized_svd, randomized_svd):
        with pytest.warns(sp.SparseEfficiencyWarning, match=message):
            func(container(X), 5, **params)
    with pytest.warns(sp.SparseEfficiencyWarning):
        ours = randomized_svd(container(X), 5, **params)
    for a, b in zip(ours, randomized_svd(sp.csr_matrix(X), 5, **params)):
        assert_array_equal(a, b)


@pytest.mark.parametrize("u_based_decision", [True, False])
@pytest.mark.parametrize("shape", [(20, 10), (10, 20), (3, 4), (4, 3)])
def test_flip_signs(rng, u_based_decision, shape):
    """The sign flip keeps U S Vt, and makes the largest-magnitude entry of each
    column of U (or row of Vt) positive."""
    X = rng.standard_normal(shape)
    U, S, Vt = scipy.linalg.svd(X, full_matrices=False)
    U1, Vt1 = _flip_signs(U, Vt, u_based_decision)
    assert_allclose((U1 * S) @ Vt1, X, atol=1e-12)
    if u_based_decision:
        assert np.all(U1[np.argmax(np.abs(U1), axis=0), np.arange(U1.shape[1])] >= 0)
    else:
        assert np.all(Vt1[np.arange(Vt1.shape[0]), np.argmax(np.abs(Vt1), axis=1)] >= 0)


def test_signs_do_not_depend_on_the_seed():
    """A diagonal matrix: every seed gives the same flipped vectors, which
    reproduce it and are orthonormal."""
    a = np.array([[2.0, 0.0], [0.0, 1.0]])
    u1, _, v1 = randomized_svd(a, 2, flip_sign=True, random_state=41)
    for seed in range(10):
        u2, s2, v2 = randomized_svd(a, 2, flip_sign=True, random_state=seed)
        assert_allclose(u1, u2, atol=1e-12)
        assert_allclose(v1, v2, atol=1e-12)
        assert_allclose((u2 * s2) @ v2, a, atol=1e-12)
        assert_allclose(u2.T @ u2, np.eye(2), atol=1e-12)
        assert_allclose(v2 @ v2.T, np.eye(2), atol=1e-12)


@pytest.mark.parametrize("transpose", ["auto", True])
def test_signs_based_on_u_with_transpose(transpose):
    """scikit-learn's case for its issue 5608: the largest loading of each left
    vector is positive and that of the right vectors is not, transposed or not,
    as in scikit-learn."""
    mat = np.arange(10 * 8).reshape(10, -1)
    for func in (sklearn_randomized_svd, randomized_svd):
        u, _, v = func(mat, 3, flip_sign=True, transpose=transpose, random_state=0)
        assert (np.abs(u).max(axis=0) == u.max(axis=0)).all()
        assert not (np.abs(v).max(axis=1) == v.max(axis=1)).all()


@pytest.mark.parametrize("n, m", [(50, 50), (100, 300), (300, 100)])
@pytest.mark.parametrize("k", [10, 20, 50])
def test_lapack_drivers_agree(n, m, k):
    """svd_lapack_driver="gesdd" and "gesvd" give the same decomposition (to
    scikit-learn's rtol of 1e-3) on uniform random matrices."""
    X = np.random.RandomState(0).rand(n, m)
    first = randomized_svd(X, k, svd_lapack_driver="gesdd", random_state=0)
    second = randomized_svd(X, k, svd_lapack_driver="gesvd", random_state=0)
    for a, b in zip(first, second):
        assert a.shape == b.shape
        assert_allclose(a, b, atol=0, rtol=1e-3)
    with pytest.raises(ValueError, match="svd_lapack_driver"):
        randomized_svd(X, k, svd_lapack_driver="gesvdx")


# --- RandomizedSVD: sklearn/decomposition/tests/test_truncated_svd.py ---------


@pytest.fixture(name="X_sparse", scope="module")
def fixture_x_sparse():
    """A 60 x 55 matrix that looks like a small tf-idf matrix."""
    rng = np.random.RandomState(42)
    X = sp.random(60, 55, density=0.2, format="csr", random_state=rng)
    X.data[:] = 1 + np.log(X.data)
    return X


@pytest.mark.parametrize("kind", ["dense", "sparse"])
def test_against_arpack(X_sparse, kind):
    """30 components with 100 oversamples match ARPACK (TruncatedSVD): the
    leading transformed columns to 2e-3, the leading components to 1e-3."""
    X = X_sparse if kind == "sparse" else X_sparse.toarray()
    arpack = TruncatedSVD(30, algorithm="arpack")
    ours = RandomizedSVD(30, n_oversamples=100, random_state=42)
    Xa = arpack.fit_transform(X)[:, :6]
    Xr = ours.fit_transform(X)[:, :6]
    assert_allclose(Xa, Xr, rtol=2e-3)
    comp_a, comp = np.abs(arpack.components_), np.abs(ours.components_)
    assert_allclose(comp_a[:9], comp[:9], rtol=1e-3)
    assert_allclose(comp_a[9:], comp[9:], atol=1e-2)


@pytest.mark.parametrize("n_components", [10, 25, 41, 55])
def test_components_shape(X_sparse, n_components):
    """components_ has one row per component, up to the number of features."""
    svd = RandomizedSVD(n_components).fit(X_sparse)
    assert svd.components_.shape == (n_components, X_sparse.shape[1])


def test_too_many_components(X_sparse):
    """More components than features is a ValueError, as in TruncatedSVD."""
    for estimator in (TruncatedSVD(56), RandomizedSVD(56)):
        with pytest.raises(ValueError):
            estimator.fit(X_sparse)


@pytest.mark.parametrize("fmt", ["array", "csr", "csc", "coo", "lil"])
def test_input_formats(X_sparse, fmt):
    """Dense and every sparse format fit and transform."""
    X = getattr(X_sparse, "to" + fmt)()
    svd = RandomizedSVD(11)
    assert svd.fit_transform(X).shape == (60, 11)
    assert svd.transform(X).shape == (60, 11)


def test_inverse_transform(X_sparse):
    """52 of 55 components reconstruct the data (scikit-learn's tolerances)."""
    svd = RandomizedSVD(52, random_state=42)
    Xinv = svd.inverse_transform(svd.fit_transform(X_sparse))
    assert_allclose(Xinv, X_sparse.toarray(), rtol=1e-1, atol=2e-1)


def test_integer_input(X_sparse):
    """Integer data are accepted (as float64)."""
    svd = RandomizedSVD(6)
    assert svd.fit_transform(X_sparse.astype(np.int64)).shape == (60, 6)


@pytest.mark.parametrize("kind", ["dense", "sparse"])
@pytest.mark.parametrize("n_components", [10, 20])
def test_explained_variance_as_truncated_svd(X_sparse, kind, n_components):
    """explained_variance_ratio_ is TruncatedSVD's: the variance of each
    transformed column over the total variance, positive and summing below 1;
    equal to TruncatedSVD's own on the same data."""
    X = X_sparse if kind == "sparse" else X_sparse.toarray()
    svd = RandomizedSVD(n_components, random_state=0)
    X_tr = svd.fit_transform(X)
    assert np.all(svd.explained_variance_ratio_ > 0)
    assert svd.explained_variance_ratio_.sum() < 1
    total = np.var(X_sparse.toarray(), axis=0).sum()
    assert_allclose(svd.explained_variance_ratio_, np.var(X_tr, axis=0) / total)
    theirs = TruncatedSVD(n_components, n_iter=20, random_state=0).fit(X)
    assert_allclose(
        svd.explained_variance_ratio_, theirs.explained_variance_ratio_, rtol=1e-2
    )


@pytest.mark.parametrize("kind", ["dense", "sparse"])
def test_explained_variance_of_10_and_20_components(X_sparse, kind):
    """The first 10 ratios of 20 components equal those of 10 (to 5e-3), and 20
    components explain more."""
    X = X_sparse if kind == "sparse" else X_sparse.toarray()
    svd_10 = RandomizedSVD(10, n_iter=10).fit(X)
    svd_20 = RandomizedSVD(20, n_iter=10).fit(X)
    assert_allclose(
        svd_10.explained_variance_ratio_,
        svd_20.explained_variance_ratio_[:10],
        rtol=5e-3,
    )
    assert (
        svd_20.explained_variance_ratio_.sum() > svd_10.explained_variance_ratio_.sum()
    )


@pytest.mark.parametrize("seed", range(3))
def test_singular_values_and_transformed_norms(seed):
    """The squared singular values add up to the squared Frobenius norm of the
    transformed data, and each is the norm of its column."""
    rng = np.random.RandomState(seed)
    X = rng.randn(100, 80)
    svd = RandomizedSVD(2, random_state=rng).fit(X)
    X_svd = svd.transform(X)
    assert_allclose(
        np.sum(svd.singular_values_**2), np.linalg.norm(X_svd, "fro") ** 2, rtol=1e-2
    )
    assert_allclose(svd.singular_values_, np.linalg.norm(X_svd, axis=0), rtol=1e-2)


@pytest.mark.parametrize("seed", range(3))
def test_singular_values_set_by_hand(seed):
    """Data built with singular values 3.142, 2.718 and 1 give them back to 1e-14."""
    rng = np.random.RandomState(seed)
    X = rng.randn(100, 110)
    svd = RandomizedSVD(3, random_state=rng)
    X_svd = svd.fit_transform(X)
    X_svd /= np.sqrt(np.sum(X_svd**2.0, axis=0))
    X_svd[:, 0] *= 3.142
    X_svd[:, 1] *= 2.718
    svd.fit(X_svd @ svd.components_)
    assert_allclose(svd.singular_values_, [3.142, 2.718, 1.0], rtol=1e-14)


def test_centred_svd_equals_pca(X_sparse):
    """On centred data the uncentred fit is PCA: the same as center=True (on
    the raw, sparse data) and as scikit-learn's PCA, components and signs."""
    X = X_sparse.toarray()
    X_c = X - X.mean(axis=0)
    params = {"n_components": 10, "random_state": 42}
    plain = RandomizedSVD(**params, n_iter=20)
    centred = RandomizedSVD(**params, n_iter=20, center=True)
    pca = PCA(svd_solver="arpack", **params)
    Xt = plain.fit_transform(X_c)
    assert_allclose(Xt, centred.fit_transform(X_sparse), atol=1e-9)
    assert_allclose(Xt, pca.fit_transform(X_c), atol=1e-9)
    assert_allclose(centred.mean_, X.mean(axis=0), atol=1e-12)
    assert_allclose(plain.components_, pca.components_, atol=1e-9)


@pytest.mark.parametrize("normalizer", ["auto", "QR", "LU", "none"])
@pytest.mark.parametrize("algorithm", ["auto", "subspace"])
@pytest.mark.parametrize("kind", ["dense", "sparse"])
def test_fit_transform_equals_fit_then_transform(X_sparse, normalizer, algorithm, kind):
    """fit_transform(X) equals fit(X).transform(X)."""
    X = X_sparse if kind == "sparse" else X_sparse.toarray()
    svd = RandomizedSVD(
        5,
        n_iter=7,
        random_state=42,
        algorithm=algorithm,
        power_iteration_normalizer=normalizer,
    )
    assert_allclose(svd.fit_transform(X), svd.fit(X).transform(X), atol=1e-12)


def test_estimator_signs_follow_v_as_truncated_svd(X_sparse):
    """The estimator's sign convention is TruncatedSVD's (u_based_decision=False):
    the same components, signs included, on data with distinct singular values."""
    ours = RandomizedSVD(8, n_iter=10, random_state=0).fit(X_sparse)
    theirs = TruncatedSVD(8, n_iter=10, random_state=0).fit(X_sparse)
    rows = np.arange(8)
    top = ours.components_[rows, np.argmax(np.abs(ours.components_), axis=1)]
    assert np.all(top > 0)
    # Same vectors, same signs: cosines near +1 (both converge to 1e-4 here).
    assert np.all(np.sum(ours.components_ * theirs.components_, axis=1) > 0.999)
    assert_allclose(ours.singular_values_, theirs.singular_values_, rtol=1e-4)
