"""Affinities: from the distances of the k nearest neighbours to t-SNE's P.

``X -> fasttsne._neighbors -> binary_search_perplexity -> symmetrize`` gives
the symmetric joint probabilities of a fit (:func:`joint_probabilities`);
:func:`new_point_affinities` gives the conditional probabilities of new
points over their training neighbours, for ``transform``. The neighbour
search itself lives in :mod:`fasttsne._neighbors`.
"""

import numpy as np
from scipy import sparse

from fasttsne._cython._perplexity import binary_search_perplexity, symmetrize
from fasttsne._neighbors import nearest_neighbors, new_point_neighbors
from fasttsne._utils import _Printer
from fasttsne.tsne._layout import _locality_order

__all__ = ["joint_probabilities", "new_point_affinities"]


def _squares_distances(metric):
    """Whether the calibration takes the metric's distances squared.

    This is scikit-learn's TSNE convention: only ``metric="euclidean"`` is
    squared; every other metric (including "l2") and precomputed distances
    are used as given.
    """
    return metric == "euclidean"


def joint_probabilities(
    X,
    perplexity,
    *,
    metric="euclidean",
    metric_params=None,
    neighbors="auto",
    n_threads=1,
    random_state=None,
    verbose=0,
    reorder=False,
):
    """Symmetric joint probabilities P of t-SNE over the kNN graph.

    Parameters
    ----------
    X : {ndarray, sparse matrix} of shape (n_samples, n_features) or \
            (n_samples, n_samples)
        Data, or a distance matrix with ``metric="precomputed"``.
    perplexity : float
        Target perplexity; ``k = min(n_samples - 1, int(3 * perplexity))``
        neighbours (at least 1) are used.
    metric : str or callable, default="euclidean"
        Any metric of :class:`sklearn.neighbors.NearestNeighbors`, or
        ``"precomputed"``. As in :class:`sklearn.manifold.TSNE`, euclidean
        distances are squared and every other metric is used as is.
    metric_params : dict, default=None
        Keyword arguments of the metric.
    neighbors : {"auto", "exact", "approx"}, default="auto"
        Nearest-neighbour search method (see
        :func:`fasttsne._neighbors.nearest_neighbors`).
    n_threads : int, default=1
        Number of threads. The result does not depend on it.
    random_state : int, RandomState instance or None, default=None
        Seeds the approximate search.
    verbose : int, default=0
        Print progress when positive.
    reorder : bool, default=False
        Number the points in a cache-friendly order (see
        :mod:`fasttsne.tsne._layout`) and return that order too.

    Returns
    -------
    P : scipy.sparse.csr_matrix of shape (n_samples, n_samples), float64
        ``(P_cond + P_cond.T)`` normalised to sum to 1: symmetric,
        non-negative, sorted indices, no stored diagonal and no stored zeros.
        With ``reorder``, ``P[a, b]`` is the affinity of the points
        ``order[a]`` and ``order[b]``.
    order : ndarray of shape (n_samples,), intp
        Only with ``reorder``: a permutation of the samples.

    Examples
    --------
    >>> import numpy as np
    >>> from fasttsne.tsne._affinity import joint_probabilities
    >>> X = np.random.default_rng(0).normal(size=(50, 3))
    >>> P = joint_probabilities(X, perplexity=5.0)
    >>> bool(abs(P.sum() - 1.0) < 1e-12), bool(abs(P - P.T).max() == 0.0)
    (True, True)
    """
    printer = _Printer(verbose)
    n_samples = X.shape[0]
    k = max(1, min(n_samples - 1, int(3 * perplexity)))
    indices, distances = nearest_neighbors(
        X,
        k,
        metric=metric,
        metric_params=metric_params,
        method=neighbors,
        n_threads=n_threads,
        random_state=random_state,
        squared=_squares_distances(metric),
    )
    printer(f"Computed {k} nearest neighbours of {n_samples} samples")
    conditional = binary_search_perplexity(
        np.ascontiguousarray(distances, dtype=np.float64), float(perplexity), n_threads
    )
    del distances
    printer(f"Calibrated the conditional probabilities to perplexity {perplexity}")
    # 32-bit indices whenever they fit: P is the largest object of a fit (and
    # the attraction streams it every iteration), so this halves its index part.
    index_dtype = np.int32 if n_samples * k < np.iinfo(np.int32).max // 2 else np.intp
    indices = indices.astype(index_dtype, copy=False)
    indptr = np.arange(0, n_samples * k + 1, k, dtype=index_dtype)
    if reorder:
        order = _locality_order(indices, indptr)
        inverse = np.empty(n_samples, dtype=index_dtype)
        inverse[order] = np.arange(n_samples, dtype=index_dtype)
        conditional = conditional[order]
        indices = inverse[indices[order]]
        del inverse
        printer("Numbered the points in reverse Cuthill-McKee order")
    conditional = sparse.csr_matrix(
        (conditional.ravel(), indices.ravel(), indptr), shape=(n_samples, n_samples)
    )
    # scipy narrows 64-bit index arrays whose values fit in 32 bits; P + P^T
    # can hold twice as many entries, so the chosen width is put back.
    conditional.indices, conditional.indptr = indices.ravel(), indptr
    del indices
    # Rows below their entropy floor hold exact zeros; both steps are in place.
    conditional.eliminate_zeros()
    conditional.sort_indices()
    # a_ij + a_ji and a_ji + a_ij round identically: P is bitwise symmetric.
    P = sparse.csr_matrix(
        symmetrize(
            conditional.data, conditional.indices, conditional.indptr, n_threads
        ),
        shape=(n_samples, n_samples),
    )
    del conditional
    P.data /= P.data.sum()
    if reorder:
        return P, order
    return P


