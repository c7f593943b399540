"""Randomized subspace iteration and the left Rayleigh-Ritz step.

Halko, Martinsson and Tropp (2011), algorithm 4.4: ``Y = (A A^T)^q A Omega`` for
a Gaussian ``Omega`` of ``l = k + p`` columns, renormalised between products
(LU, QR or not at all), then the Rayleigh-Ritz step on ``B = Q^T A`` for an
orthonormal basis ``Q`` of ``range(Y)``. This is what
``sklearn.utils.extmath.randomized_svd`` and fbpca do. Memory: ``(m + n) l``.
Every operation on a tall array goes through the operator ``op`` or the
basis-products object ``products`` (:mod:`~fasttsne.linalg._svd._operators`).
"""

import scipy.linalg

from fasttsne.linalg._svd._orthogonal import _gram_threshold, _orthonormalize, _svqb


def _project_and_svd(op, Q, rng, products, lapack_driver="gesdd"):
    """SVD of ``op`` projected on the orthonormal columns ``Q`` (left Rayleigh-Ritz).

    ``B = Q^T A`` is wide; its SVD is taken on the small side: orthonormalise
    ``B^T = A^T Q = Qb Rb``, then ``Rb = P diag(S) Gt`` gives
    ``B = Gt^T diag(S) (Qb P)^T``.

    Returns
    -------
    U : tall array of shape (m, r)
    S : ndarray of shape (r,)
    Vt : array of shape (r, n), the transpose of a tall array
    """
    Bt = op.rmatmat(Q)
    Qb, Rb = _orthonormalize(Bt, rng, products)
    P, S, Gt = scipy.linalg.svd(Rb, check_finite=False, lapack_driver=lapack_driver)
    return products.dot(Q, Gt.T), S, products.dot(Qb, P).T


def _orthonormal_range(Y, products):
    """Orthonormal basis of ``range(Y)`` for subspace iteration.

    SVQB (twice if needed) when the Gram matrix resolves every direction of ``Y``;
    otherwise (``Y`` of low rank, or as ill-conditioned as an unnormalised power
    iteration makes it) Householder QR, which needs no Gram matrix.
    """
    threshold = _gram_threshold(Y.shape[1], products.dtype_of(Y))
    Q, exact = _svqb(Y, threshold, products)
    if Q.shape[1] < Y.shape[1]:
        return products.qr(Y)
    return Q if exact else _svqb(Q, threshold, products)[0]


def _normalize(Y, method, products):
    """Renormalise a subspace-iteration block (LU, QR or nothing)."""
    if method == "LU":
        return products.lu(Y)
    if method == "QR":
        return _orthonormal_range(Y, products)
    return Y


def _subspace_iteration(
    op,
    n_components,
    *,
    n_oversamples,
    n_iter,
    normalizer,
    rng,
    products,
    lapack_driver="gesdd",
):
    """Randomized subspace iteration (Halko et al. 2011, algorithm 4.4).

    Parameters
    ----------
    op : _LinearOperator
        The matrix ``A`` (m x n).
    n_components, n_oversamples, n_iter : int
        ``k``, ``p`` and the number of power iterations ``q``.
    normalizer : {"LU", "QR", "none"}
        Renormalisation between products.
    rng : RandomState or Generator
        Source of the test matrix.
    products : _BasisProducts
        Runs every other operation on a tall array.
    lapack_driver : {"gesdd", "gesvd"}, default="gesdd"
        LAPACK driver of the small SVD.

    Returns
    -------
    U, S, Vt, n_iter
    """
    m, n = op.shape
    size = min(n_components + n_oversamples, n, m)
    Y = op.matmat(products.gaussian(rng, (n, size), op.dtype))
    for _ in range(n_iter):
        Z = op.rmatmat(_normalize(Y, normalizer, products))
        Y = op.matmat(_normalize(Z, normalizer, products))
    U, S, Vt = _project_and_svd(
        op, _orthonormal_range(Y, products), rng, products, lapack_driver
    )
    return U[:, :n_components], S[:n_components], Vt[:n_components], n_iter
