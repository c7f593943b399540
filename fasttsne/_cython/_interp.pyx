"""Implementation notes: the kernels of FIt-SNE's interpolated repulsion.

One module past 700 lines on purpose: the spreading and interpolation kernels
(1-D, 2-D, the register-only ``p = 3`` paths, the frozen-embedding variant)
share the axis struct, the Lagrange weights and ``cdef inline`` helpers that
must inline into their loops.

What is computed
----------------
For an embedding ``Y`` of shape (N, d), d in {1, 2}, with
``t_ij = 1 + |y_i - y_j|^2 / dof`` and ``w_ij = t_ij^(-dof)``, the pipeline of
``fasttsne.tsne._gradients._interpolation.fft_repulsion`` returns
``Z = sum_{i != j} w_ij`` and writes the unnormalised repulsion
``out[i] = sum_{j != i} (w_ij / t_ij) (y_i - y_j)``, the contract of
``bh_repulsion`` in ``_quadtree.pyx``. This module holds its compiled steps
and imports no Python module of the package: the grid geometry is computed
in Python (``_gradients/_interpolation.py``) and passed in as an object with
per-axis ``center``, ``lower_edges``, ``inverse_widths``, ``n_boxes``,
``spacings`` and the scalar ``n_interpolation_points``; the FFT convolution
runs in Python (``fasttsne.linalg._circulant``) between :func:`spread_charges`
and the interpolation.

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
  - (2 / dof) y_i . phi_y(y_i)]``, the same sum with one charge grid (two
  FFTs) fewer.

This needs neither ``dof = 1`` nor a second kernel ``t^-dof`` for ``Z``: ``t``
is quadratic in the coordinates whatever the exponent (accuracy of both
choices: ``docs/fft.rst``). Coordinates are taken relative to the grid centre
so that the cancelling products stay small. As one interpolated kernel ``K~``
multiplies each exact polynomial charge, ``out`` equals ``sum_j K~(y_i, y_j)
(y_i - y_j)`` up to rounding: interpolation errors are not amplified by the
cancellation.

Against a frozen embedding (``transform``) the queries ``x_i`` are not the
charged points ``r_j``, so the symmetry argument fails and the per-query
normaliser ``sum_j w_ij = (1 + |x_i|^2 / dof) phi_1(x_i) - (2 / dof) x_i .
phi_r(x_i) + phi_{|r|^2}(x_i) / dof`` needs the charge ``|r_j|^2`` after all:
:func:`spread_charges` with ``squared_norms`` spreads ``d + 2`` charges and
:func:`interpolate_frozen` reads them back.

The self term ``j = i`` is removed from ``Z`` as each point's *interpolated*
self interaction ``K~(y_i, y_i)``, not as FIt-SNE's ``N * K(0) = N``: the
interpolated self kernel has a one-signed bias at box corners, and removing
it exactly makes ``Z`` far more accurate (``docs/fft.rst``). ``K~(y, y)``
costs ``O(p^2)`` per point: it is a quadratic form of the autocorrelations of
the point's Lagrange weights with a ``p^d`` table of the kernel at the in-box
node lags.

Grid
----
Each box holds ``p = n_interpolation_points`` equispaced nodes at
``(k + 1/2) / p`` of its width (FIt-SNE's layout), so all nodes form one
equispaced grid of ``n_boxes * p`` nodes per axis and the node-to-node kernel
matrix is (block-)Toeplitz; :func:`spread_charges` also fills the kernel on
every node offset, the input of the circulant embedding.

Steps and complexity (N points, G = grid nodes, T = charges)
------------------------------------------------------------
1. :func:`bounding_box`: O(N d), serial, with the finiteness check;
2. :func:`sort_into_boxes`: stable counting sort by row-major box id,
   O(N + boxes), serial;
3. :func:`spread_charges`: one parallel region over box rows: gather the
   row's centred coordinates in box order (later passes stream through them
   and a box's points touch the same few cache lines of the grids), spread
   their charges, O(N p^d T); then the kernel on all node offsets, O(G);
4. the FFTs, O(T G log G), in Python;
5. :func:`interpolate_repulsion`: one parallel region over box rows,
   interpolating the potentials back with each point's share of ``Z``,
   O(N p^d T); ``Z`` is then summed serially, O(N).
   :func:`interpolate_frozen` instead handles each query alone, O(p^d T).

Each step that can be merged into one OpenMP region is: every region costs a
fork and a join, which add up when the cores are oversubscribed
(``docs/fft.rst``). ``p = 3`` (the default) has its own 2-D spreading and
interpolation with the weights in registers: the generic loops keep them in
stack arrays that the vectorised consumers reload in pairs, which stalls on
store forwarding.

Memory ownership
----------------
The entry points allocate their outputs as NumPy arrays that the caller owns:
the sort's ``order`` (N integers) and row ``offsets`` (box rows + 1), the
gathered coordinates ``ys`` (N d doubles), the charge grids (T G doubles)
and the kernel table (about 4 G doubles), per-point ``z`` (N doubles, freed
on return). No N x grid array exists. Workers get raw pointers into these
arrays and allocate nothing but small arrays on their stack.

Thread safety and determinism
-----------------------------
Spreading is race-free without atomics: the nodes of a box row belong to that
row alone (box ``b`` owns nodes ``b p .. b p + p - 1`` on its axis), one thread
handles a whole row, and it adds the row's points in their sorted order (by
box, then by index). Interpolation writes only per-point slots
(``out[order[k]]``, ``z[k]``, or a query's own row). ``Z`` is the serial sum
of ``z`` in sorted order. Results are therefore bitwise identical for any
``n_threads``.
"""

