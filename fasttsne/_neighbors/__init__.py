"""k nearest neighbours, apart from the affinities built on them.

Two entry points serve ``fasttsne.tsne._affinity``: :func:`nearest_neighbors`
(the kNN of every row, the row itself excluded, for a fit) and
:func:`new_point_neighbors` (the kNN of new rows among the training rows,
with the training row equal to each, for ``transform``). Under them, one
module per search:

* ``_exact``: blocked exact euclidean search (BLAS ranking, a bound on its
  rounding errors, exact distances, duplicates answered directly);
* ``_pruned``: the same exact answer for the rows of a fit, searching only
  the k-means cells that can hold a neighbour;
* ``_hnsw``: approximate search (faiss HNSW, deterministic build,
  k-means grouping, exact re-ranking), euclidean, and cosine and
  correlation on unit rows;
* ``_metrics``: metric names and every other metric (scikit-learn);
* ``_precomputed``: validation and kNN of precomputed distance matrices;
* ``_common``: input conversion, thread blocks and row sorting.

Every search returns rows sorted by (distance, index), and none depends on
the number of threads. docs/neighbors.rst describes the searches and their
measurements.
"""

import warnings

import numpy as np
from scipy import sparse

from fasttsne._neighbors._common import as_float64
from fasttsne._neighbors._exact import equal_rows, euclidean_knn
from fasttsne._neighbors._hnsw import (
    ANGULAR_METRICS,
    approx_angular_knn,
    approx_euclidean_knn,
)
from fasttsne._neighbors._metrics import (
    KNOWN_METRICS,
    check_metric,
    check_metric_params,
    is_euclidean,
    rowwise_knn,
    sklearn_knn,
)
from fasttsne._neighbors._precomputed import check_precomputed, precomputed_knn
from fasttsne._neighbors._pruned import cell_plan, pruned_euclidean_knn, usable

__all__ = [
    "KNOWN_METRICS",
    "check_metric",
    "check_precomputed",
    "nearest_neighbors",
    "new_point_neighbors",
]

_METHODS = ("auto", "exact", "approx")

# From this many samples on, method="auto" uses the approximate search: about
# where it overtakes the exact one in ``benchmarks/bench_knn.py --crossover``
# (docs/neighbors.rst).
_APPROX_MIN_SAMPLES = 80_000

# From this many samples on, the exact search of dense euclidean data prunes
# the cells of a coarse k-means (``_pruned``; the same answer, bit for bit).
_PRUNED_MIN_SAMPLES = 4_096

# From _APPROX_MIN_SAMPLES on, method="auto" keeps the exact search when its
# cell plan ranks at most this many candidates a query: about where the
# pruned exact search and the graph cost the same (docs/neighbors.rst).
_PRUNED_MAX_PAIRS_PER_QUERY = 100_000


def _checked_distances(distances, metric):
    """``distances`` of ``metric``, or a ``ValueError`` naming the metric."""
    bad = ~np.isfinite(distances)
    negative = distances < 0
    if bad.any() or negative.any():
        name = getattr(metric, "__name__", None) if callable(metric) else None
        name = f"{name!r}" if name else repr(metric)
        found = "NaN or infinite" if bad.any() else "negative"
        example = distances[bad | negative][0]
        raise ValueError(
            f"The metric {name} returned {found} distances (e.g. {example}); "
            "a metric must return finite values >= 0."
        )
    return distances


def _approx_unsupported(X, metric, metric_params):
    """Why the approximate search cannot serve this input, or None if it can."""
    if metric == "precomputed":
        return "precomputed distances need no search (their k smallest are taken)"
    if sparse.issparse(X):
        return (
            "the approximate search needs dense data; pass a dense array, or "
            "reduce sparse data first (e.g. with fasttsne.RandomizedSVD)"
        )
    if metric in ANGULAR_METRICS and not metric_params:
        return None
    if is_euclidean(metric, metric_params):
        return None
    return (
        "the approximate search supports the euclidean, cosine and correlation "
        f"metrics, not {metric!r}"
        + (f" with metric_params={metric_params!r}" if metric_params else "")
    )


def _resolve_method(X, metric, metric_params, method):
    """The search ``method`` means for this input: "exact" or "approx".

    "approx" raises ``ValueError`` for an input it cannot serve (see
    :func:`_approx_unsupported`). "auto" picks the approximate search from
    ``_APPROX_MIN_SAMPLES`` samples on (which :func:`nearest_neighbors` may
    still turn back to the exact search when its cell plan is cheap), and
    warns when it has to take the exact one there instead (unsupported
    input; a missing or broken faiss raises ``ImportError`` in the search);
    precomputed distances always take the exact selection, silently.
    """
    if method not in _METHODS:
        raise ValueError(f"method must be one of {_METHODS}, got {method!r}.")
    if method == "exact":
        return "exact"
    reason = _approx_unsupported(X, metric, metric_params)
    if method == "approx":
        if reason is not None:
            raise ValueError(
                f'neighbors="approx" cannot be used here: {reason}. Use '
                'neighbors="exact" (or "auto").'
            )
        return "approx"
    n_samples = X.shape[0]
    if n_samples < _APPROX_MIN_SAMPLES or metric == "precomputed":
        return "exact"
    if reason is not None:
        warnings.warn(
            f'neighbors="auto" takes the exact search for {n_samples} samples, '
            f"whose cost grows with the square of the number of samples: "
            f"{reason}.",
            UserWarning,
            stacklevel=4,
        )
        return "exact"
    return "approx"