def new_point_affinities(
    X_new, X_fit, perplexity, *, metric="euclidean", metric_params=None, n_threads=1
):
    """Conditional affinities of new points to the training points.

    Each new row is handled on its own: its result depends only on that row
    and ``X_fit``, bitwise, whatever batch it arrives in.

    Parameters
    ----------
    X_new : {ndarray, sparse matrix} of shape (n_new, n_features)
        New points, or with ``metric="precomputed"`` their distances to the
        training points, of shape (n_new, n_fit).
    X_fit : {ndarray, sparse matrix} of shape (n_fit, n_features)
        Training points. Only its number of rows is used with
        ``metric="precomputed"`` (it may then be any (n_fit, ...) array).
    perplexity : float
        Target perplexity; ``k = min(n_fit, int(3 * perplexity))`` neighbours
        (at least 1).
    metric : str or callable, default="euclidean"
        As in :func:`joint_probabilities`.
    metric_params : dict, default=None
        Keyword arguments of the metric.
    n_threads : int, default=1
        Number of threads. The result does not depend on it.

    Returns
    -------
    P_new : scipy.sparse.csr_matrix of shape (n_new, n_fit), float64
        p_{j|new} over the k nearest training points; rows sum to 1 (not
        symmetrised), sorted indices, no stored zeros.
    match : ndarray of shape (n_new,), intp
        Smallest index of a training row equal to the new row
        (``np.array_equal``), or -1; with ``metric="precomputed"``, the
        smallest index at distance exactly 0.

    Examples
    --------
    >>> import numpy as np
    >>> from fasttsne.tsne._affinity import new_point_affinities
    >>> X_fit = np.random.default_rng(0).normal(size=(30, 2))
    >>> P_new, match = new_point_affinities(X_fit[[4, 7]] + [0.0, 1e-3], X_fit, 3.0)
    >>> P_new.shape, match.tolist()
    ((2, 30), [-1, -1])
    >>> new_point_affinities(X_fit[[4, 7]], X_fit, 3.0)[1].tolist()
    [4, 7]
    """
    n_fit = X_fit.shape[0]
    n_new = X_new.shape[0]
    k = max(1, min(n_fit, int(3 * perplexity)))
    indices, distances, match = new_point_neighbors(
        X_new,
        X_fit,
        k,
        metric=metric,
        metric_params=metric_params,
        n_threads=n_threads,
        squared=_squares_distances(metric),
    )
    if n_new == 0:
        return sparse.csr_matrix((0, n_fit)), match
    conditional = binary_search_perplexity(
        np.ascontiguousarray(distances, dtype=np.float64), float(perplexity), n_threads
    )
    P_new = sparse.csr_matrix(
        (conditional.ravel(), indices.ravel(), np.arange(0, n_new * k + 1, k)),
        shape=(n_new, n_fit),
    )
    P_new.eliminate_zeros()
    P_new.sort_indices()
    return P_new, match
