"""Tests of the entry points of fasttsne._neighbors: method resolution, inputs,
squared distances and batch independence."""

import numpy as np
import pytest
from numpy.testing import assert_array_equal
from scipy import sparse
from scipy.spatial.distance import cdist

from fasttsne._neighbors import nearest_neighbors, new_point_neighbors
from tests._oracles import new_point_batch


def test_auto_uses_exact_below_threshold(rng):
    """method="auto" is the exact search on small data (bitwise)."""
    X = rng.normal(size=(300, 5))
    auto = nearest_neighbors(X, 30, method="auto", random_state=0)
    exact = nearest_neighbors(X, 30, method="exact")
    assert_array_equal(auto[0], exact[0])
    assert_array_equal(auto[1], exact[1])


def test_approx_refuses_what_it_cannot_serve(rng):
    """Sparse data and other metrics: "approx" raises, "exact" answers.

    The approximate search's own inputs (cosine, correlation) and the
    warnings of "auto" are tested in test_approx_metrics.py.
    """
    X = rng.normal(size=(200, 5))
    X[np.abs(X) < 0.5] = 0.0
    for data, metric, match in [
        (sparse.csr_matrix(X), "euclidean", "dense data"),
        (X, "manhattan", "not 'manhattan'"),
    ]:
        with pytest.raises(ValueError, match=match):
            nearest_neighbors(data, 8, metric=metric, method="approx")
        indices, _ = nearest_neighbors(data, 8, metric=metric, method="exact")
        assert indices.shape == (200, 8)


@pytest.mark.parametrize("metric", ["euclidean", "l2", "minkowski"])
def test_squared_returns_the_squares_of_euclidean_distances(rng, metric):
    """squared=True skips the square root of every euclidean spelling."""
    X = rng.normal(size=(200, 4))
    indices, distances = nearest_neighbors(X, 6, metric=metric)
    sq_indices, sq_distances = nearest_neighbors(X, 6, metric=metric, squared=True)
    assert_array_equal(sq_indices, indices)
    assert_array_equal(np.sqrt(sq_distances), distances)
    X_new = rng.normal(size=(10, 4))
    new = new_point_neighbors(X_new, X, 6, metric=metric)
    sq_new = new_point_neighbors(X_new, X, 6, metric=metric, squared=True)
    assert_array_equal(sq_new[0], new[0])
    assert_array_equal(np.sqrt(sq_new[1]), new[1])


def test_squared_leaves_other_metrics_and_precomputed_alone(rng):
    """squared=True changes nothing for non-euclidean or precomputed distances."""
    X = rng.normal(size=(120, 4))
    for data, metric in [(X, "manhattan"), (cdist(X, X), "precomputed")]:
        plain = nearest_neighbors(data, 5, metric=metric)
        squared = nearest_neighbors(data, 5, metric=metric, squared=True)
        assert_array_equal(squared[0], plain[0])
        assert_array_equal(squared[1], plain[1])


def test_invalid_arguments_raise():
    """n_neighbors out of range and unknown methods are named."""
    with pytest.raises(ValueError, match="n_neighbors"):
        nearest_neighbors(np.ones((4, 2)), 4)
    with pytest.raises(ValueError, match="n_neighbors"):
        nearest_neighbors(np.ones((4, 2)), 0)
    with pytest.raises(ValueError, match="method"):
        nearest_neighbors(np.ones((4, 2)), 2, method="fast")


@pytest.mark.parametrize(
    "container, metric",
    [
        ("dense64", "euclidean"),
        ("dense32", "euclidean"),
        ("csr", "euclidean"),
        ("dense64", "cosine"),
        ("dense64", "precomputed"),
    ],
)
def test_new_points_batch_equals_row_by_row(rng, container, metric):
    """Each new row's neighbours are independent of its batch, bitwise."""
    X_fit, X_new = new_point_batch(rng, container, metric)
    batch = new_point_neighbors(X_new, X_fit, 30, metric=metric, n_threads=2)
    rows = [
        new_point_neighbors(X_new[i : i + 1], X_fit, 30, metric=metric)
        for i in range(X_new.shape[0])
    ]
    for field in range(3):
        assert_array_equal(batch[field], np.concatenate([r[field] for r in rows]))
    indices, distances, match = batch
    assert indices.shape == distances.shape == (43, 30)
    assert indices.dtype == np.intp and distances.dtype == np.float64
    assert np.all(np.diff(distances, axis=1) >= 0)
    assert_array_equal(match[:40], -1)
    assert_array_equal(match[40:], [2, 2, 600])


def test_new_points_empty_batch(rng):
    """An empty batch gives empty (0, k) neighbours and no matches."""
    X_fit = rng.normal(size=(50, 3))
    indices, distances, match = new_point_neighbors(np.empty((0, 3)), X_fit, 5)
    assert indices.shape == distances.shape == (0, 5) and match.shape == (0,)
