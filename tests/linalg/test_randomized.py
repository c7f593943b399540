"""Tests of ``randomized_svd``, its validated twin and the resolution of options.

The oracle is ``numpy.linalg.svd`` on the same (densified) matrix; scikit-learn's
``randomized_svd`` is the anchor for accuracy at the default settings.
"""

import numpy as np
import pytest
import scipy.linalg
import scipy.sparse as sp
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.datasets import make_low_rank_matrix
from sklearn.utils import check_random_state
from sklearn.utils.extmath import randomized_svd as sklearn_randomized_svd
from threadpoolctl import threadpool_limits

from fasttsne import RandomizedSVD, randomized_svd
from fasttsne.linalg._svd import _randomized as randomized_module
from fasttsne.linalg._svd._lanczos import _BlockLanczos, _block_krylov, _test_due
from fasttsne.linalg._svd._randomized import (
    _MAX_KRYLOV_BYTES,
    _MIN_FLOAT32_TOL,
    _randomized_svd,
    _resolve_options,
)
from tests._oracles import (
    flat_spectrum,
    low_rank_plus_noise,
    random_csr,
    rank_deficient,
    rounding_floor,
    steep_spectrum,
)

pytestmark = pytest.mark.usefixtures("one_blas_thread")

N_SAMPLES, N_FEATURES, K = 400, 120, 10

