"""The affinities' kNN search on the device (``fasttsne/gpu/_knn.py``).

Against the CPU's exact search, the oracle of ``tests/_neighbors``: the same
neighbour sets in the same (distance, index) order, distances and P to
float64 rounding, at N in {2, 7, 300}; the rows the float32 ranking cannot
decide, searched again on the CPU; and which settings reach the device at
all (the routing tests replace the device search and run no kernel).
"""

import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from numpy.testing import assert_allclose, assert_array_equal

from fasttsne import _neighbors
from fasttsne.tsne._affinity import joint_probabilities, new_point_affinities
from tests.gpu.conftest import INTERPRETING

pytestmark = pytest.mark.interpreter

# Float64 sums of 12 squares in two orders: a few ulp apart.
DISTANCE_RTOL = 1e-13
# P from those distances: the bisection and the normalisations add a few
# more roundings, each relative.
P_RTOL = 1e-11


@pytest.fixture
def knn(device):
    """``fasttsne.gpu._knn``, imported where torch is there."""
    del device
    from fasttsne.gpu import _knn

    return _knn


@pytest.fixture
def device_calls(monkeypatch, knn):
    """Queries per device search, and the rows the CPU searched again."""
    del knn
    from fasttsne.gpu import _knn, _launchers

    calls = {"device": [], "cpu": []}
    exact_knn, euclidean_knn = _launchers.exact_knn, _knn.euclidean_knn

    def on_device(X, *args, **kwargs):
        calls["device"].append(X.shape[0])
        return exact_knn(X, *args, **kwargs)

    def on_cpu(X, *args, **kwargs):
        calls["cpu"].append(X.copy())
        return euclidean_knn(X, *args, **kwargs)

    monkeypatch.setattr(_launchers, "exact_knn", on_device)
    monkeypatch.setattr(_knn, "euclidean_knn", on_cpu)
    return calls


def _data(rng, n, dtype):
    """Gaussian rows with a group of duplicates (ties at 0, by index)."""
    X = rng.normal(size=(n, 12))
    if n >= 7:
        X[[4, 6]] = X[2]
    return X.astype(dtype)


@pytest.mark.parametrize("n", [2, 7, 300])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_device_graph_and_p_are_the_cpus(rng, knn, device_calls, n, dtype):
    """Neighbour sets, order, distances and P of a fit, against the CPU's."""
    X = _data(rng, n, dtype)
    perplexity = 5.0
    k = min(n - 1, 15)
    indices, sq_distances = knn.nearest_neighbors(X, k, squared=True)
    assert device_calls["device"] == [n]
    cpu_indices, cpu_sq_distances = _neighbors.nearest_neighbors(X, k, squared=True)
    assert indices.dtype == cpu_indices.dtype
    assert_array_equal(indices, cpu_indices)
    assert_allclose(sq_distances, cpu_sq_distances, rtol=DISTANCE_RTOL, atol=0)
    _, distances = knn.nearest_neighbors(X, k)
    assert_allclose(distances, np.sqrt(cpu_sq_distances), rtol=DISTANCE_RTOL, atol=0)

    P = joint_probabilities(X, perplexity, search=knn.nearest_neighbors)
    P_cpu = joint_probabilities(X, perplexity)
    assert_array_equal(P.indptr, P_cpu.indptr)
    assert_array_equal(P.indices, P_cpu.indices)
    assert_allclose(P.data, P_cpu.data, rtol=P_RTOL, atol=0)


@pytest.mark.parametrize("n", [2, 7, 300])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_device_new_point_neighbours_are_the_cpus(rng, knn, device_calls, n, dtype):
    """New points: neighbours, the equal training row, and P_new."""
    X = _data(rng, n, dtype)
    X_new = np.vstack([rng.normal(size=(4, 12)), X[[0, n - 1]]]).astype(dtype)
    k = min(n, 15)
    found = knn.new_point_neighbors(X_new, X, k, squared=True)
    assert device_calls["device"] == [6]
    expected = _neighbors.new_point_neighbors(X_new, X, k, squared=True)
    assert_array_equal(found[0], expected[0])
    assert_allclose(found[1], expected[1], rtol=DISTANCE_RTOL, atol=0)
    # Training rows are matched (X[6] by its duplicate X[2] at n = 7).
    assert_array_equal(found[2], expected[2])
    assert found[2].tolist() == [-1] * 4 + [0, 2 if n == 7 else n - 1]

    P_new, match = new_point_affinities(X_new, X, 5.0, search=knn.new_point_neighbors)
    P_cpu, match_cpu = new_point_affinities(X_new, X, 5.0)
    assert_array_equal(match, match_cpu)
    assert_array_equal(P_new.indices, P_cpu.indices)
    assert_allclose(P_new.data, P_cpu.data, rtol=P_RTOL, atol=0)
    # Each row on its own: a row's answer does not depend on its batch.
    alone = knn.new_point_neighbors(X_new[1:2], X, k, squared=True)
    assert_array_equal(alone[0][0], found[0][1])
    assert_array_equal(alone[1][0], found[1][1])


