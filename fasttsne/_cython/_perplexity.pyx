"""Perplexity calibration and symmetrisation of the t-SNE affinities.

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
  sums are accumulated in double whatever the input precision.
* Memory. The def entry point allocates the (n, k) float64 output and the
  (n,) beta array; each row uses its own output row as scratch for the
  weights, so workers allocate nothing.
* Threads. Rows are independent and written to their own slots in a
  prange(schedule="guided") loop (iteration counts vary per row), so the
  result is bitwise identical for any number of threads.

``symmetrize``: A + A^T for the CSR matrix A of conditional probabilities
(sorted rows, no diagonal, no stored zeros), without forming A^T.

* Row i of the result is the union of row i of A and of the reverse entries
  {j : i in row j of A}. Its length is len(row i) + colcount(i) - m(i), where
  m(i) counts the j of row i whose row holds i; membership is a binary search
  in the sorted row j, O(log k).
* Values: a_ij + a_ji for the entries of A (a_ji = 0 when absent) and a_ji for
  the reverse-only entries: the same floating-point sums as scipy's
  ``A + A.T``, so the result is bitwise symmetric and bitwise equal to it.
* Memory: the output (its CSR arrays) plus O(n) counters and one merge buffer
  of the longest input row per chunk; A^T is never built. scipy's A + A.T
  holds a converted copy of A^T (12 bytes an entry) next to the output, which
  dominates a fit's peak memory at a million points (docs/user_guide.rst).
* Threads. The column counts are a serial pass; the row lengths and the A
  entries are computed per row (row-owned). Reverse-only entries are
  scattered by target-row chunks: chunk c owns a contiguous range of rows and
  scans every entry of A in order (so A is read once per chunk, n_threads
  times in all), so each row receives its reverse entries in increasing j
  whatever the chunking; each row's two sorted runs are then merged in place.
  Bitwise identical for any number of threads.
"""

import numpy as np

from cython cimport floating
from cython.parallel cimport prange
from libc.math cimport INFINITY, exp, fabs, log

from fasttsne._cython._typedefs cimport float64_t, index_t, intp_t


cdef double _evaluate(
    const floating* dist,
    intp_t k,
    double dmin,
    double scale,
    double beta,
    double* weights,
    double* entropy,
    double* variance,
) noexcept nogil:
    """Store exp(-beta s_j) in ``weights``; return their sum; set H and Var_p(s).

    ``s_j = (dist[j] - dmin) / scale`` and ``beta`` is in the same units.
    """
    cdef intp_t j
    cdef double s, w
    cdef double sum_w = 0.0
    cdef double sum_ws = 0.0
    cdef double mean_s, dev, sum_wdev2 = 0.0
    for j in range(k):
        s = (<double>dist[j] - dmin) / scale
        w = exp(-beta * s)
        weights[j] = w
        sum_w += w
        sum_ws += w * s
    mean_s = sum_ws / sum_w
    for j in range(k):
        dev = (<double>dist[j] - dmin) / scale - mean_s
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
) noexcept nogil:
    """Write p_{j|i} of one row into ``out``; return the precision beta."""
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
    for _ in range(max_iter):
        sum_w = _evaluate(dist, k, dmin, scale, beta, out, &entropy, &variance)
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
        sum_w = _evaluate(dist, k, dmin, scale, beta, out, &entropy, &variance)
    for j in range(k):
        out[j] /= sum_w
    return beta / scale


