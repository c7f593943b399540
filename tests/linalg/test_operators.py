"""Tests of the operator and the basis products, on their own and as the only
way the solvers reach their data.

Oracles: dense NumPy products with the densified (centred, transposed) matrix.
"""

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import scipy.sparse as sp
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.utils import check_random_state

from fasttsne.linalg._svd._bidiagonal import _BlockBidiagonal
from fasttsne.linalg._svd._lanczos import _block_krylov
from fasttsne.linalg._svd._operators import (
    _ONE_CALL_PRODUCTS,
    _BasisProducts,
    _LinearOperator,
    _n_tiles,
)
from fasttsne.linalg._svd._subspace import _subspace_iteration
from tests._oracles import (
    low_rank_plus_noise,
    power_law,
    rank_deficient,
    steep_spectrum,
)

pytestmark = pytest.mark.usefixtures("one_blas_thread")


# --- the operator ---------------------------------------------------------------


@pytest.mark.parametrize("container", [np.asarray, sp.csr_matrix, sp.csc_matrix])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("transpose", [False, True])
@pytest.mark.parametrize("center", [False, True])
def test_operator_matches_dense_products(rng, container, dtype, transpose, center):
    """``matmat``/``rmatmat`` are the products with the (centred, transposed)
    matrix, in its dtype; ``shape`` and ``cost_per_column`` describe it."""
    A = rng.standard_normal((300, 200))
    A[rng.random(A.shape) < 0.8] = 0.0
    A = A.astype(dtype)
    mean = A.mean(axis=0) if center else None
    op = _LinearOperator(
        container(A), mean=mean, transpose=transpose, n_threads=2, width=8
    )
    dense = A.astype(np.float64) - (mean if center else 0.0)
    dense = dense.T if transpose else dense
    assert op.shape == dense.shape and op.dtype == dtype
    stored = np.count_nonzero(A) if container is not np.asarray else A.size
    assert op.cost_per_column == stored
    X = rng.standard_normal((dense.shape[1], 8)).astype(dtype)
    Y = rng.standard_normal((dense.shape[0], 8)).astype(dtype)
    AX, ATY = op.matmat(X), op.rmatmat(Y)
    assert AX.dtype == ATY.dtype == dtype
    # ~40 products of size ~1 per entry: float32 rounding of ~1e-5.
    atol = 1e-4 if dtype == np.float32 else 1e-12
    assert_allclose(AX, dense @ X, atol=atol)
    assert_allclose(ATY, dense.T @ Y, atol=atol)


@pytest.mark.parametrize("fmt", ["csr", "csc"])
def test_sparse_products_bitwise_independent_of_threads(rng, fmt):
    """Tiled, threaded sparse products: bitwise equal for 1, 2 or 3 threads.

    The tile count does not follow the thread count; the width does (2 tiles of
    the columns of A for 8 columns, 10 for 64), so this also checks that the
    tiling leaves the sums unchanged.
    """
    A = sp.random(400, 20000, density=0.01, format=fmt, random_state=0)
    X = rng.standard_normal((20000, 8))
    Y = rng.standard_normal((400, 8))
    mean = np.asarray(A.mean(axis=0)).ravel()
    assert _n_tiles(A.shape, A.nnz, 8, np.float64) == 2
    assert _n_tiles(A.shape, A.nnz, 64, np.float64) == 10
    results = []
    for n_threads, width in [(1, 8), (2, 8), (3, 8), (1, 64), (2, 64), (3, 64)]:
        op = _LinearOperator(A, mean=mean, n_threads=n_threads, width=width)
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


