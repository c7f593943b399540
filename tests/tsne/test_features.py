"""Affinity kinds, warm starts and exaggeration schedules, through the estimators."""

import pickle

import numpy as np
import pytest
import scipy.sparse as sp
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.base import clone
from sklearn.datasets import load_digits, make_blobs
from sklearn.model_selection import cross_val_score
from sklearn.neighbors import KNeighborsClassifier, NearestNeighbors, kneighbors_graph

from fasttsne import BarnesHutTSNE, FFTInterpTSNE
from fasttsne.tsne import _affinity, _base

ESTIMATORS = [BarnesHutTSNE, FFTInterpTSNE]


@pytest.fixture(scope="module")
def blobs():
    X, y = make_blobs(300, n_features=10, centers=4, cluster_std=1.0, random_state=0)
    return X, y


@pytest.fixture(scope="module")
def converged_digits():
    """500 digits, and per estimator a fit run well past its convergence."""
    X, _ = load_digits(return_X_y=True)
    X = X[:500]
    fits = {
        Est: Est(max_iter=1500, random_state=0, n_jobs=2).fit(X) for Est in ESTIMATORS
    }
    return X, fits


def _knn_accuracy(Y, y):
    return cross_val_score(KNeighborsClassifier(5), Y, y, cv=3).mean()


def _init(n_samples, seed=1):
    """A random start with the recommended first-axis standard deviation 1e-4."""
    Y0 = np.random.default_rng(seed).normal(size=(n_samples, 2))
    return Y0 * (1e-4 / Y0[:, 0].std())


# --------------------------------------------------------------------------
# Affinity kinds
# --------------------------------------------------------------------------


@pytest.mark.parametrize("Est", ESTIMATORS)
@pytest.mark.parametrize(
    "params",
    [
        {"affinity": "uniform", "n_neighbors": 10},
        {"affinity": "multiscale", "perplexity": [5, 30]},
    ],
)
def test_uniform_and_multiscale_fit_and_transform(Est, blobs, params):
    """Both kinds embed the clusters; transform uses the fit's kind."""
    X, y = blobs
    tsne = Est(random_state=0, **params).fit(X[:250])
    assert _knn_accuracy(tsne.embedding_, y[:250]) > 0.95
    if params["affinity"] == "uniform":
        assert tsne.perplexity_ is None and tsne.n_neighbors_ == 10
    else:
        assert tsne.perplexity_ == (5.0, 30.0) and tsne.n_neighbors_ == 90
    assert_array_equal(tsne.transform(X[:5]), tsne.embedding_[:5])
    knn = KNeighborsClassifier(5).fit(tsne.embedding_, y[:250])
    assert knn.score(tsne.transform(X[250:]), y[250:]) > 0.95


def test_multiscale_of_one_perplexity_is_the_default_fit(blobs):
    """affinity="multiscale" with one perplexity is the perplexity fit, bitwise."""
    X, _ = blobs
    params = {"max_iter": 300, "random_state": 0}
    Y = BarnesHutTSNE(perplexity=20, **params).fit_transform(X)
    Y_multi = BarnesHutTSNE(
        affinity="multiscale", perplexity=[20], **params
    ).fit_transform(X)
    assert_array_equal(Y_multi, Y)


@pytest.mark.parametrize("Est", ESTIMATORS)
def test_precomputed_affinities_equal_the_internal_ones(Est, blobs):
    """fit(P, affinity="precomputed") with the fit's own P: the same optimisation.

    P given back is P to an ulp, but the two fits number the points in
    different cache-friendly orders (of the kNN graph, of P), so their sums
    round differently from the first step: the embeddings agree to that
    rounding grown over 100 iterations (they would drift apart chaotically
    over many more). P is given in
    float64, as the data was: a float32 input gives a float32 embedding.
    """
    X, _ = blobs
    P = _affinity.joint_probabilities(X, 30.0).astype(np.float64)
    init = _init(300)
    params = {"max_iter": 100, "early_exaggeration_iter": 50, "init": init}
    Y = Est(**params).fit_transform(X)
    tsne = Est(affinity="precomputed", **params)
    Y_given = tsne.fit_transform(P)
    assert tsne.perplexity_ is None and tsne.n_neighbors_ is None
    assert_allclose(Y_given, Y, atol=1e-5 * np.abs(Y).max())


@pytest.mark.parametrize("Est", ESTIMATORS)
def test_scanpy_style_connectivity_graph(Est, blobs):
    """A symmetric 0/1 kNN graph (k = 15): fit, and transform of graph rows."""
    X, y = blobs
    A = kneighbors_graph(X[:250], 15, mode="connectivity")
    A = ((A + A.T) > 0).astype(np.float64)
    tsne = Est(affinity="precomputed", init="spectral", random_state=0).fit(A)
    assert _knn_accuracy(tsne.embedding_, y[:250]) > 0.95
    assert tsne.__sklearn_tags__().input_tags.pairwise
    # New points: their connectivities to the training points, one row each.
    A_new = NearestNeighbors(n_neighbors=15).fit(X[:250]).kneighbors_graph(X[250:])
    knn = KNeighborsClassifier(5).fit(tsne.embedding_, y[:250])
    assert knn.score(tsne.transform(A_new), y[250:]) > 0.95
    with pytest.raises(ValueError, match="250 features"):
        tsne.transform(A_new[:, :200])


