"""Tests of the gradient backends: the exact oracle, then Barnes-Hut against it."""

import pickle

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from scipy.optimize import check_grad

from fasttsne.tsne._gradients import get_backend, list_backends
from fasttsne.tsne._gradients._bh import BarnesHutGradient
from fasttsne.tsne._gradients._exact import ExactGradient, kl_divergence
from tests._oracles import clusters, random_affinities


def _call(backend, Y, P, *, dof=1.0, exaggeration=1.0, n_threads=1):
    return backend(
        Y,
        P,
        dof=dof,
        exaggeration=exaggeration,
        compute_error=True,
        n_threads=n_threads,
    )


# ---------------------------------------------------------------------------
# The exact oracle
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("d", [1, 2, 3])
@pytest.mark.parametrize("dof", [1.0, 0.5, 2.0])
def test_exact_gradient_is_gradient_of_kl(rng, d, dof):
    """ExactGradient is the gradient of the exact KL (finite differences)."""
    n = 30
    P = random_affinities(rng, n, 6)
    Y0 = clusters(rng, n, d, n_clusters=6, spread=3.0)
    exact = ExactGradient()

    def objective(flat):
        return kl_divergence(flat.reshape(n, d), P, dof=dof)

    def gradient(flat):
        _, grad = exact(
            flat.reshape(n, d),
            P,
            dof=dof,
            exaggeration=1.0,
            compute_error=False,
            n_threads=1,
        )
        return grad.ravel()

    err = check_grad(objective, gradient, Y0.ravel(), epsilon=1e-6)
    # Forward differences with step 1e-6: truncation error ~1e-6 of the norm.
    assert err / np.linalg.norm(gradient(Y0.ravel())) < 1e-4


def test_exact_kl_matches_kl_divergence(rng):
    """The KL of ExactGradient ignores exaggeration and matches kl_divergence."""
    P = random_affinities(rng, 40)
    Y = clusters(rng, 40, 2, n_clusters=6, spread=15.0)
    kl, _ = _call(ExactGradient(), Y, P, exaggeration=12.0)
    assert_allclose(kl, kl_divergence(Y, P), rtol=1e-12)


# ---------------------------------------------------------------------------
# Registry
# ---------------------------------------------------------------------------


def test_bh_is_registered():
    """The backend is registered under its name and aliases, with its angle."""
    assert "bh" in list_backends()
    for name in ("bh", "barnes_hut", "barnes-hut"):
        backend = get_backend(name, params={"bh": {"angle": 0.3}})
        assert isinstance(backend, BarnesHutGradient)
        assert backend.name == "bh"
        assert backend.angle == 0.3
    assert get_backend("bh").angle == 0.5


def test_bh_usable_for():
    """CPU only, 1 to 3 dimensions; "auto" falls through otherwise."""
    bh = BarnesHutGradient()
    for d in (1, 2, 3):
        assert bh.is_usable_for("tsne", n_components=d, device="cpu")
    assert not bh.is_usable_for("tsne", n_components=4, device="cpu")
    assert not bh.is_usable_for("tsne", n_components=2, device="cuda")
    with pytest.raises(ValueError, match="cannot run"):
        get_backend("bh", n_components=4)
    backend = get_backend("auto", preference=("bh", "exact"), n_components=5)
    assert backend.name == "exact"


# ---------------------------------------------------------------------------
# Barnes-Hut against exact
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("d", [1, 2, 3])
@pytest.mark.parametrize("dof", [1.0, 0.6])
@pytest.mark.parametrize("exaggeration", [1.0, 12.0])
def test_bh_angle_zero_equals_exact(rng, d, dof, exaggeration):
    """With angle = 0 the backend equals ExactGradient."""
    n = 300
    P = random_affinities(rng, n)
    Y = clusters(rng, n, d, n_clusters=6, spread=15.0)
    kl, grad = _call(
        BarnesHutGradient(angle=0.0), Y, P, dof=dof, exaggeration=exaggeration
    )
    kl_exact, grad_exact = _call(
        ExactGradient(), Y, P, dof=dof, exaggeration=exaggeration
    )
    # Same sums in another order.
    assert_allclose(kl, kl_exact, rtol=1e-12)
    assert_allclose(grad, grad_exact, rtol=1e-9, atol=1e-12 * np.abs(grad_exact).max())


