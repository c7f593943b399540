"""Approximate kNN: a faiss HNSW graph, then exact re-ranking.

The graph holds euclidean points; cosine and correlation distances are
searched on the rows normalised to unit length (and centred first for
correlation), where the squared euclidean distance is twice the metric's
distance, so the ranking is the metric's (:func:`approx_angular_knn`).
faiss is imported only when this search runs (``import fasttsne`` never
loads it). The graph is built and searched on the points grouped by a
coarse k-means, so that graph neighbours also sit close in memory; the
neighbours it finds get their exact distances and the same (distance,
index) order as the exact search. The settings below and the recall and
time they give are in docs/neighbors.rst (``benchmarks/bench_knn.py``).
"""

import numpy as np
from sklearn.utils import check_random_state

from fasttsne._neighbors._common import (
    PAIR_BLOCK_ENTRIES,
    as_float64,
    coarse_centroids,
    max_abs,
    nearest_centroid,
    rescaling_exponent,
    run_blocks,
    sort_rows,
)
from fasttsne._neighbors._exact import euclidean_knn, pair_squared_distances

# Graph links per node and construction beam (docs/neighbors.rst).
_HNSW_M = 32
_HNSW_EF_CONSTRUCTION = 100
# Search beam: max(_HNSW_MIN_EF_SEARCH, _HNSW_EF_SEARCH_FACTOR (k + 1)), a
# trade of recall for time (docs/neighbors.rst).
_HNSW_MIN_EF_SEARCH = 128
_HNSW_EF_SEARCH_FACTOR = 1.4

# The coarse k-means that groups the points for the graph (_cluster_order):
# centroids, Lloyd iterations, rows it is trained on, and rows per block of
# the assignment of every row.
_KMEANS_CLUSTERS = 256
_KMEANS_ITERATIONS = 10
_KMEANS_SAMPLE_ROWS = 20_000
_ASSIGN_BLOCK_ROWS = 1 << 14

# Rows per faiss query batch: its (rows, k + 1) float32 distances and int64
# labels take about 72 MB at k = 90 (with the boolean mask of missing labels
# and the re-ranking's temporaries, a few times that), instead of 1.1 GB for
# 1e6 rows at once.
QUERY_BATCH_ROWS = 1 << 16

# Rows per worker block of the exact re-ranking: its gathered neighbours'
# differences are formed in cache-sized pieces anyway (pair_squared_distances),
# so blocks only need to be many enough to keep every thread busy.
_RERANK_BLOCK_ROWS = 1 << 12


def import_faiss():
    """faiss, or an ``ImportError`` saying how to install it.

    faiss is a dependency of fasttsne: a missing or broken install must not
    turn the large-data default into a search whose cost grows with the
    square of the number of samples without a word.
    """
    try:
        import faiss
    except (ImportError, OSError) as exc:
        raise ImportError(
            "The approximate nearest-neighbour search needs faiss, a dependency "
            f"of fasttsne, which cannot be imported ({exc}); install it with "
            'pip install faiss-cpu, or pass neighbors="exact".'
        ) from exc
    return faiss