@pytest.mark.parametrize("Est", ESTIMATORS)
def test_affinity_errors_are_clear(Est, blobs):
    """Invalid combinations and matrices raise, naming the problem."""
    X, _ = blobs
    A = kneighbors_graph(X, 10)
    with pytest.raises(ValueError, match="set only one of them"):
        Est(affinity="precomputed", metric="precomputed", init="random").fit(A)
    with pytest.raises(ValueError, match='init="pca" cannot be used with affinity'):
        Est(affinity="precomputed").fit(A)
    with pytest.raises(ValueError, match="square"):
        Est(affinity="precomputed", init="random").fit(A[:, :100])
    negative = A.copy()
    negative.data[0] = -1.0
    with pytest.raises(ValueError, match="non-negative"):
        Est(affinity="precomputed", init="random").fit(negative)
    lonely = A.tolil()
    lonely[:, 7] = 0.0
    lonely[7, :] = 0.0
    with pytest.raises(ValueError, match=r"\) 7 have none"):
        Est(affinity="precomputed", init="random").fit(lonely.tocsr())
    with pytest.raises(ValueError, match="needs affinity='multiscale'"):
        Est(perplexity=[5, 30]).fit(X)
    for bad in ([], [5, -1], [[5, 30]], [5, np.inf]):
        with pytest.raises(ValueError, match="perplexit"):
            Est(affinity="multiscale", perplexity=bad).fit(X)
    with pytest.raises(ValueError, match="affinity"):
        Est(affinity="gaussian").fit(X)
    with pytest.warns(UserWarning, match="n_neighbors=400 is too large"):
        tsne = Est(affinity="uniform", n_neighbors=400, max_iter=260).fit(X)
    assert tsne.n_neighbors_ == 299


@pytest.mark.parametrize("Est", ESTIMATORS)
def test_approx_search_that_cannot_be_honoured_raises(Est, blobs):
    """neighbors="approx" with sparse data or another metric: a ValueError."""
    X, _ = blobs
    with pytest.raises(ValueError, match="dense data"):
        Est(neighbors="approx").fit(sp.csr_matrix(X))
    with pytest.raises(ValueError, match="not 'manhattan'"):
        Est(neighbors="approx", metric="manhattan").fit(X)


@pytest.mark.parametrize("Est", ESTIMATORS)
def test_approx_cosine_fit(Est, blobs):
    """Cosine distances with the approximate search embed the clusters."""
    pytest.importorskip("faiss")
    X, y = blobs
    tsne = Est(metric="cosine", neighbors="approx", random_state=0, max_iter=400)
    assert _knn_accuracy(tsne.fit_transform(X), y) > 0.95


# --------------------------------------------------------------------------
# Warm starts
# --------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("Est", ESTIMATORS)
def test_warm_start_from_a_converged_embedding_stays(Est, converged_digits):
    """KL within 1%, every point moves less than 1% of the extent."""
    X, fits = converged_digits
    tsne = pickle.loads(pickle.dumps(fits[Est]))
    tsne.set_params(warm_start=True, max_iter=250)
    Y0, kl0 = tsne.embedding_.copy(), tsne.kl_divergence_
    tsne.fit(X)
    assert tsne.n_iter_ == 250
    assert abs(tsne.kl_divergence_ - kl0) < 0.01 * kl0
    extent = np.ptp(Y0, axis=0).max()
    assert np.linalg.norm(tsne.embedding_ - Y0, axis=1).max() < 0.01 * extent


@pytest.mark.parametrize("Est", ESTIMATORS)
def test_warm_start_is_init_from_embedding_without_early_phase(Est, blobs):
    """A warm start is, bitwise, a fit from init=embedding_ without early phase;
    and the exaggeration schedule sees this fit's iterations 0 .. max_iter-1."""
    X, _ = blobs
    tsne = Est(max_iter=300, random_state=0).fit(X)
    Y0 = tsne.embedding_.copy()
    seen = []

    def schedule(iteration):
        seen.append(iteration)
        return 1.0

    tsne.set_params(warm_start=True, max_iter=120, exaggeration=schedule)
    Y = tsne.fit_transform(X)
    assert seen == list(range(120)) and tsne.n_iter_ == 120
    cold = Est(max_iter=120, init=Y0, early_exaggeration_iter=0, random_state=0)
    assert_array_equal(cold.fit_transform(X), Y)
    # Not fitted yet: warm_start=True is an ordinary fit.
    fresh = Est(max_iter=300, random_state=0, warm_start=True).fit_transform(X)
    assert_array_equal(fresh, Y0)


