"""Products with the data: the linear operator and the basis products.

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

import numpy as np
import scipy.sparse as sp

from fasttsne._cython import _spmm

# Sparse products split the columns of A into tiles whose slice of the dense
# operand takes about this much (half the 2 MiB L2 of the benchmark machine: on
# case (c), 0.8 MB tiles were the fastest for 8 and 16 columns).
_TILE_BYTES = 2**20
# _SplitGemm cuts products whose tall operand has at least _MIN_SPLIT_SIZE
# entries into _GEMM_PIECES pieces of rows, or into pieces of _GEMM_PIECE_ROWS
# rows (at most _MAX_GEMM_PIECES) when that makes more.
_GEMM_PIECES = 8
_GEMM_PIECE_ROWS = 16384
_MAX_GEMM_PIECES = 64
_MIN_SPLIT_SIZE = 2**20
# Arrays of at least this size are allocated by _untouched from an anonymous mmap.
_MMAP_MIN_BYTES = 2**24


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
