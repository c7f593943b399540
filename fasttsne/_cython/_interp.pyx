"""Implementation notes: FIt-SNE interpolation of the t-SNE repulsion.

What is computed
----------------
For an embedding ``Y`` of shape (N, d), d in {1, 2}, with
``t_ij = 1 + |y_i - y_j|^2 / dof`` and ``w_ij = t_ij^(-dof)``,
:func:`fft_repulsion` returns ``Z = sum_{i != j} w_ij`` and writes the
unnormalised repulsion ``out[i] = sum_{j != i} (w_ij / t_ij) (y_i - y_j)``;
the t-SNE gradient is ``4 (attraction - out / Z)``. This is the contract of
``bh_repulsion`` in ``_quadtree.pyx``, so that the two can be swapped.

Charges: one kernel and d + 1 charges for every dof
---------------------------------------------------
Both sums are kernel sums ``phi_q(x) = sum_j K(x, y_j) q_j`` of the single
kernel ``K = t^-(dof + 1)`` (``w / t``) with the ``d + 1`` charges
``q_j in (1, y_j)``:

* repulsion: ``sum_j K_ij (y_i - y_j) = y_i phi_1(y_i) - phi_y(y_i)``;
* normaliser: ``w_ij = K_ij t_ij``, and ``t_ij`` is a quadratic polynomial in
  ``y_i`` and ``y_j``, so ``Z = sum_ij K_ij (1 + (|y_i|^2 - 2 y_i . y_j +
  |y_j|^2) / dof)``. FIt-SNE (dof = 1) spreads a fourth charge ``|y_j|^2``
  for the last term; but the interpolated kernel ``K~(x, y) = sum_ab L_a(x)
  K(x_a, x_b) L_b(y)`` is symmetric like ``K``, so ``sum_ij K~_ij |y_j|^2 =
  sum_i |y_i|^2 phi_1(y_i)`` and ``Z = sum_i [(1 + 2 |y_i|^2 / dof) phi_1(y_i)
  - (2 / dof) y_i . phi_y(y_i)]``, exactly the same sum with one charge grid
  (two FFTs) fewer.

This needs neither ``dof = 1`` nor a second kernel ``t^-dof`` with charge 1
for ``Z``: ``t`` is quadratic in the coordinates whatever the exponent. In
NumPy trials over dof 0.3 to 10, Z from ``K t`` was as accurate as or more
accurate than Z from a ``t^-dof`` kernel sum (2.1e-4 vs 6.0e-4 at dof = 1,
6e-5 vs 9e-4 at dof = 2; 3000 points, 10 clusters, default grid), for one
kernel spectrum instead of two. So a 2-D call runs 7 FFTs (1 kernel, 3
forward, 3 inverse), against 9 for FIt-SNE at dof = 1 and 10 for openTSNE at
dof != 1. Coordinates are taken relative to the grid centre so that the
cancelling products stay small. As one interpolated kernel ``K~`` multiplies
each exact polynomial charge, ``out`` equals ``sum_j K~(y_i, y_j)
(y_i - y_j)`` up to rounding: interpolation errors are not amplified by the
cancellation.

The self term ``j = i`` is removed from ``Z`` as each point's *interpolated*
self interaction ``K~(y_i, y_i)``, not as FIt-SNE's ``N * K(0) = N``. At the
default box width the interpolated self kernel is off by 6e-2 on average (up
to 0.9 at box corners), a one-signed bias; removing it exactly cut the error
of ``Z`` 10-400x in NumPy trials (e.g. 4.0e-3 -> 9.5e-6 for 3000 uniform
points on a 60 x 60 square). ``K~(y, y)`` costs ``O(p^2)`` per point: it is a
quadratic form of the autocorrelations of the point's Lagrange weights with a
``p^d`` table of the kernel at the in-box node lags.

Grid
----
Per axis the bounding box ``[lo, lo + span]`` is cut into
``n_boxes = clip(ceil(span / ints_in_interval), min_num_intervals,
max_num_intervals)`` equal boxes (unlike openTSNE's square grid, each axis
gets its own count, so elongated embeddings cost less), then ``n_boxes`` is
raised to fill the FFT length ``_next_fft_friendly(2 p n_boxes - 1)``. Each
box holds ``p = n_interpolation_points`` equispaced nodes at ``(k + 1/2) / p``
of its width (FIt-SNE's layout), so all nodes form one equispaced grid of
``n_boxes * p`` nodes per axis and the node-to-node kernel matrix is
(block-)Toeplitz: ``fasttsne.linalg._toeplitz`` multiplies it by the charge grids
through the FFT of its circulant embedding.

Cap and the speed cliff: with ``ints_in_interval = 1`` the grid grows with
the span, and the 2-D FFT with its square: at N = 100k a call took about
0.08 s at span 100, 0.35 s at 200-300, 0.9 s at 400 and 2.8 s at 600 (2
threads, shared machine). ``max_num_intervals``
(:data:`DEFAULT_MAX_NUM_INTERVALS` = 300) caps the boxes per axis of a 2-D
grid; past the cap the boxes widen to ``span / 300`` and the interpolation
error grows: relative error of the repulsion 1.1e-2 at span 300 (uncapped),
3.5e-2 at span 400 (1.5e-2 uncapped) and 2.2e-1 at span 600 (2.2e-2
uncapped), for 0.5 s and 0.4 s per call. 300 leaves every span up to 300
untouched (N up to about a million at exaggeration 1) and bounds a call by
its cost at span 300; a lower cap costs accuracy fast (cap 200 at span 400:
1.6e-1). 1-D grids are never capped: their FFT is cheap at any span. The
full table is in ``_gradients/_fft.py``.

Steps and complexity (N points, G = grid nodes, T = d + 1 charges)
------------------------------------------------------------------
1. bounding box and finiteness check: O(N d), serial;
2. stable counting sort of the points by box (row-major box id):
   O(N + boxes), serial (under a millisecond per 100k points);
3. one parallel region over box rows: gather the row's centred coordinates
   in box order (so that later passes stream through them and the points of
   a box touch the same few cache lines of the grids), then spread their
   charges, O(N p^d T); then the kernel on all grid offsets, O(G);
4. FFTs: O(T G log G) in scipy (``fasttsne.linalg._toeplitz``);
5. one parallel region over box rows: interpolation back, with each point's
   share of ``Z``, O(N p^d T);
6. ``Z``: O(N), serial.

Two OpenMP regions per call, not five: with libgomp's default (spinning)
wait policy each region's workers keep spinning after the join, and on an
oversubscribed machine every fork waits for descheduled threads. Measured
on the shared 2-core machine (N = 20k, load 4): 2 threads took 52 ms with
five regions, 28 ms with two, 8.5 ms with two and ``OMP_WAIT_POLICY=passive``
(1 thread: 7.5 ms).

``p = 3`` (the default) has its own 2-D spreading and interpolation with the
weights in registers: the generic loops keep them in stack arrays that the
vectorised consumers reload in pairs, which stalls on store forwarding (perf
showed half the interpolation time on those loads).

Profile (perf, N = 100k, span ~80, 1 thread): in the first version the
interpolation took 30 % of the samples, spreading 8 %, the FFTs 25-45 %;
after the box sort with a gathered coordinate buffer, the register-only
``p = 3`` path and the scalar autocorrelation, interpolation is ~5 % and
spreading ~4 %. Timed by ``bench_fft_gradient.py --profile`` (2 threads):
18.5 ms per call of which 15.3 ms are the FFT part and 3.3 ms everything
else; at span 20, 10.6 ms with 6.8 ms of FFT. The FFT is the bottleneck.

Memory ownership
----------------
All buffers are NumPy arrays owned by :func:`fft_repulsion` for one call: the
sort (box ids, freed after it, ``order``, N integers each, and one start per
box), the sorted coordinates (N d doubles), per-point ``z`` (N
doubles), the kernel table (about 4 G doubles), the charge and potential
grids (T G doubles each) and scipy's FFT work arrays. Memory is linear in N
and in G; no N x grid array exists. Workers get raw pointers into these arrays
and allocate nothing but small arrays on their stack.

Thread safety and determinism
-----------------------------
Spreading is race-free without atomics: the nodes of a box row belong to that
row alone (box ``b`` owns nodes ``b p .. b p + p - 1`` on its axis), one thread
handles a whole row, and it adds the row's points in their sorted order
(by box, then by index). Interpolation writes only per-point slots
(``out[order[k]]``, ``z[k]``). ``Z`` is the serial sum of ``z`` in sorted
order. The FFTs (pocketfft) split independent lines between threads. Results
are therefore bitwise identical for any ``n_threads`` (tested for 1, 2, 4).
"""

