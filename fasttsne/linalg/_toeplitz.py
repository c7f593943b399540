"""Toeplitz and block-Toeplitz kernel products by circulant embedding and FFT.

On top of the FFT core (:mod:`fasttsne.linalg._circulant`: a (block-)Toeplitz
matrix is the corner of a circulant one, whose product is a pointwise product
of real FFTs), :class:`ToeplitzKernel` exposes the product as a
scikit-learn transformer, and solves ``(T + alpha I) z = x`` by preconditioned
conjugate gradients with a circulant preconditioner (Strang or T. Chan), one
O(L log L) product per iteration, for a whole batch of rows at once.

The module is one piece (past the usual ~700 lines) because everything in it
serves :class:`ToeplitzKernel` alone: the expansion of kernels and
coefficients to every offset, the circulant preconditioners and the batched
CG/CGNR iterations, whose only caller is ``inverse_transform``.
"""

import warnings
from numbers import Integral, Real
from typing import NamedTuple

import numpy as np
import scipy.fft
from sklearn.base import BaseEstimator, OneToOneFeatureMixin, TransformerMixin
from sklearn.exceptions import ConvergenceWarning

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
from fasttsne.linalg._circulant import _circulant_product, _kernel_spectrum
from fasttsne.linalg._scaling import (
    _row_exponents,
    _row_extremes,
    _scale_exponent,
    _scale_rows,
    _unscale_rows,
)

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


def _rowdot(a, b):
    """Row-wise dot products of two (n_rows, n) arrays."""
    return np.einsum("ij,ij->i", a, b)


def _is_plain_float_array(X, n_features):
    """Whether ``X`` is a C-ordered, non-empty float32/float64 ndarray of width
    ``n_features``, which scikit-learn's validation would return as it is."""
    if type(X) is not np.ndarray:  # pylint: disable=unidiomatic-typecheck
        return False
    if X.ndim != 2 or X.dtype not in (np.float64, np.float32):
        return False
    return bool(X.flags.c_contiguous and X.shape[0] >= 1 and X.shape[1] == n_features)


class _KrylovState:
    """Per-row bookkeeping of a batched Krylov solve with early exits."""

    def __init__(self, B, tol):
        self.solution = np.zeros_like(B)
        self.n_iter = np.zeros(B.shape[0], dtype=np.intp)
        self.converged = np.zeros(B.shape[0], dtype=bool)
        self.failed = np.zeros(B.shape[0], dtype=bool)
        b_norm = np.linalg.norm(B, axis=1)
        self.converged[b_norm == 0] = True  # z = 0 solves an all-zero row exactly
        self.rows = np.flatnonzero(b_norm > 0)
        self.threshold = tol * b_norm[self.rows]

    def retire(self, residual_norm, bad, arrays):
        """Count one iteration; drop the rows that converged or broke down.

        Returns the ``arrays`` restricted to the rows still running.
        """
        self.n_iter[self.rows] += 1
        done = (residual_norm <= self.threshold) | bad
        if not done.any():
            return arrays
        self.solution[self.rows[done]] = arrays[0][done]
        self.converged[self.rows[done & ~bad]] = True
        self.failed[self.rows[bad]] = True
        keep = ~done
        self.rows, self.threshold = self.rows[keep], self.threshold[keep]
        return [array[keep] for array in arrays]

    def finish(self, z):
        """Store the iterates of the rows that ran out of iterations."""
        self.solution[self.rows] = z


def _pcg(matvec, psolve, B, *, tol, max_iter):
    """Batched preconditioned conjugate gradients, one SPD system per row of B.

    ``matvec`` and ``psolve`` map an (n_rows, n) array to another. A row whose
    curvature ``p^T A p`` is not positive (A indefinite, or singular to rounding)
    stops with ``failed`` set, so that the caller can hand it to CGNR.
    """
    state = _KrylovState(B, tol)
    r = B[state.rows].copy()
    z = np.zeros_like(r)
    s = psolve(r)
    p = s.copy()
    rs = _rowdot(r, s)
    for _ in range(max_iter):
        if state.rows.size == 0:
            break
        q = matvec(p)
        pq = _rowdot(p, q)
        bad = ~((pq > 0) & (rs > 0) & np.isfinite(pq))
        step = np.where(bad, 0.0, rs / np.where(bad, 1.0, pq))
        z += step[:, None] * p
        r -= step[:, None] * q
        z, r, p, rs = state.retire(np.linalg.norm(r, axis=1), bad, [z, r, p, rs])
        if state.rows.size == 0:
            break
        s = psolve(r)
        rs_new = _rowdot(r, s)
        p *= (rs_new / rs)[:, None]
        p += s
        rs = rs_new
    state.finish(z)
    return state


