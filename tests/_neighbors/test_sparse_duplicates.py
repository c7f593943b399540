"""Identical rows: large groups answered directly, new rows matched without a search."""

import numpy as np
import pytest
from numpy.testing import assert_array_equal
from scipy import sparse

from fasttsne import _neighbors
from fasttsne._neighbors import nearest_neighbors, new_point_neighbors
from fasttsne._neighbors._common import as_float64
from fasttsne._neighbors._exact import _duplicate_answers
from tests._oracles import exact_knn


def _grouped(rng):
    """Sparse-ish integer rows with two groups of 200 and 50 identical rows."""
    X = rng.integers(0, 3, size=(700, 12)).astype(np.float64)
    X[rng.random(X.shape) < 0.5] = 0.0
    X[:200] = 0.0
    X[300:350] = [1.0, 0.0, 2.0, 0.0, 0.0, 1.0] * 2
    return X


def _with_stored_zeros(X_dense):
    """CSR of ``X_dense`` with a stored 0.0 in row 310 and a -0.0 in row 5."""
    coo = sparse.coo_matrix(X_dense)
    X = sparse.csr_matrix(
        (
            np.r_[coo.data, 0.0, -0.0],
            (np.r_[coo.row, 310, 5], np.r_[coo.col, 3, 1]),
        ),
        shape=X_dense.shape,
    )
    return as_float64(X)


def test_sparse_duplicate_groups_are_answered_directly(rng):
    """Rows of a group of more than k equal rows skip the quadratic search.

    Stored zeros and -0.0 do not make rows different.
    """
    X = _with_stored_zeros(_grouped(rng))
    assert X.nnz > sparse.csr_matrix(_grouped(rng)).nnz
    answered, answers = _duplicate_answers(X, X, 30, True)
    assert_array_equal(answered, np.r_[0:200, 300:350])
    assert_array_equal(answers[0], np.arange(1, 31))
    assert_array_equal(answers[200], np.r_[301:331])


def test_sparse_duplicate_groups_match_the_oracle(rng):
    """The search on CSR input gives the oracle's neighbours and matches."""
    X_dense = _grouped(rng)
    X = _with_stored_zeros(X_dense)
    indices, distances = nearest_neighbors(X, 30, n_threads=2)
    ref_indices, ref_sq = exact_knn(X_dense, X_dense, 30, self_query=True)
    assert_array_equal(indices, ref_indices)
    assert_array_equal(distances, np.sqrt(ref_sq))
    X_new = np.vstack([X_dense[[0, 300, 600]], rng.integers(0, 3, size=(10, 12))])
    new_indices, new_distances, match = new_point_neighbors(
        sparse.csr_matrix(X_new), X, 30, n_threads=2
    )
    ref_indices, ref_sq = exact_knn(X_new, X_dense, 30, self_query=False)
    assert_array_equal(new_indices, ref_indices)
    assert_array_equal(new_distances, np.sqrt(ref_sq))
    expected = [np.flatnonzero((X_dense == r).all(axis=1))[0] for r in X_new[:3]]
    assert_array_equal(match[:3], expected)


@pytest.mark.parametrize("container", ["dense", "csr"])
def test_new_points_of_other_metrics_need_no_euclidean_search(
    rng, container, monkeypatch
):
    """The training row equal to a new row is found without a second search."""
    X_dense = _grouped(rng)
    X_new = np.vstack([X_dense[[0, 5, 320, 699]], rng.normal(size=(5, 12))])
    X_new[1][X_new[1] == 0] = -0.0
    expected = [
        next((j for j in range(len(X_dense)) if np.array_equal(row, X_dense[j])), -1)
        for row in X_new
    ]
    to = (
        (lambda A: as_float64(sparse.csr_matrix(A)))
        if container == "csr"
        else (lambda A: A)
    )

    def no_search(*args, **kwargs):
        raise AssertionError("a euclidean search ran")

    monkeypatch.setattr(_neighbors, "euclidean_knn", no_search)
    _, _, match = new_point_neighbors(
        to(X_new), to(X_dense), 10, metric="manhattan", n_threads=2
    )
    assert_array_equal(match, expected)
    assert match[0] == 0 and match[-1] == -1
