"""Perplexity calibration and symmetrisation of the t-SNE affinities.

The module is one piece (past the usual ~700 lines) because its kernels hand
one pair of buffers from each to the next: the calibration writes P's rows
over the kNN distances, and the symmetrisation moves them into P in place.

Implementation notes
--------------------
``binary_search_perplexity``: conditional probabilities p_{j|i} from kNN
distances.

For every row i of an (n, k) matrix of distances d_ij to the k nearest
neighbours, find the precision beta_i > 0 of the Gaussian kernel
p_{j|i} = exp(-beta_i d_ij) / sum_l exp(-beta_i d_il) whose entropy
H_i = -sum_j p_{j|i} log p_{j|i} equals log(perplexity) (van der Maaten and
Hinton, 2008).

* Stability. The kernel is evaluated on the shifted distances
  s_ij = d_ij - min_l d_il >= 0, which leaves p_{j|i} unchanged but makes the
  largest weight exactly 1, so the normaliser is >= 1 and cannot underflow
  whatever the scale of the distances or the size of beta. Two degenerate
  cases are answered in closed form: a row whose distances are all equal
  (k == 1, or duplicates only) is uniform (any beta gives the same p), and a
  target below the entropy floor log(m) -- m the number of distances equal to
  the row minimum, e.g. m exact duplicates at distance 0 -- gets the limit
  beta -> inf, uniform over those m neighbours. A target at or above the
  entropy ceiling log(k) gets beta = 0 (uniform over all k).
* Root finding. H is strictly decreasing in beta in the remaining cases.
  Newton steps dH/dbeta = -beta Var_p(s) are kept inside a bracket
  [lo, hi] that every evaluation narrows; a step that leaves the bracket is
  replaced by doubling (no upper bound yet) or bisection. It stops when
  |H - log(perplexity)| <= tol (natural log, so the perplexity is hit to a
  relative 1e-9 or better at the default tol) or after max_iter evaluations.
  The iteration runs on s / mean(s) from beta = 1, so its steps do not
  depend on the units of the distances and no intermediate overflows.
* Complexity O(k) per evaluation and row, 5-8 evaluations for 99% of the rows
  of kNN distances of Gaussian clusters (perplexity 30, k = 90); all
  sums are accumulated in double whatever the input precision. The scaled
  distances are computed once per row, not once per evaluation.
* Several perplexities (multiscale affinities) give the mean of the
  calibrated rows, summed in the order of the perplexities.
* Memory. Each thread mallocs three rows of k doubles (scaled distances,
  weights, the mean over the perplexities); a row of the output is written
  once, at the end, so the output may be the float64 distances themselves
  (``out=distances``): a fit turns the kNN's distances into P's rows in place.
* Threads. Rows are independent and written to their own slots in a
  prange(schedule="guided") loop (iteration counts vary per row), so the
  result is bitwise identical for any number of threads.

``knn_rows_to_csr``: the (n, k) kNN rows of conditional probabilities, in
place, into the CSR matrix A that the symmetrisation takes.

* Optionally renumbers the points (row a becomes input row ``order[a]``,
  every column j becomes ``inverse[j]``): the columns in parallel, the rows by
  following the cycles of the permutation (serial; one spare row).
* Sorts each row by column (merge sort of 64-bit keys column << 32 | slot in
  a per-thread buffer), drops exact zeros (rows below their entropy floor),
  and packs the rows at the front of the buffers (serial, only when a zero
  was dropped). No array of the size of A is allocated.

``symmetrize``: A + A^T for the CSR matrix A of conditional probabilities
(sorted rows, no diagonal, values >= 0), without forming A^T, in three steps
that ``joint_probabilities`` runs on the kNN's own buffers (releasing A's
rows as they are copied) and ``symmetrize`` on a copy of A's values:

* ``symmetric_row_offsets``: for every entry a_ij with j > i, a binary search
  in the sorted row j (O(log k)) finds a_ji. A mutual pair gets its sum
  a_ij + a_ji in both slots, stored negated: the sign bit marks the pair as
  mutual until the last step. Each slot belongs to one pair, written by the
  thread of the pair's smaller row, and the searches read only the indices,
  so no value is read while written. Row i of the result holds len(row i) +
  (number of unmarked a_ji in other rows) entries; those counts are taken by
  chunks of target rows, each chunk scanning all of A's column indices.
* ``place_rows``: copies rows of A to the start of their rows in the result
  (by blocks of rows, in any order; rows in parallel). The result's values
  may be float32 (a fit's P): each value is then rounded once, as it is
  copied, and the next step moves float32 values only, so the float64
  values of the result never exist all at once.
* ``symmetric_fill``: appends, by chunks of target rows, the unmarked a_ji
  of other rows to row i (in increasing j: the chunk scans the rows in
  order, whatever the chunking), then restores the signs and merges each
  row's two sorted runs in place (a per-thread buffer of one row).
* Values: a_ij + a_ji for mutual pairs, a_ij alone otherwise: the same
  floating-point sums as scipy's ``A + A.T`` (a + 0.0 == a), so the result is
  bitwise symmetric and bitwise equal to it (to its float32 rounding, for a
  float32 result).
* Memory: O(n) counters besides the arrays of A and of the result.
* Threads. Every slot has one writer per step, and the reverse entries of a
  row arrive in the order of the scan: bitwise identical for any number of
  threads.
"""

