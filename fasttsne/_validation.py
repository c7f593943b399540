"""Validation helpers: the only module that imports private scikit-learn API.

Keeping every private import here means a scikit-learn upgrade that moves one of
them breaks a single file.
"""

from numbers import Integral

import numpy as np
from joblib import cpu_count
from sklearn.base import _fit_context

# A compiled module, which pylint cannot inspect.
from sklearn.utils._openmp_helpers import (  # pylint: disable=no-name-in-module
    _openmp_effective_n_threads,
    _openmp_parallelism_enabled,
)
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


def _usable_cpus():
    """CPUs this process may use, and the threads ``n_jobs=-1`` resolves to.

    joblib counts the CPUs of the affinity mask and of a cgroup quota (a
    Slurm allocation, ``docker --cpus``); scikit-learn's OpenMP helper adds
    ``OMP_NUM_THREADS``, which may ask for more threads than CPUs.

    Returns
    -------
    n_cpus : int
        Usable CPUs (affinity mask and cgroup quota applied).
    n_all : int
        Threads of ``n_jobs=-1``: ``OMP_NUM_THREADS`` when it is set, else
        ``n_cpus``.
    """
    n_cpus = max(int(cpu_count(only_physical_cores=False)), 1)
    if not _openmp_parallelism_enabled():
        # scikit-learn built without OpenMP would answer 1 whatever the machine.
        return n_cpus, n_cpus
    return n_cpus, max(int(_openmp_effective_n_threads(only_physical_cores=False)), 1)


def check_n_threads(n_jobs):
    """Resolve scikit-learn's ``n_jobs`` convention into a thread count.

    ``-1`` means every CPU this process may use: the affinity mask (``taskset``,
    Slurm), a cgroup CPU quota (containers) and ``OMP_NUM_THREADS`` are
    respected. A positive ``n_jobs`` above that is capped to it: more threads
    than CPUs only oversubscribe them (results never depend on ``n_jobs``), and
    a request far above the machine's limits would fail to create its threads.

    Parameters
    ----------
    n_jobs : int or None
        ``None`` means 1, ``-1`` all usable CPUs, ``-2`` all but one, and so on.

    Returns
    -------
    n_threads : int
        A positive number of threads.

    Raises
    ------
    TypeError
        When ``n_jobs`` is not an integer (a bool included).
    ValueError
        When ``n_jobs == 0``.

    Examples
    --------
    >>> from fasttsne._validation import check_n_threads
    >>> check_n_threads(None), check_n_threads(1)
    (1, 1)
    >>> check_n_threads(-1) >= 1
    True
    """
    if n_jobs is None:
        return 1
    if isinstance(n_jobs, (bool, np.bool_)) or not isinstance(n_jobs, Integral):
        raise TypeError(
            f"n_jobs must be an int or None, got {n_jobs!r} "
            f"({type(n_jobs).__name__})."
        )
    n_jobs = int(n_jobs)
    if n_jobs == 0:
        raise ValueError("n_jobs == 0 has no meaning; use None, a positive or -1.")
    n_cpus, n_all = _usable_cpus()
    if n_jobs < 0:
        return max(n_all + 1 + n_jobs, 1)
    return min(n_jobs, max(n_cpus, n_all))


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