def nearest_neighbors(
    X,
    n_neighbors,
    *,
    metric="euclidean",
    metric_params=None,
    method="exact",
    n_threads=1,
    random_state=None,
    squared=False,
):
    """The k nearest neighbours of every sample, the sample itself excluded.

    Parameters
    ----------
    X : {ndarray, sparse matrix} of shape (n_samples, n_features) or \
            (n_samples, n_samples)
        Data, or with ``metric="precomputed"`` a square distance matrix; a
        sparse precomputed matrix offers only its stored entries as
        neighbours (like scikit-learn's precomputed neighbour graphs).
    n_neighbors : int
        Number of neighbours k, in ``[1, n_samples - 1]``.
    metric : str or callable, default="euclidean"
        Any metric of :class:`sklearn.neighbors.NearestNeighbors`, or
        ``"precomputed"``.
    metric_params : dict, default=None
        Keyword arguments of the metric.
    method : {"exact", "approx", "auto"}, default="exact"
        "approx" is a faiss HNSW graph (its recall is measured in
        docs/neighbors.rst), for dense data and the euclidean, cosine or
        correlation metric; it raises ``ValueError`` for other inputs.
        "auto" is "approx" from ``_APPROX_MIN_SAMPLES`` samples on, except
        for dense euclidean data whose cell plan (the exact search's, see
        ``_pruned``) ranks at most ``_PRUNED_MAX_PAIRS_PER_QUERY`` candidates
        a query: those take the exact search. It warns when it must take the
        exact search for inputs the graph cannot serve (sparse data, other
        metrics); a missing or broken faiss raises ``ImportError`` when the
        graph is needed.
        Precomputed distances are never searched: "auto" and "exact" take
        each row's k smallest.
    n_threads : int, default=1
        Number of threads. The result does not depend on it.
    random_state : int, RandomState instance or None, default=None
        Seeds the approximate search, which is then deterministic whatever
        ``n_threads``.
    squared : bool, default=False
        Return euclidean distances (any spelling of the metric) squared, as
        the searches compute them, instead of their square roots. Other
        metrics and precomputed distances are returned as they are.

    Returns
    -------
    indices : ndarray of shape (n_samples, n_neighbors), intp
        Neighbours of each sample, sorted by (distance, index).
    distances : ndarray of shape (n_samples, n_neighbors), float64
        Their distances in ``metric``. Exact duplicates are at distance 0.

    Examples
    --------
    >>> import numpy as np
    >>> from fasttsne._neighbors import nearest_neighbors
    >>> X = np.array([[0.0, 0.0], [3.0, 4.0], [0.0, 1.0]])
    >>> indices, distances = nearest_neighbors(X, 1)
    >>> indices.ravel().tolist(), distances.ravel().tolist()
    ([2, 2, 0], [1.0, 4.242640687119285, 1.0])
    """
    check_metric(metric)
    check_metric_params(metric, metric_params)
    requested = method
    method = _resolve_method(X, metric, metric_params, method)
    n_samples = X.shape[0]
    if not 1 <= n_neighbors <= n_samples - 1:
        raise ValueError(
            f"n_neighbors must be in [1, n_samples - 1] = [1, {n_samples - 1}], "
            f"got {n_neighbors}."
        )
    if metric == "precomputed":
        D = check_precomputed(X)
        return precomputed_knn(D, n_neighbors, self_query=True, n_threads=n_threads)
    if method == "approx" and metric in ANGULAR_METRICS:
        return approx_angular_knn(
            X,
            n_neighbors,
            metric=metric,
            n_threads=n_threads,
            random_state=random_state,
        )
    plan = None
    if method == "approx" and requested == "auto":
        # Clustered data let the exact search prune most of its work: keep
        # it where its plan costs less than the graph would.
        X = as_float64(X)
        center = X.mean(axis=0)
        if usable(X, center):
            plan = cell_plan(X, n_neighbors, n_threads=n_threads, center=center)
            if plan.pairs <= _PRUNED_MAX_PAIRS_PER_QUERY * n_samples:
                method = "exact"
            else:
                plan = None
    if method == "approx":
        indices, sq_distances = approx_euclidean_knn(
            X, n_neighbors, n_threads=n_threads, random_state=random_state
        )
    elif is_euclidean(metric, metric_params):
        X = as_float64(X)
        if sparse.issparse(X) or n_samples < _PRUNED_MIN_SAMPLES:
            indices, sq_distances, _ = euclidean_knn(
                X, X, n_neighbors, self_query=True, n_threads=n_threads, match=False
            )
        else:
            indices, sq_distances = pruned_euclidean_knn(
                X, n_neighbors, n_threads=n_threads, plan=plan
            )
    else:
        indices, distances = sklearn_knn(
            X,
            n_neighbors,
            metric=metric,
            metric_params=metric_params,
            n_threads=n_threads,
        )
        return indices, _checked_distances(distances, metric)
    return indices, sq_distances if squared else np.sqrt(sq_distances)


