"""Randomized block Krylov SVD: block Lanczos with partial reorthogonalisation.

Randomized block Krylov iteration (Musco and Musco, 2015) keeps the whole block
Krylov space ``span{Omega, (A^T A) Omega, ..., (A^T A)^q Omega}`` of a Gaussian
``Omega`` and extracts the best approximation from it.

Implementation notes. The basis is built by a block Lanczos recurrence on
``A^T A`` (the local three-term step, then one classical Gram-Schmidt pass over
the whole basis: "twice is enough", Giraud et al. 2005), and it lives on the
*short* side of ``A`` (a wide matrix is transposed), so orthogonalisation costs
``O(min(m, n) L^2)`` for a basis of ``L`` columns and never touches the long
side. The full pass is partial (Simon 1984): in float64 it may be skipped, for
a second local pass, on steps where the loss of orthogonality it last measured
was small and no cancellation amplified it since
(``_BlockLanczos._reschedule``); this keeps the basis orthogonal to about
``1e-10``, far below the ``sqrt(eps)`` that the Ritz values need, for a fraction
of the full passes (counts in docs/svd.rst). Blocks are orthonormalised by SVQB
(Stathopoulos and Wu 2002, :mod:`~fasttsne.linalg._svd._orthogonal`): two GEMMs
and a tiny eigenproblem, much faster than Householder QR on tall blocks. The
projected matrix ``H = V^T A^T A V`` is block tridiagonal and comes for free
from the recurrence coefficients; its eigenvectors give Ritz vectors. Because
``H`` squares the singular values, it is used only to *select* the ``k + p``
best Ritz vectors ``V'``; the final Rayleigh-Ritz step is taken on ``A V'``
itself (combined from the blocks ``A V_j`` kept from the iteration when they fit
in ``_MAX_KEPT_BYTES``, else one more product with ``k + p`` columns), so the
returned singular values carry the accuracy of ``A``, not of ``A^T A``. As a
side effect ``U S = A V^T`` holds to rounding, so ``fit_transform(X)`` and
``fit(X).transform(X)`` agree. Cost: ``2 n_iter + 1`` products of a block with
``A`` or ``A^T`` (plus that one), and ``O(min(m, n) L^2 + max(m, n) L k)``;
memory ``(m + n) L``. The basis may be built on a float32 copy of a float64
``A`` (``final_op``, when the caller asks for a few digits): the final step
then runs on ``A`` in float64, on the Ritz vectors cast to float64.

The basis, the blocks and the Ritz vectors are tall arrays, reached only
through the operator ``op`` and the basis-products object ``products``
(:mod:`~fasttsne.linalg._svd._operators`); ``H`` and every coefficient block
are small NumPy arrays.
"""

import numpy as np
import scipy.linalg

from fasttsne.linalg._svd._orthogonal import (
    _TINY,
    _eps,
    _gram_threshold,
    _orthonormalize,
    _project_out,
    _svqb,
)

# The Krylov solver keeps A V (long side x basis) when it takes at most this much.
_MAX_KEPT_BYTES = 2**30
# Partial reorthogonalisation (_BlockLanczos._reschedule): full passes may be
# skipped while the measured loss of orthogonality stays below _MAX_LOSS.
_MAX_LOSS = 1e-10
_MAX_SKIP = 8
# ... and no local pass cancelled more than this factor of a column's norm.
_MAX_CANCELLATION = 100.0
# A Lanczos column whose norm left is below _BREAKDOWN * eps * ||A^T A|| is noise.
_BREAKDOWN = 1000.0


def _top_eigh(H, n_wanted):
    """Top ``n_wanted`` eigenpairs of the symmetric matrix ``H``, largest first."""
    size = H.shape[0]
    n_wanted = min(n_wanted, size)
    evals, evecs = scipy.linalg.eigh(
        H, subset_by_index=[size - n_wanted, size - 1], check_finite=False
    )
    # Contiguous copies: BLAS cannot take the reversed views, and numpy's
    # fallback matmul for them is an order of magnitude slower.
    return evals[::-1].copy(), np.ascontiguousarray(evecs[:, ::-1])


