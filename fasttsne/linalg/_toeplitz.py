"""Toeplitz and block-Toeplitz kernel products by circulant embedding and FFT.

On top of the FFT core (:mod:`fasttsne.linalg._circulant`: a (block-)Toeplitz
matrix is the corner of a circulant one, whose product is a pointwise product
of real FFTs), :class:`ToeplitzKernel` exposes the product as a
scikit-learn transformer, and solves ``(T + alpha I) z = x`` by preconditioned
conjugate gradients with a circulant preconditioner (Strang or T. Chan), one
O(L log L) product per iteration, for a whole batch of rows at once.

The module is one piece (past the usual ~700 lines) because everything in it
serves :class:`ToeplitzKernel` alone: the expansion of kernels and
coefficients to every offset and the circulant preconditioners; the batched
CG/CGNR iterations are in :mod:`fasttsne.linalg._solvers`.
"""

import warnings
from numbers import Integral, Real
from typing import NamedTuple

import numpy as np
import scipy.fft
from sklearn.base import BaseEstimator, OneToOneFeatureMixin, TransformerMixin
from sklearn.exceptions import ConvergenceWarning

from fasttsne import gpu
from fasttsne._array_api import check_array_library, is_tensor
from fasttsne._utils import _Printer
from fasttsne._validation import (
    Interval,
    StrOptions,
    _fit_context,
    check_finite_kernel,
    check_is_fitted,
    check_n_threads,
    validate_data,
)
from fasttsne.linalg._circulant import _kernel_spectrum
from fasttsne.linalg._scaling import _row_scaling, _scale_exponent
from fasttsne.linalg._solvers import _NUMPY_OPS, _cgnr, _pcg
from fasttsne.linalg._svd._randomized import _dispatching, _on_device
from fasttsne.linalg._svd._torch import to_numpy

# Eigenvalues of the circulant preconditioner below this fraction of the largest
# one are raised to it. Any symmetric positive definite (or, for CGNR, any
# nonsingular) preconditioner leaves the solution unchanged; the floor only
# stops a numerically singular one from amplifying rounding errors.
_PRECONDITIONER_FLOOR = 1e-12


def _offset_axes(grid_shape, bandwidth):
    """Offsets ``-(n - 1) .. n - 1`` of each axis, divided by ``bandwidth``."""
    return [np.arange(-(n - 1), n, dtype=np.float64) / bandwidth for n in grid_shape]


def _builtin_kernel_on_offsets(name, grid_shape, bandwidth):
    """Values of a named kernel at every grid offset (centre = zero offset)."""
    grids = np.meshgrid(
        *_offset_axes(grid_shape, bandwidth), indexing="ij", sparse=True
    )
    shape = tuple(2 * n - 1 for n in grid_shape)
    # Huge offsets over a tiny bandwidth overflow to inf, and the kernels then
    # correctly evaluate to 0.
    with np.errstate(over="ignore", under="ignore"):
        if name == "laplacian":  # L1 distance, as sklearn's laplacian_kernel
            values = np.exp(-sum(np.abs(grid) for grid in grids))
        else:
            sq_dist = sum(grid * grid for grid in grids)
            if name == "gaussian":
                values = np.exp(-0.5 * sq_dist)
            else:  # cauchy, the Student-t kernel of t-SNE
                values = 1.0 / (1.0 + sq_dist)
    return np.broadcast_to(values, shape).astype(np.float64)


def _callable_kernel_on_offsets(kernel, grid_shape, bandwidth):
    """Values of a user's kernel at every grid offset (centre = zero offset)."""
    shape = tuple(2 * n - 1 for n in grid_shape)
    grids = np.meshgrid(*_offset_axes(grid_shape, bandwidth), indexing="ij")
    offsets = np.stack(grids, axis=-1).reshape(-1, len(grid_shape))
    values = np.asarray(kernel(offsets))
    if np.iscomplexobj(values):
        raise ValueError(
            "The kernel callable returned complex values; it must be real."
        )
    n_offsets = offsets.shape[0]
    if values.shape not in ((n_offsets,), (n_offsets, 1)):
        raise ValueError(
            f"The kernel callable must return one value per offset, shape "
            f"({n_offsets},), for offsets of shape {offsets.shape}; it returned "
            f"shape {values.shape}."
        )
    return values.astype(np.float64).reshape(shape)


