"""Triton kernels of the t-SNE device path: ``@triton.jit`` code only.

Every kernel is written flash-attention style: a program owns a block of
output rows (points, boxes or queries), streams the data it needs through
registers, keeps per-row running sums, and writes each of its rows once. No
kernel uses atomics, so results do not depend on scheduling; global sums
(``Z``, the KL divergence) are left as per-row slots that
:func:`_partial_sum_kernel` reduces in a fixed order.

Shapes, owners and formulas (``t_ij = 1 + |y_i - y_j|^2 / dof``,
``w_ij = t_ij^-dof``):

* :func:`_exact_repulsion_kernel`: per row ``sum_j w_ij`` and
  ``sum_j (w_ij / t_ij) (y_i - y_j)``, over all columns (``j != i`` in a fit);
* :func:`_attraction_kernel`: per row of the CSR matrix P,
  ``a sum_j p_ij (y_i - y_j) / t_ij`` and ``sum_j p_ij log(p_ij / w_ij)``;
* :func:`_box_index_kernel`, :func:`_spread_kernel`,
  :func:`_interpolate_kernel`: FIt-SNE's grid (the charges ``(1, y)``, the
  interpolated self interaction and ``Z``'s share per point are those of
  ``fasttsne/_cython/_interp.pyx``, whose notes derive them);
* :func:`_knn_kernel`: a running top-k of (distance, index) keys per query.

Tile sizes are ``tl.constexpr`` arguments chosen by ``_launchers.py``; every
tile dimension is a power of two, and the 1-3 embedding components are
handled with elementwise math (no ``tl.dot`` with K < 8). The kernels must
also run under ``TRITON_INTERPRET=1``, which the tests use on the CPU.
"""

# Triton's conventions, which pylint's defaults reject: UPPER_CASE
# tl.constexpr arguments (tiles, flags), every pointer, size and tile passed
# positionally, many tile-shaped locals, and comparisons spelt out for
# tl.static_assert.
# pylint: disable=invalid-name,too-many-arguments,too-many-positional-arguments
# pylint: disable=too-many-locals,chained-comparison,consider-using-in

import triton
import triton.language as tl


