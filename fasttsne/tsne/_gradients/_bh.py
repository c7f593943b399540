"""Barnes-Hut t-SNE gradient: sparse attraction plus tree-approximated repulsion."""

import numpy as np

from fasttsne._cython._quadtree import (
    _Workspace,
    bh_repulsion,
    bh_repulsion_from_frozen,
    build_frozen_tree,
)
from fasttsne.tsne._gradients._sparse import SparseAttractionBackend

#: The default Barnes-Hut opening angle (``BarnesHutTSNE``'s signature spells
#: it out for its users, and a test checks that it agrees).
DEFAULT_ANGLE = 0.5


class BarnesHutGradient(SparseAttractionBackend):
    """Gradient of t-SNE with the repulsion estimated by Barnes-Hut.

    The attraction is summed exactly over the stored entries of the sparse P
    (O(nnz)); the repulsion and the normaliser Z come from a 2^d-ary tree
    (binary tree, quadtree or octree) in O(N log N) (van der Maaten 2014,
    "Accelerating t-SNE using tree-based algorithms", JMLR 15). Against a
    frozen embedding (``transform``), its tree is built once by
    :meth:`prepare` and each new point is walked on its own, in double.

    Parameters
    ----------
    angle : float, default=0.5
        Opening angle of the Barnes-Hut approximation: a tree node stands for
        its points when the longest side of their bounding box is below
        ``angle`` times its distance to every point it is used for. ``0`` is
        exact (and O(N^2)).
    n_threads : int, default=1
        OpenMP threads; results are bitwise identical for any value.

    Notes
    -----
    The tree storage lives in a workspace kept from call to call, so that an
    iteration allocates nothing but the returned gradient.
    """

    name = "bh"
    aliases = ("barnes_hut", "barnes-hut")
    knobs = ("angle",)

    def __init__(self, *, angle=DEFAULT_ANGLE, n_threads=1):
        super().__init__(n_threads=n_threads)
        if np.isnan(angle) or angle < 0.0:
            raise ValueError(f"angle must be non-negative, got {angle}.")
        self.angle = angle
        self._workspace = _Workspace()

    @classmethod
    def is_usable_for(cls, *, n_components, device):
        """Usable on the CPU for 1-, 2- and 3-dimensional embeddings."""
        return device == "cpu" and 1 <= n_components <= 3

    def _repulsion(self, Y, dof, out):
        return bh_repulsion(
            Y, self.angle, dof, out, self.n_threads, workspace=self._workspace
        )

    def _prepare_reference(self, reference):
        build_frozen_tree(reference, self._workspace)

    def _frozen_repulsion(self, Y, reference, dof, out, sum_w):
        bh_repulsion_from_frozen(
            reference,
            Y,
            self.angle,
            dof,
            out,
            sum_w,
            self.n_threads,
            workspace=self._workspace,
        )
