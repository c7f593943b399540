"""Tests of the FIt-SNE interpolation pipelines (``tsne/_gradients/_interpolation.py``
over the kernels of ``_cython/_interp.pyx``) against the exact O(N^2) sums."""

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from fasttsne._cython._interp import (
    MAX_INTERPOLATION_POINTS,
    bounding_box,
    interpolate_repulsion,
    sort_into_boxes,
    spread_charges,
)
from fasttsne.linalg._circulant import _next_fft_friendly
from fasttsne.tsne._gradients._interpolation import (
    _SINGLE_PRECISION_FFT_MIN_NODES,
    DEFAULT_MAX_NUM_INTERVALS,
    FrozenInterpolation,
    InterpolationGrid,
    _fft_dtype,
    _grid_spectrum,
    _potentials,
    _repulsion_on_grid,
    _self_table,
    check_grid_knobs,
    fft_repulsion,
)
from tests._oracles import (
    clusters,
    exact_reference_repulsion,
    exact_repulsion,
    relative_error,
)


def _knobs(p=3, min_num_intervals=50, ints=1.0, cap=0):
    return {
        "n_interpolation_points": p,
        "min_num_intervals": min_num_intervals,
        "ints_in_interval": ints,
        "max_num_intervals": cap,
    }


def _run(Y, *, dof=1.0, p=3, min_num_intervals=50, ints=1.0, n_threads=1, cap=0):
    """Call fft_repulsion (no cap unless given) and return ``(out, Z)``."""
    out = np.empty_like(Y)
    Z = fft_repulsion(Y, dof, out, n_threads, **_knobs(p, min_num_intervals, ints, cap))
    return out, Z


def _boxes(span, p, min_num_intervals, ints, cap):
    """Boxes and covered span of a 2-D grid's first axis over [0, span]."""
    grid = InterpolationGrid.covering(
        (0.0, 0.0), (span, 1.0), **_knobs(p, min_num_intervals, ints, cap)
    )
    return grid.n_boxes[0], grid.span[0]


# ---------------------------------------------------------------------------
# The grid
# ---------------------------------------------------------------------------


def test_interpolation_grid_sizes():
    """Box counts: minimum, span / width, cap, FFT-length rounding."""
    # The minimum applies to narrow spans, ceil(span / ints) to wide ones.
    assert _boxes(3.0, 3, 50, 1.0, 0)[0] == 50
    n_boxes, span = _boxes(120.5, 3, 50, 1.0, 0)
    assert n_boxes >= 121 and span == 120.5
    # The cap bounds the count (up to filling the FFT length)...
    capped = _boxes(1000.0, 3, 50, 1.0, 100)[0]
    assert 100 <= capped < 110
    # ...of 2-D grids only.
    grid = InterpolationGrid.covering((0.0,), (1000.0,), **_knobs(cap=100))
    assert grid.n_boxes[0] >= 1000
    # A flat axis gets a positive span.
    assert _boxes(0.0, 3, 50, 1.0, 0)[1] > 0
    # The count fills the FFT length of the node offsets, and one box more
    # would not fit in it.
    for span in [10.0, 57.3, 133.0, 401.0]:
        for p in [2, 3, 5]:
            n_boxes = _boxes(span, p, 1, 1.0, 0)[0]
            length = _next_fft_friendly(2 * p * n_boxes - 1)
            assert n_boxes >= np.ceil(span)
            assert 2 * p * (n_boxes + 1) - 1 > length


def test_grid_geometry_covers_the_points():
    """The boxes tile [lo, hi] around the centre; nodes are evenly spaced."""
    grid = InterpolationGrid.covering((-3.0, 2.0), (7.0, 2.5), **_knobs(p=4))
    for k in range(2):
        lo = grid.center[k] + grid.lower_edges[k]
        assert lo == pytest.approx((-3.0, 2.0)[k])
        width = 1.0 / grid.inverse_widths[k]
        assert lo + grid.n_boxes[k] * width >= (7.0, 2.5)[k] - 1e-12
        assert grid.spacings[k] == pytest.approx(width / 4)
        assert grid.shape[k] == 4 * grid.n_boxes[k]


# ---------------------------------------------------------------------------
# Repulsion and Z against the exact sums
# ---------------------------------------------------------------------------

# Relative 2-norm error of the repulsion / relative error of Z, 1000 points in
# 8 blobs of width 1 (spans ~24 in 1-D, ~30 x 26 in 2-D), min_num_intervals=1
# so that ints_in_interval sets the box width; measured:
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
    assert relative_error(out, expected) < 5e-2
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
        errors[p, ints] = relative_error(out, expected)
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
    assert relative_error(out, expected) < 5e-2