def test_rows_the_ranking_cannot_decide_are_searched_on_the_cpu(rng, knn, device_calls):
    """Near ties over every spare slot: those rows alone go to the CPU.

    Row 200 has 41 points at squared distances 1 + 1e-9 j, equal in the
    float32 keys and ordered against their indices; the kernel reports the
    row (tests/gpu/test_kernels.py) and the CPU answers it, in the graph and
    for the same point as a new point.
    """
    X = rng.normal(size=(300, 5)) * 10.0
    X[200] = 0.0
    X[200, 0] = -100.0
    X[201:242] = X[200]
    X[201:242, 1] = 1.0 + 1e-9 * np.arange(40, -1, -1)
    k = 10
    indices, sq_distances = knn.nearest_neighbors(X, k, squared=True)
    assert device_calls["device"] == [300]
    (again,) = device_calls["cpu"]
    assert (again == X[200]).all(axis=1).any()
    expected = _neighbors.nearest_neighbors(X, k, squared=True)
    assert_array_equal(indices, expected[0])
    assert_array_equal(indices[200], np.arange(241, 231, -1))
    assert_allclose(sq_distances, expected[1], rtol=DISTANCE_RTOL, atol=0)

    X_new = np.vstack([X[200] + 0.0, rng.normal(size=(3, 5))])
    X_new[0, 1] = 1e-12  # not a training row
    found = knn.new_point_neighbors(X_new, X, k)
    cpu = _neighbors.new_point_neighbors(X_new, X, k)
    assert_array_equal(device_calls["cpu"][-1], X_new[:1])
    assert_array_equal(found[0], cpu[0])
    assert_array_equal(found[2], cpu[2])


@pytest.mark.parametrize("k", [1, 3])
def test_near_ties_within_float64_rounding_take_the_cpus_distances(
    rng, device, monkeypatch, k
):
    """Two neighbours at equal distance, last of the set (k=1) or inside it.

    Either way the CPU's bits decide: the row is ranked again on the host.
    """
    del device
    from fasttsne.gpu import _launchers

    host_queries = []
    pair_squared_distances = _launchers.pair_squared_distances

    def spy(X_query, rows, X_ref, columns):
        host_queries.append(X_query.copy())
        return pair_squared_distances(X_query, rows, X_ref, columns)

    monkeypatch.setattr(_launchers, "pair_squared_distances", spy)
    X = rng.normal(size=(40, 7)) * 10.0
    X[10] = X[0] + 0.5
    X[11] = X[0] - 0.5  # the same squared distance from X[0], in any order
    indices, sq_distances, uncertain = _launchers.exact_knn(X, k)
    cpu_indices, cpu_sq_distances = _neighbors.nearest_neighbors(X, k, squared=True)
    assert not uncertain.any()
    assert_array_equal(indices, cpu_indices)
    # Row 0 alone was ranked again on the host, in one call, with the CPU's
    # distances.
    assert len(host_queries) == 1
    assert_array_equal(host_queries[0], X[:1])
    assert_array_equal(indices[0, :2], [10, 11][:k])
    assert_array_equal(sq_distances[0], cpu_sq_distances[0])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_integer_data_with_many_ties_are_the_cpus(rng, device, dtype):
    """Small integers (as MNIST's): exact ties everywhere, broken by index."""
    del device
    from fasttsne.gpu import _launchers

    from tests._oracles import exact_knn

    X = rng.integers(0, 10, size=(300, 8)).astype(dtype)
    k = 12
    indices, sq_distances, uncertain = _launchers.exact_knn(X, k)
    expected, expected_sq = exact_knn(X, X, k, self_query=True)
    certain = ~uncertain
    assert certain.sum() > 200
    assert_array_equal(indices[certain], expected[certain])
    assert_array_equal(sq_distances[certain], expected_sq[certain])


