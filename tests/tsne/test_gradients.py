"""Tests of the gradient backends: the registry, the exact oracle, then every
registered backend, in both modes (fit, and reference mode for ``transform``),
against the oracle."""

import inspect
import subprocess
import sys

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from scipy.optimize import check_grad

import fasttsne.gpu
from fasttsne import BarnesHutTSNE, FFTInterpTSNE
from fasttsne._cython._interp import bounding_box
from fasttsne._cython._quadtree import bh_repulsion
from fasttsne.tsne._gradients import get_backend, list_backends, resolve_device
from fasttsne.tsne._gradients._bh import DEFAULT_ANGLE
from fasttsne.tsne._gradients._exact import ExactGradient, kl_divergence
from fasttsne.tsne._gradients._fft import FFTGradient, _tree_is_cheaper
from fasttsne.tsne._gradients._interpolation import (
    GRID_KNOB_DEFAULTS,
    InterpolationGrid,
    _fft_repulsion,
)
from tests._oracles import (
    clusters,
    exact_attraction,
    exact_reference_repulsion,
    exact_repulsion,
    random_affinities,
    relative_error,
    random_new_point_affinities,
)


def _cpu_backends():
    """The registered backends that run on the CPU (tests/gpu has the others)."""
    names = []
    for name in list_backends():
        try:
            get_backend(name, device="cpu", n_components=1, n_threads=1)
        except ValueError:
            continue
        names.append(name)
    return names


BACKENDS = _cpu_backends()
MODES = ["fit", "reference"]

# Every CPU backend at its defaults, and the FFT backend forced onto its grid:
# at the 1,600 points of the tests below, "auto" hands 2-D fit calls to the
# Barnes-Hut walk, so the grid needs its own cases.
VARIANTS = {name: (name, {}) for name in BACKENDS}
if "fft" in BACKENDS:
    VARIANTS["fft-grid"] = ("fft", {"repulsion": "grid"})

# Knobs under which a backend computes the exact sums up to rounding or a
# negligible interpolation error; a backend without an entry is only checked
# at its defaults.
_EXACT_SETTINGS = {
    "bh": {"angle": 0.0},
    "fft": {
        "n_interpolation_points": 5,
        "min_num_intervals": 1,
        "ints_in_interval": 0.25,
        "max_num_intervals": 0,
        "repulsion": "grid",
    },
}


def _backend(name, n_components=2, n_threads=1, **knobs):
    """An unprepared backend, or a skip when it cannot run here."""
    try:
        return get_backend(
            name,
            device="cpu",
            n_components=n_components,
            n_threads=n_threads,
            **knobs,
        )
    except ValueError as exc:
        pytest.skip(f"{name} is not usable for n_components={n_components}: {exc}")


def _problem(rng, mode, n_samples, n_components, spread=15.0):
    """``(P, reference, Y)`` of a fit (reference None) or of new points.

    In reference mode the frozen embedding has ``n_samples`` points and the
    200 new points start near their neighbours' weighted mean.
    """
    if mode == "fit":
        P = random_affinities(rng, n_samples)
        return P, None, clusters(rng, n_samples, n_components, spread=spread)
    reference = clusters(rng, n_samples, n_components, spread=spread)
    P = random_new_point_affinities(rng, 200, n_samples)
    Y = np.ascontiguousarray(P @ reference + rng.normal(size=(200, n_components)))
    return P, reference, Y


def _call(backend, Y, *, exaggeration=1.0, dof=1.0, compute_error=True):
    return backend(Y, exaggeration=exaggeration, dof=dof, compute_error=compute_error)


def _exact(P, reference, Y, **kwargs):
    """The oracle's ``(kl, grad)``."""
    return _call(ExactGradient().prepare(P, reference=reference), Y, **kwargs)


def _skip_the_oracle(name):
    """Comparing the oracle with itself would test nothing."""
    if name == "exact":
        pytest.skip("the exact backend is the oracle")


