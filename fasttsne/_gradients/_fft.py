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
many times over (openTSNE's cliff; it stops at 1000 boxes per axis). We cap
the boxes per axis at ``max_num_intervals`` (default 200); beyond it the boxes
widen to ``span / 200`` and the interpolation error grows. Measured with
``benchmarks/bench_fft_gradient.py --span`` (N = 100,000, 20-cluster mixture,
2-D, 1 thread on a loaded 2-core machine; error = relative 2-norm error of
the repulsion over 2,000 random points against the exact sums):

CAP_TABLE_PLACEHOLDER
"""

import numpy as np

from fasttsne._cython._forces import attractive_forces, kl_attraction_term
from fasttsne._cython._interp import DEFAULT_MAX_NUM_INTERVALS, fft_repulsion
from fasttsne._gradients import register_backend


@register_backend
class FFTGradient:
    """t-SNE gradient with the repulsion by FFT-accelerated interpolation (FIt-SNE).

    Cost O(N p^d) per call for the points plus O(G log G) for a grid of G
    nodes, against O(N^2) for :class:`~fasttsne._gradients._exact.ExactGradient`;
    1-D and 2-D embeddings on the CPU.

    Parameters
    ----------
    n_interpolation_points : int, default=3
        Equispaced Lagrange nodes per box and axis.
    min_num_intervals : int, default=50
        Fewest boxes per axis.
    ints_in_interval : float, default=1.0
        Target box width in embedding units.
    max_num_intervals : int, default=DEFAULT_MAX_NUM_INTERVALS
        Most boxes per axis, bounding the cost of a call on a wide embedding
        at the price of accuracy (see the module notes); 0 for no cap.
    """

    name = "fft"
    aliases = ("fitsne", "interpolation")

    def __init__(
        self,
        n_interpolation_points=3,
        min_num_intervals=50,
        ints_in_interval=1.0,
        max_num_intervals=DEFAULT_MAX_NUM_INTERVALS,
    ):
        self.n_interpolation_points = n_interpolation_points
        self.min_num_intervals = min_num_intervals
        self.ints_in_interval = ints_in_interval
        self.max_num_intervals = max_num_intervals

    def is_usable_for(self, embedding, *, n_components, device):
        """Usable on the CPU for 1-D and 2-D embeddings."""
        del embedding
        return device == "cpu" and n_components in (1, 2)

    def __call__(self, Y, P, *, dof, exaggeration, compute_error, n_threads):
        """Return ``(kl or None, gradient)`` for embedding ``Y`` and CSR ``P``.

        Parameters
        ----------
        Y : ndarray of shape (n_samples, n_components)
            The embedding, float32 or float64; other dtypes run in float64.
        P : sparse matrix of shape (n_samples, n_samples)
            Symmetric joint affinities summing to 1, CSR.
        dof : float
            Degrees of freedom of the heavy-tailed kernel.
        exaggeration : float
            Factor on the attraction term.
        compute_error : bool
            Whether to return the KL divergence (of the unexaggerated P).
        n_threads : int
            Threads; the result does not depend on it.

        Returns
        -------
        kl : float or None
            KL(P || Q) when ``compute_error``.
        grad : ndarray of shape (n_samples, n_components), dtype of Y
            ``4 (exaggeration sum_j p_ij (y_i - y_j) / t_ij - (1 / Z) sum_j
            (w_ij / t_ij) (y_i - y_j))``.
        """
        if Y.dtype not in (np.float32, np.float64):
            Y = Y.astype(np.float64)
        Y = np.ascontiguousarray(Y)
        P = P.tocsr()
        indptr = P.indptr
        indices = P.indices.astype(indptr.dtype, copy=False)
        data = np.ascontiguousarray(P.data, dtype=Y.dtype)

        repulsion = np.empty_like(Y)
        Z = fft_repulsion(
            Y,
            dof,
            self.n_interpolation_points,
            self.min_num_intervals,
            self.ints_in_interval,
            repulsion,
            n_threads,
            self.max_num_intervals,
        )
        grad = np.empty_like(Y)
        attractive_forces(indptr, indices, data, Y, dof, exaggeration, grad, n_threads)
        # Z is a sum of positive kernels over the pairs; it can only fail to be
        # positive without pairs (one point), where the repulsion is empty.
        if Z > 0:
            grad -= repulsion / Y.dtype.type(Z)
        grad *= 4

        kl = None
        if compute_error:
            kl = kl_attraction_term(indptr, indices, data, Y, dof, n_threads)
            kl += float(np.sum(P.data, dtype=np.float64)) * np.log(
                max(Z, np.finfo(float).tiny)
            )
            kl = float(kl)
        return kl, grad
