# pylint: disable=too-many-lines
# (the whole X -> P pipeline lives here, as DESIGN.md lays it out)
"""Affinities: k nearest neighbours, perplexity calibration, symmetric P.

``X -> nearest_neighbors -> binary_search_perplexity -> joint_probabilities``
for the fit, and ``new_point_affinities`` for the out-of-sample extension.

The exact euclidean search is blocked brute force: BLAS products rank the
reference rows, a candidate window widened by a rigorous bound on their
rounding error keeps every possible neighbour, and the candidates' distances
are recomputed exactly as ``sum((x - y)^2)``. The result is the exact k
nearest neighbours with ties broken by the smaller index: duplicates are at
distance exactly 0, and nothing depends on the blocking, on the number of
threads, or on which other rows are queried with a row. The approximate
search (large N) is a faiss HNSW graph with a deterministic build, followed
by the same exact re-ranking.
"""

from concurrent.futures import ThreadPoolExecutor

import numpy as np
from scipy import sparse
from scipy.sparse.csgraph import reverse_cuthill_mckee
from sklearn.metrics import pairwise_distances
from sklearn.neighbors import VALID_METRICS, NearestNeighbors
from sklearn.utils import check_random_state
from threadpoolctl import threadpool_limits

from fasttsne._cython._perplexity import binary_search_perplexity, symmetrize
from fasttsne._utils import _Printer

__all__ = ["joint_probabilities", "nearest_neighbors", "new_point_affinities"]

# Entries held at once by one worker: rows of a precomputed block, or
# candidate (row, column, value) triples of the exact search (~100 MiB), so
# that memory stays linear in the number of rows.
_BLOCK_ENTRIES = 1 << 22

# Entries of the (pairs, features) differences formed at once when distances
# are recomputed exactly: 512 KiB stays in cache, which made the recomputation
# four times faster than 32 MiB blocks.
_PAIR_BLOCK_ENTRIES = 1 << 16

# Metric names accepted: everything sklearn.neighbors.NearestNeighbors knows.
_KNOWN_METRICS = frozenset().union(*VALID_METRICS.values())

_METHODS = ("auto", "exact", "approx")

# From this many samples on, method="auto" uses the approximate search.
# benchmarks/bench_knn.py (20-cluster Gaussian mixture in 50-D, k=90, 2
# threads), three runs on a shared 2-core machine: exact / approx time was
# 0.4-0.7 at 10k-20k, 0.7-1.0 at 40k, 1.06-1.39 at 80k and 0.7-2.1 at 100k
# (faiss' OpenMP build suffers most when the cores are oversubscribed). These
# runs used the former search beam of 182; the current one (below) searches
# 26% faster, so the threshold errs on the side of the exact search.
_APPROX_MIN_SAMPLES = 80_000

# faiss HNSW settings, chosen with benchmarks/bench_knn.py on the same data:
# M=32 links per node and efConstruction=100 built faster than M=16 and
# efConstruction=200 and reached a higher recall at the same search beam.
# The search beam trades recall for time: at N = 100k (k = 90, quiet machine)
# efSearch = 182 / 128 / 100 searched in 11.9 / 8.8 / 7.4 s for a recall@91 of
# 0.997 / 0.992 / 0.985 (at N = 250k: 0.990 and 0.978 for 182 and 128 in the
# input's order, last session; 0.975 and, grouped by _cluster_order, 0.978 for 128).
# efSearch = max(128, 1.4 (k + 1)) kept recall above 0.97 (measured up to 250k;
# HNSW recall falls slowly with N) for 26% less search; the KL of the 100k
# embedding moved by 0.03% (benchmarks/bench_tsne.py).
_HNSW_M = 32
_HNSW_EF_CONSTRUCTION = 100
_HNSW_MIN_EF_SEARCH = 128
_HNSW_EF_SEARCH_FACTOR = 1.4
# The coarse k-means that orders the points for the HNSW graph
# (_cluster_order): centroids, Lloyd iterations, training rows, rows per
# assignment block.
_ORDER_CLUSTERS = 256
_ORDER_ITERATIONS = 10
_ORDER_SAMPLE = 20_000
_ORDER_BLOCK = 1 << 14
# Rows per faiss query batch: its (rows, k + 1) float32 distances and int64
# labels take about 72 MB at k = 90 (with the boolean mask of missing labels
# and the re-ranking's temporaries, a few times that), instead of 1.1 GB for
# 1e6 rows at once.
_HNSW_QUERY_BATCH = 1 << 16


# ---- Validation helpers ----


def _check_metric(metric):
    """Raise ``ValueError`` for a metric that is neither callable nor known."""
    if callable(metric):
        return
    if not isinstance(metric, str) or metric not in _KNOWN_METRICS:
        raise ValueError(
            f"Unknown metric {metric!r}. Use a callable or one of "
            f"{sorted(_KNOWN_METRICS)}."
        )


def _is_euclidean(metric, metric_params):
    """Whether ``metric`` is the plain euclidean distance (any of its names)."""
    params = dict(metric_params or {})
    if metric in ("euclidean", "l2"):
        return not params
    if metric == "minkowski":
        return params.get("p", 2) == 2 and set(params) <= {"p"}
    return False


def _check_precomputed(D, n_columns=None):
    """Validate a precomputed distance matrix; return it as float64 (CSR or C)."""
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


def _as_float64(X):
    """X as C-contiguous float64 ndarray or canonical float64 CSR."""
    if sparse.issparse(X):
        X = sparse.csr_matrix(X, dtype=np.float64, copy=False)
        if not X.has_canonical_format:
            X = X.copy()
            X.sum_duplicates()
        return X
    return np.ascontiguousarray(X, dtype=np.float64)


def _run_blocks(function, n_rows, block_rows, n_threads):
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


def _sort_rows(indices, distances):
    """Sort every row by (distance, index), returning both arrays."""
    order = np.lexsort((indices, distances), axis=1)
    return (
        np.take_along_axis(indices, order, axis=1),
        np.take_along_axis(distances, order, axis=1),
    )


# ---- Exact euclidean kNN ----


