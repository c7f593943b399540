"""Shared body of the backends with exact sparse attraction (Barnes-Hut, FFT).

Both compute the attraction exactly over the stored entries of P
(``fasttsne._cython._forces``) and differ only in how the repulsion is
estimated, which a subclass provides:

* fit mode, ``grad = 4 (a * attraction - repulsion / Z)``:
  ``_repulsion(Y, dof, out) -> Z``;
* reference mode (``transform``: new points against a frozen embedding),
  ``grad_i = 4 (a * attraction_i - repulsion_i / sum_j w_ij)``:
  ``_frozen_repulsion(Y, reference, dof, out, sum_w)``, with ``reference`` in
  ``Y``'s dtype, and ``_prepare_reference(reference)`` called by ``prepare``.
"""

import numpy as np
import scipy.sparse as sp

from fasttsne._cython._forces import attractive_forces, kl_attraction_term


def _check_n_threads(n_threads):
    """``n_threads`` as a positive int, or a ``ValueError``."""
    if int(n_threads) != n_threads or n_threads < 1:
        raise ValueError(f"n_threads must be a positive integer, got {n_threads!r}.")
    return int(n_threads)


def _check_prepare_inputs(P, reference):
    """``prepare``'s arguments, checked: ``(P as CSR, reference or None)``.

    Without a reference P must be square (a fit); with one, P has a column
    per reference point (``transform``). Shared by every backend's
    ``prepare``.
    """
    if not sp.issparse(P):
        raise TypeError(f"P must be a scipy sparse matrix, got {type(P).__name__}.")
    P = P.tocsr()
    if reference is None:
        if P.shape[0] != P.shape[1]:
            raise ValueError(f"P must be square without a reference, got {P.shape}.")
        return P, None
    reference = _as_embedding(reference, "reference")
    if P.shape[1] != reference.shape[0]:
        raise ValueError(
            f"P has {P.shape[1]} columns but the reference has "
            f"{reference.shape[0]} points."
        )
    return P, reference


def row_sums(indptr, values):
    """The sums of a CSR matrix's rows, in float64.

    scipy sums the rows of a float32 matrix in float32; these sums are of
    float64 values instead (the KL of placed points and the spectral start
    weigh by them).

    Parameters
    ----------
    indptr : ndarray of shape (n_rows + 1,)
        The matrix's row offsets.
    values : ndarray of shape (>= indptr[-1],), float64
        Its values.

    Returns
    -------
    sums : ndarray of shape (n_rows,), float64
        0 for an empty row.
    """
    sums = np.zeros(indptr.shape[0] - 1)
    nonempty = np.flatnonzero(np.diff(indptr))
    if nonempty.size:
        # reduceat runs to the next start, and an empty row adds nothing.
        sums[nonempty] = np.add.reduceat(values[: indptr[-1]], indptr[nonempty])
    return sums


def _diverged_error(name):
    """The ``ValueError`` of a diverged optimisation, for every backend.

    Parameters
    ----------
    name : str
        The array found NaN or infinite, as the message's subject
        (``"The embedding"``).

    Returns
    -------
    ValueError
        The error to raise, with advice on the parameters to change.
    """
    return ValueError(
        f"{name} contains NaN or infinity: the optimisation diverged. Try a "
        "smaller learning_rate or exaggeration, or an init array of smaller "
        "scale."
    )


def _as_embedding(Y, name):
    """``Y`` as a C-contiguous float32 or float64 array, checked finite."""
    Y = np.asarray(Y)
    if Y.dtype not in (np.float32, np.float64):
        Y = Y.astype(np.float64)
    Y = np.ascontiguousarray(Y)
    if Y.ndim != 2:
        raise ValueError(f"{name} must be 2-D, got shape {Y.shape}.")
    if not np.isfinite(Y).all():
        # A diverged optimisation: the tree and the grid would degenerate.
        raise _diverged_error(name)
    return Y


