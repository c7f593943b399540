"""Sparse (CSR) times dense products in column tiles, for the randomized SVD.

Implementation notes
--------------------
A product of a CSR matrix M (m x n) with a block of b dense columns is not
limited by its arithmetic but by memory latency: each stored value M_ij reads
the row j of the n x b operand, at random. When that array is larger than the
L2 cache, almost every such access misses.

Here the columns of M are split into tiles small enough that the slice of
the randomly accessed operand belonging to one tile stays in L2 (the caller
picks their number); the output, written in row order, is then streamed once
per tile instead of once. ``M^T @ Y`` is the same product with the tiles of
``M^T``, built from M's CSR arrays without a transposed copy of M: a gather
writes each output row once, in order, where updating the rows of ``M^T @ Y``
from the rows of M (a scatter) reads and writes them at random. Timings are in
``docs/svd.rst`` ("Benchmark").

* ``tile_csr`` copies M into tile-major order with a counting sort: tile t
  holds the columns ``[t w, (t + 1) w)`` (w = ceil(n / n_tiles)) as a CSR
  matrix with column indices relative to ``t w`` (int32), whose row pointers
  are ``tile_indptr[t]`` into arrays shared by all tiles. Row order and the
  order of the values within a row are kept. O(nnz + n_tiles m) time; nnz
  (4 + itemsize) + 8 n_tiles (m + 1) bytes, plus n_tiles m int64 scratch.
* ``tile_csr_transpose`` does the same for ``M^T`` (tiles of consecutive rows
  of M), one tile per thread at a time; the values of each row of ``M^T`` come
  in increasing row order of M. O(nnz + n_tiles n) time and nnz (4 +
  itemsize) + 8 n_tiles (n + 1) bytes, plus n_tiles n int64 scratch.
* ``chunk_rows``: bounds of one contiguous range of rows per thread, of
  about equal work (a row costs its values plus a visit per tile), computed
  once per tiling: the rows of ``M^T`` hold the columns of M, whose counts
  can differ by orders of magnitude (power-law features), so equal numbers of
  rows could leave one thread with most of the work.
* ``gather``: ``M @ X`` from the tiles of M. Each thread takes its range of
  rows (from ``chunk_rows``, or equal numbers of rows) through all tiles in
  order, with no barrier between tiles (smaller chunks would load each tile's
  slice of X into L2 once per chunk, docs/svd.rst). Each output row adds its
  tiles in order and, within a tile, its
  values in order, so the result is bitwise identical for any number of
  threads (and, for rows sorted by column, for any number of tiles). The sums
  of a row stay in registers, ``_WIDE_PANEL`` or ``_PANEL`` columns at a
  time, which is faster than accumulating them in the output row
  (docs/svd.rst).

All sums are accumulated in the working precision (float32 stays float32),
like BLAS and scipy: a float32 operator (float32 input, or the float32 copy
on which a float64 solve builds its Krylov basis) multiplies in float32.

``gather`` checks the shapes of the tiles, not their contents, which it
trusts to come from ``tile_csr`` or ``tile_csr_transpose``.
"""

import numpy as np

from cython cimport floating
from cython.parallel cimport prange

from fasttsne._cython._typedefs cimport index_t, int32_t, int64_t, intp_t

# Cost of a row's visit to one tile (its pointers, and its output row when the
# tile holds some of its values) in stored values, for chunk_rows: it balanced
# A^T @ Y on power-law columns, where 1 left the sparse rows' thread with
# nearly twice the work (docs/svd.rst, "Benchmark").
_VISIT_COST = 3

cdef enum:
    # Columns whose sums a gather keeps in registers at a time: a block of
    # _WIDE_PANEL columns reads each stored value and index once.
    _WIDE_PANEL = 16
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

    if n_cols < 1 or n_tiles < 1:
        raise ValueError(
            f"n_cols and n_tiles must be >= 1, got {n_cols} and {n_tiles}."
        )
    nnz = _check_csr(indptr, indices, data.shape[0], n_threads)
    width, n_out, tile_indptr, tile_indices, tile_data, starts = _empty_tiles(
        n_cols, n_tiles, m, nnz, np.asarray(data).dtype, "columns"
    )
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


