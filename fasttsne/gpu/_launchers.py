"""Torch glue of the Triton kernels: devices, dtypes, contiguity, grids and tiles.

The only module of fasttsne that calls the kernels of :mod:`._kernels`; the
gradient backend (``fasttsne/tsne/_gradients/_triton.py``) imports it lazily,
when a fit runs on ``device="cuda"``. Tensors stay on the device between
calls; NumPy goes in and out only at the estimator boundary
(:func:`to_device`, :func:`to_numpy`).

Tiles are fixed (a function of the problem's size and the device), never
autotuned: a tile shape decides the order in which a row's sums are added, so
a timing-based choice could change the bits of a fit from one run to the
next. ``benchmarks/bench_gpu.py`` is where the tiles are measured. Under
``TRITON_INTERPRET=1`` (the tests, on the CPU) large tiles stand in, because
the interpreter's cost is per tile, not per element.

The module is one piece (past the usual ~700 lines) because it is the single
boundary between torch and the kernels: every launcher shares the tile
choice, the dtype and contiguity checks and the device helpers.
"""

# The kernels are private to fasttsne.gpu and called from here only.
# pylint: disable=protected-access

import math
from typing import NamedTuple

import numpy as np
import torch
import triton

from fasttsne import gpu
from fasttsne._neighbors._exact import pair_squared_distances
from fasttsne.gpu import _kernels
from fasttsne.linalg._circulant import _embedded_kernel
from fasttsne.linalg._circulant_torch import circulant_product

# The largest key, marking an empty top-k slot (see _kernels._knn_kernel).
_EMPTY_KEY = np.iinfo(np.int64).max

# Elements of one tile under the interpreter: large tiles amortise its
# per-operation cost; this many float64 values keep a tile within a few MiB.
_INTERPRETER_TILE = 1 << 18


def interpreting():
    """Whether the kernels run in Triton's interpreter (``TRITON_INTERPRET=1``)."""
    return isinstance(
        _kernels._exact_repulsion_kernel, triton.runtime.interpreter.InterpretedFunction
    )


def device():
    """The torch device that ``device="cuda"`` computes on."""
    # The interpreter tests map it to torch's CPU device (fasttsne.gpu).
    return torch.device(gpu._TORCH_DEVICE)


def _next_power_of_two(n):
    """Smallest power of two ``>= max(n, 1)``."""
    return 1 << max(int(n) - 1, 0).bit_length()


def _n_processors():
    """Streaming multiprocessors of the device (1 under the interpreter)."""
    if interpreting():
        return 1
    return torch.cuda.get_device_properties(device()).multi_processor_count


# ---------------------------------------------------------------------------
# Transfers and checks
# ---------------------------------------------------------------------------


def to_device(array, dtype=None):
    """A C-contiguous tensor on the compute device with ``array``'s values.

    Parameters
    ----------
    array : ndarray or torch.Tensor
        Values to move.
    dtype : numpy or torch dtype, default=None
        Target dtype; None keeps the array's.

    Returns
    -------
    tensor : torch.Tensor
        A new tensor (or ``array`` itself when nothing changes).
    """
    if isinstance(array, np.ndarray):
        array = np.ascontiguousarray(array)
        # torch cannot hold read-only memory (a memmap's) without a warning,
        # and a tensor on the CPU (the interpreter's) would share it.
        array = torch.from_numpy(array if array.flags.writeable else array.copy())
    if dtype is not None and not isinstance(dtype, torch.dtype):
        dtype = torch.from_numpy(np.empty(0, dtype=dtype)).dtype
    return array.to(device=device(), dtype=dtype).contiguous()


def to_numpy(tensor):
    """A NumPy copy of a device tensor."""
    return tensor.detach().cpu().numpy().copy()


_PARAMETERS = {}


def _parameters(*values):
    """A float64 device tensor of ``values``, made once per distinct tuple.

    Scalars reach the kernels through memory, in float64, so that float64
    fits see the exact ``dof``; keeping the few distinct tuples of a fit
    spares a host-to-device copy (and its synchronisation) per call.
    """
    key = (str(device()),) + tuple(float(v) for v in values)
    if key not in _PARAMETERS:
        if len(_PARAMETERS) > 64:
            _PARAMETERS.clear()
        _PARAMETERS[key] = torch.tensor(key[1:], dtype=torch.float64, device=device())
    return _PARAMETERS[key]


