"""Each Triton kernel against a slow exact oracle, through its launcher.

Sizes N in {1, 2, 7, 300, 2000} with tiles that do not divide them (ragged
programs and column steps), duplicated points, float32 and float64. Under
the interpreter (no GPU) the tiles are chosen large, since its cost is per
tile; on a GPU the same tests run with the same tiles.
"""

import numpy as np
import pytest
import scipy.sparse as sp
from numpy.testing import assert_allclose, assert_array_equal

from fasttsne.linalg._circulant import (
    _apply_spectrum,
    _kernel_spectrum,
)
from fasttsne.tsne._affinity import nearest_neighbors
from fasttsne.tsne._gradients._interpolation import InterpolationGrid, _fft_repulsion
from tests._oracles import (
    clusters,
    exact_attraction,
    exact_kl_attraction_term,
    exact_reference_repulsion,
    exact_repulsion,
    interpolation_charges,
    random_affinities,
    random_new_point_affinities,
)
from tests.gpu.conftest import INTERPRETING, torch

pytestmark = pytest.mark.interpreter

SIZES = [1, 2, 7, 300, 2000]
# Tiles for a size: several programs and steps, none dividing N; the largest
# size gets larger tiles, which the interpreter runs in a few seconds.
PAIR_TILES = {1: (16, 16), 2: (16, 16), 7: (4, 4), 300: (64, 128), 2000: (256, 512)}
KNN_TILES = {2: (16, 16, 4), 7: (4, 4, 4), 300: (64, 128, 8), 2000: (256, 256, 16)}
CSR_TILES = {1: (16, 4), 2: (16, 4), 7: (4, 4), 300: (64, 8), 2000: (512, 16)}
# (BLOCK_B, BLOCK_P) of the spreading; None: the launcher's interpreter tiles.
SPREAD_TILES = {1: (8, 2), 2: (8, 2), 7: (8, 2), 300: (8, 2), 2000: None}


def _tiles(table, n):
    """The test's tiles for N, or on a GPU the launcher's from N = 300 on.

    The large tiles that make the interpreter fast would need thousands of
    registers per thread on a GPU; there the launcher's device tiles (which
    divide neither 300 nor 2000) are the ones worth testing.
    """
    return table[n] if INTERPRETING or n < 300 else None


def _points(rng, n, d, dtype, duplicates=True):
    """Clustered points with a few exact duplicates, as a float64 array."""
    Y = clusters(rng, n, d, spread=10.0)
    if duplicates and n >= 7:
        Y[[3, 5]] = Y[1]
    return Y.astype(dtype).astype(np.float64)


def _tolerance(dtype):
    """Relative tolerance against a float64 oracle, on the largest entry.

    float64 differs from the oracle by summation order only; float32 sums
    up to 2000 terms of one sign (rounding grows with the square root of the
    count) and uses the 2-ulp division.
    """
    return 1e-12 if dtype == np.float64 else 2e-5


def _assert_close(actual, desired, dtype):
    scale = max(np.abs(desired).max(initial=0.0), 1e-300)
    assert_allclose(actual, desired, rtol=0, atol=_tolerance(dtype) * scale)


def _tensor(array, dtype, device):
    return torch.from_numpy(np.ascontiguousarray(array, dtype=dtype)).to(device)


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("d", [1, 2, 3])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_exact_repulsion_and_z(rng, device, n, d, dtype):
    """Per-row repulsion and sum_j w (hence Z), j != i, any dof."""
    from fasttsne.gpu import _launchers

    Y = _points(rng, n, d, dtype)
    for dof in (1.0, 0.6):
        force, sum_w = _launchers.exact_repulsion(
            _tensor(Y, dtype, device), dof=dof, tiles=_tiles(PAIR_TILES, n)
        )
        assert force.dtype == sum_w.dtype == _tensor(Y, dtype, device).dtype
        force_oracle, Z_oracle = exact_repulsion(Y, dof)
        _assert_close(force.cpu().numpy(), force_oracle, dtype)
        _assert_close(sum_w.cpu().numpy().sum(), Z_oracle, dtype)
        Z = _launchers.ordered_sum(sum_w)
        assert Z.dtype == torch.float64
        _assert_close(float(Z), Z_oracle, dtype)


