"""Tests of fasttsne.tsne._affinity and the perplexity kernels against slow oracles.

The neighbour searches under the affinities are tested in tests/_neighbors/.
"""

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from scipy import sparse
from scipy.spatial.distance import cdist
from sklearn.neighbors import kneighbors_graph

from fasttsne.tsne._affinity import (
    _Buffer,
    check_affinities,
    joint_probabilities,
    new_point_affinities,
    precomputed_joint_probabilities,
)
from fasttsne._cython._perplexity import (
    binary_search_perplexity,
    knn_rows_to_csr,
    place_rows,
    symmetric_fill,
    symmetric_row_offsets,
    symmetrize,
)
from fasttsne._neighbors import nearest_neighbors
from fasttsne.tsne._layout import _locality_order
from tests._oracles import (
    dense_joint_probabilities,
    exact_knn,
    knn_graph,
    new_point_batch,
    scipy_joint_from_knn,
)


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


def test_calibration_in_place_and_multiscale(rng):
    """out=distances gives the same bits; several perplexities their mean."""
    distances = rng.gamma(2.0, size=(300, 40))
    expected = binary_search_perplexity(distances, 7.0, 2)
    in_place = distances.copy()
    result = binary_search_perplexity(in_place, 7.0, 2, out=in_place)
    assert result is in_place
    assert_array_equal(in_place, expected)
    scales = [3.0, 7.0, 12.0]
    rows = [binary_search_perplexity(distances, p, 1) for p in scales]
    mean = (rows[0] + rows[1] + rows[2]) / 3  # the order of the old sum
    assert_array_equal(binary_search_perplexity(distances, scales, 2), mean)
    as_float32 = distances.astype(np.float32)
    out = np.empty_like(distances)
    binary_search_perplexity(as_float32, scales, 2, out=out)
    assert_array_equal(out, binary_search_perplexity(as_float32, scales, 1))


def test_calibration_rejects_bad_out_and_perplexities(rng):
    """A partly shared out, a wrong shape or dtype, several betas: ValueError."""
    distances = rng.gamma(2.0, size=(20, 8))
    for out, match in [
        (distances[1:].copy(), "shape"),
        (distances.astype(np.float32), "float64"),
        (np.ascontiguousarray(distances.T).T, "C-contiguous"),
    ]:
        with pytest.raises(ValueError, match=match):
            binary_search_perplexity(distances, 3.0, 1, out=out)
    padded = np.zeros((21, 8))
    padded[1:] = distances
    with pytest.raises(ValueError, match="only by being it"):
        binary_search_perplexity(padded[1:], 3.0, 1, out=padded[:-1])
    with pytest.raises(ValueError, match="single perplexity"):
        binary_search_perplexity(distances, [2.0, 3.0], 1, return_beta=True)
    with pytest.raises(ValueError, match="> 0"):
        binary_search_perplexity(distances, [2.0, -1.0], 1)


def test_calibration_threads_bitwise(rng):
    """1 and 2 threads give bitwise identical probabilities."""
    distances = rng.gamma(2.0, size=(500, 60))
    assert_array_equal(
        binary_search_perplexity(distances, 20.0, 1),
        binary_search_perplexity(distances, 20.0, 2),
    )


# --------------------------------------------------------------------------
# Joint probabilities
# --------------------------------------------------------------------------

# P's values are computed in float64 and rounded to float32 once: each is
# within half an ulp, 2^-24 relative, of its float64 value.
_ROUNDED = 2.0**-24


def _check_joint(P, n_samples):
    """Structural contract of P."""
    assert sparse.isspmatrix_csr(P) and P.dtype == np.float32
    assert P.shape == (n_samples, n_samples)
    assert P.has_sorted_indices
    assert np.all(P.data > 0.0)  # non-negative, no stored zeros
    assert np.all(P.diagonal() == 0.0)
    assert not np.any(P.indices == np.repeat(np.arange(n_samples), np.diff(P.indptr)))
    assert_array_equal((P - P.T).data, 0.0)  # bitwise symmetric
    # Normalised in float64, then each value rounded to float32 once.
    assert_allclose(P.data.sum(dtype=np.float64), 1.0, rtol=_ROUNDED + 1e-12)