def test_cap_trades_accuracy_for_grid_size():
    """A lower max_num_intervals widens the boxes: the error grows with it."""
    rng = np.random.default_rng(4)
    Y = clusters(rng, 800, 2, spread=50.0)  # span ~80: ~80 boxes uncapped
    expected, _ = exact_repulsion(Y, 1.0)
    errors = [
        relative_error(_run(Y, min_num_intervals=10, cap=cap)[0], expected)
        for cap in (0, 40, 20)
    ]
    assert errors[0] < 5e-2
    assert errors[0] < errors[1] < errors[2]


def test_single_precision_ffts_of_large_grids():
    """A capped grid of a wide embedding runs its charge FFTs in float32.

    The exact sums are the oracle: the float32 FFTs keep the float64 path's
    error against them (their own rounding, 5e-5 of the repulsion's norm at
    a span of 300 in docs/fft.rst, is far below the interpolation error),
    and the result is bitwise the same for 1 and 2 threads (checked on the
    x86-64 machines the tests run on).
    """
    rng = np.random.default_rng(11)
    Y = clusters(rng, 3000, 2, spread=180.0)  # span ~360: capped, 1800 x 1800
    lo, hi = bounding_box(Y)
    grid = InterpolationGrid.covering(lo, hi, **_knobs(cap=DEFAULT_MAX_NUM_INTERVALS))
    assert grid.capped and np.prod(grid.fft_shape) >= _SINGLE_PRECISION_FFT_MIN_NODES
    assert _fft_dtype(grid) == np.float32
    expected, Z_exact = exact_repulsion(Y, 1.0)
    out64 = np.empty_like(Y)
    Z64 = _repulsion_on_grid(Y, grid, 1.0, out64, 1, np.float64)
    out, Z = _run(Y, cap=DEFAULT_MAX_NUM_INTERVALS)  # float32 FFTs, by size
    error64 = relative_error(out64, expected)
    assert error64 < 5e-2
    assert abs(relative_error(out, expected) - error64) < 1e-2 * error64
    assert relative_error(out, out64) < 2e-4  # measured 4.0e-5 to 5.0e-5
    # Z's interpolation error here is ~1.4e-3; the float32 FFTs move Z by
    # 2e-5 to 5e-5 (measured on three such samples).
    assert abs(Z / Z_exact - 1) < 2e-3
    assert abs(Z / Z64 - 1) < 1e-4
    out2, Z2 = _run(Y, cap=DEFAULT_MAX_NUM_INTERVALS, n_threads=2)
    assert_array_equal(out2, out)
    assert Z2 == Z
    # Uncapped grids keep float64, small or large: the default grid of a
    # span of 100, and a fine grid (a circulant of 2^20+ nodes) of the same
    # points.
    small = InterpolationGrid.covering(
        (0.0, 0.0), (100.0, 100.0), **_knobs(cap=DEFAULT_MAX_NUM_INTERVALS)
    )
    fine = InterpolationGrid.covering(lo, hi, **_knobs(p=4, ints=0.5))
    assert not small.capped and not fine.capped
    assert np.prod(fine.fft_shape) >= _SINGLE_PRECISION_FFT_MIN_NODES
    assert _fft_dtype(small) == _fft_dtype(fine) == np.float64


def test_one_dimensional_capped_grids_keep_double_ffts():
    """A capped 1-D grid of 2^20+ circulant nodes keeps float64 FFTs.

    Such a grid is a long line of sparse charges (here 2000 points over a
    span of 2e5), where float32 FFTs would move Z by orders of magnitude; the
    fit's path must equal the float64 path bit for bit.
    """
    rng = np.random.default_rng(12)
    Y = rng.uniform(0.0, 2.0e5, size=(2000, 1))
    lo, hi = bounding_box(Y)
    knobs = _knobs(cap=420)
    grid = InterpolationGrid.covering(lo, hi, **knobs)
    assert grid.capped and np.prod(grid.fft_shape) >= _SINGLE_PRECISION_FFT_MIN_NODES
    assert _fft_dtype(grid) == np.float64
    out64 = np.empty_like(Y)
    Z64 = _repulsion_on_grid(Y, grid, 1.0, out64, 1, np.float64)
    out = np.empty_like(Y)
    Z = fft_repulsion(Y, 1.0, out, 1, **knobs)
    assert_array_equal(out, out64)
    assert Z == Z64
    expected, Z_exact = exact_repulsion(Y, 1.0)
    assert relative_error(out, expected) < 1e-1  # measured 7.0e-2
    assert abs(Z / Z_exact - 1) < 1e-1


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
    assert relative_error(out, expected) < 5e-2
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
        _run(np.zeros((10, 3)))
    with pytest.raises(ValueError, match="out has shape"):
        fft_repulsion(Y, 1.0, np.empty((9, 2)), 1, **_knobs())
    with pytest.raises(ValueError, match="NaN or infinity"):
        bad = Y.copy()
        bad[3, 1] = np.nan
        fft_repulsion(bad, 1.0, out, 1, **_knobs())
    with pytest.raises(ValueError, match="dof"):
        fft_repulsion(Y, 0.0, out, 1, **_knobs())
    with pytest.raises(ValueError, match="n_threads"):
        fft_repulsion(Y, 1.0, out, 0, **_knobs())
    with pytest.raises(ValueError, match="at least one row"):
        bounding_box(np.zeros((0, 2)))


