"""The device path on a real CUDA device, at sizes the interpreter cannot run.

GPU only (``@pytest.mark.gpu``): every test skips without a CUDA device and
under ``TRITON_INTERPRET=1``. They use the launchers' device tiles at sizes
that no tile divides, against the same oracles as ``test_kernels.py``, and
repeat fits of a few thousand points for bitwise reproducibility.
"""

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

import fasttsne.gpu
from fasttsne import BarnesHutTSNE, FFTInterpTSNE
from fasttsne._neighbors import nearest_neighbors
from fasttsne.tsne._gradients._interpolation import InterpolationGrid, _fft_repulsion
from tests._oracles import clusters, exact_reference_repulsion
from tests.gpu.conftest import INTERPRETING, torch

pytestmark = pytest.mark.gpu

# Sizes that no device tile divides.
N_PAIRS, N_GRID, N_KNN, N_FIT = 12345, 50001, 6001, 4000


@pytest.fixture
def cuda():
    """The CUDA device; skips under the interpreter and without a device."""
    if torch is None:
        pytest.skip('needs torch and triton: pip install "fasttsne[gpu]"')
    if INTERPRETING or not fasttsne.gpu.is_available():
        pytest.skip("needs a CUDA device (compiled kernels, not the interpreter)")
    return torch.device("cuda")


def _chunked_exact_repulsion(Y, dof, chunk=512):
    """``exact_repulsion`` of ``tests._oracles`` in row chunks (O(chunk N) memory).

    Row i meets itself with ``y_i - y_i = 0`` and ``w_ii = 1``: no force, and
    1 to take off its ``sum_j w_ij``.
    """
    force = np.empty_like(Y)
    Z = 0.0
    for start in range(0, len(Y), chunk):
        rows = slice(start, start + chunk)
        force[rows], sum_w = exact_reference_repulsion(Y, Y[rows], dof)
        Z += float(np.sum(sum_w - 1.0))
    return force, Z


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("d", [1, 2, 3])
def test_exact_repulsion_at_device_tiles(rng, cuda, d, dtype):
    """N_PAIRS points: ragged row blocks and column steps at the device's tiles."""
    from fasttsne.gpu import _launchers

    Y = clusters(rng, N_PAIRS, d, spread=10.0).astype(dtype).astype(np.float64)
    Y[[3, 5]] = Y[1]
    for dof in (1.0, 0.6):
        force, sum_w = _launchers.exact_repulsion(
            torch.from_numpy(Y.astype(dtype)).to(cuda), dof=dof
        )
        force_oracle, Z_oracle = _chunked_exact_repulsion(Y, dof)
        # As in test_kernels.py, scaled for 6 times as many terms per row.
        tolerance = 1e-11 if dtype == np.float64 else 1e-4
        scale = np.abs(force_oracle).max()
        assert_allclose(
            force.cpu().numpy(), force_oracle, rtol=0, atol=tolerance * scale
        )
        assert_allclose(float(_launchers.ordered_sum(sum_w)), Z_oracle, rtol=tolerance)


@pytest.mark.parametrize("d", [1, 2])
def test_grid_repulsion_at_device_tiles(rng, cuda, d):
    """N_GRID points on the CPU's grid: the CPU pipeline's repulsion and Z."""
    from fasttsne.gpu import _launchers

    Y = clusters(rng, N_GRID, d, spread=30.0)
    knobs = {
        "n_interpolation_points": 3,
        "min_num_intervals": 50,
        "ints_in_interval": 1.0,
        "max_num_intervals": 300,
    }
    grid = InterpolationGrid.covering(Y.min(axis=0), Y.max(axis=0), **knobs)
    force, Z = _launchers.grid_repulsion(
        torch.from_numpy(Y).to(cuda), dof=1.0, grid=grid
    )
    cpu_force = np.empty_like(Y)
    cpu_Z = _fft_repulsion(Y, 1.0, cpu_force, 1, **knobs)
    # Both interpolate the same grid in float64; the sums differ in order and
    # FFT library (cuFFT here), which the margin over test_kernels.py allows.
    scale = max(np.abs(cpu_force).max(), 1.0)
    assert_allclose(force.cpu().numpy(), cpu_force, rtol=0, atol=1e-9 * scale)
    assert_allclose(float(Z), cpu_Z, rtol=1e-9)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_knn_at_device_tiles(rng, cuda, dtype):
    """N_KNN points, 30 features: the CPU exact search's neighbours and order."""
    from fasttsne.gpu import _launchers

    del cuda
    X = rng.normal(size=(N_KNN, 30)).astype(dtype)
    X[[4, 6]] = X[2]
    indices, sq_distances, uncertain = _launchers.exact_knn(X, 15)
    cpu_indices, cpu_distances = nearest_neighbors(X, 15)
    certain = ~uncertain
    assert certain.mean() > 0.99
    assert_array_equal(indices[certain], cpu_indices[certain])
    assert_allclose(np.sqrt(sq_distances[certain]), cpu_distances[certain], rtol=1e-10)


@pytest.mark.parametrize("Est", [BarnesHutTSNE, FFTInterpTSNE])
def test_device_fits_of_thousands_are_bitwise_reproducible(rng, cuda, Est):
    """Two fits of N_FIT points with the compiled kernels: the same bits."""
    del cuda
    X = rng.normal(size=(N_FIT, 20)) + 4.0 * rng.integers(0, 5, size=(N_FIT, 1))
    params = {"max_iter": 300, "random_state": 0, "device": "cuda"}
    first = Est(**params).fit(X)
    second = Est(**params).fit(X)
    assert first.device_ == "cuda"
    assert_array_equal(first.embedding_, second.embedding_)
    assert first.kl_divergence_ == second.kl_divergence_
