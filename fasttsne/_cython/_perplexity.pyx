"""Perplexity calibration: conditional probabilities p_{j|i} from kNN distances.

Implementation notes
--------------------
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
"""

import numpy as np

from cython cimport floating
from cython.parallel cimport prange
from libc.math cimport INFINITY, exp, fabs, log

from fasttsne._cython._typedefs cimport float64_t, intp_t


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