@pytest.mark.parametrize(
    "knob, value, match",
    [
        ("n_interpolation_points", 0, "n_interpolation_points"),
        ("n_interpolation_points", MAX_INTERPOLATION_POINTS + 1, "range"),
        ("n_interpolation_points", 2.5, "int"),
        ("min_num_intervals", 0, "min_num_intervals"),
        ("ints_in_interval", 0.0, "ints_in_interval"),
        ("max_num_intervals", -1, "max_num_intervals"),
        ("max_num_intervals", 10, "below min_num_intervals"),
    ],
)
def test_grid_knobs_have_one_validation(knob, value, match):
    """check_grid_knobs refuses each bad knob, and fft_repulsion uses it."""
    knobs = {**_knobs(), knob: value}
    with pytest.raises(ValueError, match=match):
        check_grid_knobs(**knobs)
    with pytest.raises(ValueError, match=match):
        fft_repulsion(np.zeros((10, 2)), 1.0, np.empty((10, 2)), 1, **knobs)


# ---------------------------------------------------------------------------
# Against a frozen embedding (transform)
# ---------------------------------------------------------------------------


def _frozen_sums(frozen, Y_query, *, dof=1.0, n_threads=1, **knobs):
    """``(out, sum_w, on_grid)`` of FrozenInterpolation (NaN off the grid)."""
    interpolation = FrozenInterpolation(frozen, dof, n_threads, **_knobs(**knobs))
    out = np.full(Y_query.shape, np.nan)
    sum_w = np.full(Y_query.shape[0], np.nan)
    on_grid = interpolation(Y_query, out, sum_w)
    return out, sum_w, on_grid


@pytest.mark.parametrize("n_components", [1, 2])
@pytest.mark.parametrize("dof", [1.0, 0.5, 3.0])
def test_frozen_repulsion_matches_exact(n_components, dof):
    """Queries on the grid: repulsion and per-query sum_w within grid error."""
    rng = np.random.default_rng(11)
    frozen = clusters(rng, 2000, n_components)
    Y_query = clusters(rng, 300, n_components)
    expected, W = exact_reference_repulsion(frozen, Y_query, dof)
    out, sum_w, on_grid = _frozen_sums(frozen, Y_query, dof=dof)
    assert on_grid.all()
    # Measured 1.3e-2 to 2.5e-2 on the repulsion, 1.5e-3 to 4.4e-3 on sum_w
    # and 5e-3 to 1.8e-2 on their ratio (the gradient's term) over these
    # cases: the fit's error level (same grid rules); bounds with margin.
    assert relative_error(out, expected) < 5e-2
    assert relative_error(sum_w, W) < 1e-2
    assert relative_error(out / sum_w[:, None], expected / W[:, None]) < 4e-2
    # A finer grid is close to exact (measured below 1.2e-6 and 2.3e-6): the
    # error is interpolation error only.
    out, sum_w, _ = _frozen_sums(frozen, Y_query, dof=dof, p=5, ints=0.25)
    assert relative_error(out, expected) < 1e-5
    assert_allclose(sum_w, W, rtol=2e-5)


