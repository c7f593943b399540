"""Candidate neighbours for the exact euclidean search, ranked by BLAS.

:func:`ranked_candidates` streams reference rows past blocks of query rows:
one single-precision BLAS product per (query block, reference block) gives
``D'_ij = |y_j|^2 - 2 x_i.y_j``, and each query row keeps the ``n_keep``
smallest values it has seen, so memory is a few ``n_keep`` entries a row
whatever the number of references. The values are rounded: the
caller proves with its rounding bound that the kept entries hold every true
neighbour and recomputes their distances exactly (``_pruned.py``).

Implementation notes
--------------------
* Cost: one (256 x 1024 x n_features) single-precision product per block
  pair, then one pass over its values; the selection adds amortised O(1)
  per value below a row's threshold (about ``n_keep log(n_ref / n_keep)``
  values a row for references in random order).
* Memory: each thread owns its scratch (the query block, the product, and
  ``4 n_keep`` kept entries a query row), allocated per block of 256 query
  rows and freed before the next; a failed allocation raises MemoryError.
* Threads: blocks of query rows are independent (static schedule); every
  thread calls BLAS itself, so the caller limits BLAS to one thread. The
  values of a row may depend on the BLAS kernel's blocking, never on the
  thread count: the caller's proof makes the answer independent of both.
"""

import numpy as np

from cython.parallel cimport prange
from libc.math cimport INFINITY
from libc.stdlib cimport free, malloc
from libc.string cimport memcpy
from scipy.linalg.cython_blas cimport sgemm

from fasttsne._cython._typedefs cimport float32_t, intp_t


# Index of the lowest set bit of a nonzero mask (a loop where the compiler
# has no builtin).
cdef extern from *:
    """
    #if defined(__GNUC__) || defined(__clang__)
    #define fasttsne_lowest_bit(mask) __builtin_ctz(mask)
    #else
    static int fasttsne_lowest_bit(unsigned int mask)
    {
        int bit = 0;
        while (!(mask & 1u)) { mask >>= 1; ++bit; }
        return bit;
    }
    #endif
    """
    int fasttsne_lowest_bit(unsigned int mask) noexcept nogil

# A (query block x reference block) product of 256 x 1024 floats (1 MiB)
# stays in a core's L2 cache while its rows are scanned; 256 query rows
# share each packing of a reference block by BLAS.
cdef enum:
    QUERY_BLOCK = 256
    REFERENCE_BLOCK = 1024
    BUFFER_FACTOR = 4
    CHUNK = 16


cdef inline void _swap(
    float32_t *values, intp_t *columns, intp_t a, intp_t b
) noexcept nogil:
    """Exchange entries a and b of the parallel arrays."""
    cdef float32_t value = values[a]
    cdef intp_t column = columns[a]
    values[a] = values[b]
    columns[a] = columns[b]
    values[b] = value
    columns[b] = column


cdef float32_t _keep_smallest(
    float32_t *values, intp_t *columns, intp_t size, intp_t n_keep
) noexcept nogil:
    """Move the ``n_keep`` smallest of ``size`` entries to the front.

    Quickselect (Hoare partition around a median of three); returns the
    largest value kept, which no entry left behind is below.
    """
    cdef intp_t low = 0
    cdef intp_t high = size - 1
    cdef intp_t target = n_keep - 1
    cdef intp_t i, j, middle
    cdef float32_t pivot
    while high > low:
        middle = low + (high - low) // 2
        if values[middle] < values[low]:
            _swap(values, columns, middle, low)
        if values[high] < values[low]:
            _swap(values, columns, high, low)
        if values[high] < values[middle]:
            _swap(values, columns, high, middle)
        pivot = values[middle]
        i = low
        j = high
        while i <= j:
            while values[i] < pivot:
                i += 1
            while values[j] > pivot:
                j -= 1
            if i <= j:
                _swap(values, columns, i, j)
                i += 1
                j -= 1
        if target <= j:
            high = j
        elif target >= i:
            low = i
        else:
            break
    pivot = values[0]
    for i in range(1, n_keep):
        if values[i] > pivot:
            pivot = values[i]
    return pivot