@triton.jit
def _exact_repulsion_kernel(
    rows_ptr,  # (n_rows, N_DIMS) points i, C order
    cols_ptr,  # (n_cols, N_DIMS) points j, C order (rows_ptr itself in a fit)
    force_ptr,  # (n_rows, N_DIMS) out: sum_j (w_ij / t_ij) (y_i - y_j)
    sum_w_ptr,  # (n_rows,) out: sum_j w_ij
    n_rows,  # number of points i
    n_cols,  # number of points j
    params_ptr,  # (1,) float64: dof, the degrees of freedom of the kernel (> 0)
    N_DIMS: tl.constexpr,  # embedding components, 1 to 3
    SKIP_SELF: tl.constexpr,  # leave out j == i (a fit: rows and columns coincide)
    UNIT_DOF: tl.constexpr,  # dof == 1
    BLOCK_M: tl.constexpr,  # rows per program
    BLOCK_N: tl.constexpr,  # columns per step of the stream
):
    """Exact t-SNE repulsion, one block of rows per program, no N x N matrix."""
    tl.static_assert(N_DIMS >= 1 and N_DIMS <= 3)
    tl.static_assert(BLOCK_M >= 1 and BLOCK_N >= 1)
    rows = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    row_ok = rows < n_rows
    y0 = tl.load(rows_ptr + rows * N_DIMS, mask=row_ok, other=0.0)
    sum_w = tl.zeros([BLOCK_M], dtype=y0.dtype)
    f0 = tl.zeros([BLOCK_M], dtype=y0.dtype)
    if N_DIMS >= 2:
        y1 = tl.load(rows_ptr + rows * N_DIMS + 1, mask=row_ok, other=0.0)
        f1 = tl.zeros([BLOCK_M], dtype=y0.dtype)
    if N_DIMS == 3:
        y2 = tl.load(rows_ptr + rows * N_DIMS + 2, mask=row_ok, other=0.0)
        f2 = tl.zeros([BLOCK_M], dtype=y0.dtype)
    dof = tl.load(params_ptr).to(y0.dtype)
    inv_dof = 1.0 / dof
    # Memory traffic: each step reads BLOCK_N * N_DIMS coordinates (shared by
    # the BLOCK_M rows of the program) and does BLOCK_M * BLOCK_N pair
    # evaluations in registers; only per-row sums survive the step.
    for start in range(0, n_cols, BLOCK_N):
        cols = start + tl.arange(0, BLOCK_N)
        col_ok = cols < n_cols
        d0 = y0[:, None] - tl.load(cols_ptr + cols * N_DIMS, mask=col_ok, other=0.0)
        r2 = d0 * d0
        if N_DIMS >= 2:
            d1 = y1[:, None] - tl.load(
                cols_ptr + cols * N_DIMS + 1, mask=col_ok, other=0.0
            )
            r2 += d1 * d1
        if N_DIMS == 3:
            d2 = y2[:, None] - tl.load(
                cols_ptr + cols * N_DIMS + 2, mask=col_ok, other=0.0
            )
            r2 += d2 * d2
        t = 1.0 + r2 * inv_dof
        # The division of 2 ulp (div.full.f32): the exact one costs ~8 times as
        # many instructions (in float64 fdiv is the IEEE division anyway).
        inv_t = tl.fdiv(tl.full(t.shape, 1.0, t.dtype), t, ieee_rounding=False)
        if UNIT_DOF:
            w = inv_t
        else:
            w = tl.exp2(-dof * tl.log2(t))
        w_over_t = w * inv_t
        keep = col_ok[None, :]
        if SKIP_SELF:
            keep = keep & (rows[:, None] != cols[None, :])
        w = tl.where(keep, w, 0.0)
        w_over_t = tl.where(keep, w_over_t, 0.0)
        sum_w += tl.sum(w, axis=1)
        # Differences, not y_i sum w - sum w y_j: nothing cancels.
        f0 += tl.sum(w_over_t * d0, axis=1)
        if N_DIMS >= 2:
            f1 += tl.sum(w_over_t * d1, axis=1)
        if N_DIMS == 3:
            f2 += tl.sum(w_over_t * d2, axis=1)
    tl.store(sum_w_ptr + rows, sum_w, mask=row_ok)
    tl.store(force_ptr + rows * N_DIMS, f0, mask=row_ok)
    if N_DIMS >= 2:
        tl.store(force_ptr + rows * N_DIMS + 1, f1, mask=row_ok)
    if N_DIMS == 3:
        tl.store(force_ptr + rows * N_DIMS + 2, f2, mask=row_ok)


