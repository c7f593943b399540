"""Tests of the cell-pruned exact search (fasttsne._neighbors._pruned).

The oracles are the exact blocked search (whose answer the pruned one must
give bit for bit) and the full distance matrix.
"""

import numpy as np
import pytest
from numpy.testing import assert_array_equal

import fasttsne._neighbors as neighbors_module
from fasttsne._neighbors import _pruned, nearest_neighbors
from fasttsne._neighbors._exact import euclidean_knn
from tests._oracles import exact_knn


def _separated_clusters(rng, n_samples, n_features=10, n_clusters=12):
    centres = rng.normal(scale=20.0, size=(n_clusters, n_features))
    labels = rng.integers(0, n_clusters, size=n_samples)
    return centres[labels] + rng.normal(size=(n_samples, n_features))


def _plan(X, k, n_threads=2, min_cell_points=64):
    """A plan with cells of ~64 points, so that small data prune."""
    return _pruned.cell_plan(
        X,
        k,
        n_threads=n_threads,
        center=X.mean(axis=0),
        min_cell_points=min_cell_points,
    )


def _assert_same_as_exact(X, k, n_threads=2, min_cell_points=64, **kwargs):
    usable = _pruned.usable(X, X.mean(axis=0))
    plan = _plan(X, k, n_threads, min_cell_points) if usable else None
    indices, sq_distances = _pruned.pruned_euclidean_knn(
        X, k, n_threads=n_threads, plan=plan, **kwargs
    )
    ref_indices, ref_sq, _ = euclidean_knn(
        X, X, k, self_query=True, n_threads=1, match=False
    )
    assert indices.dtype == np.intp and sq_distances.dtype == np.float64
    assert_array_equal(indices, ref_indices)
    assert_array_equal(sq_distances, ref_sq)
    return indices, sq_distances


@pytest.mark.parametrize("n_threads", [1, 2, 3])
def test_pruned_equals_exact_on_clusters(rng, n_threads):
    """Separated clusters: most cells pruned, the exact answer bit for bit."""
    X = _separated_clusters(rng, 3000)
    assert _plan(X, 30, n_threads).pairs < 0.3 * X.shape[0] ** 2
    _assert_same_as_exact(X, 30, n_threads)


def test_pruned_default_cells(rng):
    """The production cell size (a few cells of 1,024 points)."""
    X = _separated_clusters(rng, 5000, n_clusters=5)
    _assert_same_as_exact(X, 30, min_cell_points=_pruned.MIN_CELL_POINTS)


@pytest.mark.parametrize("kind", ["touching", "offset", "outlier"])
def test_plan_keeps_every_true_neighbours_cell(rng, kind):
    """Soundness of the bounds against the full distance matrix: the cells a
    query searches hold all of its true neighbours."""
    X = _separated_clusters(rng, 1500, n_features=6)
    if kind == "touching":
        X = X / 10.0  # clusters of unit spread, centres ~2 apart
    elif kind == "offset":
        X = X + 1e6
    else:
        X[7] = 1e4
    k = 25
    plan = _plan(X, k)
    true_indices, _ = exact_knn(X, X, k, self_query=True)
    cell_of = np.empty(X.shape[0], dtype=np.intp)
    for c in range(plan.bounds.shape[0] - 1):
        cell_of[plan.order[plan.bounds[c] : plan.bounds[c + 1]]] = c
    searched = 0
    for positions, cells in plan.groups:
        for row in plan.order[positions]:
            assert cell_of[row] in cells
            assert np.isin(cell_of[true_indices[row]], cells).all()
            searched += 1
    assert searched == X.shape[0]


def test_pruned_equals_oracle_without_clusters(rng):
    """One Gaussian (little to prune): still the full-matrix answer."""
    X = rng.normal(size=(1500, 6))
    indices, sq_distances = _assert_same_as_exact(X, 20)
    ref_indices, ref_sq = exact_knn(X, X, 20, self_query=True)
    assert_array_equal(indices, ref_indices)
    np.testing.assert_allclose(sq_distances, ref_sq, rtol=1e-12)


def test_pruned_ties_and_duplicates(rng):
    """Integer data (many ties) and groups of more than k equal rows."""
    X = rng.integers(0, 4, size=(2500, 3)).astype(np.float64)
    X[:150] = 7.0
    X[200] = -0.0
    _assert_same_as_exact(X, 25)


def test_pruned_constant_columns_and_small_groups(rng):
    """Constant columns and clusters smaller than k."""
    X = _separated_clusters(rng, 900, n_features=4, n_clusters=40)
    X = np.hstack([X, np.full((900, 2), 3.0)])
    _assert_same_as_exact(X, 40)


@pytest.mark.parametrize("scale", [2.0**-600, 2.0**-60, 2.0**60, 2.0**500])
def test_pruned_extreme_magnitudes(rng, scale):
    """Tiny and huge data: the float32 ranking is rescaled, the answer exact."""
    X = _separated_clusters(rng, 1200, n_features=5) * scale
    _assert_same_as_exact(X, 15)


def test_pruned_tiny_spread_around_a_large_value(rng):
    """A constant column of 1 beside noise of 1e-200: the centred data are
    tiny, their float64 distances underflow, and the blocked search's
    answer (ties at 0 by index) is kept."""
    X = np.column_stack([np.ones(300), rng.normal(size=300) * 1e-200])
    _assert_same_as_exact(X, 5)