import numpy as np

from cython cimport floating
from cython.parallel cimport parallel, prange
from libc.math cimport INFINITY, exp, fabs, log, signbit
from libc.stdint cimport uint64_t
from libc.stdlib cimport free, malloc
from libc.string cimport memcpy, memmove

from fasttsne._cython._typedefs cimport float64_t, index_t, intp_t, pvalue_t

# Rows sorted by insertion in runs of this length, then merged.
cdef enum:
    _RUN = 16


cdef double _evaluate(
    const double* s,
    intp_t k,
    double beta,
    double* weights,
    double* entropy,
    double* variance,
) noexcept nogil:
    """Store exp(-beta s_j) in ``weights``; return their sum; set H and Var_p(s).

    ``s`` holds the shifted distances divided by their mean, and ``beta`` is
    in the same units.
    """
    cdef intp_t j
    cdef double w
    cdef double sum_w = 0.0
    cdef double sum_ws = 0.0
    cdef double mean_s, dev, sum_wdev2 = 0.0
    for j in range(k):
        w = exp(-beta * s[j])
        weights[j] = w
        sum_w += w
        sum_ws += w * s[j]
    mean_s = sum_ws / sum_w
    for j in range(k):
        dev = s[j] - mean_s
        sum_wdev2 += weights[j] * dev * dev
    entropy[0] = log(sum_w) + beta * mean_s
    variance[0] = sum_wdev2 / sum_w
    return sum_w


cdef double _calibrate_row(
    const floating* dist,
    intp_t k,
    double log_perplexity,
    double tol,
    int max_iter,
    double* out,
    double* s,
) noexcept nogil:
    """Write p_{j|i} of one row into ``out``; return the precision beta.

    ``out`` and the scratch row ``s`` (k doubles each) must not overlap
    ``dist``, which is read until the end.
    """
    cdef intp_t j, n_min = 0
    cdef double dmin = INFINITY, dmax = -INFINITY, scale = 0.0
    cdef double beta = 1.0, lo = 0.0, hi = INFINITY, candidate
    cdef double sum_w, entropy = 0.0, variance = 0.0, gap

    for j in range(k):
        if dist[j] < dmin:
            dmin = dist[j]
        if dist[j] > dmax:
            dmax = dist[j]
    if dmax == dmin or log_perplexity >= log(<double>k):
        # All distances equal, or a target at or above the ceiling log(k):
        # the uniform distribution (beta = 0) is the answer.
        for j in range(k):
            out[j] = 1.0 / k
        return 0.0
    for j in range(k):
        if <double>dist[j] == dmin:
            n_min += 1
        # Mean shifted distance, summed as s_j / k so that it cannot overflow.
        scale += (<double>dist[j] - dmin) / k
    if log_perplexity <= log(<double>n_min):
        # Below the entropy floor (e.g. more exact duplicates than the
        # perplexity): the limit beta -> inf, uniform over the minima.
        for j in range(k):
            out[j] = (1.0 / n_min) if <double>dist[j] == dmin else 0.0
        return INFINITY

    # Iterate on beta * scale, starting at 1: the shifted, scaled distances
    # have mean 1 and are at most k, so nothing overflows and the number of
    # steps does not depend on the units of the distances.
    for j in range(k):
        s[j] = (<double>dist[j] - dmin) / scale
    for _ in range(max_iter):
        sum_w = _evaluate(s, k, beta, out, &entropy, &variance)
        gap = entropy - log_perplexity
        if fabs(gap) <= tol:
            break
        if gap > 0.0:
            lo = beta  # entropy too high: sharpen
        else:
            hi = beta
        # Newton step (dH/dbeta = -beta Var), kept strictly inside the bracket.
        candidate = beta + gap / (beta * variance) if variance > 0.0 else -1.0
        if not (lo < candidate < hi):
            candidate = 2.0 * beta if hi == INFINITY else 0.5 * (lo + hi)
        if candidate == beta:
            break  # the bracket cannot be narrowed in double precision
        beta = candidate
    else:
        sum_w = _evaluate(s, k, beta, out, &entropy, &variance)
    for j in range(k):
        out[j] /= sum_w
    return beta / scale