def _squared_norms(X):
    """Row-wise squared norms of a float64 ndarray or CSR matrix."""
    if sparse.issparse(X):
        return np.asarray(X.multiply(X).sum(axis=1)).ravel()
    return np.einsum("ij,ij->i", X, X)


def _pair_squared_distances(X_query, rows, X_ref, columns):
    """Exact ``sum((X_query[rows[p]] - X_ref[columns[p]]) ** 2)`` for each pair p.

    ``rows`` must be sorted. Every value is computed from its own two rows in
    a fixed order (the same whatever the other pairs of the call), so it does
    not depend on the batch; identical rows give exactly 0.
    """
    n_pairs = rows.shape[0]
    out = np.empty(n_pairs, dtype=np.float64)
    if n_pairs == 0:
        return out
    if sparse.issparse(X_query):
        diff = X_query[rows] - X_ref[columns]
        diff.data **= 2
        out[:] = np.asarray(diff.sum(axis=1)).ravel()
        return out
    n_features = X_query.shape[1]
    first, starts, counts = np.unique(rows, return_index=True, return_counts=True)
    # Rows with the most common number of pairs broadcast their query row
    # instead of gathering it once per pair; both paths subtract, square and
    # sum each pair's values in the same order.
    per_row = int(np.bincount(counts).argmax())
    regular = counts == per_row
    pairs = np.flatnonzero(np.repeat(~regular, counts))
    regular_rows = first[regular]
    positions = starts[regular][:, None] + np.arange(per_row)[None, :]
    step = max(1, _PAIR_BLOCK_ENTRIES // max(1, per_row * n_features))
    for start in range(0, regular_rows.shape[0], step):
        stop = min(start + step, regular_rows.shape[0])
        diff = (
            X_ref[columns[positions[start:stop]]]
            - X_query[regular_rows[start:stop], None, :]
        )
        np.square(diff, out=diff)
        out[positions[start:stop]] = diff.sum(axis=2)
    step = max(1, _PAIR_BLOCK_ENTRIES // max(1, n_features))
    for start in range(0, pairs.shape[0], step):
        chunk = pairs[start : start + step]
        diff = X_ref[columns[chunk]] - X_query[rows[chunk]]
        np.square(diff, out=diff)
        out[chunk] = diff.sum(axis=1)
    return out


def _rows_equal(X_a, i, X_b, j):
    """``np.array_equal`` of row i of X_a and row j of X_b (dense or CSR)."""
    if sparse.issparse(X_a):
        return (X_a[i] != X_b[j]).nnz == 0
    return np.array_equal(X_a[i], X_b[j])


def _column_sample(n_ref, n_neighbors):
    """Evenly strided reference columns used to bound the (k+1)-th distance.

    About ``sqrt(2 (k + 1) n_ref)`` columns balance the cost of this pass
    against the number of candidates it lets through the full pass (about
    ``(k + 1) n_ref / n_sample`` per row). It depends only on the sizes, so
    every query row sees the same sample.
    """
    n_sample = int(np.sqrt(2.0 * (n_neighbors + 1) * n_ref))
    n_sample = max(n_sample, 4 * (n_neighbors + 1))
    if n_sample >= n_ref // 2:
        return np.arange(n_ref)
    return np.linspace(0, n_ref - 1, n_sample).astype(np.intp)


def _kth_per_row(rows, values, n_rows, kth):
    """The (kth + 1)-th smallest of ``values`` in each row of a ragged set."""
    order = np.argsort(rows, kind="stable")
    counts = np.bincount(rows, minlength=n_rows)
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    padded = np.full((n_rows, max(int(counts.max()), kth + 1)), np.inf)
    sorted_rows = rows[order]
    padded[sorted_rows, np.arange(order.shape[0]) - starts[sorted_rows]] = values[order]
    return np.partition(padded, kth, axis=1)[:, kth]


def _order_within_rows(rows, values, counts, starts, k):
    """Permutation sorting each row's segment by value, stably.

    ``rows`` must be grouped (sorted) and each row's entries in ascending
    column order, so ties keep the smaller column first.
    """
    order = np.arange(rows.shape[0])
    regular = np.flatnonzero(counts == k)
    if regular.size:
        positions = starts[regular][:, None] + np.arange(k)[None, :]
        ranks = np.argsort(values[positions], axis=1, kind="stable")
        order[positions] = np.take_along_axis(positions, ranks, axis=1)
    irregular = np.flatnonzero(np.repeat(counts != k, counts))
    if irregular.size:
        ranks = np.lexsort((values[irregular], rows[irregular]))
        order[irregular] = irregular[ranks]
    return order


class _EuclideanSearch:
    """Exact blocked brute-force search of the k nearest reference rows.

    Distances are ranked through ``D'_ij = |y_j|^2 - 2 x_i.y_j`` (the constant
    ``|x_i|^2`` does not change a row's ranking), computed as one BLAS product
    of ``[-2 x, 1]`` and ``[y, |y|^2]`` per (row block, column block), sized
    to stay in cache. Dense data are centred on the reference mean for the
    ranking (distances do not change, norms and so rounding errors shrink),
    and ranked in float32 when the values allow it (twice the BLAS speed).

    A first pass over a strided sample of columns gives every row an upper
    bound ``t_i`` of its (k+1)-th smallest ``D'``; the full pass keeps only
    the entries ``<= t_i``. The error of a computed ``D'`` is below
    ``E_i = (2 m + 16) eps (|x_i|^2 + 2 max_j |y_j|^2) + tiny`` for dots of
    m terms (Higham, Accuracy and Stability of Numerical Algorithms, 2002,
    section 3.1, with margin for rounding the inputs to the ranking type).
    So every true k-nearest neighbour has a computed ``D'`` within
    ``window_i = kth_i + 2 E_i``, where kth_i is the k-th smallest computed
    ``D'``: every entry in the window gets its exact distance
    ``sum((x - y)^2)`` from the original rows, and the first k by (exact
    distance, index) are the answer. Rows whose window exceeds ``t_i`` are
    scanned again with the window as threshold. The answer therefore does not
    depend on the rounding of the BLAS products, hence not on blocking,
    threads or the other query rows.
    """

    row_block = 256
    column_block = 2048

    def __init__(self, X_query, X_ref, n_neighbors, *, self_query):
        self.X_query = X_query
        self.X_ref = X_ref
        self.k = n_neighbors
        self.self_query = self_query
        if sparse.issparse(X_ref):
            self.center = None
            self.dtype = np.float64
            terms = int(np.diff(X_ref.indptr).max(initial=0)) + 1
            sqn_ref = _squared_norms(X_ref)
            self.ref_rank = sparse.hstack(
                [X_ref, sparse.csr_matrix(sqn_ref[:, None])], format="csr"
            )
        else:
            self.center = X_ref.mean(axis=0) if X_ref.shape[0] else None
            centred = X_ref - self.center
            sqn_ref = _squared_norms(centred)
            terms = X_ref.shape[1] + 1
            largest = float(np.abs(centred).max(initial=0.0))
            if X_query is not X_ref and X_query.shape[0]:
                largest = max(largest, float(np.abs(X_query - self.center).max()))
            # float32 ranking only where no product or sum can overflow it;
            # the answer is exact either way, only the speed differs.
            small = largest**2 * (4.0 * terms + 8.0) < 1e36
            self.dtype = np.float32 if small else np.float64
            self.ref_rank = np.hstack([centred, sqn_ref[:, None]]).astype(self.dtype)
        one, zero = self.dtype(1.0), self.dtype(0.0)
        eps = float(np.spacing(one))
        smallest_subnormal = float(np.nextafter(zero, one))
        self.error = (2.0 * terms + 16.0) * eps
        self.absolute_error = 4.0 * terms * smallest_subnormal
        self.max_sqn_ref = float(sqn_ref.max(initial=0.0))
        self.sample = _column_sample(X_ref.shape[0], n_neighbors)
        self.ref_sample = self.ref_rank[self.sample]

    def _query_rank(self, ids):
        """``[-2 x, 1]`` rows for the ranking product, and their ``|x|^2``."""
        X = self.X_query[ids]
        if self.center is None:
            ones = sparse.csr_matrix(np.ones((ids.shape[0], 1)))
            return (
                sparse.hstack([X * -2.0, ones], format="csr"),
                _squared_norms(X),
            )
        centred = X - self.center
        sqn = _squared_norms(centred)
        rank = np.empty((ids.shape[0], centred.shape[1] + 1), dtype=self.dtype)
        np.multiply(centred, -2.0, out=rank[:, :-1], casting="same_kind")
        rank[:, -1] = 1.0
        return rank, sqn

    def _thresholds(self, values):
        """Thresholds rounded up into the ranking type (never excluding more)."""
        thresholds = values.astype(self.dtype)
        return np.nextafter(thresholds, self.dtype(np.inf))

    def _product(self, query_rank, ref_rank):
        """Ranking values ``D'`` of a (row block, column block)."""
        product = query_rank @ ref_rank.T
        if sparse.issparse(product):
            product = product.toarray()
        return np.asarray(product)

    def _scan(self, query_rank, ids, thresholds):
        """Every (local row, reference column, D') with D' <= threshold."""
        n_ref = self.X_ref.shape[0]
        thresholds = self._thresholds(thresholds)[:, None]
        found = []
        for c0 in range(0, n_ref, self.column_block):
            c1 = min(c0 + self.column_block, n_ref)
            D = self._product(query_rank, self.ref_rank[c0:c1])
            if self.self_query:
                # NaN fails every comparison, even with an infinite threshold.
                local = np.flatnonzero((ids >= c0) & (ids < c1))
                D[local, ids[local] - c0] = np.nan
            flat = np.flatnonzero(D <= thresholds)
            rows, columns = np.divmod(flat, c1 - c0)
            found.append((rows, columns + c0, D.ravel()[flat].astype(np.float64)))
        return tuple(np.concatenate(parts) for parts in zip(*found))

    def _sample_bound(self, query_rank, ids):
        """Upper bound of each row's (k+1)-th smallest D' (inf if unknown).

        Also returns the number of entries expected below the bound over all
        columns, extrapolated from the sample.
        """
        D = self._product(query_rank, self.ref_sample)
        if self.self_query:
            position = np.searchsorted(self.sample, ids)
            position = np.minimum(position, self.sample.shape[0] - 1)
            hit = np.flatnonzero(self.sample[position] == ids)
            D[hit, position[hit]] = np.inf
        n_ref = self.X_ref.shape[0]
        if D.shape[1] <= self.k:
            return np.full(D.shape[0], np.inf), np.full(D.shape[0], n_ref)
        bound = np.partition(D, self.k, axis=1)[:, self.k]
        expected = (D <= bound[:, None]).sum(axis=1) * (n_ref / D.shape[1])
        return bound.astype(np.float64), expected

    def block(self, ids, match):
        """Neighbours, exact squared distances and matches of query rows ids."""
        query_rank, sqn_query = self._query_rank(ids)
        bound, expected = self._sample_bound(query_rank, ids)
        # Many exact duplicates make many candidates per row (all of them tie
        # at distance 0): split the block so that at most about
        # _BLOCK_ENTRIES candidates are held at once (memory stays linear).
        group = np.floor_divide(np.cumsum(expected) - expected, _BLOCK_ENTRIES)
        edges = np.flatnonzero(np.diff(group)) + 1
        parts = [
            self._select(query_rank[a:b], sqn_query[a:b], ids[a:b], bound[a:b], match)
            for a, b in zip(
                np.concatenate(([0], edges)), np.concatenate((edges, [len(ids)]))
            )
        ]
        if len(parts) == 1:
            return parts[0]
        matches = np.concatenate([part[2] for part in parts]) if match else None
        return (
            np.concatenate([part[0] for part in parts]),
            np.concatenate([part[1] for part in parts]),
            matches,
        )

    def _select(self, query_rank, sqn_query, ids, bound, match):
        """The exact k nearest neighbours of rows ``ids`` given their bounds."""
        k = self.k
        m = ids.shape[0]
        error = self.error * (sqn_query + 2.0 * self.max_sqn_ref) + self.absolute_error
        # Scanning up to bound + 2 E covers the window whenever kth <= bound,
        # so near ties at the bound (e.g. duplicates) need no second scan.
        threshold = bound + 2.0 * error
        rows, columns, values = self._scan(query_rank, ids, threshold)
        kth = _kth_per_row(rows, values, m, k - 1)
        window = kth + 2.0 * error
        redo = np.flatnonzero(window > threshold)
        if redo.size:
            keep = ~np.isin(rows, redo)
            more = self._scan(query_rank[redo], ids[redo], window[redo])
            rows = np.concatenate((rows[keep], redo[more[0]]))
            columns = np.concatenate((columns[keep], more[1]))
            values = np.concatenate((values[keep], more[2]))
        keep = values <= window[rows]
        rows, columns = rows[keep], columns[keep]
        by_row = np.argsort(rows, kind="stable")  # columns stay ascending
        rows, columns = rows[by_row], columns[by_row]
        sq = _pair_squared_distances(self.X_query, ids[rows], self.X_ref, columns)
        counts = np.bincount(rows, minlength=m)
        starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
        order = _order_within_rows(rows, sq, counts, starts, k)
        columns, sq = columns[order], sq[order]
        take = starts[:, None] + np.arange(k)[None, :]
        matches = None
        if match:
            # Every reference row at exact distance 0 is in the window, sorted
            # by index: the first one equal to the query row is the match.
            matches = np.full(m, -1, dtype=np.intp)
            for r in np.flatnonzero(sq[starts] == 0.0):
                p = starts[r]
                while p < starts[r] + counts[r] and sq[p] == 0.0:
                    if _rows_equal(self.X_query, ids[r], self.X_ref, columns[p]):
                        matches[r] = columns[p]
                        break
                    p += 1
        return columns[take].astype(np.intp, copy=False), sq[take], matches


def _euclidean_knn(X_query, X_ref, n_neighbors, *, self_query, n_threads, match):
    """Exact k nearest rows of ``X_ref`` for each row of ``X_query``.

    Parameters
    ----------
    X_query, X_ref : float64 ndarray or canonical CSR
        Query and reference rows (the same object when ``self_query``).
    n_neighbors : int
        Number of neighbours k (at most the number of candidates).
    self_query : bool
        Exclude reference row i from the neighbours of query row i.
    n_threads : int
        Worker threads; the result does not depend on it.
    match : bool
        Also return, per query row, the smallest index of a reference row
        equal to it (``np.array_equal``), or -1.

    Returns
    -------
    indices : ndarray of shape (n_query, k), intp
    sq_distances : ndarray of shape (n_query, k), float64
        Exact squared distances, rows sorted by (distance, index).
    matches : ndarray of shape (n_query,), intp, or None
    """
    search = _EuclideanSearch(X_query, X_ref, n_neighbors, self_query=self_query)
    n_query = X_query.shape[0]
    indices = np.empty((n_query, n_neighbors), dtype=np.intp)
    sq_distances = np.zeros((n_query, n_neighbors))
    matches = np.full(n_query, -1, dtype=np.intp) if match else None
    answered, answers = _duplicate_answers(X_query, X_ref, n_neighbors, self_query)
    indices[answered] = answers
    if match:
        matches[answered] = answers[:, 0] if not self_query else answered
    rest = np.setdiff1d(np.arange(n_query), answered)
    if rest.size:
        found = _run_blocks(
            lambda start, stop: search.block(rest[start:stop], match),
            rest.shape[0],
            search.row_block,
            n_threads,
        )
        indices[rest], sq_distances[rest] = found[0], found[1]
        if match:
            matches[rest] = found[2]
    return indices, sq_distances, matches


def _duplicate_answers(X_query, X_ref, n_neighbors, self_query):
    """Query rows equal to at least k reference rows (other than themselves).

    Their answer is the k smallest indices of those rows, all at distance 0;
    answering them directly spares the search a window holding the whole
    group of duplicates for each of them (quadratic in the group size). Rows
    are compared by value (-0.0 equals 0.0, as in ``np.array_equal``); rows
    that differ by less than ~1e-154 in every coordinate also have distance
    0 but are not recognised here, so they may come after a group.

    Returns
    -------
    answered : ndarray of shape (n_answered,), intp, sorted
    answers : ndarray of shape (n_answered, k), intp
    """
    k = n_neighbors
    none = np.empty(0, dtype=np.intp), np.empty((0, k), dtype=np.intp)
    if sparse.issparse(X_ref) or X_ref.shape[0] < k + 1:
        return none
    need = k + 1 if self_query else k
    # Equal rows have bitwise equal squared norms: a cheap first filter.
    keys_ref = X_ref + 0.0  # -0.0 -> 0.0
    sqn = _squared_norms(keys_ref)
    _, inverse, counts = np.unique(sqn, return_inverse=True, return_counts=True)
    heavy = np.flatnonzero(counts[inverse] >= need)
    if heavy.size == 0:
        return none
    row_bytes = np.dtype((np.void, keys_ref.dtype.itemsize * keys_ref.shape[1]))
    heavy_keys = np.ascontiguousarray(keys_ref[heavy]).view(row_bytes).ravel()
    groups, group_of, sizes = np.unique(
        heavy_keys, return_inverse=True, return_counts=True
    )
    first = {}  # key -> its k + 1 smallest indices (heavy is sorted)
    for g in np.flatnonzero(sizes >= need):
        first[groups[g].tobytes()] = heavy[group_of == g][: k + 1]
    if not first:
        return none
    if self_query:
        answered = heavy[np.isin(group_of, np.flatnonzero(sizes >= need))]
        keys = heavy_keys[np.searchsorted(heavy, answered)]
    else:
        keys_query = np.ascontiguousarray(X_query + 0.0)
        candidates = np.flatnonzero(np.isin(_squared_norms(keys_query), sqn[heavy]))
        keys = keys_query[candidates].view(row_bytes).ravel()
        found = np.array([key.tobytes() in first for key in keys], dtype=bool)
        answered, keys = candidates[found], keys[found]
    answers = np.empty((answered.shape[0], k), dtype=np.intp)
    for r, (row, key) in enumerate(zip(answered, keys)):
        members = first[key.tobytes()]
        if self_query:
            members = members[members != row]
        answers[r] = members[:k]
    return answered, answers


# ---- Precomputed distances and other metrics ----


def _k_smallest(values, k):
    """Indices and values of the k smallest entries of a 1-D array, ties by index."""
    if k < values.shape[0]:
        kth = np.partition(values, k - 1)[k - 1]
        candidates = np.flatnonzero(values <= kth)
    else:
        candidates = np.arange(values.shape[0])
    order = np.lexsort((candidates, values[candidates]))[:k]
    return candidates[order], values[candidates[order]]


def _precomputed_knn(D, n_neighbors, *, self_query, n_threads):
    """k smallest distances per row of a validated precomputed matrix.

    With ``self_query`` the diagonal is skipped. A sparse matrix offers only
    its stored entries as neighbours and must have at least k of them per row
    (off the diagonal with ``self_query``). Rows are sorted by (distance,
    index).
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
    block_rows = int(np.clip(_BLOCK_ENTRIES // max(n_cols, 1), 1, 1024))

    def block(start, stop):
        m = stop - start
        values = D[start:stop].copy()
        if self_query:
            values[np.arange(m), np.arange(start, stop)] = np.inf
        indices = np.empty((m, k), dtype=np.intp)
        distances = np.empty((m, k), dtype=np.float64)
        for r in range(m):
            indices[r], distances[r] = _k_smallest(values[r], k)
        return indices, distances

    return _run_blocks(block, n_rows, block_rows, n_threads)


def _sklearn_knn(X, n_neighbors, *, metric, metric_params, n_threads):
    """Exact kNN (self excluded) through sklearn.neighbors.NearestNeighbors."""
    params = dict(metric_params or {})
    # NearestNeighbors warns when minkowski's p comes through metric_params.
    p = params.pop("p", 2) if metric == "minkowski" else 2
    knn = NearestNeighbors(
        n_neighbors=n_neighbors,
        metric=metric,
        p=p,
        metric_params=params or None,
        n_jobs=n_threads,
    )
    distances, indices = knn.fit(X).kneighbors()
    indices, distances = _sort_rows(indices.astype(np.intp), distances)
    return indices, distances.astype(np.float64, copy=False)


def _rowwise_knn(X_new, X_fit, n_neighbors, *, metric, metric_params, n_threads):
    """kNN of new rows for any metric, one row at a time.

    Each row's distances come from a ``pairwise_distances`` call on that row
    alone, so the result cannot depend on the other rows of the batch (some
    metrics use BLAS products whose rounding depends on the block shape).
    """
    params = dict(metric_params or {})
    n_new = X_new.shape[0]
    k = n_neighbors

    def block(start, stop):
        indices = np.empty((stop - start, k), dtype=np.intp)
        distances = np.empty((stop - start, k), dtype=np.float64)
        for i in range(start, stop):
            row = pairwise_distances(
                X_new[i : i + 1],
                X_fit,
                metric=metric,
                ensure_all_finite=False,
                **params,
            )[0].astype(np.float64, copy=False)
            indices[i - start], distances[i - start] = _k_smallest(row, k)
        return indices, distances

    return _run_blocks(block, n_new, 64, n_threads)


# ---- Approximate euclidean kNN (faiss HNSW) ----


def _import_faiss():
    """faiss, or ``None`` when it is not installed."""
    try:
        import faiss
    except ImportError:
        return None
    return faiss


def _approx_euclidean_knn(
    X, n_neighbors, *, n_threads, random_state, batch_size=_HNSW_QUERY_BATCH
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
    faiss = _import_faiss()
    if faiss is None:
        raise ImportError('neighbors="approx" needs faiss: pip install faiss-cpu')
    random_state = check_random_state(random_state)
    seed = int(random_state.randint(np.iinfo(np.int32).max))
    X = _as_float64(X)
    n_samples, n_features = X.shape
    k = n_neighbors
    # The graph is built and searched on the points grouped by a coarse
    # k-means: neighbours in the graph then sit close in memory too.
    order = _cluster_order(X, random_state, n_threads)
    parallel_build = hasattr(faiss, "hnsw_add_vertices_deterministic")
    previous = faiss.omp_get_max_threads()
    indices = np.empty((n_samples, k), dtype=np.intp)
    sq_distances = np.empty((n_samples, k), dtype=np.float64)
    try:
        faiss.omp_set_num_threads(n_threads if parallel_build else 1)
        index = faiss.IndexHNSWFlat(n_features, _HNSW_M)
        index.hnsw.efConstruction = _HNSW_EF_CONSTRUCTION
        index.hnsw.rng = faiss.RandomGenerator(seed)
        X32 = np.empty((n_samples, n_features), dtype=np.float32)
        step = max(1, _PAIR_BLOCK_ENTRIES // n_features)
        for start in range(0, n_samples, step):
            X32[start : start + step] = X[order[start : start + step]]
        # (pylint cannot see faiss's NumPy wrappers of its SWIG methods)
        index.add(X32)  # pylint: disable=no-value-for-parameter
        faiss.omp_set_num_threads(n_threads)
        index.hnsw.efSearch = max(
            _HNSW_MIN_EF_SEARCH, int(np.ceil(_HNSW_EF_SEARCH_FACTOR * (k + 1)))
        )
        # Queries go in batches, so that faiss's (n, k + 1) float32 distances
        # and int64 labels never exist for all rows at once.
        for start in range(0, n_samples, batch_size):
            rows = order[start : start + batch_size]
            # pylint: disable-next=no-value-for-parameter
            _, labels = index.search(X32[start : start + batch_size], k + 1)
            # Graph ids are positions in ``order``; -1 marks a missing one.
            missing = labels < 0
            np.take(order, labels, out=labels, mode="clip")
            labels[missing] = -1
            indices[rows], sq_distances[rows] = _rerank(X, rows, labels, k, n_threads)
    finally:
        faiss.omp_set_num_threads(previous)
    return indices, sq_distances


def _cluster_order(X, random_state, n_threads):
    """The rows of ``X`` grouped by their nearest of a few k-means centroids.

    HNSW graphs link points to their neighbours, which the input's order
    (often random) scatters over memory. Built and searched on the points
    grouped by a coarse k-means (``_ORDER_CLUSTERS`` centroids from
    ``_ORDER_ITERATIONS`` Lloyd steps on ``_ORDER_SAMPLE`` rows), the graph's
    neighbours share cache lines and pages. On the 20-cluster mixture of
    ``benchmarks/bench_tsne.py`` at 250k points this made the faiss build
    1.3x and the search 2.8x faster, at the same recall (0.978 grouped vs
    0.975 in the input's order; a one-off script calling faiss directly).
    Every product runs on one BLAS thread (blocks of rows in ``n_threads``
    workers for the assignment of all rows), so the order does not depend
    on the number of threads; ties go to the lowest centroid, then to the
    lowest row.
    """
    n_samples = X.shape[0]
    n_clusters = min(_ORDER_CLUSTERS, n_samples)
    sample = X[
        np.sort(
            random_state.choice(n_samples, min(n_samples, _ORDER_SAMPLE), replace=False)
        )
    ]
    centroids = sample[
        np.sort(random_state.choice(sample.shape[0], n_clusters, replace=False))
    ]
    with threadpool_limits(limits=1, user_api="blas"):
        for _ in range(_ORDER_ITERATIONS):
            assigned = _nearest_centroid(sample, centroids)
            counts = np.bincount(assigned, minlength=n_clusters)
            members = sparse.csr_matrix(
                (np.ones(assigned.size), (assigned, np.arange(assigned.size))),
                shape=(n_clusters, assigned.size),
            )
            sums = members @ sample
            filled = counts > 0
            centroids[filled] = sums[filled] / counts[filled, None]
    (assigned,) = _run_blocks(
        lambda start, stop: (_nearest_centroid(X[start:stop], centroids),),
        n_samples,
        _ORDER_BLOCK,
        n_threads,
    )
    return np.argsort(assigned, kind="stable")


def _nearest_centroid(X, centroids):
    """Index of the nearest centroid of every row (squared distances by GEMM)."""
    scores = X @ centroids.T
    scores *= -2.0
    scores += np.einsum("ij,ij->i", centroids, centroids)[None, :]
    return np.argmin(scores, axis=1)


def _rerank(X, rows, labels, n_neighbors, n_threads):
    """Exact distances and (distance, index) order of the neighbours of ``rows``.

    ``rows`` are row numbers of ``X``; ``labels`` holds the k + 1 candidates
    of each (row numbers of ``X`` too, not graph ids) found by the graph
    search, -1 for missing ones, and is overwritten for rows with a missing
    one. The row itself is dropped.
    """
    n_rows = labels.shape[0]
    # A search that found fewer than k + 1 points pads with -1: redo those
    # rows exactly (k + 1 neighbours of the row as a new point, minus itself).
    short = np.flatnonzero((labels < 0).any(axis=1))
    if short.size:
        exact, _, _ = _euclidean_knn(
            X[rows[short]],
            X,
            n_neighbors + 1,
            self_query=False,
            n_threads=n_threads,
            match=False,
        )
        labels[short] = exact
    drop = labels == rows[:, None]
    drop[~drop.any(axis=1), -1] = True
    indices = labels[~drop].reshape(n_rows, n_neighbors)
    sq = _pair_squared_distances(
        X, np.repeat(rows, n_neighbors), X, indices.ravel()
    ).reshape(n_rows, n_neighbors)
    return _sort_rows(indices, sq)


def _resolve_method(X, metric, metric_params, method):
    """The search ``method`` means for this input: "exact" or "approx".

    Only dense data with a euclidean metric can use the approximate search;
    "auto" picks it from ``_APPROX_MIN_SAMPLES`` samples on if faiss is there.
    """
    if method not in _METHODS:
        raise ValueError(f"method must be one of {_METHODS}, got {method!r}.")
    supported = (
        metric != "precomputed"
        and _is_euclidean(metric, metric_params)
        and not sparse.issparse(X)
    )
    if method == "exact" or not supported:
        return "exact"
    if method == "approx":
        return "approx"
    if X.shape[0] >= _APPROX_MIN_SAMPLES and _import_faiss() is not None:
        return "approx"
    return "exact"


# ---- Public functions ----


def _neighbors(
    X, n_neighbors, *, metric, metric_params, method, n_threads, random_state
):
    """kNN of every row (self excluded); euclidean distances come squared.

    Returns
    -------
    indices, distances, squared : ndarray, ndarray, bool
        ``squared`` tells whether ``distances`` hold squared euclidean
        distances (every euclidean spelling) or the metric itself.
    """
    _check_metric(metric)
    method = _resolve_method(X, metric, metric_params, method)
    n_samples = X.shape[0]
    if not 1 <= n_neighbors <= n_samples - 1:
        raise ValueError(
            f"n_neighbors must be in [1, n_samples - 1] = [1, {n_samples - 1}], "
            f"got {n_neighbors}."
        )
    if metric == "precomputed":
        D = _check_precomputed(X)
        indices, distances = _precomputed_knn(
            D, n_neighbors, self_query=True, n_threads=n_threads
        )
        return indices, distances, False
    if method == "approx":
        indices, distances = _approx_euclidean_knn(
            X, n_neighbors, n_threads=n_threads, random_state=random_state
        )
        return indices, distances, True
    if _is_euclidean(metric, metric_params):
        X = _as_float64(X)
        indices, distances, _ = _euclidean_knn(
            X, X, n_neighbors, self_query=True, n_threads=n_threads, match=False
        )
        return indices, distances, True
    indices, distances = _sklearn_knn(
        X, n_neighbors, metric=metric, metric_params=metric_params, n_threads=n_threads
    )
    return indices, distances, False


def nearest_neighbors(
    X,
    n_neighbors,
    *,
    metric="euclidean",
    metric_params=None,
    method="exact",
    n_threads=1,
    random_state=None,
):
    """The k nearest neighbours of every sample, the sample itself excluded.

    Parameters
    ----------
    X : {ndarray, sparse matrix} of shape (n_samples, n_features) or \
            (n_samples, n_samples)
        Data, or with ``metric="precomputed"`` a square distance matrix; a
        sparse precomputed matrix offers only its stored entries as
        neighbours (like scikit-learn's precomputed neighbour graphs).
    n_neighbors : int
        Number of neighbours k, in ``[1, n_samples - 1]``.
    metric : str or callable, default="euclidean"
        Any metric of :class:`sklearn.neighbors.NearestNeighbors`, or
        ``"precomputed"``.
    metric_params : dict, default=None
        Keyword arguments of the metric.
    method : {"exact", "approx", "auto"}, default="exact"
        "approx" is a faiss HNSW graph (recall@91 of 0.992 measured at 100k
        and 0.978 at 250k points), for dense data and a euclidean metric;
        other inputs always get the exact search. "auto" is "approx" from
        ``_APPROX_MIN_SAMPLES`` samples on when faiss is installed.
    n_threads : int, default=1
        Number of threads. The result does not depend on it.
    random_state : int, RandomState instance or None, default=None
        Seeds the approximate search, which is then deterministic whatever
        ``n_threads``.

    Returns
    -------
    indices : ndarray of shape (n_samples, n_neighbors), intp
        Neighbours of each sample, sorted by (distance, index).
    distances : ndarray of shape (n_samples, n_neighbors), float64
        Their distances in ``metric`` (not squared). Exact duplicates are at
        distance 0.

    Examples
    --------
    >>> import numpy as np
    >>> from fasttsne.tsne._affinity import nearest_neighbors
    >>> X = np.array([[0.0, 0.0], [3.0, 4.0], [0.0, 1.0]])
    >>> indices, distances = nearest_neighbors(X, 1)
    >>> indices.ravel().tolist(), distances.ravel().tolist()
    ([2, 2, 0], [1.0, 4.242640687119285, 1.0])
    """
    indices, distances, squared = _neighbors(
        X,
        n_neighbors,
        metric=metric,
        metric_params=metric_params,
        method=method,
        n_threads=n_threads,
        random_state=random_state,
    )
    if squared:
        distances = np.sqrt(distances)
    return indices, distances


def _perplexity_input(distances, squared, metric):
    """Distances fed to the calibration: squared for "euclidean" only.

    This is scikit-learn's TSNE convention: only ``metric="euclidean"`` is
    squared; every other metric (including "l2") and precomputed distances
    are used as given.
    """
    if squared and metric != "euclidean":
        return np.sqrt(distances)
    return np.ascontiguousarray(distances, dtype=np.float64)


def joint_probabilities(
    X,
    perplexity,
    *,
    metric="euclidean",
    metric_params=None,
    neighbors="auto",
    n_threads=1,
    random_state=None,
    verbose=0,
    reorder=False,
):
    """Symmetric joint probabilities P of t-SNE over the kNN graph.

    Parameters
    ----------
    X : {ndarray, sparse matrix} of shape (n_samples, n_features) or \
            (n_samples, n_samples)
        Data, or a distance matrix with ``metric="precomputed"``.
    perplexity : float
        Target perplexity; ``k = min(n_samples - 1, int(3 * perplexity))``
        neighbours (at least 1) are used.
    metric : str or callable, default="euclidean"
        Any metric of :class:`sklearn.neighbors.NearestNeighbors`, or
        ``"precomputed"``. As in :class:`sklearn.manifold.TSNE`, euclidean
        distances are squared and every other metric is used as is.
    metric_params : dict, default=None
        Keyword arguments of the metric.
    neighbors : {"auto", "exact", "approx"}, default="auto"
        Nearest-neighbour search method (see :func:`nearest_neighbors`).
    n_threads : int, default=1
        Number of threads. The result does not depend on it.
    random_state : int, RandomState instance or None, default=None
        Seeds the approximate search.
    verbose : int, default=0
        Print progress when positive.
    reorder : bool, default=False
        Number the points in a cache-friendly order (see
        :func:`_locality_order`) and return that order too.

    Returns
    -------
    P : scipy.sparse.csr_matrix of shape (n_samples, n_samples), float64
        ``(P_cond + P_cond.T)`` normalised to sum to 1: symmetric,
        non-negative, sorted indices, no stored diagonal and no stored zeros.
        With ``reorder``, ``P[a, b]`` is the affinity of the points
        ``order[a]`` and ``order[b]``.
    order : ndarray of shape (n_samples,), intp
        Only with ``reorder``: a permutation of the samples.

    Examples
    --------
    >>> import numpy as np
    >>> from fasttsne.tsne._affinity import joint_probabilities
    >>> X = np.random.default_rng(0).normal(size=(50, 3))
    >>> P = joint_probabilities(X, perplexity=5.0)
    >>> bool(abs(P.sum() - 1.0) < 1e-12), bool(abs(P - P.T).max() == 0.0)
    (True, True)
    """
    printer = _Printer(verbose)
    n_samples = X.shape[0]
    k = max(1, min(n_samples - 1, int(3 * perplexity)))
    indices, distances, squared = _neighbors(
        X,
        k,
        metric=metric,
        metric_params=metric_params,
        method=neighbors,
        n_threads=n_threads,
        random_state=random_state,
    )
    printer(f"Computed {k} nearest neighbours of {n_samples} samples")
    conditional = binary_search_perplexity(
        _perplexity_input(distances, squared, metric), float(perplexity), n_threads
    )
    del distances
    printer(f"Calibrated the conditional probabilities to perplexity {perplexity}")
    # 32-bit indices whenever they fit: P is the largest object of a fit (and
    # the attraction streams it every iteration), so this halves its index part.
    index_dtype = np.int32 if n_samples * k < np.iinfo(np.int32).max // 2 else np.intp
    indices = indices.astype(index_dtype, copy=False)
    indptr = np.arange(0, n_samples * k + 1, k, dtype=index_dtype)
    if reorder:
        order = _locality_order(indices, indptr)
        inverse = np.empty(n_samples, dtype=index_dtype)
        inverse[order] = np.arange(n_samples, dtype=index_dtype)
        conditional = conditional[order]
        indices = inverse[indices[order]]
        del inverse
        printer("Numbered the points in reverse Cuthill-McKee order")
    conditional = sparse.csr_matrix(
        (conditional.ravel(), indices.ravel(), indptr), shape=(n_samples, n_samples)
    )
    # scipy narrows 64-bit index arrays whose values fit in 32 bits; P + P^T
    # can hold twice as many entries, so the chosen width is put back.
    conditional.indices, conditional.indptr = indices.ravel(), indptr
    del indices
    # Rows below their entropy floor hold exact zeros; both steps are in place.
    conditional.eliminate_zeros()
    conditional.sort_indices()
    # a_ij + a_ji and a_ji + a_ij round identically: P is bitwise symmetric.
    P = sparse.csr_matrix(
        symmetrize(
            conditional.data, conditional.indices, conditional.indptr, n_threads
        ),
        shape=(n_samples, n_samples),
    )
    del conditional
    P.data /= P.data.sum()
    if reorder:
        return P, order
    return P


def _locality_order(indices, indptr):
    """A numbering of the points that keeps kNN neighbours close in memory.

    The attraction gathers ``y_j`` for every stored ``p_ij``: in the input's
    order (often random) each gather misses the caches once the embedding
    outgrows them. The reverse Cuthill-McKee order of the kNN graph (a
    breadth-first numbering, scipy's implementation, out-edges only) puts
    the neighbours of most points within a few thousand rows of each other.
    Measured on the 20-cluster Gaussian mixture (``benchmarks/bench_tsne.py``
    data, 2 threads): one attraction pass took 0.025 s -> 0.0135 s at 100k
    and 0.127 s -> 0.043 s at 300k points, the same as sorting by the true
    cluster labels, for 0.1 s / 0.4 s of ordering.
    """
    n_samples = indptr.shape[0] - 1
    graph = sparse.csr_matrix(
        (np.ones(indices.size, dtype=np.int8), indices.ravel(), indptr),
        shape=(n_samples, n_samples),
    )
    return reverse_cuthill_mckee(graph, symmetric_mode=True).astype(np.intp)


def new_point_affinities(
    X_new, X_fit, perplexity, *, metric="euclidean", metric_params=None, n_threads=1
):
    """Conditional affinities of new points to the training points.

    Each new row is handled on its own: its result depends only on that row
    and ``X_fit``, bitwise, whatever batch it arrives in.

    Parameters
    ----------
    X_new : {ndarray, sparse matrix} of shape (n_new, n_features)
        New points, or with ``metric="precomputed"`` their distances to the
        training points, of shape (n_new, n_fit).
    X_fit : {ndarray, sparse matrix} of shape (n_fit, n_features)
        Training points. Only its number of rows is used with
        ``metric="precomputed"`` (it may then be any (n_fit, ...) array).
    perplexity : float
        Target perplexity; ``k = min(n_fit, int(3 * perplexity))`` neighbours
        (at least 1).
    metric : str or callable, default="euclidean"
        As in :func:`joint_probabilities`.
    metric_params : dict, default=None
        Keyword arguments of the metric.
    n_threads : int, default=1
        Number of threads. The result does not depend on it.

    Returns
    -------
    P_new : scipy.sparse.csr_matrix of shape (n_new, n_fit), float64
        p_{j|new} over the k nearest training points; rows sum to 1 (not
        symmetrised), sorted indices, no stored zeros.
    match : ndarray of shape (n_new,), intp
        Smallest index of a training row equal to the new row
        (``np.array_equal``), or -1; with ``metric="precomputed"``, the
        smallest index at distance exactly 0.

    Examples
    --------
    >>> import numpy as np
    >>> from fasttsne.tsne._affinity import new_point_affinities
    >>> X_fit = np.random.default_rng(0).normal(size=(30, 2))
    >>> P_new, match = new_point_affinities(X_fit[[4, 7]] + [0.0, 1e-3], X_fit, 3.0)
    >>> P_new.shape, match.tolist()
    ((2, 30), [-1, -1])
    >>> new_point_affinities(X_fit[[4, 7]], X_fit, 3.0)[1].tolist()
    [4, 7]
    """
    _check_metric(metric)
    n_fit = X_new.shape[1] if metric == "precomputed" else X_fit.shape[0]
    n_new = X_new.shape[0]
    k = max(1, min(n_fit, int(3 * perplexity)))
    if n_new == 0:
        return sparse.csr_matrix((0, n_fit)), np.empty(0, dtype=np.intp)
    squared = False
    if metric == "precomputed":
        D = _check_precomputed(X_new, n_columns=n_fit)
        indices, distances = _precomputed_knn(
            D, k, self_query=False, n_threads=n_threads
        )
        match = np.where(distances[:, 0] == 0.0, indices[:, 0], -1).astype(np.intp)
    else:
        X_new, X_fit = _matching_formats(X_new, X_fit)
        if _is_euclidean(metric, metric_params):
            indices, distances, match = _euclidean_knn(
                X_new, X_fit, k, self_query=False, n_threads=n_threads, match=True
            )
            squared = True
        else:
            indices, distances = _rowwise_knn(
                X_new,
                X_fit,
                k,
                metric=metric,
                metric_params=metric_params,
                n_threads=n_threads,
            )
            _, _, match = _euclidean_knn(
                X_new, X_fit, 1, self_query=False, n_threads=n_threads, match=True
            )
    conditional = binary_search_perplexity(
        _perplexity_input(distances, squared, metric), float(perplexity), n_threads
    )
    P_new = sparse.csr_matrix(
        (conditional.ravel(), indices.ravel(), np.arange(0, n_new * k + 1, k)),
        shape=(n_new, n_fit),
    )
    P_new.eliminate_zeros()
    P_new.sort_indices()
    return P_new, match


def _matching_formats(X_new, X_fit):
    """Both as float64, CSR if ``X_fit`` is sparse and dense otherwise."""
    X_fit = _as_float64(X_fit)
    if sparse.issparse(X_fit):
        X_new = sparse.csr_matrix(X_new)
    elif sparse.issparse(X_new):
        X_new = X_new.toarray()
    return _as_float64(X_new), X_fit
