"""Tests of fasttsne.tsne._affinity and the perplexity kernel against slow oracles."""

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from scipy import sparse
from scipy.spatial.distance import cdist
from sklearn.neighbors import NearestNeighbors, kneighbors_graph

from fasttsne.tsne._affinity import (
    _approx_euclidean_knn,
    _rerank,
    joint_probabilities,
    nearest_neighbors,
    new_point_affinities,
)
from fasttsne._cython._perplexity import binary_search_perplexity, symmetrize


def _perplexity_of(P):
    """exp(H) of each row of conditional probabilities (0 log 0 = 0)."""
    logs = np.log(np.where(P > 0, P, 1.0))
    return np.exp(-(P * logs).sum(axis=1))


def _oracle_conditional(distances, perplexity):
    """Row-wise bisection on beta in NumPy (slow, simple, independent)."""
    out = np.empty_like(distances, dtype=np.float64)
    target = np.log(perplexity)
    for i, row in enumerate(distances.astype(np.float64)):
        shifted = row - row.min()
        lo, hi = 0.0, 1.0
        while True:  # grow hi until the entropy is below the target
            p = np.exp(-hi * shifted)
            p /= p.sum()
            if -(p[p > 0] * np.log(p[p > 0])).sum() < target:
                break
            lo, hi = hi, 2.0 * hi
        for _ in range(200):
            beta = 0.5 * (lo + hi)
            p = np.exp(-beta * shifted)
            p /= p.sum()
            if -(p[p > 0] * np.log(p[p > 0])).sum() > target:
                lo = beta
            else:
                hi = beta
        out[i] = p
    return out


def _oracle_knn(X_query, X_ref, k, self_query):
    """kNN from the full exact distance matrix, ties broken by index."""
    D = cdist(X_query, X_ref, "sqeuclidean")
    if self_query:
        np.fill_diagonal(D, np.inf)
    columns = np.broadcast_to(np.arange(D.shape[1]), D.shape)
    order = np.lexsort((columns, D), axis=1)[:, :k]
    return order, np.take_along_axis(D, order, axis=1)


# --------------------------------------------------------------------------
# Perplexity calibration
# --------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("perplexity", [1.5, 5.0, 30.0, 89.0])
def test_calibration_hits_target_perplexity(rng, dtype, perplexity):
    """2^H of every row matches the perplexity to 1e-5 relative."""
    distances = (rng.gamma(2.0, size=(300, 90)) * 50).astype(dtype)
    P = binary_search_perplexity(distances, perplexity, 2)
    assert P.dtype == np.float64 and P.shape == distances.shape
    assert_allclose(P.sum(axis=1), 1.0, rtol=1e-12)
    entropy_bits = -(P * np.log2(np.where(P > 0, P, 1.0))).sum(axis=1)
    assert_allclose(2.0**entropy_bits, perplexity, rtol=1e-5)


def test_calibration_matches_bisection_oracle(rng):
    """The Newton/bisection kernel agrees with a plain NumPy bisection."""
    distances = rng.gamma(2.0, size=(40, 30)) ** 2
    P = binary_search_perplexity(distances, 7.0, 1)
    # The oracle's 200 bisection steps and our tol=1e-9 leave ~1e-9 apart.
    assert_allclose(P, _oracle_conditional(distances, 7.0), rtol=1e-6, atol=1e-12)


@pytest.mark.parametrize("scale", [1e-30, 1.0, 1e30])
def test_calibration_is_scale_free(rng, scale):
    """Tiny or huge distances neither underflow nor change the result."""
    distances = rng.gamma(2.0, size=(50, 20))
    P = binary_search_perplexity(distances * scale, 5.0, 1)
    assert np.all(np.isfinite(P))
    assert_allclose(_perplexity_of(P), 5.0, rtol=1e-6)
    # Scaling distances only rescales beta: p is the same up to rounding.
    assert_allclose(P, binary_search_perplexity(distances, 5.0, 1), rtol=1e-6)


