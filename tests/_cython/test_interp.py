"""Tests of the FIt-SNE interpolation repulsion (``_cython/_interp.pyx``) and of
the ``fft`` gradient backend, against the exact O(N^2) sums."""

import pickle

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from fasttsne._cython._interp import (
    DEFAULT_MAX_NUM_INTERVALS,
    MAX_INTERPOLATION_POINTS,
    fft_repulsion,
    interpolation_grid,
    lagrange_weights,
)
from fasttsne.tsne._gradients._exact import ExactGradient
from fasttsne.linalg._circulant import _next_fft_friendly
from tests._oracles import clusters, exact_repulsion, random_affinities


def _run(Y, *, dof=1.0, p=3, min_num_intervals=50, ints=1.0, n_threads=1, cap=0):
    """Call fft_repulsion (no cap unless given) and return ``(out, Z)``."""
    out = np.empty_like(Y)
    Z = fft_repulsion(Y, dof, p, min_num_intervals, ints, out, n_threads, cap)
    return out, Z


def _relative_error(approx, exact):
    return np.linalg.norm(approx - exact) / np.linalg.norm(exact)


# ---------------------------------------------------------------------------
# Lagrange interpolation and the grid
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("p", [1, 2, 3, 4, 5, 8])
def test_lagrange_weights_reproduce_polynomials(p):
    """Degree < p is interpolated exactly from the p nodes (k + 1/2) / p."""
    rng = np.random.default_rng(p)
    u = rng.uniform(0.0, 1.0, size=200)
    nodes = (np.arange(p) + 0.5) / p
    weights = lagrange_weights(u, p)
    for degree in range(p):
        coef = rng.normal(size=degree + 1)
        # rtol: products of p - 1 factors below 1 in double precision.
        assert_allclose(
            weights @ np.polyval(coef, nodes),
            np.polyval(coef, u),
            rtol=1e-12,
            atol=1e-12,
        )
    # Degree p is not reproduced: the test above can fail.
    if p >= 2:
        error = np.abs(weights @ nodes**p - u**p).max()
        assert error > 1e-4


def test_lagrange_weights_specialised_p3_matches_generic_formula():
    """The register-only p = 3 basis equals the textbook product formula."""
    u = np.linspace(0.0, 1.0, 101)
    nodes = np.array([1.0, 3.0, 5.0]) / 6.0
    expected = np.ones((u.size, 3))
    for k in range(3):
        for m in range(3):
            if m != k:
                expected[:, k] *= (u - nodes[m]) / (nodes[k] - nodes[m])
    assert_allclose(lagrange_weights(u, 3), expected, rtol=1e-14, atol=1e-15)


@pytest.mark.parametrize("p", [0, MAX_INTERPOLATION_POINTS + 1])
def test_lagrange_weights_rejects_bad_p(p):
    """p outside [1, MAX_INTERPOLATION_POINTS] is refused."""
    with pytest.raises(ValueError, match="n_interpolation_points"):
        lagrange_weights(np.zeros(3), p)


def test_interpolation_grid_sizes():
    """Box counts: minimum, span / width, cap, FFT-length rounding."""
    # The minimum applies to narrow spans, ceil(span / ints) to wide ones.
    assert interpolation_grid(3.0, 3, 50, 1.0, 0)[0] == 50
    n_boxes, span = interpolation_grid(120.5, 3, 50, 1.0, 0)
    assert n_boxes >= 121 and span == 120.5
    # The cap bounds the count (up to filling the FFT length).
    capped = interpolation_grid(1000.0, 3, 50, 1.0, 100)[0]
    assert 100 <= capped < 110
    # A flat axis gets a positive span.
    assert interpolation_grid(0.0, 3, 50, 1.0, 0)[1] > 0
    # The count fills the FFT length of the node offsets, and one box more
    # would not fit in it.
    for span in [10.0, 57.3, 133.0, 401.0]:
        for p in [2, 3, 5]:
            n_boxes = interpolation_grid(span, p, 1, 1.0, 0)[0]
            length = _next_fft_friendly(2 * p * n_boxes - 1)
            assert n_boxes >= np.ceil(span)
            assert 2 * p * (n_boxes + 1) - 1 > length


# ---------------------------------------------------------------------------
# Repulsion and Z against the exact sums
# ---------------------------------------------------------------------------

