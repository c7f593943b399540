"""Slow exact oracles and seeded data builders shared by the test modules.

Everything here is written from the formulas, in float64, with dense N x N
arrays: ``t_ij = 1 + |y_i - y_j|^2 / dof`` and ``w_ij = t_ij^(-dof)``.
"""

import numpy as np
import scipy.sparse as sp


def kernel_terms(Y_query, Y_ref, dof):
    """Differences ``y_i - r_j``, ``w_ij`` and ``w_ij / t_ij`` for all pairs.

    Differences, not ``|a|^2 + |b|^2 - 2 a.b``: an oracle must not cancel.
    """
    diff = (
        np.asarray(Y_query, dtype=np.float64)[:, None, :]
        - np.asarray(Y_ref, dtype=np.float64)[None, :, :]
    )
    t = 1.0 + np.einsum("ijk,ijk->ij", diff, diff) / dof
    w = t**-dof
    return diff, w, w / t


def exact_repulsion(Y, dof):
    """``(sum_{j != i} (w_ij / t_ij) (y_i - y_j), Z = sum_{i != j} w_ij)``."""
    diff, w, wt = kernel_terms(Y, Y, dof)
    np.fill_diagonal(w, 0.0)
    np.fill_diagonal(wt, 0.0)
    return np.einsum("ij,ijk->ik", wt, diff), w.sum()


def exact_reference_repulsion(Y_ref, Y_query, dof):
    """Repulsion of query points from a frozen reference, and per-query ``sum_j w``."""
    diff, w, wt = kernel_terms(Y_query, Y_ref, dof)
    return np.einsum("ij,ijk->ik", wt, diff), w.sum(axis=1)


def exact_attraction(P, Y, dof, exaggeration, Y_ref=None):
    """``a sum_j p_ij (y_i - r_j) / t_ij`` (``r = y`` unless ``Y_ref``)."""
    Y_ref = Y if Y_ref is None else Y_ref
    diff, _, _ = kernel_terms(Y, Y_ref, dof)
    t = 1.0 + np.einsum("ijk,ijk->ij", diff, diff) / dof
    M = P.toarray() / t
    return exaggeration * np.einsum("ij,ijk->ik", M, diff)


def exact_kl_attraction_term(P, Y, dof, Y_ref=None):
    """``sum_ij p_ij log(p_ij / w_ij)``: the KL divergence without its ``log Z``."""
    Y_ref = Y if Y_ref is None else Y_ref
    _, w, _ = kernel_terms(Y, Y_ref, dof)
    Pd = P.toarray().astype(np.float64)
    mask = Pd > 0
    return np.sum(Pd[mask] * np.log(Pd[mask] / w[mask]))


def clusters(rng, n_samples, n_components, n_clusters=8, spread=20.0):
    """A Gaussian mixture, like an embedding in the middle of an optimisation.

    Unit-width blobs around ``n_clusters`` centres drawn uniformly in
    ``[-spread, spread]^n_components``; C-contiguous float64.
    """
    centres = rng.uniform(-spread, spread, size=(n_clusters, n_components))
    labels = rng.integers(n_clusters, size=n_samples)
    return np.ascontiguousarray(
        centres[labels] + rng.normal(size=(n_samples, n_components))
    )


def random_csr(rng, n_rows, n_cols, density, index_dtype=np.int32, dtype=np.float64):
    """A random non-negative CSR matrix with sorted indices of ``index_dtype``."""
    A = sp.random(
        n_rows, n_cols, density=density, random_state=rng, format="csr", dtype=dtype
    )
    A.sort_indices()
    A.indptr = A.indptr.astype(index_dtype)
    A.indices = A.indices.astype(index_dtype)
    return A


def random_affinities(rng, n_samples, n_neighbors=10, index_dtype=np.int32):
    """Symmetric joint affinities P (CSR, sum 1, no diagonal) of a random kNN graph.

    Each row links to ``n_neighbors`` distinct other rows with weights in
    ``[0.1, 1)``; ``P = (A + A^T) / sum``, sorted indices of ``index_dtype``.
    """
    n_neighbors = min(n_neighbors, n_samples - 1)
    rows = np.repeat(np.arange(n_samples), n_neighbors)
    cols = np.concatenate(
        [
            rng.choice(np.delete(np.arange(n_samples), i), n_neighbors, replace=False)
            for i in range(n_samples)
        ]
    )
    A = sp.csr_matrix(
        (rng.uniform(0.1, 1.0, len(rows)), (rows, cols)),
        shape=(n_samples, n_samples),
    )
    P = A + A.T
    P = sp.csr_matrix(P / P.sum())
    P.sort_indices()
    P.indptr = P.indptr.astype(index_dtype)
    P.indices = P.indices.astype(index_dtype)
    return P


def exact_knn(X_query, X_ref, k, self_query):
    """kNN from the full exact distance matrix, ties broken by index.

    Returns the (n_query, k) indices and their squared euclidean distances
    (scipy's ``cdist``); with ``self_query`` row i is not a neighbour of i.
    """
    from scipy.spatial.distance import cdist

    D = cdist(X_query, X_ref, "sqeuclidean")
    if self_query:
        np.fill_diagonal(D, np.inf)
    columns = np.broadcast_to(np.arange(D.shape[1]), D.shape)
    order = np.lexsort((columns, D), axis=1)[:, :k]
    return order, np.take_along_axis(D, order, axis=1)