def _coefficients_on_offsets(coefficients, grid_shape):
    """Expand ``coefficients`` (see :class:`ToeplitzKernel`) to every offset."""
    full_shape = tuple(2 * n - 1 for n in grid_shape)
    if (
        len(grid_shape) == 1
        and isinstance(coefficients, (tuple, list))
        and len(coefficients) == 2
        and all(np.ndim(part) == 1 for part in coefficients)
    ):
        column, row = (np.asarray(part) for part in coefficients)
        if column.shape != grid_shape or row.shape != grid_shape:
            raise ValueError(
                f"coefficients=(c, r) gives the first column and row of T; both must "
                f"have n_features={grid_shape[0]} entries, got {column.shape[0]} "
                f"and {row.shape[0]}."
            )
        coefficients = np.stack([column, row])
    coefficients = np.asarray(coefficients)
    if np.iscomplexobj(coefficients) or not np.issubdtype(
        coefficients.dtype, np.number
    ):
        raise ValueError(
            f"coefficients must be real numbers, got dtype {coefficients.dtype}."
        )
    coefficients = coefficients.astype(np.float64)
    check_finite_kernel(coefficients, "coefficients")
    if coefficients.shape == full_shape:
        return coefficients
    if len(grid_shape) == 1 and coefficients.shape == (2, grid_shape[0]):
        # (c, r) as scipy.linalg.toeplitz(c, r): T[i, 0] = c[i] = k(i) and
        # T[0, j] = r[j] = k(-j); r[0] is ignored, as scipy does.
        column, row = coefficients
        return np.concatenate([row[:0:-1], column])
    if coefficients.shape == tuple(grid_shape):
        # First column: k(m) = c[|m_1|, ..., |m_d|], even along every axis.
        for axis in range(len(grid_shape)):
            tail = np.flip(np.delete(coefficients, 0, axis=axis), axis=axis)
            coefficients = np.concatenate([tail, coefficients], axis=axis)
        return coefficients
    accepted = [tuple(grid_shape), full_shape]
    if len(grid_shape) == 1:
        accepted.append((2, grid_shape[0]))
    raise ValueError(
        f"coefficients has shape {coefficients.shape}, which does not fit the grid "
        f"{tuple(grid_shape)}; accepted shapes are {accepted} (first column, every "
        f"offset{', or the pair (c, r)' if len(grid_shape) == 1 else ''})."
    )