cdef double _calibrate_mean(
    const floating* dist,
    intp_t k,
    const double* log_perplexities,
    intp_t n_scales,
    double tol,
    int max_iter,
    double* work,
) noexcept nogil:
    """The mean over the perplexities of the calibrated row, into ``work[:k]``.

    ``work`` holds 3 k doubles (the mean, one calibrated row, the scaled
    distances). Returns the precision of the first perplexity.
    """
    cdef intp_t j, q
    cdef double* mean = work
    cdef double* row = work + k
    cdef double beta = _calibrate_row(
        dist, k, log_perplexities[0], tol, max_iter, mean, work + 2 * k
    )
    if n_scales == 1:
        return beta
    for q in range(1, n_scales):
        _calibrate_row(dist, k, log_perplexities[q], tol, max_iter, row, work + 2 * k)
        for j in range(k):
            mean[j] += row[j]
    for j in range(k):
        mean[j] /= n_scales
    return beta


def binary_search_perplexity(
    const floating[:, ::1] distances,
    perplexity,
    int n_threads,
    *,
    double tol=1e-9,
    int max_iter=200,
    bint return_beta=False,
    out=None,
):
    """Conditional probabilities p_{j|i} calibrated to a perplexity, row by row.

    Parameters
    ----------
    distances : ndarray of shape (n_samples, n_neighbors), float32 or float64
        Non-negative, finite distances of each point to its neighbours (squared
        euclidean distances for the euclidean metric), C-contiguous.
    perplexity : float or sequence of float
        Target perplexity exp(H) of every row, > 0. Several perplexities give
        the mean of the rows calibrated to each (multiscale affinities).
    n_threads : int
        Number of OpenMP threads, >= 1. The result does not depend on it.
    tol : float, default=1e-9
        Stop when the entropy (natural log) is within ``tol`` of
        ``log(perplexity)``.
    max_iter : int, default=200
        Maximum number of entropy evaluations per row.
    return_beta : bool, default=False
        Also return the precisions beta_i (0 for a uniform row, inf for a row
        whose target is below its entropy floor); one perplexity only.
    out : ndarray of shape (n_samples, n_neighbors), float64, default=None
        Where to write P; it may be ``distances`` itself (float64), which is
        then overwritten, but no other array that shares its memory.

    Returns
    -------
    P : ndarray of shape (n_samples, n_neighbors), float64
        Rows sum to 1 (``out`` when given).
    beta : ndarray of shape (n_samples,), float64
        Only when ``return_beta`` is true.
    """
    cdef intp_t n = distances.shape[0]
    cdef intp_t k = distances.shape[1]
    cdef intp_t i, j
    cdef bint bad = False
    cdef double* work = NULL
    cdef intp_t n_scales

    scales = np.atleast_1d(np.asarray(perplexity, dtype=np.float64))
    if scales.ndim != 1 or scales.shape[0] == 0:
        raise ValueError("perplexity must be a number or a sequence of numbers.")
    for value in scales:
        if not value > 0.0:
            raise ValueError(f"perplexity must be > 0, got {value}.")
    if return_beta and scales.shape[0] > 1:
        raise ValueError("return_beta needs a single perplexity.")
    if n_threads < 1:
        raise ValueError(f"n_threads must be >= 1, got {n_threads}.")
    if not tol > 0.0:
        raise ValueError(f"tol must be > 0, got {tol}.")
    if max_iter < 1:
        raise ValueError(f"max_iter must be >= 1, got {max_iter}.")
    if n > 0 and k < 1:
        raise ValueError("distances must have at least one column.")
    if out is None:
        out = np.empty((n, k), dtype=np.float64)
    elif not (
        isinstance(out, np.ndarray)
        and out.dtype == np.float64
        and out.shape == (n, k)
        and out.flags.c_contiguous
        and out.flags.writeable
    ):
        raise ValueError(
            f"out must be a writeable, C-contiguous float64 array of shape "
            f"{(n, k)}."
        )
    elif np.may_share_memory(out, np.asarray(distances)) and not (
        floating is double and out.ctypes.data == np.asarray(distances).ctypes.data
    ):
        raise ValueError("out may share memory with distances only by being it.")
    with nogil:
        for i in range(n):
            for j in range(k):
                # NaN fails the first test.
                if not (distances[i, j] >= 0) or distances[i, j] == INFINITY:
                    bad = True
    if bad:
        raise ValueError("distances must be finite and non-negative.")

    log_scales = np.log(scales)
    n_scales = log_scales.shape[0]
    betas = np.empty(n, dtype=np.float64)
    cdef const double[::1] log_view = log_scales
    cdef float64_t[:, ::1] P_view = out
    cdef float64_t[::1] beta_view = betas
    if n == 0:
        return (out, betas) if return_beta else out
    with nogil, parallel(num_threads=n_threads):
        work = <double*>malloc(3 * k * sizeof(double))
        if work == NULL:
            with gil:
                raise MemoryError()
        for i in prange(n, schedule="guided"):
            beta_view[i] = _calibrate_mean(
                &distances[i, 0], k, &log_view[0], n_scales, tol, max_iter, work
            )
            # The row is written last: it may be the row of distances read.
            memcpy(&P_view[i, 0], work, k * sizeof(double))
        free(work)
    if return_beta:
        return out, betas
    return out