@pytest.mark.parametrize("fmt", ["csr", "csc"])
@pytest.mark.parametrize("transpose", [False, True])
@pytest.mark.parametrize("exponent", [-40, 0, 40])
def test_operator_astype_copies_the_sparse_data(rng, fmt, transpose, exponent):
    """``astype`` gives the operator of the cast matrix scaled so that its
    largest magnitude lies in [0.5, 1), shares the index arrays, and leaves the
    original's values as they were; dense operators refuse."""
    A = sp.random(300, 2000, density=0.02, format=fmt, random_state=1)
    A = A * np.ldexp(1.0, exponent)
    values = A.data.copy()
    mean = np.asarray(A.mean(axis=0)).ravel()
    op = _LinearOperator(A, mean=mean, transpose=transpose, n_threads=2, width=8)
    cast, shift = op.astype(np.float32)
    assert 0.5 <= np.max(np.abs(A.data)) * np.ldexp(1.0, -shift) < 1.0
    assert cast.dtype == np.float32 and cast.shape == op.shape
    dense = (A.toarray() - mean) * np.ldexp(1.0, -shift)
    dense = dense.T if transpose else dense
    X = rng.standard_normal((op.shape[1], 8)).astype(np.float32)
    Y = rng.standard_normal((op.shape[0], 8)).astype(np.float32)
    assert_allclose(cast.matmat(X), dense @ X, rtol=1e-4, atol=1e-4)
    assert_allclose(cast.rmatmat(Y), dense.T @ Y, rtol=1e-4, atol=1e-4)
    assert_array_equal(A.data, values)
    assert op.matmat(X.astype(np.float64)).dtype == np.float64
    with pytest.raises(TypeError, match="sparse"):
        _LinearOperator(A.toarray()).astype(np.float32)


def test_operator_drops_its_csr_matrix_once_both_tilings_exist(rng):
    """Both tilings hold every entry: the CSR matrix is freed, products are
    unchanged, and ``astype`` then says why it cannot copy; ``release`` frees
    the tiles."""
    A = sp.random(400, 300, density=0.05, format="csr", random_state=2)
    op = _LinearOperator(A, n_threads=2, width=8)
    X = rng.standard_normal((300, 8))
    Y = rng.standard_normal((400, 8))
    before = op.matmat(X)
    assert op.astype(np.float32)[0].dtype == np.float32
    op.rmatmat(Y)
    assert_array_equal(op.matmat(X), before)
    with pytest.raises(ValueError, match="dropped"):
        op.astype(np.float32)
    op.release()
    assert op._tiles is None and op._tiles_t is None  # pylint: disable=W0212


# --- the basis products -----------------------------------------------------------

# 70000 x 16 = 1.1e6 entries: above the size at which products are cut in pieces.
TALL, WIDE, NARROW = 70000, 16, 5


@pytest.fixture(name="products", params=["one call", "in turn", "in a pool"])
def fixture_products(request):
    """Each way of running the products: one call, pieces in turn, a pool."""
    if request.param == "one call":
        yield _ONE_CALL_PRODUCTS
    elif request.param == "in turn":
        yield _BasisProducts()
    else:
        with ThreadPoolExecutor(3) as executor:
            yield _BasisProducts(executor)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_basis_products_match_numpy(rng, products, dtype):
    """Every product and reduction equals the plain NumPy expression."""
    B = rng.standard_normal((TALL, WIDE)).astype(dtype)
    Z = rng.standard_normal((TALL, NARROW)).astype(dtype)
    C = rng.standard_normal((WIDE, NARROW))  # float64: cast to B's dtype
    B64, Z64, C64 = (M.astype(np.float64) for M in (B, Z, C.astype(dtype)))
    # Absolute tolerances: B C sums 16 products of size ~1 (float32 errors of
    # ~4e-6 measured), B^T Z sums 70000 (entries ~260, float32 errors ~1.5e-3).
    atol_dot, atol_inner = (1e-12, 1e-10) if dtype == np.float64 else (1e-4, 2e-2)
    assert products.dtype_of(B) == dtype
    inner = products.inner(B, Z)
    assert isinstance(inner, np.ndarray) and inner.shape == (WIDE, NARROW)
    assert_allclose(inner, B64.T @ Z64, atol=atol_inner)
    gram = products.gram(Z, np.float64)
    assert gram.dtype == np.float64
    assert_allclose(gram, Z64.T @ Z64, atol=1e-9)  # formed from exact values
    norms = products.column_norms(Z)
    assert_allclose(
        norms, np.linalg.norm(Z64, axis=0), rtol=1e-4 if dtype == np.float32 else 1e-12
    )
    product = products.dot(B, C)
    assert product.dtype == dtype
    assert_allclose(product, B64 @ C64, atol=atol_dot)
    expected = Z64 - B64 @ C64
    products.subtract_dot(Z, B, C)
    assert_allclose(Z, expected, atol=atol_dot)
    products.add_dot(Z, B, C)
    assert_allclose(Z, Z64, atol=2 * atol_dot)