@pytest.mark.parametrize("n", [1, 7, 300])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_exact_repulsion_from_a_reference(rng, device, n, dtype):
    """Rows against other points (transform): no j == i to leave out."""
    from fasttsne.gpu import _launchers

    reference = _points(rng, 301, 2, dtype)
    Y = np.ascontiguousarray(reference[:n] + 0.25)
    Y[0] = reference[0]  # a query on a reference point
    force, sum_w = _launchers.exact_repulsion(
        _tensor(Y, dtype, device),
        _tensor(reference, dtype, device),
        dof=0.7,
        tiles=(64, 128),
    )
    force_oracle, sum_w_oracle = exact_reference_repulsion(reference, Y, 0.7)
    _assert_close(force.cpu().numpy(), force_oracle, dtype)
    _assert_close(sum_w.cpu().numpy(), sum_w_oracle, dtype)


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("d", [1, 2, 3])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("p_dtype", [None, np.float32])
def test_attraction_and_its_kl_term(rng, device, n, d, dtype, p_dtype):
    """a sum_j p_ij (y_i - y_j) / t_ij and sum_j p_ij log(p_ij / w_ij) per row.

    P's values in the points' dtype, or float32 (a fit's P) converted in the
    kernel.
    """
    from fasttsne.gpu import _launchers

    P = random_affinities(rng, n, 12) if n > 1 else sp.csr_matrix((1, 1))
    P.data[::7] = 0.0  # stored zeros add nothing to the KL divergence
    Y = _points(rng, n, d, dtype)
    csr = (
        torch.from_numpy(P.indptr.astype(np.int32)).to(device),
        torch.from_numpy(P.indices.astype(np.int32)).to(device),
        _tensor(P.data, p_dtype or dtype, device),
    )
    for exaggeration, dof in [(12.0, 1.0), (1.0, 0.6)]:
        force, kl_rows = _launchers.attraction(
            csr,
            _tensor(Y, dtype, device),
            exaggeration=exaggeration,
            dof=dof,
            compute_error=True,
            tiles=_tiles(CSR_TILES, n),
        )
        P_rounded = P.astype(p_dtype or dtype).astype(np.float64)
        _assert_close(
            force.cpu().numpy(),
            exact_attraction(P_rounded, Y, dof, exaggeration),
            dtype,
        )
        kl = float(_launchers.ordered_sum(kl_rows))
        kl_oracle = exact_kl_attraction_term(P_rounded, Y, dof) if n > 1 else 0.0
        assert_allclose(kl, kl_oracle, rtol=_tolerance(dtype), atol=1e-300)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_attraction_to_a_reference_with_64_bit_indices(rng, device, dtype):
    """New points attracted to frozen ones (transform); int64 CSR indices."""
    from fasttsne.gpu import _launchers

    reference = _points(rng, 300, 2, dtype)
    P = random_new_point_affinities(rng, 7, 300, n_neighbors=20)
    Y = _points(rng, 7, 2, dtype)
    csr = (
        torch.from_numpy(P.indptr.astype(np.int64)).to(device),
        torch.from_numpy(P.indices.astype(np.int64)).to(device),
        _tensor(P.data, dtype, device),
    )
    force, kl_rows = _launchers.attraction(
        csr,
        _tensor(Y, dtype, device),
        _tensor(reference, dtype, device),
        exaggeration=1.0,
        dof=1.0,
        compute_error=False,
    )
    assert kl_rows is None
    P_rounded = P.astype(dtype).astype(np.float64)
    _assert_close(
        force.cpu().numpy(),
        exact_attraction(P_rounded, Y, 1.0, 1.0, Y_ref=reference),
        dtype,
    )