# ---------------------------------------------------------------------------
# kNN rows -> CSR


cdef inline void _insertion_sort(uint64_t* a, intp_t n) noexcept nogil:
    """Sort ``a[:n]`` in place (short runs)."""
    cdef intp_t i, j
    cdef uint64_t key
    for i in range(1, n):
        key = a[i]
        j = i - 1
        while j >= 0 and a[j] > key:
            a[j + 1] = a[j]
            j -= 1
        a[j + 1] = key


cdef void _sort_keys(uint64_t* a, uint64_t* tmp, intp_t n) noexcept nogil:
    """Sort ``a[:n]`` in place: runs of _RUN by insertion, then merged pairwise.

    ``tmp`` holds n keys; the merges alternate between ``a`` and ``tmp``.
    """
    cdef intp_t start, width, lo, mid, hi, p, q, r
    cdef uint64_t* src = a
    cdef uint64_t* dst = tmp
    cdef uint64_t* swap
    start = 0
    while start < n:
        _insertion_sort(a + start, min(<intp_t>_RUN, n - start))
        start += _RUN
    width = _RUN
    while width < n:
        lo = 0
        while lo < n:
            mid = min(lo + width, n)
            hi = min(lo + 2 * width, n)
            p = lo
            q = mid
            r = lo
            while p < mid and q < hi:
                if src[p] <= src[q]:
                    dst[r] = src[p]
                    p += 1
                else:
                    dst[r] = src[q]
                    q += 1
                r += 1
            while p < mid:
                dst[r] = src[p]
                p += 1
                r += 1
            while q < hi:
                dst[r] = src[q]
                q += 1
                r += 1
            lo = hi
        swap = src
        src = dst
        dst = swap
        width *= 2
    if src != a:
        memcpy(a, src, n * sizeof(uint64_t))


cdef intp_t _sort_row(
    float64_t* values,
    index_t* columns,
    intp_t k,
    uint64_t* keys,
    uint64_t* tmp,
    float64_t* held,
) noexcept nogil:
    """Sort one row by column and drop its exact zeros; return its length.

    ``keys``, ``tmp`` and ``held`` are scratch rows of k entries. Columns are
    unique within a row, so the order is unique.
    """
    cdef intp_t t, m = 0
    cdef uint64_t slot
    for t in range(k):
        keys[t] = ((<uint64_t>columns[t]) << 32) | <uint64_t>t
        held[t] = values[t]
    _sort_keys(keys, tmp, k)
    for t in range(k):
        slot = keys[t] & 0xFFFFFFFFu
        if held[slot] != 0.0:
            values[m] = held[slot]
            columns[m] = <index_t>(keys[t] >> 32)
            m += 1
    return m


cdef void _permute_rows(
    float64_t* values,
    index_t* columns,
    intp_t n,
    intp_t k,
    const intp_t* order,
    unsigned char* done,
    float64_t* spare_values,
    index_t* spare_columns,
) noexcept nogil:
    """Row a <- row order[a] for every a, in place, cycle by cycle."""
    cdef intp_t first, current, source
    cdef size_t value_bytes = k * sizeof(float64_t)
    cdef size_t column_bytes = k * sizeof(index_t)
    for first in range(n):
        if done[first] or order[first] == first:
            continue
        memcpy(spare_values, &values[first * k], value_bytes)
        memcpy(spare_columns, &columns[first * k], column_bytes)
        current = first
        while True:
            done[current] = 1
            source = order[current]
            if source == first:
                memcpy(&values[current * k], spare_values, value_bytes)
                memcpy(&columns[current * k], spare_columns, column_bytes)
                break
            memcpy(&values[current * k], &values[source * k], value_bytes)
            memcpy(&columns[current * k], &columns[source * k], column_bytes)
            current = source