def test_basis_products_bitwise_independent_of_the_pool(rng):
    """Pieces run in turn or in a pool of any size give the same bits."""
    B = rng.standard_normal((TALL, WIDE))
    Z = rng.standard_normal((TALL, NARROW))
    C = rng.standard_normal((WIDE, NARROW))
    results = []
    for n_threads in (None, 2, 3):
        executor = ThreadPoolExecutor(n_threads) if n_threads else None
        products = _BasisProducts(executor)
        Z_out = Z.copy()
        products.subtract_dot(Z_out, B, C)
        results.append((products.inner(B, Z), products.dot(B, C), Z_out))
        if executor is not None:
            executor.shutdown()
    for result in results[1:]:
        for first, second in zip(results[0], result):
            assert_array_equal(first, second)


def test_basis_products_allocate_and_draw(products):
    """New tall arrays: uninitialised (column-major), zeros, copies, stacks and
    Gaussian draws equal to the host generator's."""
    for shape in [(10, 3), (2100, 1000)]:  # the second takes 16.8 MB: an mmap
        V = products.empty(shape, np.float64)
        assert V.shape == shape and V.dtype == np.float64
        assert V.flags.f_contiguous and V.flags.writeable
        V[:, 1:3] = 1.5
        assert V[:, 1:3].sum() == 1.5 * 2 * shape[0]
    assert products.empty((10, 3), np.float32).dtype == np.float32
    zeros = products.zeros((7, 2), np.float32)
    assert zeros.dtype == np.float32 and not zeros.any()
    draws = products.gaussian(check_random_state(0), (50, 4), np.float32)
    assert draws.dtype == np.float32
    expected = check_random_state(0).standard_normal((50, 4)).astype(np.float32)
    assert_array_equal(draws, expected)
    copy = products.copy(draws)
    copy[:] = 0
    assert_array_equal(draws, expected)
    stacked = products.hstack([draws, products.zeros((50, 2), np.float32)])
    assert_array_equal(stacked[:, :4], expected)
    assert not stacked[:, 4:].any()


def test_basis_products_factorisations(rng, products):
    """QR gives an orthonormal basis of range(Y), LU a basis of it too."""
    Y = rng.standard_normal((500, 6))
    Q = products.qr(Y)
    assert Q.shape == (500, 6)
    assert_allclose(Q.T @ Q, np.eye(6), atol=1e-14)
    assert_allclose(Q @ (Q.T @ Y), Y, atol=1e-12)
    L = products.lu(Y)
    assert L.shape == (500, 6)
    coef = np.linalg.lstsq(L, Y, rcond=None)[0]
    assert_allclose(L @ coef, Y, atol=1e-12)


# --- the solvers reach tall arrays only through the two objects -------------------