def _cgnr(matvec, rmatvec, psolve, rpsolve, B, *, tol, max_iter):
    """Batched CG on the normal equations of ``A M^{-1} y = b``, ``z = M^{-1} y``.

    For any nonsingular A (non-symmetric or indefinite). Right preconditioning
    keeps ``r`` the true residual ``b - A z``. ``rmatvec`` and ``rpsolve`` apply
    ``A^T`` and ``M^{-T}``.
    """
    state = _KrylovState(B, tol)
    r = B[state.rows].copy()
    z = np.zeros_like(r)
    s = rpsolve(rmatvec(r))
    p = s.copy()
    gamma = _rowdot(s, s)
    for _ in range(max_iter):
        if state.rows.size == 0:
            break
        u = psolve(p)
        q = matvec(u)
        qq = _rowdot(q, q)
        bad = ~((qq > 0) & (gamma > 0) & np.isfinite(qq))
        step = np.where(bad, 0.0, gamma / np.where(bad, 1.0, qq))
        z += step[:, None] * u
        r -= step[:, None] * q
        z, r, p, gamma = state.retire(np.linalg.norm(r, axis=1), bad, [z, r, p, gamma])
        if state.rows.size == 0:
            break
        s = rpsolve(rmatvec(r))
        gamma_new = _rowdot(s, s)
        p *= (gamma_new / gamma)[:, None]
        p += s
        gamma = gamma_new
    state.finish(z)
    return state


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

    Attributes
    ----------
    grid_shape_ : tuple of int
        The grid, ``(n_features,)`` when ``grid_shape`` is None.
    kernel_values_ : ndarray of shape (2 * n_1 - 1, ..., 2 * n_d - 1)
        The kernel at every grid offset; the centre holds ``k(0)``.
    symmetric_ : bool
        Whether ``k(-m) == k(m)`` for every offset, i.e. ``T`` is symmetric.
    fft_shape_ : tuple of int
        Size of the circulant embedding per axis: the FFT-friendly size at or
        above ``2 n_k - 1``.
    spectrum_ : _GridSpectrum
        The real FFT of the circulant embedding, shape
        ``(L_1, ..., L_d // 2 + 1)``, with the grid and FFT shapes.
    preconditioner_eigenvalues_ : ndarray of shape (n_1, ..., n_d // 2 + 1) or None
        Real FFT of the circulant preconditioner (before ``alpha``); real when
        ``T`` is symmetric. None when ``preconditioner`` is None.
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
        X = validate_data(self, X, dtype=[np.float64, np.float32])
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
        X_new : ndarray of shape (n_samples, n_features)
            ``T @ x`` for every row ``x``; float32 for float32 input, float64
            otherwise.
        """
        self._check_fitted()
        X, top = self._validate(X)
        exponents = _row_exponents(top, X.dtype)
        out = self._product(
            _scale_rows(X, exponents), conjugate=False, n_threads=self._n_threads()
        )
        return _unscale_rows(out, exponents)

    def _check_fitted(self):
        """``check_is_fitted``, whose attribute scan costs more than a product of
        a short row, only when the spectrum is missing."""
        if not hasattr(self, "spectrum_"):
            check_is_fitted(self)

    def _n_threads(self):
        """``check_n_threads(self.n_jobs)``; the default needs no CPU count."""
        return 1 if self.n_jobs is None else check_n_threads(self.n_jobs)

    def _validate(self, X):
        """``validate_data(..., reset=False)``, and the largest magnitude of each
        row.

        A plain C-ordered float array of the fitted width, without NaN or
        infinity, skips scikit-learn's validation, whose fixed cost (dataframe
        detection, configuration lookups) exceeds the product itself for rows
        of up to about 10^4 values (docs/toeplitz.rst); everything else, and an
        estimator fitted on named features, goes through it.
        """
        if _is_plain_float_array(X, getattr(self, "n_features_in_", None)) and not (
            hasattr(self, "feature_names_in_")
        ):
            top = _row_extremes(X)
            if np.all(np.isfinite(top)):
                return X, top
        X = validate_data(
            self, X, dtype=[np.float64, np.float32], order="C", reset=False
        )
        return X, _row_extremes(X)

    def _product(self, X, *, conjugate, n_threads):
        """``X @ T.T`` (or ``X @ T`` with ``conjugate``) for a C-contiguous X."""
        values = self.spectrum_.spectrum
        if conjugate:  # the embedding of k(-m) has the conjugate spectrum
            values = np.conj(values)
        exponent = 0
        if X.dtype == np.float32:
            # A kernel spectrum beyond float32's range is scaled, exactly.
            exponent = _scale_exponent(float(np.max(np.abs(values))), np.float32)
            if exponent:
                values = values * 2.0**exponent
            values = values.astype(np.complex64)
        grids = (X.shape[0],) + self.grid_shape_
        out = np.empty_like(X)
        _circulant_product(
            values,
            self.fft_shape_,
            self.grid_shape_,
            X.reshape(grids),
            out.reshape(grids),
            workers=n_threads,
        )
        if exponent:
            with np.errstate(over="ignore", under="ignore"):
                np.ldexp(out, -exponent, out=out)
        return out

    def _preconditioner_solves(self, n_threads):
        """``M^{-1}`` and ``M^{-T}`` for ``M = C + alpha I``, as row-batch maps."""
        if self.preconditioner_eigenvalues_ is None:
            return (lambda R: R), (lambda R: R)
        eigenvalues = self.preconditioner_eigenvalues_ + self.alpha
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
        grid_shape = self.grid_shape_
        axes = tuple(range(1, len(grid_shape) + 1))

        def solve(R, factors):
            grids = R.reshape((R.shape[0],) + grid_shape)
            spec = scipy.fft.rfftn(grids, axes=axes, workers=n_threads)
            spec *= factors
            return np.reshape(
                scipy.fft.irfftn(
                    spec, s=grid_shape, axes=axes, workers=n_threads, overwrite_x=True
                ),
                R.shape,
            )

        inverse_conj = np.conj(inverse)
        return (lambda R: solve(R, inverse)), (lambda R: solve(R, inverse_conj))

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
        X_original : ndarray of shape (n_samples, n_features)
            The solutions ``z``, in the dtype of X (float32 or float64).
        info : SolveInfo
            Only when ``return_info`` is True.
        """
        self._check_fitted()
        X, top = self._validate(X)
        n_threads = self._n_threads()
        # The system is linear: each right-hand side is solved scaled by a power
        # of two that keeps the squares of its entries normal and finite (its
        # norm underflowed to 0 at 1e-300, "solved" by z = 0, and overflowed
        # at 1e154).
        exponents = _row_exponents(top, np.float64)
        B = _scale_rows(X.astype(np.float64, copy=False), exponents)
        alpha = float(self.alpha)

        def matvec(V):
            out = self._product(V, conjugate=False, n_threads=n_threads)
            out += alpha * V
            return out

        def rmatvec(V):
            out = self._product(V, conjugate=True, n_threads=n_threads)
            out += alpha * V
            return out

        psolve, rpsolve = self._preconditioner_solves(n_threads)
        solver = np.full(B.shape[0], self.solver_, dtype="<U4")
        options = {"tol": self.tol, "max_iter": self.max_cg_iter}
        if self.solver_ == "cg":
            state = _pcg(matvec, psolve, B, **options)
        else:
            state = _cgnr(matvec, rmatvec, psolve, rpsolve, B, **options)
        Z, n_iter, converged = state.solution, state.n_iter, state.converged
        fallback = np.flatnonzero(state.failed & (self.solver_ == "cg"))
        if fallback.size:
            # T + alpha I is not positive definite along some search direction.
            retry = _cgnr(matvec, rmatvec, psolve, rpsolve, B[fallback], **options)
            Z[fallback] = retry.solution
            n_iter[fallback] += retry.n_iter
            converged[fallback] = retry.converged
            solver[fallback] = "cgnr"
        b_norm = np.linalg.norm(B, axis=1)
        residual = np.linalg.norm(B - matvec(Z), axis=1) / np.where(
            b_norm > 0, b_norm, 1.0
        )
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
        Z = _unscale_rows(Z, exponents).astype(X.dtype, copy=False)
        return (Z, info) if return_info else Z

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags
