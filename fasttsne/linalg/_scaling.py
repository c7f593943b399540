"""Exact rescaling by powers of two, so that results are right at any magnitude.

Singular values, Toeplitz products and solves are scale-equivariant, but their
intermediate sums of squares overflow above about ``sqrt(max)`` (``1e154`` in
float64, ``1e19`` in float32) and lose their relative accuracy to subnormals
below about ``sqrt(tiny) / eps``. Data whose largest magnitude lies outside a
safe range are multiplied by a power of two, which rounds nothing (the
exponent changes, the mantissas do not), and the results are scaled back the
same way (LAPACK scales this way too, ``dlascl``).
"""

import numpy as np
import scipy.sparse as sp

# Largest magnitudes in [low, high] need no scaling: their squares stay normal
# down to eps of the largest, and sums of ~1e12 squares stay finite.
_SAFE_RANGE = {
    np.dtype(np.float64): (2.0**-400, 2.0**400),
    np.dtype(np.float32): (2.0**-36, 2.0**36),
}

# The SVD's Krylov solvers work through A^T A and the norms of its products,
# which reach the fourth power of the data's magnitude: a narrower range.
SVD_SAFE_RANGE = {
    np.dtype(np.float64): (2.0**-200, 2.0**200),
    np.dtype(np.float32): (2.0**-16, 2.0**16),
}


def _max_abs(X):
    """Largest magnitude of a dense or sparse array (0 for an empty one).

    Without ``np.abs``, which would copy a dense array.
    """
    values = X.data if sp.issparse(X) else X
    if values.size == 0:
        return 0.0
    return float(max(np.max(values), -np.min(values)))


def _scale_exponent(max_abs, dtype, safe_range=None):
    """Power of two ``e`` that brings ``max_abs * 2**e`` into ``[0.5, 1)``, or 0
    when ``max_abs`` is 0, not finite, or already in the safe range of ``dtype``
    (of the table ``safe_range``, ``_SAFE_RANGE`` by default)."""
    table = _SAFE_RANGE if safe_range is None else safe_range
    low, high = table.get(np.dtype(dtype), table[np.dtype(np.float64)])
    if max_abs == 0 or not np.isfinite(max_abs) or low <= max_abs <= high:
        return 0
    return -int(np.frexp(max_abs)[1])


def _scaled(X, exponent):
    """``X * 2**exponent`` as a new array (dense) or matrix (sparse), exactly."""
    if sp.issparse(X):
        X = X.copy()
        X.data = np.ldexp(X.data, exponent).astype(X.dtype, copy=False)
        return X
    return np.ldexp(X, exponent).astype(X.dtype, copy=False)


def _row_extremes(X):
    """Largest magnitude of each row, NaN or inf where the row holds them.

    ``max`` and ``-min`` rather than ``abs``, which would copy ``X``.
    """
    if X.shape[1] == 0:
        return np.zeros(X.shape[0])
    return np.maximum(X.max(axis=1), -X.min(axis=1)).astype(np.float64)


def _row_exponents(top, dtype):
    """Per-row powers of two that bring the rows whose largest magnitudes ``top``
    lie outside the safe range (:mod:`fasttsne.linalg._scaling`) into
    ``[0.5, 1)``; 0 for the others. Products and solves are linear in the row,
    so a scaled row gives the scaled result, and powers of two round nothing."""
    low, high = _SAFE_RANGE[np.dtype(dtype)]
    if top.size and low <= top.min() and top.max() <= high:
        # The usual case, without frexp's temporaries (a NaN fails the test).
        return np.zeros(top.shape[0], dtype=np.int64)
    exponents = -np.frexp(top)[1].astype(np.int64)
    exponents[(top == 0) | ((top >= low) & (top <= high)) | ~np.isfinite(top)] = 0
    return exponents


def _row_scaling(X, dtype):
    """The row exponents of ``X`` (:func:`_row_exponents` for the safe range of
    ``dtype``), and whether ``X`` is finite.

    The exponents are None when no row needs scaling: the usual case costs two
    passes over ``X`` (its row maxima and minima) and a few scalar tests, since
    a NaN or an infinity, like a row out of the safe range, fails them.
    """
    if X.shape[1] == 0:
        return None, True
    low, high = _SAFE_RANGE[np.dtype(dtype)]
    # Python floats: a float32 bound would round the float64 range's limits.
    if X.shape[0] == 1:  # one row: two scalar reductions, nothing else
        largest = max(float(X.max()), -float(X.min()))
        if low <= largest <= high:
            return None, True
        top = np.array([largest])
    else:
        top = np.maximum(X.max(axis=1), -X.min(axis=1))
        largest = float(top.max())
        if low <= float(top.min()) and largest <= high:
            return None, True
    if not np.isfinite(largest):  # NaN propagates to the maximum
        return None, False
    exponents = _row_exponents(top.astype(np.float64), dtype)
    return (exponents if exponents.any() else None), True


def _scale_rows(X, exponents):
    """``X * 2**exponents[:, None]`` (a copy), or ``X`` when no row is scaled
    (``exponents`` None or all zero)."""
    if exponents is None or not exponents.any():
        return X
    return np.ldexp(X, exponents[:, np.newaxis]).astype(X.dtype, copy=False)


def _unscale_rows(X, exponents):
    """``X *= 2**-exponents[:, None]`` in place; beyond the range of the dtype
    the exact result is 0 or inf. None scales nothing."""
    if exponents is not None and exponents.any():
        with np.errstate(over="ignore", under="ignore"):
            np.ldexp(X, -exponents[:, np.newaxis], out=X)
    return X