@triton.jit
def _attraction_kernel(
    indptr_ptr,  # (n_rows + 1,) CSR row starts of P
    indices_ptr,  # (nnz,) CSR column indices of P
    p_ptr,  # (nnz,) CSR values of P, float32 or float64, read in the points' dtype
    rows_ptr,  # (n_rows, N_DIMS) points i, C order
    cols_ptr,  # (n_cols, N_DIMS) points j, C order (rows_ptr itself in a fit)
    force_ptr,  # (n_rows, N_DIMS) out: a sum_j p_ij (y_i - y_j) / t_ij
    kl_ptr,  # (n_rows,) out if COMPUTE_ERROR: sum_j p_ij log(p_ij / w_ij)
    n_rows,  # rows of P
    params_ptr,  # (2,) float64: the exaggeration a, and dof (> 0)
    N_DIMS: tl.constexpr,  # embedding components, 1 to 3
    COMPUTE_ERROR: tl.constexpr,  # also write the rows' KL terms
    BLOCK_M: tl.constexpr,  # rows per program
    BLOCK_K: tl.constexpr,  # stored entries per row and step
):
    """Attraction over the stored entries of P, a block of rows per program.

    The rows of a block have different lengths: each step gathers a
    (BLOCK_M, BLOCK_K) tile of their next entries, masked past each row's end,
    until the longest row of the block is done.
    """
    tl.static_assert(N_DIMS >= 1 and N_DIMS <= 3)
    rows = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    row_ok = rows < n_rows
    starts = tl.load(indptr_ptr + rows, mask=row_ok, other=0)
    lengths = tl.load(indptr_ptr + rows + 1, mask=row_ok, other=0) - starts
    y0 = tl.load(rows_ptr + rows * N_DIMS, mask=row_ok, other=0.0)
    f0 = tl.zeros([BLOCK_M], dtype=y0.dtype)
    kl = tl.zeros([BLOCK_M], dtype=y0.dtype)
    if N_DIMS >= 2:
        y1 = tl.load(rows_ptr + rows * N_DIMS + 1, mask=row_ok, other=0.0)
        f1 = tl.zeros([BLOCK_M], dtype=y0.dtype)
    if N_DIMS == 3:
        y2 = tl.load(rows_ptr + rows * N_DIMS + 2, mask=row_ok, other=0.0)
        f2 = tl.zeros([BLOCK_M], dtype=y0.dtype)
    exaggeration = tl.load(params_ptr).to(y0.dtype)
    dof = tl.load(params_ptr + 1).to(y0.dtype)
    inv_dof = 1.0 / dof
    longest = tl.max(lengths, axis=0)
    # Memory traffic: each step reads BLOCK_M * BLOCK_K entries of P (index
    # and value) and gathers as many points j; P is read once per call.
    for k in range(0, longest, BLOCK_K):
        offsets = k + tl.arange(0, BLOCK_K)
        ok = offsets[None, :] < lengths[:, None]
        entries = starts[:, None] + offsets[None, :]
        j = tl.load(indices_ptr + entries, mask=ok, other=0).to(tl.int64)
        p = tl.load(p_ptr + entries, mask=ok, other=0.0).to(y0.dtype)
        d0 = y0[:, None] - tl.load(cols_ptr + j * N_DIMS, mask=ok, other=0.0)
        r2 = d0 * d0
        if N_DIMS >= 2:
            d1 = y1[:, None] - tl.load(cols_ptr + j * N_DIMS + 1, mask=ok, other=0.0)
            r2 += d1 * d1
        if N_DIMS == 3:
            d2 = y2[:, None] - tl.load(cols_ptr + j * N_DIMS + 2, mask=ok, other=0.0)
            r2 += d2 * d2
        t = 1.0 + r2 * inv_dof
        # 0 on masked entries (p = 0); the division as in the repulsion.
        coefficient = tl.fdiv(p, t, ieee_rounding=False)
        f0 += tl.sum(coefficient * d0, axis=1)
        if N_DIMS >= 2:
            f1 += tl.sum(coefficient * d1, axis=1)
        if N_DIMS == 3:
            f2 += tl.sum(coefficient * d2, axis=1)
        if COMPUTE_ERROR:
            # p log(p / w) = p (log p + dof log t); stored zeros add nothing.
            positive = ok & (p > 0)
            safe_p = tl.where(positive, p, 1.0)
            term = p * (tl.log(safe_p) + dof * tl.log(t))
            kl += tl.sum(tl.where(positive, term, 0.0), axis=1)
    tl.store(force_ptr + rows * N_DIMS, exaggeration * f0, mask=row_ok)
    if N_DIMS >= 2:
        tl.store(force_ptr + rows * N_DIMS + 1, exaggeration * f1, mask=row_ok)
    if N_DIMS == 3:
        tl.store(force_ptr + rows * N_DIMS + 2, exaggeration * f2, mask=row_ok)
    if COMPUTE_ERROR:
        tl.store(kl_ptr + rows, kl, mask=row_ok)


@triton.jit
def _partial_sum_kernel(
    values_ptr,  # (n_values,) any float dtype
    sums_ptr,  # (cdiv(n_values, BLOCK * N_STEPS),) float64 out
    n_values,  # number of values
    BLOCK: tl.constexpr,  # values per step
    N_STEPS: tl.constexpr,  # steps per program
):
    """Float64 sums of consecutive chunks, each in a fixed order.

    Applied until one value is left, this reduces per-point slots to a global
    sum whose rounding depends on nothing but ``n_values`` and the tiles.
    """
    chunk = tl.program_id(0).to(tl.int64) * (BLOCK * N_STEPS)
    offsets = tl.arange(0, BLOCK)
    total = tl.zeros([BLOCK], dtype=tl.float64)
    # Memory traffic: one contiguous read of BLOCK * N_STEPS values.
    for step in range(N_STEPS):
        index = chunk + step * BLOCK + offsets
        total += tl.load(values_ptr + index, mask=index < n_values, other=0.0).to(
            tl.float64
        )
    tl.store(sums_ptr + tl.program_id(0), tl.sum(total, axis=0))


