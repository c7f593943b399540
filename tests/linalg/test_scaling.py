"""Results at any magnitude: the SVD scales its data by a power of two.

Oracle: the same call on the data at magnitude 1, which the scaling leaves
bitwise unchanged; a scaled matrix's singular values are the scaled ones.
"""

import numpy as np
import pytest
import scipy.sparse as sp
from numpy.testing import assert_allclose, assert_array_equal

from fasttsne import RandomizedSVD, randomized_svd
from fasttsne.linalg._scaling import _max_abs, _scale_exponent, _scaled
from fasttsne.linalg._svd._randomized import _randomized_svd
from tests._oracles import low_rank_plus_noise

pytestmark = pytest.mark.usefixtures("one_blas_thread")

# Powers of two spanning each dtype's range (2**1000 ~ 1e301, 2**-1000 ~ 1e-301).
EXPONENTS = {
    np.float64: [-1000, -700, -510, -300, 0, 300, 510, 700, 1000],
    np.float32: [-120, -80, -64, -40, 0, 40, 64, 100],
}


def _cases():
    for dtype, exponents in EXPONENTS.items():
        for exponent in exponents:
            yield dtype, exponent


@pytest.fixture(name="A", scope="module")
def fixture_a():
    """A 200 x 60 low-rank-plus-noise matrix of magnitude about 1."""
    return low_rank_plus_noise(np.random.default_rng(0), 200, 60)


@pytest.mark.parametrize("dtype, exponent", list(_cases()))
@pytest.mark.parametrize("algorithm", ["krylov", "subspace"])
def test_function_is_scale_equivariant(A, dtype, exponent, algorithm):
    """Issue 13: data scaled by 1e-200 gave singular values off by 5x, and above
    ~1e152 the solve failed. Now a scaled matrix has exactly the scaled singular
    values and the same vectors, across the whole range of each dtype."""
    X = A.astype(dtype)
    reference = randomized_svd(X, 10, algorithm=algorithm, random_state=0)
    scaled = randomized_svd(
        np.ldexp(X, exponent), 10, algorithm=algorithm, random_state=0
    )
    assert scaled[1].dtype == dtype
    # Scaling by a power of two rounds nothing; what differs is the rounding
    # inside LAPACK, which scales by its own thresholds.
    rtol = 1e-14 if dtype == np.float64 else 1e-6
    assert_allclose(
        np.ldexp(scaled[1].astype(np.float64), -exponent), reference[1], rtol=rtol
    )
    assert_allclose(scaled[0], reference[0], atol=rtol)
    assert_allclose(scaled[2], reference[2], atol=rtol)


@pytest.mark.parametrize("dtype, exponent", list(_cases()))
@pytest.mark.parametrize("center", [False, True])
@pytest.mark.parametrize("sparse", [False, True])
def test_estimator_is_scale_equivariant(A, dtype, exponent, center, sparse):
    """explained_variance_ratio_ was all zeros at 1e-300: every attribute is now
    the scaled one (variances beyond the dtype's range are 0 or inf)."""
    X = A.astype(dtype)
    X[np.abs(X) < 0.5] = 0  # some sparsity
    container = sp.csr_matrix if sparse else np.asarray
    reference = RandomizedSVD(5, center=center, random_state=0).fit(container(X))
    svd = RandomizedSVD(5, center=center, random_state=0)
    X_new = svd.fit_transform(container(np.ldexp(X, exponent)))
    rtol = 1e-12 if dtype == np.float64 else 1e-5
    assert_allclose(
        svd.explained_variance_ratio_, reference.explained_variance_ratio_, rtol=rtol
    )
    assert np.all(svd.explained_variance_ratio_ > 0)
    assert_allclose(svd.components_, reference.components_, rtol=rtol, atol=rtol)
    assert_allclose(
        np.ldexp(svd.singular_values_.astype(np.float64), -exponent),
        reference.singular_values_,
        rtol=rtol,
    )
    with np.errstate(over="ignore", under="ignore"):
        expected = np.ldexp(
            reference.explained_variance_.astype(np.float64), 2 * exponent
        ).astype(dtype)
    assert_allclose(svd.explained_variance_, expected, rtol=rtol)
    assert np.all(np.isfinite(X_new))