def test_calibration_degenerate_rows():
    """Equal distances, duplicates at 0, and unreachable targets are stable."""
    distances = np.array(
        [
            [0.0, 0.0, 0.0, 0.0, 0.0],  # all duplicates
            [3.0, 3.0, 3.0, 3.0, 3.0],  # all equal
            [0.0, 0.0, 1.0, 2.0, 3.0],  # two duplicates, target reachable
            [0.0, 0.0, 0.0, 1.0, 2.0],  # three duplicates > perplexity 2.5
            [1.0, 2.0, 3.0, 4.0, 5.0],  # target above the ceiling log(k)
        ]
    )
    targets = [2.5, 2.5, 2.5, 2.5, 2.5]
    P, beta = binary_search_perplexity(distances[:4], 2.5, 1, return_beta=True)
    assert_allclose(P[0], 0.2)
    assert_allclose(P[1], 0.2)
    assert_allclose(_perplexity_of(P[2:3]), targets[2], rtol=1e-6)
    assert_allclose(P[3], [1 / 3, 1 / 3, 1 / 3, 0.0, 0.0])
    assert beta[0] == 0.0 and beta[1] == 0.0 and np.isinf(beta[3])
    P_wide = binary_search_perplexity(distances[4:], 10.0, 1)
    assert_allclose(P_wide, 0.2)


def test_calibration_single_neighbour():
    """k = 1 gives probability 1 whatever the perplexity."""
    P = binary_search_perplexity(np.array([[2.0], [0.0]]), 1.0, 1)
    assert_array_equal(P, [[1.0], [1.0]])


@pytest.mark.parametrize("bad", [-1.0, np.nan, np.inf])
def test_calibration_rejects_invalid_distances(bad):
    """Negative, NaN and infinite distances raise a ValueError."""
    distances = np.ones((3, 4))
    distances[1, 2] = bad
    with pytest.raises(ValueError, match="finite and non-negative"):
        binary_search_perplexity(distances, 2.0, 1)


def test_calibration_threads_bitwise(rng):
    """1 and 2 threads give bitwise identical probabilities."""
    distances = rng.gamma(2.0, size=(500, 60))
    assert_array_equal(
        binary_search_perplexity(distances, 20.0, 1),
        binary_search_perplexity(distances, 20.0, 2),
    )


# --------------------------------------------------------------------------
# Nearest neighbours
# --------------------------------------------------------------------------


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
    ref_indices, ref_sq = _oracle_knn(X, X, 40, self_query=True)
    assert_array_equal(indices, ref_indices)
    assert_array_equal(distances, np.sqrt(ref_sq))


def test_exact_knn_large_duplicate_groups(rng):
    """Groups of more than k identical rows (incl. -0.0) match the oracle."""
    X = rng.integers(0, 3, size=(700, 4)).astype(np.float64)
    X[:200] = 0.0
    X[300:350] = 1.0
    X[5] = -0.0  # equal to 0.0 by value, so a member of the first group
    indices, distances = nearest_neighbors(X, 30, n_threads=2)
    ref_indices, ref_sq = _oracle_knn(X, X, 30, self_query=True)
    assert_array_equal(indices, ref_indices)
    assert_array_equal(distances, np.sqrt(ref_sq))
    X_new = np.vstack([X[[0, 5, 300, 600]], rng.integers(0, 3, size=(20, 4))])
    batch = new_point_affinities(X_new, X, 10.0, n_threads=2)
    P_new, match = batch
    new_indices, _ = _oracle_knn(X_new, X, 30, self_query=False)
    for i in range(24):  # zero affinities are not stored: a subset
        row = P_new.indices[P_new.indptr[i] : P_new.indptr[i + 1]]
        assert np.isin(row, new_indices[i]).all()
    expected = [np.flatnonzero((X == row).all(axis=1))[0] for row in X_new[:4]]
    assert_array_equal(match[:4], expected)
    assert match[0] == 0 and match[1] == 0
    rows = [new_point_affinities(X_new[i : i + 1], X, 10.0) for i in range(24)]
    _assert_same_rows(batch, rows)


