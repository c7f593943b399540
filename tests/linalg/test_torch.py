"""The torch operator and basis products, and the solvers on CPU torch tensors.

Oracles: the NumPy operator and products (themselves tested against dense
products in ``test_operators.py``), and the NumPy path of ``_randomized_svd``
(tested against LAPACK's SVD elsewhere).
"""

import numpy as np
import pytest
import scipy.linalg
import scipy.sparse as sp
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.utils import check_random_state

from fasttsne.linalg._svd._bidiagonal import _BlockBidiagonal
from fasttsne.linalg._svd._lanczos import _BlockLanczos, _block_krylov
from fasttsne.linalg._svd._operators import _BasisProducts, _LinearOperator
from fasttsne.linalg._svd._randomized import _randomized_svd
from fasttsne.linalg._svd._subspace import _subspace_iteration
from fasttsne.linalg._svd._torch import TorchOperator, TorchProducts, to_numpy
from tests._oracles import low_rank_plus_noise, power_law, steep_spectrum

torch = pytest.importorskip("torch")

pytestmark = [
    pytest.mark.usefixtures("one_blas_thread"),
    pytest.mark.filterwarnings("ignore:Sparse CSR tensor support:UserWarning"),
]


def _torch_matrix(A, layout):
    """``A`` (dense NumPy) as a dense or CSR torch tensor."""
    tensor = torch.from_numpy(np.ascontiguousarray(A))
    return tensor.to_sparse_csr() if layout == "csr" else tensor


