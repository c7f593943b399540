"""The device backends and the estimators on ``device="cuda"``.

The backend against the exact oracle in both modes, the fit and transform
loops on the device, determinism, and scikit-learn's checks that fit in the
interpreter's time. Without a GPU everything runs interpreted on CPU tensors
(``tests/gpu/conftest.py``), which costs tens of milliseconds per iteration,
hence the small fits.
"""

import pickle

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.base import clone
from sklearn.datasets import make_blobs
from sklearn.model_selection import cross_val_score
from sklearn.neighbors import KNeighborsClassifier
from sklearn.utils.estimator_checks import estimator_checks_generator

from fasttsne import BarnesHutTSNE, FFTInterpTSNE
from fasttsne.tsne._gradients import get_backend, list_backends, resolve_device
from fasttsne.tsne._gradients._exact import ExactGradient
from fasttsne.tsne._optimizer import GradientDescent
from tests._oracles import clusters, random_affinities, random_new_point_affinities
from tests.gpu.conftest import torch

pytestmark = pytest.mark.interpreter

# The grid knobs under which interpolation is exact to ~1e-6 (test_interp).
FINE_GRID = {
    "n_interpolation_points": 5,
    "min_num_intervals": 1,
    "ints_in_interval": 0.25,
    "max_num_intervals": 0,
}


# A coarse grid (boxes 4 units wide): the interpreter's cost grows with the
# number of boxes, and the clusters of these tests need no finer one.
_SMALL_GRID = {"min_num_intervals": 10, "ints_in_interval": 4.0}


def _backend(name, n_components=2, **knobs):
    return get_backend(
        name, device="cuda", n_components=n_components, n_threads=1, **knobs
    )


def _problem(rng, mode, n, d):
    """``(P, reference, Y)`` of a fit or of 50 new points against ``n``."""
    if mode == "fit":
        return random_affinities(rng, n), None, clusters(rng, n, d, spread=10.0)
    reference = clusters(rng, n, d, spread=10.0)
    P = random_new_point_affinities(rng, 50, n)
    Y = np.ascontiguousarray(P @ reference + rng.normal(size=(50, d)))
    return P, reference, Y


def _knn_accuracy(Y, y):
    return cross_val_score(KNeighborsClassifier(5), Y, y, cv=3).mean()


# ---------------------------------------------------------------------------
# Registry and device policy
# ---------------------------------------------------------------------------


def test_registry_and_device_policy(device):
    """The CUDA backends, their aliases, and what "auto" picks with a GPU."""
    del device
    assert {"triton", "triton_fft"} <= set(list_backends())
    assert _backend("gpu").name == "triton"
    assert _backend("gpu_fft").name == "triton_fft"
    assert _backend("triton", n_components=3).name == "triton"
    with pytest.raises(ValueError, match="cannot run"):
        _backend("triton_fft", n_components=3)
    with pytest.raises(ValueError, match="cannot run"):
        get_backend("triton", device="cpu", n_components=2, n_threads=1)
    for Est, name in [(BarnesHutTSNE, "triton"), (FFTInterpTSNE, "triton_fft")]:
        preference = Est._backend_preference  # pylint: disable=protected-access
        assert preference["cuda"] == (name,)
        device = resolve_device("auto", preference=preference, n_components=2)
        assert device == "cuda"