def test_frozen_grid_keeps_its_accuracy_past_the_fits_cap():
    """A frozen embedding wider than the fit's cap keeps the fit's accuracy.

    Its grid is convolved once, so it is capped at a multiple of the fit's
    cap: on a span of ~500 (where a fit's grid is capped at 300 boxes) the
    per-row error stays at the uncapped level.
    """
    rng = np.random.default_rng(15)
    frozen = clusters(rng, 3000, 2, n_clusters=20, spread=250.0)
    Y_query = frozen[rng.choice(3000, 200, replace=False)] + rng.normal(
        scale=2.0, size=(200, 2)
    )
    expected, W = exact_reference_repulsion(frozen, Y_query, 1.0)
    capped, sum_w_capped, on_grid = _frozen_sums(
        frozen, Y_query, cap=DEFAULT_MAX_NUM_INTERVALS
    )
    uncapped, sum_w_uncapped, _ = _frozen_sums(frozen, Y_query, cap=0)
    assert on_grid.all()
    row_error = np.linalg.norm(capped - expected, axis=1) / np.linalg.norm(
        expected, axis=1
    )
    row_error_uncapped = np.linalg.norm(uncapped - expected, axis=1) / np.linalg.norm(
        expected, axis=1
    )
    # The capped grid is as accurate as the uncapped one (same resolution up
    # to a span of 2 x 300 boxes); 5 % is the fit's error level with margin.
    assert np.median(row_error) < 2 * np.median(row_error_uncapped) + 1e-3
    assert np.median(row_error) < 5e-2
    assert relative_error(sum_w_capped, W) < 1e-2


def test_frozen_grid_reaches_past_the_points_and_reports_the_rest():
    """The grid covers a margin around the frozen points; farther is off it."""
    rng = np.random.default_rng(12)
    frozen = rng.uniform(-10.0, 10.0, size=(1000, 2))
    Y_query = np.array([[0.0, 0.0], [11.0, 0.0], [0.0, -11.5], [30.0, 0.0]])
    out, sum_w, on_grid = _frozen_sums(frozen, Y_query)
    assert_array_equal(on_grid, [True, True, True, False])
    assert np.isnan(out[3]).all() and np.isnan(sum_w[3])  # left untouched
    expected, W = exact_reference_repulsion(frozen, Y_query[:3], 1.0)
    assert_allclose(sum_w[:3], W, rtol=1e-2)


@pytest.mark.parametrize("n_components", [1, 2])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_frozen_queries_are_independent_and_thread_safe(n_components, dtype):
    """Each query's result depends on nothing but itself, bitwise."""
    rng = np.random.default_rng(13)
    frozen = clusters(rng, 3000, n_components).astype(dtype)
    Y_query = clusters(rng, 400, n_components).astype(dtype)
    out, sum_w, _ = _frozen_sums(frozen, Y_query, p=4)
    for n_threads in (2, 4):
        out_t, sum_w_t, _ = _frozen_sums(frozen, Y_query, p=4, n_threads=n_threads)
        assert_array_equal(out_t, out)
        assert_array_equal(sum_w_t, sum_w)
    order = rng.permutation(len(Y_query))[:41]
    out_s, sum_w_s, _ = _frozen_sums(frozen, np.ascontiguousarray(Y_query[order]), p=4)
    assert_array_equal(out_s, out[order])
    assert_array_equal(sum_w_s, sum_w[order])


def test_frozen_float32_queries_match_float64():
    """float32 points are read in double: the float64 answer for the same values."""
    rng = np.random.default_rng(14)
    frozen = clusters(rng, 2000, 2).astype(np.float32)
    Y_query = clusters(rng, 100, 2).astype(np.float32)
    out32, sum_w32, _ = _frozen_sums(frozen, Y_query)
    out64, sum_w64, _ = _frozen_sums(
        frozen.astype(np.float64), Y_query.astype(np.float64)
    )
    assert_array_equal(out32, out64)
    assert_array_equal(sum_w32, sum_w64)


@pytest.mark.parametrize("n_components", [1, 2])
@pytest.mark.parametrize("fft_dtype", [np.float32, np.float64])
def test_repulsion_frees_early_with_the_helpers_bits(rng, n_components, fft_dtype):
    """The gradient's inlined spectrum (freed as it goes) is the helpers' one."""
    Y = rng.normal(scale=20.0, size=(3000, n_components))
    grid = InterpolationGrid.covering(*bounding_box(Y), **_knobs(cap=40))
    out = np.empty_like(Y)
    Z = _repulsion_on_grid(Y, grid, 1.0, out, 2, fft_dtype=fft_dtype)
    order, offsets = sort_into_boxes(Y, grid)
    ys, charges, kernel = spread_charges(Y, order, offsets, grid, 1.0, False, 2)
    spectrum = _grid_spectrum(grid, kernel, 2, fft_dtype)
    potentials = _potentials(spectrum, charges, 2)
    desired = np.empty_like(Y)
    Z_desired = interpolate_repulsion(
        ys,
        order,
        offsets,
        grid,
        potentials,
        _self_table(grid, kernel),
        1.0,
        desired,
        2,
    )
    assert Z == Z_desired
    assert_array_equal(out, desired)
