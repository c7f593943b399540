"""Tests of the cache-friendly numbering of points (fasttsne.tsne._layout)."""

import numpy as np
import pytest
from numpy.testing import assert_array_equal

from fasttsne._neighbors import nearest_neighbors
from fasttsne.tsne._layout import (
    _callback_in_input_order,
    _in_input_order,
    _locality_order,
)


def _knn_arrays(X, k):
    """The kNN arrays as joint_probabilities hands them over: int32, CSR indptr."""
    indices, _ = nearest_neighbors(X, k)
    indptr = np.arange(0, X.shape[0] * k + 1, k, dtype=np.int32)
    return indices.astype(np.int32), indptr


def _edge_spans(indices, numbering):
    """|number(i) - number(j)| over every kNN edge (i, j)."""
    rows = np.repeat(np.arange(indices.shape[0]), indices.shape[1])
    return np.abs(numbering[rows] - numbering[indices.ravel()])


def test_locality_order_recovers_a_shuffled_chain(rng):
    """Points on a line, shuffled: neighbours end up a few numbers apart."""
    n_samples, k = 2000, 6
    X = rng.permutation(np.arange(n_samples, dtype=np.float64))[:, None]
    indices, indptr = _knn_arrays(X, k)
    order = _locality_order(indices, indptr)
    assert order.dtype == np.intp
    assert_array_equal(np.sort(order), np.arange(n_samples))
    numbering = np.empty(n_samples, dtype=np.intp)
    numbering[order] = np.arange(n_samples)
    # In sorted order the widest edge spans k positions; a breadth-first
    # numbering of the chain stays within a small multiple of that, while
    # the shuffled input spans most of the range.
    assert _edge_spans(indices, numbering).max() <= 2 * k
    assert _edge_spans(indices, np.arange(n_samples)).max() > n_samples // 2


def test_locality_order_groups_clusters(rng):
    """Well-separated clusters, interleaved in the input, come out in runs."""
    labels = rng.integers(0, 5, size=1500)
    centers = rng.normal(scale=100.0, size=(5, 4))
    X = centers[labels] + rng.normal(size=(1500, 4))
    order = _locality_order(*_knn_arrays(X, 10))
    # Out-edges only: points that are no other point's neighbour are visited
    # on their own (first, in reverse order), so the clusters are not
    # strictly contiguous, but nearly.
    assert np.count_nonzero(np.diff(labels)) > 1000
    assert np.count_nonzero(np.diff(labels[order])) < 50


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_in_input_order_inverts_the_numbering(rng, dtype):
    """Rows numbered in ``order`` come back to the input's rows, bitwise."""
    Y = rng.normal(size=(50, 2)).astype(dtype)
    order = rng.permutation(50)
    back = _in_input_order(Y[order], order)
    assert back.dtype == dtype
    assert_array_equal(back, Y)


def test_callback_sees_rows_in_input_order(rng):
    """The wrapped callback gets input-order rows and passes its answer on."""
    Y = rng.normal(size=(20, 2))
    order = rng.permutation(20)
    seen = []

    def callback(iteration, kl, embedding):
        seen.append((iteration, kl, embedding.copy()))
        return iteration >= 50

    wrapped = _callback_in_input_order(callback, order)
    assert wrapped(10, 1.5, Y[order]) is False
    assert wrapped(50, 1.25, Y[order]) is True
    assert [s[:2] for s in seen] == [(10, 1.5), (50, 1.25)]
    assert_array_equal(seen[0][2], Y)
    assert_array_equal(seen[1][2], Y)
