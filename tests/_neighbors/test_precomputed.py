"""Tests of precomputed distances (fasttsne._neighbors._precomputed)."""

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from scipy import sparse
from scipy.spatial.distance import cdist
from sklearn.neighbors import kneighbors_graph

from fasttsne._neighbors import nearest_neighbors, new_point_neighbors


def test_precomputed_knn_matches_euclidean(rng):
    """Dense and sparse precomputed distances give the euclidean neighbours."""
    X = rng.normal(size=(300, 6))
    indices, distances = nearest_neighbors(X, 9)
    D = cdist(X, X)
    pre_indices, pre_distances = nearest_neighbors(D, 9, metric="precomputed")
    assert_array_equal(pre_indices, indices)
    assert_allclose(pre_distances, distances, rtol=1e-12)
    graph = kneighbors_graph(X, 12, mode="distance")
    sp_indices, sp_distances = nearest_neighbors(graph, 9, metric="precomputed")
    assert_array_equal(sp_indices, indices)
    assert_allclose(sp_distances, distances, rtol=1e-6)


def test_precomputed_ties_by_index_and_stored_entries_only():
    """Equal distances go to the smaller column; a sparse row offers its entries."""
    D = np.array(
        [
            [0.0, 2.0, 1.0, 1.0],
            [2.0, 0.0, 3.0, 3.0],
            [1.0, 3.0, 0.0, 1.0],
            [1.0, 3.0, 1.0, 0.0],
        ]
    )
    indices, distances = nearest_neighbors(D, 2, metric="precomputed")
    assert_array_equal(indices, [[2, 3], [0, 2], [0, 3], [0, 2]])
    assert_array_equal(distances, [[1.0, 1.0], [2.0, 3.0], [1.0, 1.0], [1.0, 1.0]])
    # Row 1 stores only (1, 3): its far neighbour is the only one it offers.
    graph = sparse.csr_matrix(D)
    graph[1, 0] = 0.0
    graph[1, 2] = 0.0
    graph.eliminate_zeros()
    indices, distances = nearest_neighbors(graph, 1, metric="precomputed")
    assert_array_equal(indices.ravel(), [2, 3, 0, 0])
    assert_array_equal(distances.ravel(), [1.0, 3.0, 1.0, 1.0])


def test_new_points_precomputed_match_at_zero_distance(rng):
    """New points' precomputed distances: k smallest, match at distance 0."""
    X_fit = rng.normal(size=(100, 3))
    X_new = np.vstack([rng.normal(size=(5, 3)), X_fit[[17]]])
    D = cdist(X_new, X_fit)
    indices, distances, match = new_point_neighbors(
        D, np.empty((100, 0)), 7, metric="precomputed", n_threads=2
    )
    order = np.argsort(D, axis=1, kind="stable")[:, :7]
    assert_array_equal(indices, order)
    assert_array_equal(distances, np.take_along_axis(D, order, axis=1))
    assert_array_equal(match, [-1] * 5 + [17])


def test_invalid_precomputed_inputs_raise():
    """Clear ValueErrors for each malformed precomputed matrix."""
    with pytest.raises(ValueError, match="square"):
        nearest_neighbors(np.ones((4, 5)), 2, metric="precomputed")
    with pytest.raises(ValueError, match="2-D"):
        nearest_neighbors(np.ones((4, 4, 1)), 2, metric="precomputed")
    D = np.ones((4, 4))
    D[1, 2] = -1.0
    with pytest.raises(ValueError, match="non-negative"):
        nearest_neighbors(D, 2, metric="precomputed")
    with pytest.raises(ValueError, match="non-negative"):
        nearest_neighbors(sparse.csr_matrix(D), 2, metric="precomputed")
    D[1, 2] = np.nan
    with pytest.raises(ValueError, match="non-negative"):
        nearest_neighbors(D, 2, metric="precomputed")
    D[1, 2] = np.inf
    with pytest.raises(ValueError, match="finite"):
        nearest_neighbors(D, 2, metric="precomputed")
    graph = sparse.csr_matrix(np.eye(5) + np.diag(np.ones(4), 1))
    with pytest.raises(ValueError, match="neighbours per sample"):
        nearest_neighbors(graph, 2, metric="precomputed")


def test_sparse_precomputed_with_repeated_pairs_is_rejected():
    """A pair stored twice has no meaning as a distance: a clear error."""
    D = sparse.csr_matrix(
        (np.ones(4), np.array([1, 1, 0, 0]), np.array([0, 2, 4])), shape=(2, 2)
    )
    with pytest.raises(ValueError, match="stored more than once"):
        nearest_neighbors(D, 1, metric="precomputed")


def test_new_points_need_one_column_per_training_point(rng):
    """Distances to the wrong number of training points are named."""
    D = rng.random((3, 40))
    with pytest.raises(ValueError, match="must have 50 columns"):
        new_point_neighbors(D, np.empty((50, 0)), 5, metric="precomputed")