# Relative 2-norm error of the repulsion / relative error of Z, 1000 points in
# 8 blobs of width 1 (spans ~24 in 1-D, ~30 x 26 in 2-D), min_num_intervals=1
# so that ints_in_interval sets the box width; measured on this branch:
#
#   d  dof  p  ints=2          ints=1          ints=0.5        ints=0.25
#   1  1    2  6.9e-01/8e-02   1.1e-01/2e-02   2.7e-02/4e-03   7.2e-03/1e-03
#   1  1    3  2.5e-01/7e-03   2.3e-02/2e-04   2.6e-03/3e-05   3.4e-04/6e-07
#   1  1    4  1.7e-01/3e-03   5.0e-03/9e-06   2.9e-04/5e-07   1.8e-05/1e-08
#   1  1    5  7.6e-02/4e-03   2.1e-03/8e-06   4.1e-05/8e-07   1.3e-06/2e-08
#   2  1    2  4.3e-01/1e-02   8.3e-02/6e-03   2.1e-02/3e-03   5.3e-03/8e-04
#   2  1    3  1.4e-01/2e-03   1.8e-02/6e-04   2.1e-03/9e-05   2.5e-04/7e-06
#   2  1    4  7.4e-02/4e-04   3.4e-03/5e-05   2.1e-04/1e-05   1.3e-05/8e-07
#   2  1    5  3.8e-02/3e-03   1.1e-03/2e-06   2.8e-05/3e-07   8.9e-07/3e-08
#   2  0.5  3  1.9e-01/2e-03   2.0e-02/5e-04   2.3e-03/8e-05   2.9e-04/7e-06
#   2  3    3  1.3e-01/4e-03   1.9e-02/1e-04   2.1e-03/4e-05   2.6e-04/5e-06
#
# The repulsion error falls like h^p with the box width h. The defaults
# (p=3, ints=1) give about 2e-2 on the repulsion and <1e-3 on Z.
_GRID_TABLE_CASES = [(p, ints) for p in (2, 3, 4, 5) for ints in (1.0, 0.5, 0.25)]


@pytest.mark.parametrize("n_components", [1, 2])
@pytest.mark.parametrize("dof", [1.0, 0.5, 3.0])
def test_repulsion_matches_exact_with_default_grid(n_components, dof):
    """Default knobs: repulsion and Z within the measured error, any dof."""
    rng = np.random.default_rng(1)
    Y = clusters(rng, 1000, n_components)
    expected, Z_exact = exact_repulsion(Y, dof)
    out, Z = _run(Y, dof=dof)
    # Bounds: the table above (2e-2 / 6e-4 measured) with a margin of ~2-3x.
    assert _relative_error(out, expected) < 5e-2
    assert abs(Z / Z_exact - 1) < 2e-3


@pytest.mark.parametrize("n_components", [1, 2])
def test_error_falls_as_the_grid_refines(n_components):
    """More boxes or more nodes per box: smaller error (the table above)."""
    rng = np.random.default_rng(2)
    Y = clusters(rng, 1000, n_components)
    expected, Z_exact = exact_repulsion(Y, 1.0)
    errors = {}
    for p, ints in _GRID_TABLE_CASES:
        out, Z = _run(Y, p=p, min_num_intervals=1, ints=ints)
        errors[p, ints] = _relative_error(out, expected)
        assert abs(Z / Z_exact - 1) < 3e-2  # the worst entry (p=2) is 2e-2
    for p in (2, 3, 4, 5):  # narrower boxes, smaller error
        assert errors[p, 1.0] > errors[p, 0.5] > errors[p, 0.25]
    for ints in (1.0, 0.5, 0.25):  # more nodes per box, smaller error
        assert errors[2, ints] > errors[3, ints] > errors[4, ints] > errors[5, ints]
    # A fine grid is close to exact.
    assert errors[5, 0.25] < 1e-5


def test_repulsion_exact_for_uniform_spread_points():
    """Sparse embeddings (few neighbours per point) still give an accurate Z.

    Here FIt-SNE's ``Z = sum_i phi_i - N`` is off by 8e-3 (measured on four
    such samples: the interpolated self term is biased); removing each point's
    interpolated self term instead gives 4e-6 to 3e-4.
    """
    rng = np.random.default_rng(3)
    Y = rng.uniform(-30.0, 30.0, size=(1500, 2))
    expected, Z_exact = exact_repulsion(Y, 1.0)
    out, Z = _run(Y)
    assert abs(Z / Z_exact - 1) < 1e-3  # measured 2.7e-4
    assert _relative_error(out, expected) < 5e-2


def test_cap_trades_accuracy_for_grid_size():
    """A lower max_num_intervals widens the boxes: the error grows with it."""
    rng = np.random.default_rng(4)
    Y = clusters(rng, 800, 2, spread=50.0)  # span ~80: ~80 boxes uncapped
    expected, _ = exact_repulsion(Y, 1.0)
    errors = [
        _relative_error(_run(Y, min_num_intervals=10, cap=cap)[0], expected)
        for cap in (0, 40, 20)
    ]
    assert errors[0] < 5e-2
    assert errors[0] < errors[1] < errors[2]


