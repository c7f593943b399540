"""Exact euclidean kNN of dense data, searching only the cells that can hold one.

The points are grouped into the cells of a coarse k-means. Two triangle
inequalities bound, for each query row q, which cells can hold one of its k
nearest neighbours:

* an upper bound of its k-th neighbour distance, ``u_q = min_c (|q - c| +
  R_c)``, where ``R_c`` is the (k+1)-th smallest distance of cell c's members
  to its centre (k members other than q lie within ``|q - c| + R_c``);
* a lower bound of its distance to any member of cell b, ``|q - b| - r_b``,
  where ``r_b`` is the largest distance of b's members to its centre.

A cell whose lower bound exceeds ``u_q`` holds no neighbour of q. Each
cell's queries are searched against the cells they need (those needed by
most of them as one group, the others apart), by
:func:`fasttsne._cython._knn.ranked_candidates`: single-precision BLAS
products and a running selection of the ``k + KEEP_MARGIN`` smallest values
of each row. The rounding bound of the exact search (:mod:`._exact`) proves
for each row that the kept entries hold every true neighbour; their
distances are then recomputed exactly and sorted by (distance, index). A row
the proof fails for (the margin too small for its rounding window) is
searched again with a wider selection, then by the exact blocked search.
So the answer is exactly the exact search's, bit for bit: only the time
depends on the data (clustered data prunes most cells; data without
clusters prunes none, and the plan's cost says so before any search, see
:func:`cell_plan`). docs/neighbors.rst has the measurements.
"""

import numpy as np
from sklearn.utils import check_random_state
from threadpoolctl import threadpool_limits

from fasttsne._cython._knn import ranked_candidates
from fasttsne._neighbors._common import (
    coarse_centroids,
    max_abs,
    rescaling_exponent,
    run_blocks,
    sort_rows,
    squared_norms,
)
from fasttsne._neighbors._exact import (
    _duplicate_answers,
    euclidean_knn,
    pair_squared_distances,
    rows_knn,
)

# Candidates kept a row beyond k: the room the rounding window of a row may
# take before the row has to be searched again exactly.
KEEP_MARGIN = 8

# Cells of the coarse k-means: at most this many, and at least this many
# points a cell on average (a cell much smaller than k prunes little).
MAX_CELLS = 256
MIN_CELL_POINTS = 1024

_BLOCK_ROWS = 1 << 14

# Queries are grouped, searched and put in exact order in chunks of at most
# this many rows, which bounds the temporaries whatever the cells' sizes
# (and each ordering batch enters a BLAS thread limit, which costs
# milliseconds).
_CHUNK_ROWS = 1 << 16

# The wider selection of a retry, in multiples of the first one.
_RETRY_FACTOR = 8

# Below this magnitude the squared differences of rows near each other
# underflow float64.
_UNDERFLOW = 2.0**-400

# A cell's queries share one search of the cells that at least this share of
# them need; queries that need more are split again, at most _MAX_SPLITS
# times.
_CORE_SHARE = 0.5
_MAX_SPLITS = 3


def usable(X, center):
    """Whether the pruned search serves dense float64 ``X`` (mean ``center``).

    Not where squared distances overflow float64 (the exact search raises
    the error that names the problem) nor where the centred rows lie below
    ``_UNDERFLOW``: there the squares of nearby rows' differences underflow,
    the exact search's distances tie where a rescaled ranking would not, and
    the blocked search keeps its answer. Read block by block (no temporary
    the size of X).
    """
    largest = max(float(X.max(initial=0.0)), -float(X.min(initial=0.0)))
    with np.errstate(over="ignore"):
        if not np.isfinite(4.0 * X.shape[1] * largest * largest):
            return False
    return _centred_max_abs(X, center) >= _UNDERFLOW


def _centred_max_abs(X, center):
    """``max |X - center|``, block by block."""
    largest = 0.0
    for start in range(0, X.shape[0], _BLOCK_ROWS):
        largest = max(largest, max_abs(X[start : start + _BLOCK_ROWS] - center))
    return largest


class CellPlan:
    """Cells of the data and, for each, the cells its queries must search.

    Attributes
    ----------
    order : ndarray of shape (n_samples,), intp
        Rows of the data grouped by cell (stable within a cell).
    bounds : ndarray of shape (n_cells + 1,), intp
        Cell c holds ``order[bounds[c]:bounds[c + 1]]``.
    groups : list of (ndarray, ndarray)
        Per group of queries: their positions in ``order``, and the cells
        they search (sorted).
    pairs : int
        Number of (query, reference) pairs the search will rank.
    """

    def __init__(self, order, bounds, groups, pairs):
        self.order = order
        self.bounds = bounds
        self.groups = groups
        self.pairs = pairs


