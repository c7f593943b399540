"""FIt-SNE gradient backend: sparse attraction plus FFT-interpolated repulsion.

The repulsion and its normaliser ``Z`` come from
:func:`fasttsne._cython._interp.fft_repulsion` (Linderman et al. 2019: Lagrange
interpolation onto an equispaced grid, kernel sums by the FFT of the circulant
embedding of the Toeplitz kernel matrix); the attraction and the attraction
part of the KL divergence come from ``fasttsne._cython._forces``, shared with
the Barnes-Hut backend. See ``_interp.pyx`` for the derivation of the charges
for any ``dof`` and for the complexity.

The grid cap (``max_num_intervals``)
------------------------------------
With ``ints_in_interval = 1`` a grid axis gets one box per unit of span, and
the FFT work grows with the square of the span in 2-D: late in a long run on
a large data set the span reaches several hundred and each call slows down
many times over (openTSNE's cliff; it only stops at 1000 boxes per axis). We
cap the boxes per axis of 2-D grids at ``max_num_intervals`` (default 300);
past it the boxes widen to ``span / 300`` and the interpolation error grows
about like the fourth power of the box width. Measured with
``benchmarks/bench_fft_gradient.py --span --caps 0 400 300 200`` (N = 100,000,
20-cluster mixture, 2 threads; ms per call, medians of 3 on a shared 2-core
machine at load ~5, so times are rough; error = relative 2-norm error of the
repulsion over 1,000 random points against exact sums, deterministic):

====  ============  ============  ============  ============  ============
span  no cap        cap 400       cap 300       cap 200       openTSNE
====  ============  ============  ============  ============  ============
 100    82  9.8e-3    53  9.8e-3    30  9.8e-3    32  9.8e-3   208  1.1e-2
 200   357  9.3e-3   329  9.3e-3   353  9.3e-3   348  9.3e-3   585  1.0e-2
 300   352  1.1e-2   388  1.1e-2   372  1.1e-2   170  4.4e-2   547  1.2e-2
 400   943  1.5e-2  1125  1.5e-2   525  3.5e-2   237  1.6e-1  1818  1.6e-2
 600  2798  2.2e-2   743  7.5e-2   399  2.2e-1   185  1.0e+0  4259  2.3e-2
====  ============  ============  ============  ============  ============

Why 300: every span up to 300 (N up to about a million at exaggeration 1)
runs uncapped, at the accuracy of openTSNE; beyond it a call costs what it
costs at span 300 (7x less than uncapped at span 600), with an error no more
than about twice the uncapped one up to span 400. Capping lower costs accuracy
fast (cap 200: 1.6e-1 at span 400). Use ``max_num_intervals=0`` for no cap.
"""

from fasttsne._cython._interp import (
    DEFAULT_MAX_NUM_INTERVALS,
    MAX_INTERPOLATION_POINTS,
    fft_repulsion,
)
from fasttsne._cython._quadtree import _Workspace, bh_repulsion
from fasttsne.tsne._gradients import register_backend
from fasttsne.tsne._gradients._sparse import SparseAttractionBackend

# Below this many points the exact O(N^2) sums (a Barnes-Hut walk at angle 0)
# are cheaper than the smallest grid (min_num_intervals=50, 3 nodes: a 300 x 300
# FFT, ~6 ms a call); the same choice scipy.signal.convolve makes between direct
# and FFT convolution. Measured on one core: exact 2.3 ms vs FFT 6.1 ms at
# N = 1000, 9.1 ms vs 7.0 ms at N = 2000.
_DIRECT_MAX_N = 1500


@register_backend
class FFTGradient(SparseAttractionBackend):
    """t-SNE gradient with the repulsion by FFT-accelerated interpolation (FIt-SNE).

    The attraction is summed exactly over the stored entries of the sparse P
    (O(nnz)); the repulsion and the normaliser Z are interpolated on a grid in
    O(N p^d) plus O(G log G) for a grid of G nodes (Linderman et al. 2019),
    against O(N^2) for :class:`~fasttsne.tsne._gradients._exact.ExactGradient`.
    1-D and 2-D embeddings on the CPU.

    Parameters
    ----------
    n_interpolation_points : int, default=3
        Equispaced Lagrange nodes per box and axis, at most
        ``fasttsne._cython._interp.MAX_INTERPOLATION_POINTS`` (12).
    min_num_intervals : int, default=50
        Fewest boxes per axis.
    ints_in_interval : float, default=1.0
        Target box width in embedding units.
    max_num_intervals : int, default=300
        Most boxes per axis of a 2-D grid, bounding the cost of a call on a
        wide embedding at the price of accuracy (see the module notes); 0 for
        no cap. 1-D grids are not capped.

    Notes
    -----
    Up to ``_DIRECT_MAX_N`` (1500) points the repulsion is summed exactly
    instead, which is both cheaper than the smallest grid and exact.

    One instance lives for one fit: it keeps the force buffers and the cast
    copy of ``P`` (when its dtype or index types need one) between calls.
    These caches are dropped when the instance is pickled. Results are bitwise
    identical for any ``n_threads``.
    """

    name = "fft"
    aliases = ("fitsne", "interpolation")

    _knobs = (
        "n_interpolation_points",
        "min_num_intervals",
        "ints_in_interval",
        "max_num_intervals",
    )

    def __init__(
        self,
        n_interpolation_points=3,
        min_num_intervals=50,
        ints_in_interval=1.0,
        max_num_intervals=DEFAULT_MAX_NUM_INTERVALS,
    ):
        super().__init__()
        if not 1 <= n_interpolation_points <= MAX_INTERPOLATION_POINTS:
            raise ValueError(
                f"n_interpolation_points={n_interpolation_points} must be between 1 "
                f"and {MAX_INTERPOLATION_POINTS}."
            )
        if 0 < max_num_intervals < min_num_intervals:
            raise ValueError(
                f"max_num_intervals={max_num_intervals} is below "
                f"min_num_intervals={min_num_intervals} (0 means no cap)."
            )
        self._workspace = _Workspace()
        self.n_interpolation_points = n_interpolation_points
        self.min_num_intervals = min_num_intervals
        self.ints_in_interval = ints_in_interval
        self.max_num_intervals = max_num_intervals

    def is_usable_for(self, embedding, *, n_components, device):
        """Usable on the CPU for 1-D and 2-D embeddings."""
        del embedding
        return device == "cpu" and n_components in (1, 2)

    def _repulsion(self, Y, dof, out, n_threads):
        if Y.shape[0] <= _DIRECT_MAX_N:
            return bh_repulsion(Y, 0.0, dof, out, n_threads, workspace=self._workspace)
        return fft_repulsion(
            Y,
            dof,
            self.n_interpolation_points,
            self.min_num_intervals,
            self.ints_in_interval,
            out,
            n_threads,
            self.max_num_intervals,
        )