cdef int _scan_block(
    const float32_t[:, ::1] points,
    const float32_t[::1] sq_norms,
    const intp_t[::1] query_rows,
    const intp_t[::1] range_starts,
    const intp_t[::1] range_stops,
    intp_t first,
    intp_t n_rows,
    intp_t n_keep,
    float32_t[:, ::1] out_values,
    intp_t[:, ::1] out_columns,
) noexcept nogil:
    """The ``n_keep`` smallest D' of query rows ``first .. first + n_rows``.

    Each row appends the values below its threshold to a buffer of
    ``BUFFER_FACTOR * n_keep`` entries; a full buffer keeps its ``n_keep``
    smallest, whose largest becomes the threshold (amortised O(1) an entry,
    where a heap would pay log(n_keep) for each of its many early entries).
    Returns -1 if its buffers cannot be allocated, 0 otherwise.
    """
    cdef int n_features = <int>points.shape[1]
    cdef intp_t capacity = BUFFER_FACTOR * n_keep
    cdef float32_t *block = <float32_t *>malloc(
        <size_t>QUERY_BLOCK * n_features * sizeof(float32_t)
    )
    cdef float32_t *product = <float32_t *>malloc(
        <size_t>QUERY_BLOCK * REFERENCE_BLOCK * sizeof(float32_t)
    )
    cdef float32_t *kept_values = <float32_t *>malloc(
        <size_t>(QUERY_BLOCK * capacity) * sizeof(float32_t)
    )
    cdef intp_t *kept_columns = <intp_t *>malloc(
        <size_t>(QUERY_BLOCK * capacity) * sizeof(intp_t)
    )
    cdef float32_t thresholds[QUERY_BLOCK]
    cdef intp_t counts[QUERY_BLOCK]
    cdef float32_t alpha = -2.0
    cdef float32_t beta = 0.0
    cdef float32_t top, value
    cdef float32_t *row
    cdef const float32_t *norms
    cdef unsigned int mask
    cdef intp_t c, chunk
    cdef float32_t *values
    cdef intp_t *columns
    if block == NULL or product == NULL or kept_values == NULL or kept_columns == NULL:
        free(block)
        free(product)
        free(kept_values)
        free(kept_columns)
        return -1
    cdef intp_t i, j, r, start, stop, self_row, count
    cdef int n_query = <int>n_rows
    cdef int n_ref
    for i in range(n_rows):
        memcpy(
            &block[i * n_features],
            &points[query_rows[first + i], 0],
            n_features * sizeof(float32_t),
        )
        thresholds[i] = INFINITY
        counts[i] = 0
    for r in range(range_starts.shape[0]):
        start = range_starts[r]
        while start < range_stops[r]:
            stop = min(start + REFERENCE_BLOCK, range_stops[r])
            n_ref = <int>(stop - start)
            # The row-major (n_query, n_ref) product seen column-major:
            # (reference rows, op "T") times the query block.
            sgemm(
                "T", "N", &n_ref, &n_query, &n_features, &alpha,
                <float32_t *>&points[start, 0], &n_features,
                block, &n_features, &beta, product, &n_ref,
            )
            for i in range(n_rows):
                row = &product[i * n_ref]
                norms = &sq_norms[start]
                self_row = query_rows[first + i] - start
                top = thresholds[i]
                count = counts[i]
                values = &kept_values[i * capacity]
                columns = &kept_columns[i * capacity]
                j = 0
                while j < n_ref:
                    # One bit per entry of a chunk below the threshold, found
                    # without branches: once the buffer has filled, most
                    # chunks have none, and the others visit only their hits.
                    chunk = min(CHUNK, n_ref - j)
                    mask = 0
                    for c in range(chunk):
                        mask = mask | (
                            <unsigned int>(row[j + c] + norms[j + c] < top) << c
                        )
                    while mask:
                        c = j + fasttsne_lowest_bit(mask)
                        mask = mask & (mask - 1)
                        value = row[c] + norms[c]
                        if value < top and c != self_row:
                            values[count] = value
                            columns[count] = start + c
                            count += 1
                            if count == capacity:
                                top = _keep_smallest(values, columns, count, n_keep)
                                count = n_keep
                    j += chunk
                thresholds[i] = top
                counts[i] = count
            start = stop
    for i in range(n_rows):
        values = &kept_values[i * capacity]
        columns = &kept_columns[i * capacity]
        count = counts[i]
        if count > n_keep:
            _keep_smallest(values, columns, count, n_keep)
            count = n_keep
        for j in range(n_keep):
            if j < count:
                out_values[first + i, j] = values[j]
                out_columns[first + i, j] = columns[j]
            else:
                out_values[first + i, j] = INFINITY
                out_columns[first + i, j] = -1
    free(block)
    free(product)
    free(kept_values)
    free(kept_columns)
    return 0


