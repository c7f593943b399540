"""FIt-SNE interpolation grids: their geometry, knobs, and the two pipelines.

The grid geometry (boxes per axis, span, centre) is decided here, in one
place, so that every user of the grid (the CPU kernels of
``fasttsne._cython._interp`` and a future GPU path) sees the same one; the
Cython kernels sort, spread and interpolate, and the convolution between them
is the circulant core's (:mod:`fasttsne.linalg._circulant`):

* :func:`fft_repulsion`: the repulsion and ``Z`` of an embedding against
  itself, one grid per call (a fit);
* :class:`FrozenInterpolation`: the repulsion of query points from a frozen
  embedding (``transform``): the grid, charges and potentials depend on the
  frozen points alone, so they are computed once and each query only
  interpolates.

The charges and their derivation are in ``_cython/_interp.pyx``; the measured
error and speed of the knobs and of the grid cap are in ``docs/fft.rst``.
"""

import math
from numbers import Integral, Real
from typing import NamedTuple

import numpy as np
import scipy.fft

from fasttsne._cython._interp import (
    MAX_INTERPOLATION_POINTS,
    bounding_box,
    interpolate_frozen,
    interpolate_repulsion,
    sort_into_boxes,
    spread_charges,
)
from fasttsne._validation import Interval, check_params
from fasttsne.linalg._circulant import (
    _apply_spectrum,
    _circulant_shape,
    _embedded_kernel,
    _GridSpectrum,
    _kernel_spectrum,
    _next_fft_friendly,
)

__all__ = [
    "DEFAULT_MAX_NUM_INTERVALS",
    "GRID_KNOB_CONSTRAINTS",
    "GRID_KNOB_DEFAULTS",
    "FrozenInterpolation",
    "InterpolationGrid",
    "check_grid_knobs",
    "fft_repulsion",
]

#: Default cap on the boxes per axis of a 2-D grid (0: no cap). With one box
#: per unit of span, a call's FFT grows with the square of the span; 300
#: leaves every span up to 300 uncapped and bounds a call by its cost there
#: (the measured trade-off is in docs/fft.rst).
DEFAULT_MAX_NUM_INTERVALS = 300

#: The defaults of the grid knobs (``FFTInterpTSNE``'s signature spells them
#: out for its users, and a test checks that it agrees).
GRID_KNOB_DEFAULTS = {
    "n_interpolation_points": 3,
    "min_num_intervals": 50,
    "ints_in_interval": 1.0,
    "max_num_intervals": DEFAULT_MAX_NUM_INTERVALS,
}

#: The constraints of the grid knobs, shared by :class:`FFTInterpTSNE`'s
#: parameter validation and :func:`check_grid_knobs`.
GRID_KNOB_CONSTRAINTS = {
    "n_interpolation_points": [
        Interval(Integral, 1, MAX_INTERPOLATION_POINTS, closed="both")
    ],
    "min_num_intervals": [Interval(Integral, 1, None, closed="left")],
    "ints_in_interval": [Interval(Real, 0, None, closed="neither")],
    "max_num_intervals": [Interval(Integral, 0, None, closed="left")],
}

# The most nodes of an interpolation grid: 4096^2 in 2-D, whose circulant FFT
# takes about 1 GiB of complex numbers per charge; the default cap stays far
# below it (900^2 nodes in 2-D, 270,000 in 1-D).
_MAX_GRID_NODES = 1 << 24

# A span below this (all points equal along an axis) is widened to it: any
# grid that contains the points is valid, and this one still has boxes far
# narrower than the kernel's width.
_MIN_SPAN = 1e-3

# A fit's capped 2-D grid (max_num_intervals limited its boxes, so it is
# coarser than ints_in_interval asks) whose circulant has at least this many
# nodes runs the FFTs of its charges in single precision: there they are most
# of a call, and their rounding is far below the capped grid's interpolation
# error. The kernel's spectrum is computed in double and applied in complex64;
# everything around the FFTs stays in double. Measurements: docs/fft.rst.
_SINGLE_PRECISION_FFT_MIN_NODES = 1 << 20