@triton.jit
def _lagrange(x, node, P: tl.constexpr):
    """Lagrange basis ``L_node`` of the ``P`` nodes of a box at ``x``.

    ``x`` is the position in node spacings from node 0 (``P u - 1/2`` for the
    position ``u`` in box widths; node m sits at ``(m + 1/2) / P``), so
    ``L_a(u) = prod_{m != a} (x - m) / (a - m)``. ``x`` and ``node`` broadcast.
    """
    numerator = tl.where(node != 0, x, 1.0)
    denominator = tl.where(node != 0, node, 1).to(x.dtype)
    for m in tl.static_range(1, P):
        take = node != m
        numerator = numerator * tl.where(take, x - m, 1.0)
        denominator = denominator * tl.where(take, node - m, 1).to(x.dtype)
    return numerator / denominator


# The grid kernels read its geometry from one float64 array ``geometry_ptr``:
# ``(center0, center1, lo0, lo1, inv_width0, inv_width1, 1 / dof, 0)``, the
# grid centre, the lower edge of box 0 relative to it and 1 / box width, per
# axis (axis 1 unused in 1-D). Coordinates are centred, ``y = x - center``,
# and ``s = (y - lo) * inv_width`` is the position in box widths, whose
# integer part is the box: the operations of ``_interp.pyx``, in its order.


@triton.jit
def _box_index_kernel(
    points_ptr,  # (n_points, N_DIMS) float64, C order
    boxes_ptr,  # (n_points,) int32 out: row-major box number
    n_points,  # number of points
    n_boxes0,  # boxes along axis 0
    n_boxes1,  # boxes along axis 1 (1 in 1-D)
    geometry_ptr,  # (8,) float64: the grid, see above
    N_DIMS: tl.constexpr,  # 1 or 2
    BLOCK: tl.constexpr,  # points per program
):
    """The box of every point, clamped to the grid like ``_interp.pyx``'s."""
    index = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    ok = index < n_points
    y0 = tl.load(points_ptr + index * N_DIMS, mask=ok, other=0.0) - tl.load(
        geometry_ptr
    )
    s0 = (y0 - tl.load(geometry_ptr + 2)) * tl.load(geometry_ptr + 4)
    box = tl.minimum(tl.maximum(s0.to(tl.int32), 0), n_boxes0 - 1) * n_boxes1
    if N_DIMS == 2:
        y1 = tl.load(points_ptr + index * 2 + 1, mask=ok, other=0.0) - tl.load(
            geometry_ptr + 1
        )
        s1 = (y1 - tl.load(geometry_ptr + 3)) * tl.load(geometry_ptr + 5)
        box += tl.minimum(tl.maximum(s1.to(tl.int32), 0), n_boxes1 - 1)
    tl.store(boxes_ptr + index, box, mask=ok)