def ranked_candidates(
    const float32_t[:, ::1] points,
    const float32_t[::1] sq_norms,
    const intp_t[::1] query_rows,
    const intp_t[::1] range_starts,
    const intp_t[::1] range_stops,
    intp_t n_keep,
    int n_threads,
):
    """The ``n_keep`` smallest ranking values of each query among references.

    Parameters
    ----------
    points : float32 ndarray of shape (n_points, n_features), C-contiguous
        Rows of the data (centred and scaled by the caller); both the query
        rows and the reference rows are rows of it.
    sq_norms : float32 ndarray of shape (n_points,)
        ``|y|^2`` of every row of ``points``.
    query_rows : intp ndarray of shape (n_query,)
        Rows of ``points`` to query. A query row never counts itself.
    range_starts, range_stops : intp ndarray of shape (n_ranges,)
        The reference rows: ``range_starts[r] <= row < range_stops[r]``.
    n_keep : int
        Number of entries kept for each query row, at least 1.
    n_threads : int
        OpenMP threads over blocks of 256 query rows (static schedule).
        Call with BLAS limited
        to one thread.

    Returns
    -------
    values : float32 ndarray of shape (n_query, n_keep)
        The ``n_keep`` smallest ``|y|^2 - 2 x.y`` of each row, in no
        particular order; ``inf`` where fewer references exist.
    columns : intp ndarray of shape (n_query, n_keep)
        Their rows of ``points``, ``-1`` with ``inf``. Ties at the largest
        kept value are broken by the scan order.
    """
    if n_keep < 1:
        raise ValueError(f"n_keep must be at least 1, got {n_keep}.")
    if range_starts.shape[0] != range_stops.shape[0]:
        raise ValueError("range_starts and range_stops differ in length.")
    if sq_norms.shape[0] != points.shape[0]:
        raise ValueError("sq_norms needs one value per row of points.")
    if points.shape[1] < 1:
        raise ValueError("points needs at least one column.")
    cdef intp_t n_points = points.shape[0]
    cdef intp_t r
    for r in range(range_starts.shape[0]):
        if not 0 <= range_starts[r] <= range_stops[r] <= n_points:
            raise ValueError("a reference range lies outside points.")
    for r in range(query_rows.shape[0]):
        if not 0 <= query_rows[r] < n_points:
            raise ValueError("a query row lies outside points.")
    cdef intp_t n_query = query_rows.shape[0]
    values_array = np.empty((n_query, n_keep), dtype=np.float32)
    columns_array = np.empty((n_query, n_keep), dtype=np.intp)
    cdef float32_t[:, ::1] values = values_array
    cdef intp_t[:, ::1] columns = columns_array
    cdef intp_t n_blocks = (n_query + QUERY_BLOCK - 1) // QUERY_BLOCK
    cdef intp_t b
    if n_query == 0:
        return values_array, columns_array
    status_array = np.zeros(n_blocks, dtype=np.intc)
    cdef int[::1] status = status_array
    for b in prange(
        n_blocks, nogil=True, num_threads=max(1, n_threads), schedule="static"
    ):
        status[b] = _scan_block(
            points,
            sq_norms,
            query_rows,
            range_starts,
            range_stops,
            b * QUERY_BLOCK,
            min(QUERY_BLOCK, n_query - b * QUERY_BLOCK),
            n_keep,
            values,
            columns,
        )
    if status_array.min() < 0:
        raise MemoryError("ranked_candidates could not allocate its buffers.")
    return values_array, columns_array