def binary_search_perplexity(
    const floating[:, ::1] distances,
    double perplexity,
    int n_threads,
    *,
    double tol=1e-9,
    int max_iter=200,
    bint return_beta=False,
):
    """Conditional probabilities p_{j|i} calibrated to a perplexity, row by row.

    Parameters
    ----------
    distances : ndarray of shape (n_samples, n_neighbors), float32 or float64
        Non-negative, finite distances of each point to its neighbours (squared
        euclidean distances for the euclidean metric), C-contiguous.
    perplexity : float
        Target perplexity exp(H) of every row, > 0.
    n_threads : int
        Number of OpenMP threads, >= 1. The result does not depend on it.
    tol : float, default=1e-9
        Stop when the entropy (natural log) is within ``tol`` of
        ``log(perplexity)``.
    max_iter : int, default=200
        Maximum number of entropy evaluations per row.
    return_beta : bool, default=False
        Also return the precisions beta_i (0 for a uniform row, inf for a row
        whose target is below its entropy floor).

    Returns
    -------
    P : ndarray of shape (n_samples, n_neighbors), float64
        Rows sum to 1.
    beta : ndarray of shape (n_samples,), float64
        Only when ``return_beta`` is true.
    """
    cdef intp_t n = distances.shape[0]
    cdef intp_t k = distances.shape[1]
    cdef intp_t i, j
    cdef bint bad = False
    cdef double log_perplexity

    if not perplexity > 0.0:
        raise ValueError(f"perplexity must be > 0, got {perplexity}.")
    if n_threads < 1:
        raise ValueError(f"n_threads must be >= 1, got {n_threads}.")
    if not tol > 0.0:
        raise ValueError(f"tol must be > 0, got {tol}.")
    if max_iter < 1:
        raise ValueError(f"max_iter must be >= 1, got {max_iter}.")
    if n > 0 and k < 1:
        raise ValueError("distances must have at least one column.")
    with nogil:
        for i in range(n):
            for j in range(k):
                # NaN fails the first test.
                if not (distances[i, j] >= 0) or distances[i, j] == INFINITY:
                    bad = True
    if bad:
        raise ValueError("distances must be finite and non-negative.")

    log_perplexity = log(perplexity)
    P = np.empty((n, k), dtype=np.float64)
    betas = np.empty(n, dtype=np.float64)
    cdef float64_t[:, ::1] P_view = P
    cdef float64_t[::1] beta_view = betas
    for i in prange(n, nogil=True, schedule="guided", num_threads=n_threads):
        beta_view[i] = _calibrate_row(
            &distances[i, 0], k, log_perplexity, tol, max_iter, &P_view[i, 0]
        )
    if return_beta:
        return P, betas
    return P


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


cdef void _own_entries(
    const float64_t[::1] data,
    const index_t[::1] indices,
    const index_t[::1] indptr,
    intp_t i,
    index_t[::1] out_indices,
    float64_t[::1] out_data,
    intp_t start,
) noexcept nogil:
    """Write a_ij + a_ji for the entries j of row i, from output slot ``start``."""
    cdef intp_t p, j, position
    cdef double reverse
    for p in range(indptr[i], indptr[i + 1]):
        j = indices[p]
        position = _find(&indices[indptr[j]], indptr[j + 1] - indptr[j], i)
        reverse = data[indptr[j] + position] if position >= 0 else 0.0
        out_indices[start] = j
        out_data[start] = data[p] + reverse
        start += 1


cdef void _reverse_entries(
    const float64_t[::1] data,
    const index_t[::1] indices,
    const index_t[::1] indptr,
    intp_t row_start,
    intp_t row_stop,
    index_t[::1] out_indices,
    float64_t[::1] out_data,
    intp_t* cursor,
) noexcept nogil:
    """Append a_ji to rows i in [row_start, row_stop) that lack entry j.

    Scans A in row order, so every row receives them in increasing j.
    ``cursor[i]`` is the next free output slot of row i.
    """
    cdef intp_t n = indptr.shape[0] - 1
    cdef intp_t i, j, p
    for j in range(n):
        for p in range(indptr[j], indptr[j + 1]):
            i = indices[p]
            if i < row_start or i >= row_stop:
                continue
            if _find(&indices[indptr[i]], indptr[i + 1] - indptr[i], j) >= 0:
                continue
            out_indices[cursor[i]] = j
            out_data[cursor[i]] = data[p]
            cursor[i] += 1


