"""Tests of the Cython Barnes-Hut tree (``_cython/_quadtree.pyx``).

Every kernel is checked against a dense NumPy oracle written from the formulas:
``t_ij = 1 + |y_i - y_j|^2 / dof``, ``w_ij = t_ij^(-dof)``.
"""

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from fasttsne._cython._quadtree import (
    _Workspace,
    bh_repulsion,
    bh_repulsion_from_frozen,
    build_frozen_tree,
)
from tests._oracles import (
    clusters,
    exact_reference_repulsion,
    exact_repulsion,
)


def _repulsion(Y, angle, dof=1.0, n_threads=1):
    out = np.empty_like(Y)
    Z = bh_repulsion(Y, angle, dof, out, n_threads)
    return out, Z


# ---------------------------------------------------------------------------
# bh_repulsion
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("d", [1, 2, 3])
@pytest.mark.parametrize("dof", [1.0, 0.5, 3.0])
def test_bh_angle_zero_is_exact(rng, d, dof):
    """angle = 0 reproduces the exact repulsion and Z."""
    Y = clusters(rng, 600, d)
    out, Z = _repulsion(Y, 0.0, dof)
    F, Z_exact = exact_repulsion(Y, dof)
    # angle = 0 opens every node: only the summation order differs.
    assert_allclose(Z, Z_exact, rtol=1e-12)
    assert_allclose(out, F, rtol=1e-11, atol=1e-12 * np.abs(F).max())


@pytest.mark.parametrize("d", [1, 2, 3])
@pytest.mark.parametrize("dof", [1.0, 0.5, 3.0])
def test_bh_angle_half_close_to_exact(rng, d, dof):
    """The default angle stays within a stated error of the exact sums."""
    Y = clusters(rng, 800, d)
    out, Z = _repulsion(Y, 0.5, dof)
    F, Z_exact = exact_repulsion(Y, dof)
    # Measured worst over 5 seeds and these cases: 1.5% (forces), 0.6% (Z).
    assert np.linalg.norm(out - F) / np.linalg.norm(F) < 0.03
    assert abs(Z - Z_exact) / Z_exact < 0.015


def test_bh_error_shrinks_with_angle(rng):
    """A smaller opening angle gives a smaller error."""
    Y = clusters(rng, 800, 2)
    F, _ = exact_repulsion(Y, 1.0)
    errors = [
        np.linalg.norm(_repulsion(Y, angle)[0] - F) for angle in (0.8, 0.5, 0.2, 0.05)
    ]
    assert all(a > b for a, b in zip(errors, errors[1:]))


@pytest.mark.parametrize("d", [1, 2, 3])
@pytest.mark.parametrize("dof", [1.0, 0.5, 3.0])
def test_bh_float_kernel_tiny_angle(rng, d, dof):
    """The float kernels carry only float rounding when nothing is summarised."""
    # angle > 0 runs the float kernels; with a tiny angle nothing is
    # summarised, so the only error left is float rounding.
    Y = clusters(rng, 700, d)
    out, Z = _repulsion(Y, 1e-6, dof)
    F, Z_exact = exact_repulsion(Y, dof)
    # Float terms summed in blocks of 64, then in double: ~1e-7 relative.
    assert_allclose(Z, Z_exact, rtol=1e-5)
    assert_allclose(out, F, rtol=1e-4, atol=1e-5 * np.abs(F).max())


@pytest.mark.parametrize("d", [1, 2, 3])
@pytest.mark.parametrize("angle", [0.0, 0.5])
def test_bh_float32_matches_float64(rng, d, angle):
    """float32 embeddings give the float64 answer up to input rounding."""
    Y = clusters(rng, 900, d)
    out64, Z64 = _repulsion(Y, angle)
    out32, Z32 = _repulsion(Y.astype(np.float32), angle)
    assert out32.dtype == np.float32
    # Inputs rounded to float32 (relative 6e-8) move the tree and the sums a
    # little; well below the Barnes-Hut error.
    scale = np.abs(out64).max()
    assert_allclose(Z32, Z64, rtol=1e-4)
    assert_allclose(out32, out64, rtol=1e-3, atol=1e-4 * scale)


@pytest.mark.parametrize("d", [1, 2, 3])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("dof", [1.0, 0.7])
def test_bh_bitwise_across_threads_and_calls(rng, d, dtype, dof):
    """Results are bitwise equal for 1, 2 and 4 threads and on repeat."""
    Y = clusters(rng, 2000, d).astype(dtype)
    out1, Z1 = _repulsion(Y, 0.5, dof, n_threads=1)
    for n_threads in (2, 4, 1):
        out, Z = _repulsion(Y, 0.5, dof, n_threads=n_threads)
        assert_array_equal(out, out1)
        assert Z == Z1


def test_bh_workspace_reuse(rng):
    """A kept workspace (growing, shrinking, any d) changes no bit of the result."""
    workspace = _Workspace()
    for n, d in [(300, 2), (1500, 3), (40, 1), (1500, 2), (700, 2)]:
        Y = clusters(rng, n, d)
        out_fresh, Z_fresh = _repulsion(Y, 0.5)
        out = np.empty_like(Y)
        Z = bh_repulsion(Y, 0.5, 1.0, out, 2, workspace=workspace)
        assert Z == Z_fresh
        assert_array_equal(out, out_fresh)


