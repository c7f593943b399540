"""Precomputed distances: validation, and the k smallest of each row.

A dense matrix offers every column as a neighbour; a sparse one only its
stored entries (like scikit-learn's precomputed neighbour graphs).
"""

import numpy as np
from scipy import sparse

from fasttsne._neighbors._common import BLOCK_ENTRIES, k_smallest, run_blocks

# The most rows of a dense matrix one worker scans at a time.
_MAX_BLOCK_ROWS = 1024


def check_precomputed(D, n_columns=None):
    """Validate a precomputed distance matrix; return it as float64 (CSR or C).

    Parameters
    ----------
    D : {ndarray, sparse matrix} of shape (n_rows, n_columns)
        Non-negative distances, each (row, column) pair stored once.
    n_columns : int, default=None
        The number of columns required (distances of new points to the
        training points); ``None`` requires a square matrix.

    Returns
    -------
    D : C-contiguous float64 ndarray or canonical float64 CSR
    """
    if sparse.issparse(D):
        D = sparse.csr_matrix(D, dtype=np.float64)
        if not D.has_canonical_format:
            canonical = D.copy()
            canonical.sum_duplicates()
            if canonical.nnz != D.nnz:
                raise ValueError(
                    "A sparse precomputed distance matrix must store each "
                    f"(row, column) pair once; {D.nnz - canonical.nnz} pairs "
                    "are stored more than once."
                )
            D = canonical
        values = D.data
    else:
        D = np.ascontiguousarray(D, dtype=np.float64)
        if D.ndim != 2:
            raise ValueError(
                f"A precomputed distance matrix must be 2-D, got {D.ndim}-D."
            )
        values = D
    if n_columns is None and D.shape[0] != D.shape[1]:
        raise ValueError(
            f"A precomputed distance matrix must be square, got shape {D.shape}."
        )
    if n_columns is not None and D.shape[1] != n_columns:
        raise ValueError(
            f"Precomputed distances to the training points must have "
            f"{n_columns} columns, got shape {D.shape}."
        )
    if not np.all(values >= 0):  # also rejects NaN
        raise ValueError(
            "A precomputed distance matrix must be non-negative (and not NaN)."
        )
    return D


def precomputed_knn(D, n_neighbors, *, self_query, n_threads):
    """k smallest distances per row of a validated precomputed matrix.

    With ``self_query`` the diagonal is skipped. A sparse matrix offers only
    its stored entries as neighbours and must have at least k of them per row
    (off the diagonal with ``self_query``).

    Returns
    -------
    indices : ndarray of shape (n_rows, n_neighbors), intp
    distances : ndarray of shape (n_rows, n_neighbors), float64
        Rows sorted by (distance, index).
    """
    k = n_neighbors
    n_rows, n_cols = D.shape
    if sparse.issparse(D):
        row_of = np.repeat(np.arange(n_rows), np.diff(D.indptr))
        keep = D.indices != row_of if self_query else np.ones(D.nnz, dtype=bool)
        rows, cols, vals = row_of[keep], D.indices[keep], D.data[keep]
        counts = np.bincount(rows, minlength=n_rows)
        if n_rows and counts.min() < k:
            raise ValueError(
                f"{k} neighbours per sample are required, but some samples have "
                f"only {counts.min()} stored distances in the precomputed sparse "
                "matrix. Decrease the perplexity or store more neighbours."
            )
        order = np.lexsort((cols, vals, rows))
        starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
        take = order[(starts[:, None] + np.arange(k)[None, :])]
        return cols[take].astype(np.intp), vals[take]

    if not np.all(np.isfinite(D)):
        raise ValueError("A precomputed distance matrix must be finite.")
    block_rows = int(np.clip(BLOCK_ENTRIES // max(n_cols, 1), 1, _MAX_BLOCK_ROWS))

    def block(start, stop):
        m = stop - start
        values = D[start:stop].copy()
        if self_query:
            values[np.arange(m), np.arange(start, stop)] = np.inf
        indices = np.empty((m, k), dtype=np.intp)
        distances = np.empty((m, k), dtype=np.float64)
        for r in range(m):
            indices[r], distances[r] = k_smallest(values[r], k)
        return indices, distances

    return run_blocks(block, n_rows, block_rows, n_threads)