@triton.jit
def _spread_kernel(
    points_ptr,  # (n_points, N_DIMS) float64, sorted by box
    box_starts_ptr,  # (n_boxes + 1,) int32: box b holds points start[b]:start[b+1]
    charges_ptr,  # (N_DIMS + 1, n_nodes0, n_nodes1) float64 out: charges (1, y)
    n_boxes,  # boxes in all (n_boxes0 * n_boxes1)
    n_boxes1,  # boxes along axis 1 (1 in 1-D)
    n_nodes1,  # nodes along axis 1 (1 in 1-D): the row stride of a charge grid
    plane,  # n_nodes0 * n_nodes1: the stride between charge grids
    geometry_ptr,  # (8,) float64: the grid, see above
    N_DIMS: tl.constexpr,  # 1 or 2
    P: tl.constexpr,  # interpolation nodes per box and axis
    NODES: tl.constexpr,  # P ** N_DIMS rounded up to a power of two
    BLOCK_B: tl.constexpr,  # boxes per program
    BLOCK_P: tl.constexpr,  # points per box and step
):
    """Spreading as a gather: a program owns the nodes of a block of boxes.

    Box b owns its ``P ** N_DIMS`` nodes alone, so each node's charges are
    summed by one program, over the box's points in sorted order: no atomics,
    a deterministic result, and every node written (zeros for empty boxes).
    The boxes of a block hold different numbers of points: each step takes
    the next BLOCK_P points of every box, masked past each box's end.
    """
    tl.static_assert(N_DIMS == 1 or N_DIMS == 2)
    tl.static_assert(NODES >= P)
    boxes = tl.program_id(0) * BLOCK_B + tl.arange(0, BLOCK_B)
    box_ok = boxes < n_boxes
    starts = tl.load(box_starts_ptr + boxes, mask=box_ok, other=0)
    counts = tl.load(box_starts_ptr + boxes + 1, mask=box_ok, other=0) - starts
    box0 = boxes // n_boxes1
    box1 = boxes % n_boxes1
    center0 = tl.load(geometry_ptr)
    center1 = tl.load(geometry_ptr + 1)
    lo0 = tl.load(geometry_ptr + 2)
    lo1 = tl.load(geometry_ptr + 3)
    inv_width0 = tl.load(geometry_ptr + 4)
    inv_width1 = tl.load(geometry_ptr + 5)
    # Node n of a box is (a, c) = (n // P, n % P) in 2-D, (n, 0) in 1-D.
    node = tl.arange(0, NODES)
    if N_DIMS == 2:
        node_a = node // P
        node_c = node % P
        node_ok = node < P * P
    else:
        node_a = node
        node_c = node * 0
        node_ok = node < P
    charge0 = tl.zeros([BLOCK_B, NODES], dtype=tl.float64)
    charge1 = tl.zeros([BLOCK_B, NODES], dtype=tl.float64)
    if N_DIMS == 2:
        charge2 = tl.zeros([BLOCK_B, NODES], dtype=tl.float64)
    fullest = tl.max(counts, axis=0)
    # Memory traffic: each step reads BLOCK_B * BLOCK_P sorted points (runs of
    # consecutive ones); the charges stay in registers until the one store.
    for k in range(0, fullest, BLOCK_P):
        offsets = k + tl.arange(0, BLOCK_P)
        ok = offsets[None, :] < counts[:, None]
        points = starts[:, None] + offsets[None, :]
        y0 = tl.load(points_ptr + points * N_DIMS, mask=ok, other=0.0) - center0
        x0 = ((y0 - lo0) * inv_width0 - box0[:, None]) * P - 0.5
        weight = _lagrange(x0[:, :, None], node_a[None, None, :], P)
        if N_DIMS == 2:
            y1 = tl.load(points_ptr + points * 2 + 1, mask=ok, other=0.0) - center1
            x1 = ((y1 - lo1) * inv_width1 - box1[:, None]) * P - 0.5
            weight = weight * _lagrange(x1[:, :, None], node_c[None, None, :], P)
        weight = tl.where(ok[:, :, None], weight, 0.0)
        charge0 += tl.sum(weight, axis=1)
        charge1 += tl.sum(weight * y0[:, :, None], axis=1)
        if N_DIMS == 2:
            charge2 += tl.sum(weight * y1[:, :, None], axis=1)
    rows = box0[:, None] * P + node_a[None, :]
    columns = box1[:, None] * P + node_c[None, :]
    target = charges_ptr + rows * n_nodes1 + columns
    store_ok = box_ok[:, None] & node_ok[None, :]
    tl.store(target, charge0, mask=store_ok)
    tl.store(target + plane, charge1, mask=store_ok)
    if N_DIMS == 2:
        tl.store(target + 2 * plane, charge2, mask=store_ok)


