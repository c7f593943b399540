"""BarnesHutTSNE: t-SNE with Barnes-Hut repulsion on a space-partitioning tree."""

from numbers import Integral, Real

from fasttsne.tsne._base import _BaseTSNE, _fill_doc
from fasttsne._validation import Interval


@_fill_doc
class BarnesHutTSNE(_BaseTSNE):
    """t-SNE with Barnes-Hut approximation of the repulsive forces.

    Embeds high-dimensional data in 1, 2 or 3 dimensions by minimising the
    KL divergence between input affinities (Gaussian kernels calibrated to a
    perplexity over each point's nearest neighbours) and output similarities
    (a heavy-tailed kernel). Repulsive forces are summed over a
    space-partitioning tree (binary tree, quadtree or octree), rebuilt every
    iteration, in O(N log N) per iteration and in parallel over points.

    .. versionadded:: 0.1

    Parameters
    ----------
    {common_parameters}

    angle : float, default=0.5
        Barnes-Hut opening angle theta: a tree cell of width ``w`` at distance
        ``d`` is summarised by its centre of mass when ``w / d < angle``. 0 gives
        the exact O(N^2) sums; larger values are faster and less accurate. Not
        used on the GPU (``device_ == "cuda"``), which sums exactly.

    Attributes
    ----------
    {common_attributes}

    See Also
    --------
    FFTInterpTSNE : t-SNE with FFT-accelerated interpolation, O(N) per
        iteration; faster beyond a few tens of thousands of points.
    sklearn.manifold.TSNE : scikit-learn's t-SNE.

    Notes
    -----
    The optimisation runs ``early_exaggeration_iter`` iterations with the
    attraction multiplied by ``early_exaggeration`` and momentum 0.5, then the
    rest of ``max_iter`` with momentum 0.8, using gains (Jacobs 1988) and a
    per-point step-norm cap. The gradient is
    ``4 sum_j (a p_ij - q_ij) (y_i - y_j) / (1 + |y_i - y_j|^2 / dof)``.

    Results are bitwise reproducible for a fixed ``random_state``, whatever
    ``n_jobs``: every parallel loop writes per-point slots and global sums are
    reduced serially in a fixed order.

    ``transform`` places new points one by one against the frozen embedding
    (openTSNE's approach): a training row returns its own ``embedding_`` entry.

    On a CUDA device (``device="cuda"``, or ``"auto"`` with the ``gpu`` extra
    and a visible device) the repulsion is summed exactly, in O(N^2) work and
    O(N) memory, by Triton kernels written like flash attention, and the
    whole optimisation stays on the device; see the documentation's GPU page.

    References
    ----------
    .. [1] van der Maaten, L. (2014). Accelerating t-SNE using tree-based
       algorithms. Journal of Machine Learning Research 15, 3221-3245.
    .. [2] Belkina, A. C. et al. (2019). Automated optimized parameters for
       t-distributed stochastic neighbor embedding improve visualization and
       analysis of large datasets. Nature Communications 10, 5415.
    .. [3] Kobak, D. et al. (2019). Heavy-tailed kernels reveal a finer cluster
       structure in t-SNE visualisations. ECML PKDD 2019.

    Examples
    --------
    >>> import numpy as np
    >>> from fasttsne import BarnesHutTSNE
    >>> X = np.random.default_rng(0).normal(size=(60, 5))
    >>> tsne = BarnesHutTSNE(perplexity=10, max_iter=300, random_state=0)
    >>> tsne.fit_transform(X).shape
    (60, 2)
    >>> tsne.transform(X[:3]).shape
    (3, 2)
    """

    _parameter_constraints: dict = {
        **_BaseTSNE._parameter_constraints,
        "n_components": [Interval(Integral, 1, 3, closed="both")],
        "angle": [Interval(Real, 0, 1, closed="both")],
    }

    _backend_preference: dict = {"cpu": ("bh",), "cuda": ("triton",)}

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
        angle=0.5,
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
        self.angle = angle

    def _backend_knobs(self):
        return {"angle": self.angle}