# ---------------------------------------------------------------------------
# The exact oracle
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("d", [1, 2, 3])
@pytest.mark.parametrize("dof", [1.0, 0.5, 2.0])
def test_exact_gradient_is_gradient_of_kl(rng, d, dof):
    """Fit mode: ExactGradient is the gradient of the exact KL."""
    n = 30
    P = random_affinities(rng, n, 6)
    Y0 = clusters(rng, n, d, n_clusters=6, spread=3.0)
    exact = ExactGradient().prepare(P)

    def objective(flat):
        return kl_divergence(flat.reshape(n, d), P, dof=dof)

    def gradient(flat):
        return _call(exact, flat.reshape(n, d), dof=dof, compute_error=False)[1].ravel()

    err = check_grad(objective, gradient, Y0.ravel(), epsilon=1e-6)
    # Forward differences with step 1e-6: truncation error ~1e-6 of the norm.
    assert err / np.linalg.norm(gradient(Y0.ravel())) < 1e-4


@pytest.mark.parametrize("d", [1, 2])
@pytest.mark.parametrize("dof", [1.0, 0.5])
def test_exact_reference_gradient_is_gradient_of_its_kl(rng, d, dof):
    """Reference mode: the gradient is twice the gradient of the new points' KL.

    ``sum_i KL(p_{.|i} || q_{.|i})`` with ``q_{j|i} = w_ij / sum_j w_ij``; each
    pair appears once (not twice, as in the symmetric fit), hence 2 for the
    fit's 4, the convention of openTSNE's ``transform``.
    """
    reference = clusters(rng, 40, d, n_clusters=5, spread=4.0)
    P = random_new_point_affinities(rng, 6, 40, n_neighbors=5)
    Y0 = np.ascontiguousarray(P @ reference + rng.normal(size=(6, d)))
    exact = ExactGradient().prepare(P, reference=reference)

    def objective(flat):
        return _call(exact, flat.reshape(Y0.shape), dof=dof)[0]

    def gradient(flat):
        grad = _call(exact, flat.reshape(Y0.shape), dof=dof, compute_error=False)[1]
        return grad.ravel() / 2.0

    err = check_grad(objective, gradient, Y0.ravel(), epsilon=1e-6)
    assert err / np.linalg.norm(gradient(Y0.ravel())) < 1e-4


def test_exact_oracle_formulas(rng):
    """KL ignores exaggeration; reference mode is the formula of the docs."""
    P = random_affinities(rng, 40)
    Y = clusters(rng, 40, 2, n_clusters=6, spread=15.0)
    kl, _ = _exact(P, None, Y, exaggeration=12.0)
    assert_allclose(kl, kl_divergence(Y, P), rtol=1e-12)
    P, reference, Y = _problem(rng, "reference", 300, 2)
    _, grad = _exact(P, reference, Y, exaggeration=3.0, dof=0.7)
    repulsion, sum_w = exact_reference_repulsion(reference, Y, 0.7)
    attraction = exact_attraction(P, Y, 0.7, 3.0, Y_ref=reference)
    assert_allclose(grad, 4.0 * (attraction - repulsion / sum_w[:, None]))


# ---------------------------------------------------------------------------
# Registry and device policy
# ---------------------------------------------------------------------------


def test_registry_names_aliases_and_errors():
    """Names and aliases resolve to one class; unknown names list the valid ones."""
    for name in BACKENDS:
        backend = _backend(name)
        assert backend.name == name
        for alias in type(backend).aliases:
            assert type(_backend(alias)) is type(backend)
    with pytest.raises(ValueError, match=r"Unknown gradient backend 'nope'.*'bh'"):
        get_backend("nope", device="cpu", n_components=2, n_threads=1)
    with pytest.raises(ValueError, match="cannot run"):
        get_backend("fft", device="cpu", n_components=3, n_threads=1)
    with pytest.raises(ValueError, match="device"):
        get_backend("bh", device="tpu", n_components=2, n_threads=1)