def test_exact_knn_large_offset_data(rng):
    """Data far from the origin (cancellation in the BLAS formula) stay exact."""
    X = rng.normal(size=(400, 10)) + 1e6
    indices, distances = nearest_neighbors(X, 15)
    ref_indices, ref_sq = _oracle_knn(X, X, 15, self_query=True)
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
    P = joint_probabilities(X, 3.0)
    assert np.all(np.isfinite(P.data)) and np.all(P.data > 0)
    assert_allclose(P.sum(), 1.0, rtol=1e-12)


def test_knn_threads_bitwise(rng):
    """1 and 2 threads give identical neighbours and distances."""
    X = rng.normal(size=(1200, 20))
    first = nearest_neighbors(X, 30, n_threads=1)
    second = nearest_neighbors(X, 30, n_threads=2)
    assert_array_equal(first[0], second[0])
    assert_array_equal(first[1], second[1])


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


def test_invalid_inputs_raise():
    """Clear ValueErrors for bad precomputed matrices and unknown metrics."""
    with pytest.raises(ValueError, match="square"):
        nearest_neighbors(np.ones((4, 5)), 2, metric="precomputed")
    D = np.ones((4, 4))
    D[1, 2] = -1.0
    with pytest.raises(ValueError, match="non-negative"):
        nearest_neighbors(D, 2, metric="precomputed")
    with pytest.raises(ValueError, match="non-negative"):
        joint_probabilities(sparse.csr_matrix(D), 0.5, metric="precomputed")
    with pytest.raises(ValueError, match="Unknown metric"):
        nearest_neighbors(np.ones((4, 2)), 2, metric="not-a-metric")
    with pytest.raises(ValueError, match="Unknown metric"):
        joint_probabilities(np.ones((4, 2)), 1.0, metric="euclidian")
    graph = sparse.csr_matrix(np.eye(5) + np.diag(np.ones(4), 1))
    with pytest.raises(ValueError, match="neighbours per sample"):
        nearest_neighbors(graph, 2, metric="precomputed")
    with pytest.raises(ValueError, match="n_neighbors"):
        nearest_neighbors(np.ones((4, 2)), 4)
    with pytest.raises(ValueError, match="method"):
        nearest_neighbors(np.ones((4, 2)), 2, method="fast")


# --------------------------------------------------------------------------
# Joint probabilities
# --------------------------------------------------------------------------


def _check_joint(P, n_samples):
    """Structural contract of P."""
    assert sparse.isspmatrix_csr(P) and P.dtype == np.float64
    assert P.shape == (n_samples, n_samples)
    assert P.has_sorted_indices
    assert np.all(P.data > 0.0)  # non-negative, no stored zeros
    assert np.all(P.diagonal() == 0.0)
    assert not np.any(P.indices == np.repeat(np.arange(n_samples), np.diff(P.indptr)))
    assert_array_equal((P - P.T).data, 0.0)  # bitwise symmetric
    assert_allclose(P.sum(), 1.0, rtol=1e-12)


@pytest.mark.parametrize("container", ["dense64", "dense32", "csr"])
def test_joint_probabilities_against_dense_oracle(rng, container):
    """P equals the symmetrised oracle conditional probabilities."""
    X = rng.normal(size=(200, 5))
    perplexity = 8.0
    k = int(3 * perplexity)
    ref_indices, ref_sq = _oracle_knn(X, X, k, self_query=True)
    cond = _oracle_conditional(ref_sq, perplexity)
    dense = np.zeros((200, 200))
    np.put_along_axis(dense, ref_indices, cond, axis=1)
    expected = (dense + dense.T) / (dense + dense.T).sum()
    data = {
        "dense64": X,
        "dense32": X.astype(np.float32),
        "csr": sparse.csr_matrix(X),
    }[container]
    P = joint_probabilities(data, perplexity)
    _check_joint(P, 200)
    # float32 input rounds the data (~1e-7); the oracle is converged to ~1e-9.
    rtol = 1e-4 if container == "dense32" else 1e-6
    assert_allclose(P.toarray(), expected, rtol=rtol, atol=1e-12)


