"""Slow exact oracles and seeded data builders shared by the test modules.

Everything here is written from the formulas, in float64, with dense N x N
arrays: ``t_ij = 1 + |y_i - y_j|^2 / dof`` and ``w_ij = t_ij^(-dof)``.
"""

import numpy as np
import scipy.sparse as sp
from scipy.spatial.distance import cdist


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


def descent_step(
    Y, grad, update, gains, momentum, *, learning_rate, min_gain, max_step_norm, center
):
    """One gains-and-momentum step, one coordinate at a time in float64, in place.

    The update of van der Maaten (2014) with openTSNE's per-point step cap,
    written from the formulas with Python floats (``GradientDescent.step``
    uses whole-array expressions): compare with a tolerance, not bits.
    """
    n_samples, n_components = Y.shape
    for i in range(n_samples):
        for c in range(n_components):
            g, u, gain = float(grad[i, c]), float(update[i, c]), float(gains[i, c])
            # The descent keeps its direction where grad * update < 0.
            gain = gain + 0.2 if g * u < 0 else gain * 0.8
            gains[i, c] = gain = max(gain, min_gain)
            update[i, c] = momentum * u - learning_rate * gain * g
        if max_step_norm is not None:
            norm = sum(float(v) ** 2 for v in update[i]) ** 0.5
            if norm > max_step_norm:
                update[i] *= max_step_norm / norm
        Y[i] += update[i]
    if center:
        Y -= Y.sum(axis=0, dtype=np.float64) / n_samples


def interpolation_charges(Y, grid):
    """Charges ``(1, y - center)`` spread on the nodes of a FIt-SNE grid.

    From the definitions of ``InterpolationGrid``: a point in box ``b`` (its
    integer position ``s = (y - center - lo) / width``, clamped to the grid)
    adds ``prod_axes L_a(s - b)`` times its charges to node ``b p + a`` of each
    axis, where ``L_a`` is the Lagrange basis of the nodes ``(m + 1/2) / p``.

    Returns
    -------
    charges : ndarray of shape (n_components + 1, *grid.shape)
    """
    p = grid.n_interpolation_points
    n_dims = Y.shape[1]
    nodes = (np.arange(p) + 0.5) / p
    charges = np.zeros((n_dims + 1,) + tuple(grid.shape))
    for y in np.asarray(Y, dtype=np.float64) - np.asarray(grid.center):
        weights, index = [], []
        for axis in range(n_dims):
            s = (y[axis] - grid.lower_edges[axis]) * grid.inverse_widths[axis]
            box = min(max(int(s), 0), grid.n_boxes[axis] - 1)
            basis = [
                np.prod(
                    [
                        (s - box - nodes[m]) / (nodes[a] - nodes[m])
                        for m in range(p)
                        if m != a
                    ]
                )
                for a in range(p)
            ]
            weights.append(np.array(basis))
            index.append(box * p + np.arange(p))
        w = weights[0] if n_dims == 1 else np.outer(weights[0], weights[1])
        block = np.ix_(*index)
        charges[0][block] += w
        for axis in range(n_dims):
            charges[axis + 1][block] += w * y[axis]
    return charges


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


