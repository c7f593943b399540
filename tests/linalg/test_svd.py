"""Tests for RandomizedSVD, randomized_svd and the randomized SVD kernels.

The oracle is ``numpy.linalg.svd`` on the same (densified) matrix.
"""

import pickle
from unittest import mock

import numpy as np
import pytest
import scipy.linalg
import scipy.sparse as sp
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.base import clone
from sklearn.decomposition import PCA, TruncatedSVD
from sklearn.utils import check_random_state
from sklearn.utils.extmath import randomized_svd as sklearn_randomized_svd
from threadpoolctl import ThreadpoolController, threadpool_limits

from fasttsne import RandomizedSVD, randomized_svd
from fasttsne.linalg._svd._lanczos import _BlockLanczos
from fasttsne.linalg._svd._operators import _LinearOperator, _untouched
from fasttsne.linalg._svd._orthogonal import _orthonormalize
from fasttsne.linalg._svd._randomized import _randomized_svd
from fasttsne.linalg._svd._threading import _blas_n_threads, _OneBlasThread

N_SAMPLES, N_FEATURES, K = 400, 120, 10


@pytest.fixture(autouse=True, scope="module")
def _one_blas_thread():
    """The test matrices are small: BLAS threads would only add synchronisation,
    which on a shared, oversubscribed machine costs 20x in spinning."""
    with threadpool_limits(1):
        yield


def _low_rank_plus_noise(rng, n_samples=N_SAMPLES, n_features=N_FEATURES):
    """Rank-10 signal with singular values 100 .. 20, plus noise of norm ~3."""
    U = np.linalg.qr(rng.standard_normal((n_samples, 10)))[0]
    V = np.linalg.qr(rng.standard_normal((n_features, 10)))[0]
    signal = (U * np.geomspace(100, 20, 10)) @ V.T
    return signal + 0.1 * rng.standard_normal((n_samples, n_features))


def _sparse_low_rank(rng, n_samples=N_SAMPLES, n_features=N_FEATURES, rank=5):
    """Product of sparse non-negative factors: sparse (~55% zeros), exact rank."""
    B = rng.random((n_samples, rank)) * (rng.random((n_samples, rank)) < 0.3)
    C = rng.random((rank, n_features)) * (rng.random((rank, n_features)) < 0.5)
    return B @ C


def _flat(rng, n_samples=N_SAMPLES, n_features=N_FEATURES):
    """Gaussian matrix: Marchenko-Pastur spectrum, no gap anywhere."""
    return rng.standard_normal((n_samples, n_features))


def _rank_deficient(rng, n_samples=N_SAMPLES, n_features=N_FEATURES):
    """Exactly rank 8, fewer than the K = 10 components asked for."""
    return rng.standard_normal((n_samples, 8)) @ rng.standard_normal((8, n_features))


MATRICES = {
    "low_rank_plus_noise": _low_rank_plus_noise,
    "flat": _flat,
    "rank_deficient": _rank_deficient,
}

# Worst relative error of the top singular values allowed for each matrix with the
# default settings, per dtype. Measured errors (seed 0): low rank ~2e-15 (float64)
# and ~7e-7 (float32); flat ~7e-4 (Krylov) and ~7e-3 (subspace iteration, the
# scikit-learn algorithm); rank deficient ~2e-15 and ~5e-7. The float32 bounds
# allow 10 * sqrt(n) * eps32.
SINGULAR_VALUE_RTOL = {
    ("low_rank_plus_noise", np.float64): 1e-12,
    ("low_rank_plus_noise", np.float32): 2e-5,
    ("flat", np.float64): 2e-2,
    ("flat", np.float32): 2e-2,
    ("rank_deficient", np.float64): 1e-12,
    ("rank_deficient", np.float32): 2e-5,
}


