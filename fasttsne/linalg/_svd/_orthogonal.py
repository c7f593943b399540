"""Orthonormalisation of tall blocks: Gram-Schmidt projections and SVQB.

Every product with a tall array goes through the basis-products object
(``products``, see :mod:`~fasttsne.linalg._svd._operators`); the Gram matrices
and their eigenproblems are small NumPy work.
"""

import numpy as np

_TINY = float(np.finfo(np.float64).tiny)


def _eps(dtype):
    """Machine epsilon of a float dtype."""
    return float(np.spacing(np.dtype(dtype).type(1)))


def _project_out(Z, basis, products, passes=2):
    """Remove from ``Z`` (in place) its components along the orthonormal ``basis``.

    Classical Gram-Schmidt, by default run twice: one pass leaves an error
    proportional to ``eps * ||Z|| / ||Z_out||``, which a second pass removes
    (Giraud et al., 2005).

    Returns
    -------
    coef : ndarray of shape (basis.shape[1], Z.shape[1])
        ``basis^T Z`` of the input ``Z``.
    """
    coef = None
    for _ in range(passes):
        again = products.inner(basis, Z)
        products.subtract_dot(Z, basis, again)
        coef = again if coef is None else coef + again
    return coef


def _gram_threshold(n_columns, dtype, gram_dtype=np.float64):
    """Scaled Gram eigenvalues of ``n_columns`` columns below this are noise.

    The Gram matrix is formed in ``gram_dtype``; the columns themselves carry
    relative errors of ``eps(dtype)``.
    """
    b = max(n_columns, 1)
    return max(16 * b * _eps(gram_dtype), (b * _eps(dtype)) ** 2)


def _svqb(Z, threshold, products, gram_dtype=np.float64):
    """Orthonormalise the columns of ``Z`` through its Gram matrix (SVQB).

    One pass of Stathopoulos and Wu's SVQB (2002): scale the columns to unit norm,
    diagonalise the Gram matrix (formed in ``gram_dtype``), and map ``Z`` onto the
    eigenvectors. Directions whose scaled eigenvalue is below ``threshold`` are
    numerically dependent and are dropped. Unlike Householder QR this is two GEMMs
    and a tiny eigenproblem, which is much faster on tall, skinny blocks. A float64
    Gram matrix resolves directions down to ``sqrt(eps64)`` relative norm; the
    working precision suffices (and saves casting ``Z``) for nearly orthogonal
    columns.

    Returns
    -------
    Q : tall array of shape (n, r), r <= Z.shape[1]
    exact : bool
        Whether ``Q`` is orthonormal to working precision already: the loss of
        orthogonality of one pass is about ``eps * cond(scaled Z)^2``, at most
        ``64 eps`` when this is True; otherwise a second pass is needed.
    """
    if Z.shape[1] == 0:
        return Z, True
    G = products.gram(Z, gram_dtype).astype(np.float64, copy=False)
    d = np.sqrt(np.diag(G))
    d[d == 0] = 1.0
    evals, evecs = np.linalg.eigh(G / np.outer(d, d))
    top = max(evals[-1], _TINY)
    keep = evals > threshold * top
    transform = evecs[:, keep] / (d[:, np.newaxis] * np.sqrt(evals[keep]))
    exact = bool(np.all(keep)) and evals[0] >= top / 64
    return products.dot(Z, transform), exact


def _svqb_twice_if_needed(Z, threshold, products):
    """SVQB run twice ("twice is enough"), the second pass only when needed."""
    Q, exact = _svqb(Z, threshold, products)
    return Q if exact else _svqb(Q, threshold, products)[0]