MATRICES = {
    "low_rank_plus_noise": low_rank_plus_noise,
    "flat": flat_spectrum,
    "rank_deficient": rank_deficient,
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
    A = MATRICES[name](rng, N_SAMPLES, N_FEATURES)
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
    A = low_rank_plus_noise(rng, N_SAMPLES, N_FEATURES)
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
    A = flat_spectrum(rng, 600, 300)
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
    """Test matrices of 600 x 150 with their exact singular values and the rank
    up to which they are compared (values that rounding leaves meaningful)."""
    rng = np.random.default_rng(1)
    U = np.linalg.qr(rng.standard_normal((600, 150)))[0]
    V = np.linalg.qr(rng.standard_normal((150, 150)))[0]
    matrices = {name: make(rng, 600, 150) for name, make in MATRICES.items()}
    matrices["power_law"] = (U * np.arange(1, 151) ** -0.5) @ V.T
    matrices["steep"] = steep_spectrum(rng, 600, 150)
    # scikit-learn's own test matrix: singular values exp(-(i / 5)^2), below
    # eps32 s_1 from i = 20 on.
    matrices["low_rank_float32"] = make_low_rank_matrix(
        600, 150, effective_rank=5, tail_strength=0.0, random_state=0
    ).astype(np.float32)
    ranks = {"rank_deficient": 8, "low_rank_float32": 14}
    return {
        name: (
            A,
            np.linalg.svd(A.astype(np.float64), compute_uv=False),
            ranks.get(name),
        )
        for name, A in matrices.items()
    }


@pytest.mark.parametrize(
    "name", list(MATRICES) + ["power_law", "steep", "low_rank_float32"]
)
@pytest.mark.parametrize("k", [1, 2, 5, 20])
def test_auto_at_least_as_accurate_as_sklearn_default(suite, name, k):
    """The defaults match or beat scikit-learn's default, for half its products,
    on every matrix of the benchmark's accuracy suite (benchmarks/bench_svd.py):
    steep spectra and float32 included."""
    A, S_exact, max_rank = suite[name]
    rank = min(k, max_rank or k)
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
    # Both may sit at rounding level, 10 eps s_1 / s_i: below it neither is
    # "more accurate".
    assert ours_worst <= max(theirs_worst, rounding_floor(S_exact[:rank], A.dtype)[-1])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("k", [20, 40, 50])
def test_steep_spectrum_switches_to_bidiagonalisation(dtype, k):
    """Issue 13: on singular values 1000 exp(-i / 3) plus 1e-9 noise, block
    Lanczos on A^T A lost every value below sqrt(eps) s_1 (relative error 0.87
    at k = 50, scikit-learn 1e-11): the Krylov solver now builds the same space
    by bidiagonalisation and is as accurate as scikit-learn's default."""
    A = steep_spectrum(np.random.default_rng(0), 1000, 300).astype(dtype)
    S_exact = np.linalg.svd(A.astype(np.float64), compute_uv=False)
    # float32 resolves s_i down to about 20 eps32 s_1 (i ~ 40).
    rank = k if dtype == np.float64 else min(k, 38)
    _, S, _, info = _randomized_svd(A, k, random_state=0, return_info=True)
    theirs = sklearn_randomized_svd(A, k, random_state=0)[1]
    assert info["algorithm"] == "bidiagonal"
    ours_error = np.abs(S[:rank] - S_exact[:rank]) / S_exact[:rank]
    theirs_error = np.abs(theirs[:rank] - S_exact[:rank]) / S_exact[:rank]
    floor = rounding_floor(S_exact[:rank], dtype)
    assert np.all(ours_error <= np.maximum(theirs_error, floor))


def test_float32_low_rank_as_accurate_as_sklearn():
    """Issue 16: on scikit-learn's low-rank test matrix in float32 (k = 10) the
    default was 1000 times less accurate than scikit-learn's (3.8e-4 against
    3.6e-7); now both sit at float32 rounding level."""
    X = make_low_rank_matrix(
        100, 500, effective_rank=5, tail_strength=0.0, random_state=0
    ).astype(np.float32)
    S_exact = np.linalg.svd(X.astype(np.float64), compute_uv=False)[:10]
    ours = randomized_svd(X, 10, random_state=0)[1]
    theirs = sklearn_randomized_svd(X, 10, random_state=0)[1]
    ours_error = np.max(np.abs(ours - S_exact) / S_exact)
    theirs_error = np.max(np.abs(theirs - S_exact) / S_exact)
    assert ours_error <= max(theirs_error, rounding_floor(S_exact, np.float32)[-1])
    assert ours_error < 1e-5


@pytest.mark.parametrize("algorithm", ["krylov", "subspace"])
@pytest.mark.parametrize("center", [False, True])
@pytest.mark.parametrize("wide", [False, True])
def test_sparse_equals_dense(rng, algorithm, center, wide):
    """CSR, CSC and COO input give the dense result (centred or not, tall or
    wide, i.e. transposed)."""
    A = low_rank_plus_noise(rng, N_SAMPLES, N_FEATURES)
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


@pytest.mark.parametrize("transpose", [False, True, "auto"])
@pytest.mark.parametrize("wide", [False, True])
def test_function_signs_follow_u_as_in_sklearn(rng, transpose, wide):
    """The function keeps scikit-learn's sign convention: the largest-magnitude
    entry of each column of U is positive, whichever side was worked on, so the
    vectors have scikit-learn's signs."""
    A = low_rank_plus_noise(rng, N_SAMPLES, N_FEATURES)
    A = A.T if wide else A
    U, S, Vt = randomized_svd(A, K, transpose=transpose, random_state=0)
    U_sk, _, Vt_sk = sklearn_randomized_svd(A, K, transpose=transpose, random_state=0)
    cols = np.arange(K)
    assert np.all(U[np.argmax(np.abs(U), axis=0), cols] > 0)
    # The signal's vectors are well determined (a gap): same signs as theirs.
    assert np.all(np.sum(U * U_sk, axis=0) > 0.99)
    assert np.all(np.sum(Vt * Vt_sk, axis=1) > 0.99)
    # U S Vt is unchanged by the flip.
    U_raw, S_raw, Vt_raw = randomized_svd(
        A, K, transpose=transpose, random_state=0, flip_sign=False
    )
    assert_allclose((U * S) @ Vt, (U_raw * S_raw) @ Vt_raw, atol=1e-10)


def test_private_twin_signs_follow_v(rng):
    """The twin (the estimator's and the t-SNE initialisation's path) keeps the
    convention of TruncatedSVD and PCA: signs from V, independent of the rows."""
    A = low_rank_plus_noise(rng, N_SAMPLES, N_FEATURES)
    U, S, Vt = _randomized_svd(A, K, random_state=0)
    rows = np.arange(K)
    assert np.all(Vt[rows, np.argmax(np.abs(Vt), axis=1)] > 0)
    for kwargs, rows_used in [
        ({"random_state": 1}, slice(None)),
        ({"random_state": 2, "algorithm": "subspace"}, slice(None)),
        ({"random_state": 0}, slice(0, 300)),
    ]:
        Vt_alt = _randomized_svd(A[rows_used], K, **kwargs)[2]
        # Same signs: positive cosines (they exceed 0.98 even for a subset).
        assert np.all(np.sum(Vt * Vt_alt, axis=1) > 0.9)


@pytest.mark.parametrize("algorithm", ["krylov", "subspace"])
def test_wide_matrix_is_transposed(rng, algorithm):
    """Wide matrices are transposed automatically, with the same result."""
    A = low_rank_plus_noise(rng, N_SAMPLES, N_FEATURES).T  # 120 x 400
    U, S, Vt, info = _randomized_svd(
        A, K, algorithm=algorithm, random_state=0, return_info=True
    )
    assert info["transpose"]
    assert U.shape == (120, K) and Vt.shape == (K, 400)
    U2, S2, _ = _randomized_svd(A, K, algorithm=algorithm, transpose=False)
    assert_allclose(S, np.linalg.svd(A, compute_uv=False)[:K], rtol=1e-12)
    assert_allclose(S2, S, rtol=1e-12)
    assert_allclose(np.abs(U.T @ U2), np.eye(K), atol=1e-8)


@pytest.mark.parametrize("sparse", [False, True])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_private_twin_gives_the_estimators_pca(rng, sparse, dtype):
    """The call of the t-SNE PCA initialisation, ``U * S`` of the centred twin,
    is bitwise ``RandomizedSVD(center=True).fit_transform``; the twin also takes
    a ``Generator``."""
    X = rng.standard_normal((300, 20)).astype(dtype) + 5.0
    X = sp.csr_matrix(X) if sparse else X
    for make_state in (check_random_state, int):
        U, S, Vt = _randomized_svd(X, 2, center=True, random_state=make_state(0))
        svd = RandomizedSVD(2, center=True, random_state=make_state(0))
        assert_array_equal(U * S, svd.fit_transform(X))
        assert_array_equal(Vt, svd.components_)
    dense = X.toarray() if sparse else X
    centred = dense.astype(np.float64) - dense.astype(np.float64).mean(axis=0)
    S_exact = np.linalg.svd(centred, compute_uv=False)[:2]
    U, S, Vt = _randomized_svd(X, 2, center=True, random_state=np.random.default_rng(0))
    assert U.shape == (300, 2) and S.shape == (2,) and Vt.shape == (2, 20)
    # float32 data of size ~5 centred in float32: relative errors ~1e-6.
    assert_allclose(S, S_exact, rtol=1e-10 if dtype == np.float64 else 1e-5)


def test_small_matrix_is_exact(rng):
    """A basis as large as the short side gives the exact SVD."""
    # A Krylov basis that would fill the space is replaced by the whole space.
    A = rng.standard_normal((30, 6))
    U, S, Vt = _randomized_svd(A, 5, algorithm="krylov", random_state=0)
    assert_allclose(S, np.linalg.svd(A, compute_uv=False)[:5], rtol=1e-12)
    assert_allclose((U * S) @ Vt, A @ Vt.T @ Vt, atol=1e-12)


@pytest.mark.parametrize(
    "exponent, fmt, wide, tol",
    [
        (0, "csr", False, 1e-3),
        (0, "csc", False, 1e-3),
        (0, "csr", True, 1e-3),
        (0, "csr", False, _MIN_FLOAT32_TOL),
        (30, "csr", False, 1e-3),
        (-30, "csc", False, 1e-3),
        (40, "csr", True, 1e-3),
        (-40, "csr", False, 1e-3),
    ],
)
def test_float32_basis_for_a_few_digits_of_sparse_float64(
    rng, exponent, fmt, wide, tol
):
    """``tol >= 1e-4`` on a sparse float64 matrix, CSR or CSC, tall or wide, of
    any magnitude (the float32 copy is scaled by a power of two): block Lanczos
    runs on a float32 copy, the final Rayleigh-Ritz step on ``A`` in float64.
    The singular values meet ``tol`` against LAPACK's, the outputs are float64,
    ``U S = A V^T`` (or ``V S = A^T U``) holds to float64 rounding, ``U``
    and ``V`` are orthonormal, and their leading vectors match LAPACK's."""
    A = random_csr(rng, 3000, 800, 0.01).asformat(fmt) * np.ldexp(1.0, exponent)
    A = A.T.asformat(fmt) if wide else A
    U_exact, S_exact, Vt_exact = scipy.linalg.svd(A.toarray(), full_matrices=False)
    S_exact = S_exact[:K]
    U, S, Vt, info = _randomized_svd(
        A, K, block_size=8, n_iter=40, tol=tol, random_state=0, return_info=True
    )
    assert info["basis_dtype"] == "float32" and info["algorithm"] == "krylov"
    assert U.dtype == S.dtype == Vt.dtype == np.float64
    assert np.max(np.abs(S - S_exact) / S_exact) <= tol
    # Far below the float32 rounding (1e-7 S[0]) a float32 final step leaves,
    # on the side the basis was built on (A^T for wide A).
    if wide:
        assert_allclose(A.T @ U, Vt.T * S, rtol=0, atol=1e-12 * S[0])
    else:
        assert_allclose(A @ Vt.T, U * S, rtol=0, atol=1e-12 * S[0])
    assert_allclose(Vt @ Vt.T, np.eye(K), rtol=0, atol=1e-12)
    assert_allclose(U.T @ U, np.eye(K), rtol=0, atol=1e-12)
    # The top singular value is well separated: its vectors are resolved.
    assert abs(U[:, 0] @ U_exact[:, 0]) > 1 - 10 * tol
    assert abs(Vt[0] @ Vt_exact[0]) > 1 - 10 * tol


def test_float32_basis_needs_tol_at_least_the_threshold(rng):
    """Just below ``_MIN_FLOAT32_TOL`` the basis is float64."""
    A = random_csr(rng, 3000, 800, 0.01)
    *_, info = _randomized_svd(
        A,
        K,
        block_size=8,
        n_iter=40,
        tol=_MIN_FLOAT32_TOL * (1 - 1e-9),
        random_state=0,
        return_info=True,
    )
    assert info["basis_dtype"] == "float64"


@pytest.mark.parametrize("block_size", [8, 16])
def test_steep_spectrum_abandons_the_float32_basis_early(rng, monkeypatch, block_size):
    """A spectrum too steep for float32 stops the float32 solve after the first
    blocks that hold ``K`` Ritz values (one block of 16, two of 8), long before
    its last block, and the float64 solve meets the request."""
    A = sp.csr_matrix(steep_spectrum(rng, 600, 200, n_values=40, rate=2.0))
    calls = []

    def recording(op, n_components, **kwargs):
        result = _block_krylov(op, n_components, **kwargs)
        calls.append((kwargs.get("final_op") is not None, result is None))
        return result

    monkeypatch.setattr(randomized_module, "_block_krylov", recording)
    steps = []
    original_step = _BlockLanczos.step

    def counting_step(self, j, last):
        if self.op.dtype == np.float32:
            steps.append(j)
        return original_step(self, j, last)

    monkeypatch.setattr(_BlockLanczos, "step", counting_step)
    _, S, _, info = _randomized_svd(
        A,
        K,
        block_size=block_size,
        n_iter=8,
        tol=1e-3,
        random_state=0,
        return_info=True,
    )
    assert calls[0] == (True, True)
    assert len(steps) == -(-K // block_size)
    assert info["basis_dtype"] == "float64"
    S_exact = scipy.linalg.svdvals(A.toarray())[:K]
    assert np.max(np.abs(S - S_exact) / S_exact) <= 1e-3


def test_explicit_tol_schedule():
    """Tests after each of the first 8 blocks, then once the blocks have grown
    by an eighth: a converged iteration stops within an eighth plus one block
    of the blocks a test after every block needs."""
    assert all(_test_due(j, j - 1) for j in range(8))
    last, tested = -1, []
    for j in range(400):
        if _test_due(j, last):
            last = j
            tested.append(j)
    assert tested[:8] == list(range(8))
    for j in range(tested[-1] + 1):
        first_after = next(t for t in tested if t >= j)
        assert first_after + 1 <= 9 * (j + 1) / 8 + 1


@pytest.mark.parametrize(
    "case", ["tol None", "tol 1e-5", "dense", "centred", "steep", "float32 data"]
)
def test_float64_basis_unless_float32_resolves_the_request(rng, case):
    """The float32 basis needs a sparse float64 matrix, no implicit centring, a
    ``tol`` of at least 1e-4 and a spectrum float32 resolves to it; otherwise
    the solve is in the data's precision (a steep spectrum abandons the float32
    basis early), and as accurate as the request."""
    A = random_csr(rng, 3000, 800, 0.01)
    kwargs = {"block_size": 8, "n_iter": 40, "tol": 1e-3}
    if case == "tol None":
        kwargs["tol"] = None
    elif case == "tol 1e-5":
        kwargs["tol"] = 1e-5
    elif case == "dense":
        A = A.toarray()
    elif case == "centred":
        kwargs["center"] = True
    elif case == "steep":
        # s_10 / s_1 = exp(-4.5): eps32 (s_1 / s_10)^2 ~ 1e-3, not 16x below tol.
        A = sp.csr_matrix(steep_spectrum(rng, 600, 200, n_values=40, rate=2.0))
    else:
        A = A.astype(np.float32)
    U, S, Vt, info = _randomized_svd(A, K, random_state=0, return_info=True, **kwargs)
    expected = "float32" if case == "float32 data" else "float64"
    assert info["basis_dtype"] == expected
    dense = A.toarray() if sp.issparse(A) else A
    if kwargs.get("center"):
        dense = dense - dense.mean(axis=0)
    S_exact = scipy.linalg.svdvals(dense.astype(np.float64))[:K]
    assert np.max(np.abs(S - S_exact) / S_exact) <= 1e-3


@pytest.mark.slow
@pytest.mark.parametrize(
    "algorithm, tol", [("krylov", 0), ("bidiagonal", 0), ("krylov", 1e-3)]
)
def test_sparse_solve_bitwise_independent_of_threads(algorithm, tol):
    """A whole sparse solve (tiled products, split basis products, partial
    reorthogonalisation; both Krylov solvers, the float32 basis) gives the same
    bits on one thread and on two."""
    A = sp.random(20000, 4000, density=0.005, format="csr", random_state=0)
    results = []
    for n_threads in (1, 2):
        with threadpool_limits(n_threads, user_api="blas"):
            *result, info = _randomized_svd(
                A,
                20,
                algorithm=algorithm,
                block_size=16,
                n_iter=30,
                tol=tol,
                random_state=0,
                return_info=True,
            )
            results.append(result)
        assert info["basis_dtype"] == ("float32" if tol else "float64")
    for first, second in zip(*results):
        assert_array_equal(first, second)


def test_function_rejects_bad_input(rng):
    """Too many components, NaN, a basis too small and bad options raise."""
    X = rng.standard_normal((20, 5))
    with pytest.raises(ValueError, match=r"n_components=6 must be at most"):
        randomized_svd(X, 6)
    with pytest.raises(ValueError, match="NaN"):
        randomized_svd(np.full((4, 4), np.nan), 2)
    with pytest.raises(ValueError, match="cannot hold"):
        randomized_svd(X, 4, algorithm="krylov", block_size=1, n_iter=1)
    # scikit-learn's InvalidParameterError is a ValueError.
    with pytest.raises(ValueError, match="'algorithm' parameter"):
        randomized_svd(X, 2, algorithm="lanczos")


def _options(shape, n_components, **kwargs):
    """``_resolve_options`` with the defaults of ``randomized_svd``."""
    params = {
        "n_oversamples": 10,
        "n_iter": "auto",
        "normalizer": "auto",
        "algorithm": "auto",
        "block": None,
    }
    return _resolve_options(shape, n_components, **{**params, **kwargs})


def test_resolve_options_follows_the_documented_rules():
    """The "auto" rules of docs/svd.rst ("How "auto" decides")."""
    # k = 50: dense blocks round up to 56 (+12%), sparse ones stay at 50;
    # 4 Krylov iterations, 9 block products.
    assert _options((20000, 2000), 50) == ("krylov", 4, "LU", 56)
    assert _options((20000, 2000), 50, sparse=True) == ("krylov", 4, "LU", 50)
    # k = 10 would round up to 16 (+60%): no rounding; a narrow block gets more
    # iterations for the same budget of 8 (k + p) columns.
    assert _options((20000, 2000), 10) == ("krylov", 7, "LU", 10)
    # Subspace iteration: scikit-learn's 7 power iterations, 4 when k is at
    # least a tenth of the short side; no normaliser for two iterations or fewer.
    assert _options((20000, 2000), 10, algorithm="subspace")[:3] == (
        "subspace",
        7,
        "LU",
    )
    assert _options((20000, 2000), 200, algorithm="subspace")[1] == 4
    assert _options((200, 100), 5, algorithm="subspace", n_iter=2)[2] == "none"
    # A Krylov basis above _MAX_KRYLOV_BYTES falls back to subspace iteration.
    short = _MAX_KRYLOV_BYTES // (8 * 5 * 56) + 1
    assert _options((10 * short, short), 50)[0] == "subspace"
