"""BarnesHutTSNE and FFTInterpTSNE end to end: quality, determinism, transform, errors."""

import pickle
import sys

import numpy as np
import pytest
import scipy.sparse as sp
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.base import clone
from sklearn.datasets import load_digits, make_blobs
from sklearn.manifold import trustworthiness
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import Pipeline

from fasttsne import BarnesHutTSNE, FFTInterpTSNE
from fasttsne.tsne import _base, _layout

ESTIMATORS = [BarnesHutTSNE, FFTInterpTSNE]


@pytest.fixture(scope="module")
def blobs():
    X, y = make_blobs(300, n_features=10, centers=4, cluster_std=1.0, random_state=0)
    return X, y


def _knn_accuracy(Y, y):
    return cross_val_score(KNeighborsClassifier(5), Y, y, cv=3).mean()


@pytest.mark.parametrize("Est", ESTIMATORS)
def test_quality_on_blobs(Est, blobs):
    X, y = blobs
    tsne = Est(perplexity=20, random_state=0)
    Y = tsne.fit_transform(X)
    assert Y.shape == (300, 2)
    assert tsne.n_iter_ == 750
    assert trustworthiness(X, Y, n_neighbors=10) > 0.9
    assert _knn_accuracy(Y, y) > 0.95
    assert 0 < tsne.kl_divergence_ < 2.0


@pytest.mark.slow
@pytest.mark.parametrize("Est", ESTIMATORS)
@pytest.mark.parametrize("n_components", [1, 2])
def test_digits_quality(Est, n_components):
    X, y = load_digits(return_X_y=True)
    X, y = X[:600], y[:600]
    Y = Est(n_components, random_state=0, n_jobs=2).fit_transform(X)
    # Measured: 0.887 for the raw pixels and for sklearn's TSNE, 0.887-0.89 for
    # BarnesHutTSNE in 2-D and 0.895-0.905 in 1-D (seeds 0-2).
    threshold = 0.85 if n_components == 2 else 0.8
    assert _knn_accuracy(Y, y) > threshold


@pytest.mark.slow
@pytest.mark.parametrize("Est", ESTIMATORS)
def test_fit_is_bitwise_reproducible_across_fits_and_threads(Est, blobs):
    X, _ = blobs
    reference = Est(max_iter=300, random_state=3, n_jobs=1).fit_transform(X)
    for n_jobs in (1, 2, 4):
        Y = Est(max_iter=300, random_state=3, n_jobs=n_jobs).fit_transform(X)
        assert_array_equal(Y, reference)


@pytest.mark.parametrize("Est", ESTIMATORS)
def test_fitted_attributes_resolve_auto(Est, blobs):
    X, _ = blobs
    tsne = Est(max_iter=260, random_state=0).fit(X)
    assert tsne.learning_rate_ == pytest.approx(max(300 / 12.0, 50.0))
    assert tsne.device_ == "cpu"
    assert tsne.backend_ == {BarnesHutTSNE: "bh", FFTInterpTSNE: "fft"}[Est]
    assert tsne.perplexity_ == 30.0
    assert tsne.n_features_in_ == 10
    assert tsne.learning_rate == "auto"  # the raw parameter is untouched


@pytest.mark.parametrize("Est", ESTIMATORS)
def test_float32_stays_float32_and_matches_float64(Est, blobs):
    X, y = blobs
    Y32 = Est(random_state=0).fit_transform(X.astype(np.float32))
    Y64 = Est(random_state=0).fit_transform(X)
    assert Y32.dtype == np.float32 and Y64.dtype == np.float64
    # Different roundings diverge into different (equally good) layouts, so the
    # comparison is on quality, not coordinates.
    assert abs(_knn_accuracy(Y32, y) - _knn_accuracy(Y64, y)) < 0.03