# The grid of a frozen embedding reaches this fraction of its span beyond
# each side of its bounding box, so that new points, which start at their
# neighbours' weighted mean and drift outwards, stay on it; a point that
# leaves it anyway gets exact sums.
_FROZEN_MARGIN = 0.1

# The cap on a frozen embedding's boxes per axis, as a multiple of the fit's
# cap: its FFT runs once per ``transform``, not once per iteration, so it can
# afford the resolution a fit gives up on wide embeddings (the margins
# included); the potentials it keeps take (d + 2) 8-byte values per node.
_FROZEN_CAP_FACTOR = 2.0 * (1.0 + 2.0 * _FROZEN_MARGIN)


def check_grid_knobs(
    n_interpolation_points,
    min_num_intervals,
    ints_in_interval,
    max_num_intervals,
    *,
    caller="FFTGradient",
):
    """Raise ``ValueError`` (or ``TypeError``) for invalid grid knobs.

    The one validation of the knobs: their ranges
    (:data:`GRID_KNOB_CONSTRAINTS`) and ``max_num_intervals`` being 0 (no cap)
    or at least ``min_num_intervals``.

    Parameters
    ----------
    n_interpolation_points, min_num_intervals, ints_in_interval, \
max_num_intervals : int, int, float, int
        The knobs, as :class:`~fasttsne.FFTInterpTSNE` documents them.
    caller : str, default="FFTGradient"
        Named in the error messages.
    """
    check_params(
        GRID_KNOB_CONSTRAINTS,
        {
            "n_interpolation_points": n_interpolation_points,
            "min_num_intervals": min_num_intervals,
            "ints_in_interval": ints_in_interval,
            "max_num_intervals": max_num_intervals,
        },
        caller,
    )
    if 0 < max_num_intervals < min_num_intervals:
        raise ValueError(
            f"max_num_intervals={max_num_intervals} is below "
            f"min_num_intervals={min_num_intervals} (0 means no cap)."
        )


