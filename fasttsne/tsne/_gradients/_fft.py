"""FIt-SNE gradient backend: sparse attraction plus FFT-interpolated repulsion.

The repulsion and its normaliser come from
:mod:`fasttsne.tsne._gradients._interpolation` (Linderman et al. 2019:
Lagrange interpolation onto an equispaced grid, kernel sums by the FFT of the
circulant embedding of the Toeplitz kernel matrix); the attraction and the
attraction part of the KL divergence from ``fasttsne._cython._forces``,
shared with the Barnes-Hut backend. The grid cap, its speed and accuracy, the
crossover below which exact sums are cheaper, and the cost model that hands a
call to the Barnes-Hut tree when the grid would cost more are measured in
``docs/fft.rst``.
"""

import math

import numpy as np

from fasttsne._cython._interp import bounding_box
from fasttsne._cython._quadtree import (
    _Workspace,
    bh_repulsion,
    bh_repulsion_from_frozen,
)
from fasttsne._validation import StrOptions, check_params
from fasttsne.tsne._gradients._bh import DEFAULT_ANGLE
from fasttsne.tsne._gradients._interpolation import (
    GRID_KNOB_CONSTRAINTS,
    GRID_KNOB_DEFAULTS,
    FrozenInterpolation,
    InterpolationGrid,
    _repulsion_on_grid,
    check_grid_knobs,
)
from fasttsne.tsne._gradients._sparse import SparseAttractionBackend

# Up to this many points a fit's exact sums (a Barnes-Hut walk at angle 0)
# are cheaper than the smallest grid, as scipy.signal.convolve picks direct
# over FFT convolution for short signals (crossover: docs/fft.rst).
_DIRECT_MAX_N = 1500

# Against a frozen embedding the grid is built once, and a call interpolates
# p^d (d + 2) grid values per new point (36 for the default p = 3 in 2-D):
# exact sums cost less only against a frozen embedding of at most this many
# points. The choice depends on the frozen points alone, never on the batch.
_FROZEN_DIRECT_MAX_N = 64

# The per-call cost model of a 2-D fit with the default knobs, in units of one
# step of the grid's FFTs: the grid costs ``L log2 L + _GRID_COST_PER_POINT N``
# for a circulant of L nodes (its FFTs, then spreading and interpolation), a
# Barnes-Hut walk at ``_TREE_ANGLE`` costs ``_TREE_COST_PER_POINT N log2 N``.
# The constants are fitted to one-thread timings of both on t-SNE-like
# embeddings and checked at 1 and 2 threads up to 250,000 points
# (benchmarks/bench_fft_vs_bh.py --calibrate; docs/fft.rst).
_GRID_COST_PER_POINT = 20.0
_TREE_COST_PER_POINT = 7.0

#: How a fit's repulsion is summed above ``_DIRECT_MAX_N`` points: "auto"
#: hands a 2-D call to the Barnes-Hut walk where the cost model says the grid
#: costs more, "grid" interpolates at every call (FIt-SNE's method).
REPULSION_CONSTRAINT = {"repulsion": [StrOptions({"auto", "grid"})]}

# The tree's opening angle: BarnesHutTSNE's default. On a wide embedding its
# repulsion error is below the default grid's; under early exaggeration it is
# BarnesHutTSNE's, above the fine minimum grid's (docs/fft.rst).
_TREE_ANGLE = DEFAULT_ANGLE


def _tree_is_cheaper(n_samples, grid):
    """Whether a Barnes-Hut walk costs less than the grid, by the cost model.

    Depends on ``n_samples`` and the grid alone (never on the threads), so
    the choice, and with it the result, is the same for any ``n_threads``.
    Only called above ``_DIRECT_MAX_N`` points (``log2`` of a grid of at
    least one box of one node would be 0).
    """
    n_nodes = math.prod(grid.fft_shape)
    grid_cost = n_nodes * math.log2(n_nodes) + _GRID_COST_PER_POINT * n_samples
    return _TREE_COST_PER_POINT * n_samples * math.log2(n_samples) < grid_cost