@pytest.mark.parametrize("Est", ESTIMATORS)
def test_transform_training_rows_and_new_points(Est, blobs):
    X, y = blobs
    X_train, X_test, y_train, y_test = X[:250], X[250:], y[:250], y[250:]
    tsne = Est(perplexity=20, random_state=0).fit(X_train)
    assert_array_equal(tsne.transform(X_train[:10]), tsne.embedding_[:10])
    Y_test = tsne.transform(X_test)
    # New points land in their own cluster: kNN trained on the embedding.
    knn = KNeighborsClassifier(5).fit(tsne.embedding_, y_train)
    assert knn.score(Y_test, y_test) > 0.95
    # Row-by-row equals the batch, bitwise.
    one_by_one = np.vstack([tsne.transform(X_test[i : i + 1]) for i in range(5)])
    assert_array_equal(one_by_one, Y_test[:5])
    # transform writes nothing to self.
    state = pickle.dumps(tsne)
    tsne.transform(X_test)
    assert pickle.dumps(tsne) == state


@pytest.mark.slow
@pytest.mark.parametrize("Est", ESTIMATORS)
def test_transform_quality_on_held_out_digits(Est):
    """Held-out digits land among their class: 5-NN fitted on the embedding.

    1,600 training rows: above the size below which the FFT backend sums the
    frozen embedding's repulsion exactly, so its grid is what is tested.
    """
    X, y = load_digits(return_X_y=True)
    tsne = Est(random_state=0, n_jobs=2).fit(X[:1600])
    knn = KNeighborsClassifier(5).fit(tsne.embedding_, y[:1600])
    # Measured 0.944 for both (5-NN on the pixels: 0.949); with 1,300 training
    # rows, 0.956 (BH) and 0.954 (FFT).
    assert knn.score(tsne.transform(X[1600:]), y[1600:]) >= 0.9


@pytest.mark.parametrize("Est", ESTIMATORS)
def test_pickle_and_clone_after_fit(Est, blobs):
    X, _ = blobs
    tsne = Est(max_iter=260, random_state=0).fit(X)
    restored = pickle.loads(pickle.dumps(tsne))
    assert_array_equal(restored.transform(X[:20] + 0.1), tsne.transform(X[:20] + 0.1))
    fresh = clone(tsne)
    assert not hasattr(fresh, "embedding_")
    assert fresh.get_params() == tsne.get_params()


@pytest.mark.parametrize("Est", ESTIMATORS)
def test_pipeline_grid_search_on_digits(Est):
    X, y = load_digits(return_X_y=True)
    X, y = X[:400], y[:400]
    pipe = Pipeline(
        [("tsne", Est(max_iter=300, random_state=0)), ("knn", KNeighborsClassifier())]
    )
    search = GridSearchCV(pipe, {"tsne__perplexity": [10, 30]}, cv=2)
    search.fit(X, y)
    assert search.best_score_ > 0.8
    assert search.best_estimator_.named_steps["tsne"].embedding_.shape == (400, 2)


@pytest.mark.parametrize("Est", ESTIMATORS)
def test_precomputed_and_sparse_inputs(Est, blobs):
    X, y = blobs
    D = np.sqrt(((X[:, None] - X[None]) ** 2).sum(-1))
    tsne = Est(metric="precomputed", init="random", random_state=0, max_iter=400)
    Y = tsne.fit_transform(D)
    assert _knn_accuracy(Y, y) > 0.95
    assert tsne.transform(D[:5]).shape == (5, 2)
    assert_array_equal(tsne.transform(D[:5]), Y[:5])
    Ys = Est(random_state=0, max_iter=300).fit_transform(sp.csr_matrix(X))
    assert _knn_accuracy(Ys, y) > 0.95


def _separation(Y, y):
    """Mean distance between cluster centroids over the mean within-cluster spread."""
    centroids = np.array([Y[y == c].mean(axis=0) for c in np.unique(y)])
    spread = np.mean(
        [
            np.linalg.norm(Y[y == c] - centroids[i], axis=1).mean()
            for i, c in enumerate(np.unique(y))
        ]
    )
    between = np.linalg.norm(centroids[:, None] - centroids[None], axis=-1)
    return between[np.triu_indices(len(centroids), 1)].mean() / spread