@pytest.mark.parametrize("container", ["dense64", "dense32", "csr"])
def test_joint_probabilities_against_dense_oracle(rng, container):
    """P equals the symmetrised oracle conditional probabilities."""
    X = rng.normal(size=(200, 5))
    perplexity = 8.0
    k = int(3 * perplexity)
    ref_indices, ref_sq = exact_knn(X, X, k, self_query=True)
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
    X_fit, X_new = new_point_batch(rng, container, metric)
    batch = new_point_affinities(X_new, X_fit, 10.0, metric=metric, n_threads=2)
    rows = [
        new_point_affinities(X_new[i : i + 1], X_fit, 10.0, metric=metric)
        for i in range(X_new.shape[0])
    ]
    _assert_same_rows(batch, rows)
    P_new, match = batch
    assert P_new.shape == (43, 700) and P_new.dtype == np.float32
    assert P_new.has_sorted_indices and np.all(P_new.data > 0)
    row_sums = np.asarray(P_new.astype(np.float64).sum(axis=1)).ravel()
    assert_allclose(row_sums, 1.0, rtol=_ROUNDED + 1e-12)
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
    ref_indices, ref_sq = exact_knn(X_new, X_fit, 18, self_query=False)
    expected = np.zeros((20, 300))
    np.put_along_axis(expected, ref_indices, _oracle_conditional(ref_sq, 6.0), axis=1)
    assert_allclose(P_new.toarray(), expected, rtol=1e-6, atol=1e-12)


# --------------------------------------------------------------------------
# Neighbour searches seen through the affinities
# --------------------------------------------------------------------------


def test_duplicates_give_finite_affinities(rng):
    """Rows at distance 0 from each other get finite, positive affinities."""
    X = rng.normal(size=(300, 5))
    X[50:60] = X[3]
    P = joint_probabilities(X, 3.0)
    _check_joint(P, 300)
    assert np.all(np.isfinite(P.data))


def test_approx_neighbours_keep_the_contract_of_P(rng):
    """neighbors="approx" gives a valid P, the same for 1 and 2 threads."""
    pytest.importorskip("faiss")
    centers = rng.normal(scale=4.0, size=(10, 20))
    X = centers[rng.integers(0, 10, size=3000)] + rng.normal(size=(3000, 20))
    P = joint_probabilities(X, 10.0, neighbors="approx", random_state=0)
    _check_joint(P, 3000)
    P2 = joint_probabilities(X, 10.0, neighbors="approx", random_state=0, n_threads=2)
    assert_array_equal(P2.indices, P.indices)
    assert_array_equal(P2.data, P.data)


def test_auto_uses_exact_below_threshold(rng):
    """neighbors="auto" is the exact search on small data (bitwise)."""
    X = rng.normal(size=(300, 5))
    P_auto = joint_probabilities(X, 10.0, neighbors="auto")
    P_exact = joint_probabilities(X, 10.0, neighbors="exact")
    assert_array_equal(P_auto.indices, P_exact.indices)
    assert_array_equal(P_auto.data, P_exact.data)


def test_search_errors_reach_the_caller():
    """Bad metrics and precomputed matrices raise through the affinities."""
    D = np.ones((4, 4))
    D[1, 2] = -1.0
    with pytest.raises(ValueError, match="non-negative"):
        joint_probabilities(sparse.csr_matrix(D), 0.5, metric="precomputed")
    with pytest.raises(ValueError, match="Unknown metric"):
        joint_probabilities(np.ones((4, 2)), 1.0, metric="euclidian")
    with pytest.raises(ValueError, match="Unknown metric"):
        new_point_affinities(np.ones((1, 2)), np.ones((4, 2)), 1.0, metric="euclidian")
    repeated = sparse.csr_matrix(
        (np.ones(4), np.array([1, 1, 0, 0]), np.array([0, 2, 4])), shape=(2, 2)
    )
    with pytest.raises(ValueError, match="stored more than once"):
        joint_probabilities(repeated, 0.5, metric="precomputed")


