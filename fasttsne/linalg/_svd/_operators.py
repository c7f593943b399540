"""The two objects through which the SVD solvers reach their data.

The solvers (block Lanczos in :mod:`~fasttsne.linalg._svd._lanczos`, subspace
iteration and the left Rayleigh-Ritz step in
:mod:`~fasttsne.linalg._svd._subspace`, orthonormalisation in
:mod:`~fasttsne.linalg._svd._orthogonal`) never touch the matrix ``A`` or an
array derived from it with NumPy themselves: they go through an *operator* and
a *basis-products* object. Another array library (torch tensors on a GPU, say)
needs its own versions of these two classes, with the methods below, and
nothing else; the solvers run on its arrays unchanged. The torch versions are
in :mod:`~fasttsne.linalg._svd._torch`; ``_operator_and_products`` in
:mod:`~fasttsne.linalg._svd._randomized` picks the pair for the input.

Two kinds of arrays
-------------------
*Tall* arrays have a long side (``m`` or ``n`` rows, ``A`` being ``m x n``)
and a few columns: the blocks ``X`` (n x b) and ``A X`` (m x b), the Krylov
basis ``V`` (n x L), the Ritz vectors. They belong to the backend (here NumPy
ndarrays) and are created only by these two objects. The solvers use on them
nothing but ``.shape``, ``.T``, slicing (``V[:, lo:hi]``) and slice assignment
(``V[:, lo:hi] = Q``, ``Z[:, mask] = 0`` with a NumPy boolean ``mask``).

*Small* arrays are at most basis x basis: Gram matrices, projection
coefficients, rotations, singular values. They are always NumPy arrays on the
host, where the solvers do the small dense work (``eigh``, ``svd``,
``eig_banded``, inverses) with NumPy and SciPy. The basis-products object
returns its small results as NumPy arrays and accepts NumPy arrays as its
small operands, converting them (and casting them to the tall operand's
dtype) itself.

The operator (:class:`_LinearOperator`)
---------------------------------------
``shape``
    ``(m, n)``, the shape of the matrix as the solvers see it (transposed and
    centred as asked).
``dtype``
    NumPy dtype of the products, float32 or float64 (the working precision).
``cost_per_column``
    Multiply-adds of one product with one column (``nnz`` or ``m n``); the
    solvers weigh it against dense work on the basis.
``matmat(X)``
    ``A @ X`` for a tall ``X`` of shape (n, b): a new tall (m, b) array.
``rmatmat(Y)``
    ``A^T @ Y`` for a tall ``Y`` of shape (m, b): a new tall (n, b) array.

It owns ``A`` (and, for sparse input, a tiled copy of it) for the solve.

The basis products (:class:`_BasisProducts`)
--------------------------------------------
Below ``B`` is a tall (r, c) array (a basis or a block), ``Z`` a tall (r, b)
array and ``C`` a small (c, b) NumPy array. Every tall result is a new array
owned by the caller, except that ``subtract_dot`` and ``add_dot`` write into
``Z``.

``empty(shape, dtype)``
    Uninitialised tall array, column-major so that leading column blocks are
    contiguous, memory committed as it is first written.
``zeros(shape, dtype)``, ``copy(Z)``, ``hstack(blocks)``
    New tall arrays.
``gaussian(rng, shape, dtype)``
    Standard normal tall block drawn from a NumPy ``RandomState`` or
    ``Generator``. Drawn on the host, so that every backend sees the same
    numbers for the same seed.
``dtype_of(Z)``
    NumPy dtype of a tall array.
``astype(Z, dtype)``
    A copy of a tall array in a NumPy dtype.
``column_norms(Z)``
    Euclidean norms of the columns: small, shape (b,).
``inner(B, Z)``
    ``B^T Z``: small, shape (c, b).
``gram(Z, dtype)``
    ``Z^T Z`` formed in ``dtype`` (float64 for a float32 ``Z`` resolves
    directions that the working precision cannot): small, shape (b, b).
``dot(B, C)``
    ``B C``: tall, shape (r, b).
``subtract_dot(Z, B, C)``, ``add_dot(Z, B, C)``
    ``Z -= B C`` and ``Z += B C`` in place.
``qr(Y)``, ``lu(Y)``
    The renormalisations of subspace iteration on a tall (r, b) block: the
    orthonormal factor of an economic Householder QR, and the permuted lower
    factor ``P L`` of a partial-pivoting LU.

Results must depend on the shapes only, never on the number of threads, so
that a fixed seed gives the same bits on any machine of one backend.

Implementation notes (NumPy)
----------------------------
Dense input goes to BLAS (float32 stays float32). Sparse input (CSR or CSC)
is never densified. It is copied twice, in O(nnz) and each on first use, into
tiles of consecutive columns of ``A`` and of ``A^T``
(:mod:`fasttsne._cython._spmm`) small enough
that the rows of the dense block a tile picks at random stay in the L2 cache,
so that both products are gathers; they run in OpenMP threads, as many as the
BLAS uses, each on a range of rows of about equal work (a row of ``A^T`` is a
column of ``A``, whose counts may differ by orders of magnitude), and are
bitwise identical for any number of threads. The copies
take ``2 nnz (4 + itemsize) + 8 (n_tiles (n_rows + 1) + n_tiles_t (n_cols +
1))`` bytes next to the input (and a sorted copy first if its rows are not
sorted). Centring (``center=True``) of sparse input is implicit: ``(A - 1
mu^T) X = A X - 1 (mu^T X)``.

During a sparse solve the BLAS runs on one thread (see
:mod:`~fasttsne.linalg._svd._threading`), and :class:`_BasisProducts` cuts the
large products into fixed pieces of rows, one BLAS call each, run in a thread
pool. Measurements behind the constants below are in ``docs/svd.rst``
("Benchmark").
"""

