"""Circulant embedding and real FFT: the one FFT core of fasttsne.

A (block-)Toeplitz matrix ``T[i, j] = k(x_i - x_j)`` on a regular grid of shape
``(n_1, ..., n_d)`` is the top-left corner of a circulant matrix of shape
``L_k >= 2 n_k - 1`` per axis, and a circulant product is a pointwise product of
real FFTs. :func:`_kernel_spectrum` computes that FFT once per grid;
:func:`_apply_spectrum` then multiplies any batch of charge grids in
O(L log L). :class:`~fasttsne.linalg._toeplitz.ToeplitzKernel` and the
interpolation grids of ``FFTInterpTSNE`` both go through these two functions.
The torch core (:mod:`fasttsne.linalg._circulant_torch`, for tensors and the
GPU t-SNE grid) transforms the same embedding (:func:`_embedded_kernel`).
"""

from typing import NamedTuple

import numpy as np
import scipy.fft

from fasttsne._array_api import is_tensor

# Complex workspace, in bytes, that one chunk of a batched product may use, and
# the fewest rows it holds. A chunk runs its forward FFT, spectral product and
# inverse FFT back to back, so its buffers stay in cache, which beats one
# transform of a whole batch; pocketfft vectorises across a few rows at once,
# which beats one row at a time (docs/toeplitz.rst, "Benchmarks"). A 2-D grid
# whose spectrum alone exceeds the workspace is a chunk of its own: its lines
# keep the vectors and the workers busy, and more grids would only add their
# padded copies to the peak (docs/affinities.rst).
_CHUNK_BYTES = 1 << 18
_MIN_CHUNK_ROWS = 4


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


def _circulant_shape(grid_shape):
    """FFT lengths of the circulant embedding of a Toeplitz kernel on a grid."""
    return tuple(_next_fft_friendly(2 * int(n) - 1) for n in grid_shape)


def _embedded_kernel(kernel_on_offsets, grid_shape):
    """The circulant embedding of a Toeplitz kernel: its first column.

    The one place the embedding is computed; the NumPy and torch cores (and
    anyone needing the FFT grid of a kernel: ``ToeplitzKernel``, the GPU
    t-SNE grid) transform this array.

    Parameters
    ----------
    kernel_on_offsets : ndarray or torch.Tensor of shape \
            (2 * n_1 - 1, ..., 2 * n_d - 1)
        Kernel values at every grid offset; the entry at index
        ``(m_1 + n_1 - 1, ..., m_d + n_d - 1)`` is ``k(m)``, i.e. the centre
        holds the zero offset. A tensor is embedded on its device, in its
        dtype.
    grid_shape : tuple of int
        ``(n_1, ..., n_d)``.

    Returns
    -------
    embedded : ndarray of float64 or tensor, shape (L_1, ..., L_d)
        ``k(m)`` at index ``m mod L`` (zero elsewhere), ``L_k`` the FFT-friendly
        size ``>= 2 n_k - 1``.
    """
    grid_shape = tuple(int(n) for n in grid_shape)
    fft_shape = _circulant_shape(grid_shape)
    if is_tensor(kernel_on_offsets):
        embedded = kernel_on_offsets.new_zeros(fft_shape)
    else:
        kernel_on_offsets = np.asarray(kernel_on_offsets)
        embedded = np.zeros(fft_shape, dtype=np.float64)
    expected = tuple(2 * n - 1 for n in grid_shape)
    if tuple(kernel_on_offsets.shape) != expected:
        raise ValueError(
            f"kernel_on_offsets has shape {tuple(kernel_on_offsets.shape)}, "
            f"expected {expected} for grid_shape={grid_shape}."
        )
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
    return embedded


def _kernel_spectrum(kernel_on_offsets, grid_shape, *, workers=None, dtype=None):
    """Precompute the real FFT of the circulant embedding of a Toeplitz kernel.

    Parameters
    ----------
    kernel_on_offsets : ndarray of shape (2 * n_1 - 1, ..., 2 * n_d - 1)
        Kernel values at every grid offset (see :func:`_embedded_kernel`).
    grid_shape : tuple of int
        ``(n_1, ..., n_d)``.
    workers : int, default=None
        Threads for scipy.fft.
    dtype : {None, numpy.float32}, default=None
        float32: the spectrum is computed in double and stored as complex64,
        for charges that :func:`_apply_spectrum` gets in float32 (it then
        needs no cast per call).

    Returns
    -------
    spectrum : _GridSpectrum
    """
    grid_shape = tuple(int(n) for n in grid_shape)
    embedded = _embedded_kernel(kernel_on_offsets, grid_shape)
    fft_shape = embedded.shape
    spectrum = scipy.fft.rfftn(embedded, workers=workers)
    del embedded  # before the complex64 copy (float32), which it would sit beside
    if dtype == np.float32:
        spectrum = np.asarray(spectrum).astype(np.complex64)
    return _GridSpectrum(grid_shape, fft_shape, spectrum)