def knn_rows_to_csr(
    float64_t[:, ::1] values,
    index_t[:, ::1] columns,
    order,
    int n_threads,
):
    """The kNN rows as the CSR matrix A of ``symmetrize``, in place.

    Parameters
    ----------
    values : ndarray of shape (n_samples, n_neighbors), float64
        Conditional probabilities of each point over its neighbours;
        overwritten.
    columns : ndarray of shape (n_samples, n_neighbors), int32 or int64
        The neighbours of each point, in ``[0, n_samples)``, distinct within
        a row; overwritten.
    order : ndarray of shape (n_samples,), intp, or None
        Number the points anew: row ``a`` of A is the point ``order[a]`` and
        its columns follow (a permutation of the points). None keeps them.
    n_threads : int
        Number of OpenMP threads, >= 1. The result does not depend on it.

    Returns
    -------
    indptr : ndarray of shape (n_samples + 1,), the dtype of ``columns``
        A's rows lie at ``values.ravel()[indptr[i]:indptr[i + 1]]`` (and
        likewise in ``columns``): sorted by column, exact zeros dropped, packed
        at the front of the buffers.
    """
    cdef intp_t n = values.shape[0]
    cdef intp_t k = values.shape[1]
    cdef intp_t i, t, position, length
    cdef bint bad = False, packed = True
    cdef float64_t* value_ptr = NULL
    cdef index_t* column_ptr = NULL
    cdef uint64_t* keys = NULL
    cdef float64_t* held = NULL
    cdef const intp_t[::1] order_view
    cdef index_t[::1] inverse_view
    cdef unsigned char[::1] done_view
    cdef float64_t[::1] spare_value_view
    cdef index_t[::1] spare_column_view

    if n_threads < 1:
        raise ValueError(f"n_threads must be >= 1, got {n_threads}.")
    if columns.shape[0] != n or columns.shape[1] != k:
        raise ValueError(
            f"values and columns must have one shape, got {(n, k)} and "
            f"{(columns.shape[0], columns.shape[1])}."
        )
    if n >= (<intp_t>1 << 32):
        raise ValueError("At most 2**32 - 1 points can be sorted here.")
    index_dtype = np.asarray(columns).dtype
    if n * k > np.iinfo(index_dtype).max:
        raise OverflowError(
            f"{n * k} entries do not fit the {index_dtype} offsets of the rows."
        )
    indptr = np.zeros(n + 1, dtype=index_dtype)
    if n == 0 or k == 0:
        return indptr
    value_ptr = &values[0, 0]
    column_ptr = &columns[0, 0]
    with nogil:
        for i in range(n * k):
            if column_ptr[i] < 0 or column_ptr[i] >= n:
                bad = True
    if bad:
        raise ValueError(f"The neighbours' indices must lie in [0, {n}).")
    if order is not None:
        order = np.asarray(order)
        if order.dtype != np.intp or order.shape != (n,):
            raise ValueError(f"order must be an intp array of shape {(n,)}.")
        inverse = np.full(n, -1, dtype=index_dtype)
        inverse[order] = np.arange(n, dtype=index_dtype)
        if np.any(inverse < 0):
            raise ValueError("order must be a permutation of the points.")
        order_view = order
        inverse_view = inverse
        for i in prange(n, nogil=True, schedule="static", num_threads=n_threads):
            for t in range(k):
                column_ptr[i * k + t] = inverse_view[column_ptr[i * k + t]]
        done_view = np.zeros(n, dtype=np.uint8)
        spare_value_view = np.empty(k, dtype=np.float64)
        spare_column_view = np.empty(k, dtype=index_dtype)
        with nogil:
            _permute_rows(
                value_ptr, column_ptr, n, k, &order_view[0], &done_view[0],
                &spare_value_view[0], &spare_column_view[0],
            )
    lengths = np.empty(n, dtype=np.intp)
    cdef intp_t[::1] length_view = lengths
    with nogil, parallel(num_threads=n_threads):
        keys = <uint64_t*>malloc(2 * k * sizeof(uint64_t))
        held = <float64_t*>malloc(k * sizeof(float64_t))
        if keys == NULL or held == NULL:
            with gil:
                raise MemoryError()
        for i in prange(n, schedule="static"):
            length_view[i] = _sort_row(
                &value_ptr[i * k], &column_ptr[i * k], k, keys, keys + k, held
            )
        free(keys)
        free(held)
    with nogil:
        for i in range(n):
            if length_view[i] != k:
                packed = False
                break
    if not packed:
        # Rows below their entropy floor lost their zeros: close the gaps
        # (moves go to lower addresses, so rows not yet moved stay intact).
        with nogil:
            position = 0
            for i in range(n):
                length = length_view[i]
                memmove(
                    &value_ptr[position], &value_ptr[i * k],
                    length * sizeof(float64_t),
                )
                memmove(
                    &column_ptr[position], &column_ptr[i * k],
                    length * sizeof(index_t),
                )
                position += length
    np.cumsum(lengths, out=lengths)
    indptr[1:] = lengths
    return indptr


# ---------------------------------------------------------------------------
# A + A^T


cdef inline intp_t _find(
    const index_t* row, intp_t length, intp_t value
) noexcept nogil:
    """Position of ``value`` in the sorted ``row``, or -1."""
    cdef intp_t lo = 0, hi = length, mid
    while lo < hi:
        mid = (lo + hi) >> 1
        if row[mid] < value:
            lo = mid + 1
        else:
            hi = mid
    if lo < length and row[lo] == value:
        return lo
    return -1