import numpy as np

from cython cimport floating
from cython.parallel cimport parallel, prange
from libc.math cimport isfinite, pow

from fasttsne._cython._typedefs cimport intp_t

cdef enum:
    # Longest Lagrange basis: stack arrays are this long, and equispaced
    # interpolation of higher degree is ill-conditioned anyway (Runge).
    _MAX_P = 12

#: Largest supported ``n_interpolation_points``: the one source of the limit.
MAX_INTERPOLATION_POINTS = _MAX_P


cdef struct _Axis:
    double lo  # lower edge of box 0, relative to the grid centre
    double inv_width  # 1 / box width
    intp_t n_boxes


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
    forwarding (profile in docs/fft.rst).
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


cdef void _spread_with_norms(
    const double *ys,
    intp_t start,
    intp_t stop,
    const _Axis *axes,
    intp_t d,
    int p,
    const double *inv_den,
    double *grid,
    intp_t plane,
    intp_t row_stride,
) noexcept nogil:
    """Add the charges ``(1, y, |y|^2)`` of the sorted points ``start:stop``.

    The frozen-embedding variant (see the module notes), any ``p``, 1-D or 2-D
    (``row_stride`` is 1 and the second axis absent in 1-D).
    """
    cdef double w0[_MAX_P]
    cdef double w1[_MAX_P]
    cdef double u0, u1, y0, y1 = 0.0, w, norm2
    cdef intp_t k, node
    cdef int a, c, n_cols = p if d == 2 else 1
    w1[0] = 1.0
    for k in range(start, stop):
        y0 = ys[d * k]
        node = _locate(y0, &axes[0], &u0) * p * row_stride
        _lagrange_weights(u0, p, inv_den, w0)
        if d == 2:
            y1 = ys[2 * k + 1]
            node += _locate(y1, &axes[1], &u1) * p
            _lagrange_weights(u1, p, inv_den, w1)
        norm2 = y0 * y0 + y1 * y1
        for a in range(p):
            for c in range(n_cols):
                w = w0[a] * w1[c]
                grid[node + c] += w
                grid[plane + node + c] += w * y0
                if d == 2:
                    grid[2 * plane + node + c] += w * y1
                grid[(d + 1) * plane + node + c] += w * norm2
            node += row_stride


cdef bint _inside(double y, const _Axis *axis) noexcept nogil:
    """Whether coordinate ``y`` (relative to the centre) lies on the grid."""
    cdef double s = (y - axis.lo) * axis.inv_width
    return s >= 0.0 and s <= axis.n_boxes