class FFTGradient(SparseAttractionBackend):
    """t-SNE gradient with the repulsion by FFT-accelerated interpolation (FIt-SNE).

    The attraction is summed exactly over the stored entries of the sparse P
    (O(nnz)); the repulsion and the normaliser Z are interpolated on a grid in
    O(N p^d) plus O(G log G) for a grid of G nodes (Linderman et al. 2019),
    against O(N^2) for :class:`~fasttsne.tsne._gradients._exact.ExactGradient`.
    1-D and 2-D embeddings on the CPU.

    Against a frozen embedding (``transform``) the grid is fixed by the frozen
    points alone, so their charges are spread and convolved once, at the
    first call (the kernel depends on ``dof``), and each call only
    interpolates at the new points, O(n_new p^d). A new point off that grid
    gets exact sums against the frozen points, so no result depends on the
    batch.

    Parameters
    ----------
    n_interpolation_points : int, default=3
        Equispaced Lagrange nodes per box and axis, at most
        ``MAX_INTERPOLATION_POINTS``.
    min_num_intervals : int, default=50
        Fewest boxes per axis.
    ints_in_interval : float, default=1.0
        Target box width in embedding units.
    max_num_intervals : int, default=300
        Most boxes per axis of a 2-D grid, bounding the cost of a call on a
        wide embedding at the price of accuracy; 0 for no cap. A 1-D grid may
        have its square.
    repulsion : {"auto", "grid"}, default="auto"
        "grid": every call of a fit above ``_DIRECT_MAX_N`` points
        interpolates on the grid of the knobs above (FIt-SNE's method).
        "auto": a 2-D call whose grid would cost more than a Barnes-Hut walk
        at ``_TREE_ANGLE``, by the cost model ``_tree_is_cheaper``, takes the
        walk instead (see Notes). 1-D calls and ``transform`` always use the
        grid.
    n_threads : int, default=1
        OpenMP threads and FFT workers; results are bitwise identical for any
        value.

    Attributes
    ----------
    n_tree_calls : int
        Calls of the fit so far whose repulsion took the Barnes-Hut walk at
        ``_TREE_ANGLE``.
    n_grid_calls : int
        Calls of the fit so far whose repulsion was interpolated on the grid.

    Notes
    -----
    Up to ``_DIRECT_MAX_N`` points in a fit, and against a frozen embedding of
    at most ``_FROZEN_DIRECT_MAX_N`` points, the repulsion is summed exactly
    instead, which is both cheaper than interpolation there and exact.

    With ``repulsion="auto"``, a 2-D fit's call takes the Barnes-Hut walk at
    ``_TREE_ANGLE`` whenever the cost model of ``N`` and the grid's circulant
    size says the grid costs more. With the default knobs that is every call
    (early exaggeration included, whatever the span) from 1,501 (below,
    exact sums) to about 18,600 points, where even the minimum grid of 50
    boxes per axis costs more; above it, calls on a wide embedding (at
    100,000 points past a span of about 113, at 250,000 past about 188); at
    1,000,000 points never (the grid is capped). Those calls have
    BarnesHutTSNE's accuracy, not the grid's (measured in ``docs/fft.rst``):
    better than the default grid's on a wide embedding, worse than the fine
    minimum grid's under early exaggeration.

    A fit's capped 2-D grid (``max_num_intervals`` limited its boxes) with a
    circulant of at least 2^20 nodes runs the FFTs of its charges in single
    precision, whose rounding is far below such a grid's interpolation
    error; a fit's other grids, and the frozen grid of ``transform``, compute
    in double (``docs/fft.rst``).
    """

    name = "fft"
    aliases = ("fitsne", "interpolation")
    knobs = (*GRID_KNOB_CONSTRAINTS, *REPULSION_CONSTRAINT)

    def __init__(
        self,
        *,
        n_interpolation_points=GRID_KNOB_DEFAULTS["n_interpolation_points"],
        min_num_intervals=GRID_KNOB_DEFAULTS["min_num_intervals"],
        ints_in_interval=GRID_KNOB_DEFAULTS["ints_in_interval"],
        max_num_intervals=GRID_KNOB_DEFAULTS["max_num_intervals"],
        repulsion="auto",
        n_threads=1,
    ):
        super().__init__(n_threads=n_threads)
        check_grid_knobs(
            n_interpolation_points,
            min_num_intervals,
            ints_in_interval,
            max_num_intervals,
            caller=type(self).__name__,
        )
        self.n_interpolation_points = n_interpolation_points
        self.min_num_intervals = min_num_intervals
        self.ints_in_interval = ints_in_interval
        self.max_num_intervals = max_num_intervals
        check_params(
            REPULSION_CONSTRAINT, {"repulsion": repulsion}, type(self).__name__
        )
        self.repulsion = repulsion
        self.n_tree_calls = 0
        self.n_grid_calls = 0
        self._workspace = _Workspace()
        self._frozen_grids = {}

    @classmethod
    def is_usable_for(cls, *, n_components, device):
        """Usable on the CPU for 1-D and 2-D embeddings."""
        return device == "cpu" and n_components in (1, 2)

    def _grid_knobs(self):
        return {knob: getattr(self, knob) for knob in GRID_KNOB_CONSTRAINTS}

    def _repulsion(self, Y, dof, out):
        if Y.shape[0] <= _DIRECT_MAX_N:
            return bh_repulsion(
                Y, 0.0, dof, out, self.n_threads, workspace=self._workspace
            )
        lo, hi = bounding_box(Y)
        grid = InterpolationGrid.covering(lo, hi, **self._grid_knobs())
        # A 1-D grid's FFT is cheap at any span (docs/fft.rst), so 1-D calls
        # stay on the grid.
        if (
            self.repulsion == "auto"
            and Y.shape[1] == 2
            and _tree_is_cheaper(Y.shape[0], grid)
        ):
            self.n_tree_calls += 1
            return bh_repulsion(
                Y, _TREE_ANGLE, dof, out, self.n_threads, workspace=self._workspace
            )
        self.n_grid_calls += 1
        return _repulsion_on_grid(Y, grid, dof, out, self.n_threads)

    def _prepare_reference(self, reference):
        self._frozen_grids = {}

    def _exact_frozen(self, Y, reference, dof, out, sum_w):
        """Exact sums against the frozen points (an angle-0 walk), in double."""
        bh_repulsion_from_frozen(
            reference, Y, 0.0, dof, out, sum_w, self.n_threads, self._workspace
        )

    def _frozen_repulsion(self, Y, reference, dof, out, sum_w):
        if reference.shape[0] <= _FROZEN_DIRECT_MAX_N:
            self._exact_frozen(Y, reference, dof, out, sum_w)
            return
        key = (dof, reference.dtype)
        if key not in self._frozen_grids:
            self._frozen_grids[key] = FrozenInterpolation(
                reference, dof, self.n_threads, **self._grid_knobs()
            )
        repulsion = np.empty(Y.shape, dtype=np.float64)
        on_grid = self._frozen_grids[key](Y, repulsion, sum_w)
        off_grid = np.flatnonzero(~on_grid)
        if off_grid.size:
            Y_off = np.ascontiguousarray(Y[off_grid])
            repulsion_off = np.empty_like(Y_off)
            sum_w_off = np.empty(off_grid.size, dtype=np.float64)
            self._exact_frozen(Y_off, reference, dof, repulsion_off, sum_w_off)
            repulsion[off_grid] = repulsion_off
            sum_w[off_grid] = sum_w_off
        out[...] = repulsion
