"""Shared body of the backends with exact sparse attraction (Barnes-Hut, FFT).

Both compute ``grad = 4 (a * attraction - repulsion / Z)`` with the attraction
summed over the stored entries of P (``fasttsne._cython._forces``) and differ
only in how the repulsion and ``Z`` are estimated, which a subclass provides
as ``_repulsion(Y, dof, out, n_threads) -> Z``.
"""

import numpy as np

from fasttsne._cython._forces import attractive_forces, kl_attraction_term


class SparseAttractionBackend:
    """Base class: P handling, buffers, gradient assembly and KL.

    One instance lives for one fit: it keeps the force buffers and the cast
    copy of ``P`` between calls, so an iteration allocates nothing but the
    returned gradient. Pickling keeps only the constructor's knobs, listed by
    the subclass in ``_knobs``.
    """

    name = ""
    aliases = ()
    _knobs = ()

    def __init__(self):
        self._forces = None
        self._csr_source = None
        self._csr_arrays = None

    def __getstate__(self):
        return {knob: getattr(self, knob) for knob in self._knobs}

    def __setstate__(self, state):
        self.__init__(**state)

    def _repulsion(self, Y, dof, out, n_threads):
        """Write the unnormalised repulsion into ``out`` and return ``Z``."""
        raise NotImplementedError

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
        fits_32 = max(P.nnz, P.shape[1]) < np.iinfo(np.int32).max
        index_dtype = np.int32 if fits_32 else np.int64
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
            ``4 (exaggeration sum_j p_ij (y_i - y_j) / t_ij - (1 / Z) sum_j
            (w_ij / t_ij) (y_i - y_j))``, in Y's dtype.
        """
        if Y.dtype not in (np.float32, np.float64):
            Y = Y.astype(np.float64)
        Y = np.ascontiguousarray(Y)
        if not np.isfinite(Y).all():
            # A diverged optimisation: the tree and the grid would degenerate.
            raise ValueError(
                "The embedding contains NaN or infinity; the optimisation diverged "
                "(try a smaller learning_rate)."
            )
        if P.shape != (Y.shape[0], Y.shape[0]):
            raise ValueError(
                f"P has shape {P.shape}, expected {(Y.shape[0], Y.shape[0])}."
            )
        indptr, indices, data = self._csr(P, Y.dtype)
        attraction, repulsion = self._buffers(Y)
        attractive_forces(
            indptr, indices, data, Y, dof, exaggeration, attraction, n_threads
        )
        Z = self._repulsion(Y, dof, repulsion, n_threads)
        # Z = 0 only without pairs (one point, or rounding of a lone pair).
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
