"""Tests of the exact euclidean search (fasttsne._neighbors._exact) against oracles."""

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from scipy import sparse
from sklearn.neighbors import NearestNeighbors

from fasttsne._neighbors import nearest_neighbors, new_point_neighbors
from fasttsne._neighbors._exact import euclidean_knn, pair_squared_distances
from tests._oracles import exact_knn


@pytest.mark.parametrize("container", ["dense64", "dense32", "csr"])
def test_exact_knn_matches_sklearn_brute(rng, container):
    """Indices equal sklearn's brute force; distances agree closely."""
    X = rng.normal(size=(1500, 30))
    if container == "dense32":
        X = X.astype(np.float32)
    elif container == "csr":
        X[rng.random(X.shape) < 0.7] = 0.0
        X = sparse.csr_matrix(X)
    indices, distances = nearest_neighbors(X, 25, n_threads=2)
    knn = NearestNeighbors(n_neighbors=25, algorithm="brute").fit(X)
    ref_distances, ref_indices = knn.kneighbors()
    assert indices.dtype == np.intp and distances.dtype == np.float64
    assert_array_equal(indices, ref_indices)
    # sklearn's distances come from |x|^2 - 2 x.y + |y|^2 (float32 inputs
    # are upcast by chunks), ours from sum((x - y)^2): ~1e-6 relative apart.
    assert_allclose(distances, ref_distances, rtol=1e-6)


def test_exact_knn_exact_distances_and_index_ties(rng):
    """Integer data with many ties: exact distances, ties broken by index."""
    X = rng.integers(0, 3, size=(600, 4)).astype(np.float64)
    indices, distances = nearest_neighbors(X, 40, n_threads=2)
    ref_indices, ref_sq = exact_knn(X, X, 40, self_query=True)
    assert_array_equal(indices, ref_indices)
    assert_array_equal(distances, np.sqrt(ref_sq))


def test_exact_knn_large_duplicate_groups(rng):
    """Groups of more than k identical rows (incl. -0.0) match the oracle."""
    X = rng.integers(0, 3, size=(700, 4)).astype(np.float64)
    X[:200] = 0.0
    X[300:350] = 1.0
    X[5] = -0.0  # equal to 0.0 by value, so a member of the first group
    indices, distances = nearest_neighbors(X, 30, n_threads=2)
    ref_indices, ref_sq = exact_knn(X, X, 30, self_query=True)
    assert_array_equal(indices, ref_indices)
    assert_array_equal(distances, np.sqrt(ref_sq))
    # New points equal to members of the groups, and others.
    X_new = np.vstack([X[[0, 5, 300, 600]], rng.integers(0, 3, size=(20, 4))])
    new_indices, new_distances, match = new_point_neighbors(X_new, X, 30, n_threads=2)
    ref_indices, ref_sq = exact_knn(X_new, X, 30, self_query=False)
    assert_array_equal(new_indices, ref_indices)
    assert_array_equal(new_distances, np.sqrt(ref_sq))
    expected = [np.flatnonzero((X == row).all(axis=1))[0] for row in X_new[:4]]
    assert_array_equal(match[:4], expected)
    assert match[0] == 0 and match[1] == 0
    # Row by row gives the same bits as the batch.
    rows = [new_point_neighbors(X_new[i : i + 1], X, 30) for i in range(24)]
    assert_array_equal(new_indices, np.vstack([r[0] for r in rows]))
    assert_array_equal(new_distances, np.vstack([r[1] for r in rows]))
    assert_array_equal(match, np.concatenate([r[2] for r in rows]))


def test_exact_knn_large_offset_data(rng):
    """Data far from the origin (cancellation in the BLAS formula) stay exact."""
    X = rng.normal(size=(400, 10)) + 1e6
    indices, distances = nearest_neighbors(X, 15)
    ref_indices, ref_sq = exact_knn(X, X, 15, self_query=True)
    assert_array_equal(indices, ref_indices)
    # cdist's summation order differs from ours: last-bit differences only.
    assert_allclose(distances, np.sqrt(ref_sq), rtol=1e-12)