# ---------------------------------------------------------------------------
# Determinism and dtypes
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("n_components", [1, 2])
@pytest.mark.parametrize("p", [3, 4])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_bitwise_identical_across_thread_counts(n_components, p, dtype):
    """1, 2 and 4 threads give bit-identical repulsion and Z."""
    rng = np.random.default_rng(5)
    Y = clusters(rng, 3000, n_components).astype(dtype)
    out1, Z1 = _run(Y, p=p, n_threads=1)
    for n_threads in (2, 4):
        out, Z = _run(Y, p=p, n_threads=n_threads)
        assert_array_equal(out, out1)
        assert Z == Z1


@pytest.mark.parametrize("n_components", [1, 2])
def test_float32_runs_in_double_internally(n_components):
    """float32 input gives the float64 result for the same (rounded) points."""
    rng = np.random.default_rng(6)
    Y32 = clusters(rng, 1000, n_components).astype(np.float32)
    out32, Z32 = _run(Y32)
    out64, Z64 = _run(Y32.astype(np.float64))
    assert out32.dtype == np.float32
    assert Z32 == Z64
    assert_array_equal(out32, out64.astype(np.float32))


# ---------------------------------------------------------------------------
# Degenerate inputs
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("n_components", [1, 2])
def test_all_points_identical(n_components):
    """A flat embedding: Z = N (N - 1), no repulsion, no division by zero."""
    Y = np.full((40, n_components), 3.5)
    out, Z = _run(Y)
    # Every pair has w = 1; the repulsion cancels exactly in exact arithmetic.
    assert_allclose(Z, 40 * 39, rtol=1e-9)
    assert_allclose(out, 0.0, atol=1e-9)


@pytest.mark.parametrize("n_components", [1, 2])
def test_duplicates_and_tiny_inputs(n_components):
    """Many duplicates, N = 2 and N = 1 run and stay accurate."""
    rng = np.random.default_rng(7)
    Y = clusters(rng, 300, n_components)
    Y[100:200] = Y[0]  # a hundred copies of one point
    expected, Z_exact = exact_repulsion(Y, 1.0)
    out, Z = _run(Y)
    assert np.all(np.isfinite(out))
    assert _relative_error(out, expected) < 5e-2
    # The copies' 9900 pairs at distance 0 carry the interpolation error of
    # the kernel's peak, a third of Z here (measured 1.5e-2 in 1-D, 3e-3 2-D).
    assert abs(Z / Z_exact - 1) < 3e-2

    two = np.array([[0.0, 0.0], [1.0, 2.0]])[:, :n_components].copy()
    expected, Z_exact = exact_repulsion(two, 1.0)
    out, Z = _run(two)
    # rtol: 50 boxes over a span of 1-2 leave an error ~h^3 of a few 1e-6.
    assert_allclose(Z, Z_exact, rtol=2e-5)
    assert_allclose(out, expected, rtol=2e-5, atol=1e-12)

    out, Z = _run(np.ones((1, n_components)))
    assert abs(Z) < 1e-12  # no pairs; the self term is removed exactly
    assert_allclose(out, 0.0, atol=1e-12)


def test_input_validation():
    """Contract violations raise ValueError naming the argument."""
    Y = np.zeros((10, 2))
    out = np.empty_like(Y)
    with pytest.raises(ValueError, match="1 or 2 columns"):
        fft_repulsion(np.zeros((10, 3)), 1.0, 3, 50, 1.0, np.zeros((10, 3)), 1)
    with pytest.raises(ValueError, match="out has shape"):
        fft_repulsion(Y, 1.0, 3, 50, 1.0, np.empty((9, 2)), 1)
    with pytest.raises(ValueError, match="NaN or infinity"):
        bad = Y.copy()
        bad[3, 1] = np.nan
        fft_repulsion(bad, 1.0, 3, 50, 1.0, out, 1)
    with pytest.raises(ValueError, match="dof"):
        fft_repulsion(Y, 0.0, 3, 50, 1.0, out, 1)
    with pytest.raises(ValueError, match="n_interpolation_points"):
        fft_repulsion(Y, 1.0, 0, 50, 1.0, out, 1)
    with pytest.raises(ValueError, match="min_num_intervals"):
        fft_repulsion(Y, 1.0, 3, 0, 1.0, out, 1)
    with pytest.raises(ValueError, match="ints_in_interval"):
        fft_repulsion(Y, 1.0, 3, 50, 0.0, out, 1)
    with pytest.raises(ValueError, match="max_num_intervals"):
        fft_repulsion(Y, 1.0, 3, 50, 1.0, out, 1, 10)
    with pytest.raises(ValueError, match="n_threads"):
        fft_repulsion(Y, 1.0, 3, 50, 1.0, out, 0)
    assert DEFAULT_MAX_NUM_INTERVALS >= 50