cdef void _count_reverse(
    const float64_t* data,
    const index_t* indices,
    const index_t* indptr,
    intp_t n,
    intp_t row_start,
    intp_t row_stop,
    intp_t* counts,
) noexcept nogil:
    """Add to ``counts[i]``, i in [row_start, row_stop), the unmarked a_ji."""
    cdef intp_t i, j, p
    for j in range(n):
        for p in range(indptr[j], indptr[j + 1]):
            i = indices[p]
            if row_start <= i < row_stop and not signbit(data[p]):
                counts[i] += 1


def symmetric_row_offsets(
    float64_t[::1] data,
    const index_t[::1] indices,
    const index_t[::1] indptr,
    int n_threads,
):
    """First step of A + A^T: sum and mark the mutual pairs of A, in place.

    Parameters
    ----------
    data : ndarray of shape (>= nnz,), float64
        A's values (at least ``indptr[-1]`` of them, >= 0); a mutual pair's
        two values are replaced by their sum, negated (see the module's
        notes). Entries past ``indptr[-1]`` are not touched.
    indices : ndarray of shape (>= nnz,), int32 or int64
        A's column indices, sorted and unique within each row, in
        ``[0, n)``, none on the diagonal.
    indptr : ndarray of shape (n + 1,), the dtype of ``indices``
        A's row offsets, from 0, non-decreasing.
    n_threads : int
        Number of OpenMP threads, >= 1. The result does not depend on it.

    Returns
    -------
    out_indptr : ndarray of shape (n + 1,), the dtype of ``indices``
        The row offsets of A + A^T.

    Raises
    ------
    ValueError
        For a malformed A, naming the problem.
    OverflowError
        When A + A^T has more entries than the index dtype holds.
    """
    cdef intp_t n = indptr.shape[0] - 1
    cdef intp_t nnz, i, j, p, q, c, n_chunks, lo, hi
    cdef bint bad = False
    cdef int problem
    cdef double total
    index_dtype = np.asarray(indptr).dtype

    if n_threads < 1:
        raise ValueError(f"n_threads must be >= 1, got {n_threads}.")
    if n < 0 or indptr[0] != 0:
        raise ValueError("indptr must have n + 1 >= 1 entries, starting at 0.")
    with nogil:
        for i in range(n):
            if indptr[i + 1] < indptr[i]:
                bad = True
    if bad:
        raise ValueError("indptr must be non-decreasing.")
    nnz = indptr[n]
    if indices.shape[0] < nnz or data.shape[0] < nnz:
        raise ValueError(
            f"indices and data must hold indptr[-1] = {nnz} entries, got "
            f"{indices.shape[0]} and {data.shape[0]}."
        )
    problems = np.zeros(max(n, 1), dtype=np.int8)
    cdef signed char[::1] problem_view = problems
    for i in prange(n, nogil=True, schedule="static", num_threads=n_threads):
        problem = 0
        for p in range(indptr[i], indptr[i + 1]):
            j = indices[p]
            if j < 0 or j >= n:
                problem = 1
            elif j == i:
                problem = 2
            elif p > indptr[i] and indices[p - 1] >= j:
                problem = 3
            elif not data[p] >= 0.0:
                problem = 4
            else:
                continue
            break
        problem_view[i] = problem
    problem = problems[np.flatnonzero(problems)[0]] if problems.any() else 0
    if problem == 1:
        raise ValueError(f"A's column indices must lie in [0, {n}).")
    if problem == 2:
        raise ValueError("A must have no stored diagonal entry.")
    if problem == 3:
        raise ValueError("A's rows must hold sorted, unique column indices.")
    if problem == 4:
        raise ValueError("A's values must be non-negative.")

    # Mutual pairs, from the smaller row: both slots get -(a_ij + a_ji).
    for i in prange(n, nogil=True, schedule="static", num_threads=n_threads):
        for p in range(indptr[i], indptr[i + 1]):
            j = indices[p]
            if j < i:
                continue
            q = _find(&indices[indptr[j]], indptr[j + 1] - indptr[j], i)
            if q >= 0:
                q = q + indptr[j]
                total = data[p] + data[q]
                data[p] = -total
                data[q] = -total

    counts = np.zeros(n + 1, dtype=np.intp)
    cdef intp_t[::1] count_view = counts
    for i in range(n):
        count_view[i + 1] = indptr[i + 1] - indptr[i]
    n_chunks = max(1, min(n_threads, n))
    if n > 0:
        for c in prange(n_chunks, nogil=True, schedule="static", num_threads=n_threads):
            lo = c * n // n_chunks
            hi = (c + 1) * n // n_chunks
            _count_reverse(
                &data[0], &indices[0], &indptr[0], n, lo, hi, &count_view[1]
            )
    np.cumsum(counts, out=counts)
    if counts[n] > np.iinfo(index_dtype).max:
        raise OverflowError(
            f"A + A^T has {counts[n]} entries, more than {index_dtype} indices "
            "hold."
        )
    return counts.astype(index_dtype)