def test_new_points_empty_batch(rng):
    """An empty batch gives an empty (0, n_fit) P and no matches."""
    X_fit = rng.normal(size=(50, 3))
    P_new, match = new_point_affinities(np.empty((0, 3)), X_fit, 5.0)
    assert P_new.shape == (0, 50) and match.shape == (0,)


# --------------------------------------------------------------------------
# Symmetrisation and renumbering
# --------------------------------------------------------------------------


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


@pytest.mark.parametrize("index_dtype", [np.int32, np.int64])
@pytest.mark.parametrize("n_samples", [2, 7, 300])
def test_symmetric_steps_into_float32_are_scipy_rounded(rng, index_dtype, n_samples):
    """The three steps with float32 values out (a fit's P): scipy's A + A^T
    rounded once, bitwise, at 1, 2 and 4 threads, rows placed in two blocks
    (the later first, as a fit places them).

    Tiny values whose sum underflows float32 keep their sign marks (-0.0)
    through the rounding.
    """
    A = _random_conditional(rng, n_samples, min(n_samples - 1, 12), index_dtype)
    A.data[::5] *= 1e-300  # 0 or -0.0 once rounded
    indices = A.indices.astype(index_dtype)
    indptr = A.indptr.astype(index_dtype)
    expected = (A + A.T).tocsr()
    expected.sort_indices()
    for n_threads in (1, 2, 4):
        marked = A.data.copy()
        out_indptr = symmetric_row_offsets(marked, indices, indptr, n_threads)
        data = np.empty(out_indptr[-1], dtype=np.float32)
        out_indices = np.empty(out_indptr[-1], dtype=index_dtype)
        halfway = n_samples // 2
        for start, stop in ((halfway, n_samples), (0, halfway)):
            place_rows(
                marked,
                indices,
                indptr,
                out_indptr,
                data,
                out_indices,
                start,
                stop,
                n_threads,
            )
        symmetric_fill(data, out_indices, indptr, out_indptr, n_threads)
        assert_array_equal(out_indptr, expected.indptr)
        assert_array_equal(out_indices, expected.indices)
        assert_array_equal(data, expected.data.astype(np.float32))
        assert not np.signbit(data).any()


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


def _knn_with_duplicates(rng, n_samples=600, k=12):
    """kNN arrays of clusters with exact duplicates (rows below their floor)."""
    X = rng.normal(size=(n_samples, 4)) + 6.0 * rng.integers(0, 4, (n_samples, 1))
    X[100:105] = X[100]  # 5 copies: 4 neighbours at 0, zeros below the floor
    return nearest_neighbors(X, k, squared=True)


@pytest.mark.parametrize("reorder", [False, True])
@pytest.mark.parametrize("affinity", ["perplexity", "uniform", "multiscale"])
def test_joint_probabilities_bitwise_equal_to_scipy_pipeline(rng, reorder, affinity):
    """In place, any thread count: the bits of calibrate + scipy's A + A^T."""
    perplexity = [2.0, 3.5] if affinity == "multiscale" else 3.0
    k = 9 if affinity == "uniform" else int(3 * np.max(perplexity))
    indices, distances = _knn_with_duplicates(rng, k=k)
    n_samples = indices.shape[0]
    if affinity == "uniform":
        conditional = np.full((n_samples, k), 1.0 / k)
    else:
        conditional = binary_search_perplexity(distances, perplexity, 1)
        assert np.any(conditional == 0.0)  # zeros to drop
    order = None
    if reorder:
        indptr = np.arange(0, n_samples * k + 1, k, dtype=np.int32)
        order = _locality_order(indices.astype(np.int32), indptr)
    expected = scipy_joint_from_knn(indices, conditional, order)

    def search(_X, n_neighbors, **_kwargs):
        assert n_neighbors == k
        return indices.copy(), distances.copy()

    for n_threads in (1, 2, 4):
        seen = []
        result = joint_probabilities(
            np.empty((n_samples, 1)),
            perplexity,
            affinity=affinity,
            n_neighbors=k,
            n_threads=n_threads,
            reorder=reorder,
            search=search,
            before_symmetrize=seen.append,
        )
        P, got_order = result if reorder else (result, None)
        _check_joint(P, n_samples)
        assert P.indices.dtype == P.indptr.dtype == np.int32
        assert_array_equal(P.indptr, expected.indptr)
        assert_array_equal(P.indices, expected.indices)
        assert_array_equal(P.data, expected.data)
        assert len(seen) == 1
        if reorder:
            assert_array_equal(got_order, order)
            assert_array_equal(seen[0], order)
        else:
            assert seen[0] is None


