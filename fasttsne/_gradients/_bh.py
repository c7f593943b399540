"""Barnes-Hut t-SNE gradient: sparse attraction plus tree-approximated repulsion."""

import numpy as np

from fasttsne._cython._forces import attractive_forces, kl_attraction_term
from fasttsne._cython._quadtree import _Workspace, bh_repulsion, bh_repulsion_reference
from fasttsne._gradients import register_backend


@register_backend
class BarnesHutGradient:
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

    def __init__(self, angle=0.5):
        self.angle = angle
        self._forces = None
        self._csr_source = None
        self._csr_arrays = None
        self._workspace = _Workspace()

    def __getstate__(self):
        return {"angle": self.angle}

    def __setstate__(self, state):
        self.__init__(**state)

    def is_usable_for(self, embedding, *, n_components, device):
        """Usable on the CPU for 1-, 2- and 3-dimensional embeddings."""
        del embedding
        return device == "cpu" and 1 <= n_components <= 3

    def _buffers(self, Y):
        """Reusable (attraction, repulsion) arrays shaped and typed like Y."""
        if (
            self._forces is None
            or self._forces[0].shape != Y.shape
            or self._forces[0].dtype != Y.dtype
        ):
            self._forces = (np.empty_like(Y), np.empty_like(Y))
        return self._forces

    def _csr(self, P, dtype):
        """(indptr, indices, data) of P: int32 indices and ``dtype`` values.

        The attraction streams P once per call and is bound by memory
        bandwidth, so 64-bit indices (what scipy gives large or concatenated
        matrices) are narrowed to 32 bits whenever they fit. The converted
        copy is cached for as long as P's arrays stay the same objects, so a
        fit converts at most once.
        """
        source = (P.indptr, P.indices, P.data, dtype)
        cached = self._csr_source
        if cached is not None and all(a is b for a, b in zip(cached, source)):
            return self._csr_arrays
        index_dtype = np.int32 if P.nnz < np.iinfo(np.int32).max else np.int64
        if P.shape[1] > np.iinfo(np.int32).max:
            index_dtype = np.int64
        arrays = (
            np.ascontiguousarray(P.indptr, dtype=index_dtype),
            np.ascontiguousarray(P.indices, dtype=index_dtype),
            np.ascontiguousarray(P.data, dtype=dtype),
        )
        self._csr_source = source
        self._csr_arrays = arrays
        return arrays

    def __call__(self, Y, P, *, dof, exaggeration, compute_error, n_threads):
        """Return ``(kl or None, gradient)`` for embedding ``Y`` and CSR ``P``.

        Parameters
        ----------
        Y : ndarray of shape (n_samples, n_components)
            The embedding, float32 or float64 (other dtypes become float64).
        P : sparse matrix of shape (n_samples, n_samples)
            Symmetric joint affinities in CSR format, summing to 1.
        dof : float
            Degrees of freedom of the heavy-tailed kernel.
        exaggeration : float
            Factor on the attraction; P itself is never modified.
        compute_error : bool
            Whether to return the KL divergence (with the unexaggerated P).
        n_threads : int
            OpenMP threads; the result does not depend on it.

        Returns
        -------
        kl : float or None
            ``KL(P || Q)`` when ``compute_error``, else None.
        grad : ndarray of shape (n_samples, n_components)
            The gradient, in Y's dtype.
        """
        if Y.dtype not in (np.float32, np.float64):
            Y = Y.astype(np.float64)
        Y = np.ascontiguousarray(Y)
        if P.shape != (Y.shape[0], Y.shape[0]):
            raise ValueError(
                f"P has shape {P.shape}, expected {(Y.shape[0], Y.shape[0])}."
            )
        indptr, indices, data = self._csr(P, Y.dtype)
        attraction, repulsion = self._buffers(Y)
        attractive_forces(
            indptr, indices, data, Y, dof, exaggeration, attraction, n_threads
        )
        Z = bh_repulsion(
            Y, self.angle, dof, repulsion, n_threads, workspace=self._workspace
        )
        # grad = 4 (attraction - repulsion / Z); Z = 0 only without pairs.
        scale = 4.0 / Z if Z > 0 else 0.0
        grad = repulsion * Y.dtype.type(-scale)
        grad += attraction * Y.dtype.type(4.0)
        kl = None
        if compute_error:
            total_p = float(np.sum(data, dtype=np.float64))
            kl = kl_attraction_term(indptr, indices, data, Y, dof, n_threads)
            if Z > 0:
                kl += total_p * float(np.log(Z))
        return kl, grad


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
        bh_repulsion_reference(
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