@pytest.mark.parametrize("Est", ESTIMATORS)
def test_warm_start_allows_new_parameters_and_refuses_other_data(Est, blobs):
    """Perplexity annealing continues; other X or n_components are refused."""
    X, y = blobs
    tsne = Est(perplexity=90, max_iter=300, random_state=0).fit(X)
    tsne.set_params(warm_start=True, perplexity=10, max_iter=200)
    assert _knn_accuracy(tsne.fit_transform(X), y) > 0.95
    assert tsne.perplexity_ == 10.0
    X_other = X.copy()
    X_other[0, 0] += 1.0
    for data, match in [
        (X[:200], "200 samples now, 300 before"),
        (X_other, "init=embedding_"),
        (X.astype(np.float32), "init=embedding_"),
    ]:
        with pytest.raises(ValueError, match=match):
            tsne.fit(data)
    with pytest.raises(ValueError, match="n_components=1"):
        tsne.set_params(n_components=1).fit(X)


# --------------------------------------------------------------------------
# Exaggeration schedules
# --------------------------------------------------------------------------


def _twelve(_iteration):
    return 12.0


def _one(_iteration):
    return 1


@pytest.mark.parametrize("Est", ESTIMATORS)
@pytest.mark.parametrize("early_exaggeration_iter", [250, 0])
def test_constant_schedules_equal_the_constants_bitwise(
    Est, blobs, early_exaggeration_iter
):
    """Callables returning the defaults give the default fit, bit for bit.

    Without an early phase too: the "auto" learning rate then still comes
    from the early factor, whether a number or a schedule gives it.
    """
    X, _ = blobs
    params = {
        "max_iter": 300,
        "early_exaggeration_iter": early_exaggeration_iter,
        "random_state": 0,
    }
    tsne = Est(**params).fit(X)
    scheduled = Est(early_exaggeration=_twelve, exaggeration=_one, **params).fit(X)
    assert_array_equal(scheduled.embedding_, tsne.embedding_)
    assert scheduled.kl_divergence_ == tsne.kl_divergence_
    assert scheduled.learning_rate_ == tsne.learning_rate_


@pytest.mark.parametrize("Est", ESTIMATORS)
def test_schedules_reach_the_backend_as_numbers(Est, blobs, monkeypatch):
    """Each iteration's factor is passed to the gradient as a float."""
    X, _ = blobs
    calls = []
    real_get_backend = _base.get_backend

    def recording_get_backend(name, **kwargs):
        backend = real_get_backend(name, **kwargs)

        class Recording:
            name = backend.name
            prepare = backend.prepare

            def __call__(self, Y, *, exaggeration, dof, compute_error):
                calls.append(exaggeration)
                return backend(
                    Y, exaggeration=exaggeration, dof=dof, compute_error=compute_error
                )

        return Recording()

    monkeypatch.setattr(_base, "get_backend", recording_get_backend)

    def ramp(iteration):
        return np.float32(1.0 + iteration / 10)

    tsne = Est(
        max_iter=50,
        early_exaggeration_iter=20,
        early_exaggeration=lambda it: 24.0 - it,
        exaggeration=ramp,
        random_state=0,
    ).fit(X)
    # Each phase ends with one more call (the KL of its final embedding) at
    # its last factor.
    early = [24.0 - it for it in range(20)]
    main = [float(ramp(it)) for it in range(20, 50)]
    assert calls == early + early[-1:] + main + main[-1:]
    assert all(type(factor) is float for factor in calls)
    # "auto" divides by the early schedule's largest factor.
    assert tsne.learning_rate_ == max(300 / 24.0, 50.0)


@pytest.mark.parametrize("Est", ESTIMATORS)
@pytest.mark.parametrize(
    "value, error, match",
    [
        (np.nan, ValueError, "finite factor > 0"),
        (np.inf, ValueError, "finite factor > 0"),
        (0.0, ValueError, "finite factor > 0"),
        (-2.0, ValueError, "finite factor > 0"),
        ("4", TypeError, "real number"),
        (True, TypeError, "real number"),
        (None, TypeError, "real number"),
    ],
)
def test_schedule_returns_are_checked(Est, blobs, value, error, match):
    """Bad factors are named with their parameter and iteration, before work."""
    X, _ = blobs

    def late_failure(iteration):
        return value if iteration == 260 else 2.0

    with pytest.raises(error, match=rf"exaggeration\(260\) must return.*{match}"):
        Est(exaggeration=late_failure).fit(X)
    with pytest.raises(error, match=rf"early_exaggeration\(0\) must return"):
        Est(early_exaggeration=lambda it: value).fit(X)


@pytest.mark.parametrize("Est", ESTIMATORS)
def test_callable_parameters_clone_and_pickle(Est, blobs):
    """get_params, set_params and clone keep callables; module-level ones pickle."""
    X, _ = blobs
    tsne = Est(early_exaggeration=_twelve, exaggeration=_one, max_iter=260)
    assert tsne.get_params()["exaggeration"] is _one
    copy = clone(tsne)
    assert copy.get_params()["early_exaggeration"] is _twelve
    copy.set_params(exaggeration=2.0)
    assert tsne.exaggeration is _one
    tsne.fit(X)
    restored = pickle.loads(pickle.dumps(tsne))
    assert_array_equal(restored.transform(X[:5] + 0.1), tsne.transform(X[:5] + 0.1))