def approx_euclidean_knn(
    X, n_neighbors, *, n_threads, random_state, batch_size=QUERY_BATCH_ROWS
):
    """Approximate kNN (self excluded) with a faiss HNSW graph.

    The graph's levels are drawn from ``random_state``. faiss versions that
    ship ``hnsw_add_vertices_deterministic`` (1.15.1 does) build the graph
    deterministically whatever the number of threads (batches linked against
    a frozen snapshot, reverse links merged in a fixed order); older versions
    are only deterministic when built serially, so they get one thread for
    the build. Queries are independent, so the search runs on
    ``n_threads``. The distances of the neighbours found are then recomputed
    exactly and each row sorted by (distance, index), as in the exact search.
    The graph is built and searched on the points grouped by a coarse k-means
    (:func:`_cluster_order`, whose sample and centroids are also drawn from
    ``random_state``). Queries run in batches of ``batch_size`` rows, which
    bounds the memory of faiss's outputs and does not change the result.

    Returns
    -------
    indices : ndarray of shape (n_samples, n_neighbors), intp
    sq_distances : ndarray of shape (n_samples, n_neighbors), float64
    """
    faiss = import_faiss()
    random_state = check_random_state(random_state)
    seed = int(random_state.randint(np.iinfo(np.int32).max))
    X = as_float64(X)
    n_samples, n_features = X.shape
    k = n_neighbors
    order = _cluster_order(X, random_state, n_threads)
    parallel_build = hasattr(faiss, "hnsw_add_vertices_deterministic")
    previous_threads = faiss.omp_get_max_threads()
    indices = np.empty((n_samples, k), dtype=np.intp)
    sq_distances = np.empty((n_samples, k), dtype=np.float64)
    try:
        faiss.omp_set_num_threads(n_threads if parallel_build else 1)
        index = faiss.IndexHNSWFlat(n_features, _HNSW_M)
        index.hnsw.efConstruction = _HNSW_EF_CONSTRUCTION
        index.hnsw.rng = faiss.RandomGenerator(seed)
        X32 = np.empty((n_samples, n_features), dtype=np.float32)
        # faiss computes in float32: data of tiny or huge magnitude is brought
        # to max |x| ~ 1 by an exact power of two first (the neighbours do not
        # change; their distances are recomputed from X below).
        exponent = rescaling_exponent(max_abs(X), np.float32)
        step = max(1, PAIR_BLOCK_ENTRIES // n_features)
        for start in range(0, n_samples, step):
            X32[start : start + step] = _graph_rows(
                X, order[start : start + step], exponent
            )
        # (pylint cannot see faiss's NumPy wrappers of its SWIG methods)
        index.add(X32)  # pylint: disable=no-value-for-parameter
        # The index holds its own copy: the queries are made again batch by
        # batch, so that this one does not sit beside the (n, k) outputs.
        del X32
        faiss.omp_set_num_threads(n_threads)
        index.hnsw.efSearch = max(
            _HNSW_MIN_EF_SEARCH, int(np.ceil(_HNSW_EF_SEARCH_FACTOR * (k + 1)))
        )
        # Queries go in batches, so that faiss's (n, k + 1) float32 distances
        # and int64 labels never exist for all rows at once.
        for start in range(0, n_samples, batch_size):
            rows = order[start : start + batch_size]
            # pylint: disable-next=no-value-for-parameter
            _, labels = index.search(_graph_rows(X, rows, exponent), k + 1)
            # Graph ids are positions in ``order``; -1 marks a missing one.
            missing = labels < 0
            np.take(order, labels, out=labels, mode="clip")
            labels[missing] = -1
            _rerank(X, rows, labels, k, n_threads, out=(indices, sq_distances))
    finally:
        faiss.omp_set_num_threads(previous_threads)
    return indices, sq_distances


def _graph_rows(X, rows, exponent):
    """Rows ``rows`` of ``X`` as the graph holds them: ``X * 2**exponent``, float32."""
    return np.ldexp(X[rows], exponent).astype(np.float32)


def _cluster_order(X, random_state, n_threads):
    """The rows of ``X`` grouped by their nearest of a few k-means centroids.

    HNSW graphs link points to their neighbours, which the input's order
    (often random) scatters over memory. Built and searched on the points
    grouped by a coarse k-means (``_KMEANS_CLUSTERS`` centroids from
    ``_KMEANS_ITERATIONS`` Lloyd steps on ``_KMEANS_SAMPLE_ROWS`` rows), the
    graph's neighbours share cache lines and pages: a faster build and
    search at the same recall (docs/neighbors.rst). Every product runs on
    one BLAS thread (blocks of rows in ``n_threads`` workers for the
    assignment of all rows), so the order does not depend on the number of
    threads; ties go to the lowest centroid, then to the lowest row.
    """
    n_samples = X.shape[0]
    centroids = coarse_centroids(
        X,
        min(_KMEANS_CLUSTERS, n_samples),
        random_state,
        n_iterations=_KMEANS_ITERATIONS,
        sample_rows=_KMEANS_SAMPLE_ROWS,
    )
    (assigned,) = run_blocks(
        lambda start, stop: (nearest_centroid(X[start:stop], centroids),),
        n_samples,
        _ASSIGN_BLOCK_ROWS,
        n_threads,
    )
    return np.argsort(assigned, kind="stable")


def _rerank(
    X, rows, labels, n_neighbors, n_threads, *, out=None, block_rows=_RERANK_BLOCK_ROWS
):
    """Exact distances and (distance, index) order of the neighbours of ``rows``.

    ``rows`` are row numbers of ``X``; ``labels`` holds the k + 1 candidates
    of each (row numbers of ``X`` too, not graph ids) found by the graph
    search, -1 for missing ones, and is overwritten for rows with a missing
    one. The row itself is dropped. Every row is computed on its own, so the
    ``n_threads`` workers (on blocks of ``block_rows`` rows) do not change
    the result.

    Returns
    -------
    indices : ndarray of shape (n_rows, n_neighbors), intp
    sq_distances : ndarray of shape (n_rows, n_neighbors), float64
        Or, when ``out = (indices, sq_distances)`` is given (arrays of
        ``X``'s rows), nothing: each worker writes its rows into ``out``.
    """
    n_rows = labels.shape[0]
    # A search that found fewer than k + 1 points pads with -1: redo those
    # rows exactly (k + 1 neighbours of the row as a new point, minus itself).
    short = np.flatnonzero((labels < 0).any(axis=1))
    if short.size:
        exact, _, _ = euclidean_knn(
            X[rows[short]],
            X,
            n_neighbors + 1,
            self_query=False,
            n_threads=n_threads,
            match=False,
        )
        labels[short] = exact

    def rerank_block(start, stop):
        query_rows = rows[start:stop]
        block = labels[start:stop]
        drop = block == query_rows[:, None]
        drop[~drop.any(axis=1), -1] = True
        indices = block[~drop].reshape(stop - start, n_neighbors)
        sq_distances = pair_squared_distances(
            X, np.repeat(query_rows, n_neighbors), X, indices.ravel()
        ).reshape(stop - start, n_neighbors)
        indices, sq_distances = sort_rows(indices, sq_distances)
        if out is None:
            return indices, sq_distances
        out[0][query_rows] = indices
        out[1][query_rows] = sq_distances
        return (None,)

    result = run_blocks(rerank_block, n_rows, block_rows, n_threads)
    return result if out is None else None


# Metrics that the graph answers on unit rows, and how each prepares a row.
ANGULAR_METRICS = ("cosine", "correlation")


def unit_rows(X, metric):
    """Rows of ``X`` as unit vectors (centred first for ``"correlation"``).

    For unit rows ``u`` and ``v``, ``|u - v|^2 = 2 - 2 u.v``: half the squared
    euclidean distance is the cosine distance ``1 - u.v`` (of the centred rows
    for the correlation distance), so a euclidean search of the unit rows
    ranks by the metric.

    Returns
    -------
    U : ndarray of shape (n_samples, n_features), float64
        A new array; rows of zero norm (after centring) stay zero.
    zero : ndarray of shape (n_samples,), bool
        The rows of zero norm, for which the metric is not a distance.
    """
    if metric not in ANGULAR_METRICS:
        raise ValueError(f"metric must be one of {ANGULAR_METRICS}, got {metric!r}.")
    U = np.array(as_float64(X), dtype=np.float64)
    if metric == "correlation":
        U -= U.mean(axis=1, keepdims=True)
    norms = np.sqrt(np.einsum("ij,ij->i", U, U))
    zero = norms == 0.0
    U[~zero] /= norms[~zero, None]
    return U, zero


def approx_angular_knn(X, n_neighbors, *, metric, n_threads, random_state):
    """Approximate cosine or correlation kNN (self excluded), HNSW on unit rows.

    The graph search and the exact re-ranking of
    :func:`approx_euclidean_knn` run on :func:`unit_rows`; the squared
    distances ``s`` they return become the metric's ``s / 2``. A zero row
    (or a constant one, for correlation) has no direction: as in
    :func:`sklearn.metrics.pairwise.cosine_distances`, it is at distance 1
    from every point, and the graph's ranking of it is kept.

    Returns
    -------
    indices : ndarray of shape (n_samples, n_neighbors), intp
    distances : ndarray of shape (n_samples, n_neighbors), float64
        The metric's distances, rows sorted by (distance, index).
    """
    U, zero = unit_rows(X, metric)
    indices, sq_distances = approx_euclidean_knn(
        U, n_neighbors, n_threads=n_threads, random_state=random_state
    )
    del U
    distances = 0.5 * sq_distances
    if np.any(zero):
        distances[zero[indices] | zero[:, None]] = 1.0
        indices, distances = sort_rows(indices, distances)
    return indices, distances