def test_ordered_sum_is_float64_and_fixed(rng, device):
    """Partial sums of a fixed layout: the same bits for the same values."""
    from fasttsne.gpu import _launchers

    values = rng.normal(size=100_003).astype(np.float32)
    total = _launchers.ordered_sum(_tensor(values, np.float32, device))
    assert total.dtype == torch.float64
    assert_allclose(float(total), np.sum(values, dtype=np.float64), rtol=1e-12)
    again = _launchers.ordered_sum(_tensor(values, np.float32, device))
    assert float(again) == float(total)
    empty = _launchers.ordered_sum(torch.zeros(0, device=device))
    assert float(empty) == 0.0


def _grid(Y, **knobs):
    """The CPU's grid for Y and its knobs."""
    knobs = {
        "n_interpolation_points": 3,
        "min_num_intervals": 10,
        "ints_in_interval": 1.0,
        "max_num_intervals": 300,
        **knobs,
    }
    grid = InterpolationGrid.covering(Y.min(axis=0), Y.max(axis=0), **knobs)
    return grid, knobs


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("d", [1, 2])
@pytest.mark.parametrize("p", [1, 3, 4])
def test_spreading_is_the_charges_of_the_oracle(rng, device, n, d, p):
    """Each node gets sum_i L_node(y_i) (1, y_i), boxes owned by one program."""
    from fasttsne.gpu import _launchers

    Y = _points(rng, n, d, np.float64)
    grid, _ = _grid(Y, n_interpolation_points=p)
    charges, spread = _launchers.spread_charges(
        _tensor(Y, np.float64, device), grid, tiles=_tiles(SPREAD_TILES, n)
    )
    oracle = interpolation_charges(Y, grid)
    # Sums of up to a few hundred terms in another order.
    scale = np.abs(oracle).max()
    assert_allclose(charges.cpu().numpy(), oracle, rtol=0, atol=1e-13 * scale)
    # The sort: by box, then by index; its order is a permutation.
    order = spread.order.cpu().numpy()
    assert_array_equal(np.sort(order), np.arange(n))
    boxes = spread.boxes.cpu().numpy()
    assert np.all(np.diff(boxes) >= 0)
    assert np.all(np.diff(order)[np.diff(boxes) == 0] > 0)


@pytest.mark.parametrize("d", [1, 2])
def test_potentials_are_the_circulant_cores(rng, device, d):
    """torch.fft on the device gives the CPU circulant core's product."""
    from fasttsne.gpu import _launchers

    Y = _points(rng, 300, d, np.float64)
    grid, _ = _grid(Y)
    charges = rng.normal(size=(d + 1,) + tuple(grid.shape))
    potentials = _launchers.grid_potentials(
        _tensor(charges, np.float64, device), grid, 0.7
    )
    # The kernel table on all node offsets, as _interp.pyx tabulates it.
    offsets = np.meshgrid(
        *[np.arange(-(n - 1), n) * h for n, h in zip(grid.shape, grid.spacings)],
        indexing="ij",
    )
    table = (1.0 + sum(o * o for o in offsets) / 0.7) ** -1.7
    spectrum = _kernel_spectrum(table, grid.shape)
    assert potentials.shape == charges.shape
    oracle = _apply_spectrum(spectrum, charges)
    assert_allclose(
        potentials.cpu().numpy(), oracle, rtol=0, atol=1e-12 * np.abs(oracle).max()
    )


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("d", [1, 2])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_grid_repulsion_is_the_cpu_grids(rng, device, n, d, dtype):
    """Spread, FFT, interpolate: the CPU pipeline's repulsion and Z."""
    from fasttsne.gpu import _launchers

    Y = _points(rng, n, d, dtype)
    grid, knobs = _grid(Y)
    for dof in (1.0, 0.6):
        force, Z = _launchers.grid_repulsion(
            _tensor(Y, dtype, device), dof=dof, grid=grid
        )
        assert force.dtype == _tensor(Y, dtype, device).dtype
        cpu_force = np.empty_like(Y)
        cpu_Z = _fft_repulsion(Y, dof, cpu_force, 1, **knobs)
        # Both interpolate the same grid in float64 (the device casts the
        # result to float32); the sums differ in order and FFT library only.
        scale = np.abs(cpu_force).max(initial=0.0)
        atol = (1e-12 if dtype == np.float64 else 1e-6) * max(scale, 1.0)
        assert_allclose(force.cpu().numpy(), cpu_force, rtol=0, atol=atol)
        assert_allclose(float(Z), cpu_Z, rtol=1e-11, atol=1e-12)