def test_joint_probabilities_threads_bitwise(rng):
    """n_threads does not change a bit of P."""
    X = rng.normal(size=(800, 10))
    P1 = joint_probabilities(X, 20.0, n_threads=1)
    P2 = joint_probabilities(X, 20.0, n_threads=2)
    assert_array_equal(P1.indptr, P2.indptr)
    assert_array_equal(P1.indices, P2.indices)
    assert_array_equal(P1.data, P2.data)


def test_precomputed_equals_euclidean(rng):
    """Squared distances given as precomputed reproduce the euclidean P."""
    X = rng.normal(size=(250, 6))
    P = joint_probabilities(X, 10.0)
    P_dense = joint_probabilities(
        cdist(X, X, "sqeuclidean"), 10.0, metric="precomputed"
    )
    graph = kneighbors_graph(X, 40, mode="distance")
    graph.data **= 2
    P_graph = joint_probabilities(graph, 10.0, metric="precomputed")
    for other in (P_dense, P_graph):
        _check_joint(other, 250)
        assert_array_equal(other.indices, P.indices)
        # cdist / sklearn round the distances differently from our exact sums.
        assert_allclose(other.data, P.data, rtol=1e-8)


def test_unsquared_metrics_follow_sklearn_convention(rng):
    """Only "euclidean" is squared: "l2" equals precomputed plain distances."""
    X = rng.normal(size=(150, 4))
    P_l2 = joint_probabilities(X, 5.0, metric="l2")
    P_pre = joint_probabilities(cdist(X, X), 5.0, metric="precomputed")
    assert_allclose(P_l2.toarray(), P_pre.toarray(), rtol=1e-8, atol=1e-15)
    P_eucl = joint_probabilities(X, 5.0)
    assert not np.allclose(P_l2.toarray(), P_eucl.toarray())


@pytest.mark.parametrize("n_samples", [2, 3, 5])
def test_joint_probabilities_tiny_inputs(rng, n_samples):
    """A perplexity clipped to (n - 1) / 3 works down to two samples."""
    X = rng.normal(size=(n_samples, 3))
    P = joint_probabilities(X, (n_samples - 1) / 3)
    _check_joint(P, n_samples)


# --------------------------------------------------------------------------
# New points
# --------------------------------------------------------------------------


def _assert_same_rows(batch, rows):
    """A batch result equals the stacked row-by-row results, bitwise."""
    P_batch, match_batch = batch
    P_rows = sparse.vstack([r[0] for r in rows], format="csr")
    assert_array_equal(P_batch.indptr, P_rows.indptr)
    assert_array_equal(P_batch.indices, P_rows.indices)
    assert_array_equal(P_batch.data, P_rows.data)
    assert_array_equal(match_batch, np.concatenate([r[1] for r in rows]))


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
    """Each new row's result is independent of its batch, bitwise."""
    X_fit = rng.normal(size=(700, 12))
    X_fit[10:14] = X_fit[2]  # duplicates in the training set
    X_new = np.vstack([rng.normal(size=(40, 12)), X_fit[[2, 11, 600]]])
    X_new[5] = X_new[6]  # duplicates in the batch
    if metric == "precomputed":
        X_new, X_fit = cdist(X_new, X_fit), None
    elif container == "dense32":
        X_fit, X_new = X_fit.astype(np.float32), X_new.astype(np.float32)
    elif container == "csr":
        X_fit[np.abs(X_fit) < 0.5] = 0.0
        X_new[np.abs(X_new) < 0.5] = 0.0
        X_fit, X_new = sparse.csr_matrix(X_fit), sparse.csr_matrix(X_new)
    batch = new_point_affinities(X_new, X_fit, 10.0, metric=metric, n_threads=2)
    rows = [
        new_point_affinities(X_new[i : i + 1], X_fit, 10.0, metric=metric)
        for i in range(X_new.shape[0])
    ]
    _assert_same_rows(batch, rows)
    P_new, match = batch
    assert P_new.shape == (43, 700) and P_new.dtype == np.float64
    assert P_new.has_sorted_indices and np.all(P_new.data > 0)
    assert_allclose(np.asarray(P_new.sum(axis=1)).ravel(), 1.0, rtol=1e-12)
    assert_array_equal(match[:40], -1)
    assert_array_equal(match[40:], [2, 2, 600])