@pytest.mark.parametrize("d", [1, 2, 3])
@pytest.mark.parametrize("dof", [1.0, 0.6])
def test_bh_angle_half_close_to_exact(rng, d, dof):
    """The default angle stays within a stated error of the exact sums."""
    n = 1000
    P = random_affinities(rng, n)
    Y = clusters(rng, n, d, n_clusters=6, spread=15.0)
    kl, grad = _call(BarnesHutGradient(0.5), Y, P, dof=dof)
    kl_exact, grad_exact = _call(ExactGradient(), Y, P, dof=dof)
    # The repulsion is approximated to ~1% (see test_quadtree); the attraction
    # is exact, so the whole gradient is at least as close.
    assert np.linalg.norm(grad - grad_exact) / np.linalg.norm(grad_exact) < 0.03
    # KL = attraction term + log Z: the Z error (< 1.5%) is an absolute error.
    assert abs(kl - kl_exact) < 0.015


@pytest.mark.parametrize("angle", [0.0, 0.5])
def test_bh_float32_matches_float64(rng, angle):
    """float32 embeddings give the float64 answer up to input rounding."""
    n = 800
    P = random_affinities(rng, n)
    Y = clusters(rng, n, 2, n_clusters=6, spread=15.0)
    kl64, grad64 = _call(BarnesHutGradient(angle), Y, P, exaggeration=4.0)
    kl32, grad32 = _call(
        BarnesHutGradient(angle), Y.astype(np.float32), P, exaggeration=4.0
    )
    assert grad32.dtype == np.float32
    assert grad64.dtype == np.float64
    # float32 inputs and outputs, double sums inside.
    assert_allclose(kl32, kl64, rtol=1e-5)
    assert_allclose(grad32, grad64, rtol=1e-3, atol=1e-4 * np.abs(grad64).max())


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("d", [1, 2, 3])
def test_bh_bitwise_across_threads_and_calls(rng, dtype, d):
    """Results are bitwise equal for 1, 2 and 4 threads and on repeat."""
    n = 2000
    P = random_affinities(rng, n)
    Y = clusters(rng, n, d, n_clusters=6, spread=15.0).astype(dtype)
    backend = BarnesHutGradient()
    kl1, grad1 = _call(backend, Y, P, exaggeration=12.0, n_threads=1)
    for n_threads in (2, 4, 1):
        kl, grad = _call(backend, Y, P, exaggeration=12.0, n_threads=n_threads)
        assert kl == kl1
        assert_array_equal(grad, grad1)
    kl, grad = _call(BarnesHutGradient(), Y, P, exaggeration=12.0, n_threads=2)
    assert kl == kl1
    assert_array_equal(grad, grad1)


def test_bh_returns_fresh_gradients(rng):
    """Reused buffers never leak into returned gradients."""
    P = random_affinities(rng, 100)
    Y = clusters(rng, 100, 2, n_clusters=6, spread=15.0)
    backend = BarnesHutGradient()
    _, grad1 = _call(backend, Y, P)
    saved = grad1.copy()
    _, grad2 = _call(backend, Y + 1.0, P)
    assert grad2 is not grad1
    assert_array_equal(grad1, saved)