def random_affinities(
    rng, n_samples, n_neighbors=10, index_dtype=np.int32, dtype=np.float32
):
    """Symmetric joint affinities P (CSR, sum 1, no diagonal) of a random kNN graph.

    Each row links to ``n_neighbors`` distinct other rows with weights in
    ``[0.1, 1)``; ``P = (A + A^T) / sum``, sorted indices of ``index_dtype``,
    values rounded to ``dtype`` (float32, as a fit's P, by default).
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
    P.data = P.data.astype(dtype)
    return P


def random_new_point_affinities(
    rng, n_new, n_reference, n_neighbors=10, dtype=np.float32
):
    """Conditional affinities of new points to reference points (``transform``).

    CSR of shape ``(n_new, n_reference)``, int32 sorted indices: each row links
    to ``n_neighbors`` distinct reference points with weights summing to 1,
    rounded to ``dtype`` (float32, as ``transform``'s, by default).
    """
    n_neighbors = min(n_neighbors, n_reference)
    rows = np.repeat(np.arange(n_new), n_neighbors)
    cols = np.concatenate(
        [rng.choice(n_reference, n_neighbors, replace=False) for _ in range(n_new)]
    )
    weights = rng.uniform(0.1, 1.0, size=(n_new, n_neighbors))
    weights /= weights.sum(axis=1, keepdims=True)
    P = sp.csr_matrix((weights.ravel(), (rows, cols)), shape=(n_new, n_reference))
    P.sort_indices()
    P.indptr = P.indptr.astype(np.int32)
    P.indices = P.indices.astype(np.int32)
    P.data = P.data.astype(dtype)
    return P


# --- linear algebra: matrices with known spectra, dense Toeplitz matrices ------


def low_rank_plus_noise(rng, n_samples, n_features):
    """Rank-10 signal with singular values 100 .. 20, plus noise of norm ~3."""
    U = np.linalg.qr(rng.standard_normal((n_samples, 10)))[0]
    V = np.linalg.qr(rng.standard_normal((n_features, 10)))[0]
    signal = (U * np.geomspace(100, 20, 10)) @ V.T
    return signal + 0.1 * rng.standard_normal((n_samples, n_features))


def flat_spectrum(rng, n_samples, n_features):
    """Gaussian matrix: Marchenko-Pastur spectrum, no gap anywhere."""
    return rng.standard_normal((n_samples, n_features))


def rank_deficient(rng, n_samples, n_features, rank=8):
    """A product of Gaussian factors: exactly of rank ``rank``."""
    return rng.standard_normal((n_samples, rank)) @ rng.standard_normal(
        (rank, n_features)
    )


def power_law(rng, n_samples, n_features, exponent=0.5):
    """Singular values ``i^-exponent``, ``i = 1 .. min(shape)``, random vectors."""
    rank = min(n_samples, n_features)
    U = np.linalg.qr(rng.standard_normal((n_samples, rank)))[0]
    V = np.linalg.qr(rng.standard_normal((n_features, rank)))[0]
    return (U * np.arange(1, rank + 1) ** -exponent) @ V.T


def relative_error(actual, desired):
    """Norm-wise relative error."""
    return np.linalg.norm(actual - desired) / np.linalg.norm(desired)


def fft_tolerance(n):
    """Tolerance for a norm-wise relative error of a float64 FFT product of size n.

    The rounding error grows like ``eps * log2(L)``; the factor 20 leaves a
    margin of 10-100 over what the Toeplitz tests measured (1e-16 to 1.1e-15).
    """
    return 20 * 2.0**-52 * np.log2(max(4 * n, 4))


def dense_toeplitz(kernel_on_offsets, grid_shape):
    """The explicit (block-)Toeplitz matrix ``T[i, j] = k(x_i - x_j)``.

    ``kernel_on_offsets`` has shape ``(2 n_1 - 1, ..., 2 n_d - 1)`` with the
    zero offset at the centre; rows and columns follow the C order of the grid.
    """
    index = np.indices(grid_shape).reshape(len(grid_shape), -1)
    offsets = tuple(
        index[axis][:, None] - index[axis][None, :] + n - 1
        for axis, n in enumerate(grid_shape)
    )
    return kernel_on_offsets[offsets]


def steep_spectrum(rng, n_samples, n_features, n_values=60, rate=3.0, noise=1e-9):
    """Singular values ``1000 exp(-i / rate)``, ``i < n_values``, plus Gaussian
    noise of standard deviation ``noise``: values far below ``sqrt(eps) s_1``,
    which a solver working through ``A^T A`` cannot resolve (issue 13)."""
    U = np.linalg.qr(rng.standard_normal((n_samples, n_values)))[0]
    V = np.linalg.qr(rng.standard_normal((n_features, n_values)))[0]
    signal = (U * (1000.0 * np.exp(-np.arange(n_values) / rate))) @ V.T
    return signal + noise * rng.standard_normal((n_samples, n_features))


def rounding_floor(S_exact, dtype):
    """Relative error of each singular value that rounding alone can cause in a
    backward-stable solver: ``10 eps s_1 / s_i`` (the tests' "as accurate as")."""
    eps = float(np.finfo(dtype).eps)
    S_exact = np.asarray(S_exact, dtype=np.float64)
    return 10 * eps * S_exact[0] / S_exact


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


# --- t-SNE affinities -----------------------------------------------------------


def dense_joint_probabilities(indices, conditional, n_samples):
    """``(C + C^T) / sum`` as a dense array, C the conditional rows over ``indices``.

    ``indices`` and ``conditional`` are (n_samples, k): row i gives point i's
    probability ``conditional[i, m]`` of neighbour ``indices[i, m]``.
    """
    C = np.zeros((n_samples, n_samples))
    np.put_along_axis(C, np.asarray(indices), conditional, axis=1)
    return (C + C.T) / (C + C.T).sum()


def knn_graph(rng, n_samples, n_neighbors):
    """A random directed kNN connectivity graph (CSR, ones, no self-loops)."""
    rows = np.repeat(np.arange(n_samples), n_neighbors)
    cols = np.concatenate(
        [
            rng.choice(np.delete(np.arange(n_samples), i), n_neighbors, replace=False)
            for i in range(n_samples)
        ]
    )
    return sp.csr_matrix(
        (np.ones(rows.shape[0]), (rows, cols)), shape=(n_samples, n_samples)
    )


def new_point_batch(rng, container, metric):
    """Training and new points for the batch-independence tests of transform.

    700 x 12 training rows with duplicates, 43 new rows with a duplicate pair
    and three training rows; ``container`` is "dense64", "dense32" or "csr"
    (entries below 0.5 in magnitude zeroed); with ``metric="precomputed"``
    the new rows are their distances to the training rows, and the training
    data an empty (700, 0) array.
    """
    X_fit = rng.normal(size=(700, 12))
    X_fit[10:14] = X_fit[2]  # duplicates in the training set
    X_new = np.vstack([rng.normal(size=(40, 12)), X_fit[[2, 11, 600]]])
    X_new[5] = X_new[6]  # duplicates in the batch
    if metric == "precomputed":
        return np.empty((700, 0)), cdist(X_new, X_fit)
    if container == "dense32":
        return X_fit.astype(np.float32), X_new.astype(np.float32)
    if container == "csr":
        X_fit[np.abs(X_fit) < 0.5] = 0.0
        X_new[np.abs(X_new) < 0.5] = 0.0
        return sp.csr_matrix(X_fit), sp.csr_matrix(X_new)
    return X_fit, X_new


def scipy_joint_from_knn(indices, conditional, order=None):
    """P of ``joint_probabilities`` from kNN arrays, built by scipy's sparse ops.

    The conditional rows (zeros dropped), renumbered in ``order`` (row ``a``
    is point ``order[a]``), normalised by ``2 sum(A)`` (the sum of the
    result), symmetrised by scipy's ``A + A.T`` and rounded to float32: the
    reference the in-place kernels must match bit for bit.
    """
    n_samples, k = indices.shape
    A = sp.csr_matrix(
        (conditional.ravel(), indices.ravel(), np.arange(0, n_samples * k + 1, k)),
        shape=(n_samples, n_samples),
    )
    if order is not None:
        A = A[order][:, order]
    A = A.tocsr()
    A.eliminate_zeros()
    A.sort_indices()
    A.data /= 2.0 * A.data.sum()
    P = (A + A.T).tocsr()
    P.sort_indices()
    P.data = P.data.astype(np.float32)
    return P
