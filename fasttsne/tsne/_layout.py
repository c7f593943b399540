"""The cache-friendly numbering of the points of a large fit, and its inverse.

Every iteration, the attraction gathers ``y_j`` for every stored ``p_ij``.
In the input's order (often random) each gather misses the caches once the
embedding outgrows them. From ``_REORDER_MIN_SAMPLES`` points on, a fit
therefore numbers the points in the reverse Cuthill-McKee order of their kNN
graph (:func:`_locality_order`, applied by ``joint_probabilities(...,
reorder=True)`` to the kNN arrays before P is built), initialises and
optimises in that numbering, and hands the embedding and every callback the
rows back in the input's order (:func:`_in_input_order`,
:func:`_callback_in_input_order`). The numbering is a pure relabelling: P,
the embedding and the KL divergence describe the same points. Its measured
effect is in docs/neighbors.rst.
"""

import numpy as np
from scipy import sparse
from scipy.sparse.csgraph import reverse_cuthill_mckee

# From this many samples on, a fit optimises the points in _locality_order.
# A 2-D embedding takes 16 bytes a point: below 20k (320 KB) it stays in a
# core's L2 cache whatever the order. A reasoned bound, not a measured
# crossover (docs/neighbors.rst has the measured gains at larger sizes).
_REORDER_MIN_SAMPLES = 20_000


def _locality_order(indices, indptr):
    """A numbering of the points that keeps kNN neighbours close in memory.

    The reverse Cuthill-McKee order of the kNN graph (a breadth-first
    numbering, scipy's implementation, out-edges only) puts the neighbours
    of most points within a few thousand rows of each other.

    Parameters
    ----------
    indices : ndarray of shape (n_samples, n_neighbors)
        The neighbours of each point (any integer dtype).
    indptr : ndarray of shape (n_samples + 1,)
        Row offsets of ``indices.ravel()``, as in CSR.

    Returns
    -------
    order : ndarray of shape (n_samples,), intp
        ``order[a]`` is the input row numbered ``a``.
    """
    n_samples = indptr.shape[0] - 1
    graph = sparse.csr_matrix(
        (np.ones(indices.size, dtype=np.int8), indices.ravel(), indptr),
        shape=(n_samples, n_samples),
    )
    return reverse_cuthill_mckee(graph, symmetric_mode=True).astype(np.intp)


def _in_input_order(Y, order):
    """The rows of ``Y``, numbered in ``order``, back in the input's order."""
    embedding = np.empty_like(Y)
    embedding[order] = Y
    return embedding


def _callback_in_input_order(callback, order):
    """``callback`` seeing the embedding rows in the input's order."""

    def reordered(iteration, kl, Y):
        return callback(iteration, kl, _in_input_order(Y, order))

    return reordered