cdef bint _interpolate_one_frozen(
    double y0,
    double y1,
    intp_t d,
    const _Axis *axes,
    int p,
    const double *inv_den,
    const double *pot,
    intp_t plane,
    intp_t row_stride,
    double inv_dof,
    double *out,
    double *sum_w,
) noexcept nogil:
    """Repulsion and ``sum_j w`` at one centred query from the potentials.

    The query is ``(y0, y1)``, ``y1 = 0`` in 1-D. Returns False, writing
    nothing, when it is off the grid.
    """
    cdef double w0[_MAX_P]
    cdef double w1[_MAX_P]
    cdef double phi[4]
    cdef double u0, u1, w
    cdef intp_t node
    cdef int a, c, t, n_cols = p if d == 2 else 1
    if not _inside(y0, &axes[0]) or (d == 2 and not _inside(y1, &axes[1])):
        return False
    w1[0] = 1.0
    node = _locate(y0, &axes[0], &u0) * p * row_stride
    _lagrange_weights(u0, p, inv_den, w0)
    if d == 2:
        node += _locate(y1, &axes[1], &u1) * p
        _lagrange_weights(u1, p, inv_den, w1)
    for t in range(d + 2):
        phi[t] = 0.0
    for a in range(p):
        for c in range(n_cols):
            w = w0[a] * w1[c]
            for t in range(d + 2):
                phi[t] += w * pot[t * plane + node + c]
        node += row_stride
    # phi = (phi_1, phi_r[0], [phi_r[1],] phi_{|r|^2}).
    out[0] = y0 * phi[0] - phi[1]
    sum_w[0] = (
        (1.0 + inv_dof * (y0 * y0 + y1 * y1)) * phi[0]
        - 2.0 * inv_dof * (y0 * phi[1])
        + inv_dof * phi[d + 1]
    )
    if d == 2:
        out[1] = y1 * phi[0] - phi[2]
        sum_w[0] -= 2.0 * inv_dof * (y1 * phi[2])
    return True


# ---------------------------------------------------------------------------
# Entry points
# ---------------------------------------------------------------------------


cdef int _read_grid(
    grid, intp_t d, _Axis *axes, double *center, double *spacing,
    intp_t *n_nodes,
) except -1:
    """Fill the per-axis structs from a Python grid object (see module notes).

    Axis 1 of a 1-D grid is one node wide, so the 2-D layout covers both.
    """
    cdef intp_t k, p = grid.n_interpolation_points
    if not 1 <= p <= _MAX_P:
        raise ValueError(
            f"n_interpolation_points must be in [1, {_MAX_P}], got {p}."
        )
    if len(grid.n_boxes) != d:
        raise ValueError(f"The grid has {len(grid.n_boxes)} axes, the points {d}.")
    for k in range(d):
        center[k] = grid.center[k]
        axes[k].lo = grid.lower_edges[k]
        axes[k].inv_width = grid.inverse_widths[k]
        axes[k].n_boxes = grid.n_boxes[k]
        spacing[k] = grid.spacings[k]
        n_nodes[k] = axes[k].n_boxes * p
    if d == 1:
        axes[1].n_boxes = n_nodes[1] = 1
        spacing[1] = 0.0
    return 0


def bounding_box(const floating[:, ::1] Y):
    """Per-axis minimum and maximum of the points, checking they are finite.

    Parameters
    ----------
    Y : ndarray of shape (n_samples, n_components), float32 or float64
        C-contiguous points, ``n_components`` 1 or 2, at least one row.

    Returns
    -------
    lo, hi : tuple of float
        The bounds per axis.
    """
    cdef intp_t N = Y.shape[0], d = Y.shape[1], i, k
    cdef const floating *y_ptr
    cdef double lo[2]
    cdef double hi[2]
    cdef double v
    cdef bint finite = True
    if d not in (1, 2):
        raise ValueError(f"Y must have 1 or 2 columns, got {d}.")
    if N < 1:
        raise ValueError("Y must have at least one row.")
    y_ptr = &Y[0, 0]
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
    return tuple(lo[k] for k in range(d)), tuple(hi[k] for k in range(d))


def sort_into_boxes(const floating[:, ::1] Y, grid):
    """Stable counting sort of the points by box, row-major over the grid.

    Boxes come from the centred coordinates exactly as the workers recompute
    them, so a point sorted into a box row spreads onto that row's nodes only.
    Serial, O(N + boxes).

    Parameters
    ----------
    Y : ndarray of shape (n_samples, n_components), float32 or float64
        C-contiguous points; they need not lie on the grid (off-grid
        coordinates go to the nearest box).
    grid : InterpolationGrid
        The geometry (``fasttsne.tsne._gradients._interpolation``).

    Returns
    -------
    order : ndarray of shape (n_samples,), intp
        ``order[k]`` is the row of ``Y`` of sorted point ``k``.
    offsets : ndarray of shape (n_box_rows + 1,), intp
        Box row ``r`` holds the sorted points ``offsets[r]:offsets[r + 1]``.
    """
    cdef intp_t N = Y.shape[0], d = Y.shape[1], i, k
    cdef _Axis axes[2]
    cdef double center[2]
    cdef double spacing[2]
    cdef intp_t n_nodes[2]
    _read_grid(grid, d, axes, center, spacing, n_nodes)
    cdef intp_t n_rows = axes[0].n_boxes, n_cols = axes[1].n_boxes
    boxes_arr = np.empty(N, dtype=np.intp)
    order_arr = np.empty(N, dtype=np.intp)
    starts_arr = np.zeros(n_rows * n_cols + 1, dtype=np.intp)
    if N == 0:
        return order_arr, np.zeros(n_rows + 1, dtype=np.intp)
    cdef const floating *y_ptr = &Y[0, 0]
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
    return order_arr, starts_arr[::n_cols].copy()