@pytest.mark.parametrize("index_dtype", [np.int32, np.int64])
def test_knn_rows_to_csr_against_scipy(rng, index_dtype):
    """Renumbered, sorted, zeros dropped and packed, in place, either width."""
    n_samples, k = 50, 6
    columns = np.array(
        [
            rng.choice(np.delete(np.arange(n_samples), i), k, replace=False)
            for i in range(n_samples)
        ],
        dtype=index_dtype,
    )
    values = rng.random((n_samples, k))
    values[rng.random((n_samples, k)) < 0.2] = 0.0
    order = rng.permutation(n_samples).astype(np.intp)
    A = sparse.csr_matrix(
        (values.ravel(), columns.ravel(), np.arange(0, n_samples * k + 1, k)),
        shape=(n_samples, n_samples),
    )[order][:, order].tocsr()
    A.eliminate_zeros()
    A.sort_indices()
    for n_threads in (1, 3):
        got_values, got_columns = values.copy(), columns.copy()
        indptr = knn_rows_to_csr(got_values, got_columns, order, n_threads)
        assert indptr.dtype == index_dtype
        assert_array_equal(indptr, A.indptr)
        assert_array_equal(got_columns.ravel()[: A.nnz], A.indices)
        assert_array_equal(got_values.ravel()[: A.nnz], A.data)
    with pytest.raises(ValueError, match="permutation"):
        knn_rows_to_csr(values.copy(), columns.copy(), np.zeros(n_samples, np.intp), 1)
    with pytest.raises(ValueError, match="lie in"):
        knn_rows_to_csr(values.copy(), columns + n_samples, None, 1)


@pytest.mark.parametrize("shared", [False, True])
def test_buffer_narrows_in_place_and_shrinks(rng, shared):
    """int64 -> int32 keeps every value; an unshared array shrinks in place.

    An array that something else refers to cannot be resized: its narrow
    values are then copied out.
    """
    wide = rng.integers(0, 2**31 - 1, size=(300_001, 3))
    expected = wide.astype(np.int32).ravel()
    array = wide.copy()
    other = array if shared else None
    buffer = _Buffer(array)
    address = array.ctypes.data
    del array
    buffer.narrow(np.int32)
    assert_array_equal(buffer.view(np.int32, wide.size), expected)
    moved = buffer.view(np.int32, wide.size).ctypes.data != address
    assert moved == shared
    assert buffer.shrink(np.int32, 10)  # (after a copy, the copy is unshared)
    assert_array_equal(buffer.view(np.int32, 10), expected[:10])
    held = buffer.view(np.int32, 5)  # a view keeps the memory from moving
    assert not buffer.shrink(np.int32, 4)
    assert_array_equal(held, expected[:5])
    del other


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
    # Only the normalising sum runs in another order: a float64 rounding
    # apart, at most one float32 ulp once rounded.
    assert_allclose(P_local.data, expected.data, rtol=2 * _ROUNDED)
    # Neighbours sit closer in the new numbering.
    rows = np.repeat(np.arange(400), np.diff(P_local.indptr))
    spread = np.median(np.abs(P_local.indices - rows))
    rows = np.repeat(np.arange(400), np.diff(P.indptr))
    assert spread < 0.5 * np.median(np.abs(P.indices - rows))


# --------------------------------------------------------------------------
# Uniform, multiscale and precomputed affinities
# --------------------------------------------------------------------------