@triton.jit
def _interpolate_kernel(
    points_ptr,  # (n_points, N_DIMS) float64, sorted by box
    boxes_ptr,  # (n_points,) int32: box of each sorted point
    order_ptr,  # (n_points,) int64: input row of each sorted point
    potentials_ptr,  # (N_DIMS + 1, n_nodes0, n_nodes1) float64: sums on the nodes
    self_table_ptr,  # (P, P_PAD, P_PAD) float64: self-interaction table, see below
    force_ptr,  # (n_points, N_DIMS) float64 out, input order: the repulsion
    z_ptr,  # (n_points,) float64 out, sorted order: each point's share of Z
    n_points,  # number of points
    n_boxes1,  # boxes along axis 1 (1 in 1-D)
    n_nodes1,  # nodes along axis 1 (1 in 1-D)
    plane,  # n_nodes0 * n_nodes1
    geometry_ptr,  # (8,) float64: the grid and 1 / dof, see above
    N_DIMS: tl.constexpr,  # 1 or 2
    P: tl.constexpr,  # interpolation nodes per box and axis
    P_PAD: tl.constexpr,  # P rounded up to a power of two
    BLOCK: tl.constexpr,  # points per program
):
    """Potentials back at the points: the repulsion and the points' share of Z.

    With centred ``y``, ``out = y phi_1 - phi_y`` and ``z = (1 + 2 |y|^2 / dof)
    phi_1 - (2 / dof) y . phi_y - K~(y, y)``. The interpolated self interaction
    ``K~(y, y) = sum_{l0} acf0[l0] sum_{a, b} w1[a] w1[b] T[l0, a, b]`` takes
    the one-sided autocorrelations ``acf0`` of the axis-0 weights and the table
    ``T[l0, a, b] = c_l0 c_(a-b) K(l0 h0, (a - b) h1)`` for ``a >= b`` (0
    otherwise; ``c_0 = 1``, else 2); in 1-D the axis-1 weights are ``(1, 0..)``
    and ``T[l0, 0, 0] = c_l0 K(l0 h0)``.
    """
    tl.static_assert(N_DIMS == 1 or N_DIMS == 2)
    tl.static_assert(P_PAD >= P)
    index = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    ok = index < n_points
    inv_dof = tl.load(geometry_ptr + 6)
    box = tl.load(boxes_ptr + index, mask=ok, other=0)
    box0 = box // n_boxes1
    box1 = box % n_boxes1
    lag = tl.arange(0, P_PAD)
    lag_ok = lag < P
    y0 = tl.load(points_ptr + index * N_DIMS, mask=ok, other=0.0) - tl.load(
        geometry_ptr
    )
    x0 = ((y0 - tl.load(geometry_ptr + 2)) * tl.load(geometry_ptr + 4) - box0) * P
    w0 = tl.where(lag_ok[None, :], _lagrange(x0[:, None] - 0.5, lag[None, :], P), 0.0)
    # Memory traffic: P ** N_DIMS potentials per charge and point, from the
    # few boxes that a block of sorted points lies in.
    if N_DIMS == 2:
        y1 = tl.load(points_ptr + index * 2 + 1, mask=ok, other=0.0) - tl.load(
            geometry_ptr + 1
        )
        x1 = ((y1 - tl.load(geometry_ptr + 3)) * tl.load(geometry_ptr + 5) - box1) * P
        w1 = tl.where(
            lag_ok[None, :], _lagrange(x1[:, None] - 0.5, lag[None, :], P), 0.0
        )
        weight = w0[:, :, None] * w1[:, None, :]
        rows = box0[:, None, None] * P + lag[None, :, None]
        columns = box1[:, None, None] * P + lag[None, None, :]
        source = potentials_ptr + rows * n_nodes1 + columns
        gather_ok = ok[:, None, None] & lag_ok[None, :, None] & lag_ok[None, None, :]
        phi0 = tl.sum(tl.sum(weight * tl.load(source, gather_ok, 0.0), 2), 1)
        phi1 = tl.sum(tl.sum(weight * tl.load(source + plane, gather_ok, 0.0), 2), 1)
        phi2 = tl.sum(
            tl.sum(weight * tl.load(source + 2 * plane, gather_ok, 0.0), 2), 1
        )
    else:
        w1 = tl.where(lag[None, :] == 0, 1.0, 0.0) + 0.0 * y0[:, None]
        source = potentials_ptr + box0[:, None] * P + lag[None, :]
        gather_ok = ok[:, None] & lag_ok[None, :]
        phi0 = tl.sum(w0 * tl.load(source, gather_ok, 0.0), 1)
        phi1 = tl.sum(w0 * tl.load(source + plane, gather_ok, 0.0), 1)
    z = (1.0 + 2.0 * inv_dof * y0 * y0) * phi0 - 2.0 * inv_dof * y0 * phi1
    if N_DIMS == 2:
        z += 2.0 * inv_dof * y1 * (y1 * phi0 - phi2)

    # The interpolated self interaction K~(y, y), factorised by axis.
    outer0 = w0[:, :, None] * w0[:, None, :]
    outer1 = w1[:, :, None] * w1[:, None, :]
    difference = lag[:, None] - lag[None, :]
    table = self_table_ptr + lag[:, None] * P_PAD + lag[None, :]
    for l0 in tl.static_range(P):
        acf0 = tl.sum(tl.sum(tl.where(difference[None] == l0, outer0, 0.0), 2), 1)
        table_l0 = tl.load(table + l0 * P_PAD * P_PAD, mask=lag_ok[:, None], other=0.0)
        z -= acf0 * tl.sum(tl.sum(outer1 * table_l0[None], 2), 1)

    row = tl.load(order_ptr + index, mask=ok, other=0)
    tl.store(force_ptr + row * N_DIMS, y0 * phi0 - phi1, mask=ok)
    if N_DIMS == 2:
        tl.store(force_ptr + row * 2 + 1, y1 * phi0 - phi2, mask=ok)
    tl.store(z_ptr + index, z, mask=ok)