def new_point_neighbors(
    X_new,
    X_fit,
    n_neighbors,
    *,
    metric="euclidean",
    metric_params=None,
    n_threads=1,
    squared=False,
):
    """The k nearest training points of new points, and the training row equal.

    Each new row is searched on its own: its result depends only on that row
    and ``X_fit``, bitwise, whatever batch it arrives in.

    Parameters
    ----------
    X_new : {ndarray, sparse matrix} of shape (n_new, n_features)
        New points, or with ``metric="precomputed"`` their distances to the
        training points, of shape (n_new, n_fit).
    X_fit : {ndarray, sparse matrix} of shape (n_fit, n_features)
        Training points. Only its number of rows is used with
        ``metric="precomputed"`` (it may then be any (n_fit, ...) array).
    n_neighbors : int
        Number of neighbours k, in ``[1, n_fit]``.
    metric : str or callable, default="euclidean"
        As in :func:`nearest_neighbors`.
    metric_params : dict, default=None
        Keyword arguments of the metric.
    n_threads : int, default=1
        Number of threads. The result does not depend on it.
    squared : bool, default=False
        As in :func:`nearest_neighbors`.

    Returns
    -------
    indices : ndarray of shape (n_new, n_neighbors), intp
        Training neighbours of each new point, sorted by (distance, index).
    distances : ndarray of shape (n_new, n_neighbors), float64
        Their distances in ``metric``.
    match : ndarray of shape (n_new,), intp
        Smallest index of a training row equal to the new row
        (``np.array_equal``), or -1; with ``metric="precomputed"``, the
        smallest index at distance exactly 0.

    Examples
    --------
    >>> import numpy as np
    >>> from fasttsne._neighbors import new_point_neighbors
    >>> X_fit = np.array([[0.0, 0.0], [3.0, 4.0], [0.0, 1.0]])
    >>> X_new = np.array([[3.0, 1.0]])  # at distance 3 from rows 1 and 2
    >>> indices, distances, match = new_point_neighbors(X_new, X_fit, 2)
    >>> indices.tolist(), distances.tolist(), match.tolist()
    ([[1, 2]], [[3.0, 3.0]], [-1])
    >>> new_point_neighbors(X_fit[[2, 0]], X_fit, 1)[2].tolist()
    [2, 0]
    """
    check_metric(metric)
    check_metric_params(metric, metric_params)
    n_new = X_new.shape[0]
    if n_new == 0:
        return (
            np.empty((0, n_neighbors), dtype=np.intp),
            np.empty((0, n_neighbors), dtype=np.float64),
            np.empty(0, dtype=np.intp),
        )
    if metric == "precomputed":
        D = check_precomputed(X_new, n_columns=X_fit.shape[0])
        indices, distances = precomputed_knn(
            D, n_neighbors, self_query=False, n_threads=n_threads
        )
        match = np.where(distances[:, 0] == 0.0, indices[:, 0], -1).astype(np.intp)
        return indices, distances, match
    X_new, X_fit = _matching_formats(X_new, X_fit)
    if is_euclidean(metric, metric_params):
        indices, sq_distances, match = euclidean_knn(
            X_new, X_fit, n_neighbors, self_query=False, n_threads=n_threads, match=True
        )
        return indices, sq_distances if squared else np.sqrt(sq_distances), match
    indices, distances = rowwise_knn(
        X_new,
        X_fit,
        n_neighbors,
        metric=metric,
        metric_params=metric_params,
        n_threads=n_threads,
    )
    _checked_distances(distances, metric)
    return indices, distances, equal_rows(X_new, X_fit)


def _matching_formats(X_new, X_fit):
    """Both as float64, CSR if ``X_fit`` is sparse and dense otherwise."""
    X_fit = as_float64(X_fit)
    if sparse.issparse(X_fit):
        X_new = sparse.csr_matrix(X_new)
    elif sparse.issparse(X_new):
        X_new = X_new.toarray()
    return as_float64(X_new), X_fit