class _Tall:
    """A tall array that NumPy refuses: the stand-in for another backend's arrays.

    It offers what the solvers may use (``shape``, ``T``, slicing, slice
    assignment); any NumPy function, ufunc, operator or ``dtype`` on it raises.
    """

    __array_ufunc__ = None  # binary operators with ndarrays raise TypeError

    def __init__(self, data):
        self.data = data

    @property
    def shape(self):
        """Shape of the wrapped array."""
        return self.data.shape

    @property
    def T(self):  # pylint: disable=invalid-name
        """Transpose, still wrapped."""
        return _Tall(self.data.T)

    def __getitem__(self, key):
        return _Tall(self.data[key])

    def __setitem__(self, key, value):
        if isinstance(value, np.ndarray):
            raise TypeError("a NumPy array was written into a tall array")
        self.data[key] = value.data if isinstance(value, _Tall) else value

    def __array__(self, *args, **kwargs):
        raise TypeError("NumPy touched a tall array")

    def __array_function__(self, *args, **kwargs):
        raise TypeError("a NumPy function touched a tall array")


def _tall(array):
    assert isinstance(array, np.ndarray)
    return _Tall(array)


def _data(array):
    assert isinstance(array, _Tall), "a tall operand arrived as a NumPy array"
    return array.data


def _small(array):
    assert isinstance(array, np.ndarray), "a small operand is not a NumPy array"
    return array


class _TallProducts:
    """The basis products on :class:`_Tall` arrays, by NumPy underneath."""

    def __init__(self, numpy_products):
        self._numpy = numpy_products

    def empty(self, shape, dtype):
        """Uninitialised tall array."""
        return _tall(self._numpy.empty(shape, dtype))

    def zeros(self, shape, dtype):
        """Tall zeros."""
        return _tall(self._numpy.zeros(shape, dtype))

    def copy(self, Z):
        """Copy of a tall array."""
        return _tall(self._numpy.copy(_data(Z)))

    def hstack(self, blocks):
        """Tall blocks side by side."""
        return _tall(self._numpy.hstack([_data(block) for block in blocks]))

    def gaussian(self, rng, shape, dtype):
        """Gaussian tall block."""
        return _tall(self._numpy.gaussian(rng, shape, dtype))

    def dtype_of(self, Z):
        """NumPy dtype of a tall array."""
        return _data(Z).dtype

    def astype(self, Z, dtype):
        """A copy in ``dtype``, tall."""
        return _tall(self._numpy.astype(_data(Z), dtype))

    def column_norms(self, Z):
        """Column norms, small."""
        return _small(self._numpy.column_norms(_data(Z)))

    def inner(self, B, Z):
        """``B^T Z``, small."""
        return _small(self._numpy.inner(_data(B), _data(Z)))

    def gram(self, Z, dtype):
        """``Z^T Z`` in ``dtype``, small."""
        return _small(self._numpy.gram(_data(Z), dtype))

    def dot(self, B, C):
        """``B C``, tall."""
        return _tall(self._numpy.dot(_data(B), _small(C)))

    def subtract_dot(self, Z, B, C):
        """``Z -= B C``."""
        self._numpy.subtract_dot(_data(Z), _data(B), _small(C))

    def add_dot(self, Z, B, C):
        """``Z += B C``."""
        self._numpy.add_dot(_data(Z), _data(B), _small(C))

    def qr(self, Y):
        """Orthonormal QR factor, tall."""
        return _tall(self._numpy.qr(_data(Y)))

    def lu(self, Y):
        """Permuted LU factor, tall."""
        return _tall(self._numpy.lu(_data(Y)))


class _TallOperator:
    """The operator on :class:`_Tall` arrays."""

    def __init__(self, op):
        self._op = op
        self.shape, self.dtype = op.shape, op.dtype
        self.cost_per_column = op.cost_per_column

    def matmat(self, X):
        """``A @ X``, tall."""
        return _tall(self._op.matmat(_data(X)))

    def rmatmat(self, Y):
        """``A^T @ Y``, tall."""
        return _tall(self._op.rmatmat(_data(Y)))