@pytest.mark.parametrize("d", [1, 2])
def test_fine_grid_repulsion_is_exact(rng, device, d):
    """With 5 nodes per narrow box, interpolation error is negligible."""
    from fasttsne.gpu import _launchers

    Y = _points(rng, 300, d, np.float64)
    grid, _ = _grid(
        Y, n_interpolation_points=5, min_num_intervals=1, ints_in_interval=0.25
    )
    force, Z = _launchers.grid_repulsion(
        _tensor(Y, np.float64, device), dof=0.8, grid=grid
    )
    force_oracle, Z_oracle = exact_repulsion(Y, 0.8)
    # The interpolation error of this grid (test_interp measures < 1e-6).
    error = np.linalg.norm(force.cpu().numpy() - force_oracle)
    assert error < 1e-5 * np.linalg.norm(force_oracle)
    assert_allclose(float(Z), Z_oracle, rtol=1e-6)


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_knn_matches_the_cpu_exact_search(rng, device, n, dtype):
    """The neighbour sets and order (distance, then index) of the CPU search."""
    from fasttsne.gpu import _launchers

    if n == 1:
        with pytest.raises(ValueError, match="n_neighbors"):
            _launchers.exact_knn(np.zeros((1, 3), dtype=dtype), 1)
        return
    k = min(n - 1, 10)
    X = rng.normal(size=(n, 12)).astype(dtype)
    if n >= 7:
        X[[4, 6]] = X[2]  # duplicates: ties at distance 0, broken by index
        X[5] = np.round(X[5])  # exactly representable distances too
    indices, sq_distances, uncertain = _launchers.exact_knn(
        _tensor(X, dtype, device), k, tiles=_tiles(KNN_TILES, n)
    )
    assert not uncertain.any()
    cpu_indices, cpu_distances = nearest_neighbors(X, k)
    assert_array_equal(indices, cpu_indices)
    assert_allclose(np.sqrt(sq_distances), cpu_distances, rtol=1e-12, atol=1e-12)


def test_knn_against_other_points_and_near_ties(device, rng):
    """Queries against a reference set; float32 ties resolved or reported.

    Query 0 equals 41 reference points: its answer, all at distance 0, is
    exact (ties by index). Query 1 has 41 reference points at squared
    distances 1 + 2e-9 j, equal in float32 and ordered against their indices:
    the float32 ranking cannot order them, and the row is reported.
    """
    from fasttsne.gpu import _launchers

    X_ref = rng.normal(size=(300, 5)) * 10.0
    X_ref[100:141] = X_ref[0] = 60.0
    far = np.zeros(5)
    far[0] = -100.0
    X_ref[200:241] = far
    X_ref[200:241, 1] = 1.0 + 1e-9 * np.arange(40, -1, -1)
    queries = np.vstack([X_ref[:1], far[None, :], rng.normal(size=(20, 5)) * 10.0])
    indices, _, uncertain = _launchers.exact_knn(queries, 10, X_ref=X_ref)
    assert_array_equal(indices[0], np.r_[0, 100:109])
    assert uncertain[1] and not uncertain[[0, *range(2, 22)]].any()
    for row, query in enumerate(queries):
        if not uncertain[row]:
            distances = ((X_ref - query) ** 2).sum(axis=1)
            expected = np.lexsort((np.arange(300), distances))[:10]
            assert_array_equal(indices[row], expected)


def test_knn_refuses_more_references_than_its_keys_index(device, rng, monkeypatch):
    """A reference set past the keys' 32-bit index is refused, not wrapped."""
    from fasttsne.gpu import _launchers

    monkeypatch.setattr(_launchers, "_MAX_KNN_REFS", 50)
    X = rng.normal(size=(60, 3))
    with pytest.raises(ValueError, match="at most 50 reference points, got 60"):
        _launchers.exact_knn(X, 5)