def _boxes_along_axis(
    span, n_interpolation_points, min_num_intervals, ints_in_interval, max_boxes
):
    """Boxes along one axis, the span they cover, and whether the cap cut them.

    ``clip(ceil(span / ints_in_interval), min_num_intervals, max_boxes)``
    boxes (``max_boxes = 0``: no upper bound), then raised to the largest
    count whose ``2 p n_boxes - 1`` node offsets still fit the same FFT length
    (more boxes for free). A flat axis gets the span ``_MIN_SPAN``. The
    flag is True when ``ceil(span / ints_in_interval)`` exceeds the cap.
    """
    p = n_interpolation_points
    span = max(span, _MIN_SPAN)
    asked = math.ceil(span / ints_in_interval)
    capped = 0 < max_boxes < asked
    n_boxes = max(min_num_intervals, asked)
    if max_boxes > 0:
        n_boxes = min(n_boxes, max_boxes)
    fft_length = _next_fft_friendly(2 * p * n_boxes - 1)
    return max(n_boxes, (fft_length + 1) // (2 * p)), span, capped


class InterpolationGrid(NamedTuple):
    """Geometry of an interpolation grid, per axis (1 or 2 axes).

    The box ``b`` of an axis spans ``[lo + b width, lo + (b + 1) width)`` in
    coordinates relative to ``center``, with ``lo = -span / 2`` and
    ``width = span / n_boxes``; it holds ``p`` equispaced nodes at
    ``(k + 1/2) / p`` of its width, so the nodes form one regular grid of
    ``shape = n_boxes * p`` nodes per axis, ``spacings`` apart.
    """

    center: tuple  # (d,) float: the grid's centre
    span: tuple  # (d,) float: extent covered per axis
    n_boxes: tuple  # (d,) int
    n_interpolation_points: int  # p, nodes per box and axis
    capped: bool = False  # max_num_intervals limited the boxes of an axis

    @classmethod
    def covering(
        cls,
        lo,
        hi,
        *,
        n_interpolation_points,
        min_num_intervals,
        ints_in_interval,
        max_num_intervals,
    ):
        """The grid for points with bounding box ``[lo, hi]`` (per axis).

        Each axis gets its own box count (elongated embeddings cost less than
        on openTSNE's square grid). ``max_num_intervals`` caps the boxes per
        axis of a 2-D grid; a 1-D grid may have its square, as many nodes as
        the largest 2-D grid (a 1-D FFT is cheap, but not at any span: tiny
        ``ints_in_interval`` would otherwise ask for gigabytes). A grid of
        more than ``_MAX_GRID_NODES`` nodes (possible without a cap) is
        refused with a ``ValueError`` before anything is allocated.
        """
        cap = max_num_intervals if len(lo) == 2 else max_num_intervals**2
        centers, spans, boxes = [], [], []
        capped = False
        for low, high in zip(lo, hi):
            n_boxes, span, axis_capped = _boxes_along_axis(
                high - low,
                n_interpolation_points,
                min_num_intervals,
                ints_in_interval,
                cap,
            )
            capped = capped or axis_capped
            centers.append(low + 0.5 * span)
            spans.append(span)
            boxes.append(n_boxes)
        n_nodes = math.prod(boxes) * n_interpolation_points ** len(boxes)
        if n_nodes > _MAX_GRID_NODES:
            spans_in = [float(high - low) for low, high in zip(lo, hi)]
            raise ValueError(
                f"The interpolation grid would have {n_nodes} nodes ({boxes} "
                f"boxes of {n_interpolation_points} nodes per axis, for an "
                f"embedding spanning {spans_in}), "
                f"more than {_MAX_GRID_NODES}: set max_num_intervals (a cap on "
                "the boxes per axis) or a larger ints_in_interval."
            )
        return cls(
            tuple(centers),
            tuple(spans),
            tuple(boxes),
            n_interpolation_points,
            bool(capped),
        )

    @property
    def lower_edges(self):
        """Lower edge of box 0 per axis, relative to the centre."""
        return tuple(-0.5 * span for span in self.span)

    @property
    def inverse_widths(self):
        """``1 / box width`` per axis."""
        return tuple(n / span for n, span in zip(self.n_boxes, self.span))

    @property
    def spacings(self):
        """Distance between neighbouring nodes per axis."""
        p = self.n_interpolation_points
        return tuple(span / (n * p) for n, span in zip(self.n_boxes, self.span))

    @property
    def shape(self):
        """Nodes per axis."""
        return tuple(n * self.n_interpolation_points for n in self.n_boxes)

    @property
    def fft_shape(self):
        """Length per axis of the circulant embedding that the FFTs transform."""
        return _circulant_shape(self.shape)


def _fft_dtype(grid):
    """Precision of a fit's charge FFTs: float32 on large capped 2-D grids only.

    A 1-D grid keeps float64: a capped one is a long, sparsely charged line,
    where float32 rounding swamps the small kernel sums and Z.
    """
    large = math.prod(grid.fft_shape) >= _SINGLE_PRECISION_FFT_MIN_NODES
    if grid.capped and len(grid.n_boxes) == 2 and large:
        return np.float32
    return np.float64


def _grid_spectrum(grid, kernel, n_threads, fft_dtype=np.float64):
    """The FFT of the circulant embedding of the grid's kernel.

    Parameters
    ----------
    grid : InterpolationGrid
        The grid the kernel was tabulated on.
    kernel : ndarray of shape (2 n_0 - 1, 2 n_1 - 1) or (2 n_0 - 1, 1)
        The kernel at every node offset, as ``spread_charges`` returns it.
    n_threads : int
        scipy.fft workers.
    fft_dtype : {numpy.float64, numpy.float32}, default=numpy.float64
        The precision the charges' FFTs will run in (see :func:`_potentials`).

    Returns
    -------
    spectrum : _GridSpectrum
        complex128 values, or complex64 (computed in double) for float32.
    """
    d = len(grid.shape)
    return _kernel_spectrum(
        kernel.reshape(kernel.shape[:d]), grid.shape, workers=n_threads, dtype=fft_dtype
    )


def _potentials(spectrum, charges, n_threads):
    """Kernel sums on the nodes of every charge grid, by the circulant FFT.

    Parameters
    ----------
    spectrum : _GridSpectrum
        :func:`_grid_spectrum`'s. A complex64 one makes the charges' FFTs
        run in single precision (float64 charges are rounded to float32).
    charges : ndarray of shape (n_charges, n_0, n_1) or (n_charges, n_0, 1)
        The charges of ``spread_charges``, float64 or already in the
        spectrum's precision; only read.
    n_threads : int
        scipy.fft workers.

    Returns
    -------
    potentials : ndarray of shape (n_charges, n_0, n_1), float64
        With contiguous rows; possibly a cropped view (``n_1 = 1`` in 1-D).
    """
    fft_dtype = np.float32 if spectrum.spectrum.dtype == np.complex64 else np.float64
    charges = charges.astype(fft_dtype, copy=False)
    potentials = _apply_spectrum(spectrum, charges, workers=n_threads)
    potentials = potentials.astype(np.float64, copy=False)
    # A view, also of a crop; np.asarray only tells pylint it is an ndarray.
    shape = (charges.shape[0], spectrum.grid_shape[0], -1)
    potentials = np.asarray(potentials.reshape(shape))
    if potentials.strides[2] != potentials.itemsize:
        potentials = np.ascontiguousarray(potentials)
    return potentials


def _self_table(grid, kernel):
    """One-sided table of the kernel at the in-box node lags (see _interp.pyx).

    ``c_a c_b K(a h_0, b h_1)`` for lags ``a, b < p``, ``c_0 = 1`` and
    ``c_a = 2`` otherwise, flattened.
    """
    p = grid.n_interpolation_points
    two_d = len(grid.shape) == 2
    n0 = grid.shape[0]
    n1 = grid.shape[1] if two_d else 1
    fold = np.where(np.arange(p) == 0, 1.0, 2.0)
    table = kernel[n0 - 1 : n0 - 1 + p, n1 - 1 : n1 - 1 + (p if two_d else 1)]
    table = table * fold[:, None] * (fold[None, :] if two_d else 1.0)
    return np.ascontiguousarray(table).reshape(-1)


def fft_repulsion(
    Y,
    dof,
    out,
    n_threads,
    *,
    n_interpolation_points,
    min_num_intervals,
    ints_in_interval,
    max_num_intervals,
):
    """Unnormalised t-SNE repulsion and ``Z`` by FFT-accelerated interpolation.

    Parameters
    ----------
    Y : ndarray of shape (n_samples, n_components), float32 or float64
        The embedding, C-contiguous; ``n_components`` is 1 or 2.
    dof : float
        Degrees of freedom of the kernel ``w = (1 + r^2 / dof)^-dof``, > 0.
    out : ndarray of shape (n_samples, n_components), same dtype as Y
        Receives ``sum_{j != i} (w_ij / t_ij) (y_i - y_j)``.
    n_threads : int
        OpenMP threads and scipy.fft workers, >= 1. Results do not depend on it.
    n_interpolation_points, min_num_intervals, ints_in_interval, \
max_num_intervals : int, int, float, int
        The grid knobs, checked by :func:`check_grid_knobs`.

    Returns
    -------
    Z : float
        ``sum_{i != j} w_ij``.
    """
    check_grid_knobs(
        n_interpolation_points,
        min_num_intervals,
        ints_in_interval,
        max_num_intervals,
        caller="fft_repulsion",
    )
    if not dof > 0:
        raise ValueError(f"dof must be > 0, got {dof}.")
    if n_threads < 1:
        raise ValueError(f"n_threads must be >= 1, got {n_threads}.")
    if out.shape != Y.shape:
        raise ValueError(f"out has shape {out.shape}, expected {Y.shape}.")
    return _fft_repulsion(
        Y,
        dof,
        out,
        n_threads,
        n_interpolation_points=n_interpolation_points,
        min_num_intervals=min_num_intervals,
        ints_in_interval=ints_in_interval,
        max_num_intervals=max_num_intervals,
    )


def _fft_repulsion(Y, dof, out, n_threads, **knobs):
    """Body of :func:`fft_repulsion` without validation of the knobs."""
    lo, hi = bounding_box(Y)
    grid = InterpolationGrid.covering(lo, hi, **knobs)
    return _repulsion_on_grid(Y, grid, dof, out, n_threads)


def _repulsion_on_grid(Y, grid, dof, out, n_threads, fft_dtype=None):
    """:func:`fft_repulsion` on a given grid that covers ``Y``.

    ``fft_dtype`` is the precision of the charge FFTs; None chooses it by
    the grid's size (:func:`_fft_dtype`), as a fit does.
    """
    if fft_dtype is None:
        fft_dtype = _fft_dtype(grid)
    order, offsets = sort_into_boxes(Y, grid)
    ys, charges, kernel = spread_charges(Y, order, offsets, grid, dof, False, n_threads)
    # On a capped grid the charges, the kernel, its circulant embedding and
    # the embedding's FFT are each as large as the others: each is freed as
    # soon as the next exists, which keeps an iteration's peak down
    # (docs/affinities.rst). The arithmetic is _grid_spectrum's and
    # _potentials', bit for bit (tests/tsne/test_interpolation.py).
    charges = charges.astype(fft_dtype, copy=False)
    table = _self_table(grid, kernel)
    embedded = _embedded_kernel(
        kernel.reshape(kernel.shape[: len(grid.shape)]), grid.shape
    )
    del kernel
    values = scipy.fft.rfftn(embedded, workers=n_threads)
    del embedded
    if fft_dtype == np.float32:
        values = np.asarray(values).astype(np.complex64)
    spectrum = _GridSpectrum(grid.shape, grid.fft_shape, values)
    potentials = _potentials(spectrum, charges, n_threads)
    del charges, spectrum
    return interpolate_repulsion(
        ys, order, offsets, grid, potentials, table, dof, out, n_threads
    )


class FrozenInterpolation:
    """Repulsion of query points from a frozen embedding, on a fixed grid.

    The grid covers the frozen points' bounding box widened by
    ``_FROZEN_MARGIN`` of its span on each side, with the box counts of
    :meth:`InterpolationGrid.covering` under a cap ``_FROZEN_CAP_FACTOR``
    times the fit's (a frozen grid is convolved once); their charges
    ``(1, r, |r|^2)`` are spread and convolved once, here. A call then
    interpolates each query on its own, O(p^d) per query: results depend on
    nothing but the query and the frozen points. Queries off the grid are
    reported, for the caller to sum exactly.

    Parameters
    ----------
    frozen : ndarray of shape (n_frozen, n_components), float32 or float64
        C-contiguous frozen embedding, 1 or 2 columns.
    dof : float
        Degrees of freedom of the kernel.
    n_threads : int
        OpenMP threads and scipy.fft workers.
    **knobs : dict
        The grid knobs, already checked by :func:`check_grid_knobs`.
    """

    def __init__(self, frozen, dof, n_threads, **knobs):
        if knobs["max_num_intervals"]:
            knobs["max_num_intervals"] = math.ceil(
                _FROZEN_CAP_FACTOR * knobs["max_num_intervals"]
            )
        lo, hi = bounding_box(frozen)
        margins = [_FROZEN_MARGIN * (high - low) for low, high in zip(lo, hi)]
        self.grid = InterpolationGrid.covering(
            [low - m for low, m in zip(lo, margins)],
            [high + m for high, m in zip(hi, margins)],
            **knobs,
        )
        self.dof = dof
        self.n_threads = n_threads
        order, offsets = sort_into_boxes(frozen, self.grid)
        _, charges, kernel = spread_charges(
            frozen, order, offsets, self.grid, dof, True, n_threads
        )
        spectrum = _grid_spectrum(self.grid, kernel, n_threads)
        del kernel
        self.potentials = _potentials(spectrum, charges, n_threads)

    def __call__(self, Y_query, out, sum_w):
        """Write the repulsion and ``sum_j w`` of the queries on the grid.

        Parameters
        ----------
        Y_query : ndarray of shape (n_queries, n_components)
            C-contiguous queries, float32 or float64.
        out : ndarray of shape (n_queries, n_components), float64
            Receives ``sum_j (w_ij / t_ij) (x_i - r_j)`` on the rows on the grid.
        sum_w : ndarray of shape (n_queries,), float64
            Receives ``sum_j w_ij`` likewise.

        Returns
        -------
        on_grid : ndarray of shape (n_queries,), bool
            The rows written.
        """
        return interpolate_frozen(
            Y_query, self.grid, self.potentials, self.dof, out, sum_w, self.n_threads
        )
