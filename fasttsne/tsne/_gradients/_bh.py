"""Barnes-Hut t-SNE gradient: sparse attraction plus tree-approximated repulsion."""

import numpy as np

from fasttsne._cython._forces import attractive_forces
from fasttsne._cython._quadtree import (
    _Workspace,
    bh_repulsion,
    bh_repulsion_from_frozen,
)
from fasttsne.tsne._gradients import register_backend
from fasttsne.tsne._gradients._sparse import SparseAttractionBackend


@register_backend
class BarnesHutGradient(SparseAttractionBackend):
    """Gradient of t-SNE with the repulsion estimated by Barnes-Hut.

    The attraction is summed exactly over the stored entries of the sparse P
    (O(nnz)); the repulsion and the normaliser Z come from a 2^d-ary tree
    (binary tree, quadtree or octree) in O(N log N) (van der Maaten 2014,
    "Accelerating t-SNE using tree-based algorithms", JMLR 15).

    Parameters
    ----------
    angle : float, default=0.5
        Opening angle of the Barnes-Hut approximation: a tree node stands for
        its points when the longest side of their bounding box is below
        ``angle`` times its distance to every point it is used for. ``0`` is
        exact (and O(N^2)).

    Notes
    -----
    One instance lives for one fit: it keeps the tree storage, the force
    buffers and the cast copy of ``P`` (when its dtype or index types need one)
    between calls, so that an iteration allocates nothing but the returned
    gradient. These caches are dropped when the instance is pickled. Results
    are bitwise identical for any ``n_threads``.
    """

    name = "bh"
    aliases = ("barnes_hut", "barnes-hut")

    _knobs = ("angle",)

    def __init__(self, angle=0.5):
        super().__init__()
        self.angle = angle
        self._workspace = _Workspace()

    def is_usable_for(self, embedding, *, n_components, device):
        """Usable on the CPU for 1-, 2- and 3-dimensional embeddings."""
        del embedding
        return device == "cpu" and 1 <= n_components <= 3

    def _repulsion(self, Y, dof, out, n_threads):
        return bh_repulsion(
            Y, self.angle, dof, out, n_threads, workspace=self._workspace
        )


class NewPointGradient:
    """Gradient of out-of-sample points against a frozen reference embedding.

    For a new point ``y_i`` with conditional affinities ``p_{j|i}`` to the
    reference points ``r_j`` (rows of a CSR matrix summing to 1)::

        grad_i = 4 [sum_j p_{j|i} (y_i - r_j) / t_ij
                    - sum_j (w_ij / t_ij) (y_i - r_j) / sum_j w_ij]

    The repulsion is normalised per point, so each row depends only on itself
    and the reference, never on the other new points (openTSNE's approach to
    ``transform``). The reference tree is built once per instance and reused
    for every step.

    Parameters
    ----------
    reference : ndarray of shape (n_reference, n_components)
        The fitted embedding; it must not change while the instance is used.
    dof : float
        Degrees of freedom of the heavy-tailed kernel.
    angle : float
        Barnes-Hut opening angle for the repulsion from the reference.
    """

    def __init__(self, reference, *, dof, angle):
        self.reference = reference
        self.dof = dof
        self.angle = angle
        self._workspace = _Workspace()

    def __call__(self, Y, P_new, *, n_threads):
        """Return the gradient of the new points ``Y`` (in Y's dtype)."""
        expected = (Y.shape[0], self.reference.shape[0])
        if P_new.shape != expected:
            raise ValueError(f"P_new has shape {P_new.shape}, expected {expected}.")
        attraction = np.empty_like(Y)
        repulsion = np.empty_like(Y)
        sum_w = np.empty(Y.shape[0], dtype=np.float64)
        attractive_forces(
            P_new.indptr,
            P_new.indices,
            P_new.data,
            Y,
            self.dof,
            1.0,
            attraction,
            n_threads,
            Y_ref=self.reference,
        )
        bh_repulsion_from_frozen(
            self.reference,
            Y,
            self.angle,
            self.dof,
            repulsion,
            sum_w,
            n_threads,
            workspace=self._workspace,
        )
        grad = repulsion / sum_w[:, None]
        np.subtract(attraction, grad, out=grad)
        grad *= 4.0
        return grad.astype(Y.dtype, copy=False)
