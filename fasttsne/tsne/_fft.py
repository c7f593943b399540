"""FFTInterpTSNE: t-SNE with FFT-accelerated interpolation of the repulsion."""

from numbers import Integral

from fasttsne.tsne._base import _BaseTSNE, _fill_doc
from fasttsne.tsne._gradients._fft import REPULSION_CONSTRAINT
from fasttsne.tsne._gradients._interpolation import (
    DEFAULT_MAX_NUM_INTERVALS,
    GRID_KNOB_CONSTRAINTS,
)
from fasttsne._validation import Interval


@_fill_doc
class FFTInterpTSNE(_BaseTSNE):
    """t-SNE with repulsive forces by interpolation onto a grid and FFT.

    Embeds high-dimensional data in 1 or 2 dimensions like
    :class:`BarnesHutTSNE`, but sums the repulsive forces with FIt-SNE's
    scheme: charges are spread from the points onto an equispaced grid of
    Lagrange interpolation nodes, the kernel sums between all pairs of nodes
    are one FFT convolution (the kernel matrix on the grid is Toeplitz and is
    embedded in a circulant), and the potentials are interpolated back to the
    points. The cost per iteration is O(N) plus O(G log G) in the grid size G.

    .. versionadded:: 0.1

    Parameters
    ----------
    {common_parameters}

    n_interpolation_points : int, default=3
        Lagrange interpolation nodes per grid interval (per dimension), 1 to 12.

    min_num_intervals : int, default=50
        Minimum number of grid intervals per dimension. With the other
        defaults a 2-D grid has at least 150 x 150 nodes whatever the number
        of points, which is why ``repulsion="auto"`` takes the Barnes-Hut
        walk at every iteration from 1,501 to about 18,600 points (up to
        1,500 the fit sums exactly).

    ints_in_interval : float, default=1.0
        Width of an interval in embedding units: the grid has
        ``max(min_num_intervals, span / ints_in_interval)`` intervals per
        dimension (rounded up to an FFT-friendly size).

    max_num_intervals : int, default=300
        Cap on the intervals per dimension of a 2-D grid (0: no cap), at least
        ``min_num_intervals``. The grid grows with the embedding's span and a
        call's FFT with its square; past the cap intervals widen instead,
        trading accuracy for speed (measured in the documentation's FFT
        page). A 1-D grid may have the square of the cap, as many nodes as
        the largest 2-D grid. Without a cap, a grid of more than 2^24 nodes
        is refused with a ``ValueError``.

    repulsion : {"auto", "grid"}, default="auto"
        How the repulsion of a fit of more than 1,500 points is summed on the
        CPU. "grid": on the interpolation grid at every iteration (FIt-SNE's
        method, whatever the knobs above). "auto": a 2-D iteration whose grid
        would cost more than a Barnes-Hut walk, by a cost model of the number
        of points and the grid size, takes the walk at
        :class:`BarnesHutTSNE`'s default angle (0.5) instead. With the default
        grid knobs that is every iteration from 1,501 to about 18,600 points, early
        exaggeration included, and above it the iterations on a wide
        embedding (see Notes). The cost model applies to the grid that the
        knobs above give, at their defaults or not: to compare grid knobs
        (e.g. in ``GridSearchCV``), set "grid". 1-D fits and ``transform``
        always use the grid. On a CUDA device the grid is used at every
        iteration whatever this parameter: the GPU backend has no tree.

        .. versionadded:: 0.2

    Attributes
    ----------
    {common_attributes}

    n_tree_calls_ : int
        Gradient evaluations of the fit (one per iteration, and one more for
        each KL divergence reported) whose repulsion took the Barnes-Hut walk
        (``repulsion="auto"``); 0 when every one used the grid or exact sums,
        and on a CUDA device.

        .. versionadded:: 0.2

    See Also
    --------
    BarnesHutTSNE : t-SNE with Barnes-Hut repulsion; also 3-D.
    sklearn.manifold.TSNE : scikit-learn's t-SNE.

    Notes
    -----
    Below 1,500 points the repulsion is summed exactly (O(N^2)), which is
    cheaper than the smallest interpolation grid there, as
    :func:`scipy.signal.convolve` picks direct over FFT convolution for short
    signals. Above it, with ``repulsion="auto"``, a 2-D fit's iteration whose
    grid would cost more than a Barnes-Hut walk takes the walk at
    :class:`BarnesHutTSNE`'s default angle instead. The grid follows the
    embedding's span, not the number of points, and has at least 50 boxes
    per axis, so with the default knobs every iteration from 1,501 to about
    18,600 points takes the walk, at any span, early exaggeration included; above
    it, only iterations on a wide embedding do (at 100,000 points past a span
    of about 113, at 250,000 past about 188), and at 1,000,000 points none
    (the grid is capped). The choice is a cost model of the number of points
    and the grid size, the same for any ``n_jobs``; ``n_tree_calls_`` says how
    many iterations took the walk. Under early exaggeration the walk is less
    accurate than the fine minimum grid, on a wide embedding more accurate
    than the default grid. ``repulsion="grid"`` interpolates at every
    iteration. A CUDA fit always interpolates, so CPU and CUDA fits use
    different methods at the defaults. See the documentation's FFT page.

    Same optimisation schedule, learning-rate convention and determinism as
    :class:`BarnesHutTSNE`. ``transform`` places new points one by one against
    the frozen embedding: its charges are spread and convolved once on a grid
    that covers it with a margin, and each step only interpolates at the new
    points; a new point off that grid (or against a frozen embedding of a few
    dozen points) gets exact sums.

    On a CUDA device (``device="cuda"``, or ``"auto"`` with the ``gpu`` extra
    and a visible device) the same grid is spread and interpolated by Triton
    kernels and convolved by ``torch.fft``, at every size, and the whole
    optimisation stays on the device; ``transform`` then sums the repulsion
    from the frozen embedding exactly. See the documentation's GPU page.

    References
    ----------
    .. [1] Linderman, G. C., Rachh, M., Hoskins, J. G., Steinerberger, S. and
       Kluger, Y. (2019). Fast interpolation-based t-SNE for improved
       visualization of single-cell RNA-seq data. Nature Methods 16, 243-245.
    .. [2] Poličar, P. G., Stražar, M. and Zupan, B. (2024). openTSNE: a modular
       Python library for t-SNE dimensionality reduction and embedding. Journal
       of Statistical Software 109(3).

    Examples
    --------
    >>> import numpy as np
    >>> from fasttsne import FFTInterpTSNE
    >>> X = np.random.default_rng(0).normal(size=(60, 5))
    >>> tsne = FFTInterpTSNE(perplexity=10, max_iter=300, random_state=0)
    >>> tsne.fit_transform(X).shape
    (60, 2)
    """

    _parameter_constraints: dict = {
        **_BaseTSNE._parameter_constraints,
        "n_components": [Interval(Integral, 1, 2, closed="both")],
        **GRID_KNOB_CONSTRAINTS,
        **REPULSION_CONSTRAINT,
    }

    _backend_preference: dict = {"cpu": ("fft",), "cuda": ("triton_fft",)}

    def __init__(
        self,
        n_components=2,
        *,
        perplexity=30.0,
        affinity="perplexity",
        n_neighbors=15,
        early_exaggeration=12.0,
        early_exaggeration_iter=250,
        exaggeration=None,
        learning_rate="auto",
        max_iter=750,
        n_iter_without_progress=300,
        min_grad_norm=1e-7,
        metric="euclidean",
        metric_params=None,
        init="pca",
        warm_start=False,
        dof=1.0,
        neighbors="auto",
        device="auto",
        callbacks=None,
        callbacks_every_iters=50,
        verbose=0,
        random_state=None,
        n_jobs=None,
        n_interpolation_points=3,
        min_num_intervals=50,
        ints_in_interval=1.0,
        max_num_intervals=DEFAULT_MAX_NUM_INTERVALS,
        repulsion="auto",
    ):
        super().__init__(
            n_components,
            perplexity=perplexity,
            affinity=affinity,
            n_neighbors=n_neighbors,
            early_exaggeration=early_exaggeration,
            early_exaggeration_iter=early_exaggeration_iter,
            exaggeration=exaggeration,
            learning_rate=learning_rate,
            max_iter=max_iter,
            n_iter_without_progress=n_iter_without_progress,
            min_grad_norm=min_grad_norm,
            metric=metric,
            metric_params=metric_params,
            init=init,
            warm_start=warm_start,
            dof=dof,
            neighbors=neighbors,
            device=device,
            callbacks=callbacks,
            callbacks_every_iters=callbacks_every_iters,
            verbose=verbose,
            random_state=random_state,
            n_jobs=n_jobs,
        )
        self.n_interpolation_points = n_interpolation_points
        self.min_num_intervals = min_num_intervals
        self.ints_in_interval = ints_in_interval
        self.max_num_intervals = max_num_intervals
        self.repulsion = repulsion

    def _backend_knobs(self):
        return {
            knob: getattr(self, knob)
            for knob in (*GRID_KNOB_CONSTRAINTS, *REPULSION_CONSTRAINT)
        }

    def _record_backend(self, backend, progress):
        self.n_tree_calls_ = getattr(backend, "n_tree_calls", 0)
        progress.info(
            f"repulsion: Barnes-Hut walk at {self.n_tree_calls_} gradient "
            f"evaluations, grid at {getattr(backend, 'n_grid_calls', 0)}"
        )