@pytest.mark.parametrize("container", ["dense64", "csr"])
def test_uniform_against_dense_oracle(rng, container):
    """Uniform: 1/k over the k nearest neighbours, symmetrised, normalised."""
    X = rng.normal(size=(200, 5))
    ref_indices, _ = exact_knn(X, X, 12, self_query=True)
    expected = dense_joint_probabilities(ref_indices, np.full((200, 12), 1 / 12), 200)
    data = X if container == "dense64" else sparse.csr_matrix(X)
    P = joint_probabilities(data, 30.0, affinity="uniform", n_neighbors=12)
    _check_joint(P, 200)
    assert_allclose(P.toarray(), expected, rtol=_ROUNDED + 1e-13, atol=1e-17)


def test_multiscale_against_dense_oracle(rng):
    """Multiscale: the mean of each perplexity's conditionals over k = 3 max."""
    X = rng.normal(size=(200, 5))
    perplexities = [3.0, 8.0, 15.0]
    ref_indices, ref_sq = exact_knn(X, X, 45, self_query=True)
    conditional = np.mean(
        [_oracle_conditional(ref_sq, p) for p in perplexities], axis=0
    )
    expected = dense_joint_probabilities(ref_indices, conditional, 200)
    P = joint_probabilities(X, perplexities, affinity="multiscale", n_threads=2)
    _check_joint(P, 200)
    assert_allclose(P.toarray(), expected, rtol=1e-6, atol=1e-12)


def test_multiscale_of_one_perplexity_is_the_perplexity_kind(rng):
    """One scale gives the perplexity affinities, bitwise."""
    X = rng.normal(size=(300, 4))
    P = joint_probabilities(X, 10.0)
    P_multi = joint_probabilities(X, [10.0], affinity="multiscale")
    assert_array_equal(P_multi.indptr, P.indptr)
    assert_array_equal(P_multi.indices, P.indices)
    assert_array_equal(P_multi.data, P.data)


@pytest.mark.parametrize("affinity", ["perplexity", "uniform", "multiscale"])
def test_precomputed_of_internal_P_is_that_P(rng, affinity):
    """Given a P of joint_probabilities, the precomputed kind returns it."""
    X = rng.normal(size=(400, 6))
    P = joint_probabilities(
        X,
        [5.0, 20.0] if affinity == "multiscale" else 10.0,
        affinity=affinity,
        n_neighbors=10,
    )
    for given in (P, P.toarray(), P.astype(np.float64)):
        P_given = precomputed_joint_probabilities(given, n_threads=2)
        _check_joint(P_given, 400)
        assert_array_equal(P_given.indptr, P.indptr)
        assert_array_equal(P_given.indices, P.indices)
        # P sums to 1 up to rounding; normalising it again may move a value
        # across a float32 rounding boundary: one ulp.
        assert_allclose(P_given.data, P.data, rtol=2 * _ROUNDED)


def test_affinities_that_underflow_float32_are_dropped(rng):
    """Values below float32's range leave P (no stored zeros, still symmetric):
    two clusters 20 apart with neighbours across the gap, and given
    affinities of 1e-50; a point left with none is an error."""
    X = np.concatenate([rng.normal(size=(20, 2)), rng.normal(size=(20, 2)) + 20.0])
    P = joint_probabilities(X, 8.0)  # 24 neighbours: 5 across the gap
    _check_joint(P, 40)
    assert P[:20, 20:].nnz == 0  # exp(-beta 400) is far below float32's range
    indices, sq = exact_knn(X, X, 24, self_query=True)
    dense = np.zeros((40, 40))
    np.put_along_axis(dense, indices, _oracle_conditional(sq, 8.0), axis=1)
    assert np.count_nonzero(dense[:20, 20:]) > 0  # there were some, in float64
    expected = (dense + dense.T) / (dense + dense.T).sum()
    assert_allclose(P.toarray(), expected, rtol=1e-6, atol=1e-40)

    A = np.array([[0, 1, 1e-50, 0], [1, 0, 0, 1], [1e-50, 0, 0, 1], [0, 1, 1, 0]])
    P = precomputed_joint_probabilities(A)
    _check_joint(P, 4)
    assert P[0, 2] == 0.0 and P.nnz == 6
    A[2, 3] = A[3, 2] = 0.0  # point 2 keeps only its 1e-50
    with pytest.raises(ValueError, match=r"points 2 have none: .* float32's range"):
        precomputed_joint_probabilities(A)
    A_new = np.array([[1.0, 0.0, 0.0, 1e-50], [0.0, 0.0, 0.0, 1e-50]])
    P_new, _ = new_point_affinities(
        A_new, np.empty((4, 0)), None, affinity="precomputed"
    )
    assert P_new.dtype == np.float32
    assert_array_equal(P_new.toarray(), [[1, 0, 0, 0], [0, 0, 0, 1]])
    assert P_new.nnz == 2  # each row normalised alone: only row 0 loses one


