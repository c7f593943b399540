"""Sparse (CSR) times dense products in column tiles, for the randomized SVD.

Implementation notes
--------------------
A product of a CSR matrix M (m x n) with a block of b dense columns is not
limited by its arithmetic but by memory latency: each stored value M_ij reads
(``M @ X``, the *gather*) or updates (``M^T @ Y``, the *scatter*) the row j of
an n x b array, at random. When that array is larger than the L2 cache, almost
every such access misses.

Here the columns of M are split into tiles small enough that the slice of
the randomly accessed operand belonging to one tile stays in L2 (the caller
picks their number); the other operand, read or written in row order, is then
streamed once per tile instead of once. Timings against scipy's products are
in ``docs/svd.rst`` ("Benchmark").

* ``tile_csr`` copies M into tile-major order with a counting sort: tile t
  holds the columns ``[t w, (t + 1) w)`` (w = ceil(n / n_tiles)) as a CSR
  matrix with column indices relative to ``t w`` (int32), whose row pointers
  are ``tile_indptr[t]`` into arrays shared by all tiles. Row order and the
  order of the values within a row are kept. O(nnz + n_tiles m) time; nnz
  (4 + itemsize) + 8 n_tiles (m + 1) bytes, plus n_tiles m int64 scratch.
* ``gather``: for each tile in turn, the rows are split statically among the
  threads. Each output row adds its tiles in order and, within a tile, its
  values in order, so the result is bitwise identical for any number of
  threads (and, for rows sorted by column, for any number of tiles). The
  sums of a row stay in registers, ``_PANEL`` columns at a time, which is
  faster than accumulating them in the output row (docs/svd.rst).
* ``scatter``: each tile belongs to one thread (dynamic schedule), which owns
  the output rows of the tile's columns and adds the rows of Y in row order:
  bitwise identical for any number of threads. With fewer tiles than threads
  some threads idle.

All sums are accumulated in the working precision (float32 stays float32),
like BLAS and scipy: these are the products of the SVD's float32 path, whose
contract is float32 end to end.

``gather`` and ``scatter`` check the shapes of the tiles, not their contents,
which they trust to come from ``tile_csr``.
"""

import numpy as np

from cython cimport floating
from cython.parallel cimport prange

from fasttsne._cython._typedefs cimport index_t, int32_t, int64_t, intp_t

cdef enum:
    # Columns whose sums a gather keeps in registers at a time.
    _PANEL = 8