cdef void _push_reverse(
    pvalue_t* data,
    index_t* indices,
    const index_t* indptr,
    const index_t* out_indptr,
    intp_t n,
    intp_t row_start,
    intp_t row_stop,
    intp_t* cursor,
) noexcept nogil:
    """Append the unmarked a_ji to rows i in [row_start, row_stop).

    Scans the rows of A (at their places in the result) in order, so every
    row receives them in increasing j. ``cursor[i]`` is the next free slot of
    row i.
    """
    cdef intp_t i, j, p, start
    for j in range(n):
        start = out_indptr[j]
        for p in range(start, start + indptr[j + 1] - indptr[j]):
            i = indices[p]
            if i < row_start or i >= row_stop or signbit(data[p]):
                continue
            indices[cursor[i]] = <index_t>j
            data[cursor[i]] = data[p]
            cursor[i] += 1


cdef void _merge_runs(
    index_t* indices,
    pvalue_t* data,
    intp_t start,
    intp_t middle,
    intp_t stop,
    index_t* buffer_index,
    pvalue_t* buffer_data,
) noexcept nogil:
    """Merge the sorted runs [start, middle) and [middle, stop) in place."""
    cdef intp_t p, a = middle - start, b = middle, q = start
    for p in range(a):
        buffer_index[p] = indices[start + p]
        buffer_data[p] = data[start + p]
    p = 0
    while p < a and b < stop:
        if buffer_index[p] < indices[b]:
            indices[q] = buffer_index[p]
            data[q] = buffer_data[p]
            p += 1
        else:
            indices[q] = indices[b]
            data[q] = data[b]
            b += 1
        q += 1
    while p < a:
        indices[q] = buffer_index[p]
        data[q] = buffer_data[p]
        p += 1
        q += 1


cdef int _push_and_merge(
    pvalue_t* data,
    index_t* indices,
    const index_t* indptr,
    const index_t* out_indptr,
    intp_t n,
    int n_threads,
) except -1:
    """Append the reverse entries of every row and merge its two runs.

    Row i of A is at the start of row i of the result (see :func:`place_rows`).
    """
    cdef intp_t i, c, lo, hi, start, middle, p, longest = 0
    cdef intp_t n_chunks = max(1, min(n_threads, n))
    cdef index_t* buffer_index = NULL
    cdef pvalue_t* buffer_data = NULL
    cursor = np.empty(n, dtype=np.intp)
    cdef intp_t[::1] cursor_view = cursor
    for i in range(n):
        cursor_view[i] = out_indptr[i] + indptr[i + 1] - indptr[i]
        longest = max(longest, indptr[i + 1] - indptr[i])
    for c in prange(n_chunks, nogil=True, schedule="static", num_threads=n_threads):
        lo = c * n // n_chunks
        hi = (c + 1) * n // n_chunks
        _push_reverse(
            data, indices, indptr, out_indptr, n, lo, hi, &cursor_view[0]
        )
    with nogil, parallel(num_threads=n_threads):
        buffer_index = <index_t*>malloc((longest + 1) * sizeof(index_t))
        buffer_data = <pvalue_t*>malloc((longest + 1) * sizeof(pvalue_t))
        if buffer_index == NULL or buffer_data == NULL:
            with gil:
                raise MemoryError()
        for i in prange(n, schedule="static"):
            start = out_indptr[i]
            middle = start + indptr[i + 1] - indptr[i]
            for p in range(start, middle):
                data[p] = fabs(data[p])  # a mutual pair's mark
            _merge_runs(
                indices, data, start, middle, out_indptr[i + 1], buffer_index,
                buffer_data,
            )
        free(buffer_index)
        free(buffer_data)
    return 0


