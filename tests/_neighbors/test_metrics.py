"""Tests of the searches for other metrics (fasttsne._neighbors._metrics)."""

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from scipy.spatial.distance import cdist
from sklearn.neighbors import NearestNeighbors

from fasttsne._neighbors import nearest_neighbors, new_point_neighbors
from fasttsne._neighbors._metrics import check_metric, is_euclidean


@pytest.mark.parametrize(
    "metric, metric_params",
    [("manhattan", None), ("cosine", None), ("minkowski", {"p": 3}), ("l2", None)],
)
def test_other_metrics_match_sklearn(rng, metric, metric_params):
    """Other metrics go through (or agree with) NearestNeighbors."""
    X = rng.normal(size=(400, 8))
    indices, distances = nearest_neighbors(
        X, 10, metric=metric, metric_params=metric_params
    )
    knn = NearestNeighbors(n_neighbors=10, metric=metric, **(metric_params or {}))
    ref_distances, ref_indices = knn.fit(X).kneighbors()
    assert_array_equal(indices, ref_indices)
    assert_allclose(distances, ref_distances, rtol=1e-9)  # different formulas


def test_callable_metric(rng):
    """A callable metric gives the same neighbours as its named twin."""
    X = rng.normal(size=(150, 4))
    indices, distances = nearest_neighbors(
        X, 5, metric=lambda a, b: np.abs(a - b).sum()
    )
    ref_indices, ref_distances = nearest_neighbors(X, 5, metric="manhattan")
    assert_array_equal(indices, ref_indices)
    assert_allclose(distances, ref_distances, rtol=1e-12)


@pytest.mark.parametrize(
    "metric, scipy_name",
    [("manhattan", "cityblock"), ("cosine", "cosine"), ("chebyshev", "chebyshev")],
)
def test_new_points_other_metrics_against_cdist(rng, metric, scipy_name):
    """New points: the k smallest of cdist's row, ties by index, and matches."""
    X_fit = rng.normal(size=(300, 5))
    X_new = np.vstack([rng.normal(size=(25, 5)), X_fit[[8, 8, 250]]])
    indices, distances, match = new_point_neighbors(
        X_new, X_fit, 12, metric=metric, n_threads=2
    )
    D = cdist(X_new, X_fit, scipy_name)
    columns = np.broadcast_to(np.arange(300), D.shape)
    order = np.lexsort((columns, D), axis=1)[:, :12]
    assert_array_equal(indices, order)
    assert_allclose(distances, np.take_along_axis(D, order, axis=1), atol=1e-12)
    assert_array_equal(match, [-1] * 25 + [8, 8, 250])


def test_metric_names_and_euclidean_spellings():
    """Unknown names raise; every euclidean spelling is recognised as one."""
    check_metric("cosine")
    check_metric(len)  # any callable
    for bad in ("euclidian", "not-a-metric", 3):
        with pytest.raises(ValueError, match="Unknown metric"):
            check_metric(bad)
    assert is_euclidean("euclidean", None) and is_euclidean("l2", {})
    assert is_euclidean("minkowski", None) and is_euclidean("minkowski", {"p": 2})
    assert not is_euclidean("minkowski", {"p": 3})
    assert not is_euclidean("minkowski", {"p": 2, "w": np.ones(3)})
    assert not is_euclidean("euclidean", {"V": 1})
    assert not is_euclidean("sqeuclidean", None)


def test_unknown_metric_raises():
    """The entry points name an unknown metric."""
    with pytest.raises(ValueError, match="Unknown metric"):
        nearest_neighbors(np.ones((4, 2)), 2, metric="not-a-metric")
    with pytest.raises(ValueError, match="Unknown metric"):
        new_point_neighbors(np.ones((1, 2)), np.ones((4, 2)), 2, metric="euclidian")
