"""Toeplitz and block-Toeplitz kernel products by circulant embedding and FFT.

The core: a (block-)Toeplitz matrix ``T[i, j] = k(x_i - x_j)`` on a regular grid
of shape ``(n_1, ..., n_d)`` is the top-left corner of a circulant matrix of
shape ``L_k >= 2 n_k - 1`` per axis, and a circulant product is a pointwise
product of real FFTs. ``_kernel_spectrum`` computes that FFT once per grid;
``_apply_spectrum`` then multiplies any batch of charge vectors in
O(L log L). ``FFTInterpTSNE`` uses the same two functions for its grid sums.
"""

from typing import NamedTuple

import numpy as np
import scipy.fft


def _next_fft_friendly(n):
    """Smallest size ``>= n`` whose real FFT is fast (a 2-3-5-smooth number).

    scipy's ``next_fast_len`` knows which sizes its pocketfft handles best, so we
    defer to it rather than keep a table of our own.
    """
    return scipy.fft.next_fast_len(int(n), real=True)


class _GridSpectrum(NamedTuple):
    """Real FFT of a circulant embedding, ready to be applied to charges."""

    grid_shape: tuple  # (n_1, ..., n_d): the Toeplitz grid
    fft_shape: tuple  # (L_1, ..., L_d): the circulant size per axis
    spectrum: np.ndarray  # rfftn of the embedded kernel, shape (L_1, ..., L_d // 2 + 1)


def _kernel_spectrum(kernel_on_offsets, grid_shape, *, workers=None):
    """Precompute the real FFT of the circulant embedding of a Toeplitz kernel.

    Parameters
    ----------
    kernel_on_offsets : ndarray of shape (2 * n_1 - 1, ..., 2 * n_d - 1)
        Kernel values at every grid offset; the entry at index
        ``(m_1 + n_1 - 1, ..., m_d + n_d - 1)`` is ``k(m)``, i.e. the centre
        holds the zero offset.
    grid_shape : tuple of int
        ``(n_1, ..., n_d)``.
    workers : int, default=None
        Threads for scipy.fft.

    Returns
    -------
    spectrum : _GridSpectrum
    """
    grid_shape = tuple(int(n) for n in grid_shape)
    kernel_on_offsets = np.asarray(kernel_on_offsets)
    expected = tuple(2 * n - 1 for n in grid_shape)
    if kernel_on_offsets.shape != expected:
        raise ValueError(
            f"kernel_on_offsets has shape {kernel_on_offsets.shape}, expected "
            f"{expected} for grid_shape={grid_shape}."
        )
    fft_shape = tuple(_next_fft_friendly(2 * n - 1) for n in grid_shape)
    embedded = np.zeros(fft_shape, dtype=np.float64)
    # Offsets 0..n-1 go to the front, offsets -(n-1)..-1 wrap to the back.
    for corner in np.ndindex(*(2,) * len(grid_shape)):
        src, dst = [], []
        for axis, n in enumerate(grid_shape):
            if corner[axis] == 0:  # non-negative offsets
                src.append(slice(n - 1, 2 * n - 1))
                dst.append(slice(0, n))
            else:  # negative offsets
                src.append(slice(0, n - 1))
                dst.append(slice(fft_shape[axis] - (n - 1), fft_shape[axis]))
        embedded[tuple(dst)] = kernel_on_offsets[tuple(src)]
    spectrum = scipy.fft.rfftn(embedded, workers=workers)
    return _GridSpectrum(grid_shape, fft_shape, spectrum)


def _apply_spectrum(spectrum, charges, *, workers=None):
    """Multiply a batch of charge grids by the Toeplitz kernel: ``T @ q``.

    Parameters
    ----------
    spectrum : _GridSpectrum
        From :func:`_kernel_spectrum`.
    charges : ndarray of shape (n_batch, n_1, ..., n_d)
        One grid of charges per batch entry.
    workers : int, default=None
        Threads for scipy.fft.

    Returns
    -------
    potentials : ndarray of shape (n_batch, n_1, ..., n_d), float64
    """
    d = len(spectrum.grid_shape)
    axes = tuple(range(-d, 0))
    transformed = scipy.fft.rfftn(
        charges, s=spectrum.fft_shape, axes=axes, workers=workers
    )
    transformed *= spectrum.spectrum
    full = scipy.fft.irfftn(
        transformed, s=spectrum.fft_shape, axes=axes, workers=workers
    )
    crop = (slice(None),) + tuple(slice(0, n) for n in spectrum.grid_shape)
    return full[crop]