def _circulant_approximation(kernel_on_offsets, grid_shape, kind):
    """First column, shape ``grid_shape``, of a circulant approximation of T.

    ``kind="strang"`` copies the central diagonals (Strang 1986); ``"chan"`` is
    the circulant nearest to T in the Frobenius norm (T. Chan 1988), whose
    eigenvalues are Rayleigh quotients of T, so it is positive definite whenever
    T is. In d dimensions both act along one axis at a time (the level-d
    circulant of the block-Toeplitz matrix).
    """
    column = kernel_on_offsets
    for axis, n in enumerate(grid_shape):
        positive = np.take(column, np.arange(n - 1, 2 * n - 1), axis=axis)  # t_k
        wrapped = np.zeros_like(positive)  # t_{k - n}, only for k >= 1
        index = [slice(None)] * column.ndim
        index[axis] = slice(1, n)
        wrapped[tuple(index)] = np.take(column, np.arange(0, n - 1), axis=axis)
        shape = [1] * column.ndim
        shape[axis] = n
        k = np.arange(n).reshape(shape)
        if kind == "chan":
            column = ((n - k) * positive + k * wrapped) / n
        else:
            column = np.where(k <= n // 2, positive, wrapped)
    return column


class SolveInfo(NamedTuple):
    """What :meth:`ToeplitzKernel.inverse_transform` reports per row.

    Attributes
    ----------
    n_iter : ndarray of int, shape (n_samples,)
        Iterations run for each row (CG, plus CGNR for a row that fell back).
    residual : ndarray of float, shape (n_samples,)
        Final relative residual ``||x - (T + alpha I) z|| / ||x||``, recomputed
        from ``z`` (0 for an all-zero row).
    converged : ndarray of bool, shape (n_samples,)
        Whether the iteration reached ``tol`` within ``max_cg_iter`` and the
        recomputed residual is within ``10 tol`` (on an ill-conditioned system
        the true residual can stall above the one the iteration tracks).
    solver : ndarray of str, shape (n_samples,)
        ``"cg"`` or ``"cgnr"``, the method that produced each row.
    """

    n_iter: np.ndarray
    residual: np.ndarray
    converged: np.ndarray
    solver: np.ndarray


def _is_plain_float_array(X, n_features):
    """Whether ``X`` is a C-ordered, non-empty float32/float64 ndarray of width
    ``n_features``, which scikit-learn's validation would return as it is."""
    if type(X) is not np.ndarray:  # pylint: disable=unidiomatic-typecheck
        return False
    if X.ndim != 2 or X.dtype not in (np.float64, np.float32):
        return False
    return bool(X.flags.c_contiguous and X.shape[0] >= 1 and X.shape[1] == n_features)


class ToeplitzKernel(OneToOneFeatureMixin, TransformerMixin, BaseEstimator):
    """Toeplitz kernel matrix products and solves by circulant embedding and FFT.

    Each row of ``X`` is a signal on a regular grid: 1-D over its
    ``n_features`` entries, or 2-D (a flattened image) with
    ``grid_shape=(h, w)``. The kernel matrix has entries
    ``T[i, j] = k(x_i - x_j)`` for the grid points ``x_i``: Toeplitz in 1-D,
    block-Toeplitz with Toeplitz blocks in 2-D. :meth:`transform` returns
    ``X @ T.T`` (every row smoothed by the kernel) in O(n log n) per row, and
    :meth:`inverse_transform` solves ``(T + alpha I) z = x`` for every row by
    preconditioned conjugate gradients, O(n log n) per iteration.

    .. versionadded:: 0.1

    Parameters
    ----------
    kernel : {"gaussian", "laplacian", "cauchy"} or callable, default="gaussian"
        The kernel of an offset ``m`` (in grid steps) scaled to
        ``u = m / bandwidth``:

        - ``"gaussian"``: ``exp(-||u||^2 / 2)``;
        - ``"laplacian"``: ``exp(-||u||_1)`` (the L1 norm, as
          :func:`sklearn.metrics.pairwise.laplacian_kernel`);
        - ``"cauchy"``: ``1 / (1 + ||u||^2)``, the Student-t kernel of t-SNE.

        All three have a positive Fourier transform, so ``T`` is symmetric
        positive definite. A callable is called once in :meth:`fit` as
        ``kernel(offsets)`` with a float64 array of shape
        ``(n_offsets, n_dims)`` holding every offset ``m / bandwidth`` of the
        grid, and must return ``n_offsets`` real, finite values. It need not be
        even; ``T`` is then non-symmetric.
    bandwidth : float, default=1.0
        Width of the kernel in grid steps. Ignored with ``coefficients``.
    coefficients : array-like or tuple of two array-likes, default=None
        The kernel given explicitly instead of ``kernel`` and ``bandwidth``:

        - shape ``grid_shape`` (``(n_features,)`` in 1-D): the first column
          of ``T``, ``k(m) = c[|m_1|, ..., |m_d|]`` (symmetric ``T``, as
          ``scipy.linalg.toeplitz(c)``);
        - 1-D only, a pair ``(c, r)``: the first column and first row, as
          ``scipy.linalg.toeplitz(c, r)`` (``r[0]`` is ignored);
        - shape ``(2 n_1 - 1, ..., 2 n_d - 1)``: ``k`` at every offset, the
          centre holding the zero offset (any block-Toeplitz matrix).
    grid_shape : tuple of int, default=None
        Shape of the grid that each row of ``X`` is flattened from (C order);
        its product must equal ``n_features``. ``None`` means a 1-D grid of
        ``n_features`` points.
    normalize : bool, default=False
        Divide the kernel by the sum of its values over all offsets, so that
        away from the edges :meth:`transform` preserves constant signals (a
        smoother rather than a Gram matrix).
    alpha : float, default=0.0
        Ridge added to the diagonal in :meth:`inverse_transform`, which solves
        ``(T + alpha I) z = x``; see the Notes on conditioning.
    preconditioner : {"chan", "strang"} or None, default="chan"
        Circulant preconditioner of the conjugate gradients: T. Chan's optimal
        circulant (positive definite whenever ``T`` is), Strang's (central
        diagonals), or none.
    tol : float, default=1e-10
        Relative residual ``||x - (T + alpha I) z|| / ||x||`` at which the
        iteration for a row stops.
    max_cg_iter : int, default=500
        Most conjugate gradient iterations per row.
    n_jobs : int, default=None
        Threads for the FFTs, which split the rows of a batch. ``None`` means
        1, ``-1`` all cores.
    verbose : int, default=0
        Print what fit resolved and the iteration counts of each solve.
    device : {"auto", "cpu", "cuda"}, default="auto"
        Where the products and solves run. ``"cuda"`` moves NumPy input to the
        CUDA device with torch (the ``fasttsne[gpu]`` extra) and brings the
        results back as NumPy arrays; ``"auto"`` does so when torch, triton
        and a device are there (:func:`fasttsne.gpu.is_available`, resolved
        in :meth:`fit`), and computes a torch tensor where it lives. Under
        ``sklearn.config_context(array_api_dispatch=True)`` torch tensors stay
        tensors of their dtype: the fitted array attributes are tensors on the
        input's device, and :meth:`transform` and :meth:`inverse_transform`
        return tensors on their input's device. Without it tensors are
        converted to NumPy, as scikit-learn does. The kernel's spectrum is
        computed on the host once in :meth:`fit`, and copied to a device once
        per device and dtype.

        .. versionadded:: 0.2

    Attributes
    ----------
    grid_shape_ : tuple of int
        The grid, ``(n_features,)`` when ``grid_shape`` is None.
    kernel_values_ : ndarray or tensor of shape (2 * n_1 - 1, ..., 2 * n_d - 1)
        The kernel at every grid offset; the centre holds ``k(0)``. float64; a
        tensor on the input's device when fitted on a tensor under array API
        dispatch, as ``preconditioner_eigenvalues_``.
    symmetric_ : bool
        Whether ``k(-m) == k(m)`` for every offset, i.e. ``T`` is symmetric.
    fft_shape_ : tuple of int
        Size of the circulant embedding per axis: the FFT-friendly size at or
        above ``2 n_k - 1``.
    spectrum_ : _GridSpectrum
        The real FFT of the circulant embedding, shape
        ``(L_1, ..., L_d // 2 + 1)``, with the grid and FFT shapes; a host
        NumPy array whatever the input.
    preconditioner_eigenvalues_ : ndarray of shape (n_1, ..., n_d // 2 + 1) or None
        Real FFT of the circulant preconditioner (before ``alpha``); real when
        ``T`` is symmetric. None when ``preconditioner`` is None.
    device_ : {"cpu", "cuda", "input"}
        Where :meth:`transform` and :meth:`inverse_transform` compute, the
        ``device`` parameter resolved in :meth:`fit`. ``"input"``: each tensor
        on its own device (fitted on a tensor under array API dispatch with
        ``device="auto"``).

        .. versionadded:: 0.2
    solver_ : {"cg", "cgnr"}
        The iteration :meth:`inverse_transform` starts with: conjugate
        gradients for symmetric ``T``, conjugate gradients on the normal
        equations otherwise.
    n_features_in_ : int
        Number of features seen during :term:`fit`.
    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Names of features seen during :term:`fit`. Defined only when `X`
        has feature names that are all strings.

    See Also
    --------
    scipy.linalg.matmul_toeplitz : One Toeplitz product by FFT, no caching.
    scipy.linalg.solve_toeplitz : Levinson recursion, O(n^2) per solve.
    scipy.signal.fftconvolve : Convolution by FFT, no caching.

    Notes
    -----
    **Products.** ``T`` is the top-left corner of a circulant matrix of size
    ``L_k >= 2 n_k - 1`` per axis, diagonalised by the FFT. :meth:`fit` stores
    the real FFT of the kernel embedded in that circulant, at an FFT-friendly
    size (:func:`scipy.fft.next_fast_len`); :meth:`transform` zero-pads every
    row, multiplies its real FFT by the stored one and crops the inverse: one
    forward and one inverse real FFT of size ``L`` per row, O(n log n), all
    rows batched. float32 input runs in single precision and stays float32.

    **Solves.** For symmetric ``T`` the iteration is preconditioned conjugate
    gradients with a circulant ``C`` (inverted by FFT of size ``n``). With
    either preconditioner the spectrum of ``C^{-1} T`` clusters at 1, so the
    number of iterations hardly grows with ``n``, and a solve costs
    O(n log n). If an iteration meets ``p^T (T + alpha I) p <= 0`` (``T``
    indefinite, or singular to rounding), that row is restarted with CGNR,
    which non-symmetric ``T`` use from the start: conjugate gradients on the
    normal equations of the right-preconditioned system, two products with
    ``T`` per iteration.

    **Conditioning.** The eigenvalues of ``T`` lie between the minimum and the
    maximum of its symbol ``f(w) = sum_m k(m) exp(-i m w)``, so
    ``cond(T) <= max f / min f``, and ``z`` is only determined to about
    ``cond(T + alpha I) * tol`` relative error. In 1-D the Gaussian has
    ``min f ~ 2 sqrt(2 pi) h exp(-pi^2 h^2 / 2)`` at bandwidth ``h``: ``cond``
    is about 70 at ``h = 1``, 2e8 at ``h = 2`` and beyond double precision
    from ``h = 3``; the Cauchy kernel has ``cond = cosh(pi h)`` (11.6 at
    ``h = 1``, 1.4e5 at ``h = 4``); the Laplacian about ``4 h^2``.
    Raise ``alpha`` when the solve does not converge (a
    :class:`~sklearn.exceptions.ConvergenceWarning`), when the residual
    reported by ``return_info`` stays above ``tol``, or when the data are
    noisy: ``alpha`` is a Tikhonov (Wiener) regulariser that bounds
    ``cond(T + alpha I) <= (max f + alpha) / alpha`` and damps the noise that
    deconvolution amplifies most, at high frequencies. ``alpha`` around
    ``1e-3 .. 1e-1`` times ``k(0)`` is a usual start for denoising.

    References
    ----------
    .. [1] G. Strang, "A proposal for Toeplitz matrix calculations", Studies in
       Applied Mathematics 74(2), 171-176, 1986.
    .. [2] T. F. Chan, "An optimal circulant preconditioner for Toeplitz
       systems", SIAM J. Sci. Stat. Comput. 9(4), 766-771, 1988.
    .. [3] R. H. Chan and M. K. Ng, "Conjugate gradient methods for Toeplitz
       systems", SIAM Review 38(3), 427-482, 1996.

    Examples
    --------
    >>> import numpy as np
    >>> from fasttsne import ToeplitzKernel
    >>> X = np.array([[0.0, 0.0, 1.0, 0.0, 0.0]])
    >>> smoother = ToeplitzKernel("gaussian", bandwidth=1.0).fit(X)
    >>> smoother.transform(X).round(3)
    array([[0.135, 0.607, 1.   , 0.607, 0.135]])
    >>> bool(np.allclose(smoother.inverse_transform(smoother.transform(X)), X))
    True
    """

    _parameter_constraints: dict = {
        "kernel": [StrOptions({"gaussian", "laplacian", "cauchy"}), callable],
        "bandwidth": [Interval(Real, 0, None, closed="neither")],
        "coefficients": ["array-like", None],
        "grid_shape": [tuple, list, None],
        "normalize": ["boolean"],
        "alpha": [Interval(Real, 0, None, closed="left")],
        "preconditioner": [StrOptions({"chan", "strang"}), None],
        "tol": [Interval(Real, 0, None, closed="left")],
        "max_cg_iter": [Interval(Integral, 1, None, closed="left")],
        "n_jobs": [Integral, None],
        "verbose": ["verbose"],
        "device": [StrOptions({"auto", "cpu", "cuda"})],
    }

    def __init__(
        self,
        kernel="gaussian",
        *,
        bandwidth=1.0,
        coefficients=None,
        grid_shape=None,
        normalize=False,
        alpha=0.0,
        preconditioner="chan",
        tol=1e-10,
        max_cg_iter=500,
        n_jobs=None,
        verbose=0,
        device="auto",
    ):
        self.kernel = kernel
        self.bandwidth = bandwidth
        self.coefficients = coefficients
        self.grid_shape = grid_shape
        self.normalize = normalize
        self.alpha = alpha
        self.preconditioner = preconditioner
        self.tol = tol
        self.max_cg_iter = max_cg_iter
        self.n_jobs = n_jobs
        self.verbose = verbose
        self.device = device

    def _check_grid_shape(self, n_features):
        """Resolve ``grid_shape`` against the width of X."""
        if self.grid_shape is None:
            return (n_features,)
        grid_shape = tuple(self.grid_shape)
        if not grid_shape or not all(
            isinstance(n, Integral) and not isinstance(n, bool) and n >= 1
            for n in grid_shape
        ):
            raise ValueError(
                f"grid_shape must be a non-empty tuple of positive integers, got "
                f"{self.grid_shape!r}."
            )
        grid_shape = tuple(int(n) for n in grid_shape)
        if int(np.prod(grid_shape)) != n_features:
            raise ValueError(
                f"grid_shape={grid_shape} holds {int(np.prod(grid_shape))} points, "
                f"but X has n_features={n_features}; each row of X must be a "
                f"flattened grid."
            )
        return grid_shape

    def _kernel_on_offsets(self, grid_shape):
        """The kernel at every offset of the grid, validated."""
        if self.coefficients is not None:
            values = _coefficients_on_offsets(self.coefficients, grid_shape)
        elif callable(self.kernel):
            values = _callable_kernel_on_offsets(
                self.kernel, grid_shape, self.bandwidth
            )
        else:
            values = _builtin_kernel_on_offsets(self.kernel, grid_shape, self.bandwidth)
        check_finite_kernel(values, "The kernel values")
        if self.normalize:
            total = values.sum()
            if not (np.isfinite(total) and total != 0):
                raise ValueError(
                    f"normalize=True divides the kernel by its sum over all offsets, "
                    f"which is {total}."
                )
            values = values / total
        return values

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Compute the spectrum of the kernel for the grid of X.

        Only the width of ``X`` (and its feature names) is used.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Signals, one per row, flattened from ``grid_shape``.
        y : None
            Ignored.

        Returns
        -------
        self : object
            The fitted transformer.
        """
        del y  # unused, kept for the scikit-learn API
        check_array_library(X, "ToeplitzKernel")
        home = None
        if _dispatching(X):
            # pylint: disable-next=import-outside-toplevel
            from fasttsne.linalg._svd._torch import check_tensor

            X = check_tensor(X)
            validate_data(self, X, skip_check_array=True)
            # "auto" computes a tensor where it lives.
            where = "auto" if self.device == "auto" else gpu.resolve_device(self.device)
            home = X.device
        else:
            X = validate_data(self, X, dtype=[np.float64, np.float32])
            where = gpu.resolve_device(self.device)
        grid_shape = self._check_grid_shape(X.shape[1])
        values = self._kernel_on_offsets(grid_shape)
        n_threads = check_n_threads(self.n_jobs)
        self.grid_shape_ = grid_shape
        self.kernel_values_ = values
        self.symmetric_ = bool(np.array_equal(values, np.flip(values)))
        self.spectrum_ = _kernel_spectrum(values, grid_shape, workers=n_threads)
        self.fft_shape_ = self.spectrum_.fft_shape
        self.solver_ = "cg" if self.symmetric_ else "cgnr"
        if self.preconditioner is None:
            self.preconditioner_eigenvalues_ = None
        else:
            column = _circulant_approximation(values, grid_shape, self.preconditioner)
            eigenvalues = scipy.fft.rfftn(column, workers=n_threads)
            # A symmetric real circulant has real eigenvalues; drop the rounding.
            self.preconditioner_eigenvalues_ = (
                eigenvalues.real.copy() if self.symmetric_ else eigenvalues
            )
        # Resolved once: device detection costs more than a short product.
        self.device_ = "input" if where == "auto" else where
        # The spectrum in each precision, plain and conjugated, on the host;
        # transform caches only its copies on a torch device.
        self._host_spectra = _host_spectra(self.spectrum_.spectrum)
        self._spectra = {}
        if home is not None:
            # pylint: disable-next=import-outside-toplevel
            from fasttsne.linalg._svd._torch import to_torch

            self.kernel_values_ = to_torch(values, home)
            if self.preconditioner_eigenvalues_ is not None:
                self.preconditioner_eigenvalues_ = to_torch(
                    self.preconditioner_eigenvalues_, home
                )
        _Printer(self.verbose)(
            f"ToeplitzKernel: grid {grid_shape}, circulant FFT size {self.fft_shape_}, "
            f"{'symmetric' if self.symmetric_ else 'non-symmetric'} T"
        )
        return self

    def transform(self, X):
        """Multiply every row of X by the kernel matrix: ``X @ T.T``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Signals, one per row.

        Returns
        -------
        X_new : ndarray or tensor of shape (n_samples, n_features)
            ``T @ x`` for every row ``x``; float32 for float32 input, float64
            otherwise (see ``device`` for tensors).
        """
        self._check_fitted()
        X, exponents, ops, back = self._prepare(X, None)
        out = self._product(
            ops.scale_rows(X, exponents),
            conjugate=False,
            n_threads=self._n_threads(),
            ops=ops,
        )
        return back(ops.unscale_rows(out, exponents))

    def _check_fitted(self):
        """``check_is_fitted``, whose attribute scan costs more than a product of
        a short row, only when the spectrum is missing."""
        if not hasattr(self, "spectrum_"):
            check_is_fitted(self)

    def _n_threads(self):
        """``check_n_threads(self.n_jobs)``; the default needs no CPU count."""
        return 1 if self.n_jobs is None else check_n_threads(self.n_jobs)

    def _prepare(self, X, scale_dtype):
        """Validate ``X`` and take it where it is computed.

        Returns ``(X, exponents, ops, back)``: ``X`` validated (C-ordered
        float32/float64) on its compute device, the powers of two of its rows
        for the safe range of ``scale_dtype`` (X's dtype when None; see
        :mod:`fasttsne.linalg._scaling`), None when no row needs one, the
        array operations of its library, and the function that takes a result
        back to the caller's library and device.

        A plain C-ordered float array of the fitted width, without NaN or
        infinity, skips scikit-learn's validation, whose fixed cost (dataframe
        detection, configuration lookups) exceeds the product itself for rows
        of up to about 10^4 values (docs/toeplitz.rst); NaN and infinity are
        found in the pass that finds each row's magnitude. Everything else,
        and an estimator fitted on named features, goes through it.
        """
        check_array_library(X, "ToeplitzKernel")
        if self._on_torch() or (not isinstance(X, np.ndarray) and _dispatching(X)):
            return self._prepare_torch(X, scale_dtype)
        if _is_plain_float_array(X, getattr(self, "n_features_in_", None)) and not (
            hasattr(self, "feature_names_in_")
        ):
            exponents, finite = _row_scaling(X, scale_dtype or X.dtype)
            if finite:
                return X, exponents, _NUMPY_OPS, _same
        X = validate_data(
            self, X, dtype=[np.float64, np.float32], order="C", reset=False
        )
        exponents, _ = _row_scaling(X, scale_dtype or X.dtype)
        return X, exponents, _NUMPY_OPS, _same

    def _compute_device(self):
        """``device_`` as :func:`_on_device` takes it.

        A model pickled before ``device_`` existed kept it in ``_device``, or,
        older still, computed on the host or where its tensors live.
        """
        device = getattr(self, "device_", None)
        if device is None:
            device = getattr(self, "_device", None)
            if device is None:
                device = "auto" if is_tensor(self.kernel_values_) else "cpu"
            return device
        return "auto" if device == "input" else device

    def _on_torch(self):
        """Whether every product runs on torch: on CUDA, or fitted on tensors."""
        return is_tensor(self.kernel_values_) or self._compute_device() == "cuda"

    def _prepare_torch(self, X, scale_dtype):
        """:meth:`_prepare` for a tensor under array API dispatch, an
        estimator fitted on one, or NumPy input computed on CUDA."""
        # pylint: disable=import-outside-toplevel
        from fasttsne.linalg._circulant_torch import TorchOps
        from fasttsne.linalg._svd._torch import check_tensor

        if is_tensor(self.kernel_values_) != _dispatching(X):
            fitted = "torch" if is_tensor(self.kernel_values_) else "numpy"
            raise TypeError(
                f"ToeplitzKernel fitted on {fitted} arrays cannot transform "
                f"{type(X).__module__.split('.')[0]} arrays; fit and transform "
                "with the same array library (torch tensors need "
                "sklearn.config_context(array_api_dispatch=True))."
            )
        if _dispatching(X):
            X = check_tensor(X)
            # scikit-learn's check of the width looks for dataframes first,
            # which costs more than a short product: only for named features
            # or the wrong width, whose error message it words.
            if hasattr(self, "feature_names_in_") or X.shape[1] != getattr(
                self, "n_features_in_", None
            ):
                validate_data(self, X, skip_check_array=True, reset=False)
        else:
            X = validate_data(
                self, X, dtype=[np.float64, np.float32], order="C", reset=False
            )
        X, back = _on_device(X, self._compute_device())
        X = X.contiguous()
        ops = TorchOps(X.device)
        exponents = ops.row_exponents(X, scale_dtype or ops.numpy_dtype(X))
        return X, exponents, ops, back

    def _spectrum(self, X, conjugate):
        """The kernel's spectrum for products with ``X`` and the power of two
        it was scaled by: on X's device, in X's precision, conjugated for
        ``X @ T`` (the embedding of ``k(-m)`` has the conjugate spectrum).

        The host spectra are computed in :meth:`fit`; a tensor's are copied
        to its device once per device, dtype and conjugation.
        """
        single = X.dtype.itemsize == 4  # float32, NumPy or torch
        host = getattr(self, "_host_spectra", None)
        if host is None:  # pickled before fit kept the host spectra
            values, exponent = _host_spectrum(
                self.spectrum_.spectrum, single, conjugate
            )
        else:
            values, exponent = host[single, conjugate]
        if not is_tensor(X):
            return values, exponent
        key = (str(X.device), X.dtype, conjugate)
        cache = self.__dict__.setdefault("_spectra", {})
        cached = cache.get(key)
        if cached is None:
            # pylint: disable-next=import-outside-toplevel
            from fasttsne.linalg._circulant_torch import spectrum_tensor

            cached = cache[key] = (spectrum_tensor(values, X.device), exponent)
        return cached

    def _product(self, X, *, conjugate, n_threads, ops=_NUMPY_OPS):
        """``X @ T.T`` (or ``X @ T`` with ``conjugate``) for a C-contiguous X."""
        values, exponent = self._spectrum(X, conjugate)
        out = ops.product(values, self.fft_shape_, self.grid_shape_, X, n_threads)
        if exponent:
            out = ops.unscale(out, exponent)
        return out

    def _preconditioner_solves(self, ops, n_threads):
        """``M^{-1}`` and ``M^{-T}`` for ``M = C + alpha I``, as row-batch maps."""
        if self.preconditioner_eigenvalues_ is None:
            return (lambda R: R), (lambda R: R)
        eigenvalues = self.preconditioner_eigenvalues_
        if is_tensor(eigenvalues):
            eigenvalues = to_numpy(eigenvalues)
        eigenvalues = eigenvalues + self.alpha
        magnitude = np.abs(eigenvalues)
        floor = _PRECONDITIONER_FLOOR * magnitude.max()
        if floor == 0:  # T = 0 and alpha = 0: nothing to precondition
            return (lambda R: R), (lambda R: R)
        if self.symmetric_:
            # PCG needs M symmetric positive definite: |lambda|, floored.
            eigenvalues = np.maximum(magnitude, floor)
        else:
            eigenvalues = np.where(magnitude < floor, floor, eigenvalues)
        inverse = 1.0 / eigenvalues
        return (
            ops.spectral_map(inverse, self.grid_shape_, n_threads),
            ops.spectral_map(np.conj(inverse), self.grid_shape_, n_threads),
        )

    def inverse_transform(self, X, *, return_info=False):
        """Solve ``(T + alpha I) z = x`` for every row ``x`` of X.

        Preconditioned conjugate gradients (CGNR for non-symmetric ``T``), all
        rows iterated together, each until its relative residual is below
        ``tol`` or ``max_cg_iter`` iterations have run. A
        :class:`~sklearn.exceptions.ConvergenceWarning` names the rows that did
        not converge. The solve runs in float64 whatever the input dtype.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Right-hand sides, one per row, e.g. the output of :meth:`transform`.
        return_info : bool, default=False
            Also return a :class:`SolveInfo` with the iteration count, final
            residual, convergence flag and solver of every row.

        Returns
        -------
        X_original : ndarray or tensor of shape (n_samples, n_features)
            The solutions ``z``, in the dtype of X (float32 or float64; see
            ``device`` for tensors).
        info : SolveInfo
            Only when ``return_info`` is True; host NumPy arrays whatever the
            input.
        """
        self._check_fitted()
        X, exponents, ops, back = self._prepare(X, np.float64)
        n_threads = self._n_threads()
        # The system is linear: each right-hand side is solved scaled by a power
        # of two that keeps the squares of its entries normal and finite (its
        # norm underflowed to 0 at 1e-300, "solved" by z = 0, and overflowed
        # at 1e154).
        B = ops.scale_rows(ops.float64(X), exponents)
        alpha = float(self.alpha)

        def matvec(V):
            out = self._product(V, conjugate=False, n_threads=n_threads, ops=ops)
            out += alpha * V
            return out

        def rmatvec(V):
            out = self._product(V, conjugate=True, n_threads=n_threads, ops=ops)
            out += alpha * V
            return out

        psolve, rpsolve = self._preconditioner_solves(ops, n_threads)
        solver = np.full(B.shape[0], self.solver_, dtype="<U4")
        options = {"tol": self.tol, "max_iter": self.max_cg_iter, "ops": ops}
        if self.solver_ == "cg":
            state = _pcg(matvec, psolve, B, **options)
        else:
            state = _cgnr(matvec, rmatvec, psolve, rpsolve, B, **options)
        Z, n_iter, converged = state.solution, state.n_iter, state.converged
        fallback = np.flatnonzero(state.failed & (self.solver_ == "cg"))
        if fallback.size:
            # T + alpha I is not positive definite along some search direction.
            retry = _cgnr(
                matvec, rmatvec, psolve, rpsolve, ops.take(B, fallback), **options
            )
            ops.put(Z, fallback, retry.solution)
            n_iter[fallback] += retry.n_iter
            converged[fallback] = retry.converged
            solver[fallback] = "cgnr"
        b_norm = ops.row_norms(B)
        residual = ops.row_norms(B - matvec(Z)) / np.where(b_norm > 0, b_norm, 1.0)
        # Converged means the recomputed residual, not only the recursive one
        # the iteration tracks (which drifts from it on ill-conditioned systems),
        # is within tol, up to the rounding of its own computation.
        floor = 64 * float(np.spacing(1.0))
        converged &= np.isfinite(residual) & (residual <= max(self.tol, floor) * 10)
        info = SolveInfo(n_iter, residual, converged, solver)
        _Printer(self.verbose)(
            f"inverse_transform: {B.shape[0]} rows, iterations "
            f"{n_iter.min()}..{n_iter.max()}, largest relative "
            f"residual {residual.max():.2e}, solver {self.solver_}"
            + (f" ({len(fallback)} rows fell back to cgnr)" if fallback.size else "")
        )
        if not converged.all():
            stalled = bool(np.any(~converged & (n_iter < self.max_cg_iter)))
            if stalled:
                cause = (
                    "the residual stalled above tol, T + alpha I is too "
                    f"ill-conditioned for it: raise alpha (now {self.alpha}) or tol"
                )
            else:
                cause = (
                    "T + alpha I is probably ill-conditioned: raise alpha (now "
                    f"{self.alpha}) or max_cg_iter (now {self.max_cg_iter})"
                )
            warnings.warn(
                f"ToeplitzKernel.inverse_transform: {int((~converged).sum())} of "
                f"{B.shape[0]} rows did not reach tol={self.tol} (largest "
                f"relative residual {residual.max():.2e}, iterations "
                f"{n_iter.min()}..{n_iter.max()}); {cause}.",
                ConvergenceWarning,
            )
        Z = back(ops.astype(ops.unscale_rows(Z, exponents), X))
        return (Z, info) if return_info else Z

    def __getstate__(self):
        # The per-device spectra are a cache, rebuilt on demand: a pickle holds
        # none (nor tensors of a device the loading machine may lack).
        # The host spectra are derived from spectrum_ and rebuilt on loading.
        state = super().__getstate__()
        if "_spectra" in state:
            state = {**state, "_spectra": {}}
        state.pop("_host_spectra", None)
        return state

    def __setstate__(self, state):
        super().__setstate__(state)
        if "spectrum_" in self.__dict__:
            self._host_spectra = _host_spectra(self.spectrum_.spectrum)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        tags.array_api_support = True
        return tags


def _host_spectra(spectrum):
    """:func:`_host_spectrum` in each precision, plain and conjugated."""
    return {
        (single, conjugate): _host_spectrum(spectrum, single, conjugate)
        for single in (False, True)
        for conjugate in (False, True)
    }


def _host_spectrum(spectrum, single, conjugate):
    """A kernel's spectrum for products in float32 (``single``) or float64,
    conjugated for ``X @ T``, and the power of two it was scaled by."""
    values = np.conj(spectrum) if conjugate else spectrum
    exponent = 0
    if single:
        # A kernel spectrum beyond float32's range is scaled, exactly.
        exponent = _scale_exponent(float(np.max(np.abs(values))), np.float32)
        if exponent:
            values = values * 2.0**exponent
        values = values.astype(np.complex64)
    return values, exponent


def _same(result):
    """A result that already is in the caller's library and device."""
    return result
