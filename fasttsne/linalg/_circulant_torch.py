"""The circulant core on torch tensors (CPU or CUDA), and ToeplitzKernel's
operations there.

The torch counterpart of :mod:`fasttsne.linalg._circulant`: the kernel's
embedding and spectrum are computed once by that module (on the host for
:class:`~fasttsne.linalg.ToeplitzKernel`, on the device for the GPU t-SNE
grid), and :func:`circulant_product` multiplies a batch of charge grids by
it with ``torch.fft.rfftn``/``irfftn``. :class:`TorchOps` gives the batched
Krylov solvers of :mod:`fasttsne.linalg._toeplitz` the few array operations
they need, so that they run unchanged on tensors; the per-row bookkeeping of
those solvers stays on the host.

torch is imported by the caller that hands a tensor over, never by importing
fasttsne. Unlike the NumPy core, torch's FFTs may split their work by thread
count and device, so results are not promised bitwise equal to the NumPy
path's, only to its rounding.
"""

import numpy as np

from fasttsne.linalg._scaling import _row_exponents
from fasttsne.linalg._svd._torch import _torch, to_numpy

# The largest power of two applied in one step: float32 holds 2**100 and
# 2**-100 exactly.
_FLOAT32_SAFE_STEP = 100


def spectrum_tensor(values, device):
    """The host spectrum ``values`` (complex ndarray) as a tensor on ``device``."""
    return _torch().from_numpy(np.ascontiguousarray(values)).to(device)


def circulant_product(values, fft_shape, grid_shape, charges):
    """``T @ q`` for every grid ``q`` of ``charges``, by ``torch.fft``.

    Parameters
    ----------
    values : torch.Tensor of complex, shape (L_1, ..., L_d // 2 + 1)
        The kernel's spectrum (:func:`fasttsne.linalg._circulant._kernel_spectrum`
        or its torch transform) on the charges' device; complex64 for float32
        charges, complex128 for float64.
    fft_shape, grid_shape : tuple of int
        ``(L_1, ..., L_d)`` and ``(n_1, ..., n_d)``.
    charges : torch.Tensor of shape (n_batch, n_1, ..., n_d)
        Real; only read.

    Returns
    -------
    potentials : torch.Tensor of the shape and dtype of ``charges``
        C-contiguous: the charges, zero-padded to ``fft_shape``, times the
        spectrum, cropped back to the grid.
    """
    torch = _torch()
    axes = tuple(range(1, len(grid_shape) + 1))
    transformed = torch.fft.rfftn(charges, s=fft_shape, dim=axes)
    transformed *= values
    potentials = torch.fft.irfftn(transformed, s=fft_shape, dim=axes)
    del transformed
    crop = (slice(None),) + tuple(slice(0, n) for n in grid_shape)
    return potentials[crop].contiguous()


def _ldexp_rows(X, exponents):
    """``X * 2**exponents[:, None]``, exactly, in two halves.

    torch forms ``2**e`` in X's dtype, which overflows for the largest
    exponents of a subnormal row (``2**1074`` in float64); each half stays
    in range, and the first is exact.
    """
    torch = _torch()
    half = exponents // 2
    for part in (half, exponents - half):
        X = torch.ldexp(X, torch.from_numpy(part[:, np.newaxis]).to(X.device))
    return X


