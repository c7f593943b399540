"""Exact O(N^2) t-SNE gradient in NumPy: the test oracle, not a fast path."""

import numpy as np


def _kernel_terms(Y, dof):
    """Return ``w`` (the heavy-tailed kernel) and ``1 / t`` for all pairs, diagonal 0.

    With ``t_ij = 1 + |y_i - y_j|^2 / dof``, ``w_ij = t_ij^(-dof)``; ``dof = 1`` is
    the Cauchy kernel of standard t-SNE (Kobak et al. 2019 for other values).
    """
    # Differences, not |a|^2 + |b|^2 - 2ab: an oracle must not cancel.
    diff = Y[:, None, :] - Y[None, :, :]
    D = np.einsum("ijk,ijk->ij", diff, diff)
    t = 1.0 + D / dof
    inv_t = 1.0 / t
    W = inv_t if dof == 1 else inv_t**dof
    np.fill_diagonal(W, 0.0)
    np.fill_diagonal(inv_t, 0.0)
    return W, inv_t


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
    W, _ = _kernel_terms(np.asarray(Y, dtype=np.float64), dof)
    P = P.tocoo()
    mask = P.data > 0
    rows, cols, p = P.row[mask], P.col[mask], P.data[mask]
    q = W[rows, cols] / W.sum()
    return float(np.sum(p * np.log(p / q)))


class ExactGradient:
    """O(N^2) gradient ``4 sum_j (a p_ij - q_ij) (y_i - y_j) / t_ij`` in float64.

    Here ``a`` is the exaggeration. The dense N x N matrices limit it to a few
    thousand points; it is the oracle every fast backend is tested against.
    """

    name = "exact"
    aliases = ("numpy",)

    def is_usable_for(self, embedding, *, n_components, device):
        """Usable on the CPU for any dimension; memory limits N in practice."""
        del embedding, n_components
        return device == "cpu"

    def __call__(self, Y, P, *, dof, exaggeration, compute_error, n_threads):
        """Return ``(kl or None, gradient)`` for embedding ``Y`` and CSR ``P``."""
        del n_threads
        Y64 = np.asarray(Y, dtype=np.float64)
        W, inv_t = _kernel_terms(Y64, dof)
        Z = W.sum()
        Pd = P.toarray().astype(np.float64, copy=False)
        M = (exaggeration * Pd - W / Z) * inv_t
        grad = 4.0 * (M.sum(axis=1)[:, None] * Y64 - M @ Y64)
        kl = None
        if compute_error:
            mask = Pd > 0
            kl = float(np.sum(Pd[mask] * np.log(Pd[mask] * Z / W[mask])))
        return kl, grad.astype(Y.dtype, copy=False)
