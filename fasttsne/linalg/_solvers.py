"""The batched Krylov solvers of ``ToeplitzKernel.inverse_transform`` and the
array operations they run on.

:func:`_pcg` and :func:`_cgnr` solve one system per row of a batch, each row
retiring as it converges. They reach their arrays only through an ``ops``
object: :class:`_NumpyOps` here for NumPy arrays, its twin
:class:`fasttsne.linalg._circulant_torch.TorchOps` for torch tensors, so that
the iterations run unchanged on either; the per-row bookkeeping stays on the
host in both.
"""

import numpy as np
import scipy.fft

from fasttsne.linalg._circulant import _circulant_product
from fasttsne.linalg._scaling import _scale_rows, _unscale_rows


class _NumpyOps:
    """Array operations of the products and solves, on NumPy arrays.

    ``ToeplitzKernel``'s products and its batched Krylov solvers
    (:func:`_pcg` and :func:`_cgnr`) reach their arrays
    only through these, so that they run unchanged on torch tensors with
    :class:`fasttsne.linalg._circulant_torch.TorchOps`. Row norms, indices and
    exponents are host arrays in both.
    """

    zeros_like = staticmethod(np.zeros_like)
    where = staticmethod(np.where)
    isfinite = staticmethod(np.isfinite)

    @staticmethod
    def copy(a):
        """A copy of ``a``."""
        return a.copy()

    @staticmethod
    def rowdot(a, b):
        """Row-wise dot products of two (n_rows, n) arrays."""
        return np.einsum("ij,ij->i", a, b)

    @staticmethod
    def row_norms(a):
        """Euclidean norms of the rows."""
        return np.linalg.norm(a, axis=1)

    @staticmethod
    def to_host(a):
        """``a`` itself: NumPy arrays live on the host."""
        return a

    @staticmethod
    def take(a, index):
        """The rows ``a[index]``."""
        return a[index]

    @staticmethod
    def put(a, index, values):
        """``a[index] = values``."""
        a[index] = values

    scale_rows = staticmethod(_scale_rows)
    unscale_rows = staticmethod(_unscale_rows)

    @staticmethod
    def float64(X):
        """``X`` in float64 (itself when it is)."""
        return X.astype(np.float64, copy=False)

    @staticmethod
    def astype(X, like):
        """``X`` in the dtype of the array ``like`` (itself when it is)."""
        return X.astype(like.dtype, copy=False)

    @staticmethod
    def numpy_dtype(X):
        """The dtype of ``X``."""
        return X.dtype

    @staticmethod
    def spectral_map(factors, grid_shape, n_threads):
        """The map ``R -> irfftn(rfftn(R) * factors)`` on grids of
        ``grid_shape`` (a circulant of that size)."""
        axes = tuple(range(1, len(grid_shape) + 1))

        def apply(R):
            grids = R.reshape((R.shape[0],) + grid_shape)
            spec = scipy.fft.rfftn(grids, axes=axes, workers=n_threads)
            spec *= factors
            return np.reshape(
                scipy.fft.irfftn(
                    spec, s=grid_shape, axes=axes, workers=n_threads, overwrite_x=True
                ),
                R.shape,
            )

        return apply

    @staticmethod
    def product(values, fft_shape, grid_shape, X, n_threads):
        """``X @ T.T`` for C-contiguous rows ``X`` by the spectrum ``values``."""
        grids = (X.shape[0],) + grid_shape
        out = np.empty_like(X)
        _circulant_product(
            values,
            fft_shape,
            grid_shape,
            X.reshape(grids),
            out.reshape(grids),
            workers=n_threads,
        )
        return out

    @staticmethod
    def unscale(X, exponent):
        """``X *= 2**-exponent`` in place, for one integer exponent."""
        with np.errstate(over="ignore", under="ignore"):
            np.ldexp(X, -exponent, out=X)
        return X


_NUMPY_OPS = _NumpyOps()