def test_new_points_training_rows_match(rng):
    """Training rows match themselves (smallest index among duplicates)."""
    X_fit = rng.normal(size=(500, 7))
    X_fit[[20, 30]] = X_fit[40]
    P_new, match = new_point_affinities(X_fit, X_fit, 5.0, n_threads=2)
    expected = np.arange(500)
    expected[[30, 40]] = 20
    assert_array_equal(match, expected)
    # A training row is its own nearest neighbour at distance 0.
    indices = P_new.indices.reshape(500, 15)
    assert np.all((indices == np.arange(500)[:, None]).any(axis=1))
    # Bitwise differences are not matches, even tiny ones.
    X_near = X_fit[:3].copy()
    X_near[:, 0] = np.nextafter(X_near[:, 0], np.inf)
    assert_array_equal(new_point_affinities(X_near, X_fit, 5.0)[1], -1)


def test_new_points_conditional_against_oracle(rng):
    """P_new rows are the oracle conditionals over the k nearest rows."""
    X_fit = rng.normal(size=(300, 5))
    X_new = rng.normal(size=(20, 5))
    P_new, _ = new_point_affinities(X_new, X_fit, 6.0)
    ref_indices, ref_sq = _oracle_knn(X_new, X_fit, 18, self_query=False)
    expected = np.zeros((20, 300))
    np.put_along_axis(expected, ref_indices, _oracle_conditional(ref_sq, 6.0), axis=1)
    assert_allclose(P_new.toarray(), expected, rtol=1e-6, atol=1e-12)


# --------------------------------------------------------------------------
# Approximate neighbours
# --------------------------------------------------------------------------


def _recall(found, truth):
    """Mean fraction of the true neighbours found, per row."""
    hits = [np.intersect1d(a, b).size for a, b in zip(found, truth)]
    return float(np.mean(hits)) / truth.shape[1]


def test_approx_recall_exact_distances_and_determinism(rng):
    """faiss HNSW: high recall, exact distances, same seed gives same graph."""
    pytest.importorskip("faiss")
    centers = rng.normal(scale=4.0, size=(10, 20))
    X = centers[rng.integers(0, 10, size=3000)] + rng.normal(size=(3000, 20))
    X[100:105] = X[7]  # duplicates
    truth, truth_distances = nearest_neighbors(X, 30)
    indices, distances = nearest_neighbors(
        X, 30, method="approx", n_threads=2, random_state=0
    )
    # Measured 0.9999 with these settings; 0.98 is the bound we promise.
    assert _recall(indices, truth) >= 0.98
    assert not np.any(indices == np.arange(3000)[:, None])  # self excluded
    # Distances of the neighbours found are the exact ones, rows sorted.
    same = indices == truth
    assert_array_equal(distances[same], truth_distances[same])
    assert np.all(np.diff(distances, axis=1) >= 0)
    assert_array_equal(distances[7, :5], 0.0)
    assert_array_equal(indices[7, :5], np.arange(100, 105))
    # Deterministic for a fixed random_state, whatever the thread count.
    again = nearest_neighbors(X, 30, method="approx", n_threads=1, random_state=0)
    assert_array_equal(again[0], indices)
    assert_array_equal(again[1], distances)
    # Another seed builds another graph, with the same quality.
    other = nearest_neighbors(X, 30, method="approx", n_threads=2, random_state=1)
    assert _recall(other[0], truth) >= 0.98
    # joint_probabilities accepts it and keeps the contract of P.
    P = joint_probabilities(X, 10.0, neighbors="approx", random_state=0)
    _check_joint(P, 3000)