import numpy as np

from cython cimport floating
from cython.parallel cimport parallel, prange
from libc.math cimport ceil, isfinite, pow

from fasttsne._cython._typedefs cimport intp_t
from fasttsne.linalg._circulant import (
    _apply_spectrum,
    _kernel_spectrum,
    _next_fft_friendly,
)

#: Largest supported ``n_interpolation_points`` (stack arrays are this long);
#: equispaced interpolation of higher degree is ill-conditioned anyway (Runge).
MAX_INTERPOLATION_POINTS = 12
cdef enum:
    _MAX_P = 12

#: Default cap on boxes per axis (0 means no cap); see the module notes.
DEFAULT_MAX_NUM_INTERVALS = 300

# A span below this (all points equal along an axis) is widened to it: any
# grid that contains the points is valid, and this one still has boxes far
# narrower than the kernel's width.
cdef double _MIN_SPAN = 1e-3


cdef struct _Axis:
    double lo  # lower edge of box 0, relative to the grid centre
    double inv_width  # 1 / box width
    intp_t n_boxes


def interpolation_grid(
    double span,
    int n_interpolation_points,
    int min_num_intervals,
    double ints_in_interval,
    int max_num_intervals,
):
    """Boxes along one axis of the interpolation grid.

    Parameters
    ----------
    span : float
        Extent of the points along the axis.
    n_interpolation_points : int
        Interpolation nodes per box, ``p``.
    min_num_intervals : int
        Fewest boxes.
    ints_in_interval : float
        Target box width: ``ceil(span / ints_in_interval)`` boxes.
    max_num_intervals : int
        Most boxes before rounding up to the FFT length; 0 for no cap.

    Returns
    -------
    n_boxes : int
        Boxes along the axis: the clipped count, raised to the largest count
        whose ``2 p n_boxes - 1`` node offsets fit the same FFT length.
    span : float
        The span the grid covers (``span``, or its floor for a flat axis).
    """
    cdef Py_ssize_t n_boxes, fft_length, p = n_interpolation_points
    span = max(span, _MIN_SPAN)
    n_boxes = max(min_num_intervals, <Py_ssize_t>ceil(span / ints_in_interval))
    if max_num_intervals > 0:
        n_boxes = min(n_boxes, max_num_intervals)
    fft_length = _next_fft_friendly(2 * p * n_boxes - 1)
    n_boxes = max(n_boxes, (fft_length + 1) // (2 * p))
    return int(n_boxes), span


cdef void _inverse_denominators(int p, double *inv_den) noexcept nogil:
    """``1 / prod_{m != k} (x_k - x_m)`` for the nodes ``x_k = (k + 1/2) / p``."""
    cdef int k, m
    cdef double prod
    for k in range(p):
        prod = 1.0
        for m in range(p):
            if m != k:
                prod *= <double>(k - m) / p
        inv_den[k] = 1.0 / prod


cdef inline void _lagrange_weights(
    double u, int p, const double *inv_den, double *weights
) noexcept nogil:
    """Lagrange basis at ``u`` in [0, 1] for the nodes ``(k + 1/2) / p``."""
    cdef double diff[_MAX_P]
    cdef double prod
    cdef int k, m
    for m in range(p):
        diff[m] = u - (m + 0.5) / p
    for k in range(p):
        prod = inv_den[k]
        for m in range(p):
            if m != k:
                prod *= diff[m]
        weights[k] = prod


cdef inline void _lagrange3(
    double u, double *w0, double *w1, double *w2
) noexcept nogil:
    """The basis for ``p = 3`` (nodes 1/6, 1/2, 5/6), into scalars.

    Specialised because the generic loops keep the weights in stack arrays
    that the vectorised consumers reload in pairs, stalling on store
    forwarding (measured: half the interpolation time).
    """
    cdef double d0 = u - 1.0 / 6.0, d1 = u - 0.5, d2 = u - 5.0 / 6.0
    w0[0] = 4.5 * d1 * d2  # 1 / ((x0 - x1)(x0 - x2)) = 9 / 2
    w1[0] = -9.0 * d0 * d2  # 1 / ((x1 - x0)(x1 - x2)) = -9
    w2[0] = 4.5 * d0 * d1  # 1 / ((x2 - x0)(x2 - x1)) = 9 / 2


cdef inline intp_t _locate(double y, const _Axis *axis, double *u) noexcept nogil:
    """Box of coordinate ``y`` and its position ``u`` in [0, 1] inside the box."""
    cdef double s = (y - axis.lo) * axis.inv_width
    cdef intp_t box = <intp_t>s
    # The top edge (and rounding just past it) belongs to the last box.
    if box >= axis.n_boxes:
        box = axis.n_boxes - 1
    elif box < 0:
        box = 0
    u[0] = s - box
    return box


cdef inline intp_t _box_of(double y, const _Axis *axis) noexcept nogil:
    """Box of coordinate ``y``, as :func:`_locate` finds it."""
    cdef double u
    return _locate(y, axis, &u)


cdef inline void _autocorrelation(
    const double *weights, int p, double *acf
) noexcept nogil:
    """One-sided ``acf[lag] = sum_a weights[a + lag] weights[a]``, lag < p."""
    cdef int a, lag
    cdef double total
    for lag in range(p):
        total = 0.0
        for a in range(p - lag):
            total += weights[a + lag] * weights[a]
        acf[lag] = total


def lagrange_weights(double[::1] u, int n_interpolation_points):
    """Lagrange basis of the in-box nodes ``(k + 1/2) / p`` at positions ``u``.

    The routine the spreading and the interpolation use (including the
    specialised one for ``p = 3``), exposed for tests.

    Parameters
    ----------
    u : ndarray of shape (n_points,), float64
        Positions inside a box, in box widths (0 to 1).
    n_interpolation_points : int
        Nodes per box, ``p``.

    Returns
    -------
    weights : ndarray of shape (n_points, p)
        ``weights[i, k] = L_k(u[i])``; ``sum_k weights[i, k] f(x_k)`` is exact
        for polynomials ``f`` of degree below ``p``.
    """
    cdef int p = n_interpolation_points
    if not 1 <= p <= _MAX_P:
        raise ValueError(
            f"n_interpolation_points must be in [1, {_MAX_P}], got {p}."
        )
    cdef double inv_den[_MAX_P]
    _inverse_denominators(p, inv_den)
    out = np.empty((u.shape[0], p), dtype=np.float64)
    cdef double[:, ::1] weights = out
    cdef Py_ssize_t i
    for i in range(u.shape[0]):
        if p == 3:
            _lagrange3(u[i], &weights[i, 0], &weights[i, 1], &weights[i, 2])
        else:
            _lagrange_weights(u[i], p, inv_den, &weights[i, 0])
    return out


# ---------------------------------------------------------------------------
# Workers. ``ys`` holds the centred coordinates of the points in box order,
# shape (N, d) row-major; ``order[k]`` is the original index of sorted point k.
# Grids are planar: charge t at node (r, c) is ``grid[t * plane + r * row + c]``
# (doubles; ``row`` is 1 in 1-D). The self table ``self_table[i * p + j]`` holds
# ``c_i c_j K(i h_0, j h_1)`` with ``c_0 = 1`` and ``c_i = 2`` otherwise (one
# side of the symmetric lags), so that ``K~(y, y) = sum_ij self_table[i, j]
# acf_0[i] acf_1[j]`` with the one-sided weight autocorrelations.
# ---------------------------------------------------------------------------


cdef void _gather(
    const floating *Y,
    const intp_t *order,
    intp_t start,
    intp_t stop,
    intp_t d,
    const double *center,
    double *ys,
) noexcept nogil:
    """``ys[k] = Y[order[k]] - center`` for the sorted points ``start:stop``."""
    cdef intp_t k, i
    for k in range(start, stop):
        i = order[k]
        ys[k * d] = Y[i * d] - center[0]
        if d == 2:
            ys[k * d + 1] = Y[i * d + 1] - center[1]


cdef void _spread_1d(
    const double *ys,
    intp_t start,
    intp_t stop,
    const _Axis *axis,
    int p,
    const double *inv_den,
    double *grid,
    intp_t plane,
) noexcept nogil:
    """Add the charges ``(1, y)`` of the sorted points ``start:stop``."""
    cdef double w[_MAX_P]
    cdef double u, y
    cdef intp_t k, node
    cdef int a
    for k in range(start, stop):
        y = ys[k]
        node = _locate(y, axis, &u) * p
        _lagrange_weights(u, p, inv_den, w)
        for a in range(p):
            grid[node + a] += w[a]
            grid[plane + node + a] += w[a] * y


cdef void _spread_2d(
    const double *ys,
    intp_t start,
    intp_t stop,
    const _Axis *axis0,
    const _Axis *axis1,
    int p,
    const double *inv_den,
    double *grid,
    intp_t plane,
    intp_t row_stride,
) noexcept nogil:
    """Add the charges ``(1, y0, y1)`` of the sorted points ``start:stop``."""
    cdef double w0[_MAX_P]
    cdef double w1[_MAX_P]
    cdef double u0, u1, y0, y1, w
    cdef intp_t k, node
    cdef int a, c
    for k in range(start, stop):
        y0 = ys[2 * k]
        y1 = ys[2 * k + 1]
        node = _locate(y0, axis0, &u0) * p * row_stride + _locate(y1, axis1, &u1) * p
        _lagrange_weights(u0, p, inv_den, w0)
        _lagrange_weights(u1, p, inv_den, w1)
        for a in range(p):
            for c in range(p):
                w = w0[a] * w1[c]
                grid[node + c] += w
                grid[plane + node + c] += w * y0
                grid[2 * plane + node + c] += w * y1
            node += row_stride


cdef inline void _add3(
    double *g, double wa, double wb0, double wb1, double wb2
) noexcept nogil:
    """``g[0:3] += wa * (wb0, wb1, wb2)``."""
    g[0] += wa * wb0
    g[1] += wa * wb1
    g[2] += wa * wb2


cdef void _spread_2d_p3(
    const double *ys,
    intp_t start,
    intp_t stop,
    const _Axis *axis0,
    const _Axis *axis1,
    double *grid,
    intp_t plane,
    intp_t row_stride,
) noexcept nogil:
    """:func:`_spread_2d` for ``p = 3``, with the weights in registers."""
    cdef double u0, u1, y0, y1, a0, a1, a2, b0, b1, b2
    cdef double *g
    cdef intp_t k
    for k in range(start, stop):
        y0 = ys[2 * k]
        y1 = ys[2 * k + 1]
        g = grid + _locate(y0, axis0, &u0) * 3 * row_stride
        g += _locate(y1, axis1, &u1) * 3
        _lagrange3(u0, &a0, &a1, &a2)
        _lagrange3(u1, &b0, &b1, &b2)
        _add3(g, a0, b0, b1, b2)
        _add3(g + row_stride, a1, b0, b1, b2)
        _add3(g + 2 * row_stride, a2, b0, b1, b2)
        g += plane
        _add3(g, a0 * y0, b0, b1, b2)
        _add3(g + row_stride, a1 * y0, b0, b1, b2)
        _add3(g + 2 * row_stride, a2 * y0, b0, b1, b2)
        g += plane
        _add3(g, a0 * y1, b0, b1, b2)
        _add3(g + row_stride, a1 * y1, b0, b1, b2)
        _add3(g + 2 * row_stride, a2 * y1, b0, b1, b2)


cdef void _interpolate_1d(
    const double *ys,
    const intp_t *order,
    intp_t start,
    intp_t stop,
    const _Axis *axis,
    int p,
    const double *inv_den,
    const double *pot,
    intp_t plane,
    const double *self_table,
    double inv_dof,
    floating *out,
    double *z,
) noexcept nogil:
    """Potentials at the sorted points ``start:stop``: ``out[order[k]]``, ``z[k]``."""
    cdef double w[_MAX_P]
    cdef double acf[_MAX_P]
    cdef double u, y, phi0, phi1, self_term
    cdef intp_t k, node
    cdef int a
    for k in range(start, stop):
        y = ys[k]
        node = _locate(y, axis, &u) * p
        _lagrange_weights(u, p, inv_den, w)
        phi0 = phi1 = 0.0
        for a in range(p):
            phi0 += w[a] * pot[node + a]
            phi1 += w[a] * pot[plane + node + a]
        out[order[k]] = <floating>(y * phi0 - phi1)
        _autocorrelation(w, p, acf)
        self_term = 0.0
        for a in range(p):
            self_term += self_table[a] * acf[a]
        z[k] = (1.0 + 2.0 * inv_dof * y * y) * phi0 - 2.0 * inv_dof * y * phi1
        z[k] -= self_term


cdef void _interpolate_2d(
    const double *ys,
    const intp_t *order,
    intp_t start,
    intp_t stop,
    const _Axis *axis0,
    const _Axis *axis1,
    int p,
    const double *inv_den,
    const double *pot,
    intp_t plane,
    intp_t row_stride,
    const double *self_table,
    double inv_dof,
    floating *out,
    double *z,
) noexcept nogil:
    """Potentials at the sorted points ``start:stop``: ``out[order[k]]``, ``z[k]``."""
    cdef double w0[_MAX_P]
    cdef double w1[_MAX_P]
    cdef double acf0[_MAX_P]
    cdef double acf1[_MAX_P]
    cdef double u0, u1, y0, y1, w, phi0, phi1, phi2, self_term, inner
    cdef intp_t k, i, node
    cdef int a, c
    for k in range(start, stop):
        y0 = ys[2 * k]
        y1 = ys[2 * k + 1]
        node = _locate(y0, axis0, &u0) * p * row_stride + _locate(y1, axis1, &u1) * p
        _lagrange_weights(u0, p, inv_den, w0)
        _lagrange_weights(u1, p, inv_den, w1)
        phi0 = phi1 = phi2 = 0.0
        for a in range(p):
            for c in range(p):
                w = w0[a] * w1[c]
                phi0 += w * pot[node + c]
                phi1 += w * pot[plane + node + c]
                phi2 += w * pot[2 * plane + node + c]
            node += row_stride
        i = order[k]
        out[2 * i] = <floating>(y0 * phi0 - phi1)
        out[2 * i + 1] = <floating>(y1 * phi0 - phi2)
        _autocorrelation(w0, p, acf0)
        _autocorrelation(w1, p, acf1)
        self_term = 0.0
        for a in range(p):
            inner = 0.0
            for c in range(p):
                inner += self_table[a * p + c] * acf1[c]
            self_term += acf0[a] * inner
        z[k] = (
            (1.0 + 2.0 * inv_dof * (y0 * y0 + y1 * y1)) * phi0
            - 2.0 * inv_dof * (y0 * phi1 + y1 * phi2)
            - self_term
        )


cdef inline double _dot3(
    const double *g, double wa, double wb0, double wb1, double wb2
) noexcept nogil:
    """``wa * (g[0:3] . (wb0, wb1, wb2))``."""
    return wa * (wb0 * g[0] + wb1 * g[1] + wb2 * g[2])


cdef inline double _gather3x3(
    const double *g, intp_t row_stride, double a0, double a1, double a2,
    double b0, double b1, double b2,
) noexcept nogil:
    """``sum_{r, c < 3} a_r b_c g[r * row_stride + c]``."""
    return (
        _dot3(g, a0, b0, b1, b2)
        + _dot3(g + row_stride, a1, b0, b1, b2)
        + _dot3(g + 2 * row_stride, a2, b0, b1, b2)
    )


cdef void _interpolate_2d_p3(
    const double *ys,
    const intp_t *order,
    intp_t start,
    intp_t stop,
    const _Axis *axis0,
    const _Axis *axis1,
    const double *pot,
    intp_t plane,
    intp_t row_stride,
    const double *s,
    double inv_dof,
    floating *out,
    double *z,
) noexcept nogil:
    """:func:`_interpolate_2d` for ``p = 3``, with the weights in registers."""
    cdef double u0, u1, y0, y1, a0, a1, a2, b0, b1, b2
    cdef double phi0, phi1, phi2, r0, r1, r2, c0, c1, c2, self_term
    cdef const double *g
    cdef intp_t k, i
    for k in range(start, stop):
        y0 = ys[2 * k]
        y1 = ys[2 * k + 1]
        g = pot + _locate(y0, axis0, &u0) * 3 * row_stride
        g += _locate(y1, axis1, &u1) * 3
        _lagrange3(u0, &a0, &a1, &a2)
        _lagrange3(u1, &b0, &b1, &b2)
        phi0 = _gather3x3(g, row_stride, a0, a1, a2, b0, b1, b2)
        phi1 = _gather3x3(g + plane, row_stride, a0, a1, a2, b0, b1, b2)
        phi2 = _gather3x3(g + 2 * plane, row_stride, a0, a1, a2, b0, b1, b2)
        i = order[k]
        out[2 * i] = <floating>(y0 * phi0 - phi1)
        out[2 * i + 1] = <floating>(y1 * phi0 - phi2)
        # One-sided autocorrelations of the weights, lags 0, 1, 2.
        r0 = a0 * a0 + a1 * a1 + a2 * a2
        r1 = a1 * a0 + a2 * a1
        r2 = a2 * a0
        c0 = b0 * b0 + b1 * b1 + b2 * b2
        c1 = b1 * b0 + b2 * b1
        c2 = b2 * b0
        self_term = (
            r0 * (s[0] * c0 + s[1] * c1 + s[2] * c2)
            + r1 * (s[3] * c0 + s[4] * c1 + s[5] * c2)
            + r2 * (s[6] * c0 + s[7] * c1 + s[8] * c2)
        )
        z[k] = (
            (1.0 + 2.0 * inv_dof * (y0 * y0 + y1 * y1)) * phi0
            - 2.0 * inv_dof * (y0 * phi1 + y1 * phi2)
            - self_term
        )


cdef inline double _kernel(double r2, double dof) noexcept nogil:
    """``w / t = t^-(dof + 1)`` at squared distance ``r2``."""
    cdef double t = 1.0 + r2 / dof
    if dof == 1.0:
        return 1.0 / (t * t)
    return pow(t, -(dof + 1.0))


cdef void _kernel_row(
    double *kernel, intp_t m0, double spacing0, intp_t n0, double spacing1,
    intp_t n1, double dof,
) noexcept nogil:
    """Fill the rows ``n0 - 1 +- m0`` of the (2 n0 - 1, 2 n1 - 1) offset table."""
    cdef intp_t m1, width = 2 * n1 - 1
    cdef double v, r0 = (m0 * spacing0) * (m0 * spacing0), r1
    cdef double *upper = kernel + (n0 - 1 + m0) * width + n1 - 1
    cdef double *lower = kernel + (n0 - 1 - m0) * width + n1 - 1
    for m1 in range(n1):
        r1 = m1 * spacing1
        v = _kernel(r0 + r1 * r1, dof)
        upper[m1] = v
        upper[-m1] = v
        lower[m1] = v
        lower[-m1] = v


def fft_repulsion(
    const floating[:, ::1] Y,
    double dof,
    int n_interpolation_points,
    int min_num_intervals,
    double ints_in_interval,
    floating[:, ::1] out,
    int n_threads,
    int max_num_intervals=DEFAULT_MAX_NUM_INTERVALS,
):
    """Unnormalised t-SNE repulsion and ``Z`` by FFT-accelerated interpolation.

    Parameters
    ----------
    Y : ndarray of shape (n_samples, n_components), float32 or float64
        The embedding, C-contiguous; ``n_components`` is 1 or 2.
    dof : float
        Degrees of freedom of the kernel ``w = (1 + r^2 / dof)^-dof``, > 0.
    n_interpolation_points : int
        Equispaced Lagrange nodes per box, in [1, 12].
    min_num_intervals : int
        Fewest boxes per axis, >= 1.
    ints_in_interval : float
        Target box width, > 0.
    out : ndarray of shape (n_samples, n_components), same dtype as Y
        Receives ``sum_{j != i} (w_ij / t_ij) (y_i - y_j)``.
    n_threads : int
        OpenMP threads and scipy.fft workers, >= 1. Results do not depend on it.
    max_num_intervals : int, default=DEFAULT_MAX_NUM_INTERVALS
        Most boxes per axis of a 2-D grid (before filling the FFT length), or
        0 for no cap. 1-D grids are not capped.

    Returns
    -------
    Z : float
        ``sum_{i != j} w_ij``.
    """
    cdef intp_t N = Y.shape[0], d = Y.shape[1]
    cdef int p = n_interpolation_points
    if d not in (1, 2):
        raise ValueError(f"Y must have 1 or 2 columns, got {d}.")
    if N < 1:
        raise ValueError("Y must have at least one row.")
    if out.shape[0] != N or out.shape[1] != d:
        raise ValueError(
            f"out has shape {(out.shape[0], out.shape[1])}, expected {(N, d)}."
        )
    if not dof > 0:
        raise ValueError(f"dof must be > 0, got {dof}.")
    if not 1 <= p <= _MAX_P:
        raise ValueError(
            f"n_interpolation_points must be in [1, {_MAX_P}], got {p}."
        )
    if min_num_intervals < 1:
        raise ValueError(f"min_num_intervals must be >= 1, got {min_num_intervals}.")
    if not ints_in_interval > 0:
        raise ValueError(f"ints_in_interval must be > 0, got {ints_in_interval}.")
    if max_num_intervals != 0 and max_num_intervals < min_num_intervals:
        raise ValueError(
            f"max_num_intervals={max_num_intervals} must be 0 (no cap) or >= "
            f"min_num_intervals={min_num_intervals}."
        )
    if n_threads < 1:
        raise ValueError(f"n_threads must be >= 1, got {n_threads}.")

    cdef const floating *y_ptr = &Y[0, 0]
    cdef floating *out_ptr = &out[0, 0]
    cdef intp_t i, k, r
    cdef double lo[2]
    cdef double hi[2]
    cdef double center[2]
    cdef double v
    cdef bint finite = True
    with nogil:
        for k in range(d):
            lo[k] = hi[k] = y_ptr[k]
        for i in range(N * d):
            v = y_ptr[i]
            if not isfinite(v):
                finite = False
                break
            k = i % d
            if v < lo[k]:
                lo[k] = v
            elif v > hi[k]:
                hi[k] = v
    if not finite:
        raise ValueError("Y contains NaN or infinity.")

    # Grid geometry, one axis at a time, in coordinates centred on the grid.
    cdef _Axis axes[2]
    cdef double spacing[2]
    cdef intp_t n_nodes[2]
    # 1-D grids are never capped: their FFT is cheap at any span.
    if d == 1:
        max_num_intervals = 0
    for k in range(d):
        n_boxes, span = interpolation_grid(
            hi[k] - lo[k], p, min_num_intervals, ints_in_interval, max_num_intervals
        )
        center[k] = lo[k] + 0.5 * span
        axes[k].lo = -0.5 * span
        axes[k].inv_width = n_boxes / span
        axes[k].n_boxes = n_boxes
        n_nodes[k] = n_boxes * p
        spacing[k] = span / (n_boxes * p)
    if d == 1:
        axes[1].n_boxes = n_nodes[1] = 1
        spacing[1] = 0.0
    cdef intp_t n0 = n_nodes[0], n1 = n_nodes[1]
    grid_shape = (int(n0), int(n1))[:d]
    cdef double inv_den[_MAX_P]
    _inverse_denominators(p, inv_den)

    # Stable counting sort of the points by box (row-major box id), serial:
    # O(N), a fraction of a millisecond per 100k points. Boxes come from the
    # centred coordinates exactly as the workers recompute them, so a point
    # sorted into a box row spreads onto that row's nodes only.
    cdef intp_t n_rows = axes[0].n_boxes, n_cols = axes[1].n_boxes
    boxes_arr = np.empty(N, dtype=np.intp)
    order_arr = np.empty(N, dtype=np.intp)
    starts_arr = np.zeros(n_rows * n_cols + 1, dtype=np.intp)
    cdef intp_t[::1] boxes = boxes_arr
    cdef intp_t[::1] order = order_arr
    cdef intp_t[::1] starts = starts_arr
    with nogil:
        for i in range(N):
            if d == 1:
                boxes[i] = _box_of(y_ptr[i] - center[0], &axes[0])
            else:
                boxes[i] = (
                    _box_of(y_ptr[2 * i] - center[0], &axes[0]) * n_cols
                    + _box_of(y_ptr[2 * i + 1] - center[1], &axes[1])
                )
            starts[boxes[i] + 1] += 1
        for k in range(n_rows * n_cols):
            starts[k + 1] += starts[k]
        for i in range(N):
            order[starts[boxes[i]]] = i
            starts[boxes[i]] += 1
        # The scatter advanced each start to the next box's: shift back.
        for k in range(n_rows * n_cols, 0, -1):
            starts[k] = starts[k - 1]
        starts[0] = 0
    # Box row r holds the sorted points offsets[r] .. offsets[r + 1].
    cdef intp_t[::1] offsets = starts_arr[::n_cols].copy()
    del boxes, boxes_arr, starts, starts_arr

    # One parallel region (each costs a fork and a join, ruinous when the
    # cores are oversubscribed): per box row, gather the row's centred
    # coordinates in box order (the later passes then stream through them; a
    # random read of Y per point and pass cost 40 % of the interpolation) and
    # spread its charges, whose nodes belong to that row alone; then the
    # kernel on every node offset.
    ys_arr = np.empty((N, d), dtype=np.float64)
    cdef double[:, ::1] ys_view = ys_arr
    cdef double *ys = &ys_view[0, 0]
    charges_arr = np.zeros((d + 1,) + grid_shape, dtype=np.float64)
    cdef double[::1] charges_flat = charges_arr.reshape(-1)
    cdef double *grid = &charges_flat[0]
    cdef intp_t plane = n0 * n1
    kernel_arr = np.empty((2 * n0 - 1, 2 * n1 - 1), dtype=np.float64)
    cdef double[:, ::1] kernel_view = kernel_arr
    cdef double *kernel_ptr = &kernel_view[0, 0]
    cdef intp_t m0
    with nogil, parallel(num_threads=n_threads):
        for r in prange(n_rows, schedule="dynamic"):
            if offsets[r] == offsets[r + 1]:
                continue
            _gather(y_ptr, &order[0], offsets[r], offsets[r + 1], d, center, ys)
            if d == 1:
                _spread_1d(
                    ys, offsets[r], offsets[r + 1], &axes[0], p, inv_den, grid,
                    plane,
                )
            elif p == 3:
                _spread_2d_p3(
                    ys, offsets[r], offsets[r + 1], &axes[0], &axes[1], grid,
                    plane, n1,
                )
            else:
                _spread_2d(
                    ys, offsets[r], offsets[r + 1], &axes[0], &axes[1], p,
                    inv_den, grid, plane, n1,
                )
        for m0 in prange(n0, schedule="static"):
            _kernel_row(kernel_ptr, m0, spacing[0], n0, spacing[1], n1, dof)

    # Kernel sums on the grid by FFT.
    spectrum = _kernel_spectrum(
        kernel_arr.reshape(kernel_arr.shape[:d]), grid_shape, workers=n_threads
    )
    pot_arr = _apply_spectrum(spectrum, charges_arr, workers=n_threads)
    del spectrum, charges_flat, charges_arr
    pot_arr = pot_arr.reshape((d + 1, n0, n1))  # a view, also for a crop
    if pot_arr.strides[2] != pot_arr.itemsize:
        pot_arr = np.ascontiguousarray(pot_arr)

    # One-sided self table (see the workers' header): lags 0 .. p-1 per axis.
    fold = np.where(np.arange(p) == 0, 1.0, 2.0)
    self_arr = kernel_arr[n0 - 1 : n0 - 1 + p, n1 - 1 : n1 - 1 + (p if d == 2 else 1)]
    self_arr = np.ascontiguousarray(
        self_arr * fold[:, None] * (fold[None, :] if d == 2 else 1.0)
    ).reshape(-1)
    cdef double[::1] self_table = self_arr
    del kernel_view, kernel_arr

    # Interpolate the potentials back to the points, row by row for locality.
    # The potentials may be a crop of a larger FFT output: a strided view with
    # contiguous rows (ensured above) gives the pointer and the strides.
    z_arr = np.empty(N, dtype=np.float64)
    cdef double[::1] z = z_arr
    cdef const double[:, :, :] pot_view = pot_arr
    cdef const double *pot = &pot_view[0, 0, 0]
    cdef intp_t pot_plane = pot_view.strides[0] // sizeof(double)
    cdef intp_t pot_row = pot_view.strides[1] // sizeof(double)
    cdef double inv_dof = 1.0 / dof
    with nogil:
        for r in prange(n_rows, num_threads=n_threads, schedule="dynamic"):
            if offsets[r] == offsets[r + 1]:
                continue
            if d == 1:
                _interpolate_1d(
                    ys, &order[0], offsets[r], offsets[r + 1], &axes[0], p,
                    inv_den, pot, pot_plane, &self_table[0], inv_dof, out_ptr,
                    &z[0],
                )
            elif p == 3:
                _interpolate_2d_p3(
                    ys, &order[0], offsets[r], offsets[r + 1], &axes[0], &axes[1],
                    pot, pot_plane, pot_row, &self_table[0], inv_dof, out_ptr,
                    &z[0],
                )
            else:
                _interpolate_2d(
                    ys, &order[0], offsets[r], offsets[r + 1], &axes[0], &axes[1],
                    p, inv_den, pot, pot_plane, pot_row, &self_table[0], inv_dof,
                    out_ptr, &z[0],
                )

    # Z in a fixed (sorted) order, whatever the thread count.
    cdef double Z = 0.0
    with nogil:
        for k in range(N):
            Z += z[k]
    return Z