def _check_points(Y, name):
    """``Y`` as a 2-D float32 or float64 C-contiguous tensor on the device."""
    if Y.ndim != 2:
        raise ValueError(f"{name} must be 2-D, got shape {tuple(Y.shape)}.")
    if Y.dtype not in (torch.float32, torch.float64):
        raise TypeError(f"{name} must be float32 or float64, got {Y.dtype}.")
    if Y.device != device():
        raise ValueError(f"{name} is on {Y.device}, expected {device()}.")
    return Y.contiguous()


# ---------------------------------------------------------------------------
# Exact sums
# ---------------------------------------------------------------------------


def _pair_tiles(n_rows, n_cols, dtype):
    """``(BLOCK_M, BLOCK_N, num_warps)`` of the pairwise kernels."""
    if interpreting():
        block_n = min(_next_power_of_two(n_cols), 1024)
        block_m = min(_next_power_of_two(n_rows), _INTERPRETER_TILE // block_n)
        return block_m, block_n, 4
    # 16 pairs per thread (and per step) keep the float32 kernel at 128
    # registers without spills on sm_90 (tests/gpu/_compile_kernels.py).
    # Enough programs to fill every multiprocessor a few times over, else the
    # most rows per program (each column tile is then read fewer times).
    block_n = 32 if dtype == torch.float32 else 16
    block_m = 128
    while block_m > 16 and triton.cdiv(n_rows, block_m) < 4 * _n_processors():
        block_m //= 2
    return block_m, block_n, 8 if block_m == 128 else 4


def exact_repulsion(rows, cols=None, *, dof, tiles=None):
    """Exact repulsion and ``sum_j w_ij`` per row, flash style.

    Parameters
    ----------
    rows : torch.Tensor of shape (n_rows, n_components)
        Points i on the device, float32 or float64, 1 to 3 components.
    cols : torch.Tensor of shape (n_cols, n_components), default=None
        Points j, same dtype; None for a fit (``cols = rows``, ``j != i``).
    dof : float
        Degrees of freedom of the kernel, > 0.
    tiles : tuple of int, default=None
        ``(BLOCK_M, BLOCK_N)`` instead of the launcher's choice (tests).

    Returns
    -------
    force : torch.Tensor of shape (n_rows, n_components)
        ``sum_j (w_ij / t_ij) (y_i - y_j)``, in the points' dtype.
    sum_w : torch.Tensor of shape (n_rows,)
        ``sum_j w_ij``, in the points' dtype.
    """
    rows = _check_points(rows, "rows")
    fit = cols is None
    cols = rows if fit else _check_points(cols, "cols")
    if cols.dtype != rows.dtype or cols.shape[1] != rows.shape[1]:
        raise ValueError("rows and cols must have the same dtype and components.")
    n_rows, n_dims = rows.shape
    if not 1 <= n_dims <= 3:
        raise ValueError(f"1 to 3 components are supported, got {n_dims}.")
    force = torch.empty_like(rows)
    sum_w = torch.empty(n_rows, dtype=rows.dtype, device=rows.device)
    if n_rows == 0:
        return force, sum_w
    block_m, block_n, num_warps = _pair_tiles(n_rows, cols.shape[0], rows.dtype)
    if tiles is not None:
        block_m, block_n = tiles
    _kernels._exact_repulsion_kernel[(triton.cdiv(n_rows, block_m),)](
        rows,
        cols,
        force,
        sum_w,
        n_rows,
        cols.shape[0],
        _parameters(dof),
        N_DIMS=n_dims,
        SKIP_SELF=fit,
        UNIT_DOF=dof == 1.0,
        BLOCK_M=block_m,
        BLOCK_N=block_n,
        num_warps=num_warps,
    )
    return force, sum_w


def attraction(csr, rows, cols=None, *, exaggeration, dof, compute_error, tiles=None):
    """Attraction over the stored entries of P, and the rows' KL terms.

    Parameters
    ----------
    csr : tuple of torch.Tensor
        ``(indptr, indices, data)`` of P on the device: int32 or int64
        indices, float32 or float64 values (read in the points' dtype:
        float32 values are widened exactly).
    rows : torch.Tensor of shape (n_rows, n_components)
        Points i.
    cols : torch.Tensor of shape (n_cols, n_components), default=None
        Points j; None for a fit (``cols = rows``).
    exaggeration : float
        The factor ``a``.
    dof : float
        Degrees of freedom of the kernel.
    compute_error : bool
        Also return ``sum_j p_ij log(p_ij / w_ij)`` per row.
    tiles : tuple of int, default=None
        ``(BLOCK_M, BLOCK_K)`` instead of the launcher's choice (tests).

    Returns
    -------
    force : torch.Tensor of shape (n_rows, n_components)
        ``a sum_j p_ij (y_i - y_j) / t_ij``.
    kl_rows : torch.Tensor of shape (n_rows,) or None
        The rows' KL terms, or None unless ``compute_error``.
    """
    indptr, indices, data = csr
    rows = _check_points(rows, "rows")
    cols = rows if cols is None else _check_points(cols, "cols")
    n_rows, n_dims = rows.shape
    if indptr.shape[0] != n_rows + 1:
        raise ValueError(f"P has {indptr.shape[0] - 1} rows, the points {n_rows}.")
    if data.dtype not in (torch.float32, torch.float64):
        raise ValueError(f"P's values must be float32 or float64, got {data.dtype}.")
    force = torch.empty_like(rows)
    kl_rows = torch.empty(n_rows, dtype=rows.dtype, device=rows.device)
    if n_rows == 0:
        return force, (kl_rows if compute_error else None)
    if interpreting():
        longest = int((indptr[1:] - indptr[:-1]).max()) if n_rows else 1
        block_k = min(_next_power_of_two(longest), 256)
        block_m = min(_next_power_of_two(n_rows), _INTERPRETER_TILE // block_k // 4)
        num_warps = 4
    else:
        block_m, block_k, num_warps = 32, 16, 4
    if tiles is not None:
        block_m, block_k = tiles
    _kernels._attraction_kernel[(triton.cdiv(n_rows, block_m),)](
        indptr,
        indices,
        data,
        rows,
        cols,
        force,
        kl_rows,
        n_rows,
        _parameters(exaggeration, dof),
        N_DIMS=n_dims,
        COMPUTE_ERROR=bool(compute_error),
        BLOCK_M=block_m,
        BLOCK_K=block_k,
        num_warps=num_warps,
    )
    return force, (kl_rows if compute_error else None)


def ordered_sum(values):
    """Sum of a 1-D tensor in float64, in an order fixed by its length alone.

    Parameters
    ----------
    values : torch.Tensor of shape (n,)
        On the device, any float dtype.

    Returns
    -------
    total : torch.Tensor of shape ()
        float64, on the device: the same bits for the same values, always.
    """
    block, n_steps = (4096, 4) if interpreting() else (1024, 8)
    values = values.contiguous()
    while True:
        n = values.shape[0]
        n_chunks = max(triton.cdiv(n, block * n_steps), 1)
        sums = torch.empty(n_chunks, dtype=torch.float64, device=values.device)
        _kernels._partial_sum_kernel[(n_chunks,)](
            values, sums, n, BLOCK=block, N_STEPS=n_steps
        )
        if n_chunks == 1:
            return sums[0]
        values = sums


# ---------------------------------------------------------------------------
# FIt-SNE's grid
# ---------------------------------------------------------------------------


def bounding_box(Y):
    """Per-axis bounds of the points, on the host (one synchronisation).

    A NaN or infinite coordinate gives non-finite bounds, which the caller
    reports (the backend, in the wording of every backend).
    """
    if Y.shape[0] == 0:
        raise ValueError("bounding_box needs at least one point.")
    bounds = torch.stack([Y.amin(dim=0), Y.amax(dim=0)]).to(torch.float64).cpu()
    lo, hi = bounds.numpy()
    return tuple(float(v) for v in lo), tuple(float(v) for v in hi)


def _kernel_value(r2, dof):
    """``w / t = t^-(dof + 1)``, ``t = 1 + r2 / dof``: the grid's kernel."""
    t = 1.0 + r2 / dof
    return 1.0 / (t * t) if dof == 1.0 else t ** -(dof + 1.0)


def _kernel_on_offsets(grid_shape, spacings, dof):
    """The kernel at every node-to-node offset, on the device.

    Shape ``(2 n_1 - 1, ..., 2 n_d - 1)``, the centre holding the zero
    offset: the input of the circulant core's embedding
    (``fasttsne.linalg._circulant._embedded_kernel``).
    """
    n_dims = len(grid_shape)
    r2 = 0.0
    for axis, (n, spacing) in enumerate(zip(grid_shape, spacings)):
        offset = torch.arange(-(n - 1), n, dtype=torch.float64, device=device())
        shape = [1] * n_dims
        shape[axis] = 2 * n - 1
        offset = offset * spacing
        r2 = r2 + (offset * offset).reshape(shape)
    return _kernel_value(r2, dof)


def _self_table(spacings, p, dof):
    """The table ``T`` of :func:`_kernels._interpolate_kernel`, on the host.

    ``T[l0, a, b] = c_l0 c_(a-b) K(l0 h0, (a - b) h1)`` for ``p > a >= b``
    (2-D), ``T[l0, 0, 0] = c_l0 K(l0 h0)`` (1-D), with ``c_0 = 1`` and ``c_l =
    2`` otherwise: the in-box lags of ``_interpolation._self_table``.
    """
    p_pad = _next_power_of_two(p)
    fold = np.where(np.arange(p) == 0, 1.0, 2.0)
    lags = np.arange(p) * spacings[0]
    table = np.zeros((p, p_pad, p_pad))
    if len(spacings) == 1:
        table[:, 0, 0] = fold * _kernel_value(lags * lags, dof)
        return table
    a, b = np.meshgrid(np.arange(p), np.arange(p), indexing="ij")
    lower = a >= b
    lag1 = (a - b)[lower] * spacings[1]
    for l0 in range(p):
        values = _kernel_value(lags[l0] ** 2 + lag1 * lag1, dof)
        table[l0, a[lower], b[lower]] = fold[l0] * fold[(a - b)[lower]] * values
    return table


def _grid_tiles(n_dims, p, n_points, fullest=1):
    """``(NODES, BLOCK_B, BLOCK_P, BLOCK)`` of the spreading and interpolation.

    ``fullest`` (the most points in a box) only sizes the interpreter's tiles.
    """
    nodes = _next_power_of_two(p**n_dims)
    p_pad = _next_power_of_two(p)
    if interpreting():
        # One step through the fullest box, and few programs.
        block_p = min(_next_power_of_two(fullest), 32)
        block = min(_next_power_of_two(n_points), 1 << 14)
        return nodes, max((1 << 17) // (block_p * nodes), 1), block_p, block
    # A (BLOCK_B, BLOCK_P, NODES) float64 weight tile of at most 2048 values
    # and (BLOCK, P_PAD, P_PAD) ones of at most 512: no spills on sm_90
    # (tests/gpu/_compile_kernels.py).
    return nodes, max(2048 // (nodes * 16), 1), 16, max(512 // p_pad**2, 4)


class SpreadPoints(NamedTuple):
    """The points of a grid call, sorted by box, and the grid's constants."""

    points: object  # (n_points, n_dims) float64 tensor, sorted by box
    boxes: object  # (n_points,) int32 tensor: box of each sorted point
    order: object  # (n_points,) int64 tensor: input row of each sorted point
    geometry: object  # (8,) float64 tensor, see _kernels (grid kernels)


def _geometry(grid, dof):
    """The grid kernels' float64 geometry array, on the device."""
    pad = (0.0,) * (2 - len(grid.n_boxes))
    return to_device(
        np.array(
            grid.center
            + pad
            + grid.lower_edges
            + pad
            + grid.inverse_widths
            + pad
            + (1.0 / dof, 0.0)
        )
    )


def spread_charges(Y, grid, *, dof=1.0, tiles=None):
    """Sort the points by box and spread their charges ``(1, y)`` on the grid.

    Parameters
    ----------
    Y : torch.Tensor of shape (n_points, n_components)
        Points on the device, 1 or 2 components, any float dtype.
    grid : InterpolationGrid
        The geometry (``fasttsne.tsne._gradients._interpolation``).
    dof : float, default=1.0
        Kept with the geometry for :func:`interpolate_repulsion`.
    tiles : tuple of int, default=None
        ``(BLOCK_B, BLOCK_P)`` instead of the launcher's choice (tests).

    Returns
    -------
    charges : torch.Tensor of shape (n_components + 1, *grid.shape)
        float64: per node, the sums of the Lagrange weights times ``1`` and
        times each centred coordinate.
    spread : SpreadPoints
        What the interpolation needs.
    """
    Y = _check_points(Y, "Y")
    n_points, n_dims = Y.shape
    p = grid.n_interpolation_points
    if len(grid.n_boxes) != n_dims or n_dims not in (1, 2):
        raise ValueError(f"The grid has {len(grid.n_boxes)} axes, Y {n_dims}.")
    block = _grid_tiles(n_dims, p, n_points)[3]
    n_boxes0 = grid.n_boxes[0]
    n_boxes1 = grid.n_boxes[1] if n_dims == 2 else 1
    n_boxes = n_boxes0 * n_boxes1
    geometry = _geometry(grid, dof)
    points = Y.to(torch.float64)
    boxes = torch.empty(n_points, dtype=torch.int32, device=Y.device)
    if n_points:
        _kernels._box_index_kernel[(triton.cdiv(n_points, block),)](
            points,
            boxes,
            n_points,
            n_boxes0,
            n_boxes1,
            geometry,
            N_DIMS=n_dims,
            BLOCK=block,
        )
    # Points sorted by box (stable: by index within a box), and where each
    # box's run starts; both are deterministic.
    order = torch.argsort(boxes, stable=True)
    boxes = boxes[order]
    box_starts = torch.searchsorted(
        boxes, torch.arange(n_boxes + 1, dtype=torch.int32, device=Y.device)
    ).to(torch.int32)
    points = points[order].contiguous()
    fullest = 1
    if interpreting() and n_points:
        fullest = int((box_starts[1:] - box_starts[:-1]).max())
    nodes, block_b, block_p, _ = _grid_tiles(n_dims, p, n_points, fullest)
    if tiles is not None:
        block_b, block_p = tiles
    grid_shape = tuple(grid.shape)
    charges = torch.empty(
        (n_dims + 1,) + grid_shape, dtype=torch.float64, device=Y.device
    )
    _kernels._spread_kernel[(triton.cdiv(n_boxes, block_b),)](
        points,
        box_starts,
        charges,
        n_boxes,
        n_boxes1,
        grid_shape[1] if n_dims == 2 else 1,
        math.prod(grid_shape),
        geometry,
        N_DIMS=n_dims,
        P=p,
        NODES=nodes,
        BLOCK_B=block_b,
        BLOCK_P=block_p,
    )
    return charges, SpreadPoints(points, boxes, order, geometry)


def grid_potentials(charges, grid, dof):
    """Kernel sums of every charge grid on the nodes, by ``torch.fft``.

    The circulant product of ``fasttsne.linalg._circulant`` on the device:
    the charges, zero-padded to the grid's ``fft_shape``, times the spectrum
    of the embedded kernel ``t^-(dof + 1)``, cropped back to the grid.

    Returns
    -------
    potentials : torch.Tensor of the shape of ``charges``
        float64, C-contiguous.
    """
    grid_shape = tuple(grid.shape)
    embedded = _embedded_kernel(
        _kernel_on_offsets(grid_shape, grid.spacings, dof), grid_shape
    )
    return circulant_product(
        torch.fft.rfftn(embedded), tuple(embedded.shape), grid_shape, charges
    )


def interpolate_repulsion(spread, grid, potentials, *, dof, block=None):
    """Interpolate the potentials back: the repulsion and each point's share of Z.

    Parameters
    ----------
    spread : SpreadPoints
        From :func:`spread_charges` (with the same ``dof``).
    grid : InterpolationGrid
        The geometry.
    potentials : torch.Tensor
        From :func:`grid_potentials`.
    dof : float
        Degrees of freedom of the kernel.
    block : int, default=None
        Points per program instead of the launcher's (tests).

    Returns
    -------
    force : torch.Tensor of shape (n_points, n_components)
        float64, in the input's order: ``sum_{j != i} (w_ij / t_ij) (y_i - y_j)``.
    z : torch.Tensor of shape (n_points,)
        float64, in sorted order; :func:`ordered_sum` makes ``Z`` of it.
    """
    n_points, n_dims = spread.points.shape
    p = grid.n_interpolation_points
    if block is None:
        block = _grid_tiles(n_dims, p, n_points)[3]
    grid_shape = tuple(grid.shape)
    device_ = spread.points.device
    force = torch.empty((n_points, n_dims), dtype=torch.float64, device=device_)
    z = torch.empty(n_points, dtype=torch.float64, device=device_)
    if n_points == 0:
        return force, z
    _kernels._interpolate_kernel[(triton.cdiv(n_points, block),)](
        spread.points,
        spread.boxes,
        spread.order,
        potentials,
        to_device(_self_table(grid.spacings, p, dof)),
        force,
        z,
        n_points,
        grid.n_boxes[1] if n_dims == 2 else 1,
        grid_shape[1] if n_dims == 2 else 1,
        math.prod(grid_shape),
        spread.geometry,
        N_DIMS=n_dims,
        P=p,
        P_PAD=_next_power_of_two(p),
        BLOCK=block,
    )
    return force, z


def grid_repulsion(Y, *, dof, grid):
    """The repulsion and ``Z`` of a fit by FIt-SNE's interpolation, on the device.

    Parameters
    ----------
    Y : torch.Tensor of shape (n_samples, n_components)
        The embedding, 1 or 2 components, float32 or float64; the grid
        computes in float64 (as the CPU's does).
    dof : float
        Degrees of freedom of the kernel.
    grid : InterpolationGrid
        The geometry (``fasttsne.tsne._gradients._interpolation``), computed
        by the caller from :func:`bounding_box`, as the CPU path does.

    Returns
    -------
    force : torch.Tensor of shape (n_samples, n_components)
        ``sum_{j != i} (w_ij / t_ij) (y_i - y_j)``, in Y's dtype.
    Z : torch.Tensor of shape ()
        ``sum_{i != j} w_ij``, float64.
    """
    charges, spread = spread_charges(Y, grid, dof=dof)
    potentials = grid_potentials(charges, grid, dof)
    del charges
    force, z = interpolate_repulsion(spread, grid, potentials, dof=dof)
    return force.to(Y.dtype), ordered_sum(z)


# ---------------------------------------------------------------------------
# Exact k nearest neighbours
# ---------------------------------------------------------------------------


def _knn_tiles(n_features, n_queries, n_refs):
    """``(BLOCK_M, BLOCK_N, BLOCK_F, num_warps)`` of the kNN kernel."""
    if interpreting():
        # (256, 256, BLOCK_F) difference tiles of up to 2^20 values, the most
        # Triton allows: the interpreter's cost is per step, not per value,
        # as long as the tiles are not much larger than the problem.
        return (
            min(_next_power_of_two(n_queries), 256),
            min(_next_power_of_two(n_refs), 256),
            min(_next_power_of_two(n_features), 16),
            4,
        )
    return 16, 64, 1, 4


# Reference indices fit in the 31 bits of an int32 column index.
_MAX_KNN_REFS = 2**31 - 1


def _n_candidates(n_neighbors):
    """Keys kept per query: k plus spares that make a near tie rare to resolve."""
    return max(_next_power_of_two(n_neighbors + n_neighbors // 8 + 2), 16)


def exact_knn(  # pylint: disable=too-many-locals
    X, n_neighbors, *, X_ref=None, block_bytes=2**30, tiles=None
):
    """Exact k nearest neighbours on the device, never the N x N matrix.

    The kernel keeps, per query, the ``K_PAD`` smallest (float32 distance,
    index) keys; their distances are then recomputed in float64 from the
    original rows and each row sorted by (distance, index), the CPU exact
    search's order. The float32 ranking can only err by the rounding bound
    ``e``: a row is *certain* when the k-th exact distance lies below the
    last key's distance divided by ``1 + e`` (every point left out is then
    strictly farther), or when the row kept every reference point. The other
    rows (near ties over all the spare slots, e.g. large groups of duplicates)
    are reported for the caller to resolve with the CPU search.

    The float64 distances differ from the CPU search's in the last bits (they
    are summed in another order). Where that could decide the set or its
    order (any two adjacent candidates among a row's first k + 1 within the
    float64 rounding bound of each other), the row's candidates are ranked
    again on the host with the CPU search's own distances
    (``pair_squared_distances``), so that the neighbours of every certain row
    and their order are the CPU's.

    Parameters
    ----------
    X : ndarray or torch.Tensor of shape (n_queries, n_features)
        Queries; float32 data are ranked in float32, other data in float64.
    n_neighbors : int
        k, at most the number of candidates.
    X_ref : ndarray or torch.Tensor of shape (n_refs, n_features), default=None
        Reference points; None searches ``X`` itself, each row excluded from
        its own neighbours (a kNN graph).
    block_bytes : int, default=2**30
        Bound on the float64 ``(rows, K_PAD, n_features)`` differences of
        the queries whose candidates are recomputed at once, together with
        the gathered candidate rows they are cast from (at least one row).
        Each distance is
        torch's sum over one contiguous row of squares; the block size only
        decides how many rows a call reduces (the same bits on the CPU;
        on a GPU torch may reduce another shape in another order, within
        the float64 bound that sends near ties to the host).
    tiles : tuple of int, default=None
        ``(BLOCK_M, BLOCK_N, BLOCK_F)`` instead of the launcher's (tests).

    Returns
    -------
    indices : ndarray of shape (n_queries, n_neighbors), int64
        Sorted by (distance, index).
    sq_distances : ndarray of shape (n_queries, n_neighbors), float64
        Squared euclidean distances, recomputed in float64 (those of the
        rows ranked again on the host: the CPU search's, bit for bit).
    uncertain : ndarray of shape (n_queries,), bool
        Rows whose answer the float32 ranking could not guarantee.
    """
    queries = to_device(X)
    if queries.dtype != torch.float32:
        queries = queries.to(torch.float64)
    self_query = X_ref is None
    refs = queries if self_query else to_device(X_ref, dtype=queries.dtype)
    if not self_query and (
        refs.untyped_storage().data_ptr() == queries.untyped_storage().data_ptr()
    ):
        # Queries that are rows of the references, without copies (CPU
        # tensors over one array): the interpreter keys tensors by their
        # storage's address and cannot tell the two apart.
        refs = refs.clone()
    n_queries, n_features = queries.shape
    n_refs = refs.shape[0]
    n_available = n_refs - 1 if self_query else n_refs
    if not 1 <= n_neighbors <= n_available:
        raise ValueError(
            f"n_neighbors must be in [1, {n_available}], got {n_neighbors}."
        )
    if n_refs > _MAX_KNN_REFS:
        # A key packs the index into its low 32 bits (read as int32).
        raise ValueError(
            f"exact_knn takes at most {_MAX_KNN_REFS} reference points, got {n_refs}."
        )
    k_pad = _n_candidates(n_neighbors)
    block_m, block_n, block_f, num_warps = _knn_tiles(n_features, n_queries, n_refs)
    if tiles is not None:
        block_m, block_n, block_f = tiles
    keys = torch.empty((n_queries, k_pad), dtype=torch.int64, device=queries.device)
    if n_queries:
        _kernels._knn_kernel[(triton.cdiv(n_queries, block_m),)](
            queries,
            refs,
            keys,
            n_queries,
            n_refs,
            n_features,
            queries.stride(0),
            queries.stride(1),
            refs.stride(0),
            refs.stride(1),
            SKIP_SELF=self_query,
            K_PAD=k_pad,
            BLOCK_M=block_m,
            BLOCK_N=block_n,
            BLOCK_F=block_f,
            num_warps=num_warps,
        )
    valid = keys != _EMPTY_KEY
    candidates = torch.where(valid, keys & 0xFFFFFFFF, 0)
    # A row with an empty slot kept every reference point; otherwise its
    # largest key bounds the points left out.
    last = keys.max(dim=1).values
    complete = last == _EMPTY_KEY
    last_distance = (last >> 32).to(torch.int32).view(torch.float32).to(torch.float64)
    # Rounding of a sum of F non-negative terms in the ranking dtype, of its
    # inputs' differences and squares, and of the float32 key (Higham 2002,
    # section 3.1), with a factor 2 of margin.
    unit = 2.0**-24 if queries.dtype == torch.float32 else 2.0**-53
    error = 2.0 * ((n_features + 4) * unit + 2.0**-24)
    # The same bound for two float64 sums of one pair's squares in different
    # orders, each within (F + 2) ulp of the exact value; a factor 2 of margin.
    float64_error = 4.0 * (n_features + 4) * 2.0**-53

    # Rows per block: the (rows, K_PAD, F) float64 differences and the gathered
    # candidate rows they are cast from fit the budget together.
    bytes_per_entry = 8 + (refs.element_size() if refs.dtype != torch.float64 else 0)
    row_block = max(1, block_bytes // (k_pad * max(n_features, 1) * bytes_per_entry))
    # Host outputs owned by NumPy (torch writes through views of them), so
    # that the affinities can build P in them and shrink them as it grows.
    indices_out = np.empty((n_queries, n_neighbors), dtype=np.int64)
    sq_distances_out = np.empty((n_queries, n_neighbors), dtype=np.float64)
    indices = torch.from_numpy(indices_out)
    sq_distances = torch.from_numpy(sq_distances_out)
    uncertain = torch.zeros(n_queries, dtype=torch.bool)
    re_ranked = []
    for start in range(0, n_queries, row_block):
        stop = min(start + row_block, n_queries)
        block_candidates = candidates[start:stop]
        # The gather is a fresh array: cast it and square in place, one
        # float64 block at a time (never the whole data set in float64).
        difference = refs[block_candidates].to(torch.float64)
        difference.sub_(queries[start:stop, None, :].to(torch.float64))
        exact = torch.where(
            valid[start:stop], difference.mul_(difference).sum(dim=2), math.inf
        )
        del difference
        # Sort by index, then stably by distance: (distance, index) order.
        by_index, position = torch.sort(block_candidates, dim=1, stable=True)
        exact = torch.gather(exact, 1, position)
        exact, position = torch.sort(exact, dim=1, stable=True)
        by_index = torch.gather(by_index, 1, position)
        kth = exact[:, n_neighbors - 1]
        # The smallest true distance a point left out can have (none is
        # known past float32's range, where every key is infinite).
        floor = last_distance[start:stop] / (1.0 + error)
        certain = complete[start:stop] | ((kth < floor) & torch.isfinite(floor))
        # Exact duplicates: float32 keys of 0 are true zeros (up to underflow
        # below 1e-45), whose ties the keys break by index, as required.
        certain |= (kth == 0.0) & (last_distance[start:stop] == 0.0)
        # Any two neighbours among the first k + 1 within rounding of each
        # other (exact zeros tie exactly) may be ordered, or the set decided,
        # differently by the CPU's sums.
        leading = exact[:, : n_neighbors + 1]
        following = leading[:, 1:]
        close = (
            (following > 0.0) & (following <= leading[:, :-1] * (1.0 + float64_error))
        ).any(dim=1)
        close_rows = torch.nonzero(close).flatten()
        if close_rows.numel():
            re_ranked.append(
                (
                    close_rows.cpu().numpy() + start,
                    by_index[close_rows].cpu().numpy(),
                    exact[close_rows].cpu().numpy(),
                )
            )
        indices[start:stop] = by_index[:, :n_neighbors].cpu()
        sq_distances[start:stop] = exact[:, :n_neighbors].cpu()
        uncertain[start:stop] = ~certain.cpu()
    del indices, sq_distances
    indices, sq_distances = indices_out, sq_distances_out
    if re_ranked:
        _rank_on_host(
            *(np.concatenate(part) for part in zip(*re_ranked)),
            queries,
            refs,
            indices=indices,
            sq_distances=sq_distances,
        )
    return indices, sq_distances, uncertain.numpy()


def _rank_on_host(  # pylint: disable=too-many-arguments
    rows, candidates, distances, queries, refs, *, indices, sq_distances
):
    """Rank the candidates of ``rows`` by the CPU search's float64 distances.

    ``rows`` (sorted) and their ``candidates`` and device ``distances`` (one
    row each; empty slots have an infinite distance) select the pairs; only
    those query rows and candidate rows are copied to the host, in float64,
    and measured in one :func:`pair_squared_distances` call (whose values do
    not depend on the batch). ``indices`` and ``sq_distances`` are updated in
    place with the k smallest of each row by (distance, index).
    """
    k = indices.shape[1]
    finite = np.isfinite(distances)
    # Each row's candidates by index, the empty slots last.
    order = np.lexsort((candidates, ~finite), axis=1)
    candidates = np.take_along_axis(candidates, order, axis=1)
    finite = np.take_along_axis(finite, order, axis=1)
    needed, columns = np.unique(candidates[finite], return_inverse=True)
    local = np.repeat(np.arange(rows.shape[0]), finite.sum(axis=1))
    host_queries = to_numpy(queries[torch.from_numpy(rows).to(queries.device)])
    host_refs = to_numpy(refs[torch.from_numpy(needed).to(refs.device)])
    host = pair_squared_distances(
        host_queries.astype(np.float64, copy=False),
        local,
        host_refs.astype(np.float64, copy=False),
        columns.ravel(),
    )
    values = np.full(candidates.shape, np.inf)
    values[finite] = host
    order = np.lexsort((candidates, values), axis=1)[:, :k]
    indices[rows] = np.take_along_axis(candidates, order, axis=1)
    sq_distances[rows] = np.take_along_axis(values, order, axis=1)