@pytest.mark.slow
@pytest.mark.parametrize("Est", ESTIMATORS)
def test_dof_and_late_exaggeration_change_the_layout(Est, blobs):
    X, y = blobs
    base = Est(random_state=0).fit_transform(X)
    heavy = Est(dof=0.5, random_state=0).fit_transform(X)
    exaggerated = Est(exaggeration=4.0, random_state=0).fit_transform(X)
    # Heavier tails separate clusters further (Kobak et al. 2019); late
    # exaggeration compacts the whole layout.
    assert _separation(heavy, y) > 1.2 * _separation(base, y)
    assert exaggerated.std() < 0.7 * base.std()
    for Y in (heavy, exaggerated):
        assert _knn_accuracy(Y, y) > 0.95


@pytest.mark.parametrize("Est", ESTIMATORS)
def test_callbacks_see_progress_and_can_stop(Est, blobs):
    X, _ = blobs
    calls = []

    def callback(iteration, kl, embedding):
        calls.append((iteration, kl, embedding.shape))
        return iteration >= 400

    tsne = Est(callbacks=callback, random_state=0).fit(X)
    assert tsne.n_iter_ == 400
    assert [c[0] for c in calls] == list(range(50, 401, 50))
    assert all(c[1] > 0 and c[2] == (300, 2) for c in calls)
    with pytest.raises(TypeError, match="callables"):
        Est(callbacks=[1]).fit(X)


@pytest.mark.parametrize("Est", ESTIMATORS)
def test_stopping_rules(Est, blobs, monkeypatch):
    X, _ = blobs
    # A huge min_grad_norm stops each phase at its first check, but the main
    # phase still runs after the early one (sklearn's behaviour).
    tsne = Est(min_grad_norm=1e3, random_state=0).fit(X)
    assert tsne.n_iter_ == 100
    # n_iter_without_progress reaches the main phase only (sklearn's rule;
    # the rule itself is tested in test_optimizer.py).
    seen = []

    class Recording(_base.GradientDescent):
        def run(self, *args, **kwargs):
            seen.append(kwargs["n_iter_without_progress"])
            return super().run(*args, **kwargs)

    monkeypatch.setattr(_base, "GradientDescent", Recording)
    Est(n_iter_without_progress=50, max_iter=300, random_state=0).fit(X)
    assert seen == [None, 50]


@pytest.mark.parametrize("Est", ESTIMATORS)
def test_device_resolution(Est, blobs, monkeypatch):
    X, _ = blobs
    import fasttsne.gpu

    # The estimator resolves its device through the policy of the backend
    # registry (tests/tsne/test_gradients.py walks the policy itself): "auto"
    # with a visible GPU but no usable CUDA backend stays on the CPU, and an
    # explicit "cuda" fails before any work with the policy's error.
    monkeypatch.setattr(fasttsne.gpu, "is_available", lambda: True)
    no_cuda_backend = {**Est._backend_preference, "cuda": ()}
    monkeypatch.setattr(Est, "_backend_preference", no_cuda_backend)
    assert Est(max_iter=260, random_state=0).fit(X).device_ == "cpu"
    monkeypatch.setitem(sys.modules, "torch", None)  # import torch fails
    with pytest.raises(ImportError, match=r'pip install "fasttsne\[gpu\]"'):
        Est(device="cuda").fit(X)


