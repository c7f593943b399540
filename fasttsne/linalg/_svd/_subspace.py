"""Randomized subspace iteration and the left Rayleigh-Ritz step."""

import scipy.linalg

from fasttsne.linalg._svd._operators import _gaussian
from fasttsne.linalg._svd._orthogonal import _gram_threshold, _orthonormalize, _svqb


def _project_and_svd(op, Q, rng):
    """SVD of ``op`` projected on the orthonormal columns ``Q`` (left Rayleigh-Ritz).

    ``B = Q^T A`` is wide; its SVD is taken on the small side: orthonormalise
    ``B^T = A^T Q = Qb Rb``, then ``Rb = P diag(S) Gt`` gives
    ``B = Gt^T diag(S) (Qb P)^T``.

    Returns
    -------
    U : ndarray of shape (m, r)
    S : ndarray of shape (r,)
    Vt : ndarray of shape (r, n)
    """
    Bt = op.rmatmat(Q)
    Qb, Rb = _orthonormalize(Bt, rng)
    P, S, Gt = scipy.linalg.svd(Rb, check_finite=False, lapack_driver="gesdd")
    return Q @ Gt.T, S, (Qb @ P).T


def _orthonormal_range(Y):
    """Orthonormal basis of ``range(Y)`` for subspace iteration.

    SVQB (twice if needed) when the Gram matrix resolves every direction of ``Y``;
    otherwise (``Y`` of low rank, or as ill-conditioned as an unnormalised power
    iteration makes it) Householder QR, which needs no Gram matrix.
    """
    threshold = _gram_threshold(Y)
    Q, exact = _svqb(Y, threshold)
    if Q.shape[1] < Y.shape[1]:
        return scipy.linalg.qr(Y, mode="economic", check_finite=False)[0]
    return Q if exact else _svqb(Q, threshold)[0]


def _normalize(Y, method):
    """Renormalise a subspace-iteration block (LU, QR or nothing)."""
    if method == "LU":
        return scipy.linalg.lu(Y, permute_l=True, check_finite=False)[0]
    if method == "QR":
        return _orthonormal_range(Y)
    return Y


def _subspace_iteration(op, n_components, n_oversamples, n_iter, normalizer, rng):
    """Randomized subspace iteration (Halko et al. 2011, algorithm 4.4).

    Returns ``U, S, Vt, n_iter``.
    """
    m, n = op.shape
    size = min(n_components + n_oversamples, n, m)
    Y = op.matmat(_gaussian(rng, (n, size), op.dtype))
    for _ in range(n_iter):
        Z = op.rmatmat(_normalize(Y, normalizer))
        Y = op.matmat(_normalize(Z, normalizer))
    U, S, Vt = _project_and_svd(op, _orthonormal_range(Y), rng)
    return U[:, :n_components], S[:n_components], Vt[:n_components], n_iter