@triton.jit
def _knn_kernel(
    queries_ptr,  # (n_queries, n_features) query points, float32 or float64
    refs_ptr,  # (n_refs, n_features) reference points, same dtype
    keys_ptr,  # (n_queries, K_PAD) int64 out: the K_PAD smallest keys, unordered
    n_queries,  # number of queries
    n_refs,  # number of reference points
    n_features,  # number of features
    stride_q_point,  # element stride between queries
    stride_q_feature,  # element stride between the features of a query
    stride_r_point,  # element stride between reference points
    stride_r_feature,  # element stride between the features of a reference point
    SKIP_SELF: tl.constexpr,  # leave out reference j == query i (a kNN graph)
    K_PAD: tl.constexpr,  # keys kept per query
    BLOCK_M: tl.constexpr,  # queries per program
    BLOCK_N: tl.constexpr,  # reference points per step
    BLOCK_F: tl.constexpr,  # features per inner step
):
    """Exact k nearest neighbours, a running top-K_PAD per query in registers.

    The key of a pair is ``(float32 bits of the squared distance) << 32 |
    index``: non-negative floats order like their bits, so smaller keys are
    smaller distances with ties broken by the smaller index, the order of the
    CPU's exact search, and no two keys of a query are equal. Squared
    distances are summed from differences (no ``|x|^2 - 2 x.y + |y|^2``
    cancellation) in the points' dtype, then rounded to float32 for the key;
    the launcher bounds what that rounding can swap.

    The running top-K_PAD is a bounded insertion: while a query's smallest
    new key beats its worst kept one, that key replaces it. A query sees
    about ``K_PAD log(n_refs / K_PAD)`` insertions in all, so the loop is
    short after the first steps; it needs no sort, only reductions.
    """
    tl.static_assert(K_PAD >= 2)
    rows = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    row_ok = rows < n_queries
    rows64 = rows.to(tl.int64)
    features = tl.arange(0, BLOCK_F)
    slots = tl.arange(0, K_PAD)
    empty = 0x7FFFFFFFFFFFFFFF
    best = tl.full([BLOCK_M, K_PAD], empty, dtype=tl.int64)
    worst = tl.full([BLOCK_M], empty, dtype=tl.int64)
    # Memory traffic: each step reads BLOCK_N reference points (all features)
    # once for the BLOCK_M queries, whose rows stay in L1/L2 across steps.
    for start in range(0, n_refs, BLOCK_N):
        cols = start + tl.arange(0, BLOCK_N)
        col_ok = cols < n_refs
        cols64 = cols.to(tl.int64)
        distance = tl.zeros([BLOCK_M, BLOCK_N], dtype=queries_ptr.dtype.element_ty)
        for f_start in range(0, n_features, BLOCK_F):
            f = f_start + features
            f_ok = f < n_features
            q = tl.load(
                queries_ptr
                + rows64[:, None] * stride_q_point
                + f[None, :] * stride_q_feature,
                mask=row_ok[:, None] & f_ok[None, :],
                other=0.0,
            )
            r = tl.load(
                refs_ptr
                + cols64[:, None] * stride_r_point
                + f[None, :] * stride_r_feature,
                mask=col_ok[:, None] & f_ok[None, :],
                other=0.0,
            )
            difference = q[:, None, :] - r[None, :, :]
            distance += tl.sum(difference * difference, axis=2)
        bits = distance.to(tl.float32).to(tl.int32, bitcast=True).to(tl.int64)
        keys = (bits << 32) | cols64[None, :]
        keep = col_ok[None, :] & (keys < worst[:, None])
        if SKIP_SELF:
            keep = keep & (rows[:, None] != cols[None, :])
        keys = tl.where(keep, keys, empty)
        smallest = tl.min(keys, axis=1)
        pending = tl.max((smallest < worst).to(tl.int32), axis=0)
        while pending > 0:
            insert = smallest < worst
            worst_slot = tl.argmax(best, axis=1)
            replace = insert[:, None] & (slots[None, :] == worst_slot[:, None])
            best = tl.where(replace, smallest[:, None], best)
            worst = tl.max(best, axis=1)
            keys = tl.where(keys == smallest[:, None], empty, keys)
            smallest = tl.min(keys, axis=1)
            pending = tl.max((smallest < worst).to(tl.int32), axis=0)
    tl.store(
        keys_ptr + rows64[:, None] * K_PAD + slots[None, :],
        best,
        mask=row_ok[:, None],
    )