def _orthonormalize(
    Z,
    rng,
    products,
    *,
    basis=None,
    norms_before=None,
    floor=0.0,
    resolve=False,
    fill=True,
):
    """Orthonormal basis of ``range(Z)`` orthogonal to ``basis``, and coefficients.

    SVQB, twice if needed; numerically dependent directions (``A`` of
    low rank, an invariant subspace found) are replaced by random directions
    orthogonal to everything so far (or by zero columns), so the result always
    has ``Z.shape[1]`` columns. ``Z`` must already be orthogonal to ``basis``.

    Parameters
    ----------
    Z : tall array of shape (n, b)
    rng : RandomState or Generator
        Source of the replacement directions.
    products : _BasisProducts
        Runs every product with ``Z`` and ``basis``.
    basis : tall array of shape (n, c) or None
        Orthonormal columns to stay orthogonal to.
    norms_before : ndarray of shape (b,) or None
        Column norms of ``Z`` before it was projected away from ``basis``. A column
        that lost all but ``sqrt(eps)`` of its norm lay numerically in
        ``range(basis)``: what is left is rounding noise and is discarded.
    floor : float, default=0.0
        Rounding-noise level of ``Z``: columns, and with ``resolve`` also
        directions, of norm at most ``floor`` are discarded.
    resolve : bool, default=False
        Keep every direction of ``Z`` above ``floor``, however ill-conditioned
        ``Z`` is, instead of those that a Gram matrix resolves (down to
        ``sqrt(eps)`` of the column norms): a block that one SVQB pass does not
        orthonormalise exactly goes to Householder QR.
    fill : bool, default=True
        Replace discarded directions by random ones; ``False`` leaves zero
        columns (and zero rows of ``R``) in their place.

    Returns
    -------
    Q : tall array of shape (n, b)
        Orthonormal columns (or zero columns, see ``fill``).
    R : ndarray of shape (b, b)
        ``Q^T Z``, so that ``Z ~= Q R`` up to the dropped directions.
    """
    n, b = Z.shape
    dtype = products.dtype_of(Z)
    threshold = _gram_threshold(b, dtype)
    if norms_before is not None or floor > 0:
        limit = floor
        if norms_before is not None:
            limit = np.maximum(np.sqrt(_eps(dtype)) * norms_before, floor)
        noise = products.column_norms(Z) <= limit
        if np.any(noise):
            Z = products.copy(Z)
            Z[:, noise] = 0
    R = None
    if resolve:
        Q, exact = _svqb(Z, threshold, products)
        if not (exact and Q.shape[1] == b):
            # Ill-conditioned: Householder QR, backward stable whatever the
            # conditioning, where a Gram matrix resolves only sqrt(eps).
            Q = products.qr(Z)
        # Directions of Z (not only its columns) at the noise floor go too.
        R = products.inner(Q, Z)
        P, sig, _ = np.linalg.svd(R.astype(np.float64), full_matrices=False)
        keep = sig > floor
        if not np.all(keep):
            Q, R = products.dot(Q, P[:, keep]), None
    else:
        Q = _svqb_twice_if_needed(Z, threshold, products)
    if Q.shape[1] < b and not fill:
        Q, R = products.hstack([Q, products.zeros((n, b - Q.shape[1]), dtype)]), None
    if Q.shape[1] < b:
        R = None
        if basis is not None and basis.shape[1]:
            # Directions that nearly cancelled lose orthogonality to basis.
            _project_out(Q, basis, products)
            Q = _svqb_twice_if_needed(Q, threshold, products)
        known = Q if basis is None else products.hstack([basis, Q])
        n_fill = min(b - Q.shape[1], n - known.shape[1])
        fill_block = products.gaussian(rng, (n, n_fill), dtype)
        if known.shape[1]:
            _project_out(fill_block, known, products)
        Q = products.hstack([Q, _svqb_twice_if_needed(fill_block, threshold, products)])
        if Q.shape[1] < b:
            # The space is exhausted (b exceeds its dimension); zero columns
            # contribute nothing to any projection.
            Q = products.hstack([Q, products.zeros((n, b - Q.shape[1]), dtype)])
    if R is None:
        R = products.inner(Q, Z)
    return Q, R
