"""The kNN searches of a fit and of ``transform`` on ``device="cuda"``.

Drop-in twins of :func:`fasttsne._neighbors.nearest_neighbors` and
:func:`fasttsne._neighbors.new_point_neighbors` (same signatures, same
results): the exact euclidean search of dense data runs on the device
(:func:`fasttsne.gpu._launchers.exact_knn`), every other search on the CPU,
unchanged. ``neighbors=`` keeps its meaning on both devices:

* ``"exact"``, and ``"auto"`` below the CPU's crossover to the approximate
  search (``_APPROX_MIN_SAMPLES``): the device's exact search;
* ``"approx"``, and ``"auto"`` from the crossover on: the CPU's search as
  on ``device="cpu"`` (faiss; with ``"auto"``, the cell-pruned exact search
  where its plan is cheap), so that a setting gives the same neighbours on
  both devices; ``neighbors="exact"`` takes the device's search at any
  size;
* sparse data, metrics other than euclidean, precomputed distances: the
  CPU's search.

The device's answer is the CPU exact search's: the same neighbour sets,
ordered by (distance, index). Rows that its float32 ranking cannot decide
are searched again on the CPU; the distances are float64 sums in another
order than the CPU's, so P equals the CPU path's to rounding (and the
distances of rows ranked again on the host are the CPU's, bit for bit).
The perplexity calibration then runs on the CPU over these neighbours
(``tsne/_affinity.py``): it is O(N k) per bisection step against O(N^2 F)
for the search (``docs/gpu.rst``). torch is imported only when the device search runs.
"""

import numpy as np
from scipy import sparse

from fasttsne import _neighbors
from fasttsne._neighbors._common import as_float64, max_abs
from fasttsne._neighbors._exact import equal_rows, euclidean_knn
from fasttsne._neighbors._metrics import is_euclidean


def _device_serves(X, metric, metric_params, method):
    """Whether the device's exact search serves this input and ``method``."""
    if metric == "precomputed" or sparse.issparse(X):
        return False
    if not is_euclidean(metric, metric_params):
        return False
    # pylint: disable-next=protected-access
    if _neighbors._resolve_method(X, metric, metric_params, method) != "exact":
        return False
    # Values whose squared distances overflow float64: the CPU search raises
    # its error (the estimators scale their data so that this cannot happen).
    largest = max_abs(X)
    with np.errstate(over="ignore"):
        return bool(np.isfinite(4.0 * X.shape[1] * largest * largest))


def _device_knn(X_query, X_ref, n_neighbors, *, n_threads):
    """Exact euclidean kNN on the device; undecided rows searched on the CPU.

    ``X_ref`` None is a kNN graph of ``X_query`` (each row without itself).
    Returns ``(indices, sq_distances)`` as the CPU's :func:`euclidean_knn`.
    """
    from fasttsne.gpu import _launchers

    indices, sq_distances, uncertain = _launchers.exact_knn(
        X_query, n_neighbors, X_ref=X_ref
    )
    rows = np.flatnonzero(uncertain)
    if rows.size == 0:
        return indices.astype(np.intp, copy=False), sq_distances
    self_query = X_ref is None
    queries = as_float64(X_query)
    refs = queries if self_query else as_float64(X_ref)
    # One more neighbour for a row of the graph: the row itself is among the
    # k + 1 nearest unless k others come before it in (0, index) order.
    found, found_sq, _ = euclidean_knn(
        np.ascontiguousarray(queries[rows]),
        refs,
        n_neighbors + self_query,
        self_query=False,
        n_threads=n_threads,
        match=False,
    )
    for r, row in enumerate(rows):
        keep = found[r] != row if self_query else np.ones(found.shape[1], bool)
        indices[row] = found[r][keep][:n_neighbors]
        sq_distances[row] = found_sq[r][keep][:n_neighbors]
    return indices.astype(np.intp, copy=False), sq_distances


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
    """:func:`fasttsne._neighbors.nearest_neighbors`, its exact search on the device.

    Parameters and returns are those of the CPU function; the exact
    euclidean search of dense data runs on the device (see the module's
    docstring), anything else on the CPU.
    """
    if not _device_serves(X, metric, metric_params, method) or not (
        1 <= n_neighbors <= X.shape[0] - 1
    ):
        return _neighbors.nearest_neighbors(
            X,
            n_neighbors,
            metric=metric,
            metric_params=metric_params,
            method=method,
            n_threads=n_threads,
            random_state=random_state,
            squared=squared,
        )
    indices, sq_distances = _device_knn(X, None, n_neighbors, n_threads=n_threads)
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
    """:func:`fasttsne._neighbors.new_point_neighbors`, its exact search on the device.

    Parameters and returns are those of the CPU function. Each new row is
    searched on its own on the device too (a program owns its rows), so its
    result does not depend on the batch.
    """
    dense = not (sparse.issparse(X_new) or sparse.issparse(X_fit))
    if (
        not dense
        or X_new.shape[0] == 0
        or not 1 <= n_neighbors <= X_fit.shape[0]
        or not _device_serves(X_fit, metric, metric_params, "exact")
        or not _device_serves(X_new, metric, metric_params, "exact")
    ):
        return _neighbors.new_point_neighbors(
            X_new,
            X_fit,
            n_neighbors,
            metric=metric,
            metric_params=metric_params,
            n_threads=n_threads,
            squared=squared,
        )
    # float32 ranking only when both sides are float32: the candidates'
    # distances are recomputed from the references as ranked.
    if X_new.dtype != np.float32 or X_fit.dtype != np.float32:
        X_new, X_fit = as_float64(X_new), as_float64(X_fit)
    indices, sq_distances = _device_knn(X_new, X_fit, n_neighbors, n_threads=n_threads)
    match = equal_rows(as_float64(X_new), as_float64(X_fit))
    return indices, sq_distances if squared else np.sqrt(sq_distances), match