class _KrylovState:
    """Per-row bookkeeping of a batched Krylov solve with early exits."""

    def __init__(self, B, tol, ops):
        self.ops = ops
        self.solution = ops.zeros_like(B)
        self.n_iter = np.zeros(B.shape[0], dtype=np.intp)
        self.converged = np.zeros(B.shape[0], dtype=bool)
        self.failed = np.zeros(B.shape[0], dtype=bool)
        b_norm = ops.row_norms(B)
        self.converged[b_norm == 0] = True  # z = 0 solves an all-zero row exactly
        self.rows = np.flatnonzero(b_norm > 0)
        self.threshold = tol * b_norm[self.rows]

    def retire(self, residual_norm, bad, arrays):
        """Count one iteration; drop the rows that converged or broke down.

        ``residual_norm`` is a host array, ``bad`` an array of the solve's
        library. Returns the ``arrays`` restricted to the rows still running.
        """
        ops = self.ops
        bad = ops.to_host(bad)
        self.n_iter[self.rows] += 1
        done = (residual_norm <= self.threshold) | bad
        if not done.any():
            return arrays
        ops.put(self.solution, self.rows[done], ops.take(arrays[0], done))
        self.converged[self.rows[done & ~bad]] = True
        self.failed[self.rows[bad]] = True
        keep = ~done
        self.rows, self.threshold = self.rows[keep], self.threshold[keep]
        return [ops.take(array, keep) for array in arrays]

    def finish(self, z):
        """Store the iterates of the rows that ran out of iterations."""
        self.ops.put(self.solution, self.rows, z)


def _pcg(matvec, psolve, B, *, tol, max_iter, ops=_NUMPY_OPS):
    """Batched preconditioned conjugate gradients, one SPD system per row of B.

    ``matvec`` and ``psolve`` map an (n_rows, n) array to another. A row whose
    curvature ``p^T A p`` is not positive (A indefinite, or singular to rounding)
    stops with ``failed`` set, so that the caller can hand it to CGNR. ``ops``
    holds the array operations of B's library
    (:class:`_NumpyOps`).
    """
    state = _KrylovState(B, tol, ops)
    r = ops.copy(ops.take(B, state.rows))
    z = ops.zeros_like(r)
    s = psolve(r)
    p = ops.copy(s)
    rs = ops.rowdot(r, s)
    for _ in range(max_iter):
        if state.rows.size == 0:
            break
        q = matvec(p)
        pq = ops.rowdot(p, q)
        bad = ~((pq > 0) & (rs > 0) & ops.isfinite(pq))
        step = ops.where(bad, 0.0, rs / ops.where(bad, 1.0, pq))
        z += step[:, None] * p
        r -= step[:, None] * q
        z, r, p, rs = state.retire(ops.row_norms(r), bad, [z, r, p, rs])
        if state.rows.size == 0:
            break
        s = psolve(r)
        rs_new = ops.rowdot(r, s)
        p *= (rs_new / rs)[:, None]
        p += s
        rs = rs_new
    state.finish(z)
    return state


def _cgnr(
    matvec, rmatvec, psolve, rpsolve, B, *, tol, max_iter, ops=_NUMPY_OPS
):  # pylint: disable=too-many-arguments
    """Batched CG on the normal equations of ``A M^{-1} y = b``, ``z = M^{-1} y``.

    For any nonsingular A (non-symmetric or indefinite). Right preconditioning
    keeps ``r`` the true residual ``b - A z``. ``rmatvec`` and ``rpsolve`` apply
    ``A^T`` and ``M^{-T}``; ``ops`` as for :func:`_pcg`.
    """
    state = _KrylovState(B, tol, ops)
    r = ops.copy(ops.take(B, state.rows))
    z = ops.zeros_like(r)
    s = rpsolve(rmatvec(r))
    p = ops.copy(s)
    gamma = ops.rowdot(s, s)
    for _ in range(max_iter):
        if state.rows.size == 0:
            break
        u = psolve(p)
        q = matvec(u)
        qq = ops.rowdot(q, q)
        bad = ~((qq > 0) & (gamma > 0) & ops.isfinite(qq))
        step = ops.where(bad, 0.0, gamma / ops.where(bad, 1.0, qq))
        z += step[:, None] * u
        r -= step[:, None] * q
        z, r, p, gamma = state.retire(ops.row_norms(r), bad, [z, r, p, gamma])
        if state.rows.size == 0:
            break
        s = rpsolve(rmatvec(r))
        gamma_new = ops.rowdot(s, s)
        p *= (gamma_new / gamma)[:, None]
        p += s
        gamma = gamma_new
    state.finish(z)
    return state