@pytest.mark.parametrize("Est", ESTIMATORS)
def test_backend_receives_knobs_and_numbers(Est, blobs, monkeypatch):
    """Parameter flow: the backend gets the estimator's knobs, is prepared once
    per fit (and per transform, against embedding_), and sees exaggeration and
    dof as plain numbers."""
    X, _ = blobs
    knobs = (
        {"angle": 0.3}
        if Est is BarnesHutTSNE
        else {"n_interpolation_points": 4, "min_num_intervals": 40}
    )
    log = {"get_backend": [], "prepare": [], "calls": []}
    real_get_backend = _base.get_backend

    class Recording:
        def __init__(self, backend):
            self.backend = backend
            self.name = backend.name

        def prepare(self, P, reference=None):
            log["prepare"].append((P.shape, reference))
            self.backend.prepare(P, reference=reference)

        def __call__(self, Y, *, exaggeration, dof, compute_error):
            log["calls"].append((exaggeration, dof, compute_error))
            return self.backend(
                Y, exaggeration=exaggeration, dof=dof, compute_error=compute_error
            )

    def recording_get_backend(name, **kwargs):
        log["get_backend"].append((name, kwargs))
        return Recording(real_get_backend(name, **kwargs))

    monkeypatch.setattr(_base, "get_backend", recording_get_backend)
    tsne = Est(
        max_iter=60,
        early_exaggeration_iter=20,
        early_exaggeration=6.0,
        exaggeration=2.5,
        dof=0.8,
        n_jobs=2,
        random_state=0,
        **knobs,
    ).fit(X)
    ((name, kwargs),) = log["get_backend"]
    assert name == "auto" and kwargs["n_threads"] == 2 and kwargs["device"] == "cpu"
    assert {k: kwargs[k] for k in knobs} == knobs
    assert log["prepare"] == [((300, 300), None)]
    exaggerations = [call[0] for call in log["calls"]]
    # Each phase ends with one more call, which evaluates the KL of its final
    # embedding (at the phase's last factor).
    assert exaggerations == [6.0] * 21 + [2.5] * 41
    assert all(
        type(call[0]) is float and type(call[1]) is float for call in log["calls"]
    )
    assert {call[1] for call in log["calls"]} == {0.8}
    # transform: the fitted backend, by name, in reference mode, exaggeration 1.
    log["calls"].clear()
    tsne.transform(X[:5] + 0.1)
    name, kwargs = log["get_backend"][-1]
    assert name == tsne.backend_
    assert {k: kwargs[k] for k in knobs} == knobs
    shape, reference = log["prepare"][-1]
    assert shape == (5, 300) and reference is tsne.embedding_
    assert {call[:2] for call in log["calls"]} == {(1.0, 0.8)}


@pytest.mark.parametrize("Est", ESTIMATORS)
@pytest.mark.parametrize("init", ["pca", "random", "spectral"])
def test_initialisations(Est, init, blobs):
    X, y = blobs
    tsne = Est(init=init, random_state=0, max_iter=400)
    assert _knn_accuracy(tsne.fit_transform(X), y) > 0.95


@pytest.mark.parametrize("Est", ESTIMATORS)
def test_array_init_is_used_as_given(Est, blobs):
    """An init array is not rescaled (scikit-learn's convention)."""
    X, _ = blobs
    init = np.random.default_rng(1).normal(size=(300, 2))
    tsne = Est(init=init, max_iter=1, learning_rate=1e-12, random_state=0)
    Y = tsne.fit_transform(X)
    assert_allclose(Y, init - init.mean(axis=0), atol=1e-9)


@pytest.mark.parametrize("Est", ESTIMATORS)
def test_verbose_prints_progress(Est, blobs, capsys):
    X, _ = blobs
    Est(max_iter=100, verbose=1, random_state=0).fit(X)
    err = capsys.readouterr().err
    assert "[fasttsne] Iteration 50: KL divergence" in err
    assert "[fasttsne] Iteration 100: KL divergence" in err


@pytest.mark.parametrize("Est", ESTIMATORS)
def test_duplicates_and_tiny_inputs(Est, rng):
    X = rng.normal(size=(40, 3))
    X[20:] = X[:20]  # every point twice
    Y = Est(random_state=0).fit_transform(X)
    assert np.all(np.isfinite(Y))
    # Twins land together: most are closer to each other than to 90% of the
    # other points (a few can be pulled apart by their neighbours at N = 40).
    pair = np.linalg.norm(Y[:20] - Y[20:], axis=1)
    typical = np.percentile(np.linalg.norm(Y[:, None] - Y[None], axis=-1), 10)
    assert np.mean(pair < typical) >= 0.8
    with pytest.warns(UserWarning, match="perplexity=30"):
        Y = Est(random_state=0).fit_transform(rng.normal(size=(2, 3)))
    assert Y.shape == (2, 2) and np.all(np.isfinite(Y))
    X3 = np.array([[0.0, 0.0], [0.0, 0.0], [1.0, 1.0]])
    with pytest.warns(UserWarning):
        assert np.all(np.isfinite(Est(random_state=0).fit_transform(X3)))


