"""Randomized block Krylov SVD by block Golub-Kahan-Lanczos bidiagonalisation.

The same Krylov space as block Lanczos on ``A^T A``
(:mod:`~fasttsne.linalg._svd._lanczos`), ``span{Omega, (A^T A) Omega, ...}``,
built by alternating ``A`` and ``A^T`` (Golub and Kahan 1965; blocks: Golub,
Luk and Overton 1981)::

    A V_j   = U_j L_j + U_{j-1} R_{j-1}^T
    A^T U_j = V_j L_j^T + V_{j+1} R_j

so that ``A V = U B`` with ``B`` block upper bidiagonal (``L_j`` on the
diagonal, ``R_j^T`` above it). Every product is taken with an orthonormal
block, so its rounding errors are ``eps ||A||`` and the singular values of
``B`` carry errors of ``eps s_1``, relative ``eps s_1 / s_i``, as those of
subspace iteration do. Block Lanczos on ``A^T A`` squares that: its basis
loses the directions below about ``sqrt(eps) s_1``. It costs less, though
(one side to orthogonalise, a partial schedule), so the Krylov solver runs
block Lanczos and switches to this one when the singular values it found span
more than the working precision allows (:func:`_needs_bidiagonal`).

Implementation notes. Both bases are fully reorthogonalised: the right basis
``V`` (short side) by a classical Gram-Schmidt pass over the whole basis after
the three-term step, a second where the first removed much ("twice is
enough"); the left blocks ``U_j`` (long side) likewise against every earlier
left block, as long as they fit in ``_MAX_KEPT_BYTES`` (beyond, only the
recurrence orthogonalises them: "one-sided" reorthogonalisation, Simon and Zha
2000, whose loss of orthogonality grows like ``eps ||A|| / s_min``). The left
coefficients go into ``B``, so that ``A V = U B`` holds to rounding. A block
that one SVQB pass cannot orthonormalise exactly (the steep spectra this
solver is for make the first blocks as ill-conditioned as ``A``) goes to
Householder QR, which is backward stable whatever the conditioning; columns
and directions below the noise floor ``_NOISE eps ||A||`` are dropped (zero
left columns; random right ones, as in block Lanczos). The Ritz vectors are
the right singular vectors of ``B`` (a dense SVD, which does not square the
singular values), and the final Rayleigh-Ritz step is taken on ``A`` itself,
through Householder QR where ``A V Y`` is ill-conditioned. Cost per step: the
two products, ``O((m + n) L b)`` for the passes; memory ``(m + n) L``.
"""

import numpy as np
import scipy.linalg

from fasttsne.linalg._svd._lanczos import _MAX_KEPT_BYTES, _BlockLanczos
from fasttsne.linalg._svd._orthogonal import _eps, _orthonormalize, _project_out

# Columns and directions of norm below _NOISE * eps * ||A|| are rounding noise.
_NOISE = 16.0
# Block Lanczos is trusted while s_k / s_1 stays above this (per dtype); below,
# the Krylov solver switches to bidiagonalisation (docs/svd.rst, "How "auto"
# decides").
_MIN_LANCZOS_RATIO = {np.dtype(np.float64): 1e-2, np.dtype(np.float32): 1 / 8}


def _needs_bidiagonal(S, dtype):
    """Whether singular values ``S`` from block Lanczos span too wide a range.

    Ritz values never exceed the singular values they approximate, so a
    block Lanczos result whose smallest value lies below the threshold belongs
    to a matrix whose ``s_k`` does too. Measured (float64): block Lanczos is at
    rounding level up to ``s_1 / s_k ~ 500`` and loses ``s_k`` entirely from
    ``~1500``; in float32 its error grows like ``eps (s_1 / s_k)^2`` and exceeds
    that of subspace iteration from ``s_1 / s_k ~ 10``.
    """
    if len(S) < 2 or S[0] <= 0:
        return False
    return bool(S[-1] < _MIN_LANCZOS_RATIO[np.dtype(dtype)] * S[0])


