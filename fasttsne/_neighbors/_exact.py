"""Exact euclidean kNN: blocked brute force with a bound on rounding errors.

BLAS products rank the reference rows, a candidate window widened by a
rigorous bound on their rounding error keeps every possible neighbour, and
the candidates' distances are recomputed exactly as ``sum((x - y)^2)``. The
result is the exact k nearest neighbours with ties broken by the smaller
index: duplicates are at distance exactly 0, and nothing depends on the
blocking, on the number of threads, or on which other rows are queried with
a row. The derivation of the bound is in :class:`_EuclideanSearch` and
docs/neighbors.rst.
"""

import numpy as np
from scipy import sparse

from fasttsne._neighbors._common import (
    BLOCK_ENTRIES,
    PAIR_BLOCK_ENTRIES,
    max_abs,
    run_blocks,
    squared_norms,
)


def pair_squared_distances(X_query, rows, X_ref, columns):
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
    step = max(1, PAIR_BLOCK_ENTRIES // max(1, per_row * n_features))
    for start in range(0, regular_rows.shape[0], step):
        stop = min(start + step, regular_rows.shape[0])
        diff = (
            X_ref[columns[positions[start:stop]]]
            - X_query[regular_rows[start:stop], None, :]
        )
        np.square(diff, out=diff)
        out[positions[start:stop]] = diff.sum(axis=2)
    step = max(1, PAIR_BLOCK_ENTRIES // max(1, n_features))
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
        self.n_neighbors = n_neighbors
        self.self_query = self_query
        if sparse.issparse(X_ref):
            self.center = None
            self.dtype = np.float64
            terms = int(np.diff(X_ref.indptr).max(initial=0)) + 1
            ref_sq_norms = squared_norms(X_ref)
            self.ref_rank = sparse.hstack(
                [X_ref, sparse.csr_matrix(ref_sq_norms[:, None])], format="csr"
            )
        else:
            self.center = X_ref.mean(axis=0) if X_ref.shape[0] else None
            centred = X_ref - self.center
            ref_sq_norms = squared_norms(centred)
            terms = X_ref.shape[1] + 1
            largest = float(np.abs(centred).max(initial=0.0))
            if X_query is not X_ref and X_query.shape[0]:
                largest = max(largest, float(np.abs(X_query - self.center).max()))
            # float32 ranking only where no product or sum can overflow it;
            # the answer is exact either way, only the speed differs.
            fits_float32 = largest**2 * (4.0 * terms + 8.0) < 1e36
            self.dtype = np.float32 if fits_float32 else np.float64
            self.ref_rank = np.hstack([centred, ref_sq_norms[:, None]]).astype(
                self.dtype
            )
        one, zero = self.dtype(1.0), self.dtype(0.0)
        eps = float(np.spacing(one))
        smallest_subnormal = float(np.nextafter(zero, one))
        self.relative_error = (2.0 * terms + 16.0) * eps
        self.absolute_error = 4.0 * terms * smallest_subnormal
        self.max_ref_sq_norm = float(ref_sq_norms.max(initial=0.0))
        self.sample_columns = _column_sample(X_ref.shape[0], n_neighbors)
        self.sample_rank = self.ref_rank[self.sample_columns]

    def _query_rank(self, ids):
        """``[-2 x, 1]`` rows for the ranking product, and their ``|x|^2``."""
        X = self.X_query[ids]
        if self.center is None:
            ones = sparse.csr_matrix(np.ones((ids.shape[0], 1)))
            return (
                sparse.hstack([X * -2.0, ones], format="csr"),
                squared_norms(X),
            )
        centred = X - self.center
        query_sq_norms = squared_norms(centred)
        rank = np.empty((ids.shape[0], centred.shape[1] + 1), dtype=self.dtype)
        np.multiply(centred, -2.0, out=rank[:, :-1], casting="same_kind")
        rank[:, -1] = 1.0
        return rank, query_sq_norms

    def _round_up_thresholds(self, values):
        """Thresholds rounded up into the ranking type (never excluding more)."""
        thresholds = values.astype(self.dtype)
        return np.nextafter(thresholds, self.dtype(np.inf))

    def _ranking_values(self, query_rank, ref_rank):
        """Ranking values ``D'`` of a (row block, column block)."""
        product = query_rank @ ref_rank.T
        if sparse.issparse(product):
            product = product.toarray()
        return np.asarray(product)

    def _scan(self, query_rank, ids, thresholds):
        """Every (local row, reference column, D') with D' <= threshold."""
        n_ref = self.X_ref.shape[0]
        thresholds = self._round_up_thresholds(thresholds)[:, None]
        found = []
        for c0 in range(0, n_ref, self.column_block):
            c1 = min(c0 + self.column_block, n_ref)
            D = self._ranking_values(query_rank, self.ref_rank[c0:c1])
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
        k = self.n_neighbors
        D = self._ranking_values(query_rank, self.sample_rank)
        if self.self_query:
            position = np.searchsorted(self.sample_columns, ids)
            position = np.minimum(position, self.sample_columns.shape[0] - 1)
            hit = np.flatnonzero(self.sample_columns[position] == ids)
            D[hit, position[hit]] = np.inf
        n_ref = self.X_ref.shape[0]
        if D.shape[1] <= k:
            return np.full(D.shape[0], np.inf), np.full(D.shape[0], n_ref)
        bound = np.partition(D, k, axis=1)[:, k]
        expected = (D <= bound[:, None]).sum(axis=1) * (n_ref / D.shape[1])
        return bound.astype(np.float64), expected

    def search_block(self, ids, match):
        """Neighbours, exact squared distances and matches of query rows ids."""
        query_rank, query_sq_norms = self._query_rank(ids)
        bound, expected = self._sample_bound(query_rank, ids)
        # Many exact duplicates make many candidates per row (all of them tie
        # at distance 0): split the block so that at most about
        # BLOCK_ENTRIES candidates are held at once (memory stays linear).
        group = np.floor_divide(np.cumsum(expected) - expected, BLOCK_ENTRIES)
        edges = np.flatnonzero(np.diff(group)) + 1
        parts = [
            self._select(
                query_rank[a:b], query_sq_norms[a:b], ids[a:b], bound[a:b], match
            )
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

    def _select(self, query_rank, query_sq_norms, ids, bound, match):
        """The exact k nearest neighbours of rows ``ids`` given their bounds."""
        k = self.n_neighbors
        m = ids.shape[0]
        error = (
            self.relative_error * (query_sq_norms + 2.0 * self.max_ref_sq_norm)
            + self.absolute_error
        )
        # Scanning up to bound + 2 E covers the window whenever kth <= bound,
        # so near ties at the bound (e.g. duplicates) need no second scan.
        threshold = bound + 2.0 * error
        rows, columns, values = self._scan(query_rank, ids, threshold)
        kth = _kth_per_row(rows, values, m, k - 1)
        window = kth + 2.0 * error
        redo = np.flatnonzero(window > threshold)
        if redo.size:
            keep = ~np.isin(rows, redo)
            rescanned = self._scan(query_rank[redo], ids[redo], window[redo])
            rows = np.concatenate((rows[keep], redo[rescanned[0]]))
            columns = np.concatenate((columns[keep], rescanned[1]))
            values = np.concatenate((values[keep], rescanned[2]))
        keep = values <= window[rows]
        rows, columns = rows[keep], columns[keep]
        by_row = np.argsort(rows, kind="stable")  # columns stay ascending
        rows, columns = rows[by_row], columns[by_row]
        sq_distances = pair_squared_distances(
            self.X_query, ids[rows], self.X_ref, columns
        )
        counts = np.bincount(rows, minlength=m)
        starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
        order = _order_within_rows(rows, sq_distances, counts, starts, k)
        columns, sq_distances = columns[order], sq_distances[order]
        take = starts[:, None] + np.arange(k)[None, :]
        matches = None
        if match:
            # Every reference row at exact distance 0 is in the window, sorted
            # by index: the first one equal to the query row is the match.
            matches = np.full(m, -1, dtype=np.intp)
            for r in np.flatnonzero(sq_distances[starts] == 0.0):
                p = starts[r]
                while p < starts[r] + counts[r] and sq_distances[p] == 0.0:
                    if _rows_equal(self.X_query, ids[r], self.X_ref, columns[p]):
                        matches[r] = columns[p]
                        break
                    p += 1
        return columns[take].astype(np.intp, copy=False), sq_distances[take], matches


def euclidean_knn(X_query, X_ref, n_neighbors, *, self_query, n_threads, match):
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
    largest = max(max_abs(X_query), max_abs(X_ref))
    with np.errstate(over="ignore"):
        overflows = not np.isfinite(4.0 * X_ref.shape[1] * largest * largest)
    if overflows:
        raise ValueError(
            f"The data hold values up to {largest:.3g}, whose squared euclidean "
            "distances overflow float64: scale the data down (the t-SNE "
            "estimators scale what they fit, and new points by the same factor)."
        )
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
        found = run_blocks(
            lambda start, stop: search.search_block(rest[start:stop], match),
            rest.shape[0],
            search.row_block,
            n_threads,
        )
        indices[rest], sq_distances[rest] = found[0], found[1]
        if match:
            matches[rest] = found[2]
    return indices, sq_distances, matches


def rows_knn(X, rows, n_neighbors, *, n_threads):
    """Exact kNN of some rows of ``X`` among all of them, each row excluded.

    Each row is searched as a new point for k + 1 neighbours and loses
    itself (or, when k + 1 equal rows of smaller index crowd it out, the
    last one): the answer of the self-excluding search for those rows.

    Returns
    -------
    indices : ndarray of shape (n_rows, n_neighbors), intp
    sq_distances : ndarray of shape (n_rows, n_neighbors), float64
    """
    found, found_sq, _ = euclidean_knn(
        X[rows], X, n_neighbors + 1, self_query=False, n_threads=n_threads, match=False
    )
    drop = found == rows[:, None]
    drop[~drop.any(axis=1), -1] = True
    shape = (rows.shape[0], n_neighbors)
    return found[~drop].reshape(shape), found_sq[~drop].reshape(shape)


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
    if X_ref.shape[0] < k + 1:
        return none
    # Group size from which a row is answered here: k other members.
    min_group = k + 1 if self_query else k
    # Equal rows have bitwise equal squared norms: a cheap first filter.
    ref_keys = _without_negative_zeros(X_ref)
    ref_sq_norms = squared_norms(ref_keys)
    _, inverse, counts = np.unique(
        ref_sq_norms, return_inverse=True, return_counts=True
    )
    crowded = np.flatnonzero(counts[inverse] >= min_group)
    if crowded.size == 0:
        return none
    if sparse.issparse(X_ref):
        return _sparse_duplicate_answers(
            X_query, ref_keys, ref_sq_norms, crowded, k, self_query
        )
    row_bytes = np.dtype((np.void, ref_keys.dtype.itemsize * ref_keys.shape[1]))
    crowded_keys = np.ascontiguousarray(ref_keys[crowded]).view(row_bytes).ravel()
    groups, group_of, sizes = np.unique(
        crowded_keys, return_inverse=True, return_counts=True
    )
    smallest_members = {}  # key -> its k + 1 smallest indices (crowded is sorted)
    for g in np.flatnonzero(sizes >= min_group):
        smallest_members[groups[g].tobytes()] = crowded[group_of == g][: k + 1]
    if not smallest_members:
        return none
    if self_query:
        answered = crowded[np.isin(group_of, np.flatnonzero(sizes >= min_group))]
        keys = crowded_keys[np.searchsorted(crowded, answered)]
    else:
        query_keys = np.ascontiguousarray(X_query + 0.0)
        candidates = np.flatnonzero(
            np.isin(squared_norms(query_keys), ref_sq_norms[crowded])
        )
        keys = query_keys[candidates].view(row_bytes).ravel()
        found = np.array(
            [key.tobytes() in smallest_members for key in keys], dtype=bool
        )
        answered, keys = candidates[found], keys[found]
    answers = np.empty((answered.shape[0], k), dtype=np.intp)
    for r, (row, key) in enumerate(zip(answered, keys)):
        members = smallest_members[key.tobytes()]
        if self_query:
            members = members[members != row]
        answers[r] = members[:k]
    return answered, answers


def _without_negative_zeros(X):
    """``X + 0.0`` (-0.0 becomes 0.0); for CSR also without stored zeros."""
    if not sparse.issparse(X):
        return X + 0.0
    X = X.copy()
    X.data += 0.0
    X.eliminate_zeros()
    return X


def _sparse_row_keys(X, rows):
    """One bytes key per row of a canonical CSR ``X``: equal iff the rows are.

    A row's key is its column indices then its values; rows with different
    numbers of stored entries have keys of different lengths.
    """
    indptr, indices, data = X.indptr, X.indices, X.data
    return [
        indices[indptr[i] : indptr[i + 1]].tobytes()
        + data[indptr[i] : indptr[i + 1]].tobytes()
        for i in rows
    ]


def _sparse_duplicate_answers(X_query, ref_keys, ref_sq_norms, crowded, k, self_query):
    """:func:`_duplicate_answers` for CSR rows (``crowded``: candidate rows)."""
    min_group = k + 1 if self_query else k
    groups = {}  # key -> its members, increasing (crowded is sorted)
    for row, key in zip(crowded, _sparse_row_keys(ref_keys, crowded)):
        groups.setdefault(key, []).append(row)
    smallest_members = {
        key: np.asarray(members[: k + 1], dtype=np.intp)
        for key, members in groups.items()
        if len(members) >= min_group
    }
    if not smallest_members:
        return np.empty(0, dtype=np.intp), np.empty((0, k), dtype=np.intp)
    if self_query:
        answered = np.sort(
            np.concatenate(
                [np.asarray(groups[key], dtype=np.intp) for key in smallest_members]
            )
        )
        keys = _sparse_row_keys(ref_keys, answered)
    else:
        query_keys = _without_negative_zeros(X_query)
        candidates = np.flatnonzero(
            np.isin(squared_norms(query_keys), ref_sq_norms[crowded])
        )
        keys = _sparse_row_keys(query_keys, candidates)
        found = np.array([key in smallest_members for key in keys], dtype=bool)
        answered = candidates[found]
        keys = [key for key, hit in zip(keys, found) if hit]
    answers = np.empty((answered.shape[0], k), dtype=np.intp)
    for r, (row, key) in enumerate(zip(answered, keys)):
        members = smallest_members[key]
        if self_query:
            members = members[members != row]
        answers[r] = members[:k]
    return answered, answers


def equal_rows(X_new, X_fit):
    """The smallest index of a row of ``X_fit`` equal to each row of ``X_new``.

    Rows are equal as in ``np.array_equal`` (-0.0 equals 0.0; for CSR,
    stored zeros count as zeros), -1 where none is. Only training rows with
    the same squared norm are compared, so this costs one pass over
    ``X_fit`` and no search.

    Parameters
    ----------
    X_new, X_fit : float64 ndarray or canonical CSR
        New and training rows, both dense or both CSR.

    Returns
    -------
    match : ndarray of shape (n_new,), intp
    """
    fit_keys = _without_negative_zeros(X_fit)
    new_keys = _without_negative_zeros(X_new)
    fit_norms = squared_norms(fit_keys)
    order = np.argsort(fit_norms, kind="stable")  # equal norms by index
    sorted_norms = fit_norms[order]
    new_norms = squared_norms(new_keys)
    starts = np.searchsorted(sorted_norms, new_norms, side="left")
    stops = np.searchsorted(sorted_norms, new_norms, side="right")
    match = np.full(new_keys.shape[0], -1, dtype=np.intp)
    for i in np.flatnonzero(stops > starts):
        candidates = order[starts[i] : stops[i]]
        if sparse.issparse(fit_keys):
            (key,) = _sparse_row_keys(new_keys, [i])
            equal = np.array(
                [other == key for other in _sparse_row_keys(fit_keys, candidates)]
            )
        else:
            equal = (fit_keys[candidates] == new_keys[i]).all(axis=1)
        if equal.any():
            match[i] = candidates[np.argmax(equal)]
    return match