def _top_eigh_banded(H, bandwidth, n_wanted):
    """:func:`_top_eigh` for a symmetric band matrix (``O(size * bandwidth^2)``)."""
    size = H.shape[0]
    bandwidth = min(bandwidth, size - 1)
    n_wanted = min(n_wanted, size)
    band = np.zeros((bandwidth + 1, size))
    for offset in range(bandwidth + 1):
        band[offset, : size - offset] = np.diagonal(H, -offset)
    evals, evecs = scipy.linalg.eig_banded(
        band,
        lower=True,
        select="i",
        select_range=(size - n_wanted, size - 1),
        check_finite=False,
    )
    # Contiguous copies: BLAS cannot take the reversed views, and numpy's
    # fallback matmul for them is an order of magnitude slower.
    return evals[::-1].copy(), np.ascontiguousarray(evecs[:, ::-1])


class _BlockLanczos:
    """Block Lanczos on ``op^T op`` with partial reorthogonalisation.

    State: the orthonormal basis ``V`` (short side x columns, Fortran order so that
    leading blocks are contiguous), the projected matrix ``H = V^T A^T A V``
    (float64; block tridiagonal, filled block by block) and, while they fit in
    ``_MAX_KEPT_BYTES``, the blocks ``A V_j`` for the final Rayleigh-Ritz step (kept
    as computed, never copied). Unless ``full``, storage grows geometrically up
    to ``size`` columns, so that an iteration stopped early by its tolerance never
    allocates the basis it did not need; ``full`` allocates it at once (no
    copies). ``products`` (a :class:`_BasisProducts`) runs every operation on
    the tall arrays.
    """

    def __init__(
        self, op, block, size, rng, products, *, full=False, lapack_driver="gesdd"
    ):
        self.op, self.block, self.rng, self.size = op, block, rng, size
        self.products = products
        self.lapack_driver = lapack_driver
        # Reorthogonalisation schedule (see _full_pass_due).
        self._phase = self._n_skip = 0
        # Running estimate of the loss of orthogonality since the last full pass,
        # and of ||A^T A||.
        self._estimate = _eps(np.float64)
        self._scale = 0.0
        n = op.shape[1]
        self.V = self.H = None
        # A V_j, one array per block, or None: recomputing A (V Y) for the final
        # step costs one product of k + p columns, cheaper than combining the
        # blocks (and faulting in their memory) unless a product is expensive
        # next to the long side times the basis (dense input, say).
        m = op.shape[0]
        self.AV = [] if op.cost_per_column > 4 * m * size else None
        self._grow(size if full else min(size, 8 * block))
        start = products.gaussian(rng, (n, block), op.dtype)
        self.V[:, :block] = _orthonormalize(start, rng, products)[0]

    def _grow(self, capacity):
        """Reallocate the state for ``capacity`` columns, keeping its contents."""
        m, n = self.op.shape
        dtype = self.op.dtype
        old = 0 if self.V is None else self.V.shape[1]
        V = self.products.empty((n, capacity), dtype)
        H = np.zeros((capacity, capacity), dtype=np.float64)
        if old:
            V[:, :old] = self.V
            H[:old, :old] = self.H
        if m * capacity * np.dtype(dtype).itemsize > _MAX_KEPT_BYTES:
            self.AV = None
        self.V, self.H = V, H

    def _reserve(self, columns):
        """Make room for ``columns`` basis columns."""
        if columns > self.V.shape[1]:
            self._grow(min(self.size, max(columns, 2 * self.V.shape[1])))

    def _full_pass_due(self):
        """Whether this step reorthogonalises against the whole basis.

        Cycles of ``2 + n_skip`` steps: two full passes (the first measures the
        loss of orthogonality built up since the last cycle; the second
        cleans the block the skipped steps left behind), then ``n_skip`` steps
        with local passes only. Bases in float32, whose rounding errors alone
        exceed ``_MAX_LOSS``, always take the full pass.
        """
        if self.op.dtype != np.float64:
            return True
        full = self._phase < 2
        self._phase = (self._phase + 1) % (2 + self._n_skip)
        return full

    def _reschedule(self, loss, grow):
        """Adapt ``n_skip`` to the loss of orthogonality measured by a full pass.

        Rounding errors grow along converged Ritz vectors by a roughly constant
        factor per step, small on flat spectra and large on fast-decaying ones
        (docs/svd.rst). ``n_skip`` grows (if ``grow``) while the loss
        measured at the start of a cycle stays below ``_MAX_LOSS / 100`` and
        falls to 0 above ``_MAX_LOSS``, far below the semi-orthogonality
        ``sqrt(eps) ~ 1.5e-8`` under which the Ritz values of ``H`` keep full
        accuracy (Simon, 1984).
        """
        self._estimate = max(loss, _eps(np.float64))
        if loss > _MAX_LOSS:
            self._n_skip, self._phase = 0, 0
        elif grow and loss <= _MAX_LOSS / 100 and self._phase == 1:
            self._n_skip = min(self._n_skip + 1, _MAX_SKIP)

    def step(self, j, last):
        """Apply ``A`` to block ``j`` and, unless ``last``, grow block ``j + 1``.

        Returns the coupling ``R = V_{j+1}^T A^T A V_j`` (``None`` when ``last``).
        """
        b, products = self.block, self.products
        lo, hi = j * b, (j + 1) * b
        self._reserve(hi if last else hi + b)
        W = self.op.matmat(self.V[:, lo:hi])
        if self.AV is not None:
            self.AV.append(W)
        if last:
            self.H[lo:hi, lo:hi] = products.inner(W, W)
            return None
        Z = self.op.rmatmat(W)
        norms = products.column_norms(Z)
        # The three-term recurrence first: in exact arithmetic only blocks j - 1
        # and j carry A^T A V_j. A full pass over all blocks then removes the
        # rounding-level rest (the two passes of "twice is enough") on the steps
        # the schedule picks; on the others a second local pass does.
        first_local = max(0, lo - b)
        full = self._full_pass_due()
        local = _project_out(
            Z, self.V[:, first_local:hi], products, passes=1 if full else 2
        )
        left = products.column_norms(Z)
        forced = False
        # ||A^T A|| from below: the largest column norm of A^T A V_j so far.
        self._scale = max(self._scale, float(np.max(norms)))
        if not full:
            # The rounding errors of the basis grow by up to ||A^T A|| / beta per
            # step (Simon 1984; beta: what the local passes left of Z), and a
            # column that cancels sharply is a warning on its own.
            smallest = max(float(np.min(left)), _TINY)
            self._estimate *= self._scale / smallest
            cancelled = float(np.max(norms / np.maximum(left, _TINY)))
            if cancelled > _MAX_CANCELLATION or self._estimate > _MAX_LOSS:
                # Reorthogonalise now and on the next step.
                full = forced = True
                self._n_skip, self._phase = 0, 1
        if full:
            coef = _project_out(Z, self.V[:, :hi], products, passes=1)
            if first_local:
                # The loss of orthogonality: how much of Z lay along old blocks.
                old = coef[:first_local]
                loss = np.max(np.abs(old) / np.maximum(left, _TINY))
                self._reschedule(float(loss), grow=not forced)
                if np.any(products.column_norms(Z) < left / np.sqrt(2)):
                    # The older blocks had only this one pass: a pass that removed
                    # much needs a second (Daniel, Gragg, Kaufman and Stewart).
                    coef += _project_out(Z, self.V[:, :hi], products, passes=1)
            local += coef[first_local:hi]
        # Only the diagonal block is kept: H is block tridiagonal and the older
        # blocks of coef are rounding noise.
        self.H[lo:hi, lo:hi] = local[lo - first_local :]
        # A column left with no more than rounding errors of A^T A V_j (the
        # numerical rank of A^T A is used up) is noise: _orthonormalize replaces
        # it with a random direction.
        floor = _BREAKDOWN * np.sqrt(_eps(self.op.dtype)) * self._scale
        Q, R = _orthonormalize(
            Z,
            self.rng,
            products,
            basis=self.V[:, :hi],
            norms_before=np.maximum(norms, floor),
        )
        self.V[:, hi : hi + b] = Q
        self.H[hi : hi + b, lo:hi] = R
        self.H[lo:hi, hi : hi + b] = R.T
        return R

    def converged(self, j, R, n_components, tol):
        """Whether the top Ritz values of blocks ``0..j`` are within ``tol``."""
        b = self.block
        hi = (j + 1) * b
        ritz_values, Y = _top_eigh_banded(self.H[:hi, :hi], 2 * b - 1, n_components)
        # ||A^T A x - theta x|| = ||R y_last|| for the Ritz pair (theta, x = V y);
        # an error r in sigma^2 is a relative error r / (2 theta) in sigma.
        residual = np.linalg.norm(R @ Y[j * b : hi], axis=0)
        return bool(np.all(residual <= 2 * tol * np.maximum(ritz_values, _TINY)))

    def _select(self, size, n_ritz):
        """The best ``n_ritz`` Ritz vectors of blocks ``0..size``, as
        coefficients on the basis (small, in the working precision)."""
        H, b = self.H[:size, :size], self.block
        if size > 8 * b:
            Y = _top_eigh_banded(H, 2 * b - 1, n_ritz)[1]
        else:
            Y = _top_eigh(H, n_ritz)[1]
        return Y.astype(self.op.dtype, copy=False)

    def _kept_product(self, Y, size):
        """``A V Y`` combined from the kept blocks ``A V_j``, or None."""
        if self.AV is None:
            return None
        b, products = self.block, self.products
        AVY = products.dot(self.AV[0], Y[:b])
        for j in range(1, size // b):
            products.add_dot(AVY, self.AV[j], Y[j * b : (j + 1) * b])
        return AVY

    def _orthonormal_image(self, AVY):
        """``Q, R`` with ``AVY = Q R`` and orthonormal ``Q``.

        The columns of ``A V Y`` are nearly orthogonal (Ritz vectors): a Gram
        matrix in the working precision orthonormalises them, unless it cannot
        resolve them all (A of low rank), where float64 and random fill take
        over.
        """
        products = self.products
        dtype = products.dtype_of(AVY)
        threshold = _gram_threshold(AVY.shape[1], dtype, dtype)
        Q, exact = _svqb(AVY, threshold, products, dtype)
        if Q.shape[1] == AVY.shape[1]:
            if not exact:
                Q = _svqb(Q, threshold, products, dtype)[0]
            return Q, products.inner(Q, AVY)
        return _orthonormalize(AVY, self.rng, products)

    def ritz_svd(self, size, n_components, n_ritz, final_op=None):
        """Rayleigh-Ritz on ``A`` over the best ``n_ritz`` Ritz vectors of blocks
        ``0..size``; returns ``U, S, Vt`` with ``n_components`` triplets.

        ``final_op`` is ``A`` in a higher precision than the basis (float64 for a
        float32 basis): the Ritz vectors are cast to its dtype and the step is
        taken on it, so that the singular values are those of ``A`` on their
        span to that precision.
        """
        products = self.products
        Y = self._select(size, min(n_ritz, size))
        VY = products.dot(self.V[:, :size], Y)
        if final_op is None:
            op, AVY = self.op, self._kept_product(Y, size)
        else:
            op, AVY = final_op, None
            VY = products.astype(VY, final_op.dtype)
        dtype = op.dtype
        gram = products.inner(VY, VY)
        # A float32 basis cast to float64 always fails this test, as expected.
        if np.max(np.abs(gram - np.eye(gram.shape[0]))) > 64 * _eps(dtype):
            # A basis orthogonal only to about _MAX_LOSS (skipped passes), or
            # worse where the numerical rank ran out: make the Ritz vectors
            # orthonormal to working precision, so that the singular values below
            # are those of A on their span. VY = Q T for an invertible T (a
            # rotation when VY was nearly orthonormal), so A Q = AVY T^-1; T is
            # ill-conditioned only where directions were replaced by random ones.
            Q, T = _orthonormalize(VY, self.rng, products)
            if AVY is not None and np.linalg.cond(T) < 2:
                AVY = products.dot(AVY, np.linalg.inv(T))
            else:
                AVY = None
            VY = Q
        if AVY is None:
            AVY = op.matmat(VY)
        # On A itself, not on H, whose entries square the singular values:
        # A V Y = Q R = (Q P) diag(S) Gt, so A (V Y Gt^T) = (Q P) diag(S).
        Q, R = self._orthonormal_image(AVY)
        P, S, Gt = scipy.linalg.svd(
            R, check_finite=False, lapack_driver=self.lapack_driver
        )
        k = n_components
        return products.dot(Q, P[:, :k]), S[:k], products.dot(VY, Gt[:k].T).T


def _test_due(j, last_test):
    """Whether an explicit ``tol`` is tested after block ``j``.

    After each of the first 8 blocks, then whenever the blocks have grown by
    an eighth since the last test: a test costs ``O(size^2 b)`` for a basis of
    ``size`` columns (eigenvectors of the band matrix), which after every
    block would add up to a sizeable part of a long iteration (docs/svd.rst),
    and a converged iteration runs at most an eighth plus one block longer.
    """
    return j < 8 or 8 * (j + 1) >= 9 * (last_test + 1)


def _block_krylov(
    op,
    n_components,
    *,
    n_oversamples,
    block_size,
    n_iter,
    tol,
    rng,
    products,
    solver=_BlockLanczos,
    lapack_driver="gesdd",
    abandon_if=None,
    final_op=None,
):
    """Randomized block Krylov SVD by block Lanczos on ``op^T op``.

    Builds an orthonormal basis ``V`` of ``span{Omega, (A^T A) Omega, ...,
    (A^T A)^n_iter Omega}`` (``Omega``: ``block_size`` Gaussian columns) on the short
    side, takes the ``n_components + n_oversamples`` best Ritz vectors of the block
    tridiagonal ``H = V^T A^T A V`` and finishes with a Rayleigh-Ritz step on ``A V``
    itself (see the module notes).

    Parameters
    ----------
    op : _LinearOperator
        The matrix ``A`` (m x n, ``n <= m`` for the basis to be on the short side).
    n_components, n_oversamples : int
        ``k`` and ``p``: the Rayleigh-Ritz step runs on the ``k + p`` best Ritz
        vectors.
    block_size, n_iter : int
        Columns per block, and blocks after the first.
    tol : float or None
        Stop early once the residual bound on the relative error of each of the top
        ``n_components`` Ritz values is below ``tol``; ``0`` never stops early.
        ``None`` means ``sqrt(eps)``, tested after every block, but only where the
        test (a banded eigenproblem of the basis size) costs little next to an
        iteration; an explicit ``tol`` is tested on the schedule of
        :func:`_test_due`.
    rng : RandomState or Generator
        Source of the starting block and of replacement directions.
    products : _BasisProducts
        Runs every operation on the basis and the other tall arrays.
    solver : type, default=_BlockLanczos
        :class:`_BlockLanczos`, or the block bidiagonalisation of
        :mod:`~fasttsne.linalg._svd._bidiagonal`, which builds the same space.
    lapack_driver : {"gesdd", "gesvd"}, default="gesdd"
        LAPACK driver of the small SVDs.
    abandon_if : callable or None, default=None
        Called once, after the first blocks that hold ``n_components`` Ritz
        values, with the square roots of the top ``n_components``; if it returns
        True, the iteration stops and ``None`` is returned.
    final_op : _LinearOperator or None, default=None
        ``A`` in a higher precision than ``op``, for the final Rayleigh-Ritz
        step (:meth:`_BlockLanczos.ritz_svd`); ``None`` takes it on ``op``.

    Returns
    -------
    U, S, Vt, n_iter_run
        Or ``None`` when ``abandon_if`` stopped the iteration.
    """
    n = op.shape[1]
    b = min(block_size, n)
    # An explicit tol is tested on a sparser schedule (_test_due): each test
    # solves a banded eigenproblem of the whole basis.
    sparse_tests = tol is not None
    if (n_iter + 1) * b >= n:
        # The Krylov space would fill the whole space: one block spanning it all
        # gives the exact SVD for fewer products.
        b, n_iter = n, 0
    if tol is None:
        tol = float(np.sqrt(_eps(op.dtype)))
        # An iteration costs ~4 b cost_per_column flops (two products), the test
        # about 20 size (2b)^2 flops: test only when that is under a tenth.
        if 200 * (n_iter + 1) * b * b > op.cost_per_column:
            tol = 0.0
    lanczos = solver(
        op,
        b,
        (n_iter + 1) * b,
        rng,
        products,
        full=tol == 0,
        lapack_driver=lapack_driver,
    )
    if final_op is not None:
        # The final step multiplies by final_op: products with op are not kept.
        lanczos.AV = None
    n_run = n_iter
    last_test = -1
    for j in range(n_iter + 1):
        R = lanczos.step(j, last=j == n_iter)
        if (
            abandon_if is not None
            and R is not None
            and j * b < n_components <= (j + 1) * b
        ):
            # The first blocks that hold n_components Ritz values.
            size = (j + 1) * b
            ritz_values = scipy.linalg.eigvalsh(
                lanczos.H[:size, :size], check_finite=False
            )
            top = np.sqrt(np.maximum(ritz_values[::-1][:n_components], 0.0))
            if abandon_if(top):
                return None
        if (
            R is not None
            and tol > 0
            and (j + 1) * b >= n_components
            and (not sparse_tests or _test_due(j, last_test))
        ):
            last_test = j
            if lanczos.converged(j, R, n_components, tol):
                n_run = j
                break
    if final_op is not None and hasattr(op, "release"):
        # op's tiles are not multiplied again: freed before final_op tiles A.
        op.release()
    U, S, Vt = lanczos.ritz_svd(
        (n_run + 1) * b, n_components, n_components + n_oversamples, final_op
    )
    return U, S, Vt, n_run