def tile_csr_transpose(
    const index_t[::1] indptr,
    const index_t[::1] indices,
    const floating[::1] data,
    intp_t n_cols,
    intp_t n_tiles,
    int n_threads,
):
    """Split the transpose of a CSR matrix into tiles of consecutive columns.

    The tiles of ``M^T`` (n_cols x m) in the layout of :func:`tile_csr`, built
    from the CSR arrays of M without forming ``M^T``: the columns of ``M^T`` are
    the rows of M, so tile t holds the rows ``[t w, (t + 1) w)`` of M (w =
    ceil(m / n_tiles)). :func:`gather` with these tiles computes ``M^T @ Y``;
    each row of ``M^T`` holds its values in increasing row order of M, so
    the sums do not depend on the tiling or on the order of the values within
    M's rows.

    Parameters
    ----------
    indptr, indices, data : ndarray
        The CSR arrays of M (m x n_cols), m >= 1, as for :func:`tile_csr`.
        Rows need not be sorted.
    n_cols : int
        Number of columns of M, >= 1.
    n_tiles : int
        Requested number of tiles, >= 1; there may be fewer.
    n_threads : int
        Number of OpenMP threads, >= 1 (one tile each at a time). The result
        does not depend on it.

    Returns
    -------
    tile_indptr, tile_indices, tile_data, starts : ndarray
        As for :func:`tile_csr`, of ``M^T``: ``tile_indptr`` has shape
        (n_tiles_out, n_cols + 1), ``starts`` ends with m.

    Notes
    -----
    Besides its result, the placement takes a cursor per (tile, column of M):
    an int64 scratch array of shape (n_tiles_out, n_cols).
    """
    cdef intp_t m = indptr.shape[0] - 1
    cdef intp_t nnz, width, n_out, t, i, p, q, running, first, last
    cdef int64_t j
    cdef intp_t n_bad = 0

    if n_cols < 1 or n_tiles < 1:
        raise ValueError(
            f"n_cols and n_tiles must be >= 1, got {n_cols} and {n_tiles}."
        )
    if m < 1:
        raise ValueError("indptr must have m + 1 >= 2 entries: M needs a row.")
    nnz = _check_csr(indptr, indices, data.shape[0], n_threads)
    width, n_out, tile_indptr, tile_indices, tile_data, starts = _empty_tiles(
        m, n_tiles, n_cols, nnz, np.asarray(data).dtype, "rows"
    )
    cdef int64_t[:, ::1] ptr = tile_indptr
    cdef int32_t[::1] out_indices = tile_indices
    cdef floating[::1] out_data = tile_data

    # Count the values of each (tile, column of M) in ptr[t, j + 1]; a tile's
    # rows of M touch only its own row of ptr, so tiles run in parallel.
    for t in prange(n_out, nogil=True, num_threads=n_threads, schedule="static"):
        first = t * width
        last = min(first + width, m)
        for i in range(first, last):
            for p in range(indptr[i], indptr[i + 1]):
                j = indices[p]
                if j < 0 or j >= n_cols:
                    n_bad += 1
                else:
                    ptr[t, j + 1] += 1
    if n_bad:
        raise ValueError(f"Column indices must lie in [0, {n_cols}).")
    with nogil:
        running = 0
        for t in range(n_out):
            ptr[t, 0] = running
            for i in range(n_cols):
                running = running + ptr[t, i + 1]
                ptr[t, i + 1] = running
    # ptr[t, j] is where row j of tile t starts: a cursor for the placement,
    # which visits the rows of M in increasing order.
    cursor = tile_indptr[:, :n_cols].copy()
    cdef int64_t[:, ::1] cur = cursor
    for t in prange(n_out, nogil=True, num_threads=n_threads, schedule="static"):
        first = t * width
        last = min(first + width, m)
        for i in range(first, last):
            for p in range(indptr[i], indptr[i + 1]):
                j = indices[p]
                q = cur[t, j]
                cur[t, j] = q + 1
                out_indices[q] = <int32_t>(i - first)
                out_data[q] = data[p]
    return tile_indptr, tile_indices, tile_data, starts