def _centre_distances(X, centroids, centroid_sq_norms):
    """Distances of rows to centres through one BLAS product, and their slack.

    The product rounds: each distance is within its ``slack`` of the true
    one, ``sqrt(4 (m + 4) eps (|x|^2 + |c|^2))`` for m features, several
    times the error of ``|x|^2 - 2 x.c + |c|^2`` (Higham, 2002, section 3.1;
    the square root of a value with absolute error e moves by at most
    ``sqrt(e)``).
    """
    row_sq_norms = squared_norms(X)
    sq = row_sq_norms[:, None] - 2.0 * (X @ centroids.T)
    sq += centroid_sq_norms[None, :]
    np.maximum(sq, 0.0, out=sq)
    slack = row_sq_norms[:, None] + centroid_sq_norms[None, :]
    slack *= 4.0 * (X.shape[1] + 4) * float(np.spacing(1.0))
    return np.sqrt(sq, out=sq), np.sqrt(slack, out=slack)


def cell_plan(X, n_neighbors, *, n_threads, center, min_cell_points=MIN_CELL_POINTS):
    """Cells of ``X - center`` and the searches the bounds allow.

    Parameters
    ----------
    X : float64 ndarray of shape (n_samples, n_features)
        The data; rows are centred block by block (no centred copy).
    n_neighbors : int
        k.
    n_threads : int
        Threads of the assignment; the plan does not depend on them.
    center : ndarray of shape (n_features,)
        Subtracted from every row (the data's mean keeps norms small).
    min_cell_points : int, default=MIN_CELL_POINTS
        Points a cell on average, at least (at most ``MAX_CELLS`` cells).

    Returns
    -------
    CellPlan

    Notes
    -----
    The k-means sample and starting centres are drawn from a fixed seed:
    the answer does not depend on them, only the time. Every distance to a
    centre is widened by its rounding slack (:func:`_centre_distances`), so
    a cell is pruned only when it provably holds no neighbour.
    """
    k = n_neighbors
    n_samples = X.shape[0]
    n_cells = int(np.clip(n_samples // min_cell_points, 1, MAX_CELLS))
    centroids = coarse_centroids(X, n_cells, check_random_state(0), center=center)
    centroid_sq_norms = squared_norms(centroids)

    def assign(start, stop):
        distances, slack = _centre_distances(
            X[start:stop] - center, centroids, centroid_sq_norms
        )
        cell = distances.argmin(axis=1)
        rows = np.arange(stop - start)
        return cell, distances[rows, cell] + slack[rows, cell]

    cell, reach = run_blocks(assign, n_samples, _BLOCK_ROWS, n_threads)
    order = np.argsort(cell, kind="stable")
    counts = np.bincount(cell, minlength=n_cells)
    bounds = np.concatenate(([0], np.cumsum(counts)))
    # Upper bounds of each member's distance to its centre: the largest (r_c)
    # and the (k+1)-th smallest (R_c) of each cell.
    radius = np.zeros(n_cells)
    kth_radius = np.full(n_cells, np.inf)
    for c in np.flatnonzero(counts):
        members = np.sort(reach[order[bounds[c] : bounds[c + 1]]])
        radius[c] = members[-1]
        if members.shape[0] > k:
            kth_radius[c] = members[k]

    def needs(start, stop):
        rows = order[start:stop]
        distances, slack = _centre_distances(
            X[rows] - center, centroids, centroid_sq_norms
        )
        upper = (distances + slack + kth_radius[None, :]).min(axis=1)
        lower = distances - slack - radius[None, :]
        return (np.packbits(lower <= upper[:, None], axis=1),)

    (needed,) = run_blocks(needs, n_samples, _BLOCK_ROWS, n_threads)
    groups = []
    for c in np.flatnonzero(counts):
        for start in range(bounds[c], bounds[c + 1], _CHUNK_ROWS):
            positions = np.arange(start, min(start + _CHUNK_ROWS, bounds[c + 1]))
            mask = np.unpackbits(needed[positions], axis=1, count=n_cells)
            groups += _query_groups(positions, mask.astype(bool))
    pairs = sum(part.shape[0] * int(counts[cells].sum()) for part, cells in groups)
    return CellPlan(order, bounds, groups, pairs)


def _query_groups(positions, mask, depth=0):
    """Groups of one cell's queries, each with the cells it searches.

    The queries that need no cell beyond those most of them need form one
    group; the others are split the same way again (a few times), so that
    one query with an unusual need does not make the whole cell search it.
    """
    core = mask.mean(axis=0) >= _CORE_SHARE
    inside = ~(mask & ~core).any(axis=1)
    if not inside.any() or depth == _MAX_SPLITS:
        return [(positions, np.flatnonzero(mask.any(axis=0)))]
    groups = [(positions[inside], np.flatnonzero(mask[inside].any(axis=0)))]
    if not inside.all():
        groups += _query_groups(positions[~inside], mask[~inside], depth + 1)
    return groups


def _ranges(cells, bounds):
    """Row ranges of ``cells`` in the grouped order, adjacent cells merged."""
    starts, stops = bounds[cells], bounds[cells + 1]
    join = np.flatnonzero(starts[1:] != stops[:-1]) + 1
    starts = starts[np.concatenate(([0], join))]
    stops = stops[np.concatenate((join - 1, [cells.shape[0] - 1]))]
    return starts.astype(np.intp), stops.astype(np.intp)


def pruned_euclidean_knn(
    X, n_neighbors, *, n_threads, plan=None, keep_margin=KEEP_MARGIN
):
    """Exact kNN (self excluded) of every row of dense float64 ``X``.

    The same answer as ``euclidean_knn(X, X, k, self_query=True)``, bit for
    bit: rows sorted by (exact squared distance, index).

    Parameters
    ----------
    X : float64 ndarray of shape (n_samples, n_features)
    n_neighbors : int
        k, in ``[1, n_samples - 1]``.
    n_threads : int
        Threads; the answer does not depend on them.
    plan : CellPlan, default=None
        :func:`cell_plan` of ``X`` centred on its mean, if already made.
    keep_margin : int, default=KEEP_MARGIN
        Candidates kept a row beyond k (rows whose rounding window needs
        more are searched again by the blocked search).

    Returns
    -------
    indices : ndarray of shape (n_samples, n_neighbors), intp
    sq_distances : ndarray of shape (n_samples, n_neighbors), float64
    """
    k = n_neighbors
    n_samples = X.shape[0]
    center = X.mean(axis=0)
    if not usable(X, center):
        return euclidean_knn(
            X, X, k, self_query=True, n_threads=n_threads, match=False
        )[:2]
    # Rows equal to k others are answered first (before the larger arrays
    # exist: this takes a copy of X).
    answered, answers = _duplicate_answers(X, X, k, True)
    if plan is None:
        plan = cell_plan(X, k, n_threads=n_threads, center=center)
    if plan.order.shape[0] != n_samples:
        raise ValueError("The cell plan was made for other data.")
    ranking = _Ranking(X, center, plan)
    indices = np.empty((n_samples, k), dtype=np.intp)
    sq_distances = np.zeros((n_samples, k))
    out = (indices, sq_distances)
    indices[answered] = answers
    skip = np.zeros(n_samples, dtype=bool)
    skip[answered] = True
    skip = skip[plan.order]
    redo = [np.empty(0, dtype=np.intp)]
    # Proven rows wait by the width of their candidate lists, and are put in
    # exact order in batches.
    pending = {}
    with threadpool_limits(limits=1, user_api="blas"):
        for positions, cells in plan.groups:
            positions = positions[~skip[positions]]
            # Rows the proof fails for (ties crowding the rounding window) try
            # again with a wider selection before the blocked search.
            for n_keep in (k + keep_margin, _RETRY_FACTOR * (k + keep_margin)):
                if positions.size == 0:
                    break
                complete, candidates = ranking.candidates(
                    positions, cells, k, n_keep, n_threads
                )
                part = (plan.order[positions[complete]], candidates[complete])
                pending.setdefault(n_keep, []).append(part)
                positions = positions[~complete]
                if sum(rows.shape[0] for rows, _ in pending[n_keep]) >= _CHUNK_ROWS:
                    _exact_order(X, pending.pop(n_keep), k, n_threads, out)
            redo.append(positions)
    for parts in pending.values():
        _exact_order(X, parts, k, n_threads, out)
    del ranking
    redo = plan.order[np.concatenate(redo)]
    if redo.size:
        indices[redo], sq_distances[redo] = rows_knn(X, redo, k, n_threads=n_threads)
    return indices, sq_distances


class _Ranking:
    """The float32 ranking rows of the data and the bound of their error.

    Rows are centred, grouped in the plan's order and, where their magnitude
    is far from 1, scaled by a power of two (:func:`rescaling_exponent`: the
    order of distances does not change; the bound is in the same units).
    For dots of m = n_features + 1 terms the error of a ranking value of
    query row x is below ``(2 m + 16) eps (|x|^2 + 2 max |y|^2) + 4 m eta``
    (eps the spacing of float32 at 1, twice its unit roundoff; eta its
    smallest subnormal; max over the searched rows y), the bound of the
    exact search (:class:`._exact._EuclideanSearch`): this ranking adds
    ``|y|^2`` (the norm of the float64 row, rounded to float32) after the
    product instead of inside it, one more rounding that the bound's margin
    covers.
    """

    def __init__(self, X, center, plan):
        n_samples, n_features = X.shape
        exponent = rescaling_exponent(_centred_max_abs(X, center), np.float32)
        self.points = np.empty(X.shape, dtype=np.float32)
        self.sq_norms64 = np.empty(n_samples)
        for start in range(0, n_samples, _BLOCK_ROWS):
            rows = plan.order[start : start + _BLOCK_ROWS]
            block = np.ldexp(X[rows] - center, exponent)
            self.points[start : start + _BLOCK_ROWS] = block
            self.sq_norms64[start : start + _BLOCK_ROWS] = squared_norms(block)
        self.sq_norms = self.sq_norms64.astype(np.float32)
        terms = n_features + 1
        one, zero = np.float32(1.0), np.float32(0.0)
        self.relative_error = (2.0 * terms + 16.0) * float(np.spacing(one))
        self.absolute_error = 4.0 * terms * float(np.nextafter(zero, one))
        self.cell_max_norm = np.array(
            [
                self.sq_norms64[a:b].max(initial=0.0)
                for a, b in zip(plan.bounds[:-1], plan.bounds[1:])
            ]
        )
        self.plan = plan

    def candidates(self, positions, cells, k, n_keep, n_threads):
        """Kept candidates of the query rows at ``positions`` among ``cells``.

        Call with BLAS limited to one thread (the kernel's threads each run
        their own products).

        Returns
        -------
        complete : ndarray of shape (n_rows,), bool
            Rows whose kept entries provably hold every true neighbour: every
            value left out is above the k-th kept one plus two rounding
            errors, or there were no more references than kept entries.
        candidates : ndarray of shape (n_rows, n_keep), intp
            Rows of the data (-1 where fewer were searched).
        """
        starts, stops = _ranges(cells, self.plan.bounds)
        values, columns = ranked_candidates(
            self.points, self.sq_norms, positions, starts, stops, n_keep, n_threads
        )
        if int((stops - starts).sum()) <= n_keep:
            complete = np.ones(positions.shape[0], dtype=bool)
        else:
            values = np.sort(values, axis=1).astype(np.float64)
            error = (
                self.relative_error
                * (self.sq_norms64[positions] + 2.0 * self.cell_max_norm[cells].max())
                + self.absolute_error
            )
            complete = values[:, -1] > values[:, k - 1] + 2.0 * error
        missing = columns < 0
        candidates = self.plan.order[columns]
        candidates[missing] = -1
        return complete, candidates


def _exact_order(X, pending, k, n_threads, out):
    """Exact distances of the candidates of rows, the first k by (distance, index).

    ``pending`` lists ``(rows, candidates)`` pairs; ``candidates`` holds
    ``-1`` where a row had fewer (its distance is then infinite and it sorts
    last). Each row is computed on its own, so the threads do not matter.
    """
    if not pending:
        return
    rows = np.concatenate([part[0] for part in pending])
    candidates = np.concatenate([part[1] for part in pending])
    indices, sq_distances = out
    n_keep = candidates.shape[1]

    def block(start, stop):
        query = rows[start:stop]
        labels = candidates[start:stop]
        missing = labels < 0
        safe = np.where(missing, query[:, None], labels)
        order = np.argsort(query, kind="stable")
        values = np.empty(labels.shape)
        values[order] = pair_squared_distances(
            X, np.repeat(query[order], n_keep), X, safe[order].ravel()
        ).reshape(-1, n_keep)
        values[missing] = np.inf
        labels, values = sort_rows(np.where(missing, -1, labels), values)
        indices[query] = labels[:, :k]
        sq_distances[query] = values[:, :k]
        return (None,)

    if rows.size:
        run_blocks(block, rows.shape[0], 1 << 12, n_threads)