def test_bh_csr_variants_and_p_untouched(rng):
    """int64/mixed indices and float32 P work, and P is never modified."""
    n = 200
    P = random_affinities(rng, n, index_dtype=np.int64)
    P_copy = P.copy()
    Y = clusters(rng, n, 2, n_clusters=6, spread=15.0)
    kl, grad = _call(BarnesHutGradient(0.0), Y, P, exaggeration=12.0)
    kl_exact, grad_exact = _call(ExactGradient(), Y, P, exaggeration=12.0)
    assert_allclose(kl, kl_exact, rtol=1e-12)
    assert_allclose(grad, grad_exact, rtol=1e-9, atol=1e-12 * np.abs(grad_exact).max())
    # Exaggeration is a number, never a change of P.
    assert_array_equal(P.data, P_copy.data)
    assert_array_equal(P.indices, P_copy.indices)
    # 64-bit indices (narrowed inside) give the same bits as 32-bit ones.
    P_int32 = P.copy()
    P_int32.indptr = P_int32.indptr.astype(np.int32)
    P_int32.indices = P_int32.indices.astype(np.int32)
    _, grad_int32 = _call(BarnesHutGradient(0.0), Y, P_int32, exaggeration=12.0)
    assert_array_equal(grad_int32, grad)
    # float32 P with a float64 embedding, and mixed index types, are converted.
    P32 = P.astype(np.float32)
    P32.indices = P32.indices.astype(np.int32)
    _, grad32 = _call(BarnesHutGradient(0.0), Y, P32, exaggeration=12.0)
    assert grad32.dtype == np.float64
    # P rounded to float32: relative 6e-8 per entry.
    assert_allclose(grad32, grad_exact, rtol=1e-5, atol=1e-6 * np.abs(grad_exact).max())
    with pytest.raises(ValueError, match="P has shape"):
        _call(BarnesHutGradient(), Y[:-1], P)


def test_bh_pickles_without_caches(rng):
    """A pickled backend keeps its angle and computes the same gradient."""
    P = random_affinities(rng, 300)
    Y = clusters(rng, 300, 2, n_clusters=6, spread=15.0)
    backend = BarnesHutGradient(angle=0.3)
    _, grad = _call(backend, Y, P)
    clone = pickle.loads(pickle.dumps(backend))
    assert clone.angle == 0.3
    assert clone._csr_arrays is None and clone._forces is None  # caches dropped
    _, grad_clone = _call(clone, Y, P)
    assert_array_equal(grad_clone, grad)


def test_bh_no_error_when_not_asked(rng):
    """compute_error=False returns None for the KL."""
    P = random_affinities(rng, 50)
    Y = clusters(rng, 50, 2, n_clusters=6, spread=15.0)
    kl, grad = BarnesHutGradient()(
        Y, P, dof=1.0, exaggeration=1.0, compute_error=False, n_threads=1
    )
    assert kl is None
    assert grad.shape == Y.shape


@pytest.mark.parametrize("n", [2, 3, 4, 5])
@pytest.mark.parametrize("d", [1, 2, 3])
def test_bh_tiny_problems(rng, n, d):
    """Two to five points match the exact gradient."""
    P = random_affinities(rng, n, n_neighbors=n - 1)
    Y = rng.normal(size=(n, d))
    kl, grad = _call(BarnesHutGradient(), Y, P, exaggeration=4.0)
    kl_exact, grad_exact = _call(ExactGradient(), Y, P, exaggeration=4.0)
    # A handful of points is never summarised: exact up to the float kernel
    # (KL is 0 for two points, hence the absolute tolerance).
    assert_allclose(kl, kl_exact, rtol=1e-6, atol=1e-6)
    assert_allclose(grad, grad_exact, rtol=1e-5, atol=1e-7)


def test_bh_identical_points(rng):
    """All points identical: zero gradient, exact KL."""
    n = 20
    P = random_affinities(rng, n)
    Y = np.ones((n, 2))
    kl, grad = _call(BarnesHutGradient(), Y, P)
    kl_exact, grad_exact = _call(ExactGradient(), Y, P)
    assert_array_equal(grad, 0.0)
    assert_allclose(grad_exact, 0.0, atol=1e-15)
    assert_allclose(kl, kl_exact, rtol=1e-12)


@pytest.mark.parametrize("backend_name", ["bh", "fft"])
def test_non_finite_embedding_raises(rng, backend_name):
    """A diverged embedding is reported, not walked into a degenerate tree."""
    from fasttsne.tsne._gradients import get_backend

    P = random_affinities(rng, 50)
    Y = clusters(rng, 50, 2, n_clusters=6, spread=15.0)
    Y[3, 0] = np.inf
    with pytest.raises(ValueError, match="NaN or infinity"):
        get_backend(backend_name)(
            Y, P, dof=1.0, exaggeration=1.0, compute_error=False, n_threads=1
        )