def test_precomputed_graph_against_dense_oracle(rng):
    """A directed kNN graph with a diagonal and a duplicate entry: the
    diagonal is dropped, duplicates summed, then (A + A^T) / sum."""
    A = knn_graph(rng, 150, 6).tolil()
    A.setdiag(1.0)
    A = A.tocoo()
    rows = np.concatenate([A.row, [3]])
    cols = np.concatenate([A.col, [A.col[A.row == 3][0]]])  # stored twice
    A = sparse.coo_matrix((np.ones(rows.shape[0]), (rows, cols)), shape=(150, 150))
    dense = A.toarray()  # sums the duplicate
    np.fill_diagonal(dense, 0.0)
    expected = (dense + dense.T) / (dense + dense.T).sum()
    P = precomputed_joint_probabilities(A)
    _check_joint(P, 150)
    assert_allclose(P.toarray(), expected, rtol=_ROUNDED + 1e-14, atol=1e-17)
    P2 = precomputed_joint_probabilities(A, n_threads=2)
    assert_array_equal(P2.data, P.data)


def test_precomputed_reordered_is_a_relabelling(rng):
    """reorder=True numbers the points anew and changes nothing else."""
    A = knn_graph(rng, 300, 8)
    P = precomputed_joint_probabilities(A)
    P_local, order = precomputed_joint_probabilities(A, reorder=True)
    assert_array_equal(np.sort(order), np.arange(300))
    _check_joint(P_local, 300)
    expected = P[order][:, order].tocsr()
    expected.sort_indices()
    assert_array_equal(P_local.indices, expected.indices)
    assert_allclose(P_local.data, expected.data, rtol=2 * _ROUNDED)


@pytest.mark.parametrize(
    "A, match",
    [
        (np.ones((3, 4)), "must be square"),
        (np.ones(3), "2-D"),
        (np.array([[0.0, 1.0], [-1.0, 0.0]]), "non-negative; 1 entries"),
        (np.array([[0.0, 1.0], [np.nan, 0.0]]), "finite"),
        (
            np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 5.0]]),
            r"points \(rows and columns\) 2 have none",
        ),
    ],
)
def test_precomputed_affinities_errors(A, match):
    """Non-square, negative, NaN and pointless (empty) matrices are named."""
    with pytest.raises(ValueError, match=match):
        precomputed_joint_probabilities(A)


def test_precomputed_one_sided_rows_are_not_empty():
    """A point with an empty row but a non-empty column has affinities."""
    A = np.array([[0.0, 1.0, 1.0], [0.0, 0.0, 1.0], [0.0, 0.0, 0.0]])
    P = precomputed_joint_probabilities(A)
    assert_allclose(P.toarray(), (A + A.T) / 6.0)


