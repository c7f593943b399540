"""Tests of the circulant-embedding FFT core, ``fasttsne.linalg._circulant``.

The oracle is the explicit (block-)Toeplitz matrix of the same kernel values.
"""

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from fasttsne.linalg import _circulant
from fasttsne.linalg._circulant import (
    _apply_spectrum,
    _kernel_spectrum,
    _next_fft_friendly,
)
from tests._oracles import dense_toeplitz, fft_tolerance, relative_error


def _is_smooth(n):
    """True when n has no prime factor above 5."""
    for p in (2, 3, 5):
        while n % p == 0:
            n //= p
    return n == 1


def test_next_fft_friendly():
    """The FFT size is the smallest 2-3-5-smooth number >= n."""
    for n in [1, 2, 7, 97, 1031, 199_999]:
        size = _next_fft_friendly(n)
        assert size >= n and _is_smooth(size)
        assert not any(_is_smooth(m) for m in range(n, size))


@pytest.mark.parametrize("grid_shape", [(1,), (13,), (64,), (5, 8), (9, 3)])
def test_kernel_spectrum_then_apply(rng, grid_shape):
    """The internal t-SNE API: spectrum once, then many charge grids."""
    offsets = rng.standard_normal(tuple(2 * n - 1 for n in grid_shape))
    spectrum = _kernel_spectrum(offsets, grid_shape)
    T = dense_toeplitz(offsets, grid_shape)
    charges = rng.standard_normal((4,) + grid_shape)
    potentials = _apply_spectrum(spectrum, charges)
    desired = (charges.reshape(4, -1) @ T.T).reshape(charges.shape)
    assert potentials.shape == charges.shape
    assert potentials.dtype == np.float64
    assert relative_error(potentials, desired) <= fft_tolerance(T.shape[0])
    # Leading axes other than one batch axis pass through.
    stacked = _apply_spectrum(spectrum, charges.reshape((2, 2) + grid_shape))
    assert_allclose(stacked.reshape(charges.shape), potentials, rtol=1e-15)
    single = _apply_spectrum(spectrum, charges.astype(np.float32))
    assert single.dtype == np.float32
    assert relative_error(single, desired) <= 1e-6  # float32 FFTs


def test_apply_spectrum_rejects_wrong_grid(rng):
    """Shapes that do not match the grid raise ``ValueError``."""
    spectrum = _kernel_spectrum(np.ones(9), (5,))
    with pytest.raises(ValueError, match="last axes must be the grid"):
        _apply_spectrum(spectrum, rng.standard_normal((3, 6)))
    with pytest.raises(ValueError, match="expected"):
        _kernel_spectrum(np.ones(8), (5,))


def test_large_grids_run_one_at_a_time_with_the_same_result(rng, monkeypatch):
    """A grid whose spectrum exceeds a chunk is transformed on its own.

    The oracle sums ``k(i - j) q_j`` directly at sampled nodes (the dense
    matrix would have 3e8 entries); the grids in one chunk give the same
    bits.
    """
    grid_shape = (150, 120)
    offsets = rng.standard_normal(tuple(2 * n - 1 for n in grid_shape))
    spectrum = _kernel_spectrum(offsets, grid_shape)
    assert spectrum.spectrum.nbytes > _circulant._CHUNK_BYTES
    charges = rng.standard_normal((3,) + grid_shape)
    calls = []
    rfft = _circulant.scipy.fft.rfft

    def counted_rfft(block, *args, **kwargs):
        calls.append(block.shape[0])
        return rfft(block, *args, **kwargs)

    monkeypatch.setattr(_circulant.scipy.fft, "rfft", counted_rfft)
    potentials = _apply_spectrum(spectrum, charges, workers=2)
    assert calls == [1, 1, 1]
    # With a workspace this large the three grids go in one chunk: same bits.
    monkeypatch.setattr(_circulant, "_CHUNK_BYTES", 1 << 40)
    batched = _apply_spectrum(spectrum, charges, workers=2)
    assert calls[3:] == [3]
    assert_array_equal(batched, potentials)
    rows, cols = np.indices(grid_shape)
    for i0, i1 in [(0, 0), (75, 60), (149, 119), (3, 118)]:
        kernel = offsets[i0 - rows + grid_shape[0] - 1, i1 - cols + grid_shape[1] - 1]
        desired = (kernel * charges).sum(axis=(1, 2))
        assert relative_error(potentials[:, i0, i1], desired) <= 1e-12
