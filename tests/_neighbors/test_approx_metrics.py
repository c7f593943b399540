"""The approximate search for cosine and correlation, and what "approx" and
"auto" do with inputs the approximate search cannot serve."""

import warnings

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from scipy import sparse
from scipy.spatial.distance import cdist

from fasttsne._neighbors import _APPROX_MIN_SAMPLES, _resolve_method, nearest_neighbors
from fasttsne._neighbors._hnsw import unit_rows

pytest.importorskip("faiss")


def _scaled_clusters(rng, n_samples, n_features=20):
    """Gaussian clusters whose rows are rescaled at random.

    The scales change every euclidean neighbourhood but no cosine one, so a
    search that ranked by the euclidean distance would fail the tests.
    """
    centers = rng.normal(scale=3.0, size=(20, n_features))
    X = centers[rng.integers(0, 20, n_samples)] + rng.normal(
        size=(n_samples, n_features)
    )
    return X * rng.uniform(0.2, 5.0, size=(n_samples, 1))


def _oracle(X, queries, k, metric):
    """Exact kNN of the rows ``queries`` (self excluded) from scipy's cdist."""
    D = cdist(X[queries], X, metric)
    D[np.arange(queries.shape[0]), queries] = np.inf
    columns = np.broadcast_to(np.arange(X.shape[0]), D.shape)
    order = np.lexsort((columns, D), axis=1)[:, :k]
    return order, np.take_along_axis(D, order, axis=1)


def _recall(found, truth):
    """Mean fraction of the true neighbours found, per row."""
    hits = [np.intersect1d(a, b).size for a, b in zip(found, truth)]
    return float(np.mean(hits)) / truth.shape[1]


@pytest.mark.parametrize("metric", ["cosine", "correlation"])
def test_approx_angular_metrics_against_cdist(rng, metric):
    """Recall, the metric's own distances, and threads-independence."""
    X = _scaled_clusters(rng, 3000)
    X[100:104] = X[7] * 3.0  # the same direction: cosine distance 0
    indices, distances = nearest_neighbors(
        X, 15, metric=metric, method="approx", n_threads=2, random_state=0
    )
    queries = np.arange(3000)
    truth, truth_distances = _oracle(X, queries, 15, metric)
    assert _recall(indices, truth) >= 0.98
    # Half the squared distance of unit rows: the metric up to rounding.
    same = indices == truth
    assert_allclose(distances[same], truth_distances[same], rtol=1e-9, atol=1e-12)
    assert np.all(np.diff(distances, axis=1) >= 0)
    assert not np.any(indices == queries[:, None])
    assert_array_equal(indices[7, :4], np.arange(100, 104))
    assert_allclose(distances[7, :4], 0.0, atol=1e-15)
    again = nearest_neighbors(
        X, 15, metric=metric, method="approx", n_threads=1, random_state=0
    )
    assert_array_equal(again[0], indices)
    assert_array_equal(again[1], distances)


@pytest.mark.slow
def test_approx_cosine_recall_at_50k_points(rng):
    """Recall >= 0.98 against exact cosine neighbours at 50,000 points.

    The oracle answers 1,000 random query rows against all points.
    """
    X = _scaled_clusters(rng, 50_000)
    indices, _ = nearest_neighbors(
        X, 30, metric="cosine", method="approx", n_threads=2, random_state=0
    )
    queries = np.sort(rng.choice(50_000, 1000, replace=False))
    truth, _ = _oracle(X, queries, 30, "cosine")
    assert _recall(indices[queries], truth) >= 0.98


def test_unit_rows_and_zero_rows(rng):
    """Unit rows (centred for correlation); a row without direction is at 1."""
    X = rng.normal(size=(300, 6))
    X[5] = 0.0
    U, zero = unit_rows(X, "cosine")
    assert_array_equal(np.flatnonzero(zero), [5])
    assert_allclose(np.linalg.norm(np.delete(U, 5, axis=0), axis=1), 1.0)
    U, zero = unit_rows(X + 10.0, "correlation")  # centring removes the shift
    assert_allclose(U.mean(axis=1), 0.0, atol=1e-14)  # rounding of the mean
    assert_array_equal(np.flatnonzero(zero), [5])  # a constant row
    indices, distances = nearest_neighbors(
        X, 5, metric="cosine", method="approx", random_state=0
    )
    # As sklearn's cosine_distances: 1 between a zero row and any other.
    assert_array_equal(distances[5], 1.0)
    assert np.all(distances[indices == 5] == 1.0)
    with pytest.raises(ValueError, match="metric"):
        unit_rows(X, "manhattan")


@pytest.mark.parametrize(
    "data, metric, metric_params, match",
    [
        ("sparse", "euclidean", None, "dense data"),
        ("sparse", "cosine", None, "dense data"),
        ("dense", "manhattan", None, "not 'manhattan'"),
        ("dense", "minkowski", {"p": 3}, "metric_params"),
        ("dense", "precomputed", None, "precomputed distances"),
    ],
)
def test_approx_raises_and_auto_warns_where_unsupported(
    data, metric, metric_params, match
):
    """ "approx" raises ValueError; "auto" warns where it would have used it.

    Only the input's type and row count decide, so empty matrices of the
    sizes around ``_APPROX_MIN_SAMPLES`` stand in for data.
    """
    make = sparse.csr_matrix if data == "sparse" else np.zeros
    large, small = make((_APPROX_MIN_SAMPLES, 3)), make((100, 3))
    with pytest.raises(ValueError, match=match):
        _resolve_method(small, metric, metric_params, "approx")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert _resolve_method(small, metric, metric_params, "auto") == "exact"
        assert _resolve_method(large, metric, metric_params, "exact") == "exact"
    if metric == "precomputed":
        # Precomputed distances are never searched: nothing to warn about.
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            assert _resolve_method(large, metric, metric_params, "auto") == "exact"
        return
    with pytest.warns(UserWarning, match=f'neighbors="auto" takes the exact.*{match}'):
        assert _resolve_method(large, metric, metric_params, "auto") == "exact"


@pytest.mark.parametrize("metric", ["euclidean", "cosine", "correlation"])
def test_auto_takes_approx_for_supported_metrics(metric):
    """From _APPROX_MIN_SAMPLES samples on, "auto" is "approx", silently."""
    X = np.zeros((_APPROX_MIN_SAMPLES, 3))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert _resolve_method(X, metric, None, "auto") == "approx"
        assert _resolve_method(X[:-1], metric, None, "auto") == "exact"