def _top_errors(A, U, S, Vt, rank):
    """Singular-value error, largest subspace angle and reconstruction excess."""
    Ue, Se, Vte = np.linalg.svd(A, full_matrices=False)
    k = S.shape[0]
    value_error = np.max(np.abs(S[:rank] - Se[:rank]) / Se[:rank])
    angle = np.max(
        scipy.linalg.subspace_angles(Vt[:rank].T.astype(float), Vte[:rank].T)
    )
    best = np.linalg.norm(A - (Ue[:, :k] * Se[:k]) @ Vte[:k])
    error = np.linalg.norm(A - (U * S) @ Vt)
    return value_error, angle, (error - best) / np.linalg.norm(A)


@pytest.mark.parametrize("name", list(MATRICES))
@pytest.mark.parametrize("algorithm", ["krylov", "subspace"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("container", [np.asarray, sp.csr_matrix, sp.csc_array])
def test_against_numpy_svd(rng, name, algorithm, dtype, container):
    """Singular values, subspaces and reconstruction error against LAPACK."""
    A = MATRICES[name](rng)
    X = container(A.astype(dtype))
    U, S, Vt = _randomized_svd(X, K, algorithm=algorithm, random_state=0)
    assert U.dtype == S.dtype == Vt.dtype == dtype
    assert U.shape == (N_SAMPLES, K) and Vt.shape == (K, N_FEATURES)
    rank = 8 if name == "rank_deficient" else K
    value_error, angle, excess = _top_errors(A, U, S, Vt, rank)
    eps = float(np.spacing(dtype(1)))  # machine epsilon of dtype
    assert value_error <= SINGULAR_VALUE_RTOL[name, dtype]
    if name == "flat":
        # No gap: the subspace is not determined, only its quality matters. The
        # rank-K error may exceed the optimum by 1e-3 of ||A|| (measured 4e-4).
        assert excess <= 1e-3
    else:
        # A gap after the signal: vectors and optimal error to near precision.
        assert angle <= 1e3 * np.sqrt(eps)
        assert excess <= 1e3 * eps
    # Orthonormal factors (the rank-deficient case fills the null directions).
    assert_allclose(U.T @ U, np.eye(K), atol=50 * eps)  # K columns of rounding
    assert_allclose(Vt @ Vt.T, np.eye(K), atol=50 * eps)
    if name == "rank_deficient":
        # The singular values beyond the rank are rounding noise.
        assert np.all(S[8:] <= 1e2 * eps * S[0])


@pytest.mark.parametrize("normalizer", ["LU", "QR", "none"])
def test_subspace_normalizers(rng, normalizer):
    """Every power-iteration normaliser converges on a matrix with a gap."""
    A = _low_rank_plus_noise(rng)
    n_iter = 2 if normalizer == "none" else 6
    _, S, _ = _randomized_svd(
        A,
        K,
        algorithm="subspace",
        n_iter=n_iter,
        power_iteration_normalizer=normalizer,
        random_state=0,
    )
    S_exact = np.linalg.svd(A, compute_uv=False)[:K]
    # sigma_21 / sigma_10 ~ 0.15 (noise / signal): the Ritz values err by about
    # 0.15^(2 (2 n_iter + 1)), 1e-8 for 2 iterations, 1e-25 for 6.
    assert_allclose(S, S_exact, rtol=1e-8 if n_iter == 2 else 1e-12)


def test_krylov_more_accurate_than_subspace_on_flat_spectrum(rng):
    """Same products, same block: block Krylov wins by far on a flat spectrum."""
    A = _flat(rng, 600, 300)
    S_exact = np.linalg.svd(A, compute_uv=False)[:K]
    errors = {}
    for algorithm in ["krylov", "subspace"]:
        S = _randomized_svd(
            A, K, algorithm=algorithm, n_iter=6, block_size=K + 10, random_state=0
        )[1]
        errors[algorithm] = np.max(np.abs(S - S_exact) / S_exact)
    # For the same n_iter and block the Krylov space contains the subspace
    # iteration space, and Chebyshev-like polynomials beat powers on flat spectra.
    assert errors["krylov"] < errors["subspace"] / 10


@pytest.fixture(name="suite", scope="module")
def fixture_suite():
    """Test matrices of 600 x 150 with their exact singular values."""
    rng = np.random.default_rng(1)
    U = np.linalg.qr(rng.standard_normal((600, 150)))[0]
    V = np.linalg.qr(rng.standard_normal((150, 150)))[0]
    matrices = {name: make(rng, 600, 150) for name, make in MATRICES.items()}
    matrices["power_law"] = (U * np.arange(1, 151) ** -0.5) @ V.T
    return {
        name: (A, np.linalg.svd(A, compute_uv=False)) for name, A in matrices.items()
    }


@pytest.mark.parametrize("name", list(MATRICES) + ["power_law"])
@pytest.mark.parametrize("k", [1, 2, 5, 20])
def test_auto_at_least_as_accurate_as_sklearn_default(suite, name, k):
    """The defaults match or beat scikit-learn's default, for half its products."""
    A, S_exact = suite[name]
    rank = min(k, 8) if name == "rank_deficient" else k
    errors = []
    for seed in range(3):
        ours = randomized_svd(A, k, random_state=seed)[1]
        theirs = sklearn_randomized_svd(A, k, random_state=seed)[1]
        errors.append(
            [
                np.max(np.abs(s[:rank] - S_exact[:rank]) / S_exact[:rank])
                for s in (ours, theirs)
            ]
        )
    ours_worst, theirs_worst = np.max(errors, axis=0)
    # Both may sit at rounding level; below 1e-13 neither is "more accurate".
    assert ours_worst <= max(theirs_worst, 1e-13)


@pytest.mark.parametrize("algorithm", ["krylov", "subspace"])
@pytest.mark.parametrize("center", [False, True])
@pytest.mark.parametrize("wide", [False, True])
def test_sparse_equals_dense(rng, algorithm, center, wide):
    """CSR, CSC and COO input give the dense result (centred or not, tall or
    wide, i.e. transposed)."""
    A = _low_rank_plus_noise(rng)
    A[rng.random(A.shape) < 0.7] = 0.0
    A = A.T if wide else A
    results = [
        _randomized_svd(
            container(A), K, algorithm=algorithm, center=center, random_state=0
        )
        for container in (np.asarray, sp.csr_matrix, sp.csc_matrix, sp.coo_array)
    ]
    for U, S, Vt in results[1:]:
        # Same random draws; only the order of floating-point sums differs.
        assert_allclose(S, results[0][1], rtol=1e-10)
        assert_allclose(Vt, results[0][2], atol=1e-8)
        assert_allclose(U, results[0][0], atol=1e-8)


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
    A = np.abs(_low_rank_plus_noise(rng))
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
    A = _rank_deficient(rng)
    svd = RandomizedSVD(8, random_state=0)
    assert_allclose(svd.inverse_transform(svd.fit_transform(A)), A, atol=1e-9)
    svd = RandomizedSVD(8, center=True, random_state=0)
    assert_allclose(
        svd.inverse_transform(svd.fit_transform(A + 3.0)), A + 3.0, atol=1e-9
    )


def test_sign_convention_is_based_on_v(rng):
    """Signs follow scikit-learn >= 1.5: the largest entry of each V row > 0."""
    A = _low_rank_plus_noise(rng)
    U, S, Vt = randomized_svd(A, K, random_state=0)
    rows = np.arange(K)
    assert np.all(Vt[rows, np.argmax(np.abs(Vt), axis=1)] > 0)
    # The signs depend on V only: other seeds, subsets of rows, algorithms agree.
    for kwargs, rows_used in [
        ({"random_state": 1}, slice(None)),
        ({"random_state": 2, "algorithm": "subspace"}, slice(None)),
        ({"random_state": 0}, slice(0, 300)),
    ]:
        Vt_alt = randomized_svd(A[rows_used], K, **kwargs)[2]
        # Same signs: positive cosines (they exceed 0.98 even for a subset).
        assert np.all(np.sum(Vt * Vt_alt, axis=1) > 0.9)
    # U S Vt is unchanged by the flip.
    U_raw, S_raw, Vt_raw = randomized_svd(A, K, random_state=0, flip_sign=False)
    assert_allclose((U * S) @ Vt, (U_raw * S_raw) @ Vt_raw, atol=1e-10)


def test_float32_end_to_end(rng):
    """float32 input: every product and every output stays float32."""
    X = _low_rank_plus_noise(rng).astype(np.float32)
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


@pytest.mark.parametrize("algorithm", ["krylov", "subspace"])
def test_wide_matrix_is_transposed(rng, algorithm):
    """Wide matrices are transposed automatically, with the same result."""
    A = _low_rank_plus_noise(rng).T  # 120 x 400
    U, S, Vt, info = _randomized_svd(
        A, K, algorithm=algorithm, random_state=0, return_info=True
    )
    assert info["transpose"]
    assert U.shape == (120, K) and Vt.shape == (K, 400)
    U2, S2, _ = _randomized_svd(A, K, algorithm=algorithm, transpose=False)
    assert_allclose(S, np.linalg.svd(A, compute_uv=False)[:K], rtol=1e-12)
    assert_allclose(S2, S, rtol=1e-12)
    assert_allclose(np.abs(U.T @ U2), np.eye(K), atol=1e-8)


def test_private_twin_accepts_tsne_call(rng):
    """The call of the t-SNE PCA initialisation works with any random state."""
    # The t-SNE PCA initialisation calls exactly this.
    X = rng.standard_normal((300, 20))
    X_c = X - X.mean(axis=0)
    for random_state in (check_random_state(0), np.random.default_rng(0), 0):
        U, S, Vt = _randomized_svd(X_c, 2, random_state=random_state)
        assert U.shape == (300, 2) and S.shape == (2,) and Vt.shape == (2, 20)
        assert_allclose(S, np.linalg.svd(X_c, compute_uv=False)[:2], rtol=1e-10)


def test_exactly_low_rank_stops_early(rng):
    """The residual test stops the Krylov iteration once it has converged."""
    A = rng.standard_normal((500, 4)) @ rng.standard_normal((4, 300))
    svd = RandomizedSVD(4, algorithm="krylov", n_iter=10, random_state=0).fit(A)
    # The first block spans range(A^T): converged after one iteration.
    assert svd.n_iter_ < 10
    assert_allclose(
        svd.singular_values_, np.linalg.svd(A, compute_uv=False)[:4], rtol=1e-12
    )
    no_stop = RandomizedSVD(4, algorithm="krylov", n_iter=10, tol=0, random_state=0)
    assert no_stop.fit(A).n_iter_ == 10
    assert_allclose(no_stop.singular_values_, svd.singular_values_, rtol=1e-12)


def _decaying(rng, shape, rank, rate, noise):
    """``rank`` singular values ``1000 exp(-i / rate)`` plus Gaussian noise."""
    m, n = shape
    U = np.linalg.qr(rng.standard_normal((m, rank)))[0]
    V = np.linalg.qr(rng.standard_normal((n, rank)))[0]
    A = (U * 1000.0 * np.exp(-np.arange(rank) / rate)) @ V.T
    return A + noise * rng.standard_normal((m, n))


def _run_lanczos(A, block, n_iter):
    """Block Lanczos on ``A^T A`` for ``n_iter + 1`` blocks; returns the solver."""
    lanczos = _BlockLanczos(
        _LinearOperator(A), block, (n_iter + 1) * block, check_random_state(0)
    )
    for j in range(n_iter + 1):
        lanczos.step(j, last=j == n_iter)
    return lanczos


def test_partial_reorthogonalisation_stays_semi_orthogonal(rng):
    """A flat spectrum: full passes are skipped, the basis stays orthogonal to
    far better than sqrt(eps) and the singular values match a dense SVD."""
    A = rng.standard_normal((1500, 400))
    lanczos = _run_lanczos(A, 8, 40)
    assert lanczos._skipped
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


def test_kept_products_mapped_after_skipped_passes(rng):
    """Dense input keeps A V_j; after skipped passes they are mapped through the
    re-orthonormalisation of the Ritz vectors instead of recomputed."""
    A = rng.standard_normal((3000, 1000))
    lanczos = _run_lanczos(A, 4, 40)
    assert lanczos.AV is not None and lanczos._skipped
    with mock.patch.object(
        lanczos.op, "matmat", side_effect=AssertionError("recomputed")
    ):
        U, S, Vt = lanczos.ritz_svd(lanczos.V.shape[1], 10, 20)
    assert_allclose(Vt @ Vt.T, np.eye(10), atol=1e-13)
    # U S = A V^T holds only if A V Y was mapped like V Y.
    assert_allclose(A @ Vt.T, U * S, atol=1e-10)


def test_blas_threads_reported_from_before_the_limit():
    """A solve starting while another holds the BLAS to one thread still sees the
    count from before, and runs its sparse products on as many threads."""
    with threadpool_limits(2, user_api="blas"):
        with _OneBlasThread():
            assert _blas_n_threads() == 2
        assert _blas_n_threads() == 2


def test_sparse_solve_bitwise_independent_of_threads():
    """A whole sparse solve (tiled products, split basis products, partial
    reorthogonalisation) gives the same bits on one thread and on two."""
    A = sp.random(20000, 4000, density=0.005, format="csr", random_state=0)
    results = []
    for n_threads in (1, 2):
        with threadpool_limits(n_threads, user_api="blas"):
            results.append(
                _randomized_svd(
                    A,
                    20,
                    algorithm="krylov",
                    block_size=16,
                    n_iter=30,
                    tol=0,
                    random_state=0,
                )
            )
    for first, second in zip(*results):
        assert_array_equal(first, second)


def test_basis_memory_from_mmap_behaves_like_numpy():
    """Bases of 16 MiB and more come from an anonymous mmap: Fortran-ordered,
    writable, and freed with the array."""
    shape = (2100, 1000)  # 16.8 MB of float64
    V = _untouched(shape, np.float64)
    assert V.shape == shape and V.dtype == np.float64
    assert V.flags.f_contiguous and V.flags.writeable
    V[:, 5:9] = 1.5
    assert V[:, 5:9].sum() == 1.5 * 4 * shape[0]
    assert _untouched((10, 3), np.float32).flags.f_contiguous


def test_blas_limit_nests_and_restores():
    """Overlapping sparse solves hold the BLAS at one thread until the last one
    ends, which restores it, also after an exception."""
    controller = ThreadpoolController()

    def blas_threads():
        return [lib["num_threads"] for lib in controller.select(user_api="blas").info()]

    with threadpool_limits(2, user_api="blas"):
        before = blas_threads()
        first, second = _OneBlasThread(), _OneBlasThread()
        first.__enter__()
        second.__enter__()
        first.__exit__(None, None, None)
        assert set(blas_threads()) == {1}
        second.__exit__(None, None, None)
        assert blas_threads() == before
        with pytest.raises(RuntimeError):
            with _OneBlasThread():
                assert set(blas_threads()) == {1}
                raise RuntimeError("solve failed")
        assert blas_threads() == before


def test_small_matrix_is_exact(rng):
    """A basis as large as the short side gives the exact SVD."""
    # A Krylov basis that would fill the space is replaced by the whole space.
    A = rng.standard_normal((30, 6))
    U, S, Vt = _randomized_svd(A, 5, algorithm="krylov", random_state=0)
    assert_allclose(S, np.linalg.svd(A, compute_uv=False)[:5], rtol=1e-12)
    assert_allclose((U * S) @ Vt, A @ Vt.T @ Vt, atol=1e-12)


@pytest.mark.parametrize("fmt", ["csr", "csc"])
def test_sparse_products_bitwise_independent_of_threads(rng, fmt):
    """Tiled, threaded sparse products: bitwise equal for 1, 2 or 3 threads.

    The tile count follows the thread count (2, 2 and 3 tiles here), so this also
    checks that the tiling leaves the sums unchanged.
    """
    A = sp.random(400, 20000, density=0.01, format=fmt, random_state=0)
    X = rng.standard_normal((20000, 8))
    Y = rng.standard_normal((400, 8))
    mean = np.asarray(A.mean(axis=0)).ravel()
    results = []
    for n_threads in (1, 2, 3):
        op = _LinearOperator(A, mean=mean, n_threads=n_threads, width=8)
        if fmt == "csr":
            assert op._tiles[0].shape[0] == max(2, n_threads)
        results.append((op.matmat(X), op.rmatmat(Y)))
    for AX, ATY in results[1:]:
        assert_array_equal(AX, results[0][0])
        assert_array_equal(ATY, results[0][1])
    dense = A.toarray() - mean
    # Entries of size ~1: absolute tolerances (centring cancels some to ~1e-3).
    assert_allclose(results[0][0], dense @ X, atol=1e-12)
    assert_allclose(results[0][1], dense.T @ Y, atol=1e-12)


def test_sparse_products_unsorted_rows(rng):
    """Rows stored out of column order give the same products, bitwise."""
    A = sp.random(300, 20000, density=0.02, format="csr", random_state=1)
    shuffled = A.copy()
    for i in range(A.shape[0]):
        lo, hi = A.indptr[i], A.indptr[i + 1]
        order = rng.permutation(hi - lo)
        shuffled.indices[lo:hi] = A.indices[lo:hi][order]
        shuffled.data[lo:hi] = A.data[lo:hi][order]
    shuffled.has_sorted_indices = False
    X = rng.standard_normal((20000, 8))
    expected = _LinearOperator(A, n_threads=2, width=8).matmat(X)
    for n_threads in (1, 2):
        op = _LinearOperator(shuffled, n_threads=n_threads, width=8)
        assert_array_equal(op.matmat(X), expected)


def test_orthonormalize_fills_dependent_directions(rng):
    """Dependent and zero columns are replaced by orthogonal random directions."""
    basis = np.linalg.qr(rng.standard_normal((50, 5)))[0]
    Z = rng.standard_normal((50, 3))
    Z = Z - basis @ (basis.T @ Z)
    Z = np.hstack([Z, Z[:, :1] + Z[:, 1:2], np.zeros((50, 1))])  # rank 3 of 5
    Q, R = _orthonormalize(Z, check_random_state(0), basis)
    assert Q.shape == (50, 5)
    assert_allclose(Q.T @ Q, np.eye(5), atol=1e-13)
    assert_allclose(basis.T @ Q, 0, atol=1e-13)
    assert_allclose(Q @ R, Z, atol=1e-12)


def test_deterministic_and_picklable(rng):
    """A fixed random_state gives identical fits; the fitted model pickles."""
    X = sp.csr_matrix(_low_rank_plus_noise(rng))
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


def test_too_many_components_raises(rng):
    """Too many components and invalid parameters raise clear errors."""
    X = rng.standard_normal((20, 5))
    with pytest.raises(ValueError, match=r"n_components=6 must be at most .*=5"):
        RandomizedSVD(6).fit(X)
    with pytest.raises(ValueError, match=r"n_components=6 must be at most"):
        randomized_svd(X, 6)
    with pytest.raises(ValueError, match="NaN"):
        randomized_svd(np.full((4, 4), np.nan), 2)
    with pytest.raises(ValueError, match="cannot hold"):
        randomized_svd(X, 4, algorithm="krylov", block_size=1, n_iter=1)
    # scikit-learn's InvalidParameterError is a ValueError.
    with pytest.raises(ValueError, match="'algorithm' parameter"):
        randomized_svd(X, 2, algorithm="lanczos")
    with pytest.raises(ValueError, match="'n_iter' parameter"):
        RandomizedSVD(2, n_iter=-1).fit(X)


@pytest.mark.parametrize("tol", [1e-2, 1e-5])
def test_tolerance_bounds_the_error(rng, tol):
    """tol bounds the relative error of every top singular value, and the basis
    grows only as far as the iteration goes."""
    A = _flat(rng, 500, 300)
    S_exact = np.linalg.svd(A, compute_uv=False)[:K]
    svd = RandomizedSVD(K, algorithm="krylov", n_iter=25, tol=tol, random_state=0)
    svd.fit(A)
    # The stopping test is a residual bound, hence an upper bound on the error
    # (measured 1e-3 for tol=1e-2 after 9 iterations, 4e-11 for 1e-5 after 18).
    assert np.max(np.abs(svd.singular_values_ - S_exact) / S_exact) <= tol
    assert 8 < svd.n_iter_ < 25  # grew past its first 8 blocks, stopped early