@pytest.mark.parametrize("self_query", [True, False])
def test_a_small_block_budget_gives_the_same_answer(rng, device, self_query):
    """One query row per block, or a few, or all: the same neighbours, and the
    same bits where the reduction order cannot follow the block shape (the
    interpreter; a GPU may reduce another shape in another order)."""
    del device
    from fasttsne.gpu import _launchers

    from tests._oracles import exact_knn

    X = _data(rng, 120, np.float64)
    X_ref = None if self_query else rng.normal(size=(90, 12))
    k = 7
    answers = [
        _launchers.exact_knn(X, k, X_ref=X_ref, block_bytes=block_bytes)
        for block_bytes in (1, 16 * 12 * 8 * 5, 2**30)
    ]
    expected, _ = exact_knn(X, X if self_query else X_ref, k, self_query)
    for indices, sq_distances, uncertain in answers:
        assert not uncertain.any()
        assert_array_equal(indices, expected)
        if INTERPRETING:
            assert_array_equal(sq_distances, answers[-1][1])
        else:
            assert_allclose(sq_distances, answers[-1][1], rtol=4 * 16 * 2.0**-53)


def _no_device(*args, **kwargs):
    raise AssertionError("the device search ran")


@pytest.mark.parametrize(
    "case",
    ["approx", "auto_large", "cosine", "sparse", "precomputed", "minkowski_p3"],
)
def test_settings_the_device_does_not_serve_run_on_the_cpu(rng, knn, monkeypatch, case):
    """Approximate search, other metrics, sparse and precomputed data: the CPU's."""
    from fasttsne.gpu import _launchers

    monkeypatch.setattr(_launchers, "exact_knn", _no_device)
    X = rng.normal(size=(60, 6))
    kwargs = {"method": "exact", "random_state": 0}
    if case == "approx":
        kwargs["method"] = "approx"
    elif case == "auto_large":
        # "auto" past the crossover means the approximate search everywhere.
        monkeypatch.setattr(_neighbors, "_APPROX_MIN_SAMPLES", 50)
        kwargs["method"] = "auto"
    elif case == "cosine":
        kwargs["metric"] = "cosine"
    elif case == "sparse":
        X = sp.csr_matrix(np.where(X > 0.5, X, 0.0))
    elif case == "precomputed":
        X = np.sqrt(((X[:, None, :] - X[None, :, :]) ** 2).sum(axis=2))
        kwargs["metric"] = "precomputed"
    else:
        kwargs.update(metric="minkowski", metric_params={"p": 3})
    found = knn.nearest_neighbors(X, 5, **kwargs)
    expected = _neighbors.nearest_neighbors(X, 5, **kwargs)
    assert_array_equal(found[0], expected[0])
    assert_array_equal(found[1], expected[1])
    if case in ("approx", "auto_large", "precomputed"):
        return
    new = X[:4] * 1.5 if case != "sparse" else sp.csr_matrix(X[:4] * 1.5)
    del kwargs["method"], kwargs["random_state"]
    found = knn.new_point_neighbors(new, X, 5, **kwargs)
    expected = _neighbors.new_point_neighbors(new, X, 5, **kwargs)
    for got, want in zip(found, expected):
        assert_array_equal(got, want)


@pytest.mark.parametrize("method", ["exact", "auto"])
def test_exact_settings_run_on_the_device(rng, knn, device_calls, method):
    """ "exact", and "auto" below the crossover, search on the device."""
    X = rng.normal(size=(30, 4))
    knn.nearest_neighbors(X, 3, method=method)
    knn.new_point_neighbors(X[:2] + 0.1, X, 3, metric="l2")
    assert device_calls["device"] == [30, 2]


def test_overflowing_data_get_the_cpu_searchs_error(knn, monkeypatch):
    """Squares past float64's range: the CPU's message, no device search."""
    from fasttsne.gpu import _launchers

    monkeypatch.setattr(_launchers, "exact_knn", _no_device)
    X = np.array([[1e300, 0.0], [0.0, 1.0], [1.0, 1.0]])
    with pytest.raises(ValueError, match="overflow float64"):
        knn.nearest_neighbors(X, 1)


def test_read_only_data_are_searched_without_a_warning(rng, knn):
    """A read-only array (a memmap's) reaches the device as a copy, silently."""
    X = rng.normal(size=(20, 3))
    X.setflags(write=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        indices, _ = knn.nearest_neighbors(X, 3)
        found = knn.new_point_neighbors(X[:2] + 0.5, X, 3)
    assert_array_equal(indices, _neighbors.nearest_neighbors(X, 3)[0])
    assert_array_equal(found[0], _neighbors.new_point_neighbors(X[:2] + 0.5, X, 3)[0])