def chunk_rows(const int64_t[:, ::1] tile_indptr, intp_t n_chunks):
    """Bounds of ``n_chunks`` ranges of consecutive rows of about equal work.

    A row of M costs its values plus ``_VISIT_COST`` per tile (:func:`gather`
    looks up its pointers in every tile, even an empty one). Chunk k holds the rows
    ``[bounds[k], bounds[k + 1])``, whose cost is at most the total over
    ``n_chunks`` plus that of one row.

    Parameters
    ----------
    tile_indptr : ndarray of shape (n_tiles, m + 1), int64
        Row pointers of the tiles of M, from :func:`tile_csr` or
        :func:`tile_csr_transpose`.
    n_chunks : int
        Number of ranges, >= 1: the number of threads of the gathers.

    Returns
    -------
    bounds : ndarray of shape (n_chunks + 1,), int64
        Non-decreasing, from 0 to m; a range may be empty.
    """
    if n_chunks < 1:
        raise ValueError(f"n_chunks must be >= 1, got {n_chunks}.")
    ptr = np.asarray(tile_indptr)
    n_tiles, m = ptr.shape[0], ptr.shape[1] - 1
    # work[i]: cost of the rows [0, i), increasing for n_tiles >= 1; a bound is
    # the first row boundary at or past its share of the total.
    work = ptr.sum(axis=0) - ptr[:, 0].sum() + _VISIT_COST * n_tiles * np.arange(
        m + 1
    )
    targets = np.arange(n_chunks + 1, dtype=np.int64) * work[m] // n_chunks
    bounds = np.searchsorted(work, targets, side="left").astype(np.int64)
    bounds[n_chunks] = m
    return bounds


