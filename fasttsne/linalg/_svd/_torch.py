"""The operator and the basis products on torch tensors (CPU or CUDA).

The same interface as the NumPy classes of
:mod:`~fasttsne.linalg._svd._operators` (see its module notes): tall arrays
are torch tensors on the data's device, small ones NumPy arrays on the host.
The solvers run on them unchanged. torch is imported by the caller that hands
a tensor over, never by importing this module's package.

Sparse products use ``torch.sparse.mm`` on CSR tensors (and a CSR copy of the
transpose, made once, for ``A^T``). Whether a row-blocked Triton kernel would
beat it on a GPU has not been measured: no CUDA machine was available.

Results depend on the shapes and on torch's kernels; unlike the NumPy backend,
torch's CPU reductions may split work by thread count, so bitwise equality
across ``torch.set_num_threads`` is not promised.
"""

import warnings
from contextlib import contextmanager

import numpy as np
import scipy.sparse as sp

from fasttsne._array_api import is_tensor, numpy_dtype


def _torch():
    import torch  # pylint: disable=import-outside-toplevel

    return torch


def torch_dtype(dtype):
    """torch dtype of a NumPy float32/float64 dtype."""
    return getattr(_torch(), np.dtype(dtype).name)


@contextmanager
def _quiet_sparse():
    """Silence torch's "sparse CSR support is in beta" warning around the
    CSR tensors made here."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support")
        yield


def is_sparse(A):
    """Whether the tensor ``A`` is sparse (any sparse layout)."""
    return A.layout != _torch().strided


def to_numpy(array):
    """A host NumPy array with the values of the tensor ``array``."""
    return array.detach().cpu().numpy()


def prepare(M, center):
    """Float dtype, power-of-two scaling and centring, on the tensor's device.

    The torch counterpart of :func:`fasttsne.linalg._svd._randomized._prepare`
    (same rules): returns ``(M, mean, exponent)``.
    """
    # pylint: disable=import-outside-toplevel
    from fasttsne.linalg._scaling import SVD_SAFE_RANGE, _scale_exponent

    torch = _torch()
    if is_sparse(M) and M.layout != torch.sparse_csr:
        with _quiet_sparse():
            M = M.to_sparse_csr()
    if M.dtype not in (torch.float32, torch.float64):
        M = M.to(torch.float32 if M.dtype == torch.float16 else torch.float64)
    dtype = numpy_dtype(M.dtype)

    def max_abs(X):
        values = X.values() if is_sparse(X) else X
        if values.numel() == 0:
            return 0.0
        # max and -min rather than abs, which would copy the data.
        return float(torch.maximum(values.max(), -values.min()))

    def scaled(X, exponent):
        if is_sparse(X):
            values = torch.ldexp(
                X.values(), torch.tensor(exponent, device=X.device)
            ).to(X.dtype)
            with _quiet_sparse():
                return torch.sparse_csr_tensor(
                    X.crow_indices(),
                    X.col_indices(),
                    values,
                    X.shape,
                    check_invariants=False,
                )
        return torch.ldexp(X, torch.tensor(exponent, device=X.device)).to(X.dtype)

    exponent = _scale_exponent(max_abs(M), dtype, SVD_SAFE_RANGE)
    if exponent:
        M = scaled(M, exponent)
    mean = None
    if center:
        if is_sparse(M):
            ones = torch.ones((1, M.shape[0]), dtype=torch.float64, device=M.device)
            with _quiet_sparse():
                total = (M.to(torch.float64).t() @ ones.t()).ravel()
            mean = (total / M.shape[0]).to(M.dtype)
        else:
            mean = M.mean(dim=0, dtype=torch.float64).to(M.dtype)
            M, mean = M - mean, None
            shift = _scale_exponent(max_abs(M), dtype, SVD_SAFE_RANGE)
            if shift:
                M = scaled(M, shift)
                exponent += shift
    return M, mean, exponent


class TorchOperator:
    """Products with ``A`` and ``A^T`` for a dense or CSR torch tensor.

    Parameters
    ----------
    A : torch.Tensor of shape (n_rows, n_cols)
        float32 or float64, strided or ``sparse_csr``, on any device.
    mean : torch.Tensor of shape (n_cols,) or None
        Column means subtracted implicitly (sparse input).
    transpose : bool
        Work with ``A^T``.
    """

    def __init__(self, A, *, mean=None, transpose=False):
        self.dtype = numpy_dtype(A.dtype)
        self.transpose = transpose
        self.mean = mean
        rows, cols = A.shape
        self.shape = (cols, rows) if transpose else (rows, cols)
        self._A = A
        if is_sparse(A):
            self.cost_per_column = int(A.values().numel())
            # A^T as CSR, so that both products are row-parallel CSR products.
            with _quiet_sparse():
                self._AT = A.t().to_sparse_csr()
        else:
            self.cost_per_column = rows * cols
            self._AT = A.T

    def _product(self, X, transposed):
        torch = _torch()
        out = (self._AT if transposed else self._A) @ X
        if is_sparse(out):
            out = out.to_dense()
        if self.mean is not None:
            mean = self.mean
            if transposed:
                out -= torch.outer(mean, X.sum(dim=0))
            else:
                out -= (mean @ X)[None, :]
        return out

    def matmat(self, X):
        """Return ``op @ X`` for ``X`` of shape (n, b)."""
        return self._product(X, self.transpose)

    def rmatmat(self, Y):
        """Return ``op^T @ Y`` for ``Y`` of shape (m, b)."""
        return self._product(Y, not self.transpose)


class TorchProducts:
    """The basis products on torch tensors of one device.

    Parameters
    ----------
    device : torch.device
        Where the tall arrays live.
    """

    def __init__(self, device):
        self.device = device

    def _small_operand(self, C, dtype):
        """The small NumPy array ``C`` as a tensor in ``dtype`` on the device."""
        torch = _torch()
        C = np.ascontiguousarray(C, dtype=numpy_dtype(dtype))
        return torch.from_numpy(C).to(self.device)

    # -- allocation and randomness --------------------------------------------
    def empty(self, shape, dtype):
        """Uninitialised tall tensor, column-major (a transposed view)."""
        torch = _torch()
        rows, cols = shape
        return torch.empty((cols, rows), dtype=torch_dtype(dtype), device=self.device).T

    def zeros(self, shape, dtype):
        """Tall tensor of zeros."""
        torch = _torch()
        return torch.zeros(shape, dtype=torch_dtype(dtype), device=self.device)

    def copy(self, Z):
        """A copy of the tall tensor ``Z``."""
        return Z.clone()

    def hstack(self, blocks):
        """The tall blocks side by side."""
        return _torch().hstack(list(blocks))

    def gaussian(self, rng, shape, dtype):
        """Standard normal block, drawn on the host as the NumPy backend does."""
        draws = np.asarray(rng.standard_normal(size=shape), dtype=dtype)
        return _torch().from_numpy(draws).to(self.device)

    def dtype_of(self, Z):
        """NumPy dtype of the tall tensor ``Z``."""
        return numpy_dtype(Z.dtype)

    def astype(self, Z, dtype):
        """A copy of the tall tensor ``Z`` in the NumPy ``dtype``."""
        return Z.to(torch_dtype(dtype), copy=True)

    # -- reductions and products ----------------------------------------------
    def column_norms(self, Z):
        """Euclidean norms of the columns of ``Z``: small."""
        return to_numpy(_torch().sqrt((Z * Z).sum(dim=0)))

    def inner(self, B, Z):
        """Return ``B^T Z``: small."""
        return to_numpy(B.T @ Z)

    def gram(self, Z, dtype):
        """Return ``Z^T Z`` formed in ``dtype``: small."""
        Z = Z.to(torch_dtype(dtype))
        return to_numpy(Z.T @ Z)

    def dot(self, B, C):
        """Return ``B C``: tall."""
        return B @ self._small_operand(C, B.dtype)

    def subtract_dot(self, Z, B, C):
        """``Z -= B C`` in place."""
        Z.sub_(B @ self._small_operand(C, B.dtype))

    def add_dot(self, Z, B, C):
        """``Z += B C`` in place."""
        Z.add_(B @ self._small_operand(C, B.dtype))

    # -- factorisations of tall blocks ----------------------------------------
    def qr(self, Y):
        """Orthonormal factor of the economic Householder QR of ``Y``."""
        return _torch().linalg.qr(Y, mode="reduced")[0]

    def lu(self, Y):
        """Permuted lower factor ``P L`` of the partial-pivoting LU of ``Y``.

        From the packed factor and the pivots, without forming the (r, r)
        permutation matrix.
        """
        torch = _torch()
        packed, pivots = torch.linalg.lu_factor(Y)
        rows, cols = Y.shape
        k = min(rows, cols)
        lower = torch.tril(packed[:, :k], diagonal=-1)
        lower.diagonal().fill_(1)
        # The pivots are row swaps applied in turn (1-based, LAPACK's ipiv).
        perm = np.arange(rows)
        for i, p in enumerate(to_numpy(pivots) - 1):
            perm[i], perm[p] = perm[p], perm[i]
        out = torch.empty_like(lower)
        out[torch.from_numpy(perm).to(Y.device)] = lower
        return out


def to_torch(M, device):
    """``M`` (ndarray, SciPy sparse matrix or tensor) as a tensor on ``device``.

    Sparse input becomes a CSR tensor with int64 indices; nothing is densified.
    """
    torch = _torch()
    if is_tensor(M):
        return M.to(device)
    if sp.issparse(M):
        csr = M.tocsr()
        with _quiet_sparse():
            return torch.sparse_csr_tensor(
                torch.from_numpy(csr.indptr.astype(np.int64)),
                torch.from_numpy(csr.indices.astype(np.int64)),
                torch.from_numpy(csr.data),
                csr.shape,
                check_invariants=False,
            ).to(device)
    return torch.from_numpy(np.ascontiguousarray(M)).to(device)


def check_tensor(M, *, ensure_min_samples=1):
    """Validate a dense or sparse tensor as ``check_array`` does an ndarray.

    Returns ``M`` as a float32/float64 dense or CSR tensor on its device
    (other float dtypes widen, integers become float64).

    Raises
    ------
    ValueError
        Not 2-D, too few rows, or NaN or infinite values.
    """
    torch = _torch()
    if M.ndim != 2:
        raise ValueError(f"Expected a 2-D tensor, got {M.ndim} dimensions.")
    if M.shape[0] < ensure_min_samples or M.shape[1] < 1:
        raise ValueError(
            f"Found a tensor of shape {tuple(M.shape)}, while at least "
            f"{ensure_min_samples} rows and 1 column are required."
        )
    if is_sparse(M) and M.layout != torch.sparse_csr:
        with _quiet_sparse():
            M = M.to_sparse_csr()
    if M.dtype not in (torch.float32, torch.float64):
        M = M.to(torch.float32 if M.dtype == torch.float16 else torch.float64)
    values = M.values() if is_sparse(M) else M
    if not bool(torch.isfinite(values).all()):
        raise ValueError("Input contains NaN or infinity.")
    return M


def _column_sums(X, dtype):
    """Column sums of a dense or CSR tensor, in ``dtype``."""
    torch = _torch()
    if not is_sparse(X):
        return X.to(dtype).sum(dim=0)
    sums = torch.zeros(X.shape[1], dtype=dtype, device=X.device)
    return sums.index_add_(0, X.col_indices(), X.values().to(dtype))


def fitted_attributes(X, U, S, Vt, info, *, center):
    """``RandomizedSVD``'s fitted attributes from a torch solve, as tensors.

    The same rules as the NumPy path of ``RandomizedSVD.fit_transform``: the
    transformed data (``U S``, or ``X V^T`` from subspace iteration), the
    means, and the variances computed in the units of the scaled data (where
    their squares neither overflow nor underflow), in float64.

    Returns
    -------
    attributes : dict
        ``X_new``, ``components_``, ``singular_values_``,
        ``explained_variance_``, ``explained_variance_ratio_``, ``mean_``.
    """
    torch = _torch()
    f64 = torch.float64
    n_samples = X.shape[0]
    exponent = info["scale_exponent"]
    mean = _column_sums(X, f64) / n_samples
    if info["algorithm"] == "subspace":
        X_new = X @ Vt.T
        if is_sparse(X_new):
            X_new = X_new.to_dense()
        if center:
            X_new -= mean.to(X.dtype) @ Vt.T
    else:
        X_new = U * S
    if center:
        explained = _ldexp(S.to(f64), exponent) ** 2 / (n_samples - 1)
    else:
        explained = _ldexp(X_new.to(f64), exponent).var(dim=0, correction=0)
    ddof = 1 if center else 0
    # Sums of (x - mean)^2 over the columns of the scaled data, zeros included.
    scaled_mean = _ldexp(mean, exponent)
    if is_sparse(X):
        values = _ldexp(X.values().to(f64), exponent)
        with _quiet_sparse():
            squares = torch.sparse_csr_tensor(
                X.crow_indices(),
                X.col_indices(),
                values * values,
                X.shape,
                check_invariants=False,
            )
        centred = _column_sums(squares, f64) - n_samples * scaled_mean**2
        centred = torch.clamp(centred, min=0)
    else:
        centred = ((_ldexp(X.to(f64), exponent) - scaled_mean) ** 2).sum(dim=0)
    total = float((centred / max(n_samples - ddof, 1)).sum())
    ratio = explained / total if total > 0 else torch.zeros_like(explained)
    explained = _ldexp(explained, -2 * exponent)
    return {
        "X_new": X_new,
        "components_": Vt,
        "singular_values_": S,
        "explained_variance_": explained.to(X.dtype),
        "explained_variance_ratio_": ratio.to(X.dtype),
        "mean_": mean.to(X.dtype) if center else None,
    }


def _ldexp(X, exponent):
    """``X * 2**exponent``, exactly (``X`` itself for 0)."""
    if not exponent:
        return X
    torch = _torch()
    return torch.ldexp(X, torch.tensor(exponent, device=X.device)).to(X.dtype)