# ---------------------------------------------------------------------------
# The gradient backend
# ---------------------------------------------------------------------------


def test_backend_matches_exact_gradient():
    """FFTGradient against ExactGradient: gradient and KL, 1-D and 2-D."""
    from fasttsne.tsne._gradients._fft import FFTGradient

    rng = np.random.default_rng(8)
    # 1,600 points: above the size where the backend sums directly.
    X = clusters(rng, 1600, 5, spread=10.0)
    P = random_affinities(rng, X.shape[0])
    backend = FFTGradient()
    for n_components in (1, 2):
        Y = clusters(rng, 1600, n_components, spread=12.0)
        for dof, exaggeration in [(1.0, 1.0), (1.0, 12.0), (0.7, 4.0)]:
            kwargs = {"dof": dof, "exaggeration": exaggeration, "n_threads": 2}
            kl, grad = backend(Y, P, compute_error=True, **kwargs)
            kl_exact, grad_exact = ExactGradient()(Y, P, compute_error=True, **kwargs)
            # Bounds: the repulsion error (~2e-2 at the default grid) diluted
            # by the exact attraction; KL only sees the error of log Z.
            assert _relative_error(grad, grad_exact) < 3e-2
            assert_allclose(kl, kl_exact, rtol=1e-3)
            assert backend(Y, P, compute_error=False, **kwargs)[0] is None


def test_backend_threads_dtypes_and_registry():
    """Backend determinism, float32, registry aliases, usability."""
    from fasttsne.tsne._gradients import get_backend
    from fasttsne.tsne._gradients._fft import FFTGradient

    rng = np.random.default_rng(9)
    X = clusters(rng, 1600, 4)
    P = random_affinities(rng, X.shape[0])
    Y = clusters(rng, 1600, 2)
    backend = FFTGradient(n_interpolation_points=4, max_num_intervals=100)
    kwargs = {"dof": 1.0, "exaggeration": 2.0, "compute_error": True}
    kl1, grad1 = backend(Y, P, n_threads=1, **kwargs)
    for n_threads in (2, 4):
        kl, grad = backend(Y, P, n_threads=n_threads, **kwargs)
        assert_array_equal(grad, grad1)
        assert kl == kl1
    kl32, grad32 = backend(Y.astype(np.float32), P, n_threads=2, **kwargs)
    assert grad32.dtype == np.float32
    # float32 P data and coordinates: single-precision agreement.
    assert_allclose(grad32, grad1, rtol=1e-4, atol=1e-5 * np.abs(grad1).max())
    assert_allclose(kl32, kl1, rtol=1e-5)

    for alias in ("fft", "fitsne", "interpolation"):
        assert isinstance(get_backend(alias), FFTGradient)
    clone = pickle.loads(pickle.dumps(backend))
    assert clone.n_interpolation_points == 4 and clone.max_num_intervals == 100
    assert_array_equal(clone(Y, P, n_threads=1, **kwargs)[1], grad1)
    with pytest.raises(ValueError, match="P has shape"):
        backend(Y[:-1], P, n_threads=1, **kwargs)
    assert backend.is_usable_for("tsne", n_components=2, device="cpu")
    assert not backend.is_usable_for("tsne", n_components=3, device="cpu")
    assert not backend.is_usable_for("tsne", n_components=2, device="cuda")


def test_backend_sums_small_inputs_exactly():
    """Up to 1,500 points the repulsion is the exact sum (cheaper than a grid)."""
    from fasttsne.tsne._gradients._fft import _DIRECT_MAX_N, FFTGradient

    rng = np.random.default_rng(10)
    n_samples = _DIRECT_MAX_N
    X = clusters(rng, n_samples, 4)
    P = random_affinities(rng, X.shape[0])
    Y = clusters(rng, n_samples, 2)
    kwargs = {"dof": 1.0, "exaggeration": 1.0, "compute_error": True, "n_threads": 2}
    kl, grad = FFTGradient()(Y, P, **kwargs)
    kl_exact, grad_exact = ExactGradient()(Y, P, **kwargs)
    # Exact sums up to summation order.
    assert_allclose(grad, grad_exact, rtol=1e-9, atol=1e-12 * np.abs(grad_exact).max())
    assert_allclose(kl, kl_exact, rtol=1e-10)