def spread_charges(
    const floating[:, ::1] Y,
    const intp_t[::1] order,
    const intp_t[::1] offsets,
    grid,
    double dof,
    bint squared_norms,
    int n_threads,
):
    """Spread the points' charges onto the grid and tabulate the kernel.

    One parallel region: per box row, gather the row's centred coordinates in
    box order and spread their charges, whose nodes belong to that row alone;
    then the kernel ``t^-(dof + 1)`` on every node offset.

    Parameters
    ----------
    Y : ndarray of shape (n_samples, n_components), float32 or float64
        C-contiguous points.
    order, offsets : ndarray of intp
        From :func:`sort_into_boxes` with the same ``Y`` and ``grid``.
    grid : InterpolationGrid
        The geometry.
    dof : float
        Degrees of freedom of the kernel, > 0.
    squared_norms : bool
        Also spread ``|y|^2`` (frozen embeddings; see the module notes).
    n_threads : int
        OpenMP threads; the result does not depend on it.

    Returns
    -------
    ys : ndarray of shape (n_samples, n_components), float64
        The centred coordinates in sorted order.
    charges : ndarray of shape (n_charges, *grid_shape), float64
        Charges ``1``, each coordinate, and ``|y|^2`` if asked, per node.
    kernel : ndarray of shape (2 n_0 - 1, 2 n_1 - 1), float64
        The kernel at node offset ``(m_0, m_1)`` at index
        ``(m_0 + n_0 - 1, m_1 + n_1 - 1)``; ``n_1 = 1`` in 1-D.
    """
    cdef intp_t N = Y.shape[0], d = Y.shape[1], r
    cdef _Axis axes[2]
    cdef double center[2]
    cdef double spacing[2]
    cdef intp_t n_nodes[2]
    _read_grid(grid, d, axes, center, spacing, n_nodes)
    cdef int p = grid.n_interpolation_points
    cdef intp_t n0 = n_nodes[0], n1 = n_nodes[1], n_rows = axes[0].n_boxes
    if order.shape[0] != N or offsets.shape[0] != n_rows + 1:
        raise ValueError("order and offsets do not come from this Y and grid.")
    if not dof > 0:
        raise ValueError(f"dof must be > 0, got {dof}.")
    if n_threads < 1:
        raise ValueError(f"n_threads must be >= 1, got {n_threads}.")
    grid_shape = (int(n0), int(n1))[:d]
    cdef double inv_den[_MAX_P]
    _inverse_denominators(p, inv_den)
    cdef intp_t n_charges = d + 2 if squared_norms else d + 1
    ys_arr = np.empty((N, d), dtype=np.float64)
    charges_arr = np.zeros((n_charges,) + grid_shape, dtype=np.float64)
    kernel_arr = np.empty((2 * n0 - 1, 2 * n1 - 1), dtype=np.float64)
    cdef double[:, ::1] kernel_view = kernel_arr
    cdef double *kernel_ptr = &kernel_view[0, 0]
    cdef double[::1] charges_flat = charges_arr.reshape(-1)
    cdef double *charges = &charges_flat[0]
    cdef intp_t plane = n0 * n1, m0
    cdef const floating *y_ptr = NULL
    cdef double *ys = NULL
    cdef double[:, ::1] ys_view
    if N > 0:
        y_ptr = &Y[0, 0]
        ys_view = ys_arr
        ys = &ys_view[0, 0]
    with nogil, parallel(num_threads=n_threads):
        for r in prange(n_rows, schedule="dynamic"):
            if offsets[r] == offsets[r + 1]:
                continue
            _gather(y_ptr, &order[0], offsets[r], offsets[r + 1], d, center, ys)
            if squared_norms:
                _spread_with_norms(
                    ys, offsets[r], offsets[r + 1], axes, d, p, inv_den, charges,
                    plane, n1,
                )
            elif d == 1:
                _spread_1d(
                    ys, offsets[r], offsets[r + 1], &axes[0], p, inv_den, charges,
                    plane,
                )
            elif p == 3:
                _spread_2d_p3(
                    ys, offsets[r], offsets[r + 1], &axes[0], &axes[1], charges,
                    plane, n1,
                )
            else:
                _spread_2d(
                    ys, offsets[r], offsets[r + 1], &axes[0], &axes[1], p,
                    inv_den, charges, plane, n1,
                )
        for m0 in prange(n0, schedule="static"):
            _kernel_row(kernel_ptr, m0, spacing[0], n0, spacing[1], n1, dof)
    return ys_arr, charges_arr, kernel_arr