def test_bh_all_points_identical():
    """Identical points: w = 1 for every pair and no force."""
    Y = np.full((50, 2), 3.5)
    for angle in (0.0, 0.5):
        out, Z = _repulsion(Y, angle)
        assert Z == 50 * 49
        assert_array_equal(out, 0.0)


@pytest.mark.parametrize("angle", [0.0, 0.5])
@pytest.mark.parametrize("d", [1, 2, 3])
def test_bh_exact_duplicates(rng, angle, d):
    """Repeated points are handled exactly and without blow-up."""
    # 40 distinct points, each repeated 7 times (leaves full of duplicates).
    Y = np.repeat(clusters(rng, 40, d, spread=5.0), 7, axis=0)
    Y = Y[rng.permutation(len(Y))]
    out, Z = _repulsion(Y, angle)
    F, Z_exact = exact_repulsion(Y, 1.0)
    assert np.all(np.isfinite(out))
    if angle == 0.0:
        assert_allclose(Z, Z_exact, rtol=1e-12)
        assert_allclose(out, F, rtol=1e-10, atol=1e-12 * np.abs(F).max())
    else:
        assert abs(Z - Z_exact) / Z_exact < 0.015
        assert np.linalg.norm(out - F) / np.linalg.norm(F) < 0.03


@pytest.mark.parametrize("angle", [0.0, 0.5])
def test_bh_near_duplicates(rng, angle):
    """Points closer than the grid resolution share a leaf and stay exact."""
    # Points closer than any grid cell (1e-13 apart): one leaf, no deep recursion.
    Y = 1.0 + 1e-13 * rng.normal(size=(300, 2))
    Y[:5] += 10.0  # and a few far away, so the tree is not a single leaf
    out, Z = _repulsion(Y, angle)
    F, Z_exact = exact_repulsion(Y, 1.0)
    assert_allclose(Z, Z_exact, rtol=1e-6)
    assert_allclose(out, F, rtol=1e-4, atol=1e-6 * np.abs(F).max())


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5])
@pytest.mark.parametrize("d", [1, 2, 3])
@pytest.mark.parametrize("angle", [0.0, 0.5, 1.0])
def test_bh_tiny_inputs(rng, n, d, angle):
    """One to five points, any dimension and angle."""
    Y = rng.normal(size=(n, d)) * 10.0
    out, Z = _repulsion(Y, angle)
    F, Z_exact = exact_repulsion(Y, 1.0)
    # Tiny inputs are far below the group size: exact up to float kernels.
    assert_allclose(Z, Z_exact, rtol=1e-6)
    assert_allclose(out, F, rtol=1e-5, atol=1e-7)


def test_bh_far_apart_points_keep_precision():
    """Tiny kernel values keep their relative precision."""
    # Tiny kernel values must not drown in the self-term (w = 1) of each point.
    Y = np.array([[0.0, 0.0], [1000.0, 0.0], [0.0, 3000.0]])
    out, Z = _repulsion(Y, 0.5)
    F, Z_exact = exact_repulsion(Y, 1.0)
    assert_allclose(Z, Z_exact, rtol=1e-6)
    assert_allclose(out, F, rtol=1e-6)


def test_bh_empty_input():
    """No points: Z = 0."""
    out, Z = _repulsion(np.empty((0, 2)), 0.5)
    assert Z == 0.0
    assert out.shape == (0, 2)


def test_bh_validation():
    """Bad shapes and parameters raise ValueError."""
    Y = np.zeros((10, 2))
    with pytest.raises(ValueError, match="1 to 3 columns"):
        bh_repulsion(np.zeros((10, 4)), 0.5, 1.0, np.zeros((10, 4)), 1)
    with pytest.raises(ValueError, match="out has shape"):
        bh_repulsion(Y, 0.5, 1.0, np.zeros((9, 2)), 1)
    with pytest.raises(ValueError, match="angle"):
        bh_repulsion(Y, -0.1, 1.0, np.zeros((10, 2)), 1)
    with pytest.raises(ValueError, match="dof"):
        bh_repulsion(Y, 0.5, 0.0, np.zeros((10, 2)), 1)
    with pytest.raises(ValueError, match="n_threads"):
        bh_repulsion(Y, 0.5, 1.0, np.zeros((10, 2)), 0)
    with pytest.raises(ValueError, match="dtype mismatch"):
        bh_repulsion(Y, 0.5, 1.0, np.zeros((10, 2), dtype=np.float32), 1)


# ---------------------------------------------------------------------------
# bh_repulsion_from_frozen (transform: new points against a frozen embedding)
# ---------------------------------------------------------------------------


def _frozen(Y_ref, Y_query, angle, dof=1.0, n_threads=1):
    out = np.empty_like(Y_query)
    sum_w = np.empty(len(Y_query))
    bh_repulsion_from_frozen(Y_ref, Y_query, angle, dof, out, sum_w, n_threads)
    return out, sum_w