class SparseAttractionBackend:
    """Base class: P handling, buffers, gradient assembly and KL, both modes.

    Parameters
    ----------
    n_threads : int, default=1
        OpenMP threads; results do not depend on it.

    Notes
    -----
    One instance serves one fit (or one ``transform``): :meth:`prepare` keeps
    P (int32 indices whenever they fit, values float32 or float64 as given) and
    the frozen embedding, and the force buffers are reused from call to call,
    so that an iteration allocates nothing but the returned gradient.
    """

    name = ""
    aliases = ()
    knobs = ()

    def __init__(self, *, n_threads=1):
        self.n_threads = _check_n_threads(n_threads)
        self._csr = None
        self._data = None
        self._row_sums = None
        self._reference = {}
        self._forces = {}

    @classmethod
    def is_usable_for(cls, *, n_components, device):
        """Whether the backend can run with this embedding size on ``device``."""
        raise NotImplementedError

    def _repulsion(self, Y, dof, out):
        """Write the unnormalised repulsion into ``out`` and return ``Z``."""
        raise NotImplementedError

    def _prepare_reference(self, reference):
        """Build what the repulsion from ``reference`` needs (once per prepare)."""

    def _frozen_repulsion(self, Y, reference, dof, out, sum_w):
        """Write the repulsion of ``Y`` from ``reference`` and ``sum_j w_ij``."""
        raise NotImplementedError

    def prepare(self, P, reference=None):
        """Keep ``P`` (and the frozen ``reference``) for the calls to come.

        Parameters
        ----------
        P : sparse matrix of shape (n_samples, n_samples) or (n_samples, n_reference)
            Symmetric joint affinities summing to 1 (fit), or, with
            ``reference``, the conditional affinities of the new points to the
            reference points (each row summing to 1). P is never modified.
        reference : ndarray of shape (n_reference, n_components), default=None
            The frozen embedding the points of ``P``'s rows are placed
            against (``transform``); None for a fit.

        Returns
        -------
        self : object
            The prepared backend.
        """
        P, reference = _check_prepare_inputs(P, reference)
        self._reference = {} if reference is None else {reference.dtype: reference}
        # The attraction streams P once per call and is bound by memory
        # bandwidth, so 64-bit indices (what scipy gives large or
        # concatenated matrices) are narrowed to 32 bits whenever they fit.
        fits_32 = max(P.nnz, P.shape[1]) < np.iinfo(np.int32).max
        index_dtype = np.int32 if fits_32 else np.int64
        self._csr = (
            P.shape,
            np.ascontiguousarray(P.indptr, dtype=index_dtype),
            np.ascontiguousarray(P.indices, dtype=index_dtype),
        )
        # The kernels read float32 or float64 values whatever Y's dtype, so
        # P is kept as given (a fit's own P is float32: docs/affinities.rst).
        data = P.data
        if data.dtype not in (np.float32, np.float64):
            data = data.astype(np.float64)
        self._data = np.ascontiguousarray(data)
        self._row_sums = None
        self._forces = {}
        if reference is not None:
            # Only the KL of placed points weighs by the rows' sums.
            self._row_sums = row_sums(P.indptr, P.data.astype(np.float64))
            self._prepare_reference(reference)
        return self

    def _reference_as(self, dtype):
        """The frozen embedding in ``dtype`` (converted once, then kept)."""
        if dtype not in self._reference:
            self._reference[dtype] = next(iter(self._reference.values())).astype(dtype)
        return self._reference[dtype]

    def _buffer(self, name, Y):
        """A reusable array shaped and typed like Y ("attraction" or "repulsion").

        Each is allocated on first use: a fit needs no attraction array.
        """
        buffer = self._forces.get(name)
        if buffer is None or buffer.shape != Y.shape or buffer.dtype != Y.dtype:
            buffer = self._forces[name] = np.empty_like(Y)
        return buffer

    def __call__(self, Y, *, exaggeration, dof, compute_error):
        """Return ``(kl or None, gradient)`` for the embedding ``Y``.

        Parameters
        ----------
        Y : ndarray of shape (n_samples, n_components)
            The embedding (fit) or the new points (reference mode), float32 or
            float64 (other dtypes become float64).
        exaggeration : float
            Factor ``a`` on the attraction; P itself is never modified.
        dof : float
            Degrees of freedom of the heavy-tailed kernel.
        compute_error : bool
            Whether to return the KL divergence (of the unexaggerated P).

        Returns
        -------
        kl : float or None
            Fit: ``KL(P || Q)``. Reference mode: the sum over new points of
            ``KL(p_{.|i} || q_{.|i})`` with ``q_{j|i} = w_ij / sum_j w_ij``.
            None unless ``compute_error``.
        grad : ndarray of shape (n_samples, n_components)
            Fit: ``4 (a sum_j p_ij (y_i - y_j) / t_ij - (1 / Z) sum_j
            (w_ij / t_ij) (y_i - y_j))``. Reference mode: ``4 (a sum_j p_ij
            (y_i - r_j) / t_ij - sum_j (w_ij / t_ij) (y_i - r_j) / sum_j
            w_ij)``. In Y's dtype.
        """
        if self._csr is None:
            raise RuntimeError(f"Call {type(self).__name__}.prepare(P) first.")
        Y = _as_embedding(Y, "The embedding")
        shape, indptr, indices = self._csr
        if Y.shape[0] != shape[0]:
            raise ValueError(f"P has shape {shape}, but Y has {Y.shape[0]} rows.")
        data = self._data
        repulsion = self._buffer("repulsion", Y)
        if not self._reference:
            Z = self._repulsion(Y, dof, repulsion)
            # Z = 0 only without pairs (one point, or rounding of a lone pair).
            scale = 4.0 / Z if Z > 0 else 0.0
            # 4 attraction - (4 / Z) repulsion as the attraction is summed:
            # no pass of its own, and NumPy's bits (see attractive_forces).
            grad = np.empty_like(Y)
            attractive_forces(
                indptr,
                indices,
                data,
                Y,
                dof,
                exaggeration,
                grad,
                self.n_threads,
                repulsion=repulsion,
                repulsion_scale=-scale,
            )
            kl = None
            if compute_error:
                total_p = float(np.sum(data, dtype=np.float64))
                kl = kl_attraction_term(indptr, indices, data, Y, dof, self.n_threads)
                if Z > 0:
                    kl += total_p * float(np.log(Z))
            return kl, grad

        reference = self._reference_as(Y.dtype)
        if Y.shape[1] != reference.shape[1]:
            raise ValueError(
                f"Y has {Y.shape[1]} columns, the reference {reference.shape[1]}."
            )
        sum_w = np.empty(Y.shape[0], dtype=np.float64)
        attraction = self._buffer("attraction", Y)
        attractive_forces(
            indptr,
            indices,
            data,
            Y,
            dof,
            exaggeration,
            attraction,
            self.n_threads,
            Y_ref=reference,
        )
        self._frozen_repulsion(Y, reference, dof, repulsion, sum_w)
        grad = repulsion / sum_w[:, None]
        np.subtract(attraction, grad, out=grad)
        grad *= 4.0
        kl = None
        if compute_error:
            kl = kl_attraction_term(
                indptr, indices, data, Y, dof, self.n_threads, Y_ref=reference
            )
            kl += float(np.dot(self._row_sums, np.log(sum_w)))
        return kl, grad.astype(Y.dtype, copy=False)
