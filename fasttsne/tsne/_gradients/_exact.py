"""Exact O(N^2) t-SNE gradient in NumPy: the test oracle, not a fast path."""

import numpy as np

from fasttsne.tsne._gradients._sparse import _check_prepare_inputs


def _kernel_terms(Y, R, dof):
    """Differences ``y_i - r_j``, ``w_ij`` (the heavy-tailed kernel) and ``1 / t_ij``.

    With ``t_ij = 1 + |y_i - r_j|^2 / dof``, ``w_ij = t_ij^(-dof)``; ``dof = 1`` is
    the Cauchy kernel of standard t-SNE (Kobak et al. 2019 for other values).
    """
    # Differences, not |a|^2 + |b|^2 - 2ab: an oracle must not cancel.
    diff = Y[:, None, :] - R[None, :, :]
    t = 1.0 + np.einsum("ijk,ijk->ij", diff, diff) / dof
    inv_t = 1.0 / t
    W = inv_t if dof == 1 else inv_t**dof
    return diff, W, inv_t


def kl_divergence(Y, P, *, dof=1.0):
    """KL(P || Q) of an embedding, Q normalised over all pairs.

    Parameters
    ----------
    Y : ndarray of shape (n_samples, n_components)
        The embedding.
    P : sparse matrix of shape (n_samples, n_samples)
        Symmetric joint affinities summing to 1.
    dof : float, default=1.0
        Degrees of freedom of the heavy-tailed kernel.

    Returns
    -------
    kl : float
        ``sum_ij p_ij log(p_ij / q_ij)``.
    """
    Y = np.asarray(Y, dtype=np.float64)
    _, W, _ = _kernel_terms(Y, Y, dof)
    np.fill_diagonal(W, 0.0)
    P = P.tocoo()
    mask = P.data > 0
    rows, cols, p = P.row[mask], P.col[mask], P.data[mask]
    q = W[rows, cols] / W.sum()
    return float(np.sum(p * np.log(p / q)))


class ExactGradient:
    """O(N^2) t-SNE gradient in float64 with dense matrices: the oracle.

    Fit: ``4 sum_j (a p_ij - q_ij) (y_i - y_j) / t_ij`` with ``q_ij = w_ij / Z``.
    Reference mode (new points ``y_i`` against a frozen embedding ``r_j``):
    ``4 [a sum_j p_ij (y_i - r_j) / t_ij - sum_j w_ij (y_i - r_j) / t_ij /
    sum_j w_ij]``. ``a`` is the exaggeration. The dense matrices limit it to a
    few thousand points; every fast backend is tested against it.

    Parameters
    ----------
    n_threads : int, default=1
        Accepted for the common protocol; NumPy decides its own threading.
    """

    name = "exact"
    aliases = ("numpy",)
    knobs = ()

    def __init__(self, *, n_threads=1):
        self.n_threads = n_threads
        self._P = None
        self._reference = None

    @classmethod
    def is_usable_for(cls, *, n_components, device):
        """Usable on the CPU for any dimension; memory limits N in practice."""
        del n_components
        return device == "cpu"

    def prepare(self, P, reference=None):
        """Keep a dense float64 copy of ``P`` (and the frozen ``reference``).

        Parameters
        ----------
        P : sparse matrix of shape (n_samples, n_samples) or (n_samples, n_reference)
            Joint affinities (fit) or conditional affinities to the reference.
        reference : ndarray of shape (n_reference, n_components), default=None
            The frozen embedding for ``transform``; None for a fit.

        Returns
        -------
        self : object
            The prepared backend.
        """
        P, reference = _check_prepare_inputs(P, reference)
        self._P = P.astype(np.float64).toarray()
        self._reference = None if reference is None else reference.astype(np.float64)
        return self

    def __call__(self, Y, *, exaggeration, dof, compute_error):
        """Return ``(kl or None, gradient)``, the gradient in Y's dtype.

        See :class:`~fasttsne.tsne._gradients._sparse.SparseAttractionBackend`
        for the meaning of the arguments and of ``kl`` in both modes.
        """
        if self._P is None:
            raise RuntimeError("Call ExactGradient.prepare(P) first.")
        Y64 = np.asarray(Y, dtype=np.float64)
        if Y64.ndim != 2 or Y64.shape[0] != self._P.shape[0]:
            raise ValueError(
                f"P has shape {self._P.shape}, but Y has shape {Y64.shape}: "
                "the rows differ."
            )
        if not np.isfinite(Y64).all():
            raise ValueError("The embedding contains NaN or infinity.")
        Pd = self._P
        if self._reference is None:
            diff, W, inv_t = _kernel_terms(Y64, Y64, dof)
            np.fill_diagonal(W, 0.0)
            np.fill_diagonal(inv_t, 0.0)
            Z = W.sum()
            M = (exaggeration * Pd - W / Z) * inv_t
            grad = 4.0 * np.einsum("ij,ijk->ik", M, diff)
            # One normaliser Z for all pairs.
            log_term = float(Pd.sum() * np.log(Z))
        else:
            diff, W, inv_t = _kernel_terms(Y64, self._reference, dof)
            normalisers = W.sum(axis=1)
            M = (exaggeration * Pd - W / normalisers[:, None]) * inv_t
            grad = 4.0 * np.einsum("ij,ijk->ik", M, diff)
            # One normaliser per new point.
            log_term = float(np.dot(Pd.sum(axis=1), np.log(normalisers)))
        kl = None
        if compute_error:
            mask = Pd > 0
            kl = float(np.sum(Pd[mask] * np.log(Pd[mask] / W[mask]))) + log_term
        return kl, grad.astype(Y.dtype, copy=False)