BAD_INPUTS = [
    (np.array([[0.0, np.nan], [1.0, 2.0], [3.0, 1.0]]), ValueError, "NaN"),
    (np.array([[0.0, np.inf], [1.0, 2.0], [3.0, 1.0]]), ValueError, "infinity"),
    (np.zeros((0, 3)), ValueError, "0 sample"),
    (np.ones((1, 3)), ValueError, "1 sample"),
    (np.ones((5, 3)), ValueError, "identical"),
    (np.ones((5, 3)) * (1 + 1j), ValueError, "[Cc]omplex"),
    (np.array([["a", "b"], ["c", "d"]], dtype=object), ValueError, "float"),
]


@pytest.mark.parametrize("Est", ESTIMATORS)
@pytest.mark.parametrize("X, error, match", BAD_INPUTS)
def test_bad_input_raises_clear_errors(Est, X, error, match):
    with pytest.raises(error, match=match):
        Est().fit(X)


@pytest.mark.parametrize("Est", ESTIMATORS)
def test_bad_parameters_and_shapes(Est, blobs):
    X, _ = blobs
    with pytest.raises(ValueError, match="perplexity"):
        Est(perplexity=-1).fit(X)
    with pytest.raises(ValueError, match="init has shape"):
        Est(init=np.zeros((3, 2))).fit(X)
    with pytest.raises(ValueError, match="precomputed"):
        Est(metric="precomputed", init="random").fit(X)
    with pytest.raises(ValueError, match='init="pca" cannot be used'):
        Est(metric="precomputed").fit(np.abs(X[:, :1] - X[:, :1].T))
    tsne = Est(max_iter=260, random_state=0).fit(X)
    with pytest.raises(ValueError, match="features"):
        tsne.transform(X[:, :5])


@pytest.fixture(scope="module")
def large_blobs():
    """Enough points for fits to renumber them (_layout._REORDER_MIN_SAMPLES)."""
    X, _ = make_blobs(
        _layout._REORDER_MIN_SAMPLES, n_features=5, centers=6, random_state=0
    )
    return X


@pytest.mark.slow
@pytest.mark.parametrize("Est", ESTIMATORS)
def test_renumbered_fits_answer_in_input_order(Est, large_blobs):
    """Fits that optimise in the cache-friendly order are invisible from outside.

    They are bitwise reproducible across n_jobs; permuting the input rows
    permutes the embedding (to rounding: the sums run in another order);
    callbacks, transform and pickles see the input's order.
    """
    X = large_blobs
    seen = []
    params = {"max_iter": 10, "early_exaggeration_iter": 5, "random_state": 0}

    def callback(_iteration, _kl, embedding):
        seen.append(embedding.copy())

    tsne = Est(callbacks=callback, callbacks_every_iters=10, n_jobs=2, **params)
    Y = tsne.fit_transform(X)
    assert_array_equal(Est(n_jobs=1, **params).fit_transform(X), Y)
    assert_array_equal(seen[-1], Y)
    assert_array_equal(tsne.transform(X[:50]), Y[:50])
    tsne.set_params(callbacks=None)  # a local function does not pickle
    assert_array_equal(pickle.loads(pickle.dumps(tsne)).transform(X[:50]), Y[:50])
    permutation = np.random.default_rng(0).permutation(X.shape[0])
    Y_permuted = Est(n_jobs=2, **params).fit_transform(X[permutation])
    # Measured: 1.3e-13 (BH) and 1.3e-14 (FFT) of the extent after 10 iterations.
    assert_allclose(Y_permuted, Y[permutation], atol=1e-8 * np.abs(Y).max())


def test_fft_repulsion_records_what_ran():
    """``repulsion="auto"`` on 1,797 digits takes BarnesHutTSNE's walk at every
    iteration (the same bits as BarnesHutTSNE), ``"grid"`` never, and
    ``n_tree_calls_`` says so."""
    X, _ = load_digits(return_X_y=True)
    params = {"max_iter": 260, "random_state": 0, "n_jobs": 2}
    auto = FFTInterpTSNE(**params).fit(X)
    grid = FFTInterpTSNE(repulsion="grid", **params).fit(X)
    bh = BarnesHutTSNE(**params).fit(X)
    assert auto.n_tree_calls_ >= auto.n_iter_ > 0
    assert grid.n_tree_calls_ == 0
    assert_array_equal(auto.embedding_, bh.embedding_)
    assert not np.array_equal(grid.embedding_, bh.embedding_)