@pytest.mark.parametrize("layout", ["dense", "csr"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("transpose", [False, True])
@pytest.mark.parametrize("center", [False, True])
def test_operator_matches_numpy(rng, layout, dtype, transpose, center):
    """``matmat``/``rmatmat``, ``shape``, ``dtype`` and ``cost_per_column`` as the
    NumPy operator's, on dense and CSR tensors."""
    A = rng.standard_normal((300, 200))
    A[rng.random(A.shape) < 0.8] = 0.0
    A = A.astype(dtype)
    mean = A.mean(axis=0) if center else None
    container = sp.csr_matrix if layout == "csr" else np.asarray
    expected = _LinearOperator(container(A), mean=mean, transpose=transpose, width=8)
    op = TorchOperator(
        _torch_matrix(A, layout),
        mean=None if mean is None else torch.from_numpy(mean),
        transpose=transpose,
    )
    assert op.shape == expected.shape and op.dtype == expected.dtype == dtype
    assert op.cost_per_column == expected.cost_per_column
    X = rng.standard_normal((op.shape[1], 8)).astype(dtype)
    Y = rng.standard_normal((op.shape[0], 8)).astype(dtype)
    AX, ATY = op.matmat(torch.from_numpy(X)), op.rmatmat(torch.from_numpy(Y))
    assert AX.dtype == ATY.dtype == getattr(torch, np.dtype(dtype).name)
    atol = 1e-4 if dtype == np.float32 else 1e-12
    assert_allclose(to_numpy(AX), expected.matmat(X), atol=atol)
    assert_allclose(to_numpy(ATY), expected.rmatmat(Y), atol=atol)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_basis_products_match_numpy(rng, dtype):
    """Every product and reduction as the NumPy backend's: small results as
    NumPy arrays, tall ones as tensors in the tall operand's dtype."""
    products, oracle = TorchProducts(torch.device("cpu")), _BasisProducts()
    B = rng.standard_normal((5000, 16)).astype(dtype)
    Z = rng.standard_normal((5000, 5)).astype(dtype)
    C = rng.standard_normal((16, 5))
    Bt, Zt = torch.from_numpy(B), torch.from_numpy(Z)
    atol_dot, atol_inner = (1e-12, 1e-10) if dtype == np.float64 else (1e-4, 1e-2)
    assert products.dtype_of(Bt) == dtype
    inner = products.inner(Bt, Zt)
    assert isinstance(inner, np.ndarray)
    assert_allclose(inner, oracle.inner(B, Z), atol=atol_inner)
    gram = products.gram(Zt, np.float64)
    assert isinstance(gram, np.ndarray) and gram.dtype == np.float64
    assert_allclose(gram, oracle.gram(Z, np.float64), atol=1e-9)
    assert_allclose(
        products.column_norms(Zt),
        oracle.column_norms(Z),
        rtol=1e-5 if dtype == np.float32 else 1e-13,
    )
    product = products.dot(Bt, C)
    assert torch.is_tensor(product) and product.dtype == Bt.dtype
    assert_allclose(to_numpy(product), oracle.dot(B, C), atol=atol_dot)
    products.subtract_dot(Zt, Bt, C)
    oracle.subtract_dot(Z, B, C)
    assert_allclose(to_numpy(Zt), Z, atol=atol_dot)
    products.add_dot(Zt, Bt, C)
    oracle.add_dot(Z, B, C)
    assert_allclose(to_numpy(Zt), Z, atol=2 * atol_dot)


def test_basis_products_allocate_draw_and_factorise(rng):
    """Allocation (column-major, writable through slices), host Gaussian draws
    equal to NumPy's, stacks, copies, and the QR and LU factors of SciPy."""
    products = TorchProducts(torch.device("cpu"))
    V = products.empty((40, 6), np.float64)
    assert V.shape == (40, 6) and V.dtype == torch.float64 and V.stride() == (1, 40)
    V[:, 1:3] = 1.5
    assert float(V[:, 1:3].sum()) == 1.5 * 2 * 40
    zeros = products.zeros((7, 2), np.float32)
    assert zeros.dtype == torch.float32 and not zeros.any()
    draws = products.gaussian(check_random_state(0), (50, 4), np.float32)
    expected = check_random_state(0).standard_normal((50, 4)).astype(np.float32)
    assert_array_equal(to_numpy(draws), expected)
    copy = products.copy(draws)
    copy[:] = 0
    assert_array_equal(to_numpy(draws), expected)
    stacked = products.hstack([draws, zeros[:0].new_zeros((50, 2))])
    assert_array_equal(to_numpy(stacked[:, :4]), expected)
    for shape in [(500, 6), (6, 6), (4, 6)]:
        Y = rng.standard_normal(shape)
        Q = to_numpy(products.qr(torch.from_numpy(Y)))
        assert_allclose(Q.T @ Q, np.eye(Q.shape[1]), atol=1e-13)
        assert_allclose(Q @ (Q.T @ Y), Y, atol=1e-12)
        PL = to_numpy(products.lu(torch.from_numpy(Y)))
        expected = scipy.linalg.lu(Y, permute_l=True, check_finite=False)[0]
        assert_allclose(PL, expected, atol=1e-13)


def _solve(method, A, backend, **kwargs):
    """Run ``method`` on ``A`` with the NumPy or the torch backend."""
    if backend == "numpy":
        op, products = _LinearOperator(A, width=8), _BasisProducts()
    else:
        tensor = torch.from_numpy(A.toarray() if sp.issparse(A) else A)
        if sp.issparse(A):
            tensor = tensor.to_sparse_csr()
        op, products = TorchOperator(tensor), TorchProducts(tensor.device)
    U, S, Vt, _ = method(op, rng=check_random_state(0), products=products, **kwargs)
    if backend == "torch":
        assert torch.is_tensor(U) and torch.is_tensor(Vt)
        U, Vt = to_numpy(U), to_numpy(Vt)
    return U, S, Vt


@pytest.mark.parametrize(
    "method, kwargs",
    [
        (_block_krylov, {"solver": _BlockLanczos, "block_size": 8, "n_iter": 8}),
        (_block_krylov, {"solver": _BlockBidiagonal, "block_size": 8, "n_iter": 8}),
        (_subspace_iteration, {"n_iter": 4, "normalizer": "LU"}),
        (_subspace_iteration, {"n_iter": 4, "normalizer": "QR"}),
        (_subspace_iteration, {"n_iter": 2, "normalizer": "none"}),
    ],
)
@pytest.mark.parametrize("matrix", ["power law", "sparse", "float32", "steep"])
def test_solvers_on_torch_match_numpy(rng, method, kwargs, matrix):
    """Each solver, unchanged, on the torch backend: the singular values and
    subspaces of the NumPy backend to the solver's accuracy (the same draws, so
    the rounding differences of the two libraries are all that separate them)."""
    if matrix == "steep" and kwargs.get("solver") is _BlockLanczos:
        pytest.skip("Lanczos does not resolve steep spectra (bidiagonal does)")
    A = {
        "power law": lambda: power_law(rng, 800, 300),
        "sparse": lambda: sp.random(800, 300, density=0.05, random_state=0).tocsr(),
        "float32": lambda: low_rank_plus_noise(rng, 600, 200).astype(np.float32),
        "steep": lambda: steep_spectrum(rng, 600, 200),
    }[matrix]()
    if method is _block_krylov:
        kwargs = {"tol": 0, **kwargs}
    kwargs = {"n_components": 10, "n_oversamples": 10, **kwargs}
    U, S, Vt = _solve(method, A, "numpy", **kwargs)
    Ut, St, Vtt = _solve(method, A, "torch", **kwargs)
    rtol = 1e-4 if A.dtype == np.float32 else 1e-10
    assert isinstance(St, np.ndarray)
    assert_allclose(St, S, rtol=rtol, atol=rtol * S[0])
    # The leading singular vectors agree up to sign (well separated values).
    signs = np.sign(np.sum(U[:, :3] * Ut[:, :3], axis=0))
    assert_allclose(Ut[:, :3] * signs, U[:, :3], atol=100 * rtol)
    assert_allclose(Vtt[:3] * signs[:, None], Vt[:3], atol=100 * rtol)


@pytest.mark.parametrize("layout", ["dense", "csr"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("algorithm", ["krylov", "bidiagonal", "subspace"])
@pytest.mark.parametrize("center", [False, True])
@pytest.mark.parametrize("wide", [False, True])
def test_randomized_svd_on_torch_matches_numpy(
    rng, layout, dtype, algorithm, center, wide
):
    """``_randomized_svd`` on a torch tensor: torch results in the input's dtype
    (and device), equal to the NumPy path's to working precision, signs too."""
    A = power_law(rng, 400, 150).astype(dtype)
    if layout == "csr":
        A[rng.random(A.shape) < 0.5] = 0
    A = A.T.copy() if wide else A
    container = sp.csr_matrix if layout == "csr" else np.asarray
    options = {"algorithm": algorithm, "random_state": 0, "center": center}
    U, S, Vt = _randomized_svd(container(A), 8, **options)
    Ut, St, Vtt = _randomized_svd(_torch_matrix(A, layout), 8, **options)
    torch_dtype = getattr(torch, np.dtype(dtype).name)
    for result in (Ut, St, Vtt):
        assert torch.is_tensor(result) and result.dtype == torch_dtype
    assert Ut.is_contiguous() and Vtt.is_contiguous()
    tol = 1e-4 if dtype == np.float32 else 1e-10
    assert_allclose(to_numpy(St), S, rtol=tol)
    assert_allclose(to_numpy(Ut)[:, :4], U[:, :4], atol=100 * tol)
    assert_allclose(to_numpy(Vtt)[:4], Vt[:4], atol=100 * tol)


@pytest.mark.parametrize("layout", ["dense", "csr"])
def test_randomized_svd_on_torch_scales_extreme_magnitudes(rng, layout):
    """Data far outside the safe range are scaled by a power of two on the
    tensor's side as on NumPy's: the same singular values."""
    A = power_law(rng, 300, 100) * 2.0**600
    A[rng.random(A.shape) < 0.5] = 0
    container = sp.csr_matrix if layout == "csr" else np.asarray
    S = _randomized_svd(container(A), 5, random_state=0, center=True)[1]
    St = _randomized_svd(_torch_matrix(A, layout), 5, random_state=0, center=True)[1]
    assert np.all(np.isfinite(S))
    assert_allclose(to_numpy(St), S, rtol=1e-10)
