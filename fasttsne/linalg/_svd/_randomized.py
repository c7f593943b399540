# pylint: disable=too-many-lines
"""Randomized truncated SVD: the ``RandomizedSVD`` transformer and ``randomized_svd``.

Two range finders are implemented, both after Halko, Martinsson and Tropp (2011):

``"subspace"``
    Randomized subspace (power) iteration: ``Y = (A A^T)^q A Omega`` for a Gaussian
    ``Omega`` with ``l = k + p`` columns, renormalised between products (LU, QR or not
    at all), then the Rayleigh-Ritz step ``B = Q^T A``. This is what
    ``sklearn.utils.extmath.randomized_svd`` and fbpca do.

``"krylov"``
    Randomized block Krylov iteration (Musco and Musco, 2015): instead of keeping only
    the last block ``(A^T A)^q Omega`` it keeps the whole block Krylov space
    ``span{Omega, (A^T A) Omega, ..., (A^T A)^q Omega}`` and extracts the best
    approximation from it. For the same number of products with ``A`` the Krylov space
    contains the subspace-iteration space, and on flat spectra it converges like a
    Chebyshev polynomial instead of a monomial (error ``~ exp(-2 q sqrt(gap))`` instead
    of ``(1 - gap)^(2q)``).

Implementation notes for the Krylov solver. The basis is built by a block Lanczos
recurrence on ``A^T A`` (the local three-term step, then one classical
Gram-Schmidt pass over the whole basis: "twice is enough", Giraud et al. 2005),
and it lives on the *short* side of ``A`` (a wide matrix is transposed), so
orthogonalisation costs ``O(min(m, n) L^2)`` for a basis of ``L`` columns and
never touches the long side. The full pass is partial (Simon 1984): in float64
it may be skipped, for a second local pass, on steps where the loss of
orthogonality it last measured was small and no cancellation amplified it since
(``_BlockLanczos._reschedule``); this keeps the basis orthogonal to about
``1e-10`` (2.7e-10 the worst seen), far below the ``sqrt(eps)`` that the Ritz
values need. On case (c) of the benchmark (64 blocks of 16 columns) 40 full
passes ran in the 63 steps, second passes included. Blocks are orthonormalised by SVQB
(Stathopoulos and Wu 2002): two GEMMs and a tiny eigenproblem, 50 times faster than
Householder QR on tall blocks here. The projected matrix ``H = V^T A^T A V`` is block
tridiagonal and comes for free from the recurrence coefficients; its eigenvectors
give Ritz vectors. Because ``H`` squares the singular values, it is used only to
*select* the ``k + p`` best Ritz vectors ``V'``; the final Rayleigh-Ritz step is
taken on ``A V'`` itself (combined from the blocks ``A V_j`` kept from the
iteration when they fit in ``_MAX_KEPT_BYTES``, else one more product with
``k + p`` columns), so the returned singular values carry the accuracy of ``A``,
not of ``A^T A``. As a side effect ``U S = A V^T`` holds to rounding, so
``fit_transform(X)`` and ``fit(X).transform(X)`` agree. Cost: ``2 n_iter + 1``
products of a block with ``A`` or ``A^T`` (plus that one), and
``O(min(m, n) L^2 + max(m, n) L k)``; memory ``(m + n) L``.

Products: dense input goes to BLAS (float32 stays float32). Sparse input (CSR or
CSC) is never densified. It is copied once, in O(nnz), into tiles of consecutive
columns (:mod:`fasttsne._cython._spmm`) small enough that the rows of the dense
block a tile picks at random stay in the L2 cache; the products run in OpenMP
threads, as many as the BLAS uses, and are bitwise identical for any number of
threads. The copy takes ``nnz (4 + itemsize) + 8 n_tiles (n_rows + 1)`` bytes next
to the input (and a sorted copy first if its rows are not sorted). Centring
(``center=True``) of sparse input is implicit: ``(A - 1 mu^T) X = A X - 1 (mu^T
X)``.
"""

import mmap
import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from numbers import Integral, Real

import numpy as np
import scipy.linalg
import scipy.sparse as sp
from sklearn.base import (
    BaseEstimator,
    ClassNamePrefixFeaturesOutMixin,
    TransformerMixin,
)
from sklearn.utils import check_array, check_random_state
from threadpoolctl import ThreadpoolController

from fasttsne._cython import _spmm
from fasttsne._validation import (
    Interval,
    StrOptions,
    _fit_context,
    check_is_fitted,
    validate_data,
    validate_params,
)

__all__ = ["RandomizedSVD", "randomized_svd"]

# Sparse products split the columns of A into tiles whose slice of the dense
# operand takes about this much (half the 2 MiB L2 of the benchmark machine: on
# case (c), 0.8 MB tiles were the fastest for 8 and 16 columns).
_TILE_BYTES = 2**20
# The Krylov solver keeps A V (long side x basis) when it takes at most this much.
_MAX_KEPT_BYTES = 2**30
_TINY = float(np.finfo(np.float64).tiny)
# _SplitGemm cuts products whose tall operand has at least _MIN_SPLIT_SIZE
# entries into _GEMM_PIECES pieces of rows, or into pieces of _GEMM_PIECE_ROWS
# rows (at most _MAX_GEMM_PIECES) when that makes more.
_GEMM_PIECES = 8
_GEMM_PIECE_ROWS = 16384
_MAX_GEMM_PIECES = 64
_MIN_SPLIT_SIZE = 2**20
# Arrays of at least this size are allocated by _untouched from an anonymous mmap.
_MMAP_MIN_BYTES = 2**24
# Partial reorthogonalisation (_BlockLanczos._reschedule): full passes may be
# skipped while the measured loss of orthogonality stays below _MAX_LOSS.
_MAX_LOSS = 1e-10
_MAX_SKIP = 8
# ... and no local pass cancelled more than this factor of a column's norm.
_MAX_CANCELLATION = 100.0
# A Lanczos column whose norm left is below _BREAKDOWN * eps * ||A^T A|| is noise.
_BREAKDOWN = 1000.0
# algorithm="auto" falls back to subspace iteration when the Krylov basis (short
# side x basis) would take more than this.
_MAX_KRYLOV_BYTES = 2**30


def _blas_threads_now():
    """Number of threads the BLAS is set to use now."""
    info = ThreadpoolController().select(user_api="blas").info()
    if not info:
        return 1
    return max(1, min(lib["num_threads"] for lib in info))


def _blas_n_threads():
    """Number of threads the BLAS uses; sparse products use as many.

    While a sparse solve holds the BLAS to one thread, the count it found.
    """
    held = _OneBlasThread.held_count()
    return _blas_threads_now() if held is None else held


class _OneBlasThread:
    """Hold the BLAS to one thread while any sparse solve runs.

    threadpoolctl's limits are process-wide and each restores what it found on
    entry, so overlapping solves (threads of a GridSearchCV, say) would leave the
    BLAS at one thread for good if each set its own. Here the first solve to
    enter sets the limit and the last to leave restores it, and
    :func:`_blas_n_threads` reports the count from before. (A
    ``threadpool_limits`` that another thread of the user's enters and leaves
    across a solve can still restore the wrong count.)
    """

    _lock = threading.Lock()
    _depth = 0
    _limiter = None
    _count = None

    @classmethod
    def held_count(cls):
        """The BLAS threads before the limit while it is held, else ``None``."""
        with cls._lock:
            return cls._count if cls._depth else None

    def __enter__(self):
        cls = type(self)
        with cls._lock:
            if cls._depth == 0:
                cls._count = _blas_threads_now()
                blas = ThreadpoolController().select(user_api="blas")
                cls._limiter = blas.limit(limits=1)
            cls._depth += 1
        return self

    def __exit__(self, *exc_info):
        cls = type(self)
        with cls._lock:
            cls._depth -= 1
            if cls._depth == 0:
                cls._limiter.restore_original_limits()
                cls._limiter = None