def test_approx_query_batches_do_not_change_the_result(rng):
    """Searching in batches (with a ragged last one) is bitwise the same."""
    pytest.importorskip("faiss")
    X = rng.normal(size=(1500, 8))
    whole = _approx_euclidean_knn(X, 15, n_threads=2, random_state=0)
    batched = _approx_euclidean_knn(X, 15, n_threads=2, random_state=0, batch_size=400)
    assert_array_equal(batched[0], whole[0])
    assert_array_equal(batched[1], whole[1])


def _random_conditional(rng, n_samples, n_neighbors, index_dtype):
    """A CSR kNN-like matrix: sorted rows, no diagonal, some rows sparser."""
    rows = []
    for i in range(n_samples):
        others = np.delete(np.arange(n_samples), i)
        size = rng.integers(0, n_neighbors + 1)
        rows.append(np.sort(rng.choice(others, size=size, replace=False)))
    indptr = np.concatenate([[0], np.cumsum([len(r) for r in rows])])
    indices = np.concatenate(rows).astype(index_dtype)
    data = rng.random(indices.shape[0])
    return sparse.csr_matrix(
        (data, indices, indptr.astype(index_dtype)), shape=(n_samples, n_samples)
    )


@pytest.mark.parametrize("index_dtype", [np.int32, np.int64])
@pytest.mark.parametrize("n_samples", [1, 2, 7, 300])
def test_symmetrize_equals_scipy_bitwise(rng, index_dtype, n_samples):
    """A + A^T without A^T: the same bits as scipy's sum, any thread count."""
    A = _random_conditional(rng, n_samples, min(n_samples - 1, 12), index_dtype)
    # scipy narrows int64 index arrays on construction: pass the raw ones.
    indices = A.indices.astype(index_dtype)
    indptr = A.indptr.astype(index_dtype)
    expected = (A + A.T).tocsr()
    expected.sort_indices()
    for n_threads in (1, 2, 4):
        data, out_indices, out_indptr = symmetrize(A.data, indices, indptr, n_threads)
        assert out_indices.dtype == index_dtype and out_indptr.dtype == index_dtype
        assert_array_equal(out_indptr, expected.indptr)
        assert_array_equal(out_indices, expected.indices)
        assert_array_equal(data, expected.data)
        result = sparse.csr_matrix((data, out_indices, out_indptr), shape=A.shape)
        assert_array_equal(result.toarray(), result.toarray().T)


def test_symmetrize_rejects_malformed_input():
    """Each malformation is named: bad indices, diagonal, order, shapes."""
    data = np.ones(2)
    for indices, indptr, match in [
        ([1, 2], [0, 2, 2], r"lie in \[0, 2\)"),  # column 2 of a 2 x 2
        ([0, 1], [0, 1, 2], "no stored diagonal"),  # (0, 0)
        ([2, 1], [0, 2, 2, 2], "sorted, unique"),  # row 0 holds 2, then 1
        ([1, 1], [0, 2, 2], "sorted, unique"),
        ([1, 0], [0, 3, 2], "non-decreasing"),
        ([1, 0], [1, 1, 2], "starting at 0"),
    ]:
        with pytest.raises(ValueError, match=match):
            symmetrize(data, np.array(indices, np.int32), np.array(indptr, np.int32), 1)
    three = np.ones(3)
    with pytest.raises(ValueError, match="entries"):
        symmetrize(three, np.array([1, 0], np.int32), np.array([0, 1, 2], np.int32), 1)
    with pytest.raises(ValueError, match="n_threads"):
        symmetrize(data, np.array([1, 0], np.int32), np.array([0, 1, 2], np.int32), 0)