@pytest.mark.parametrize("d", [1, 2, 3])
@pytest.mark.parametrize("dof", [1.0, 0.6])
def test_frozen_against_oracle(rng, d, dof):
    """Query points against a frozen embedding match the dense oracle."""
    Y_ref = clusters(rng, 900, d)
    Y_query = clusters(rng, 120, d, spread=25.0)
    Y_query[:3] = Y_ref[:3]  # queries may coincide with reference points
    F, W = exact_reference_repulsion(Y_ref, Y_query, dof)
    out, sum_w = _frozen(Y_ref, Y_query, 0.0, dof)
    assert_allclose(sum_w, W, rtol=1e-12)
    assert_allclose(out, F, rtol=1e-10, atol=1e-12 * np.abs(F).max())
    out, sum_w = _frozen(Y_ref, Y_query, 0.5, dof)
    # Each query point is walked alone (no grouping), so this is plain
    # Barnes-Hut: measured worst over 6 seeds 4.5% per point on sum_w (d = 1)
    # and 3% on the force norm.
    assert_allclose(sum_w, W, rtol=0.08)
    assert np.linalg.norm(out - F) / np.linalg.norm(F) < 0.05


def test_frozen_rows_are_independent(rng):
    """A query row depends only on itself and the frozen points, bitwise."""
    Y_ref = clusters(rng, 1500, 2)
    Y_query = clusters(rng, 200, 2)
    out, sum_w = _frozen(Y_ref, Y_query, 0.5)
    for n_threads in (2, 4):
        out_t, sum_w_t = _frozen(Y_ref, Y_query, 0.5, n_threads=n_threads)
        assert_array_equal(out_t, out)
        assert_array_equal(sum_w_t, sum_w)
    # Each row depends only on itself and Y_ref: any subset, in any order.
    order = rng.permutation(len(Y_query))[:37]
    out_s, sum_w_s = _frozen(Y_ref, np.ascontiguousarray(Y_query[order]), 0.5)
    assert_array_equal(out_s, out[order])
    assert_array_equal(sum_w_s, sum_w[order])
    out_1, sum_w_1 = _frozen(Y_ref, Y_query[5:6].copy(), 0.5)
    assert_array_equal(out_1[0], out[5])
    assert sum_w_1[0] == sum_w[5]


def test_frozen_workspace_reuses_only_the_same_tree(rng):
    """A kept workspace reuses the tree of identical embeddings, and only those."""
    Y_ref = clusters(rng, 800, 2)
    Y_query = clusters(rng, 50, 2)
    expected = _frozen(Y_ref, Y_query, 0.5)
    workspace = _Workspace()

    def call(reference):
        out = np.empty_like(Y_query)
        sum_w = np.empty(len(Y_query))
        bh_repulsion_from_frozen(
            reference, Y_query, 0.5, 1.0, out, sum_w, 2, workspace=workspace
        )
        return out, sum_w

    build_frozen_tree(Y_ref, workspace)  # what a backend's prepare does
    for reference in (Y_ref, Y_ref.copy(), Y_ref):  # built once, then reused
        out, sum_w = call(reference)
        assert_array_equal(out, expected[0])
        assert_array_equal(sum_w, expected[1])
    moved = Y_ref.copy()
    moved[17, 1] += 0.5  # a changed value rebuilds
    out, _ = call(moved)
    assert_array_equal(out, _frozen(moved, Y_query, 0.5)[0])
    assert not np.array_equal(out, expected[0])
    # The workspace also served a walk over another embedding in between.
    bh_repulsion(Y_query, 0.5, 1.0, np.empty_like(Y_query), 1, workspace=workspace)
    out, sum_w = call(Y_ref)
    assert_array_equal(out, expected[0])
    assert_array_equal(sum_w, expected[1])


def test_frozen_dtypes(rng):
    """float32 inputs and a float32 sum_w work; bad shapes raise."""
    Y_ref = clusters(rng, 400, 2).astype(np.float32)
    Y_query = clusters(rng, 30, 2).astype(np.float32)
    out = np.empty_like(Y_query)
    sum_w32 = np.empty(30, dtype=np.float32)
    bh_repulsion_from_frozen(Y_ref, Y_query, 0.0, 1.0, out, sum_w32, 1)
    F, W = exact_reference_repulsion(Y_ref, Y_query, 1.0)
    # Sums in double, stored in float32.
    assert_allclose(sum_w32, W, rtol=1e-6)
    assert_allclose(out, F, rtol=1e-5, atol=1e-6 * np.abs(F).max())
    with pytest.raises(ValueError, match="Y_query has"):
        bh_repulsion_from_frozen(
            Y_ref, np.zeros((3, 3), np.float32), 0.5, 1.0, out, sum_w32, 1
        )
    with pytest.raises(ValueError, match="sum_w has length"):
        bh_repulsion_from_frozen(Y_ref, Y_query, 0.5, 1.0, out, np.empty(3), 1)
    with pytest.raises(ValueError, match="1 to 3 columns"):
        build_frozen_tree(np.zeros((5, 4)), _Workspace())
