"""Helpers shared by the searches: input conversion, row blocks, row sorting."""

from concurrent.futures import ThreadPoolExecutor

import numpy as np
from scipy import sparse
from threadpoolctl import threadpool_limits

# Entries held at once by one worker: rows of a precomputed block, or
# candidate (row, column, value) triples of the exact search (~100 MiB), so
# that memory stays linear in the number of rows.
BLOCK_ENTRIES = 1 << 22

# Entries of the (pairs, features) differences formed at once when distances
# are recomputed exactly: 512 KiB stays in cache (docs/neighbors.rst).
PAIR_BLOCK_ENTRIES = 1 << 16


def as_float64(X):
    """X as C-contiguous float64 ndarray or canonical float64 CSR."""
    if sparse.issparse(X):
        X = sparse.csr_matrix(X, dtype=np.float64, copy=False)
        if not X.has_canonical_format:
            X = X.copy()
            X.sum_duplicates()
        return X
    return np.ascontiguousarray(X, dtype=np.float64)


def max_abs(X):
    """The largest absolute value of an ndarray or sparse matrix (0 if empty)."""
    values = X.data if sparse.issparse(X) else X
    return float(np.max(np.abs(values), initial=0.0))


def rescaling_exponent(largest, dtype):
    """The power of two that brings ``largest`` into [0.5, 1), or 0.

    0 when ``largest`` is 0 or lies within ``[tiny ** (1/4), max ** (1/4)]``
    of ``dtype``: there, squared differences and their sums over features
    stay normal numbers, neither underflowing to 0 nor overflowing to inf.
    Scaling by a power of two is exact (for normal numbers), and nearest
    neighbours do not depend on the scale, so a search (or a t-SNE fit) can
    run on the scaled data instead.

    Parameters
    ----------
    largest : float
        The data's largest absolute value.
    dtype : dtype
        The floating dtype in which the squares are computed.

    Returns
    -------
    exponent : int
        Multiply the data by ``2 ** exponent`` (``np.ldexp``).
    """
    finfo = np.finfo(dtype)
    smallest, biggest = float(finfo.tiny), float(finfo.max)  # pylint: disable=no-member
    if largest == 0 or smallest**0.25 <= largest <= biggest**0.25:
        return 0
    return -int(np.frexp(largest)[1])


def squared_norms(X):
    """Row-wise squared norms of a float64 ndarray or CSR matrix."""
    if sparse.issparse(X):
        return np.asarray(X.multiply(X).sum(axis=1)).ravel()
    return np.einsum("ij,ij->i", X, X)


def run_blocks(function, n_rows, block_rows, n_threads):
    """Apply ``function(start, stop)`` to consecutive row blocks of n_rows > 0.

    ``function`` returns a tuple of arrays (or ``None``); the blocks' arrays
    are concatenated in row order, field by field.
    """
    starts = range(0, n_rows, block_rows)
    jobs = [(start, min(start + block_rows, n_rows)) for start in starts]
    n_workers = max(1, min(n_threads, len(jobs)))
    # BLAS runs single-threaded inside each worker so that n_threads is the
    # total number of threads used.
    with threadpool_limits(limits=1, user_api="blas"):
        if n_workers == 1:
            results = [function(*job) for job in jobs]
        else:
            with ThreadPoolExecutor(max_workers=n_workers) as pool:
                results = list(pool.map(lambda job: function(*job), jobs))
    return tuple(
        None if field[0] is None else np.concatenate(field) for field in zip(*results)
    )


def sort_rows(indices, distances):
    """Sort every row by (distance, index), returning both arrays."""
    order = np.lexsort((indices, distances), axis=1)
    return (
        np.take_along_axis(indices, order, axis=1),
        np.take_along_axis(distances, order, axis=1),
    )


def k_smallest(values, k):
    """Indices and values of the k smallest entries of a 1-D array, ties by index."""
    if k < values.shape[0]:
        kth = np.partition(values, k - 1)[k - 1]
        candidates = np.flatnonzero(values <= kth)
    else:
        candidates = np.arange(values.shape[0])
    order = np.lexsort((candidates, values[candidates]))[:k]
    return candidates[order], values[candidates[order]]


def coarse_centroids(
    X, n_clusters, random_state, *, n_iterations=10, sample_rows=20_000, center=None
):
    """Centroids of a coarse k-means: Lloyd steps on a sample of the rows.

    ``n_clusters`` distinct sampled rows start it, then ``n_iterations``
    Lloyd steps on ``sample_rows`` sampled rows, every product on one BLAS
    thread (the result does not depend on the number of threads). Both
    samples are drawn from ``random_state`` (a RandomState instance). With
    ``center``, the sample is centred on it first and the centroids are
    those of ``X - center`` (data far from the origin keep the digits of
    their distances).
    """
    n_samples = X.shape[0]
    sample = X[
        np.sort(
            random_state.choice(n_samples, min(n_samples, sample_rows), replace=False)
        )
    ]
    if center is not None:
        sample -= center
    centroids = sample[
        np.sort(random_state.choice(sample.shape[0], n_clusters, replace=False))
    ]
    with threadpool_limits(limits=1, user_api="blas"):
        for _ in range(n_iterations):
            assigned = nearest_centroid(sample, centroids)
            counts = np.bincount(assigned, minlength=n_clusters)
            members = sparse.csr_matrix(
                (np.ones(assigned.size), (assigned, np.arange(assigned.size))),
                shape=(n_clusters, assigned.size),
            )
            sums = members @ sample
            filled = counts > 0
            centroids[filled] = sums[filled] / counts[filled, None]
    return centroids


def nearest_centroid(X, centroids):
    """Index of the nearest centroid of every row (squared distances by GEMM)."""
    scores = X @ centroids.T
    scores *= -2.0
    scores += np.einsum("ij,ij->i", centroids, centroids)[None, :]
    return np.argmin(scores, axis=1)