def gather(
    const int64_t[:, ::1] tile_indptr,
    const int32_t[::1] tile_indices,
    const floating[::1] tile_data,
    const int64_t[::1] starts,
    const floating[:, ::1] X,
    int n_threads,
    const int64_t[::1] chunks=None,
):
    """``M @ X`` for a matrix M split by :func:`tile_csr`.

    Parameters
    ----------
    tile_indptr, tile_indices, tile_data, starts : ndarray
        The tiles of M (m x n), as returned by :func:`tile_csr` (or of a
        transpose, by :func:`tile_csr_transpose`).
    X : ndarray of shape (n, b), C-contiguous, of the dtype of ``tile_data``
    n_threads : int
        Number of OpenMP threads, >= 1. The result does not depend on it.
    chunks : ndarray of shape (n_chunks + 1,), int64, optional
        Bounds of the ranges of rows that the threads take, one range each at
        a time, as returned by :func:`chunk_rows`: non-decreasing from 0 to m.
        By default ``min(n_threads, m)`` ranges of equal numbers of rows. The
        result does not depend on them.

    Returns
    -------
    out : ndarray of shape (m, b)
    """
    cdef intp_t n_tiles = tile_indptr.shape[0], m = tile_indptr.shape[1] - 1
    cdef intp_t b = X.shape[1], t, i, first, chunk, lo, hi
    # One range of rows per thread, each through all tiles: no barrier between
    # tiles, so a thread that the machine delays holds up no other.
    cdef intp_t n_chunks = n_threads
    cdef const int64_t[::1] bounds

    _check_tiles(tile_indptr, tile_indices.shape[0], tile_data.shape[0], starts,
                 n_threads)
    if X.shape[0] != starts[n_tiles]:
        raise ValueError(f"X must have {starts[n_tiles]} rows, got {X.shape[0]}.")
    if chunks is None:
        n_chunks = max(1, min(n_chunks, m))
        bounds = np.arange(n_chunks + 1, dtype=np.int64) * m // n_chunks
    else:
        _check_chunks(chunks, m)
        bounds = chunks
        n_chunks = chunks.shape[0] - 1
    out = np.zeros((m, b), dtype=np.asarray(tile_data).dtype)
    cdef floating[:, ::1] out_view = out
    if b == 0 or tile_data.shape[0] == 0:
        return out
    for chunk in prange(
        n_chunks, nogil=True, num_threads=n_threads, schedule="static", chunksize=1
    ):
        lo = bounds[chunk]
        hi = bounds[chunk + 1]
        for t in range(n_tiles):
            first = starts[t]
            for i in range(lo, hi):
                _gather_row(
                    &tile_data[0], &tile_indices[0], tile_indptr[t, i],
                    tile_indptr[t, i + 1], &X[first, 0], b, &out_view[i, 0],
                )
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

    Columns go in panels of ``_WIDE_PANEL``, then ``_PANEL``, whose sums stay
    in registers for the whole row; the tail of fewer columns is added in
    memory. Every column adds its terms in the order of ``p`` whatever the
    panels.
    """
    cdef floating value
    cdef const floating* x_row
    cdef intp_t p, c, c0 = 0
    if start == stop:
        return
    while c0 + _WIDE_PANEL <= b:
        _gather_panel(data, indices, start, stop, X + c0, b, _WIDE_PANEL,
                      out_row + c0)
        c0 += _WIDE_PANEL
    if c0 + _PANEL <= b:
        _gather_panel(data, indices, start, stop, X + c0, b, _PANEL, out_row + c0)
        c0 += _PANEL
    if c0 < b:
        for p in range(start, stop):
            value = data[p]
            x_row = X + indices[p] * b
            for c in range(c0, b):
                out_row[c] += value * x_row[c]


cdef inline void _gather_panel(
    const floating* data,
    const int32_t* indices,
    intp_t start,
    intp_t stop,
    const floating* X,
    intp_t b,
    intp_t width,
    floating* out_row,
) noexcept nogil:
    """:func:`_gather_row` on ``width <= _WIDE_PANEL`` columns kept in registers.

    Called with a constant ``width``, which the compiler propagates.
    """
    cdef floating acc[_WIDE_PANEL]
    cdef floating value
    cdef const floating* x_row
    cdef intp_t p, c
    for c in range(width):
        acc[c] = out_row[c]
    for p in range(start, stop):
        value = data[p]
        x_row = X + indices[p] * b
        for c in range(width):
            acc[c] += value * x_row[c]
    for c in range(width):
        out_row[c] = acc[c]


cdef tuple _empty_tiles(
    intp_t extent, intp_t n_tiles, intp_t n_lines, intp_t nnz, dtype, str unit
):
    """Layout and empty arrays of tiles that split ``extent`` columns (or rows).

    Returns ``(width, n_out, tile_indptr, tile_indices, tile_data, starts)``
    for tiles of ``ceil(extent / n_tiles)`` ``unit`` each, over ``n_lines``
    lines of pointers; the tiling functions fill the arrays.
    """
    width = (extent + n_tiles - 1) // n_tiles
    if width > np.iinfo(np.int32).max:
        raise ValueError(f"A tile of {width} {unit} overflows int32 indices.")
    n_out = (extent + width - 1) // width
    return (
        width,
        n_out,
        np.zeros((n_out, n_lines + 1), dtype=np.int64),
        np.empty(nnz, dtype=np.int32),
        np.empty(nnz, dtype=dtype),
        np.minimum(np.arange(n_out + 1, dtype=np.int64) * width, extent),
    )


cdef intp_t _check_csr(
    const index_t[::1] indptr,
    const index_t[::1] indices,
    intp_t n_data,
    int n_threads,
) except -1:
    """Checks of the CSR arrays shared by the tilings; returns nnz.

    The column indices are checked where the tilings read them.
    """
    cdef intp_t m = indptr.shape[0] - 1, i, nnz
    cdef intp_t n_bad = 0
    if n_threads < 1:
        raise ValueError(f"n_threads must be >= 1, got {n_threads}.")
    if m < 0 or indptr[0] != 0:
        raise ValueError("indptr must have m + 1 >= 1 entries, starting at 0.")
    nnz = indptr[m]
    if indices.shape[0] != nnz or n_data != nnz:
        raise ValueError(
            f"indices and data must have indptr[-1] = {nnz} entries, got "
            f"{indices.shape[0]} and {n_data}."
        )
    with nogil:
        for i in range(m):
            if indptr[i + 1] < indptr[i]:
                n_bad = n_bad + 1
    if n_bad:
        raise ValueError("indptr must be non-decreasing.")
    return nnz


cdef _check_chunks(const int64_t[::1] chunks, intp_t m):
    """Checks that ``chunks`` are bounds of ranges of the m rows, from 0 to m."""
    cdef intp_t k
    if chunks.shape[0] < 2 or chunks[0] != 0 or chunks[chunks.shape[0] - 1] != m:
        raise ValueError(f"chunks must be bounds of rows, from 0 to {m}.")
    for k in range(chunks.shape[0] - 1):
        if chunks[k + 1] < chunks[k]:
            raise ValueError("chunks must be non-decreasing.")


cdef _check_tiles(
    const int64_t[:, ::1] tile_indptr,
    intp_t n_indices,
    intp_t n_data,
    const int64_t[::1] starts,
    int n_threads,
):
    """Checks of the tiles that :func:`gather` takes.

    The shapes and ``starts`` are checked; the other contents are trusted:
    they come from :func:`tile_csr` or :func:`tile_csr_transpose`.
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
