"""Initial embeddings for t-SNE: PCA, spectral, random or a user array.

The PCA, spectral and random initialisations are rescaled so that their
first axis has standard deviation ``1e-4`` (openTSNE's convention, following
Kobak & Berens 2019): small enough that early exaggeration can organise the
clusters, large enough to keep the PCA layout's global structure. A user
array is used as given, as in :class:`sklearn.manifold.TSNE`, so that a fit
can start from an earlier embedding; docs/affinities.rst shows how to give
one the same scale.
"""

import numpy as np
import scipy.sparse as sp

from fasttsne.linalg._svd._randomized import _randomized_svd
from fasttsne.tsne._gradients._sparse import row_sums

_TARGET_STD = 1e-4

# Rows per block of the spectral start's in-place scaling: its temporaries
# stay a few MiB whatever the size of P.
_SCALE_BLOCK = 1 << 16


def _rescale(Y):
    """Scale ``Y`` so that ``std(Y[:, 0]) == 1e-4``; constant input is left alone."""
    std = float(np.std(Y[:, 0]))
    if std > 0:
        Y *= _TARGET_STD / std
    return Y


def _pad_with_noise(Y, n_components, rng):
    """Append random columns when the data has fewer directions than components.

    A zero column would stay zero forever (its gradient vanishes by symmetry), so
    the missing axes get noise of the same scale as the first axis instead.
    """
    n_samples, n_found = Y.shape
    if n_found >= n_components:
        return Y
    scale = np.std(Y[:, 0]) if n_found else _TARGET_STD
    scale = scale if scale > 0 else _TARGET_STD
    noise = rng.standard_normal((n_samples, n_components - n_found)) * scale
    return np.hstack([Y, noise])


def pca_init(X, n_components, rng):
    """Leading principal components of ``X`` (dense or sparse).

    ``U * S`` of fasttsne's randomized SVD with implicit centring, so sparse
    input is never densified; signs follow the SVD's deterministic sign
    convention. ``X`` is the validated t-SNE input (float32 or float64, dense or
    CSR), so the solver is called without validating it again.
    """
    n_samples, n_features = X.shape
    k = min(n_components, n_samples - 1, n_features)
    if k >= 1:
        U, S, _ = _randomized_svd(X, k, center=True, random_state=rng)
        # A direction of singular value 0 (rank-deficient data) is missing too:
        # it would be a zero column, so it gets noise like the ones not asked for.
        Y = (U * S)[:, S > 0].astype(np.float64, copy=False)
    else:
        Y = np.empty((n_samples, 0))
    return _pad_with_noise(Y, n_components, rng)


def spectral_init(P, n_components, rng, order=None):
    """Leading non-trivial eigenvectors of the random-walk matrix of ``P``.

    Equivalent to Laplacian eigenmaps on the affinity graph; ``v0`` is drawn from
    ``rng`` so that ARPACK is deterministic. When ``P`` numbers the points in
    ``order`` (row ``a`` is input point ``order[a]``), ``v0`` follows them, so
    each point starts from the same value whatever the numbering.
    """
    from scipy.sparse.linalg import eigsh

    P = sp.csr_matrix(P)
    n_samples = P.shape[0]
    # A's float64 values are the one array of P's size made here (a fit's P
    # is float32): A shares P's index arrays and is scaled in place by
    # blocks of rows, with the products of D^-1/2 P D^-1/2 in their order.
    values = P.data[: P.indptr[-1]].astype(np.float64)
    degree = row_sums(P.indptr, values)
    degree[degree == 0] = 1.0
    scale = 1.0 / np.sqrt(degree)
    counts = np.diff(P.indptr)
    for start in range(0, n_samples, _SCALE_BLOCK):
        stop = min(start + _SCALE_BLOCK, n_samples)
        block = values[P.indptr[start] : P.indptr[stop]]
        block *= np.repeat(scale[start:stop], counts[start:stop])
        block *= scale[P.indices[P.indptr[start] : P.indptr[stop]]]
    A = sp.csr_matrix((values, P.indices, P.indptr), shape=P.shape)
    # scipy narrows 64-bit index arrays that fit in 32 bits (a copy).
    A.indices, A.indptr = P.indices, P.indptr
    inv_sqrt = sp.diags(scale)
    k = min(n_components + 1, n_samples - 1)
    v0 = rng.uniform(-1, 1, n_samples)
    if order is not None:
        # The same start vector for the same point, whatever P's numbering.
        v0 = v0[order]
    if k < 1 or n_samples <= n_components + 1:
        vectors = np.linalg.eigh(A.toarray())[1][:, ::-1][:, 1 : n_components + 1]
    else:
        _, vectors = eigsh(A, k=k, which="LA", v0=v0, tol=1e-6)
        vectors = vectors[:, ::-1][:, 1:]
    vectors = inv_sqrt @ vectors
    # Deterministic sign: the largest-magnitude entry of each axis is positive.
    signs = np.sign(
        vectors[np.argmax(np.abs(vectors), axis=0), range(vectors.shape[1])]
    )
    signs[signs == 0] = 1
    return _pad_with_noise(vectors * signs, n_components, rng)


def initialize(init, *, X, P, n_components, rng, dtype, order=None):
    """Build the initial embedding requested by the ``init`` parameter.

    Parameters
    ----------
    init : {"pca", "spectral", "random"} or ndarray of shape (n_samples, n_components)
        The scheme, or the coordinates to start from (used as given).
    X : ndarray or sparse matrix of shape (n_samples, n_features)
        The validated input (used by ``"pca"``; its rows are the points).
    P : sparse matrix of shape (n_samples, n_samples) or None
        Joint affinities (used by ``"spectral"``, and only there needed), of
        the points numbered in ``order``.
    n_components : int
        Embedding dimension.
    rng : numpy.random.RandomState
        Source of randomness.
    dtype : numpy dtype
        Output dtype.
    order : ndarray of shape (n_samples,), default=None
        The numbering of the points in ``P`` and in the output: row ``a`` is
        the point ``order[a]`` of ``X`` and ``init``. None is the identity.

    Returns
    -------
    Y0 : ndarray of shape (n_samples, n_components)
        C-contiguous, rows numbered in ``order``; a scheme's first axis has
        standard deviation 1e-4.
    """
    n_samples = X.shape[0]
    if isinstance(init, str) and init == "pca":
        Y = pca_init(X, n_components, rng)
    elif isinstance(init, str) and init == "spectral":
        if P is None:
            raise ValueError('init="spectral" needs the affinities P.')
        Y = spectral_init(P, n_components, rng, order)
    elif isinstance(init, str) and init == "random":
        Y = rng.standard_normal((n_samples, n_components))
    else:
        Y = np.array(init, dtype=np.float64)
        if Y.shape != (n_samples, n_components):
            raise ValueError(
                f"init has shape {Y.shape}, expected (n_samples, n_components) = "
                f"({n_samples}, {n_components})."
            )
        if not np.all(np.isfinite(Y)):
            raise ValueError("init contains NaN or infinity.")
    if order is not None and not (isinstance(init, str) and init == "spectral"):
        Y = Y[order]
    if isinstance(init, str):
        Y = _rescale(Y)
    return np.ascontiguousarray(Y, dtype=dtype)