def interpolate_repulsion(
    const double[:, ::1] ys,
    const intp_t[::1] order,
    const intp_t[::1] offsets,
    grid,
    const double[:, :, :] potentials,
    const double[::1] self_table,
    double dof,
    floating[:, ::1] out,
    int n_threads,
):
    """Interpolate the potentials back to the points: repulsion and ``Z``.

    One parallel region over box rows; ``Z`` is then summed serially in the
    sorted order.

    Parameters
    ----------
    ys, order, offsets : ndarray
        From :func:`sort_into_boxes` and :func:`spread_charges`.
    grid : InterpolationGrid
        The geometry.
    potentials : ndarray of shape (n_components + 1, n_0, n_1), float64
        The kernel sums of the charges ``(1, y)`` on the nodes (``n_1 = 1``
        in 1-D); any strides, with contiguous rows.
    self_table : ndarray of shape (p ** n_components,), float64
        ``c_a c_b K(a h_0, b h_1)`` for the in-box lags ``a, b < p``, with
        ``c_0 = 1`` and ``c_a = 2`` otherwise.
    dof : float
        Degrees of freedom of the kernel, > 0.
    out : ndarray of shape (n_samples, n_components), float32 or float64
        Receives ``sum_{j != i} (w_ij / t_ij) (y_i - y_j)``, in input order.
    n_threads : int
        OpenMP threads; the result does not depend on it.

    Returns
    -------
    Z : float
        ``sum_{i != j} w_ij``.
    """
    cdef intp_t N = ys.shape[0], d = ys.shape[1], r, k
    cdef _Axis axes[2]
    cdef double center[2]
    cdef double spacing[2]
    cdef intp_t n_nodes[2]
    _read_grid(grid, d, axes, center, spacing, n_nodes)
    cdef int p = grid.n_interpolation_points
    cdef intp_t n_rows = axes[0].n_boxes
    if out.shape[0] != N or out.shape[1] != d:
        raise ValueError(
            f"out has shape {(out.shape[0], out.shape[1])}, expected {(N, d)}."
        )
    if order.shape[0] != N or offsets.shape[0] != n_rows + 1:
        raise ValueError("order and offsets do not come from these points and grid.")
    if (
        potentials.shape[0] != d + 1 or potentials.shape[1] != n_nodes[0]
        or potentials.shape[2] != n_nodes[1]
        or potentials.strides[2] != sizeof(double)
    ):
        raise ValueError("potentials do not match the grid.")
    if self_table.shape[0] != p ** d:
        raise ValueError(f"self_table must have {p ** d} entries.")
    if not dof > 0:
        raise ValueError(f"dof must be > 0, got {dof}.")
    if n_threads < 1:
        raise ValueError(f"n_threads must be >= 1, got {n_threads}.")
    if N == 0:
        return 0.0
    cdef double inv_den[_MAX_P]
    _inverse_denominators(p, inv_den)
    z_arr = np.empty(N, dtype=np.float64)
    cdef double[::1] z = z_arr
    cdef const double *ys_ptr = &ys[0, 0]
    cdef const double *pot = &potentials[0, 0, 0]
    cdef intp_t pot_plane = potentials.strides[0] // sizeof(double)
    cdef intp_t pot_row = potentials.strides[1] // sizeof(double)
    cdef double inv_dof = 1.0 / dof
    cdef floating *out_ptr = &out[0, 0]
    with nogil:
        for r in prange(n_rows, num_threads=n_threads, schedule="dynamic"):
            if offsets[r] == offsets[r + 1]:
                continue
            if d == 1:
                _interpolate_1d(
                    ys_ptr, &order[0], offsets[r], offsets[r + 1], &axes[0], p,
                    inv_den, pot, pot_plane, &self_table[0], inv_dof, out_ptr,
                    &z[0],
                )
            elif p == 3:
                _interpolate_2d_p3(
                    ys_ptr, &order[0], offsets[r], offsets[r + 1], &axes[0],
                    &axes[1], pot, pot_plane, pot_row, &self_table[0], inv_dof,
                    out_ptr, &z[0],
                )
            else:
                _interpolate_2d(
                    ys_ptr, &order[0], offsets[r], offsets[r + 1], &axes[0],
                    &axes[1], p, inv_den, pot, pot_plane, pot_row, &self_table[0],
                    inv_dof, out_ptr, &z[0],
                )

    # Z in a fixed (sorted) order, whatever the thread count.
    cdef double Z = 0.0
    with nogil:
        for k in range(N):
            Z += z[k]
    return Z