@pytest.mark.parametrize("dtype, exponent", [(np.float64, 505), (np.float32, 64)])
def test_pca_of_huge_data(A, dtype, exponent):
    """The t-SNE PCA initialisation's call (the centred twin) on data above
    1e152 in float64 (2**505) and near float32's maximum failed with
    "zero-size array" or "Eigenvalues did not converge"."""
    X = np.ldexp(A.astype(dtype) + 3.0, exponent)
    U, S, Vt = _randomized_svd(X, 2, center=True, random_state=0)
    U_ref, S_ref, _ = _randomized_svd(
        A.astype(dtype) + 3.0, 2, center=True, random_state=0
    )
    rtol = 1e-12 if dtype == np.float64 else 1e-5
    assert_allclose(np.ldexp(S.astype(np.float64), -exponent), S_ref, rtol=rtol)
    assert_allclose(U, U_ref, atol=rtol)
    assert np.all(np.isfinite(Vt))


def test_spread_far_below_the_means(A):
    """Columns of magnitude 1e300 whose spread is 1e-10 of it: after centring,
    the spread is scaled too."""
    X = 1e300 + 1e290 * A
    S = _randomized_svd(X, 3, center=True, random_state=0)[1]
    S_ref = _randomized_svd(A, 3, center=True, random_state=0)[1]
    # Centring rounds at eps * 1e300 = 1e-6 of the spread.
    assert_allclose(S / 1e290, S_ref, rtol=1e-5)


def test_singular_values_beyond_the_dtype_raise(A):
    """float32 data whose singular values exceed float32's range: a ValueError
    naming the problem, not inf or a LAPACK failure."""
    X = np.ldexp(A.astype(np.float32), 122)  # entries ~2e37, sigma_1 ~5e38
    with pytest.raises(ValueError, match="exceed the float32 range"):
        randomized_svd(X, 3, random_state=0)
    with pytest.raises(ValueError, match="exceed the float32 range"):
        RandomizedSVD(3).fit(X)
    # In float64 the same values fit.
    assert np.all(np.isfinite(randomized_svd(X.astype(np.float64), 3)[1]))


def test_scaling_helpers():
    """Exponents bring the largest magnitude into [0.5, 1) only outside the
    safe range; the scaled copy is exact and leaves the input alone."""
    assert _scale_exponent(1e3, np.float64) == 0
    assert _scale_exponent(0.0, np.float64) == 0
    assert _scale_exponent(1e-300, np.float64) == 996  # 1e-300 = 0.67 2**-996
    assert 0.5 <= np.ldexp(1e-300, 996) < 1
    assert 0.5 <= np.ldexp(1e300, _scale_exponent(1e300, np.float64)) < 1
    assert _scale_exponent(1e12, np.float32) != 0  # above 2**36
    X = np.array([[-3.0, 1.0], [2.0, 0.0]])
    assert _max_abs(X) == 3.0 and _max_abs(sp.csr_matrix(X)) == 3.0
    assert _max_abs(np.empty((0, 3))) == 0.0
    scaled = _scaled(sp.csr_matrix(X), -10)
    assert_array_equal(scaled.toarray(), X / 1024)
    assert_array_equal(X, [[-3.0, 1.0], [2.0, 0.0]])


@pytest.mark.parametrize(
    "dtype, exponent",
    [(np.float64, 300), (np.float64, -300), (np.float32, 30), (np.float32, -30)],
)
@pytest.mark.parametrize("sparse", [False, True])
@pytest.mark.parametrize("tol", [None, 1e-3])
def test_krylov_solve_of_large_and_tiny_data(dtype, exponent, sparse, tol):
    """Magnitudes inside a dtype's sums-of-squares range but beyond that of the
    fourth powers the Krylov solve forms (2**300 in float64, 2**30 in float32)
    gave singular values of a random subspace, 30-50% off, without a word.
    Oracle: LAPACK's singular values of the same data."""
    A = sp.random(2000, 300, density=0.02, random_state=0, format="csr")
    reference = np.linalg.svd(A.toarray(), compute_uv=False)[:5]
    X = A.astype(dtype) * np.ldexp(dtype(1.0), exponent)
    X = X if sparse else X.toarray()
    _, S, _ = _randomized_svd(X, 5, block_size=8, n_iter=20, tol=tol, random_state=0)
    assert S.dtype == dtype
    # tol=1e-3 asks for a few digits (a float32 basis for sparse float64).
    rtol = 1e-9 if dtype == np.float64 and tol is None else 1e-4
    assert_allclose(np.ldexp(S.astype(np.float64), -exponent), reference, rtol=rtol)