@pytest.mark.parametrize("affinity", ["uniform", "multiscale"])
def test_new_points_of_other_kinds_against_oracle(rng, affinity):
    """New points get the fit's kind over k nearest training points."""
    X_fit = rng.normal(size=(300, 5))
    X_new = np.vstack([rng.normal(size=(20, 5)), X_fit[[4]]])
    if affinity == "uniform":
        perplexity, k = None, 9
        expected_rows = np.full((21, 9), 1 / 9)
    else:
        perplexity, k = [2.0, 6.0], 18
    ref_indices, ref_sq = exact_knn(X_new, X_fit, k, self_query=False)
    if affinity == "multiscale":
        expected_rows = np.mean(
            [_oracle_conditional(ref_sq, p) for p in perplexity], axis=0
        )
    P_new, match = new_point_affinities(
        X_new, X_fit, perplexity, affinity=affinity, n_neighbors=9, n_threads=2
    )
    expected = np.zeros((21, 300))
    np.put_along_axis(expected, ref_indices, expected_rows, axis=1)
    assert_allclose(P_new.toarray(), expected, rtol=1e-6, atol=1e-12)
    assert_array_equal(match, [-1] * 20 + [4])
    rows = [
        new_point_affinities(
            X_new[i : i + 1], X_fit, perplexity, affinity=affinity, n_neighbors=9
        )
        for i in range(21)
    ]
    _assert_same_rows((P_new, match), rows)


def test_new_points_precomputed_affinities(rng):
    """Given rows of affinities are normalised one by one; no matches."""
    A_new = knn_graph(rng, 40, 5)[:, :30].tocsr() * 3.0
    A_new[np.flatnonzero(A_new.getnnz(axis=1) == 0), 0] = 2.0
    P_new, match = new_point_affinities(
        A_new, np.empty((30, 0)), None, affinity="precomputed"
    )
    dense = A_new.toarray()
    assert_allclose(P_new.toarray(), dense / dense.sum(axis=1, keepdims=True))
    assert_array_equal(match, -1)
    rows = [
        new_point_affinities(A_new[i], np.empty((30, 0)), None, affinity="precomputed")
        for i in range(40)
    ]
    _assert_same_rows((P_new, match), rows)
    with pytest.raises(ValueError, match="30 columns"):
        new_point_affinities(
            A_new[:, :20], np.empty((30, 0)), None, affinity="precomputed"
        )
    empty = sparse.csr_matrix((2, 30))
    with pytest.raises(ValueError, match="the rows 0, 1 have none"):
        new_point_affinities(empty, np.empty((30, 0)), None, affinity="precomputed")


def test_check_affinities_keeps_what_it_is_given(rng):
    """Validation: canonical CSR float64, sorted, no zeros, no diagonal."""
    A = sparse.random(50, 50, density=0.2, random_state=0, format="csr")
    A.data[:5] = 0.0
    checked = check_affinities(A)
    assert checked.dtype == np.float64 and checked.has_sorted_indices
    assert np.all(checked.data > 0) and np.all(checked.diagonal() == 0)
    dense = A.toarray()
    np.fill_diagonal(dense, 0.0)
    assert_array_equal(checked.toarray(), dense)
    assert A.nnz == sparse.csr_matrix(A).nnz  # the input is not modified


@pytest.mark.parametrize("layout", ["read-only", "fortran"])
@pytest.mark.parametrize("reorder", [False, True])
def test_search_arrays_that_cannot_be_built_in_place(rng, layout, reorder):
    """P is built in the search's arrays: read-only or non-contiguous ones (of
    the index dtype P uses, so no narrowing copy hides it) are copied first,
    and P is the one of the same neighbours in fresh writeable arrays."""
    X = rng.normal(size=(300, 4))
    k = 15
    indices, distances = nearest_neighbors(X, k, squared=True)

    def search(layout_name):
        def run(_X, n_neighbors, **_kwargs):
            assert n_neighbors == k
            ind, dist = indices.astype(np.int32), distances.copy()
            if layout_name == "fortran":
                return np.asfortranarray(ind), np.asfortranarray(dist)
            if layout_name == "read-only":
                ind.flags.writeable = False
                dist.flags.writeable = False
            return ind, dist

        return run

    def joint(layout_name):
        return joint_probabilities(
            X, 5.0, n_threads=2, reorder=reorder, search=search(layout_name)
        )

    expected, got = joint("fresh"), joint(layout)
    if reorder:
        assert_array_equal(got[1], expected[1])
        expected, got = expected[0], got[0]
    assert_array_equal(got.indptr, expected.indptr)
    assert_array_equal(got.indices, expected.indices)
    assert_array_equal(got.data, expected.data)