class _BlockBidiagonal(_BlockLanczos):
    """Block Golub-Kahan-Lanczos bidiagonalisation, both sides reorthogonalised.

    Reuses the state of :class:`~fasttsne.linalg._svd._lanczos._BlockLanczos`
    (the right basis ``V``, ``H = B^T B`` for its convergence test, the
    random start) and adds ``B`` itself (float64, upper triangular: block
    bidiagonal plus the left reorthogonalisation coefficients) and the left
    blocks: all of them while they fit in ``_MAX_KEPT_BYTES``, else the last.
    """

    def __init__(
        self, op, block, size, rng, products, *, full=False, lapack_driver="gesdd"
    ):
        self.B = None
        m = op.shape[0]
        self._keep_left = m * size * np.dtype(op.dtype).itemsize <= _MAX_KEPT_BYTES
        self._left = []
        # Whether a left direction was dropped as noise, which A V = U B ignores.
        self._dropped = False
        # (U_{j-1}, R_{j-1}^T) for the recurrence.
        self._prev = None
        super().__init__(
            op, block, size, rng, products, full=full, lapack_driver=lapack_driver
        )

    def _grow(self, capacity):
        """Reallocate the state for ``capacity`` columns, keeping its contents."""
        old = self.B
        super()._grow(capacity)
        self.B = np.zeros((capacity, capacity), dtype=np.float64)
        if old is not None:
            self.B[: old.shape[0], : old.shape[1]] = old

    def _floor(self):
        """Rounding-noise level of a product with ``A``."""
        return _NOISE * _eps(self.op.dtype) * self._scale

    def _left_step(self, j):
        """``U_j`` and ``L_j`` from ``A V_j`` (the first half of step ``j``)."""
        b, products = self.block, self.products
        lo, hi = j * b, (j + 1) * b
        W = self.op.matmat(self.V[:, lo:hi])
        norms = products.column_norms(W).astype(np.float64)
        self._scale = max(self._scale, float(np.max(norms)))
        if self._prev is not None:
            U_prev, Rt = self._prev
            products.subtract_dot(W, U_prev, Rt)
        for _ in range(2 if self._keep_left else 0):
            for i, U_old in enumerate(self._left):
                coef = products.inner(U_old, W)
                products.subtract_dot(W, U_old, coef)
                # Kept in B, so that A V = U B holds to rounding.
                self.B[i * b : (i + 1) * b, lo:hi] += coef
        U, L = _orthonormalize(
            W, self.rng, products, floor=self._floor(), resolve=True, fill=False
        )
        L = L.astype(np.float64)
        self._dropped = self._dropped or bool(np.any(np.all(L == 0, axis=1)))
        if self._keep_left:
            self._left.append(U)
        self.B[lo:hi, lo:hi] = L
        return U, L

    def step(self, j, last):
        """Apply ``A`` to block ``j`` and, unless ``last``, grow block ``j + 1``.

        Returns the coupling ``V_{j+1}^T A^T A V_j = R_j L_j`` (``None`` when
        ``last``), for the convergence test on ``H = B^T B``.
        """
        b, products = self.block, self.products
        lo, hi = j * b, (j + 1) * b
        self._reserve(hi if last else hi + b)
        U, L = self._left_step(j)
        H = L.T @ L
        if self._prev is not None:
            H += self._prev[1].T @ self._prev[1]
        self.H[lo:hi, lo:hi] = H
        if last:
            return None
        Z = self.op.rmatmat(U)
        norms = products.column_norms(Z).astype(np.float64)
        self._scale = max(self._scale, float(np.max(norms)))
        # The three-term step with its known coefficient, then a full pass (two
        # where the first removed much: Daniel, Gragg, Kaufman and Stewart).
        products.subtract_dot(Z, self.V[:, lo:hi], L.T)
        left = products.column_norms(Z).astype(np.float64)
        _project_out(Z, self.V[:, :hi], products, passes=1)
        if np.any(products.column_norms(Z) < left / np.sqrt(2)):
            _project_out(Z, self.V[:, :hi], products, passes=1)
        Q, R = _orthonormalize(
            Z,
            self.rng,
            products,
            basis=self.V[:, :hi],
            floor=self._floor(),
            resolve=True,
        )
        R = R.astype(np.float64)
        self.V[:, hi : hi + b] = Q
        self.B[lo:hi, hi : hi + b] = R.T
        coupling = R @ L
        self.H[hi : hi + b, lo:hi] = coupling
        self.H[lo:hi, hi : hi + b] = coupling.T
        self._prev = (U, R.T)
        return coupling

    def _select(self, size, n_ritz):
        """The best ``n_ritz`` right singular vectors of ``B``, as coefficients."""
        Vt = scipy.linalg.svd(
            self.B[:size, :size],
            check_finite=False,
            lapack_driver=self.lapack_driver,
        )[2]
        return np.ascontiguousarray(Vt[:n_ritz].T).astype(self.op.dtype, copy=False)

    def _kept_product(self, Y, size):
        """``A V Y = U (B Y)`` from the kept left blocks when a product with ``A``
        costs more than combining them and no noise was dropped; else None."""
        m, b = self.op.shape[0], self.block
        if (
            not self._keep_left
            or self._dropped
            or self.op.cost_per_column <= 4 * m * size
        ):
            return None
        BY = self.B[:size, :size] @ Y.astype(np.float64)
        AVY = self.products.dot(self._left[0], BY[:b])
        for j in range(1, size // b):
            self.products.add_dot(AVY, self._left[j], BY[j * b : (j + 1) * b])
        return AVY

    def _orthonormal_image(self, AVY):
        """``Q, R`` with ``AVY = Q R``, resolving every direction above the noise.

        The Ritz vectors of small singular values carry errors of
        ``eps s_1 / gap`` along the large ones, so the columns of ``A V Y`` can
        be far from orthogonal: Householder QR where one SVQB pass does not do.
        """
        return _orthonormalize(
            AVY, self.rng, self.products, floor=self._floor(), resolve=True
        )