def test_duplicates_have_zero_distance(rng):
    """Exact duplicates are at distance exactly 0, sorted by index."""
    X = rng.normal(size=(300, 5))
    X[50:60] = X[3]
    indices, distances = nearest_neighbors(X, 12)
    assert_array_equal(indices[3, :10], np.arange(50, 60))
    assert_array_equal(distances[3, :10], 0.0)
    assert distances[3, 10] > 0.0
    assert_array_equal(indices[55, :10], [3, 50, 51, 52, 53, 54, 56, 57, 58, 59])


def test_knn_threads_bitwise(rng):
    """1 and 2 threads give identical neighbours and distances."""
    X = rng.normal(size=(1200, 20))
    first = nearest_neighbors(X, 30, n_threads=1)
    second = nearest_neighbors(X, 30, n_threads=2)
    assert_array_equal(first[0], second[0])
    assert_array_equal(first[1], second[1])


def test_new_points_training_rows_match(rng):
    """Training rows match themselves (smallest index among duplicates)."""
    X_fit = rng.normal(size=(500, 7))
    X_fit[[20, 30]] = X_fit[40]
    indices, distances, match = new_point_neighbors(X_fit, X_fit, 15, n_threads=2)
    expected = np.arange(500)
    expected[[30, 40]] = 20
    assert_array_equal(match, expected)
    # A training row is its own nearest neighbour, at distance 0.
    assert np.all((indices == np.arange(500)[:, None]).any(axis=1))
    assert_array_equal(distances[:, 0], 0.0)
    # Bitwise differences are not matches, even tiny ones.
    X_near = X_fit[:3].copy()
    X_near[:, 0] = np.nextafter(X_near[:, 0], np.inf)
    assert_array_equal(new_point_neighbors(X_near, X_fit, 15)[2], -1)


@pytest.mark.parametrize("container", ["dense", "csr"])
def test_euclidean_knn_new_points_against_oracle(rng, container):
    """Queries against another set: oracle neighbours, exact squared distances."""
    X_ref = rng.integers(-2, 3, size=(400, 6)).astype(np.float64)
    X_query = np.vstack([X_ref[[3, 3, 77]], rng.integers(-2, 3, size=(50, 6))])
    X_query = X_query.astype(np.float64)
    ref_indices, ref_sq = exact_knn(X_query, X_ref, 20, self_query=False)
    if container == "csr":
        X_ref, X_query = sparse.csr_matrix(X_ref), sparse.csr_matrix(X_query)
    indices, sq_distances, matches = euclidean_knn(
        X_query, X_ref, 20, self_query=False, n_threads=2, match=True
    )
    assert_array_equal(indices, ref_indices)
    assert_array_equal(sq_distances, ref_sq)  # integer data: exact either way
    assert matches[0] == matches[1] == 3 and matches[2] == 77


def test_pair_squared_distances_against_formula(rng):
    """Each pair's value is sum((x - y)^2), whatever the pairs around it."""
    X_query = rng.normal(size=(30, 9))
    X_ref = rng.normal(size=(50, 9))
    # Ragged rows: some with the most common count, some with fewer.
    rows = np.sort(rng.integers(0, 30, size=200))
    columns = rng.integers(0, 50, size=200)
    out = pair_squared_distances(X_query, rows, X_ref, columns)
    expected = ((X_query[rows] - X_ref[columns]) ** 2).sum(axis=1)
    assert_allclose(out, expected, rtol=1e-14)
    single = [
        pair_squared_distances(X_query, rows[p : p + 1], X_ref, columns[p : p + 1])
        for p in range(200)
    ]
    assert_array_equal(out, np.concatenate(single))
    sparse_out = pair_squared_distances(
        sparse.csr_matrix(X_query), rows, sparse.csr_matrix(X_ref), columns
    )
    assert_allclose(sparse_out, expected, rtol=1e-14)
    assert pair_squared_distances(X_query, rows[:0], X_ref, columns[:0]).shape == (0,)