def place_rows(
    const float64_t[::1] data,
    const index_t[::1] indices,
    const index_t[::1] indptr,
    const index_t[::1] out_indptr,
    pvalue_t[::1] out_data,
    index_t[::1] out_indices,
    intp_t row_start,
    intp_t row_stop,
    int n_threads,
):
    """Copy rows [row_start, row_stop) of A to the start of their rows in A + A^T.

    The step between :func:`symmetric_row_offsets` and
    :func:`symmetric_fill`; by blocks of rows, so that a caller can release
    the rows of A already copied.

    Parameters
    ----------
    data, indices : ndarray of shape (>= indptr[row_stop],)
        A, as marked by :func:`symmetric_row_offsets`.
    indptr, out_indptr : ndarray of shape (n + 1,)
        The row offsets of A and of A + A^T.
    out_data, out_indices : ndarray of shape (>= out_indptr[-1],)
        The arrays of A + A^T (not sharing memory with A's); ``out_data``
        float64, or float32 to receive each value rounded once (a fit's P).
    row_start, row_stop : int
        The rows to copy, ``0 <= row_start <= row_stop <= n``.
    n_threads : int
        Number of OpenMP threads, >= 1.
    """
    cdef intp_t n = indptr.shape[0] - 1
    cdef intp_t i, length, q
    if n_threads < 1:
        raise ValueError(f"n_threads must be >= 1, got {n_threads}.")
    if out_indptr.shape[0] != n + 1 or not 0 <= row_start <= row_stop <= n:
        raise ValueError("The rows and the offsets must match.")
    if row_start == row_stop:
        return
    if (
        data.shape[0] < indptr[row_stop]
        or indices.shape[0] < indptr[row_stop]
        or out_data.shape[0] < out_indptr[n]
        or out_indices.shape[0] < out_indptr[n]
    ):
        raise ValueError("The arrays are too short for the offsets.")
    for i in prange(
        row_start, row_stop, nogil=True, schedule="static", num_threads=n_threads
    ):
        length = indptr[i + 1] - indptr[i]
        if pvalue_t is float64_t:
            memcpy(
                &out_data[out_indptr[i]], &data[indptr[i]],
                length * sizeof(float64_t),
            )
        else:
            for q in range(length):
                out_data[out_indptr[i] + q] = <pvalue_t>data[indptr[i] + q]
        memcpy(
            &out_indices[out_indptr[i]], &indices[indptr[i]],
            length * sizeof(index_t),
        )


def symmetric_fill(
    pvalue_t[::1] data,
    index_t[::1] indices,
    const index_t[::1] indptr,
    const index_t[::1] out_indptr,
    int n_threads,
):
    """Last step of A + A^T: the reverse entries, then each row sorted.

    Parameters
    ----------
    data, indices : ndarray of shape (>= out_indptr[-1],)
        The arrays of A + A^T (values float32 or float64, as
        :func:`place_rows` wrote them), holding row i of A (marked by
        :func:`symmetric_row_offsets`) at ``out_indptr[i]``; they receive
        A + A^T.
    indptr : ndarray of shape (n + 1,)
        A's row offsets.
    out_indptr : ndarray of shape (n + 1,)
        The row offsets that :func:`symmetric_row_offsets` returned.
    n_threads : int
        Number of OpenMP threads, >= 1. The result does not depend on it.
    """
    cdef intp_t n = indptr.shape[0] - 1
    if n_threads < 1:
        raise ValueError(f"n_threads must be >= 1, got {n_threads}.")
    if out_indptr.shape[0] != n + 1:
        raise ValueError("indptr and out_indptr must have one length.")
    if n <= 0 or out_indptr[n] == 0:
        return
    if data.shape[0] < out_indptr[n] or indices.shape[0] < out_indptr[n]:
        raise ValueError(
            f"data and indices must have room for out_indptr[-1] = "
            f"{out_indptr[n]} entries."
        )
    _push_and_merge(
        &data[0], &indices[0], &indptr[0], &out_indptr[0], n, n_threads
    )


def symmetrize(
    const float64_t[::1] data,
    const index_t[::1] indices,
    const index_t[::1] indptr,
    int n_threads,
):
    """A + A^T for a square CSR matrix A with sorted rows and no diagonal.

    Parameters
    ----------
    data, indices, indptr : ndarray
        The CSR arrays of A, of shape (nnz,), (nnz,) and (n + 1,): float64
        values >= 0, int32 or int64 indices sorted and unique within each
        row, in ``[0, n)``, none on the diagonal. Stored zeros become entries
        of the result. They are not modified.
    n_threads : int
        Number of OpenMP threads, >= 1. The result does not depend on it.

    Returns
    -------
    data, indices, indptr : ndarray
        The CSR arrays of A + A^T, rows sorted, indices of A's dtype; the
        values are bitwise symmetric.
    """
    cdef intp_t n = indptr.shape[0] - 1
    if n >= 0 and (indices.shape[0] != indptr[n] or data.shape[0] != indptr[n]):
        raise ValueError(
            f"indices and data must have indptr[-1] = {indptr[n]} entries, got "
            f"{indices.shape[0]} and {data.shape[0]}."
        )
    marked = np.array(data, dtype=np.float64)
    out_indptr = symmetric_row_offsets(marked, indices, indptr, n_threads)
    total = int(out_indptr[n])
    out_data = np.empty(total, dtype=np.float64)
    out_indices = np.empty(total, dtype=np.asarray(indices).dtype)
    place_rows(
        marked, indices, indptr, out_indptr, out_data, out_indices, 0, n, n_threads
    )
    symmetric_fill(out_data, out_indices, indptr, out_indptr, n_threads)
    return out_data, out_indices, out_indptr