# ---------------------------------------------------------------------------
# The backends against the oracle
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["fit", "reference"])
@pytest.mark.parametrize("d", [1, 2, 3])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_exact_backend_is_the_oracle(rng, device, mode, d, dtype):
    """Gradient and KL of "triton" are ExactGradient's, both modes."""
    del device
    P, reference, Y = _problem(rng, mode, 300, d)
    Y = Y.astype(dtype)
    backend = _backend("triton", n_components=d).prepare(P, reference=reference)
    oracle = ExactGradient().prepare(P, reference=reference)
    for exaggeration, dof in [(12.0, 1.0), (1.0, 0.6)]:
        kwargs = {"exaggeration": exaggeration, "dof": dof, "compute_error": True}
        kl, grad = backend(Y, **kwargs)
        kl_oracle, grad_oracle = oracle(Y.astype(np.float64), **kwargs)
        assert isinstance(grad, np.ndarray) and grad.dtype == dtype
        # float64: summation order; float32: float32 sums and division.
        tolerance = 1e-11 if dtype == np.float64 else 1e-5
        error = np.linalg.norm(grad - grad_oracle) / np.linalg.norm(grad_oracle)
        assert error < tolerance
        assert_allclose(kl, kl_oracle, rtol=tolerance)
    # One device copy of P's values, as given (float32), whatever Y's dtype.
    assert backend._data.dtype == backend._torch.float32
    assert backend._data.shape == (P.nnz,)


@pytest.mark.parametrize("d", [1, 2])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_grid_backend_is_the_oracle_on_a_fine_grid(rng, device, d, dtype):
    """ "triton_fft" interpolates the repulsion: exact on a fine grid."""
    del device
    P, _, Y = _problem(rng, "fit", 300, d)
    Y = Y.astype(dtype)
    backend = _backend("triton_fft", n_components=d, **FINE_GRID).prepare(P)
    kl, grad = backend(Y, exaggeration=4.0, dof=0.8, compute_error=True)
    kl_oracle, grad_oracle = ExactGradient().prepare(P)(
        Y.astype(np.float64), exaggeration=4.0, dof=0.8, compute_error=True
    )
    # The fine grid's interpolation error (below 1e-6), or float32 rounding.
    error = np.linalg.norm(grad - grad_oracle) / np.linalg.norm(grad_oracle)
    assert error < 1e-5
    assert_allclose(kl, kl_oracle, rtol=1e-6)
    # At the default knobs, the CPU backends' bounds (test_gradients).
    backend = _backend("triton_fft", n_components=d).prepare(P)
    kl, grad = backend(Y, exaggeration=4.0, dof=0.8, compute_error=True)
    error = np.linalg.norm(grad - grad_oracle) / np.linalg.norm(grad_oracle)
    assert error < 3e-2
    assert_allclose(kl, kl_oracle, rtol=3e-3)


@pytest.mark.parametrize("name", ["triton", "triton_fft"])
def test_backend_on_device_tensors_is_bitwise_repeatable(rng, device, name):
    """Tensors in, tensors out, on the device; the same bits on every call."""
    P, _, Y = _problem(rng, "fit", 300, 2)
    backend = _backend(name).prepare(P)
    Y_device = backend.to_device(Y.astype(np.float32))
    assert Y_device.device == device and Y_device.dtype == torch.float32
    kl1, grad1 = backend(Y_device, exaggeration=12.0, dof=1.0, compute_error=True)
    kl2, grad2 = backend(Y_device, exaggeration=12.0, dof=1.0, compute_error=True)
    assert isinstance(grad1, torch.Tensor) and grad1.device == device
    assert grad2 is not grad1
    assert kl1 == kl2
    assert torch.equal(grad1, grad2)
    assert_array_equal(backend.to_host(grad1), grad1.cpu().numpy())


