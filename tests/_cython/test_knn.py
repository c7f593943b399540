"""Tests of ``fasttsne._cython._knn.ranked_candidates`` against NumPy.

The oracle ranks every reference of a query by ``|y|^2 - 2 x.y`` computed in
float64; the kernel's float32 values must keep the same smallest entries
(data with well separated values, so that rounding cannot swap them).
"""

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from threadpoolctl import threadpool_limits

from fasttsne._cython._knn import ranked_candidates


def _data(n_points, n_features, seed=0):
    rng = np.random.default_rng(seed)
    points = rng.normal(size=(n_points, n_features)).astype(np.float32)
    sq_norms = (points.astype(np.float64) ** 2).sum(axis=1).astype(np.float32)
    return points, sq_norms


def _oracle(points, sq_norms, query_rows, starts, stops, n_keep):
    """Sorted (values, columns) of the n_keep smallest D' of each query."""
    columns = np.concatenate([np.arange(a, b) for a, b in zip(starts, stops)])
    P = points.astype(np.float64)
    values = sq_norms[columns].astype(np.float64)[None, :] - 2.0 * (
        P[query_rows] @ P[columns].T
    )
    values[columns[None, :] == query_rows[:, None]] = np.inf
    order = np.argsort(values, axis=1, kind="stable")[:, :n_keep]
    return np.take_along_axis(values, order, axis=1), columns[order]


def _sorted(values, columns):
    order = np.argsort(values, axis=1, kind="stable")
    return np.take_along_axis(values, order, axis=1), np.take_along_axis(
        columns, order, axis=1
    )


@pytest.mark.parametrize("n_threads", [1, 2, 3])
@pytest.mark.parametrize("n_keep", [1, 7, 40])
def test_ranked_candidates_keep_the_smallest(n_threads, n_keep):
    """Over several ranges (block edges inside them), each query keeps its
    n_keep smallest values, itself excluded, whatever the threads."""
    points, sq_norms = _data(3000, 13)
    query_rows = np.array([0, 5, 1100, 1023, 2999, 400] * 50, dtype=np.intp)
    starts = np.array([0, 1020, 2500], dtype=np.intp)
    stops = np.array([700, 2400, 3000], dtype=np.intp)
    with threadpool_limits(limits=1, user_api="blas"):
        values, columns = ranked_candidates(
            points, sq_norms, query_rows, starts, stops, n_keep, n_threads
        )
    values, columns = _sorted(values, columns)
    ref_values, ref_columns = _oracle(
        points, sq_norms, query_rows, starts, stops, n_keep
    )
    assert values.dtype == np.float32 and columns.dtype == np.intp
    assert_array_equal(columns, ref_columns)
    assert_allclose(values, ref_values, rtol=1e-5, atol=1e-4)


def test_ranked_candidates_pad_when_references_run_out():
    """Fewer references than n_keep: all of them, then inf and -1."""
    points, sq_norms = _data(50, 4)
    query_rows = np.array([3, 10], dtype=np.intp)
    starts, stops = np.array([0], dtype=np.intp), np.array([6], dtype=np.intp)
    with threadpool_limits(limits=1, user_api="blas"):
        values, columns = ranked_candidates(
            points, sq_norms, query_rows, starts, stops, 8, 1
        )
    values, columns = _sorted(values, columns)
    # Query 3 is one of the six references and does not count itself.
    assert_array_equal(np.sort(columns[0, :5]), [0, 1, 2, 4, 5])
    assert_array_equal(columns[0, 5:], -1)
    assert np.isinf(values[0, 5:]).all()
    assert_array_equal(np.sort(columns[1, :6]), np.arange(6))
    assert_array_equal(columns[1, 6:], -1)


def test_ranked_candidates_many_equal_values():
    """Equal rows: every kept value is the smallest one, no column twice."""
    points = np.ones((2000, 3), dtype=np.float32)
    points[::7] = 2.0
    sq_norms = (points**2).sum(axis=1)
    query_rows = np.array([0, 1, 2], dtype=np.intp)
    starts, stops = np.array([0], dtype=np.intp), np.array([2000], dtype=np.intp)
    with threadpool_limits(limits=1, user_api="blas"):
        values, columns = ranked_candidates(
            points, sq_norms, query_rows, starts, stops, 50, 2
        )
    for row in range(3):
        assert np.unique(columns[row]).shape[0] == 50
        assert (points[columns[row]] == points[query_rows[row]]).all()
        assert query_rows[row] not in columns[row]


def test_ranked_candidates_empty_queries():
    """No query rows: empty outputs of the right shape."""
    points, sq_norms = _data(10, 2)
    empty = np.empty(0, dtype=np.intp)
    values, columns = ranked_candidates(
        points,
        sq_norms,
        empty,
        np.array([0], dtype=np.intp),
        np.array([10], dtype=np.intp),
        3,
        1,
    )
    assert values.shape == (0, 3) and columns.shape == (0, 3)


def test_ranked_candidates_reject_bad_arguments():
    """Out-of-range rows or ranges and a bad n_keep raise ValueError."""
    points, sq_norms = _data(10, 2)
    rows = np.array([1], dtype=np.intp)
    starts, stops = np.array([0], dtype=np.intp), np.array([10], dtype=np.intp)
    with pytest.raises(ValueError, match="n_keep"):
        ranked_candidates(points, sq_norms, rows, starts, stops, 0, 1)
    with pytest.raises(ValueError, match="range"):
        ranked_candidates(
            points, sq_norms, rows, starts, np.array([11], dtype=np.intp), 3, 1
        )
    with pytest.raises(ValueError, match="query row"):
        ranked_candidates(
            points, sq_norms, np.array([10], dtype=np.intp), starts, stops, 3, 1
        )
    with pytest.raises(ValueError, match="sq_norms"):
        ranked_candidates(points, sq_norms[:5], rows, starts, stops, 3, 1)
    with pytest.raises(ValueError, match="column"):
        ranked_candidates(
            np.empty((10, 0), dtype=np.float32), sq_norms, rows, starts, stops, 3, 1
        )