def interpolate_frozen(
    const floating[:, ::1] Y_query,
    grid,
    const double[:, :, :] potentials,
    double dof,
    double[:, ::1] out,
    double[::1] sum_w,
    int n_threads,
):
    """Repulsion of query points from a frozen embedding, from its potentials.

    Each query is interpolated on its own (so its result depends on nothing
    but itself and the frozen potentials), in parallel over queries.

    Parameters
    ----------
    Y_query : ndarray of shape (n_queries, n_components), float32 or float64
        C-contiguous query points, in the frozen embedding's coordinates.
    grid : InterpolationGrid
        The geometry the frozen charges were spread on.
    potentials : ndarray of shape (n_components + 2, n_0, n_1), float64
        The kernel sums of the frozen charges ``(1, r, |r|^2)`` on the nodes
        (:func:`spread_charges` with ``squared_norms``); contiguous rows.
    dof : float
        Degrees of freedom of the kernel, > 0.
    out : ndarray of shape (n_queries, n_components), float64
        Receives ``sum_j (w_ij / t_ij) (x_i - r_j)`` for the queries on the
        grid; other rows are left untouched.
    sum_w : ndarray of shape (n_queries,), float64
        Receives ``sum_j w_ij`` likewise.
    n_threads : int
        OpenMP threads; the result does not depend on it.

    Returns
    -------
    on_grid : ndarray of shape (n_queries,), bool
        Which queries lay on the grid (and were written).
    """
    cdef intp_t m = Y_query.shape[0], d = Y_query.shape[1], i
    cdef _Axis axes[2]
    cdef double center[2]
    cdef double spacing[2]
    cdef intp_t n_nodes[2]
    _read_grid(grid, d, axes, center, spacing, n_nodes)
    cdef int p = grid.n_interpolation_points
    if out.shape[0] != m or out.shape[1] != d or sum_w.shape[0] != m:
        raise ValueError(
            f"out has shape {(out.shape[0], out.shape[1])} and sum_w "
            f"{sum_w.shape[0]} entries; expected {(m, d)} and {m}."
        )
    if (
        potentials.shape[0] != d + 2 or potentials.shape[1] != n_nodes[0]
        or potentials.shape[2] != n_nodes[1]
        or potentials.strides[2] != sizeof(double)
    ):
        raise ValueError("potentials do not match the grid.")
    if not dof > 0:
        raise ValueError(f"dof must be > 0, got {dof}.")
    if n_threads < 1:
        raise ValueError(f"n_threads must be >= 1, got {n_threads}.")
    on_grid_arr = np.zeros(m, dtype=np.uint8)
    if m == 0:
        return on_grid_arr.astype(bool)
    cdef unsigned char[::1] on_grid = on_grid_arr
    cdef double inv_den[_MAX_P]
    _inverse_denominators(p, inv_den)
    cdef const double *pot = &potentials[0, 0, 0]
    cdef intp_t pot_plane = potentials.strides[0] // sizeof(double)
    cdef intp_t pot_row = potentials.strides[1] // sizeof(double)
    cdef double inv_dof = 1.0 / dof
    with nogil:
        for i in prange(
            m, num_threads=n_threads, schedule="dynamic", chunksize=64
        ):
            on_grid[i] = _interpolate_one_frozen(
                Y_query[i, 0] - center[0],
                Y_query[i, 1] - center[1] if d == 2 else 0.0,
                d, axes, p, inv_den, pot, pot_plane, pot_row, inv_dof,
                &out[i, 0], &sum_w[i],
            )
    return on_grid_arr.astype(bool)