def test_sparse_precomputed_with_repeated_pairs_is_rejected():
    """A pair stored twice has no meaning as a distance: a clear error."""
    D = sparse.csr_matrix(
        (np.ones(4), np.array([1, 1, 0, 0]), np.array([0, 2, 4])), shape=(2, 2)
    )
    with pytest.raises(ValueError, match="stored more than once"):
        joint_probabilities(D, 0.5, metric="precomputed")


def test_reordered_affinities_are_a_relabelling(rng):
    """reorder=True numbers the points anew and changes nothing else."""
    centers = rng.normal(scale=5.0, size=(4, 6))
    X = centers[rng.integers(0, 4, size=400)] + rng.normal(size=(400, 6))
    P = joint_probabilities(X, 10.0)
    P_local, order = joint_probabilities(X, 10.0, reorder=True)
    assert_array_equal(np.sort(order), np.arange(400))
    _check_joint(P_local, 400)
    expected = P[order][:, order].tocsr()
    expected.sort_indices()
    assert_array_equal(P_local.indptr, expected.indptr)
    assert_array_equal(P_local.indices, expected.indices)
    # Only the normalising sum runs in another order: a rounding apart.
    assert_allclose(P_local.data, expected.data, rtol=1e-14)
    # Neighbours sit closer in the new numbering.
    rows = np.repeat(np.arange(400), np.diff(P_local.indptr))
    spread = np.median(np.abs(P_local.indices - rows))
    rows = np.repeat(np.arange(400), np.diff(P.indptr))
    assert spread < 0.5 * np.median(np.abs(P.indices - rows))


def test_auto_uses_exact_below_threshold(rng):
    """neighbors="auto" is the exact search on small data (bitwise)."""
    X = rng.normal(size=(300, 5))
    P_auto = joint_probabilities(X, 10.0, neighbors="auto")
    P_exact = joint_probabilities(X, 10.0, neighbors="exact")
    assert_array_equal(P_auto.indices, P_exact.indices)
    assert_array_equal(P_auto.data, P_exact.data)


def test_new_points_empty_batch(rng):
    """An empty batch gives an empty (0, n_fit) P and no matches."""
    X_fit = rng.normal(size=(50, 3))
    P_new, match = new_point_affinities(np.empty((0, 3)), X_fit, 5.0)
    assert P_new.shape == (0, 50) and match.shape == (0,)


def test_rerank_redoes_short_rows_exactly(rng):
    """Rows whose graph search came back short (-1) get their exact neighbours."""
    X = rng.normal(size=(60, 4))
    rows = np.array([7, 3, 42])
    truth, truth_distances = nearest_neighbors(X, 5)
    labels = np.column_stack([rows, truth[rows]])  # self first, then k = 5
    labels[0, 3] = -1  # row 7 lost a candidate
    indices, distances = _rerank(X, rows, labels, 5, 1)
    assert_array_equal(indices, truth[rows])
    assert_allclose(np.sqrt(distances), truth_distances[rows], rtol=1e-12)


@pytest.mark.parametrize("n_samples", [2, 5, 300])
def test_approx_on_fewer_points_than_order_clusters(rng, n_samples):
    """Fewer points than k-means centroids: still the exact neighbours."""
    pytest.importorskip("faiss")
    X = rng.normal(size=(n_samples, 3))
    k = min(4, n_samples - 1)
    expected = nearest_neighbors(X, k)
    found = nearest_neighbors(X, k, method="approx", random_state=0)
    assert_array_equal(found[0], expected[0])
    assert_array_equal(found[1], expected[1])