def _solve(method, A, wrapped, final=None, **kwargs):
    """Run ``method`` on ``A`` with NumPy or :class:`_Tall` arrays (and its
    final Rayleigh-Ritz step on ``final``, if given)."""
    op, products = _LinearOperator(A, width=8), _BasisProducts()
    if final is not None:
        kwargs["final_op"] = _LinearOperator(final, width=8)
    if wrapped:
        op, products = _TallOperator(op), _TallProducts(products)
        if final is not None:
            kwargs["final_op"] = _TallOperator(kwargs["final_op"])
    U, S, Vt, n_iter = method(
        op, rng=check_random_state(0), products=products, **kwargs
    )
    if wrapped:
        U, Vt = _data(U), _data(Vt)
    return U, S, Vt, n_iter


SUBSPACE = {"n_oversamples": 10, "n_iter": 4}
BIDIAGONAL = {"solver": _BlockBidiagonal, "tol": None}  # solver of _block_krylov


@pytest.mark.parametrize(
    "method, kwargs, matrix",
    [
        # Early stop by the residual test; A V Y recomputed.
        (_block_krylov, {"block_size": 8, "n_iter": 20, "tol": None}, "low rank"),
        # Sparse: full passes skipped; A V Y recomputed.
        (_block_krylov, {"block_size": 8, "n_iter": 20, "tol": 0}, "sparse"),
        # A V_j kept, and mapped when the Ritz vectors are orthonormalised again.
        (_block_krylov, {"block_size": 4, "n_iter": 30, "tol": 0}, "power law"),
        # Rank 8 < 10: dependent directions replaced by random ones.
        (_block_krylov, {"block_size": 4, "n_iter": 6, "tol": None}, "rank 8"),
        # float32: the Gram matrices in float64.
        (_block_krylov, {"block_size": 8, "n_iter": 8, "tol": None}, "float32"),
        # A float32 basis, the final step on the float64 matrix.
        (_block_krylov, {"block_size": 8, "n_iter": 20, "tol": 1e-3}, "32 -> 64"),
        # Block bidiagonalisation: both sides reorthogonalised, A V Y from the
        # kept left blocks (power law), noise directions dropped (rank 8),
        # Householder QR for ill-conditioned blocks (steep).
        (_block_krylov, {**BIDIAGONAL, "block_size": 4, "n_iter": 20}, "power law"),
        (_block_krylov, {**BIDIAGONAL, "block_size": 4, "n_iter": 6}, "rank 8"),
        (_block_krylov, {**BIDIAGONAL, "block_size": 8, "n_iter": 8}, "steep"),
        (_block_krylov, {**BIDIAGONAL, "block_size": 8, "n_iter": 8}, "sparse"),
        (_subspace_iteration, {**SUBSPACE, "normalizer": "LU"}, "low rank"),
        (_subspace_iteration, {**SUBSPACE, "normalizer": "QR"}, "sparse"),
        # Rank 8: the final orthonormalisation falls back to Householder QR.
        (_subspace_iteration, {**SUBSPACE, "normalizer": "none"}, "rank 8"),
    ],
)
def test_solvers_run_on_arrays_numpy_cannot_touch(rng, method, kwargs, matrix):
    """The solvers reach tall arrays only through the operator and the basis
    products: on arrays that NumPy refuses they give the NumPy results, bitwise."""
    A = {
        "low rank": lambda: low_rank_plus_noise(rng, 1000, 400),
        "sparse": lambda: sp.random(1000, 400, density=0.05, random_state=0),
        "power law": lambda: power_law(rng, 1500, 500),
        "rank 8": lambda: rank_deficient(rng, 600, 200),
        "float32": lambda: low_rank_plus_noise(rng, 600, 200).astype(np.float32),
        "steep": lambda: steep_spectrum(rng, 600, 200),
        "32 -> 64": lambda: sp.random(1000, 400, density=0.05, random_state=0),
    }[matrix]()
    kwargs = {"n_components": 10, "n_oversamples": 10, **kwargs}
    if matrix == "32 -> 64":
        A, kwargs["final"] = A.astype(np.float32), A
    expected = _solve(method, A, False, **kwargs)
    actual = _solve(method, A, True, **kwargs)
    for first, second in zip(expected[:3], actual[:3]):
        assert_array_equal(first, second)
    assert expected[3] == actual[3]