cdef void _merge_runs(
    index_t[::1] out_indices,
    float64_t[::1] out_data,
    intp_t start,
    intp_t middle,
    intp_t stop,
    index_t* buffer_index,
    float64_t* buffer_data,
) noexcept nogil:
    """Merge the sorted runs [start, middle) and [middle, stop) in place."""
    cdef intp_t p, a = middle - start, b = middle, q = start
    for p in range(a):
        buffer_index[p] = out_indices[start + p]
        buffer_data[p] = out_data[start + p]
    p = 0
    while p < a and b < stop:
        if buffer_index[p] < out_indices[b]:
            out_indices[q] = buffer_index[p]
            out_data[q] = buffer_data[p]
            p += 1
        else:
            out_indices[q] = out_indices[b]
            out_data[q] = out_data[b]
            b += 1
        q += 1
    while p < a:
        out_indices[q] = buffer_index[p]
        out_data[q] = buffer_data[p]
        p += 1
        q += 1


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
        values, int32 or int64 indices sorted and unique within each row,
        in ``[0, n)``, none on the diagonal. Stored zeros become entries of
        the result.
    n_threads : int
        Number of OpenMP threads, >= 1. The result does not depend on it.

    Returns
    -------
    data, indices, indptr : ndarray
        The CSR arrays of A + A^T, rows sorted, indices of A's dtype; the
        values are bitwise symmetric.
    """
    cdef intp_t n = indptr.shape[0] - 1
    cdef intp_t nnz, total, i, j, p, longest = 0, n_chunks, c, lo, hi, matches
    cdef bint bad = False
    cdef int problem = 0
    cdef intp_t* cursor = NULL
    index_dtype = np.asarray(indices).dtype

    if n_threads < 1:
        raise ValueError(f"n_threads must be >= 1, got {n_threads}.")
    if n < 0 or indptr[0] != 0:
        raise ValueError("indptr must have n + 1 >= 1 entries, starting at 0.")
    nnz = indptr[n]
    if indices.shape[0] != nnz or data.shape[0] != nnz:
        raise ValueError(
            f"indices and data must have indptr[-1] = {nnz} entries, got "
            f"{indices.shape[0]} and {data.shape[0]}."
        )
    with nogil:
        for i in range(n):
            if indptr[i + 1] < indptr[i]:
                bad = True
    if bad:
        raise ValueError("indptr must be non-decreasing.")
    counts = np.zeros(n + 1, dtype=np.intp)
    cdef intp_t[::1] counts_view = counts
    with nogil:
        for i in range(n):
            longest = max(longest, indptr[i + 1] - indptr[i])
            for p in range(indptr[i], indptr[i + 1]):
                j = indices[p]
                if j < 0 or j >= n:
                    problem = 1
                elif j == i:
                    problem = 2
                elif p > indptr[i] and indices[p - 1] >= j:
                    problem = 3
                else:
                    # Column counts: the number of rows holding j.
                    counts_view[j + 1] += 1
                    continue
                break
            if problem:
                break
    if problem == 1:
        raise ValueError(f"A's column indices must lie in [0, {n}).")
    if problem == 2:
        raise ValueError("A must have no stored diagonal entry.")
    if problem == 3:
        raise ValueError("A's rows must hold sorted, unique column indices.")
    # Length of row i of the result: len(row i) + colcount(i) - m(i), where
    # m(i) counts the j of row i whose own row holds i.
    for i in prange(n, nogil=True, schedule="static", num_threads=n_threads):
        matches = 0
        for p in range(indptr[i], indptr[i + 1]):
            j = indices[p]
            if _find(&indices[indptr[j]], indptr[j + 1] - indptr[j], i) >= 0:
                matches = matches + 1
        counts_view[i + 1] = counts_view[i + 1] + indptr[i + 1] - indptr[i] - matches
    out_indptr_wide = np.cumsum(counts)
    total = out_indptr_wide[n]
    if total > np.iinfo(index_dtype).max:
        raise OverflowError(
            f"A + A^T has {total} entries, more than {index_dtype} indices hold."
        )
    out_indptr = out_indptr_wide.astype(index_dtype)
    del out_indptr_wide, counts
    out_indices = np.empty(total, dtype=index_dtype)
    out_data = np.empty(total, dtype=np.float64)
    cursors = np.empty(n, dtype=np.intp)
    cdef index_t[::1] out_indices_view = out_indices
    cdef float64_t[::1] out_data_view = out_data
    cdef const index_t[::1] out_indptr_view = out_indptr
    cdef intp_t[::1] cursor_view = cursors
    for i in prange(n, nogil=True, schedule="static", num_threads=n_threads):
        _own_entries(
            data, indices, indptr, i, out_indices_view, out_data_view,
            out_indptr_view[i],
        )
        cursor_view[i] = <intp_t>out_indptr_view[i] + (indptr[i + 1] - indptr[i])

    # Reverse-only entries and merges, by chunks of target rows.
    n_chunks = max(1, min(n_threads, n))
    buffers_index = np.empty((n_chunks, max(longest, 1)), dtype=index_dtype)
    buffers_data = np.empty((n_chunks, max(longest, 1)), dtype=np.float64)
    cdef index_t[:, ::1] buffers_index_view = buffers_index
    cdef float64_t[:, ::1] buffers_data_view = buffers_data
    if n > 0:
        cursor = &cursor_view[0]
    for c in prange(n_chunks, nogil=True, schedule="static", num_threads=n_threads):
        lo = c * n // n_chunks
        hi = (c + 1) * n // n_chunks
        _reverse_entries(
            data, indices, indptr, lo, hi, out_indices_view, out_data_view, cursor
        )
        for i in range(lo, hi):
            _merge_runs(
                out_indices_view,
                out_data_view,
                out_indptr_view[i],
                <intp_t>out_indptr_view[i] + (indptr[i + 1] - indptr[i]),
                out_indptr_view[i + 1],
                &buffers_index_view[c, 0],
                &buffers_data_view[c, 0],
            )
    return out_data, out_indices, out_indptr