@contextmanager
def _sparse_threading(sparse, n_threads):
    """Threads for a solve: yields the :class:`_SplitGemm` to use.

    Dense input keeps the BLAS as it is (``_UNSPLIT``). With sparse input the
    sparse products run in OpenMP threads between BLAS calls, and OpenBLAS's
    pthreads workers busy-wait for about 0.1 s after every call: on a machine
    with no spare core they take half the cores from the sparse products
    (a 16-column gather on case (c) took 60 ms instead of 31 ms, measured
    before the gather kept its sums in registers). So the BLAS
    is held to one thread for the solve (:class:`_OneBlasThread`), and the
    large products with the basis are split over a pool of ``n_threads``
    threads instead.
    """
    if not sparse:
        yield _UNSPLIT
        return
    if n_threads == 1:
        yield _SplitGemm()
        return
    with (
        _OneBlasThread(),
        ThreadPoolExecutor(n_threads, thread_name_prefix="fasttsne-svd") as executor,
    ):
        yield _SplitGemm(executor)


def _n_tiles(shape, nnz, width, dtype, n_threads):
    """Number of column tiles for sparse products with blocks of ``width`` columns.

    Enough tiles that one tile's slice of the dense operand (``cols / n_tiles``
    rows of ``width`` values) fits in ``_TILE_BYTES``, rounded up to a multiple
    of ``n_threads`` so that the scatter (one thread per tile) is balanced. Each
    tile adds a pass over the row pointers and over the sequentially accessed
    operand, so there are at most ``nnz / (4 rows)`` tiles: a tile must hold
    four values per row on average to pay for its pass.
    """
    rows, cols = shape
    needed = -(-cols * width * np.dtype(dtype).itemsize // _TILE_BYTES)
    n_tiles = -(-needed // n_threads) * n_threads
    return int(max(1, min(n_tiles, nnz // max(4 * rows, 1), cols)))


class _LinearOperator:
    """Products with ``A`` and ``A^T``, optionally centred and transposed.

    Parameters
    ----------
    A : ndarray or sparse matrix of shape (n_rows, n_cols)
        Float32 or float64. Sparse formats other than CSR/CSC are converted to CSR.
    mean : ndarray of shape (n_cols,) or None
        Column means subtracted implicitly, as if ``A - mean`` were given.
    transpose : bool
        Work with ``A^T`` instead of ``A``.
    n_threads : int
        Threads for sparse products (dense products are left to BLAS).
    width : int
        Typical number of columns of the blocks multiplied, which sizes the
        column tiles of a sparse matrix (:func:`_n_tiles`).
    """

    def __init__(self, A, *, mean=None, transpose=False, n_threads=1, width=16):
        self.dtype = A.dtype
        self.transpose = transpose
        self.mean = mean
        rows, cols = A.shape
        self.shape = (cols, rows) if transpose else (rows, cols)
        self._n_threads = max(1, int(n_threads))
        self._tiles = None
        # Multiply-adds of one product with one column: the cost unit.
        self.work = A.nnz if sp.issparse(A) else rows * cols
        if sp.issparse(A):
            if A.format == "csc":
                # A^T of a CSC matrix is a CSR matrix without a copy.
                csr, self._csr_is_input = A.T, False
            else:
                csr, self._csr_is_input = A.tocsr(), True
            if not csr.has_sorted_indices:
                # Sorted rows make the sums of a gather independent of the tiling,
                # which then may depend on the number of threads.
                csr = csr.sorted_indices()
            n_tiles = _n_tiles(csr.shape, csr.nnz, width, self.dtype, self._n_threads)
            self._tiles = _spmm.tile_csr(
                csr.indptr,
                csr.indices,
                csr.data,
                csr.shape[1],
                n_tiles,
                self._n_threads,
            )
        else:
            self._dense = A

    def _product(self, X, transposed):
        """``A @ X`` (``transposed=False``) or ``A^T @ X``, centred if asked."""
        if self._tiles is None:
            A = self._dense
            if transposed:
                out = A.T @ X
            elif A.dtype == np.float64:
                # The same product as A @ X, but OpenBLAS's dgemm streams a tall A
                # 1.3-1.6x faster this way round (measured with 1 and 2 threads,
                # OpenBLAS 0.3.31, AVX-512; sgemm shows no difference).
                out = (X.T @ A.T).T
            else:
                out = A @ X
        else:
            kernel = _spmm.scatter if transposed == self._csr_is_input else _spmm.gather
            out = kernel(*self._tiles, np.ascontiguousarray(X), self._n_threads)
        if self.mean is not None:
            if transposed:
                # (A - 1 mu^T)^T X = A^T X - mu (1^T X)
                out -= np.outer(self.mean, X.sum(axis=0)).astype(self.dtype)
            else:
                # (A - 1 mu^T) X = A X - 1 (mu^T X)
                out -= (self.mean @ X).astype(self.dtype)[np.newaxis, :]
        return out

    def matmat(self, X):
        """Return ``op @ X`` for ``X`` of shape (n, b)."""
        return self._product(X, self.transpose)

    def rmatmat(self, Y):
        """Return ``op^T @ Y`` for ``Y`` of shape (m, b)."""
        return self._product(Y, not self.transpose)


def _column_norms(Z):
    """Euclidean norms of the columns of ``Z``, without overflow guard.

    4x faster than ``np.linalg.norm(Z, axis=0)`` (which has none either) on a
    50000 x 16 block.
    """
    return np.sqrt(np.einsum("ij,ij->j", Z, Z))


def _untouched(shape, dtype):
    """An uninitialised Fortran-ordered array, its pages faulted in as written.

    Large arrays come from an anonymous ``mmap`` rather than numpy's allocator,
    which advises the kernel to back them with transparent huge pages. Where the
    kernel cannot find any (THP in ``madvise`` mode with fragmented memory, as on
    the benchmark machine), every first write of a page then pays for a failed
    compaction: filling a fresh 50000 x 976 float64 basis block by block took
    16.6 ms per 6.4 MB block from ``np.empty`` and 4.9 ms from plain pages.
    """
    nbytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
    if nbytes < _MMAP_MIN_BYTES:
        return np.empty(shape, dtype=dtype, order="F")
    buffer = mmap.mmap(-1, nbytes)
    return np.frombuffer(buffer, dtype=dtype).reshape(shape, order="F")


def _eps(dtype):
    """Machine epsilon of a float dtype."""
    return float(np.spacing(np.dtype(dtype).type(1)))


def _gaussian(rng, shape, dtype):
    """Standard normal test matrix in ``dtype`` from a RandomState or Generator."""
    return np.asarray(rng.standard_normal(size=shape), dtype=dtype)


class _SplitGemm:
    """Tall, skinny products cut into fixed pieces, optionally run in a thread pool.

    With sparse input the BLAS runs on one thread (see
    :func:`_sparse_threading`), and the products with the Krylov basis, the
    largest dense work, run here instead, cut along the rows of the tall
    operand (``B^T Z`` as partial products summed in order), each piece one BLAS
    call. The pieces depend only on the shapes, so the results do not depend on
    whether they run in the pool, or on its size.
    Measured on case (c) (a basis of 50000 x 960, blocks of 16 columns), one
    projection took 76 ms in two threads, 108 ms with OpenBLAS's two threads
    and 148 ms with one.

    Parameters
    ----------
    executor : ThreadPoolExecutor or None
        Runs the pieces; ``None`` runs them in turn.
    split : bool
        ``False`` makes every product one BLAS call (dense input, where the
        BLAS has its threads).
    """

    def __init__(self, executor=None, split=True):
        self.executor = executor
        self.split = split

    def _run(self, func, bounds):
        pieces = list(zip(bounds[:-1], bounds[1:]))
        if self.executor is None:
            for piece in pieces:
                func(*piece)
        else:
            list(self.executor.map(lambda piece: func(*piece), pieces))

    def _bounds(self, length, other):
        """Piece boundaries along ``length`` for an operand of ``length x other``:
        ``_GEMM_PIECES`` pieces, more (up to 64) of ``_GEMM_PIECE_ROWS`` rows for
        very tall operands, so that many cores find work."""
        n_pieces = 1
        if self.split and length * other >= _MIN_SPLIT_SIZE:
            n_pieces = min(
                _MAX_GEMM_PIECES, max(_GEMM_PIECES, length // _GEMM_PIECE_ROWS)
            )
        n_pieces = max(1, min(n_pieces, length))
        return np.linspace(0, length, n_pieces + 1).astype(np.intp)

    def t_dot(self, B, Z):
        """Return ``B^T Z``: partial products over pieces of rows, summed in order.

        (Cutting along the columns of ``B`` instead would read ``Z`` once per
        piece: with 32 basis columns on case (c), 6.0 ms a projection instead
        of 3.1 ms.)
        """
        bounds = self._bounds(B.shape[0], B.shape[1])
        parts = np.empty(
            (len(bounds) - 1, B.shape[1], Z.shape[1]), dtype=np.result_type(B, Z)
        )

        def piece(lo, hi):
            index = np.searchsorted(bounds, lo)
            np.matmul(B[lo:hi].T, Z[lo:hi], out=parts[index])

        self._run(piece, bounds)
        out = parts[0]
        for part in parts[1:]:
            out += part
        return out

    def dot(self, B, C):
        """Return ``B C``."""
        out = np.empty((B.shape[0], C.shape[1]), dtype=np.result_type(B, C))

        def piece(lo, hi):
            np.matmul(B[lo:hi], C, out=out[lo:hi])

        self._run(piece, self._bounds(B.shape[0], B.shape[1]))
        return out

    def subtract_dot(self, Z, B, C):
        """``Z -= B C`` in place."""

        def piece(lo, hi):
            Z[lo:hi] -= B[lo:hi] @ C

        self._run(piece, self._bounds(B.shape[0], B.shape[1]))


# Every product one BLAS call: dense input, where the BLAS keeps its threads.
_UNSPLIT = _SplitGemm(split=False)


def _project_out(Z, basis, passes=2, gemm=_UNSPLIT):
    """Remove from ``Z`` (in place) its components along the orthonormal ``basis``.

    Classical Gram-Schmidt, by default run twice: one pass leaves an error
    proportional to ``eps * ||Z|| / ||Z_out||``, which a second pass removes
    (Giraud et al., 2005). ``gemm`` (a :class:`_SplitGemm`) runs the products.

    Returns
    -------
    coef : ndarray of shape (basis.shape[1], Z.shape[1])
        ``basis^T Z`` of the input ``Z``.
    """
    coef = None
    for _ in range(passes):
        again = gemm.t_dot(basis, Z)
        gemm.subtract_dot(Z, basis, again)
        coef = again if coef is None else coef + again
    return coef


def _gram_threshold(Z, gram_dtype=np.float64):
    """Scaled Gram eigenvalues of ``Z`` below this are rounding noise.

    The Gram matrix is formed in ``gram_dtype``; the columns themselves carry
    relative errors of ``eps(Z.dtype)``.
    """
    b = max(Z.shape[1], 1)
    return max(16 * b * _eps(gram_dtype), (b * _eps(Z.dtype)) ** 2)


def _svqb(Z, threshold, gram_dtype=np.float64, gemm=_UNSPLIT):
    """Orthonormalise the columns of ``Z`` through its Gram matrix (SVQB).

    One pass of Stathopoulos and Wu's SVQB (2002): scale the columns to unit norm,
    diagonalise the Gram matrix (formed in ``gram_dtype``), and map ``Z`` onto the
    eigenvectors. Directions whose scaled eigenvalue is below ``threshold`` are
    numerically dependent and are dropped. Unlike Householder QR this is two GEMMs
    and a tiny eigenproblem, which is much faster on tall, skinny blocks. A float64
    Gram matrix resolves directions down to ``sqrt(eps64)`` relative norm; the
    working precision suffices (and saves casting ``Z``) for nearly orthogonal
    columns. ``gemm`` (a :class:`_SplitGemm`) runs the two GEMMs.

    Returns
    -------
    Q : ndarray of shape (n, r), r <= Z.shape[1]
    exact : bool
        Whether ``Q`` is orthonormal to working precision already: the loss of
        orthogonality of one pass is about ``eps * cond(scaled Z)^2``, at most
        ``64 eps`` when this is True; otherwise a second pass is needed.
    """
    if Z.shape[1] == 0:
        return Z, True
    if Z.dtype == gram_dtype:
        G = gemm.t_dot(Z, Z).astype(np.float64, copy=False)
    else:
        Z_cast = Z.astype(gram_dtype)
        G = gemm.t_dot(Z_cast, Z_cast)
    d = np.sqrt(np.diag(G))
    d[d == 0] = 1.0
    evals, evecs = np.linalg.eigh(G / np.outer(d, d))
    top = max(evals[-1], _TINY)
    keep = evals > threshold * top
    transform = evecs[:, keep] / (d[:, np.newaxis] * np.sqrt(evals[keep]))
    exact = bool(np.all(keep)) and evals[0] >= top / 64
    return gemm.dot(Z, transform.astype(Z.dtype, copy=False)), exact


def _svqb2(Z, threshold, gemm=_UNSPLIT):
    """SVQB run twice ("twice is enough"), the second pass only when needed."""
    Q, exact = _svqb(Z, threshold, gemm=gemm)
    return Q if exact else _svqb(Q, threshold, gemm=gemm)[0]


def _orthonormalize(Z, rng, basis=None, norms_before=None, gemm=_UNSPLIT):
    """Orthonormal basis of ``range(Z)`` orthogonal to ``basis``, and coefficients.

    SVQB, twice if needed; numerically dependent directions (``A`` of
    low rank, an invariant subspace found) are replaced by random directions
    orthogonal to everything so far, so the result always has ``Z.shape[1]``
    columns. ``Z`` must already be orthogonal to ``basis``.

    Parameters
    ----------
    Z : ndarray of shape (n, b)
    rng : RandomState or Generator
        Source of the replacement directions.
    basis : ndarray of shape (n, c) or None
        Orthonormal columns to stay orthogonal to.
    norms_before : ndarray of shape (b,) or None
        Column norms of ``Z`` before it was projected away from ``basis``. A column
        that lost all but ``sqrt(eps)`` of its norm lay numerically in
        ``range(basis)``: what is left is rounding noise and is discarded.
    gemm : _SplitGemm
        Runs the products with ``Z``.

    Returns
    -------
    Q : ndarray of shape (n, b)
        Orthonormal columns.
    R : ndarray of shape (b, b)
        ``Q^T Z``, so that ``Z ~= Q R`` up to the dropped directions.
    """
    n, b = Z.shape
    eps = _eps(Z.dtype)
    threshold = _gram_threshold(Z)
    if norms_before is not None:
        noise = _column_norms(Z) <= np.sqrt(eps) * norms_before
        if np.any(noise):
            Z = Z.copy()
            Z[:, noise] = 0
    Q = _svqb2(Z, threshold, gemm)
    if Q.shape[1] < b:
        if basis is not None and basis.shape[1]:
            # Directions that nearly cancelled lose orthogonality to basis.
            _project_out(Q, basis)
            Q = _svqb2(Q, threshold)
        known = Q if basis is None else np.hstack([basis, Q])
        n_fill = min(b - Q.shape[1], n - known.shape[1])
        fill = _gaussian(rng, (n, n_fill), Z.dtype)
        if known.shape[1]:
            _project_out(fill, known)
        Q = np.hstack([Q, _svqb2(fill, threshold)])
        if Q.shape[1] < b:
            # The space is exhausted (b exceeds its dimension); zero columns
            # contribute nothing to any projection.
            Q = np.hstack([Q, np.zeros((n, b - Q.shape[1]), dtype=Z.dtype)])
    return Q, gemm.t_dot(Q, Z)


def _flip_signs(U, Vt):
    """Make the largest-magnitude entry of each row of ``Vt`` positive.

    The convention of scikit-learn >= 1.5 (``svd_flip(u_based_decision=False)``):
    signs follow ``V``, which does not depend on the number of samples.
    """
    rows = np.arange(Vt.shape[0])
    signs = np.sign(Vt[rows, np.argmax(np.abs(Vt), axis=1)])
    signs[signs == 0] = 1
    return U * signs, Vt * signs[:, np.newaxis]


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
    copies). ``gemm`` (a :class:`_SplitGemm`) runs the products with the basis.
    """

    def __init__(self, op, block, size, rng, *, full=False, gemm=_UNSPLIT):
        self.op, self.block, self.rng, self.size = op, block, rng, size
        self.gemm = gemm
        # Reorthogonalisation schedule (see _full_pass_due).
        self._phase = self._skip = 0
        # Whether any step skipped the full pass (for inspection and tests).
        self._skipped = False
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
        self.AV = [] if op.work > 4 * m * size else None
        self._grow(size if full else min(size, 8 * block))
        self.V[:, :block] = _orthonormalize(_gaussian(rng, (n, block), op.dtype), rng)[
            0
        ]

    def _grow(self, capacity):
        """Reallocate the state for ``capacity`` columns, keeping its contents."""
        m, n = self.op.shape
        dtype = self.op.dtype
        old = 0 if self.V is None else self.V.shape[1]
        V = _untouched((n, capacity), dtype)
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

        Cycles of ``2 + skip`` steps: two full passes (the first measures the
        loss of orthogonality built up since the last cycle; the second
        cleans the block the skipped steps left behind), then ``skip`` steps
        with local passes only. Bases in float32, whose rounding errors alone
        exceed ``_MAX_LOSS``, always take the full pass.
        """
        if self.op.dtype != np.float64:
            return True
        full = self._phase < 2
        self._phase = (self._phase + 1) % (2 + self._skip)
        return full

    def _reschedule(self, loss, grow):
        """Adapt ``skip`` to the loss of orthogonality measured by a full pass.

        Rounding errors grow along converged Ritz vectors by a roughly constant
        factor per step: on case (c) of the benchmark from 2e-16 to 3e-14 to
        2e-12 over two steps without a full pass; on a fast-decaying spectrum
        from 6e-10 to 3e-4 in one. ``skip`` grows (if ``grow``) while the loss
        measured at the start of a cycle stays below ``_MAX_LOSS / 100`` and
        falls to 0 above ``_MAX_LOSS``, far below the semi-orthogonality
        ``sqrt(eps) ~ 1.5e-8`` under which the Ritz values of ``H`` keep full
        accuracy (Simon, 1984).
        """
        self._estimate = max(loss, _eps(np.float64))
        if loss > _MAX_LOSS:
            self._skip, self._phase = 0, 0
        elif grow and loss <= _MAX_LOSS / 100 and self._phase == 1:
            self._skip = min(self._skip + 1, _MAX_SKIP)

    def step(self, j, last):
        """Apply ``A`` to block ``j`` and, unless ``last``, grow block ``j + 1``.

        Returns the coupling ``R = V_{j+1}^T A^T A V_j`` (``None`` when ``last``).
        """
        b = self.block
        lo, hi = j * b, (j + 1) * b
        self._reserve(hi if last else hi + b)
        W = self.op.matmat(self.V[:, lo:hi])
        if self.AV is not None:
            self.AV.append(W)
        if last:
            self.H[lo:hi, lo:hi] = W.T @ W
            return None
        Z = self.op.rmatmat(W)
        norms = _column_norms(Z)
        # The three-term recurrence first: in exact arithmetic only blocks j - 1
        # and j carry A^T A V_j. A full pass over all blocks then removes the
        # rounding-level rest (the two passes of "twice is enough") on the steps
        # the schedule picks; on the others a second local pass does.
        near = max(0, lo - b)
        full = self._full_pass_due()
        local = _project_out(
            Z, self.V[:, near:hi], passes=1 if full else 2, gemm=self.gemm
        )
        left = _column_norms(Z)
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
                self._skip, self._phase = 0, 1
        self._skipped = self._skipped or not full
        if full:
            coef = _project_out(Z, self.V[:, :hi], passes=1, gemm=self.gemm)
            if near:
                # The loss of orthogonality: how much of Z lay along old blocks.
                loss = np.max(np.abs(coef[:near]) / np.maximum(left, _TINY))
                self._reschedule(float(loss), grow=not forced)
                if np.any(_column_norms(Z) < left / np.sqrt(2)):
                    # The older blocks had only this one pass: a pass that removed
                    # much needs a second (Daniel, Gragg, Kaufman and Stewart).
                    coef += _project_out(Z, self.V[:, :hi], passes=1, gemm=self.gemm)
            local += coef[near:hi]
        # Only the diagonal block is kept: H is block tridiagonal and the older
        # blocks of coef are rounding noise.
        self.H[lo:hi, lo:hi] = local[lo - near :]
        # A column left with no more than rounding errors of A^T A V_j (the
        # numerical rank of A^T A is used up) is noise: _orthonormalize replaces
        # it with a random direction.
        floor = _BREAKDOWN * np.sqrt(_eps(self.op.dtype)) * self._scale
        Q, R = _orthonormalize(
            Z, self.rng, self.V[:, :hi], np.maximum(norms, floor), self.gemm
        )
        self.V[:, hi : hi + b] = Q
        self.H[hi : hi + b, lo:hi] = R
        self.H[lo:hi, hi : hi + b] = R.T
        return R

    def converged(self, j, R, n_components, tol):
        """Whether the top Ritz values of blocks ``0..j`` are within ``tol``."""
        b = self.block
        hi = (j + 1) * b
        lam, Y = _top_eigh_banded(self.H[:hi, :hi], 2 * b - 1, n_components)
        # ||A^T A x - lam x|| = ||R y_last|| for the Ritz vector x = V y; an error
        # r in sigma^2 is a relative error r / (2 lam) in sigma.
        residual = np.linalg.norm(R @ Y[j * b : hi], axis=0)
        return bool(np.all(residual <= 2 * tol * np.maximum(lam, _TINY)))

    def ritz_svd(self, size, n_components, n_ritz):
        """Rayleigh-Ritz on ``A`` over the best ``n_ritz`` Ritz vectors of blocks
        ``0..size``; returns ``U, S, Vt`` with ``n_components`` triplets."""
        dtype, b = self.op.dtype, self.block
        H, n_ritz = self.H[:size, :size], min(n_ritz, size)
        if size > 8 * b:
            Y = _top_eigh_banded(H, 2 * b - 1, n_ritz)[1].astype(dtype, copy=False)
        else:
            Y = _top_eigh(H, n_ritz)[1].astype(dtype, copy=False)
        gemm = self.gemm
        VY = gemm.dot(self.V[:, :size], Y)
        AVY = None
        if self.AV is not None:
            AVY = self.AV[0] @ Y[:b]
            term = np.empty_like(AVY)
            for j in range(1, size // b):
                np.matmul(self.AV[j], Y[j * b : (j + 1) * b], out=term)
                AVY += term
        gram = gemm.t_dot(VY, VY)
        if np.max(np.abs(gram - np.eye(gram.shape[0]))) > 64 * _eps(dtype):
            # A basis orthogonal only to about _MAX_LOSS (skipped passes), or
            # worse where A^T A ran out of numerical rank: make the Ritz vectors
            # orthonormal to working precision, so that the singular values below
            # are those of A on their span. VY = Q T for an invertible T (a
            # rotation when VY was nearly orthonormal), so A Q = AVY T^-1; T is
            # ill-conditioned only where directions were replaced by random ones.
            Q, T = _orthonormalize(VY, self.rng, gemm=gemm)
            if AVY is not None and np.linalg.cond(T) < 2:
                AVY = gemm.dot(AVY, np.linalg.inv(T).astype(dtype, copy=False))
            else:
                AVY = None
            VY = Q
        if AVY is None:
            AVY = self.op.matmat(VY)
        # On A itself, not on H, whose entries square the singular values:
        # A V Y = Q R = (Q P) diag(S) Gt, so A (V Y Gt^T) = (Q P) diag(S). The
        # columns of A V Y are nearly orthogonal (Ritz vectors): a Gram matrix in
        # the working precision orthonormalises them, unless it cannot resolve
        # them all (A of low rank), where float64 and random fill take over.
        Q, exact = _svqb(AVY, _gram_threshold(AVY, dtype), dtype, gemm)
        if Q.shape[1] == AVY.shape[1]:
            if not exact:
                Q = _svqb(Q, _gram_threshold(Q, dtype), dtype, gemm)[0]
            R = gemm.t_dot(Q, AVY)
        else:
            Q, R = _orthonormalize(AVY, self.rng, gemm=gemm)
        P, S, Gt = scipy.linalg.svd(R, check_finite=False, lapack_driver="gesdd")
        k = n_components
        return gemm.dot(Q, P[:, :k]), S[:k], gemm.dot(VY, Gt[:k].T).T


def _block_krylov(
    op, n_components, *, n_oversamples, block_size, n_iter, tol, rng, gemm=_UNSPLIT
):
    """Randomized block Krylov SVD by block Lanczos on ``op^T op``.

    Builds an orthonormal basis ``V`` of ``span{Omega, (A^T A) Omega, ...,
    (A^T A)^n_iter Omega}`` (``Omega``: ``block_size`` Gaussian columns) on the short
    side, takes the ``n_components + n_oversamples`` best Ritz vectors of the block
    tridiagonal ``H = V^T A^T A V`` and finishes with a Rayleigh-Ritz step on ``A V``
    itself (see the module notes).

    Parameters
    ----------
    tol : float or None
        Stop early once the residual bound on the relative error of each of the top
        ``n_components`` Ritz values is below ``tol``; ``0`` never stops early.
        ``None`` means ``sqrt(eps)``, tested only where the test (a banded
        eigenproblem of the basis size) costs little next to an iteration.
    gemm : _SplitGemm
        Runs the products with the basis.

    Returns
    -------
    U, S, Vt, n_iter_run
    """
    n = op.shape[1]
    b = min(block_size, n)
    if (n_iter + 1) * b >= n:
        # The Krylov space would fill the whole space: one block spanning it all
        # gives the exact SVD for fewer products.
        b, n_iter = n, 0
    if tol is None:
        tol = float(np.sqrt(_eps(op.dtype)))
        # An iteration costs ~4 b work flops (two products), the test about
        # 20 size (2b)^2 flops: test only when that is under a tenth.
        if 200 * (n_iter + 1) * b * b > op.work:
            tol = 0.0
    lanczos = _BlockLanczos(op, b, (n_iter + 1) * b, rng, full=tol == 0, gemm=gemm)
    n_run = n_iter
    for j in range(n_iter + 1):
        R = lanczos.step(j, last=j == n_iter)
        if (
            R is not None
            and tol > 0
            and (j + 1) * b >= n_components
            and lanczos.converged(j, R, n_components, tol)
        ):
            n_run = j
            break
    U, S, Vt = lanczos.ritz_svd(
        (n_run + 1) * b, n_components, n_components + n_oversamples
    )
    return U, S, Vt, n_run


def _krylov_auto_iter(n_components, n_oversamples, block):
    """Krylov iterations for about half of scikit-learn's default products.

    scikit-learn's default runs 7 power iterations on ``l = n_components +
    n_oversamples`` columns, ``16 l`` column products (``10 l`` when
    ``n_components`` is at least a tenth of the short side). ``n_iter`` Krylov
    iterations on blocks of ``block`` columns cost ``(2 n_iter + 1) block``; the
    budget is ``8 l``, and at least 4 iterations (degree 9 in the singular values),
    which flat spectra need to match 7 power iterations.
    """
    budget = 8 * (n_components + n_oversamples)
    return max(4, (budget // block - 1) // 2)


def _resolve(
    shape,
    n_components,
    *,
    n_oversamples,
    n_iter,
    normalizer,
    algorithm,
    block,
    sparse=False,
):
    """Resolve the ``"auto"`` options into ``(algorithm, n_iter, normalizer, block)``.

    ``algorithm="auto"`` takes block Krylov unless its basis, ``(n_iter + 1) *
    block_size`` columns on the short side of the matrix, would take more than
    ``_MAX_KRYLOV_BYTES``; subspace iteration needs only ``n_components +
    n_oversamples`` columns. The spectrum then decides how many Krylov iterations
    run: they stop early once the top singular values have converged (``tol``).

    ``n_iter="auto"`` gives subspace iteration scikit-learn's schedule (7 power
    iterations, or 4 when ``n_components`` is at least a tenth of the short side)
    and block Krylov about half of scikit-learn's products
    (:func:`_krylov_auto_iter`): 4 iterations for ``k >= 8`` (9 block products
    instead of 16), more for narrower blocks. ``block_size=None`` is
    ``n_components``, for dense input rounded up to a multiple of 8 when that
    adds at most 15%.
    """
    short = min(shape)
    if block is None:
        # Dense GEMM kernels work on tiles of 8 columns: rounding the block up to
        # a multiple of 8 oversamples at no cost in time. Not beyond 15%, though:
        # for the same budget, narrower blocks run more iterations, which pays on
        # flat spectra. Sparse products cost in proportion to the columns.
        padded = -(-n_components // 8) * 8
        if sparse or padded > 1.15 * n_components:
            padded = n_components
        block = padded
    block = max(1, min(block, short))
    itemsize = 8
    if algorithm == "auto":
        if n_iter == "auto":
            krylov_iter = _krylov_auto_iter(n_components, n_oversamples, block)
        else:
            krylov_iter = n_iter
        krylov_bytes = short * (krylov_iter + 1) * block * itemsize
        algorithm = "krylov" if krylov_bytes <= _MAX_KRYLOV_BYTES else "subspace"
    if n_iter == "auto":
        if algorithm == "subspace":
            n_iter = 4 if n_components >= 0.1 * short else 7
        else:
            n_iter = _krylov_auto_iter(n_components, n_oversamples, block)
    if algorithm == "krylov" and (n_iter + 1) * block < min(n_components, short):
        raise ValueError(
            f"A Krylov basis of (n_iter + 1) * block_size = {(n_iter + 1) * block} "
            f"columns cannot hold n_components={n_components} singular vectors; "
            "increase n_iter or block_size."
        )
    if normalizer == "auto":
        normalizer = "none" if n_iter <= 2 else "LU"
    return algorithm, n_iter, normalizer, block


def _randomized_svd(  # pylint: disable=too-many-arguments
    M,
    n_components,
    *,
    n_oversamples=10,
    n_iter="auto",
    power_iteration_normalizer="auto",
    algorithm="auto",
    block_size=None,
    tol=None,
    transpose="auto",
    flip_sign=True,
    random_state=None,
    center=False,
    return_info=False,
):
    """Body of :func:`randomized_svd` without input validation.

    Extra keyword arguments for internal callers: ``center`` subtracts the column
    means implicitly (``M`` is never modified or densified) and ``return_info``
    appends a dict with the resolved ``algorithm``, ``n_iter``,
    ``power_iteration_normalizer``, ``block_size`` and ``transpose``.
    """
    if sp.issparse(M):
        if M.format not in ("csr", "csc"):
            M = M.tocsr()
        if M.dtype not in (np.float32, np.float64):
            M = M.astype(np.float64)
    else:
        M = np.asarray(M)
        if M.dtype not in (np.float32, np.float64):
            M = M.astype(np.float32 if M.dtype == np.float16 else np.float64)
    if isinstance(random_state, np.random.Generator):
        rng = random_state
    else:
        rng = check_random_state(random_state)
    if transpose == "auto":
        transpose = M.shape[0] < M.shape[1]
    mean = None
    if center:
        mean = np.asarray(M.mean(axis=0, dtype=np.float64)).ravel().astype(M.dtype)
        if not sp.issparse(M):
            # Dense input is centred explicitly: A X - 1 (mu^T X) would cancel
            # catastrophically when the means dwarf the spread.
            M, mean = M - mean, None
    algorithm, n_iter, normalizer, block = _resolve(
        M.shape,
        n_components,
        n_oversamples=n_oversamples,
        n_iter=n_iter,
        normalizer=power_iteration_normalizer,
        algorithm=algorithm,
        block=block_size,
        sparse=sp.issparse(M),
    )
    n_threads = _blas_n_threads() if sp.issparse(M) else 1
    width = block if algorithm == "krylov" else n_components + n_oversamples
    op = _LinearOperator(
        M, mean=mean, transpose=transpose, n_threads=n_threads, width=width
    )
    with _sparse_threading(sp.issparse(M), n_threads) as gemm:
        if algorithm == "krylov":
            U, S, Vt, n_run = _block_krylov(
                op,
                n_components,
                n_oversamples=n_oversamples,
                block_size=block,
                n_iter=n_iter,
                tol=tol,
                rng=rng,
                gemm=gemm,
            )
        else:
            U, S, Vt, n_run = _subspace_iteration(
                op, n_components, n_oversamples, n_iter, normalizer, rng
            )
    if transpose:
        U, Vt = Vt.T, U.T
    if flip_sign:
        U, Vt = _flip_signs(U, Vt)
    U = np.ascontiguousarray(U)
    Vt = np.ascontiguousarray(Vt)
    S = S.astype(M.dtype, copy=False)
    if not return_info:
        return U, S, Vt
    info = {
        "algorithm": algorithm,
        "n_iter": n_run,
        "power_iteration_normalizer": normalizer,
        "block_size": block,
        "transpose": bool(transpose),
    }
    return U, S, Vt, info


@validate_params(
    {
        "M": ["array-like", "sparse matrix"],
        "n_components": [Interval(Integral, 1, None, closed="left")],
        "n_oversamples": [Interval(Integral, 0, None, closed="left")],
        "n_iter": [StrOptions({"auto"}), Interval(Integral, 0, None, closed="left")],
        "power_iteration_normalizer": [StrOptions({"auto", "LU", "QR", "none"})],
        "algorithm": [StrOptions({"auto", "krylov", "subspace"})],
        "block_size": [None, Interval(Integral, 1, None, closed="left")],
        "tol": [None, Interval(Real, 0, None, closed="left")],
        "transpose": [StrOptions({"auto"}), "boolean"],
        "flip_sign": ["boolean"],
        "random_state": ["random_state"],
    },
    prefer_skip_nested_validation=True,
)
def randomized_svd(
    M,
    n_components,
    *,
    n_oversamples=10,
    n_iter="auto",
    power_iteration_normalizer="auto",
    algorithm="auto",
    block_size=None,
    tol=None,
    transpose="auto",
    flip_sign=True,
    random_state=None,
):
    """Compute a truncated SVD with a randomized range finder.

    A drop-in alternative to :func:`sklearn.utils.extmath.randomized_svd` (same
    arguments and outputs) that defaults to randomized block Krylov iteration: at
    least as accurate as scikit-learn's default for about half the matrix products.

    .. versionadded:: 0.1

    Parameters
    ----------
    M : {array-like, sparse matrix} of shape (n_rows, n_cols)
        The matrix to decompose. float32 input is computed in float32 and float64
        in float64; sparse CSR/CSC input is never densified.
    n_components : int
        Number of singular values and vectors to compute, at most
        ``min(n_rows, n_cols)``.
    n_oversamples : int, default=10
        Extra dimensions of the sampled subspace. Subspace iteration samples
        ``n_components + n_oversamples`` vectors; block Krylov passes that many
        Ritz vectors to its final Rayleigh-Ritz step.
    n_iter : int or "auto", default="auto"
        Subspace iteration: number of power iterations; ``"auto"`` is 7, or 4
        when ``n_components`` is at least a tenth of ``min(M.shape)``, as in
        scikit-learn. Block Krylov: number of blocks after the first (the degree
        of the Krylov space in ``M^T M``); ``"auto"`` spends about half of
        scikit-learn's default products: at least 4, and ``(2 n_iter + 1) *
        block_size`` up to ``8 (n_components + n_oversamples)`` columns.
    power_iteration_normalizer : {"auto", "LU", "QR", "none"}, default="auto"
        How subspace iteration renormalises its block between products: ``"LU"``
        (partial-pivoting LU, cheapest stable choice), ``"QR"`` (orthonormalise)
        or ``"none"`` (fastest, loses precision beyond a few iterations).
        ``"auto"`` is ``"none"`` for ``n_iter <= 2`` and ``"LU"`` otherwise.
        Block Krylov always orthonormalises and ignores this.
    algorithm : {"auto", "krylov", "subspace"}, default="auto"
        ``"krylov"``: randomized block Krylov (Musco and Musco, 2015), far fewer
        products on flat spectra. ``"subspace"``: randomized subspace iteration
        (Halko et al., 2011), the algorithm of scikit-learn and fbpca, with the
        smallest memory footprint. ``"auto"`` picks ``"krylov"`` unless its basis
        would exceed 1 GiB (see Notes).
    block_size : int, default=None
        Block Krylov: columns per block. ``None`` means ``n_components``, for
        dense input rounded up to a multiple of 8 (the GEMM tile) when that adds
        at most 15%. Blocks narrower than ``n_components`` converge slowly in
        the first iterations on flat spectra, but with many iterations reach
        high accuracy for fewer products.
    tol : float, default=None
        Block Krylov: stop before ``n_iter`` once the residual bound on the
        relative error of each of the top ``n_components`` singular values is
        below ``tol``; a bound, the actual errors are usually far smaller.
        ``None`` means the square root of the machine epsilon of the dtype (stop
        once converged to working precision), tested only where the test costs
        little next to an iteration (not on small matrices); ``0`` never stops
        early.
    transpose : bool or "auto", default="auto"
        Work on ``M.T``. ``"auto"`` transposes wide matrices so that the sampled
        basis lives on the short side.
    flip_sign : bool, default=True
        Make the largest-magnitude entry of each row of ``Vt`` positive, the sign
        convention of scikit-learn >= 1.5 (based on ``V``).
    random_state : int, RandomState instance or None, default=None
        Seed of the Gaussian test matrix. Pass an int for reproducible results.

    Returns
    -------
    U : ndarray of shape (n_rows, n_components)
        Left singular vectors.
    S : ndarray of shape (n_components,)
        Singular values, in decreasing order.
    Vt : ndarray of shape (n_components, n_cols)
        Right singular vectors, as rows.

    See Also
    --------
    RandomizedSVD : The same as a scikit-learn transformer.
    sklearn.utils.extmath.randomized_svd : Randomized subspace iteration.
    scipy.sparse.linalg.svds : Implicitly restarted Lanczos (ARPACK) or LOBPCG.

    Notes
    -----
    Block Krylov keeps ``(n_iter + 1) * block_size`` basis columns on the short
    side of ``M`` and ``M`` times them on the long side (recomputed instead when
    that would exceed 1 GiB); subspace iteration keeps ``n_components +
    n_oversamples`` columns. Both cost ``O(nnz(M))`` per basis column and
    product.

    References
    ----------
    N. Halko, P.-G. Martinsson and J. A. Tropp, "Finding structure with
    randomness: probabilistic algorithms for constructing approximate matrix
    decompositions", SIAM Review 53(2), 2011.

    C. Musco and C. Musco, "Randomized block Krylov methods for stronger and
    faster approximate singular value decomposition", NeurIPS 2015.

    Examples
    --------
    >>> import numpy as np
    >>> from fasttsne import randomized_svd
    >>> rng = np.random.default_rng(0)
    >>> X = rng.standard_normal((100, 5)) @ rng.standard_normal((5, 40))
    >>> U, S, Vt = randomized_svd(X, 3, random_state=0)
    >>> U.shape, S.shape, Vt.shape
    ((100, 3), (3,), (3, 40))
    >>> bool(np.allclose(S, np.linalg.svd(X, compute_uv=False)[:3]))
    True
    """
    M = check_array(
        M, accept_sparse=["csr", "csc"], dtype=[np.float64, np.float32], copy=False
    )
    if n_components > min(M.shape):
        raise ValueError(
            f"n_components={n_components} must be at most min(M.shape)="
            f"{min(M.shape)} for M of shape {M.shape}."
        )
    return _randomized_svd(
        M,
        n_components,
        n_oversamples=n_oversamples,
        n_iter=n_iter,
        power_iteration_normalizer=power_iteration_normalizer,
        algorithm=algorithm,
        block_size=block_size,
        tol=tol,
        transpose=transpose,
        flip_sign=flip_sign,
        random_state=random_state,
    )


class RandomizedSVD(ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator):
    """Truncated SVD (or PCA) by randomized block Krylov or subspace iteration.

    A transformer in the shape of :class:`sklearn.decomposition.TruncatedSVD`:
    ``fit`` computes the top ``n_components`` singular triplets of ``X``,
    ``transform`` projects on the right singular vectors. Dense and sparse
    (CSR/CSC) input; float32 stays float32. With ``center=True`` it is PCA, and
    sparse input is centred implicitly, never densified.

    The default, randomized block Krylov iteration, matches or beats the accuracy
    of scikit-learn's ``randomized_svd`` default for about half the products
    with ``X`` (see :func:`randomized_svd`).

    .. versionadded:: 0.1

    Parameters
    ----------
    n_components : int, default=2
        Number of components, at most ``min(n_samples, n_features)``.
    algorithm : {"auto", "krylov", "subspace"}, default="auto"
        Range finder; see :func:`randomized_svd`. ``"auto"`` picks
        ``"krylov"`` unless its basis would exceed 1 GiB.
    n_iter : int or "auto", default="auto"
        Power iterations (``"subspace"``) or Krylov blocks after the first
        (``"krylov"``); see :func:`randomized_svd`.
    n_oversamples : int, default=10
        Extra sampled dimensions; see :func:`randomized_svd`.
    power_iteration_normalizer : {"auto", "LU", "QR", "none"}, default="auto"
        Renormalisation of subspace iteration; see :func:`randomized_svd`.
    block_size : int, default=None
        Columns per Krylov block; see :func:`randomized_svd`.
    tol : float, default=None
        Early stop of the Krylov iteration; see :func:`randomized_svd`.
    center : bool, default=False
        Subtract the column means first, which makes this PCA. Sparse input is
        centred implicitly (``X`` is neither densified nor copied).
    transpose : bool or "auto", default="auto"
        Work on ``X.T``; ``"auto"`` transposes wide matrices.
    random_state : int, RandomState instance or None, default=None
        Seed of the random test matrix. Pass an int for reproducible results.

    Attributes
    ----------
    components_ : ndarray of shape (n_components, n_features)
        Right singular vectors, as rows, with the sign convention of
        scikit-learn >= 1.5 (largest-magnitude entry of each row positive).
    singular_values_ : ndarray of shape (n_components,)
        Singular values of ``X`` (centred if ``center``), in decreasing order.
    explained_variance_ : ndarray of shape (n_components,)
        Variance of each component of the transformed training data. With
        ``center=True`` this is PCA's ``singular_values_**2 / (n_samples - 1)``;
        without, as in ``TruncatedSVD``, the variance of ``fit_transform(X)``'s
        columns.
    explained_variance_ratio_ : ndarray of shape (n_components,)
        ``explained_variance_`` divided by the total variance of ``X`` (with the
        same degrees of freedom).
    mean_ : ndarray of shape (n_features,) or None
        Column means subtracted with ``center=True``; ``None`` otherwise.
    n_iter_ : int
        Iterations run: power iterations, or Krylov blocks after the first (fewer
        than ``n_iter`` when the iteration converged or the basis filled the
        space).
    algorithm_ : str
        The range finder that ran, ``"krylov"`` or ``"subspace"``.
    n_features_in_ : int
        Number of features seen during :term:`fit`.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Names of features seen during :term:`fit`. Defined only when ``X``
        has feature names that are all strings.

    See Also
    --------
    randomized_svd : The same as a function.
    sklearn.decomposition.TruncatedSVD : Randomized subspace iteration or ARPACK.
    sklearn.decomposition.PCA : Exact, ARPACK or randomized PCA of dense data.

    Notes
    -----
    Cost: ``O(nnz(X) * n_components)`` per iteration, with about half the products
    of ``TruncatedSVD(algorithm="randomized")`` by default. ``fit_transform``
    returns ``U * S``, which equals ``transform(X)`` up to rounding for the Krylov
    solver and up to the approximation error for subspace iteration.

    References
    ----------
    N. Halko, P.-G. Martinsson and J. A. Tropp, SIAM Review 53(2), 2011.

    C. Musco and C. Musco, NeurIPS 2015.

    Examples
    --------
    >>> import numpy as np
    >>> from scipy.sparse import random as sparse_random
    >>> from fasttsne import RandomizedSVD
    >>> X = sparse_random(100, 80, density=0.05, format="csr", random_state=0)
    >>> svd = RandomizedSVD(n_components=5, random_state=0).fit(X)
    >>> svd.components_.shape
    (5, 80)
    >>> svd.transform(X).shape
    (100, 5)
    >>> bool(np.all(np.diff(svd.singular_values_) <= 0))
    True
    """

    _parameter_constraints: dict = {
        "n_components": [Interval(Integral, 1, None, closed="left")],
        "algorithm": [StrOptions({"auto", "krylov", "subspace"})],
        "n_iter": [StrOptions({"auto"}), Interval(Integral, 0, None, closed="left")],
        "n_oversamples": [Interval(Integral, 0, None, closed="left")],
        "power_iteration_normalizer": [StrOptions({"auto", "LU", "QR", "none"})],
        "block_size": [None, Interval(Integral, 1, None, closed="left")],
        "tol": [None, Interval(Real, 0, None, closed="left")],
        "center": ["boolean"],
        "transpose": [StrOptions({"auto"}), "boolean"],
        "random_state": ["random_state"],
    }

    def __init__(
        self,
        n_components=2,
        *,
        algorithm="auto",
        n_iter="auto",
        n_oversamples=10,
        power_iteration_normalizer="auto",
        block_size=None,
        tol=None,
        center=False,
        transpose="auto",
        random_state=None,
    ):
        self.n_components = n_components
        self.algorithm = algorithm
        self.n_iter = n_iter
        self.n_oversamples = n_oversamples
        self.power_iteration_normalizer = power_iteration_normalizer
        self.block_size = block_size
        self.tol = tol
        self.center = center
        self.transpose = transpose
        self.random_state = random_state

    def fit(self, X, y=None):
        """Compute the truncated SVD of ``X``.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Training data.
        y : Ignored
            Not used, present for API consistency by convention.

        Returns
        -------
        self : object
            The fitted estimator.
        """
        self.fit_transform(X, y)
        return self

    @_fit_context(prefer_skip_nested_validation=True)
    def fit_transform(self, X, y=None):  # pylint: disable=arguments-differ
        """Compute the truncated SVD of ``X`` and return ``U * S``.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Training data.
        y : Ignored
            Not used, present for API consistency by convention.

        Returns
        -------
        X_new : ndarray of shape (n_samples, n_components)
            The data in the space of the components, ``U * S``.
        """
        del y  # unsupervised; accepted for API consistency
        X = validate_data(
            self,
            X,
            accept_sparse=["csr", "csc"],
            dtype=[np.float64, np.float32],
            ensure_min_samples=2,
        )
        n_samples, n_features = X.shape
        if self.n_components > min(n_samples, n_features):
            raise ValueError(
                f"n_components={self.n_components} must be at most "
                f"min(n_samples, n_features)={min(n_samples, n_features)} "
                f"(n_samples={n_samples}, n_features={n_features})."
            )
        U, S, Vt, info = _randomized_svd(
            X,
            self.n_components,
            n_oversamples=self.n_oversamples,
            n_iter=self.n_iter,
            power_iteration_normalizer=self.power_iteration_normalizer,
            algorithm=self.algorithm,
            block_size=self.block_size,
            tol=self.tol,
            transpose=self.transpose,
            random_state=self.random_state,
            center=self.center,
            return_info=True,
        )
        X_new = U * S
        ddof = 1 if self.center else 0
        if self.center:
            self.mean_ = np.asarray(X.mean(axis=0, dtype=np.float64)).ravel()
            self.mean_ = self.mean_.astype(X.dtype)
            explained_variance = S.astype(np.float64) ** 2 / (n_samples - 1)
        else:
            self.mean_ = None
            explained_variance = np.var(X_new, axis=0, dtype=np.float64)
        total_variance = _column_variances(X, ddof).sum()
        if total_variance > 0:
            ratio = explained_variance / total_variance
        else:
            ratio = np.zeros_like(explained_variance)
        self.components_ = Vt
        self.singular_values_ = S
        self.explained_variance_ = explained_variance.astype(X.dtype)
        self.explained_variance_ratio_ = ratio.astype(X.dtype)
        self.n_iter_ = info["n_iter"]
        self.algorithm_ = info["algorithm"]
        return X_new

    def transform(self, X):
        """Project ``X`` on the components: ``(X - mean_) @ components_.T``.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            New data.

        Returns
        -------
        X_new : ndarray of shape (n_samples, n_components)
            The data in the space of the components.
        """
        check_is_fitted(self)
        X = validate_data(
            self,
            X,
            accept_sparse=["csr", "csc"],
            dtype=[np.float64, np.float32],
            reset=False,
        )
        components = self.components_.astype(X.dtype, copy=False)
        X_new = np.asarray(X @ components.T)
        if self.mean_ is not None:
            X_new -= self.mean_.astype(X.dtype, copy=False) @ components.T
        return X_new

    def inverse_transform(self, X):
        """Map data back to the input space: ``X @ components_ + mean_``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_components)
            Data in the space of the components.

        Returns
        -------
        X_back : ndarray of shape (n_samples, n_features)
            The rank-``n_components`` approximation in the input space.
        """
        check_is_fitted(self)
        X = check_array(X, dtype=[np.float64, np.float32])
        X_back = X @ self.components_.astype(X.dtype, copy=False)
        if self.mean_ is not None:
            X_back += self.mean_.astype(X.dtype, copy=False)
        return X_back

    @property
    def _n_features_out(self):
        """Number of transformed output features."""
        return self.components_.shape[0]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags


def _column_variances(X, ddof):
    """Per-column variances of dense or sparse ``X``, in float64."""
    n_samples = X.shape[0]
    if sp.issparse(X):
        mean = np.asarray(X.mean(axis=0, dtype=np.float64)).ravel()
        squares = np.asarray(X.multiply(X).sum(axis=0, dtype=np.float64)).ravel()
        # Sum of (x - mean)^2 over the column, zeros included.
        centred = np.maximum(squares - n_samples * mean**2, 0.0)
    else:
        centred = np.var(X, axis=0, dtype=np.float64) * n_samples
    return centred / max(n_samples - ddof, 1)