def test_pruned_large_offset(rng):
    """Data far from the origin (centring keeps the ranking accurate)."""
    X = _separated_clusters(rng, 1500, n_features=8) + 1e7
    _assert_same_as_exact(X, 20)


def test_pruned_overflow_names_the_problem(rng):
    """Squared distances beyond float64 raise the exact search's ValueError."""
    X = rng.normal(size=(300, 3)) * 1e200
    with pytest.raises(ValueError, match="overflow"):
        _pruned.pruned_euclidean_knn(X, 5, n_threads=1)


def test_rows_the_proof_fails_for_are_searched_again(rng, monkeypatch):
    """No margin kept: rows whose window may reach past the kept entries
    (ties) are searched again by the blocked search, and the answer stays
    exact."""
    redone = []
    blocked = _pruned.rows_knn

    def spy(X, rows, *args, **kwargs):
        redone.append(rows.shape[0])
        return blocked(X, rows, *args, **kwargs)

    monkeypatch.setattr(_pruned, "rows_knn", spy)
    X = rng.integers(0, 3, size=(1200, 4)).astype(np.float64)
    _assert_same_as_exact(X, 10, keep_margin=0)
    assert redone and redone[0] > 0


def test_pruned_in_chunks(rng, monkeypatch):
    """Cells split into chunks of queries, and proven rows ordered in several
    batches: the same answer."""
    monkeypatch.setattr(_pruned, "_CHUNK_ROWS", 100)
    X = _separated_clusters(rng, 2000, n_clusters=4)
    plan = _plan(X, 20, min_cell_points=500)
    assert max(positions.shape[0] for positions, _ in plan.groups) <= 100
    _assert_same_as_exact(X, 20, min_cell_points=500)


def test_plan_for_other_data_is_refused(rng):
    """A plan made for other data raises instead of searching wrong rows."""
    X = _separated_clusters(rng, 600)
    plan = _plan(X[:500], 10)
    with pytest.raises(ValueError, match="other data"):
        _pruned.pruned_euclidean_knn(X, 10, n_threads=1, plan=plan)


def test_ranges_merge_adjacent_cells():
    """Adjacent cells become one range of rows."""
    bounds = np.array([0, 5, 9, 12, 12, 20, 31])
    starts, stops = _pruned._ranges(np.array([0, 1, 3, 4, 5]), bounds)
    assert_array_equal(starts, [0, 12])
    assert_array_equal(stops, [9, 31])
    starts, stops = _pruned._ranges(np.array([1]), bounds)
    assert_array_equal(starts, [5])
    assert_array_equal(stops, [9])


def test_nearest_neighbors_routes_exact_through_pruning(rng, monkeypatch):
    """The public exact search takes the pruned path from its threshold on
    and answers as the blocked search does."""
    monkeypatch.setattr(neighbors_module, "_PRUNED_MIN_SAMPLES", 100)
    calls = []
    original = neighbors_module.pruned_euclidean_knn

    def spy(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(neighbors_module, "pruned_euclidean_knn", spy)
    X = _separated_clusters(rng, 800)
    indices, distances = nearest_neighbors(X, 12, n_threads=2)
    ref_indices, ref_sq, _ = euclidean_knn(
        X, X, 12, self_query=True, n_threads=1, match=False
    )
    assert calls
    assert_array_equal(indices, ref_indices)
    assert_array_equal(distances, np.sqrt(ref_sq))


@pytest.mark.parametrize("clustered", [True, False])
def test_auto_keeps_the_exact_search_when_its_plan_is_cheap(
    rng, monkeypatch, clustered
):
    """From the approximate threshold on, "auto" searches exactly when the
    cell plan ranks few candidates a query, and takes the graph otherwise."""
    monkeypatch.setattr(neighbors_module, "_APPROX_MIN_SAMPLES", 1000)
    monkeypatch.setattr(neighbors_module, "_PRUNED_MAX_PAIRS_PER_QUERY", 6000)
    monkeypatch.setattr(neighbors_module, "_PRUNED_MIN_SAMPLES", 100)
    taken = []
    monkeypatch.setattr(
        neighbors_module,
        "approx_euclidean_knn",
        lambda *args, **kwargs: taken.append("approx") or ((), ()),
    )
    original = neighbors_module.pruned_euclidean_knn

    def spy(*args, **kwargs):
        taken.append("pruned")
        return original(*args, **kwargs)

    monkeypatch.setattr(neighbors_module, "pruned_euclidean_knn", spy)
    # 24,000 points make 23 cells of the default size: a cluster spans few.
    X = _separated_clusters(rng, 24_000) if clustered else rng.normal(size=(24_000, 10))
    nearest_neighbors(X, 10, method="auto", n_threads=2, random_state=0)
    assert taken == (["pruned"] if clustered else ["approx"])


def test_cells_with_fewer_references_than_kept(rng):
    """Far clusters of k + 5 points: each query searches fewer references
    than it keeps (padded entries), never itself or one row twice."""
    centres = np.array([[0.0, 0.0], [1e3, 0.0], [0.0, 1e3], [1e3, 1e3]])
    X = np.repeat(centres, 25, axis=0) + rng.normal(size=(100, 2))
    indices, _ = _assert_same_as_exact(X, 20, min_cell_points=25)
    assert (indices != np.arange(100)[:, None]).all()
    assert all(np.unique(row).shape[0] == 20 for row in indices)