def test_auto_takes_the_first_usable_and_hands_out_knobs():
    """ "auto" walks the preference; each backend gets the knobs it declares."""
    backend = get_backend(
        "auto",
        preference=("fft", "bh"),
        device="cpu",
        n_components=3,
        n_threads=2,
        angle=0.3,
        n_interpolation_points=4,
    )
    assert backend.name == "bh"
    assert backend.angle == 0.3 and backend.n_threads == 2
    backend = get_backend(
        "auto", preference=("fft", "bh"), device="cpu", n_components=2, n_threads=1
    )
    assert backend.name == "fft"
    with pytest.raises(TypeError, match="angel"):
        get_backend("bh", device="cpu", n_components=2, n_threads=1, angel=0.3)
    with pytest.raises(ValueError, match="No gradient backend among"):
        get_backend(
            "auto", preference=("fft",), device="cpu", n_components=3, n_threads=1
        )


@pytest.mark.parametrize("name", BACKENDS)
def test_declared_knobs_are_the_constructor_keywords(name):
    """``knobs`` lists exactly the constructor's keywords besides n_threads."""
    cls = type(_backend(name))
    parameters = inspect.signature(cls).parameters
    assert set(parameters) == set(cls.knobs) | {"n_threads"}
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in parameters.values())


def test_importing_fasttsne_imports_no_optional_heavy_package():
    """``import fasttsne`` imports neither torch, triton nor faiss; a small fit
    (exact kNN) and the registry import neither torch nor triton."""
    code = (
        "import sys, numpy as np\n"
        "heavy = {'torch', 'triton', 'faiss'}\n"
        "import fasttsne\n"
        "print(sorted(heavy & set(sys.modules)))\n"
        "import fasttsne.tsne._gradients\n"
        "X = np.random.default_rng(0).normal(size=(40, 3))\n"
        "fasttsne.BarnesHutTSNE(perplexity=5, max_iter=20).fit(X)\n"
        "print(sorted(heavy & set(sys.modules)))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.split() == ["[]", "[]"]


def test_device_policy(monkeypatch):
    """cpu stays cpu; auto needs a usable CUDA backend; cuda says what is missing."""
    preference = {"cpu": ("bh",), "cuda": ()}
    kwargs = {"preference": preference, "n_components": 2}
    assert resolve_device("cpu", **kwargs) == "cpu"
    # A visible GPU is not enough for "auto" without a CUDA backend.
    monkeypatch.setattr(fasttsne.gpu, "is_available", lambda: True)
    assert resolve_device("auto", **kwargs) == "cpu"
    # An explicit "cuda": first the packages, then the device, then a backend.
    monkeypatch.setitem(sys.modules, "torch", None)  # import torch fails
    with pytest.raises(ImportError, match=r'pip install "fasttsne\[gpu\]"'):
        resolve_device("cuda", **kwargs)
    monkeypatch.setattr(fasttsne.gpu, "require", lambda: (None, None))
    monkeypatch.setattr(fasttsne.gpu, "is_available", lambda: False)
    with pytest.raises(ValueError, match="no CUDA device"):
        resolve_device("cuda", **kwargs)
    monkeypatch.setattr(fasttsne.gpu, "is_available", lambda: True)
    with pytest.raises(ValueError, match="no CUDA gradient backend"):
        resolve_device("cuda", **kwargs)
    with pytest.raises(ValueError, match="device"):
        resolve_device("gpu", **kwargs)


# ---------------------------------------------------------------------------
# Every backend, both modes, against the oracle
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("d", [1, 2, 3])
def test_backend_close_to_exact_at_defaults(rng, variant, mode, d):
    """Default knobs: the gradient within the approximation error, KL too."""
    name, knobs = VARIANTS[variant]
    _skip_the_oracle(name)
    backend = _backend(name, n_components=d, n_threads=2, **knobs)
    # 1,600 points: above the size below which the FFT backend sums directly;
    # "fft-grid" interpolates there, "fft" takes the walk in 2-D fits.
    P, reference, Y = _problem(rng, mode, 1600, d)
    for dof, exaggeration in [(1.0, 1.0), (1.0, 12.0), (0.7, 4.0)]:
        kwargs = {"dof": dof, "exaggeration": exaggeration}
        backend.prepare(P, reference=reference)
        kl, grad = _call(backend, Y, **kwargs)
        kl_exact, grad_exact = _exact(P, reference, Y, **kwargs)
        # Bounds: the repulsion error (Barnes-Hut at angle 0.5 and the default
        # grid: ~1-2e-2) diluted by the exact attraction; KL only sees the
        # error of the normalisers' logarithms.
        assert relative_error(grad, grad_exact) < 3e-2
        assert_allclose(kl, kl_exact, rtol=3e-3)


@pytest.mark.parametrize("name", BACKENDS)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("dof", [1.0, 0.6])
def test_backend_exact_settings_give_exact_sums(rng, name, mode, dof):
    """Knobs that remove the approximation give the oracle's answer."""
    if name not in _EXACT_SETTINGS:
        pytest.skip(f"{name} has no exact setting (or is the oracle)")
    backend = _backend(name, n_threads=2, **_EXACT_SETTINGS[name])
    P, reference, Y = _problem(rng, mode, 1600, 2)
    kwargs = {"dof": dof, "exaggeration": 4.0}
    kl, grad = _call(backend.prepare(P, reference=reference), Y, **kwargs)
    kl_exact, grad_exact = _exact(P, reference, Y, **kwargs)
    # Barnes-Hut at angle 0: other summation order (~1e-15); the fine grid:
    # interpolation error measured below 1e-6 (test_interp).
    assert relative_error(grad, grad_exact) < 1e-5
    assert_allclose(kl, kl_exact, rtol=1e-7)


@pytest.mark.parametrize("name", BACKENDS)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("n", [2, 3, 5, 300])
def test_backend_small_problems_are_exact(rng, name, mode, n):
    """Few points match the oracle: exact sums below the grids' direct-sum
    sizes; a frozen embedding of 300 points is interpolated already."""
    _skip_the_oracle(name)
    backend = _backend(name, n_components=2)
    if mode == "fit":
        P = random_affinities(rng, n, n_neighbors=n - 1)
        reference, Y = None, rng.normal(size=(n, 2)) * 3.0
    else:
        reference = rng.normal(size=(n, 2)) * 3.0
        P = random_new_point_affinities(rng, 7, n, n_neighbors=min(n, 4))
        Y = np.ascontiguousarray(P @ reference + rng.normal(size=(7, 2)))
    kl, grad = _call(backend.prepare(P, reference=reference), Y, exaggeration=4.0)
    kl_exact, grad_exact = _exact(P, reference, Y, exaggeration=4.0)
    # A few hundred points are never summarised by Barnes-Hut's default angle
    # in full; its float kernel gives ~1e-6 (KL is 0 for two points).
    tolerance = 1e-2 if (name == "bh" and n == 300) else 1e-5
    if name == "fft" and mode == "reference" and n == 300:
        tolerance = 2e-3  # the frozen grid's interpolation error (1.8e-4 seen)
    assert relative_error(grad, grad_exact) < tolerance
    assert_allclose(kl, kl_exact, rtol=tolerance, atol=1e-6)


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_backend_bitwise_across_threads_and_calls(rng, variant, mode, dtype):
    """1, 2 and 4 threads, and repeated calls, give the same bits."""
    name, knobs = VARIANTS[variant]
    _skip_the_oracle(name)  # NumPy, single-threaded: nothing to compare
    P, reference, Y = _problem(rng, mode, 1600, 2)
    Y = Y.astype(dtype)
    results = []
    for n_threads in (1, 2, 4):
        backend = _backend(name, n_threads=n_threads, **knobs)
        backend.prepare(P, reference=reference)
        for _ in range(2):
            results.append(_call(backend, Y, exaggeration=12.0))
    kl1, grad1 = results[0]
    assert grad1.dtype == dtype
    for kl, grad in results[1:]:
        assert kl == kl1
        assert_array_equal(grad, grad1)


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("mode", MODES)
def test_backend_float32_matches_float64(rng, variant, mode):
    """float32 embeddings give the float64 answer up to input rounding."""
    name, knobs = VARIANTS[variant]
    P, reference, Y = _problem(rng, mode, 1600, 2)
    backend = _backend(name, n_threads=2, **knobs)
    backend.prepare(P, reference=reference)
    kl64, grad64 = _call(backend, Y, exaggeration=4.0)
    kl32, grad32 = _call(backend, Y.astype(np.float32), exaggeration=4.0)
    assert grad32.dtype == np.float32 and grad64.dtype == np.float64
    # float32 coordinates, double sums inside.
    assert_allclose(kl32, kl64, rtol=1e-5)
    assert_allclose(grad32, grad64, rtol=1e-3, atol=1e-4 * np.abs(grad64).max())


@pytest.mark.parametrize("name", BACKENDS)
@pytest.mark.parametrize("n_reference", [400, 2000])
def test_reference_mode_rows_are_independent(rng, name, n_reference):
    """A new point's gradient depends on nothing but itself, bitwise."""
    P, reference, Y = _problem(rng, "reference", n_reference, 2)
    Y[:3] += 200.0  # far off the frozen embedding (FFT: off its grid)
    backend = _backend(name, n_threads=2)
    _, grad = _call(backend.prepare(P, reference=reference), Y, compute_error=False)
    order = rng.permutation(Y.shape[0])[:37]
    order[:2] = (0, 1)
    subset = _backend(name, n_threads=1).prepare(P[order], reference=reference)
    _, grad_subset = _call(subset, np.ascontiguousarray(Y[order]), compute_error=False)
    assert_array_equal(grad_subset, grad[order])
    for i in (0, 5):
        one = _backend(name).prepare(P[i : i + 1], reference=reference)
        assert_array_equal(_call(one, Y[i : i + 1])[1], grad[i : i + 1])


def test_fft_reference_mode_sums_far_points_exactly(rng):
    """New points off the frozen grid get exact sums against every frozen point."""
    P, reference, Y = _problem(rng, "reference", 1600, 2)
    Y[:20, 0] += 200.0  # far outside the frozen embedding's bounding box
    kl, grad = _call(_backend("fft").prepare(P, reference=reference), Y)
    _, grad_exact = _exact(P, reference, Y)
    # Summation order only, for the far points.
    assert_allclose(grad[:20], grad_exact[:20], rtol=1e-9, atol=1e-12)
    assert relative_error(grad[20:], grad_exact[20:]) < 3e-2
    assert np.isfinite(kl)


@pytest.mark.parametrize("name", BACKENDS)
@pytest.mark.parametrize("mode", MODES)
def test_backend_leaves_p_alone_and_returns_fresh_arrays(rng, name, mode):
    """P is never modified, reused buffers never leak, kl is None when not asked."""
    P, reference, Y = _problem(rng, mode, 300, 2)
    P_copy = P.copy()
    backend = _backend(name).prepare(P, reference=reference)
    kl, grad1 = _call(backend, Y, exaggeration=12.0, compute_error=False)
    assert kl is None
    saved = grad1.copy()
    _, grad2 = _call(backend, Y + 0.5, exaggeration=12.0)
    assert grad2 is not grad1
    assert_array_equal(grad1, saved)
    # Exaggeration is a number, never a change of P.
    assert_array_equal(P.data, P_copy.data)
    assert_array_equal(P.indices, P_copy.indices)


@pytest.mark.parametrize("name", BACKENDS)
def test_backend_csr_variants(rng, name):
    """64-bit indices give the bits of 32-bit ones, and float64 values those
    of the same float32 values (read as they are, widened in the sums)."""
    n = 300
    P = random_affinities(rng, n, index_dtype=np.int64)
    Y = clusters(rng, n, 2, n_clusters=6, spread=15.0)
    _, grad = _call(_backend(name).prepare(P), Y, exaggeration=12.0)
    P32 = P.copy()
    P32.indptr = P32.indptr.astype(np.int32)
    P32.indices = P32.indices.astype(np.int32)
    assert_array_equal(
        _call(_backend(name).prepare(P32), Y, exaggeration=12.0)[1], grad
    )
    assert P.dtype == np.float32
    _, grad_f64 = _call(
        _backend(name).prepare(P.astype(np.float64)), Y, exaggeration=12.0
    )
    assert grad_f64.dtype == np.float64
    assert_array_equal(grad_f64, grad)


@pytest.mark.parametrize("name", BACKENDS)
def test_backend_contract_errors(rng, name):
    """Unprepared calls, wrong shapes, dense P and a diverged embedding raise."""
    P, reference, Y = _problem(rng, "reference", 300, 2)
    backend = _backend(name)
    with pytest.raises(RuntimeError, match="prepare"):
        _call(backend, Y)
    with pytest.raises(TypeError, match="sparse"):
        backend.prepare(P.toarray())
    with pytest.raises(ValueError, match="columns"):
        backend.prepare(P, reference=reference[:-1])
    backend.prepare(P, reference=reference)
    with pytest.raises(ValueError, match="rows"):
        _call(backend, Y[:-1])
    Y_bad = Y.copy()
    Y_bad[3, 0] = np.inf
    with pytest.raises(ValueError, match="NaN or infinity"):
        _call(backend, Y_bad)
    P_fit = random_affinities(rng, 50)
    with pytest.raises(ValueError, match="square"):
        _backend(name).prepare(P_fit[:40])


def test_bh_identical_points(rng):
    """All points identical: zero gradient, exact KL (Barnes-Hut summarises them)."""
    n = 20
    P = random_affinities(rng, n)
    Y = np.ones((n, 2))
    kl, grad = _call(_backend("bh").prepare(P), Y)
    kl_exact, grad_exact = _exact(P, None, Y)
    assert_array_equal(grad, 0.0)
    assert_allclose(grad_exact, 0.0, atol=1e-15)
    assert_allclose(kl, kl_exact, rtol=1e-12)


@pytest.mark.parametrize(
    "estimator, defaults",
    [
        (BarnesHutTSNE, {"angle": DEFAULT_ANGLE}),
        (FFTInterpTSNE, GRID_KNOB_DEFAULTS),
    ],
)
def test_estimator_defaults_are_the_backends(estimator, defaults):
    """The knobs' defaults have one source: the estimators' signatures (spelled
    out for their users) agree with the backends' constants."""
    parameters = inspect.signature(estimator).parameters
    assert {name: parameters[name].default for name in defaults} == defaults


# ---------------------------------------------------------------------------
# The FFT backend's crossover to the Barnes-Hut tree
# ---------------------------------------------------------------------------


def _fit_call(name, P, Y, **knobs):
    """One fit call of a fresh backend, and the backend (for its counters)."""
    backend = _backend(name, n_components=Y.shape[1], n_threads=2, **knobs)
    return _call(backend.prepare(P), Y), backend


def _wide_sparse_problem(rng, n_samples=2000, d=2):
    """Few points on a wide embedding, with affinities for a fit call."""
    Y = clusters(rng, n_samples, d, n_clusters=20, spread=60.0)
    return random_affinities(rng, n_samples, n_neighbors=10), Y


def test_fft_hands_a_wide_sparse_fit_to_the_tree(rng):
    """Few points on a wide embedding: "auto" runs BarnesHutTSNE's walk at its
    angle (bitwise), more accurate there than the default grid, which
    ``repulsion="grid"`` keeps."""
    P, Y = _wide_sparse_problem(rng)
    grid = InterpolationGrid.covering(*bounding_box(Y), **GRID_KNOB_DEFAULTS)
    assert _tree_is_cheaper(Y.shape[0], grid)
    (kl, grad), backend = _fit_call("fft", P, Y)
    kl_bh, grad_bh = _call(_backend("bh", angle=DEFAULT_ANGLE).prepare(P), Y)
    assert kl == kl_bh
    assert_array_equal(grad, grad_bh)
    assert (backend.n_tree_calls, backend.n_grid_calls) == (1, 0)
    (_, grad_grid), grid_backend = _fit_call("fft", P, Y, repulsion="grid")
    assert (grid_backend.n_tree_calls, grid_backend.n_grid_calls) == (0, 1)
    _, grad_exact = _exact(P, None, Y)
    assert relative_error(grad, grad_exact) < relative_error(grad_grid, grad_exact)


def test_fft_keeps_the_grid_where_it_is_cheaper(rng):
    """Many points on a narrow embedding: "auto" is the grid, bitwise."""
    Y = clusters(rng, 30_000, 2, spread=10.0)
    P = random_affinities(rng, Y.shape[0], n_neighbors=5)
    grid = InterpolationGrid.covering(*bounding_box(Y), **GRID_KNOB_DEFAULTS)
    assert not _tree_is_cheaper(Y.shape[0], grid)
    (kl, grad), backend = _fit_call("fft", P, Y)
    (kl_grid, grad_grid), _ = _fit_call("fft", P, Y, repulsion="grid")
    assert (backend.n_tree_calls, backend.n_grid_calls) == (0, 1)
    assert kl == kl_grid
    assert_array_equal(grad, grad_grid)


def test_fft_one_dimensional_fit_keeps_the_grid(rng):
    """A 1-D fit never takes the walk, even wide and sparse: the grid, bitwise."""
    P, Y = _wide_sparse_problem(rng, d=1)
    (kl, grad), backend = _fit_call("fft", P, Y)
    (kl_grid, grad_grid), _ = _fit_call("fft", P, Y, repulsion="grid")
    assert (backend.n_tree_calls, backend.n_grid_calls) == (0, 1)
    assert kl == kl_grid
    assert_array_equal(grad, grad_grid)


@pytest.mark.parametrize(
    "knobs",
    [
        {},
        {"min_num_intervals": 50},
        {"min_num_intervals": 20},
        {"n_interpolation_points": 4},
        {"ints_in_interval": 0.5},
        {"max_num_intervals": 0},
    ],
)
def test_fft_repulsion_grid_is_fitsne(rng, knobs):
    """``repulsion="grid"`` interpolates on the knobs' grid, bitwise, where
    "auto" takes the walk on the same embedding, knobs at their defaults or
    not."""
    P, Y = _wide_sparse_problem(rng)
    _, auto = _fit_call("fft", P, Y, **knobs)
    assert auto.n_tree_calls == 1
    backend = _backend("fft", n_threads=2, repulsion="grid", **knobs)
    out = np.empty_like(Y)
    Z = backend._repulsion(Y, 1.0, out)  # pylint: disable=protected-access
    out_grid = np.empty_like(Y)
    all_knobs = {**GRID_KNOB_DEFAULTS, **knobs}
    assert Z == _fft_repulsion(Y, 1.0, out_grid, 1, **all_knobs)
    assert_array_equal(out, out_grid)


def test_fft_tree_crossover_is_the_documented_one():
    """The crossovers that docs/fft.rst and the docstrings state: the minimum
    grid loses to the walk up to about 18,600 points at any span; past it the
    walk takes over at a span of about 51 at 20,000 points, 113 at 100,000,
    188 at 250,000, and never at 1,000,000 (the grid is capped)."""

    def grid(span):
        return InterpolationGrid.covering(
            (0.0, 0.0), (span, span), **GRID_KNOB_DEFAULTS
        )

    minimum = grid(5.0)
    assert minimum.n_boxes == (50, 50)
    assert _tree_is_cheaper(18_600, minimum)
    assert not _tree_is_cheaper(18_800, minimum)
    for n_samples, span in [(20_000, 51.0), (100_000, 113.0), (250_000, 188.0)]:
        assert not _tree_is_cheaper(n_samples, grid(span - 1.0))
        assert _tree_is_cheaper(n_samples, grid(span))
    assert not any(_tree_is_cheaper(1_000_000, grid(s)) for s in (300.0, 1000.0))


def test_fft_repulsion_is_checked():
    """An unknown ``repulsion`` is refused by name."""
    with pytest.raises(
        ValueError, match="'repulsion' parameter of FFTGradient must be a str among"
    ):
        FFTGradient(repulsion="tree")