def tile_csr(
    const index_t[::1] indptr,
    const index_t[::1] indices,
    const floating[::1] data,
    intp_t n_cols,
    intp_t n_tiles,
    int n_threads,
):
    """Split a CSR matrix into tiles of consecutive columns.

    Parameters
    ----------
    indptr, indices, data : ndarray
        The CSR arrays of M (m x n_cols), of shape (m + 1,), (nnz,) and (nnz,):
        int32 or int64 row pointers and column indices in ``[0, n_cols)``,
        float32 or float64 values. Rows need not be sorted.
    n_cols : int
        Number of columns of M, >= 1.
    n_tiles : int
        Requested number of tiles, >= 1; the tiles have ``ceil(n_cols /
        n_tiles)`` columns, so there may be fewer.
    n_threads : int
        Number of OpenMP threads, >= 1. The result does not depend on it.

    Returns
    -------
    tile_indptr : ndarray of shape (n_tiles_out, m + 1), int64
        Row pointers of each tile into ``tile_indices`` and ``tile_data``.
    tile_indices : ndarray of shape (nnz,), int32
        Column indices relative to the first column of their tile.
    tile_data : ndarray of shape (nnz,)
        Values, in the dtype of ``data``.
    starts : ndarray of shape (n_tiles_out + 1,), int64
        First column of each tile, then ``n_cols``.
    """
    cdef intp_t m = indptr.shape[0] - 1
    cdef intp_t nnz, width, n_out, t, i, p, q, running
    cdef int64_t j
    cdef intp_t n_bad = 0

    if n_threads < 1:
        raise ValueError(f"n_threads must be >= 1, got {n_threads}.")
    if n_cols < 1 or n_tiles < 1:
        raise ValueError(
            f"n_cols and n_tiles must be >= 1, got {n_cols} and {n_tiles}."
        )
    if m < 0 or indptr[0] != 0:
        raise ValueError("indptr must have m + 1 >= 1 entries, starting at 0.")
    nnz = indptr[m]
    if indices.shape[0] != nnz or data.shape[0] != nnz:
        raise ValueError(
            f"indices and data must have indptr[-1] = {nnz} entries, got "
            f"{indices.shape[0]} and {data.shape[0]}."
        )
    with nogil:
        for i in range(m):
            if indptr[i + 1] < indptr[i]:
                n_bad = n_bad + 1
    if n_bad:
        raise ValueError("indptr must be non-decreasing.")
    width = (n_cols + n_tiles - 1) // n_tiles
    if width > np.iinfo(np.int32).max:
        raise ValueError(f"A tile of {width} columns overflows int32 indices.")
    n_out = (n_cols + width - 1) // width

    tile_indptr = np.zeros((n_out, m + 1), dtype=np.int64)
    tile_indices = np.empty(nnz, dtype=np.int32)
    tile_data = np.empty(nnz, dtype=np.asarray(data).dtype)
    starts = np.minimum(np.arange(n_out + 1, dtype=np.int64) * width, n_cols)
    cdef int64_t[:, ::1] ptr = tile_indptr
    cdef int32_t[::1] out_indices = tile_indices
    cdef floating[::1] out_data = tile_data

    # Count the values of each (tile, row) in ptr[t, i + 1]; each row touches
    # only its own column of ptr, so rows run in parallel.
    for i in prange(m, nogil=True, num_threads=n_threads, schedule="static"):
        for p in range(indptr[i], indptr[i + 1]):
            j = indices[p]
            if j < 0 or j >= n_cols:
                n_bad += 1
            else:
                ptr[j // width, i + 1] += 1
    if n_bad:
        raise ValueError(f"Column indices must lie in [0, {n_cols}).")
    with nogil:
        running = 0
        for t in range(n_out):
            ptr[t, 0] = running
            for i in range(m):
                running = running + ptr[t, i + 1]
                ptr[t, i + 1] = running
    # ptr[t, i] is where row i of tile t starts: a cursor for the placement.
    cursor = tile_indptr[:, :m].copy()
    cdef int64_t[:, ::1] cur = cursor
    for i in prange(m, nogil=True, num_threads=n_threads, schedule="static"):
        for p in range(indptr[i], indptr[i + 1]):
            j = indices[p]
            t = j // width
            q = cur[t, i]
            cur[t, i] = q + 1
            out_indices[q] = <int32_t>(j - t * width)
            out_data[q] = data[p]
    return tile_indptr, tile_indices, tile_data, starts


def gather(
    const int64_t[:, ::1] tile_indptr,
    const int32_t[::1] tile_indices,
    const floating[::1] tile_data,
    const int64_t[::1] starts,
    const floating[:, ::1] X,
    int n_threads,
):
    """``M @ X`` for a matrix M split by :func:`tile_csr`.

    Parameters
    ----------
    tile_indptr, tile_indices, tile_data, starts : ndarray
        The tiles of M (m x n), as returned by :func:`tile_csr`.
    X : ndarray of shape (n, b), C-contiguous, of the dtype of ``tile_data``
    n_threads : int
        Number of OpenMP threads, >= 1. The result does not depend on it.

    Returns
    -------
    out : ndarray of shape (m, b)
    """
    cdef intp_t n_tiles = tile_indptr.shape[0], m = tile_indptr.shape[1] - 1
    cdef intp_t b = X.shape[1], t, i, first

    _check_tiles(tile_indptr, tile_indices.shape[0], tile_data.shape[0], starts,
                 n_threads)
    if X.shape[0] != starts[n_tiles]:
        raise ValueError(f"X must have {starts[n_tiles]} rows, got {X.shape[0]}.")
    out = np.zeros((m, b), dtype=np.asarray(tile_data).dtype)
    cdef floating[:, ::1] out_view = out
    if b == 0 or tile_data.shape[0] == 0:
        return out
    for t in range(n_tiles):
        first = starts[t]
        for i in prange(m, nogil=True, num_threads=n_threads, schedule="static"):
            _gather_row(
                &tile_data[0], &tile_indices[0], tile_indptr[t, i],
                tile_indptr[t, i + 1], &X[first, 0], b, &out_view[i, 0],
            )
    return out


def scatter(
    const int64_t[:, ::1] tile_indptr,
    const int32_t[::1] tile_indices,
    const floating[::1] tile_data,
    const int64_t[::1] starts,
    const floating[:, ::1] Y,
    int n_threads,
):
    """``M^T @ Y`` for a matrix M split by :func:`tile_csr`.

    Parameters
    ----------
    tile_indptr, tile_indices, tile_data, starts : ndarray
        The tiles of M (m x n), as returned by :func:`tile_csr`.
    Y : ndarray of shape (m, b), C-contiguous, of the dtype of ``tile_data``
    n_threads : int
        Number of OpenMP threads, >= 1. The result does not depend on it.

    Returns
    -------
    out : ndarray of shape (n, b)
    """
    cdef intp_t n_tiles = tile_indptr.shape[0], m = tile_indptr.shape[1] - 1
    cdef intp_t b = Y.shape[1], t, i, p, c, first
    cdef floating value
    cdef const floating* y_row
    cdef floating* out_row

    _check_tiles(tile_indptr, tile_indices.shape[0], tile_data.shape[0], starts,
                 n_threads)
    if Y.shape[0] != m:
        raise ValueError(f"Y must have {m} rows, got {Y.shape[0]}.")
    out = np.zeros((starts[n_tiles], b), dtype=np.asarray(tile_data).dtype)
    cdef floating[:, ::1] out_view = out
    if b == 0 or tile_data.shape[0] == 0:
        return out
    for t in prange(
        n_tiles, nogil=True, num_threads=n_threads, schedule="dynamic", chunksize=1
    ):
        first = starts[t]
        for i in range(m):
            y_row = &Y[i, 0]
            for p in range(tile_indptr[t, i], tile_indptr[t, i + 1]):
                value = tile_data[p]
                out_row = &out_view[first + tile_indices[p], 0]
                for c in range(b):
                    out_row[c] += value * y_row[c]
    return out


cdef inline void _gather_row(
    const floating* data,
    const int32_t* indices,
    intp_t start,
    intp_t stop,
    const floating* X,
    intp_t b,
    floating* out_row,
) noexcept nogil:
    """``out_row += sum_p data[p] X[indices[p]]`` over ``p in [start, stop)``.

    Columns go in panels of ``_PANEL``, whose sums stay in registers for the
    whole row; the tail of fewer columns is added in memory.
    """
    cdef floating acc[_PANEL]
    cdef floating value
    cdef const floating* x_row
    cdef intp_t p, c, c0 = 0
    if start == stop:
        return
    while c0 + _PANEL <= b:
        for c in range(_PANEL):
            acc[c] = out_row[c0 + c]
        for p in range(start, stop):
            value = data[p]
            x_row = X + indices[p] * b + c0
            for c in range(_PANEL):
                acc[c] += value * x_row[c]
        for c in range(_PANEL):
            out_row[c0 + c] = acc[c]
        c0 += _PANEL
    if c0 < b:
        for p in range(start, stop):
            value = data[p]
            x_row = X + indices[p] * b
            for c in range(c0, b):
                out_row[c] += value * x_row[c]


cdef _check_tiles(
    const int64_t[:, ::1] tile_indptr,
    intp_t n_indices,
    intp_t n_data,
    const int64_t[::1] starts,
    int n_threads,
):
    """Checks shared by :func:`gather` and :func:`scatter`.

    The shapes and ``starts`` are checked; the other contents are trusted:
    they come from :func:`tile_csr`.
    """
    cdef intp_t n_tiles = tile_indptr.shape[0], t
    if n_threads < 1:
        raise ValueError(f"n_threads must be >= 1, got {n_threads}.")
    if tile_indptr.shape[1] < 1 or starts.shape[0] != n_tiles + 1:
        raise ValueError("tile_indptr and starts do not describe the same tiles.")
    if starts[0] != 0:
        raise ValueError("starts must increase from 0.")
    for t in range(n_tiles):
        if starts[t + 1] <= starts[t]:
            raise ValueError("starts must increase from 0.")
    if n_tiles and (
        tile_indptr[n_tiles - 1, tile_indptr.shape[1] - 1] != n_indices
        or n_indices != n_data
    ):
        raise ValueError("tile_indices and tile_data do not match tile_indptr.")