def _circulant_product(values, fft_shape, grid_shape, charges, out, *, workers=None):
    """Write ``T @ q`` for every grid ``q`` of ``charges`` into ``out``.

    Body of :func:`_apply_spectrum` without input validation. The batch runs in
    chunks of about ``_CHUNK_BYTES`` of spectrum (one grid a chunk in 2-D
    when one grid's spectrum is larger). Each axis is zero-padded only
    when it is transformed and cropped as soon as it is transformed back, so no
    FFT along a later axis runs over padding rows (a quarter of the work of
    ``rfftn``/``irfftn`` in 2-D).

    Parameters
    ----------
    values : ndarray of complex, shape (L_1, ..., L_d // 2 + 1)
        The spectrum; complex64 for float32 charges, complex128 for float64.
    fft_shape, grid_shape : tuple of int
        ``(L_1, ..., L_d)`` and ``(n_1, ..., n_d)``.
    charges : ndarray of shape (n_batch, n_1, ..., n_d)
        Real, C-contiguous; only read.
    out : ndarray of shape (n_batch, n_1, ..., n_d)
        Same dtype as ``charges``; overwritten.
    workers : int, default=None
        Threads for scipy.fft (they split the rows of a chunk).
    """
    n_dims = len(grid_shape)
    if n_dims > 1 and values.nbytes > _CHUNK_BYTES:
        chunk = 1
    else:
        chunk = max(
            _MIN_CHUNK_ROWS, _CHUNK_BYTES // max(values.nbytes, 1), workers or 1
        )
    if n_dims == 1 and charges.shape[0] <= chunk:
        # The loop below for one 1-D chunk, without its slicing and empty
        # axis loops, whose fixed cost shows on short rows (docs/toeplitz.rst).
        spec = scipy.fft.rfft(charges, n=fft_shape[0], axis=-1, workers=workers)
        spec *= values
        full = np.asarray(
            scipy.fft.irfft(spec, n=fft_shape[0], axis=-1, workers=workers)
        )
        out[...] = full[:, : grid_shape[0]]
        return
    for start in range(0, charges.shape[0], chunk):
        block = charges[start : start + chunk]
        # Forward: real FFT along the last axis, then complex FFTs along the
        # others, each padding its own axis from n_k to L_k.
        spec = scipy.fft.rfft(block, n=fft_shape[-1], axis=-1, workers=workers)
        for axis in range(n_dims - 2, -1, -1):
            spec = scipy.fft.fft(
                spec,
                n=fft_shape[axis],
                axis=axis + 1,
                workers=workers,
                overwrite_x=True,
            )
        spec *= values
        # Inverse: crop each axis right after its inverse FFT.
        for axis in range(n_dims - 1):
            spec = scipy.fft.ifft(
                spec, axis=axis + 1, workers=workers, overwrite_x=True
            )
            spec = spec[(slice(None),) * (axis + 1) + (slice(0, grid_shape[axis]),)]
        # np.asarray costs nothing; it only tells pylint this is an ndarray.
        full = np.asarray(
            scipy.fft.irfft(spec, n=fft_shape[-1], axis=-1, workers=workers)
        )
        out[start : start + chunk] = full[..., : grid_shape[-1]]


def _apply_spectrum(spectrum, charges, *, workers=None):
    """Multiply a batch of charge grids by the Toeplitz kernel: ``T @ q``.

    Parameters
    ----------
    spectrum : _GridSpectrum
        From :func:`_kernel_spectrum`.
    charges : ndarray of shape (n_batch, n_1, ..., n_d)
        One grid of charges per batch entry (any number of leading axes is
        accepted; the last ``d`` must be the grid).
    workers : int, default=None
        Threads for scipy.fft.

    Returns
    -------
    potentials : ndarray of shape (n_batch, n_1, ..., n_d)
        C-contiguous; float32 for float32 charges (the FFTs then run in single
        precision), float64 otherwise.
    """
    grid_shape = spectrum.grid_shape
    charges = np.asarray(charges)
    if charges.dtype != np.float32:
        charges = charges.astype(np.float64, copy=False)
    if charges.ndim < len(grid_shape) or charges.shape[-len(grid_shape) :] != tuple(
        grid_shape
    ):
        raise ValueError(
            f"charges has shape {charges.shape}; its last axes must be the grid "
            f"{grid_shape}."
        )
    lead_shape = charges.shape[: -len(grid_shape)]
    charges = np.ascontiguousarray(charges).reshape((-1,) + tuple(grid_shape))
    # The charges' precision decides: a complex64 spectrum is widened for
    # float64 charges, a complex128 one rounded for float32 charges.
    values = spectrum.spectrum.astype(
        np.complex64 if charges.dtype == np.float32 else np.complex128, copy=False
    )
    out = np.empty_like(charges)
    _circulant_product(
        values, spectrum.fft_shape, grid_shape, charges, out, workers=workers
    )
    return out.reshape(lead_shape + tuple(grid_shape))
