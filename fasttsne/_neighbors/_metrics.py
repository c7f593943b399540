"""Metric names, and the kNN search for metrics other than the euclidean one.

The fit's search goes through :class:`sklearn.neighbors.NearestNeighbors`;
new points are searched one row at a time, so that a row's neighbours never
depend on the other rows of its batch.
"""

import numpy as np
from sklearn.metrics import DistanceMetric, pairwise_distances
from sklearn.neighbors import VALID_METRICS, NearestNeighbors

from fasttsne._neighbors._common import k_smallest, run_blocks, sort_rows

# Metric names accepted: everything sklearn.neighbors.NearestNeighbors knows.
KNOWN_METRICS = frozenset().union(*VALID_METRICS.values())

# New rows handed to one worker at a time by the row-by-row search.
_ROWWISE_BLOCK_ROWS = 64


def check_metric(metric):
    """Raise ``ValueError`` for a metric that is neither callable nor known."""
    if callable(metric):
        return
    if not isinstance(metric, str) or metric not in KNOWN_METRICS:
        raise ValueError(
            f"Unknown metric {metric!r}. Use a callable or one of "
            f"{sorted(KNOWN_METRICS)}."
        )


def check_metric_params(metric, metric_params):
    """Raise ``ValueError`` when ``metric_params`` are not parameters of ``metric``.

    Named metrics are checked against scikit-learn's ``DistanceMetric`` (the
    euclidean metric takes none, minkowski ``p`` and ``w``, ...); a callable
    gets them as keyword arguments, and metrics that ``DistanceMetric``
    does not know are left to the search.
    """
    if not metric_params or callable(metric) or metric == "precomputed":
        return
    try:
        DistanceMetric.get_metric(metric, **metric_params)
    except TypeError as exc:
        raise ValueError(
            f"metric_params={metric_params!r} are not parameters of the metric "
            f"{metric!r} ({exc}); the euclidean metric takes none, and "
            'metric="minkowski" takes p.'
        ) from exc
    except ValueError:
        pass  # not a DistanceMetric name (cosine, correlation, ...)


def is_euclidean(metric, metric_params):
    """Whether ``metric`` is the plain euclidean distance (any of its names)."""
    params = dict(metric_params or {})
    if metric in ("euclidean", "l2"):
        return not params
    if metric == "minkowski":
        return params.get("p", 2) == 2 and set(params) <= {"p"}
    return False


def _checked_callable(metric):
    """``metric`` raising a ``ValueError`` that names it for a value < 0, NaN or inf.

    scikit-learn's searches fail on such values with messages about array
    shapes, far from the cause.
    """
    name = getattr(metric, "__name__", repr(metric))

    def checked(a, b, **kwargs):
        value = metric(a, b, **kwargs)
        if not 0 <= value < np.inf:
            found = "negative" if value < 0 else "NaN or infinite"
            raise ValueError(
                f"The metric {name!r} returned {found} distances (e.g. {value}); "
                "a metric must return finite values >= 0."
            )
        return value

    return checked


def sklearn_knn(X, n_neighbors, *, metric, metric_params, n_threads):
    """Exact kNN (self excluded) through sklearn.neighbors.NearestNeighbors.

    Returns
    -------
    indices : ndarray of shape (n_samples, n_neighbors), intp
    distances : ndarray of shape (n_samples, n_neighbors), float64
        Rows sorted by (distance, index).
    """
    params = dict(metric_params or {})
    if callable(metric):
        metric = _checked_callable(metric)
    # NearestNeighbors warns when minkowski's p comes through metric_params.
    p = params.pop("p", 2) if metric == "minkowski" else 2
    knn = NearestNeighbors(
        n_neighbors=n_neighbors,
        metric=metric,
        p=p,
        metric_params=params or None,
        n_jobs=n_threads,
    )
    distances, indices = knn.fit(X).kneighbors()
    indices, distances = sort_rows(indices.astype(np.intp), distances)
    return indices, distances.astype(np.float64, copy=False)


def rowwise_knn(X_new, X_fit, n_neighbors, *, metric, metric_params, n_threads):
    """kNN of new rows for any metric, one row at a time.

    Each row's distances come from a ``pairwise_distances`` call on that row
    alone, so the result cannot depend on the other rows of the batch (some
    metrics use BLAS products whose rounding depends on the block shape).
    Rows are sorted by (distance, index).
    """
    params = dict(metric_params or {})
    if callable(metric):
        metric = _checked_callable(metric)
    k = n_neighbors

    def block(start, stop):
        indices = np.empty((stop - start, k), dtype=np.intp)
        distances = np.empty((stop - start, k), dtype=np.float64)
        for i in range(start, stop):
            row = pairwise_distances(
                X_new[i : i + 1],
                X_fit,
                metric=metric,
                ensure_all_finite=False,
                **params,
            )[0].astype(np.float64, copy=False)
            indices[i - start], distances[i - start] = k_smallest(row, k)
        return indices, distances

    return run_blocks(block, X_new.shape[0], _ROWWISE_BLOCK_ROWS, n_threads)
