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


def _max_abs(X):
    """Largest magnitude of a dense or sparse array (0 for an empty one).

    Without ``np.abs``, which would copy a dense array.
    """
    values = X.data if sp.issparse(X) else X
    if values.size == 0:
        return 0.0
    return float(max(np.max(values), -np.min(values)))


def _scale_exponent(max_abs, dtype):
    """Power of two ``e`` that brings ``max_abs * 2**e`` into ``[0.5, 1)``, or 0
    when ``max_abs`` is 0, not finite, or already in the safe range of ``dtype``."""
    low, high = _SAFE_RANGE.get(np.dtype(dtype), _SAFE_RANGE[np.dtype(np.float64)])
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