class TorchOps:
    """Array operations of ToeplitzKernel's products and solves, on tensors.

    The same methods as the NumPy ``_NumpyOps`` of
    :mod:`fasttsne.linalg._circulant`. Tall arrays (one row per signal) are
    tensors on the device; indices, row norms and exponents are host NumPy
    arrays, since the solvers' bookkeeping decides on the host which rows
    still run.
    """

    def __init__(self, device):
        self.device = device

    # -- the solvers' operations ----------------------------------------------
    @staticmethod
    def zeros_like(a):
        """Zeros of the shape, dtype and device of ``a``."""
        return _torch().zeros_like(a)

    @staticmethod
    def copy(a):
        """A copy of ``a``."""
        return a.clone()

    @staticmethod
    def where(condition, a, b):
        """``a`` where ``condition``, else ``b`` (scalars allowed)."""
        return _torch().where(condition, a, b)

    @staticmethod
    def isfinite(a):
        """Elementwise finiteness."""
        return _torch().isfinite(a)

    @staticmethod
    def rowdot(a, b):
        """Row-wise dot products of two (n_rows, n) tensors."""
        return (a * b).sum(dim=1)

    @staticmethod
    def row_norms(a):
        """Euclidean norms of the rows, as a host float64 array."""
        return to_numpy(_torch().linalg.vector_norm(a, dim=1)).astype(np.float64)

    @staticmethod
    def to_host(a):
        """A host NumPy array of the tensor ``a``."""
        return to_numpy(a)

    def _index(self, index):
        return _torch().from_numpy(np.asarray(index)).to(self.device)

    def take(self, a, index):
        """The rows ``a[index]`` for a host index or mask."""
        return a[self._index(index)]

    def put(self, a, index, values):
        """``a[index] = values`` for a host index or mask."""
        a[self._index(index)] = values

    # -- scaling and dtypes ---------------------------------------------------
    @staticmethod
    def row_exponents(X, dtype):
        """Powers of two for the rows of ``X`` (see
        :func:`fasttsne.linalg._scaling._row_exponents`), None when no row
        needs one."""
        torch = _torch()
        top = torch.maximum(X.amax(dim=1), -X.amin(dim=1)).to(torch.float64)
        exponents = _row_exponents(to_numpy(top), dtype)
        return exponents if exponents.any() else None

    @staticmethod
    def scale_rows(X, exponents):
        """``X * 2**exponents[:, None]`` (a copy), or ``X`` for None."""
        return X if exponents is None else _ldexp_rows(X, exponents)

    @staticmethod
    def unscale_rows(X, exponents):
        """``X * 2**-exponents[:, None]``; beyond the dtype's range 0 or inf."""
        return X if exponents is None else _ldexp_rows(X, -exponents)

    @staticmethod
    def float64(X):
        """``X`` in float64."""
        return X.to(_torch().float64)

    @staticmethod
    def astype(X, like):
        """``X`` in the dtype of the tensor ``like``."""
        return X.to(like.dtype)

    @staticmethod
    def numpy_dtype(X):
        """NumPy dtype of the tensor ``X``."""
        return np.dtype(str(X.dtype).rsplit(".", maxsplit=1)[-1])

    # -- FFTs -----------------------------------------------------------------
    def spectral_map(self, factors, grid_shape, n_threads):
        """The map ``R -> irfftn(rfftn(R) * factors)`` on grids of
        ``grid_shape`` (a circulant of that size), for host ``factors``."""
        del n_threads  # torch's own thread pool
        torch = _torch()
        factors = spectrum_tensor(factors, self.device)
        axes = tuple(range(1, len(grid_shape) + 1))

        def apply(R):
            grids = R.reshape((R.shape[0],) + tuple(grid_shape))
            spec = torch.fft.rfftn(grids, dim=axes)
            spec *= factors
            return torch.fft.irfftn(spec, s=grid_shape, dim=axes).reshape(R.shape)

        return apply

    @staticmethod
    def product(values, fft_shape, grid_shape, X, n_threads):
        """``X @ T.T`` for rows ``X`` by the spectrum tensor ``values``."""
        del n_threads  # torch's own thread pool
        grids = (X.shape[0],) + tuple(grid_shape)
        out = circulant_product(values, fft_shape, grid_shape, X.reshape(grids))
        return out.reshape(X.shape)

    @staticmethod
    def unscale(X, exponent):
        """``X * 2**-exponent`` for one integer exponent, by factors that
        float32 holds exactly (``2**e`` itself may not be), so that 0 stays 0
        and the only rounding is the last step's."""
        exponent = -int(exponent)
        while exponent:
            step = max(min(exponent, _FLOAT32_SAFE_STEP), -_FLOAT32_SAFE_STEP)
            X = X * 2.0**step
            exponent -= step
        return X