import mmap

import numpy as np
import scipy.linalg
import scipy.sparse as sp

from fasttsne._cython import _spmm

# Sparse products split the columns of A into tiles whose slice of the dense
# operand takes about this much: half of a 2 MiB L2 cache.
_TILE_BYTES = 2**20
# _BasisProducts cuts products whose tall operand has at least _MIN_SPLIT_SIZE
# entries into _GEMM_PIECES pieces of rows, or into pieces of _GEMM_PIECE_ROWS
# rows (at most _MAX_GEMM_PIECES) when that makes more.
_GEMM_PIECES = 8
_GEMM_PIECE_ROWS = 16384
_MAX_GEMM_PIECES = 64
_MIN_SPLIT_SIZE = 2**20
# _empty_demand_paged takes arrays of at least this size from an anonymous mmap.
_MMAP_MIN_BYTES = 2**24


def _n_tiles(shape, nnz, width, dtype):
    """Number of column tiles for sparse products with blocks of ``width`` columns.

    Enough tiles that one tile's slice of the dense operand (``cols / n_tiles``
    rows of ``width`` values) fits in ``_TILE_BYTES``, and no more: the gather
    splits rows, not tiles, between threads, so the count does not depend on
    them. Each tile adds a pass over the row pointers and over the sequentially
    accessed operand, so there are at most ``nnz / (4 rows)`` tiles: a tile must
    hold four values per row on average to pay for its pass.
    """
    rows, cols = shape
    n_tiles = -(-cols * width * np.dtype(dtype).itemsize // _TILE_BYTES)
    return int(max(1, min(n_tiles, nnz // max(4 * rows, 1), cols)))


class _LinearOperator:
    """Products with ``A`` and ``A^T``, optionally centred and transposed.

    The NumPy operator of the module notes: ``shape``, ``dtype``,
    ``cost_per_column``, ``matmat`` and ``rmatmat``.

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
        self._tiles = self._tiles_t = self._chunks = self._chunks_t = None
        self.sparse = sp.issparse(A)
        self.cost_per_column = A.nnz if self.sparse else rows * cols
        self._width = width
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
            self._csr = csr
        else:
            self._csr = None
            self._dense = A

    def _tiling(self, of_csr, width):
        """Tiles and row chunks of the CSR matrix (``of_csr``) or of its transpose.

        Built on first use, for blocks of ``width`` columns or the operator's
        width if that is more: a solve that multiplies only one way (the final
        Rayleigh-Ritz step of ``_block_krylov(final_op=...)``) never copies the
        other.
        The products do not depend on the number of tiles, bitwise.
        """
        width = max(width, self._width)
        if of_csr and self._tiles is None:
            csr = self._csr
            arrays = (csr.indptr, csr.indices, csr.data, csr.shape[1])
            n_tiles = _n_tiles(csr.shape, csr.nnz, width, self.dtype)
            self._tiles = _spmm.tile_csr(*arrays, n_tiles, self._n_threads)
            # Rows of equal work per thread: a row of A^T holds a column of A,
            # and column counts may differ by orders of magnitude.
            self._chunks = _spmm.chunk_rows(self._tiles[0], self._n_threads)
        if not of_csr and self._tiles_t is None:
            # Tiles of the transpose too: both products are gathers, whose
            # output rows are written once, in row order, instead of a
            # scatter's updates of rows at random (docs/svd.rst).
            csr = self._csr
            arrays = (csr.indptr, csr.indices, csr.data, csr.shape[1])
            n_tiles = _n_tiles(csr.shape[::-1], csr.nnz, width, self.dtype)
            self._tiles_t = _spmm.tile_csr_transpose(*arrays, n_tiles, self._n_threads)
            self._chunks_t = _spmm.chunk_rows(self._tiles_t[0], self._n_threads)
        tiling = (
            (self._tiles, self._chunks) if of_csr else (self._tiles_t, self._chunks_t)
        )
        if self._tiles is not None and self._tiles_t is not None:
            # Both tilings hold every entry: the CSR matrix (a sorted copy of
            # unsorted input, say) is not needed again.
            self._csr = None
        return tiling

    def astype(self, dtype):
        """The same operator on the sparse values cast to ``dtype``, scaled by a
        power of two, and the exponent ``e`` of that scale (``2^-e``).

        The scale puts the largest magnitude in ``[0.5, 1)`` whatever the input's:
        products through ``A^T A`` square the values, which a narrower type must
        hold without overflow or underflow. A Krylov space does not change with
        the scale. The index arrays are shared, not copied (only the values are),
        and the column means, if any, are cast and scaled too. Only before the
        first products: the operator drops its CSR matrix once both tilings exist.
        """
        if not self.sparse:
            raise TypeError("astype copies sparse operators only.")
        if self._csr is None:
            raise ValueError("astype needs the CSR matrix, dropped after tiling.")
        csr = self._csr if self._csr_is_input else self._csr.T
        data = csr.data
        top = float(np.max(np.abs(data))) if data.size else 0.0
        exponent = int(np.frexp(top)[1]) if 0.0 < top < np.inf else 0
        scale = np.ldexp(1.0, -exponent)
        # Scaled in the wider type, rounded once into the narrower, no temporary.
        values = np.multiply(
            data, scale, out=np.empty(data.shape, dtype), casting="same_kind"
        )
        cast = type(csr)((values, csr.indices, csr.indptr), shape=csr.shape)
        mean = None if self.mean is None else (self.mean * scale).astype(dtype)
        return (
            _LinearOperator(
                cast,
                mean=mean,
                transpose=self.transpose,
                n_threads=self._n_threads,
                width=self._width,
            ),
            exponent,
        )

    def release(self):
        """Drop the tiles and the CSR matrix: the operator is not used again."""
        self._tiles = self._tiles_t = self._chunks = self._chunks_t = None
        self._csr = None

    def _product(self, X, transposed):
        """``A @ X`` (``transposed=False``) or ``A^T @ X``, centred if asked."""
        if not self.sparse:
            A = self._dense
            if transposed:
                out = A.T @ X
            elif A.dtype == np.float64:
                # The same product as A @ X, but OpenBLAS's dgemm streams a tall
                # A faster this way round (sgemm does not care; docs/svd.rst).
                out = (X.T @ A.T).T
            else:
                out = A @ X
        else:
            tiles, chunks = self._tiling(transposed != self._csr_is_input, X.shape[1])
            out = _spmm.gather(
                *tiles, np.ascontiguousarray(X), self._n_threads, chunks=chunks
            )
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


def _empty_demand_paged(shape, dtype):
    """An uninitialised Fortran-ordered array whose pages are faulted in as written.

    Large arrays come from an anonymous ``mmap`` rather than numpy's allocator,
    which advises the kernel to back them with transparent huge pages. Where the
    kernel cannot find any (THP in ``madvise`` mode with fragmented memory),
    every first write of a page then pays for a failed compaction; plain pages
    are several times cheaper to fill (docs/svd.rst).
    """
    nbytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
    if nbytes < _MMAP_MIN_BYTES:
        return np.empty(shape, dtype=dtype, order="F")
    buffer = mmap.mmap(-1, nbytes)
    return np.frombuffer(buffer, dtype=dtype).reshape(shape, order="F")


class _BasisProducts:
    """The basis products of the module notes, on NumPy arrays.

    Products whose tall operand has at least ``_MIN_SPLIT_SIZE`` entries are
    cut along its rows into pieces that depend only on the shapes (``B^T Z`` as
    partial products summed in order), each piece one BLAS call, and run in
    turn or in a thread pool. With sparse input the BLAS runs on one thread
    and this pool takes over the largest dense work, the products with the
    Krylov basis; the results do not depend on whether the pieces run in the
    pool, or on its size.

    Parameters
    ----------
    executor : ThreadPoolExecutor or None
        Runs the pieces; ``None`` runs them in turn.
    split : bool
        ``False`` makes every product one BLAS call (dense input, where the
        BLAS has its own threads).
    """

    def __init__(self, executor=None, split=True):
        self.executor = executor
        self.split = split

    # -- allocation and randomness --------------------------------------------
    def empty(self, shape, dtype):
        """Uninitialised tall array, Fortran order, pages faulted in as written."""
        return _empty_demand_paged(shape, dtype)

    def zeros(self, shape, dtype):
        """Tall array of zeros."""
        return np.zeros(shape, dtype=dtype)

    def copy(self, Z):
        """A copy of the tall array ``Z``."""
        return Z.copy()

    def hstack(self, blocks):
        """The tall blocks side by side."""
        return np.hstack(blocks)

    def gaussian(self, rng, shape, dtype):
        """Standard normal tall block in ``dtype`` from a RandomState or Generator."""
        return np.asarray(rng.standard_normal(size=shape), dtype=dtype)

    def dtype_of(self, Z):
        """NumPy dtype of the tall array ``Z``."""
        return Z.dtype

    def astype(self, Z, dtype):
        """A copy of the tall array ``Z`` in the NumPy ``dtype``."""
        return Z.astype(dtype, order="K")

    # -- reductions and products ----------------------------------------------
    def column_norms(self, Z):
        """Euclidean norms of the columns of ``Z``, without overflow guard.

        ``einsum`` rather than ``np.linalg.norm(Z, axis=0)`` (which has no guard
        either): several times faster on tall blocks (docs/svd.rst).
        """
        return np.sqrt(np.einsum("ij,ij->j", Z, Z))

    def _run(self, func, bounds):
        pieces = list(zip(bounds[:-1], bounds[1:]))
        if self.executor is None:
            for piece in pieces:
                func(*piece)
        else:
            list(self.executor.map(lambda piece: func(*piece), pieces))

    def _bounds(self, length, other):
        """Piece boundaries along ``length`` for an operand of ``length x other``.

        ``_GEMM_PIECES`` pieces, more (up to ``_MAX_GEMM_PIECES``) of
        ``_GEMM_PIECE_ROWS`` rows for very tall operands, so that many cores
        find work.
        """
        n_pieces = 1
        if self.split and length * other >= _MIN_SPLIT_SIZE:
            n_pieces = min(
                _MAX_GEMM_PIECES, max(_GEMM_PIECES, length // _GEMM_PIECE_ROWS)
            )
        n_pieces = max(1, min(n_pieces, length))
        return np.linspace(0, length, n_pieces + 1).astype(np.intp)

    def inner(self, B, Z):
        """Return ``B^T Z``: partial products over pieces of rows, summed in order.

        Cutting along the columns of ``B`` instead would read ``Z`` once per
        piece.
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

    def gram(self, Z, dtype):
        """Return ``Z^T Z`` formed in ``dtype``."""
        if Z.dtype != dtype:
            Z = Z.astype(dtype)
        return self.inner(Z, Z)

    def dot(self, B, C):
        """Return ``B C``."""
        C = C.astype(B.dtype, copy=False)
        out = np.empty((B.shape[0], C.shape[1]), dtype=np.result_type(B, C))

        def piece(lo, hi):
            np.matmul(B[lo:hi], C, out=out[lo:hi])

        self._run(piece, self._bounds(B.shape[0], B.shape[1]))
        return out

    def subtract_dot(self, Z, B, C):
        """``Z -= B C`` in place."""
        C = C.astype(B.dtype, copy=False)

        def piece(lo, hi):
            Z[lo:hi] -= B[lo:hi] @ C

        self._run(piece, self._bounds(B.shape[0], B.shape[1]))

    def add_dot(self, Z, B, C):
        """``Z += B C`` in place."""
        C = C.astype(B.dtype, copy=False)

        def piece(lo, hi):
            Z[lo:hi] += B[lo:hi] @ C

        self._run(piece, self._bounds(B.shape[0], B.shape[1]))

    # -- factorisations of tall blocks ----------------------------------------
    def qr(self, Y):
        """Orthonormal factor of the economic Householder QR of ``Y``."""
        return scipy.linalg.qr(Y, mode="economic", check_finite=False)[0]

    def lu(self, Y):
        """Permuted lower factor ``P L`` of the partial-pivoting LU of ``Y``."""
        return scipy.linalg.lu(Y, permute_l=True, check_finite=False)[0]


# Every product one BLAS call: dense input, where the BLAS keeps its threads.
_ONE_CALL_PRODUCTS = _BasisProducts(split=False)