def test_backend_contract_errors(rng, device):
    """Unprepared calls, dense P, wrong shapes and diverged embeddings raise."""
    del device
    P, _, Y = _problem(rng, "fit", 30, 2)
    backend = _backend("triton")
    with pytest.raises(RuntimeError, match="prepare"):
        backend(Y, exaggeration=1.0, dof=1.0, compute_error=False)
    with pytest.raises(TypeError, match="sparse"):
        backend.prepare(P.toarray())
    with pytest.raises(ValueError, match="square"):
        backend.prepare(P[:10])
    backend.prepare(P)
    with pytest.raises(ValueError, match="rows"):
        backend(Y[:10], exaggeration=1.0, dof=1.0, compute_error=False)
    Y_bad = Y.copy()
    Y_bad[3, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        backend(Y_bad, exaggeration=1.0, dof=1.0, compute_error=False)
    # On the device the check is made where the KL synchronises anyway.
    with pytest.raises(ValueError, match="diverged"):
        backend(backend.to_device(Y_bad), exaggeration=1.0, dof=1.0, compute_error=True)


def test_optimizer_runs_on_tensors_like_on_arrays(rng, device):
    """One update for both namespaces; callbacks see NumPy arrays."""
    Y = rng.normal(size=(40, 2))
    seen = []

    def callback(iteration, kl, embedding):
        seen.append((iteration, type(embedding)))

    def objective(target):
        def gradient(Y_now, compute_error):
            kl = float((Y_now * Y_now).sum()) if compute_error else None
            return kl, Y_now - target

        return gradient

    target = rng.normal(size=(40, 2))
    results = []
    for array in (Y.copy(), torch.from_numpy(Y.copy()).to(device)):
        goal = target if isinstance(array, np.ndarray) else torch.from_numpy(target)
        optimizer = GradientDescent(0.5, n_iter_check=10, callbacks=[callback])
        optimizer.run(array, objective(goal), n_iter=30, momentum=0.8)
        results.append(array if isinstance(array, np.ndarray) else array.numpy())
    # Elementwise IEEE arithmetic; only the centring's mean sums differently.
    assert_allclose(results[1], results[0], rtol=0, atol=1e-12)
    assert seen == [(10, np.ndarray), (20, np.ndarray), (30, np.ndarray)] * 2


# ---------------------------------------------------------------------------
# The estimators on the device
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def blobs():
    return make_blobs(300, n_features=10, centers=4, cluster_std=1.0, random_state=0)


# The end-to-end fits: N = 300, perplexity 30 (k = 90), 500 iterations (the
# KL divergence has settled: it moves by well under the spread below from
# 500 to 750 iterations).
_FIT_PARAMS = {"perplexity": 30, "max_iter": 500, "random_state": 0}


@pytest.fixture(scope="module")
def cpu_fits(blobs, module_device):
    """Exact CPU fits of the blobs and of three copies perturbed by 1e-13.

    t-SNE's trajectories are chaotic, so these fits, equally exact, end in
    different local minima a few percent apart in KL divergence (the spread
    is in ``docs/gpu.rst``, *Determinism*). They depend on
    ``module_device`` so that they are skipped, not run, with the module's
    device tests.
    """
    del module_device
    X, _ = blobs
    fits = []
    for seed in range(4):
        noise = np.random.default_rng(seed).normal(size=X.shape) if seed else 0.0
        X_seed = X * (1.0 + 1e-13 * noise)
        tsne = BarnesHutTSNE(device="cpu", angle=0.0, **_FIT_PARAMS)
        fits.append(tsne.fit(X_seed))
    return fits


@pytest.fixture
def knn_calls(monkeypatch):
    """Queries of each device kNN search (``_launchers.exact_knn``) in a test."""
    from fasttsne.gpu import _launchers

    calls = []
    exact_knn = _launchers.exact_knn

    def spy(X, *args, **kwargs):
        calls.append(X.shape[0])
        return exact_knn(X, *args, **kwargs)

    monkeypatch.setattr(_launchers, "exact_knn", spy)
    return calls


def test_device_fit_follows_the_cpu_trajectory(blobs, device, knn_calls):
    """Same P (the device's kNN), same init, same steps as the exact CPU fit.

    The first 20 iterations (early exaggeration) agree to rounding: the
    embeddings to 1e-9 and the KL divergence to 1e-12, relative (the
    differences seen are in ``docs/gpu.rst``). Past them the rounding
    differences grow as between any two exact fits (``cpu_fits``).
    """
    del device
    X, _ = blobs
    seen = {"cuda": {}, "cpu": {}}
    for where, record in seen.items():
        BarnesHutTSNE(
            device=where,
            angle=0.0,
            perplexity=30,
            max_iter=20,
            random_state=0,
            callbacks_every_iters=10,
            callbacks=lambda it, kl, Y, record=record: record.update(
                {it: (kl, Y.copy())}
            ),
        ).fit(X)
    assert knn_calls == [300]
    assert sorted(seen["cuda"]) == sorted(seen["cpu"]) == [10, 20]
    for iteration, (kl, Y) in seen["cuda"].items():
        kl_cpu, Y_cpu = seen["cpu"][iteration]
        assert_allclose(kl, kl_cpu, rtol=1e-12)
        assert np.abs(Y - Y_cpu).max() < 1e-9 * np.abs(Y_cpu).max()


@pytest.fixture(scope="module")
def device_fit(blobs, module_device):
    """BarnesHutTSNE on the device, kNN included, with ``cpu_fits``' parameters."""
    del module_device
    X, _ = blobs
    return BarnesHutTSNE(device="cuda", **_FIT_PARAMS).fit(X)


def test_fit_on_the_device_matches_the_exact_cpu_fits(device_fit, cpu_fits, blobs):
    """KL within 1% of the exact CPU fits, their kNN accuracy; state is NumPy.

    The issue asks for the CPU's KL within 1%; one exact fit against another
    cannot promise that (``cpu_fits``: they spread over 2-4%), so the device
    fit must lie within 1% of the range of four exact CPU fits that differ
    from it only by rounding, and classify as well as the worst of them.
    """
    on_device = device_fit
    _, y = blobs
    assert on_device.device_ == "cuda" and on_device.backend_ == "triton"
    assert type(on_device.embedding_) is np.ndarray
    assert on_device.embedding_.dtype == np.float64
    assert on_device.n_iter_ == 500
    kls = [tsne.kl_divergence_ for tsne in cpu_fits]
    assert 0.99 * min(kls) <= on_device.kl_divergence_ <= 1.01 * max(kls)
    accuracy = min(_knn_accuracy(tsne.embedding_, y) for tsne in cpu_fits)
    assert _knn_accuracy(on_device.embedding_, y) >= accuracy - 0.01
    restored = pickle.loads(pickle.dumps(on_device))
    assert_array_equal(restored.embedding_, on_device.embedding_)
    assert clone(on_device).get_params()["device"] == "cuda"


def test_device_loop_holds_the_exact_minimum(cpu_fits, device):
    """From the CPU fit's minimum, 50 more iterations on both: the same KL."""
    del device
    on_cpu = cpu_fits[0]
    rates = []
    from fasttsne.tsne import _affinity

    X = on_cpu._fit_X  # pylint: disable=protected-access
    P = _affinity.joint_probabilities(X, on_cpu.perplexity_)
    for backend in (_backend("triton"), ExactGradient()):
        backend.prepare(P)
        Y = on_cpu.embedding_.copy()
        if isinstance(backend, ExactGradient):
            Y_run = Y
        else:
            Y_run = backend.to_device(Y)
        optimizer = GradientDescent(on_cpu.learning_rate_)
        kl, _, _ = optimizer.run(
            Y_run,
            lambda Y_now, error, b=backend: b(
                Y_now, exaggeration=1.0, dof=1.0, compute_error=error
            ),
            n_iter=50,
            momentum=0.8,
        )
        rates.append(kl)
    assert_allclose(rates[0], rates[1], rtol=1e-6)


def test_transform_on_the_device(blobs, device, knn_calls):
    """Training rows map to themselves; new points as the CPU's exact sums.

    A short fit is enough: transform optimises each new point against
    whatever embedding was fitted. The new points' kNN runs on the device.
    """
    del device
    X, _ = blobs
    on_device = BarnesHutTSNE(
        device="cuda",
        perplexity=10,
        max_iter=40,
        early_exaggeration_iter=20,
        random_state=0,
    ).fit(X)
    rng = np.random.default_rng(1)
    X_new = X[:25] + rng.normal(scale=0.3, size=(25, X.shape[1]))
    assert_array_equal(on_device.transform(X[:5]), on_device.embedding_[:5])
    knn_calls.clear()
    Y_new = on_device.transform(X_new)
    assert knn_calls == [25]
    on_cpu = clone(on_device).set_params(angle=0.0)
    on_cpu.__dict__.update(
        {k: v for k, v in vars(on_device).items() if k.endswith("_")}
    )
    on_cpu._fit_X = on_device._fit_X  # pylint: disable=protected-access
    on_cpu.device_, on_cpu.backend_ = "cpu", "bh"
    # 100 independent steps per point from the same start: rounding only.
    assert_allclose(Y_new, on_cpu.transform(X_new), rtol=0, atol=1e-8)


@pytest.mark.parametrize("Est", [BarnesHutTSNE, FFTInterpTSNE])
def test_device_fits_are_bitwise_reproducible(Est, blobs, device):
    """Two fits, the same bits; float32 stays float32; callbacks get NumPy."""
    del device
    X = blobs[0][:100].astype(np.float32)
    seen = []
    params = {
        "perplexity": 10,
        "max_iter": 20,
        "early_exaggeration_iter": 10,
        "callbacks_every_iters": 10,
        "random_state": 0,
        "device": "cuda",
        **(_SMALL_GRID if Est is FFTInterpTSNE else {}),
    }
    first = Est(
        callbacks=lambda it, kl, Y: seen.append((it, type(Y), Y.dtype.name)), **params
    ).fit(X)
    second = Est(**params).fit(X)
    assert first.device_ == "cuda"
    assert first.embedding_.dtype == np.float32
    assert_array_equal(first.embedding_, second.embedding_)
    assert first.kl_divergence_ == second.kl_divergence_
    assert [it for it, _, _ in seen] == [10, 20]
    assert {(kind, dtype) for _, kind, dtype in seen} == {(np.ndarray, "float32")}


def test_fft_estimator_on_the_device(blobs, device):
    """FFTInterpTSNE(device="cuda") runs the grid; the clusters come out."""
    del device
    X, y = blobs
    tsne = FFTInterpTSNE(
        device="cuda",
        perplexity=20,
        max_iter=40,
        early_exaggeration_iter=20,
        random_state=0,
        **_SMALL_GRID,
    ).fit(X)
    assert tsne.backend_ == "triton_fft"
    assert _knn_accuracy(tsne.embedding_, y) > 0.95
    Y_new = tsne.transform(X[:10] + 0.1)
    assert Y_new.shape == (10, 2) and np.isfinite(Y_new).all()


# scikit-learn's checks run on the device path, kNN included: those whose
# outcome depends on where the fit runs and that fit only a few times on
# 10-30 samples, so that the interpreter runs them: dtypes through the device
# loop, NumPy-only fitted state (pickle, dict), bitwise idempotence, per-row
# transform (subset invariance), read-only input (copied to the device). The
# others stop in input validation before any device code (shared with the CPU
# path) or fit many times or on more data; all of them run on the CPU
# estimators in tests/test_common.py.
_DEVICE_CHECKS = {
    "check_estimators_dtypes",
    "check_estimators_fit_returns_self",
    "check_estimators_pickle",
    "check_transformer_preserve_dtypes",
    "check_fit_idempotent",
    "check_fit_check_is_fitted",
    "check_n_features_in",
    "check_methods_subset_invariance",
    "check_dict_unchanged",
    "check_dont_overwrite_parameters",
    "check_readonly_memmap_input",
}


def _check_name(check):
    return getattr(check, "func", check).__name__


_SELECTED = [
    pytest.param(estimator, check, id=_check_name(check))
    for estimator, check in estimator_checks_generator(
        BarnesHutTSNE(
            perplexity=2, max_iter=40, early_exaggeration_iter=20, device="cuda"
        ),
        mark=None,
    )
    if _check_name(check) in _DEVICE_CHECKS
]


@pytest.mark.parametrize(("estimator", "check"), _SELECTED)
def test_device_estimator_checks(estimator, check, device):
    """The selected checks of scikit-learn pass on the device path."""
    del device
    check(estimator)
