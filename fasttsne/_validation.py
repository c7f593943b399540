"""Validation helpers: the only module that imports private scikit-learn API.

Keeping every private import here means a scikit-learn upgrade that moves one of
them breaks a single file.
"""

import os

import numpy as np
from sklearn.base import _fit_context
from sklearn.utils._param_validation import (
    Interval,
    StrOptions,
    validate_parameter_constraints,
    validate_params,
)
from sklearn.utils.validation import check_is_fitted, validate_data

__all__ = [
    "Interval",
    "StrOptions",
    "_fit_context",
    "check_finite_kernel",
    "check_is_fitted",
    "check_n_threads",
    "check_params",
    "validate_data",
    "validate_params",
]


def check_n_threads(n_jobs):
    """Resolve scikit-learn's ``n_jobs`` convention into a thread count.

    Parameters
    ----------
    n_jobs : int or None
        ``None`` means 1, ``-1`` all cores, ``-2`` all but one, and so on.

    Returns
    -------
    n_threads : int
        A positive number of threads.
    """
    n_cpus = os.cpu_count() or 1
    if n_jobs is None:
        return 1
    if n_jobs == 0:
        raise ValueError("n_jobs == 0 has no meaning; use None, a positive or -1.")
    if n_jobs < 0:
        return max(n_cpus + 1 + n_jobs, 1)
    return int(n_jobs)


def check_params(constraints, params, caller):
    """Check ``params`` against scikit-learn style ``constraints``.

    The same checks, and messages, as an estimator's
    ``_parameter_constraints``, for objects that are not estimators.

    Parameters
    ----------
    constraints : dict of str to list
        Allowed values per name (``Interval``, ``StrOptions``, types...).
    params : dict of str to object
        The values to check.
    caller : str
        Named in the error messages.

    Raises
    ------
    sklearn.utils._param_validation.InvalidParameterError
        A ``ValueError`` and ``TypeError``, naming the parameter.
    """
    validate_parameter_constraints(constraints, params, caller_name=caller)


def check_finite_kernel(values, name):
    """Raise ``ValueError`` when ``values`` holds NaN or infinity."""
    if not np.all(np.isfinite(values)):
        raise ValueError(f"{name} contains NaN or infinity.")
