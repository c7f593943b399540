"""Tests for the column-tiled sparse products of ``fasttsne._cython._spmm``.

The oracle is the dense product with the densified matrix (or its transpose).
"""

import numpy as np
import pytest
import scipy.sparse as sp
from numpy.testing import assert_allclose, assert_array_equal

from fasttsne._cython import _spmm
from tests._oracles import random_csr


def _random_csr(shape, density, dtype, index_dtype, seed=0):
    """(indptr, indices, data) of a random CSR matrix and its float64 dense form."""
    A = random_csr(np.random.default_rng(seed), *shape, density, index_dtype, dtype)
    return A.indptr, A.indices, A.data, A.toarray().astype(np.float64)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("index_dtype", [np.int32, np.int64])
@pytest.mark.parametrize("n_tiles", [1, 3, 7, 500])
def test_products_match_dense(dtype, index_dtype, n_tiles):
    """Gathers with the tiles of M and of M^T equal the dense products for any
    tiling and dtype."""
    rng = np.random.default_rng(0)
    indptr, indices, data, dense = _random_csr((300, 200), 0.05, dtype, index_dtype)
    tiles = _spmm.tile_csr(indptr, indices, data, 200, n_tiles, 2)
    tiles_t = _spmm.tile_csr_transpose(indptr, indices, data, 200, n_tiles, 2)
    # More tiles than columns (of M or M^T): one column per tile.
    assert tiles[0].shape == (min(n_tiles, 200), 301)
    assert tiles_t[0].shape == (min(n_tiles, 300), 201)
    assert tiles[2].dtype == tiles_t[2].dtype == dtype
    X = rng.standard_normal((200, 5)).astype(dtype)
    Y = rng.standard_normal((300, 5)).astype(dtype)
    # Sums of ~10 products of size ~1 in the working precision.
    rtol = 1e-5 if dtype == np.float32 else 1e-13
    for n_threads in (1, 2, 3):
        AX = _spmm.gather(*tiles, X, n_threads)
        ATY = _spmm.gather(*tiles_t, Y, n_threads)
        assert AX.dtype == ATY.dtype == dtype
        assert_allclose(AX, dense @ X, rtol=rtol, atol=rtol)
        assert_allclose(ATY, dense.T @ Y, rtol=rtol, atol=rtol)


@pytest.mark.parametrize("width", [3, 8, 16, 21, 40])
def test_every_panel_width_matches_dense(width):
    """Blocks of any width: wide panels, narrow panels and the tail in memory."""
    rng = np.random.default_rng(2)
    indptr, indices, data, dense = _random_csr((120, 90), 0.1, np.float64, np.int32)
    tiles = _spmm.tile_csr(indptr, indices, data, 90, 4, 2)
    X = rng.standard_normal((90, width))
    assert_allclose(_spmm.gather(*tiles, X, 2), dense @ X, rtol=1e-13, atol=1e-13)


def test_bitwise_independent_of_threads_and_tiles():
    """Sorted rows: the sums do not depend on the threads or on the tiling."""
    rng = np.random.default_rng(1)
    indptr, indices, data, _ = _random_csr((2000, 3000), 0.01, np.float64, np.int32)
    X = rng.standard_normal((3000, 9))
    Y = rng.standard_normal((2000, 9))
    tiles = _spmm.tile_csr(indptr, indices, data, 3000, 1, 1)
    tiles_t = _spmm.tile_csr_transpose(indptr, indices, data, 3000, 1, 1)
    reference = (_spmm.gather(*tiles, X, 1), _spmm.gather(*tiles_t, Y, 1))
    for n_tiles in (1, 4, 13):
        for n_threads in (2, 4):
            tiles = _spmm.tile_csr(indptr, indices, data, 3000, n_tiles, n_threads)
            tiles_t = _spmm.tile_csr_transpose(
                indptr, indices, data, 3000, n_tiles, n_threads
            )
            assert_array_equal(_spmm.gather(*tiles, X, n_threads), reference[0])
            assert_array_equal(_spmm.gather(*tiles_t, Y, n_threads), reference[1])


def _power_law_csr(n_rows, n_cols, seed):
    """A CSR matrix whose column j holds about ``n_rows / (j + 1)`` values."""
    rng = np.random.default_rng(seed)
    mask = rng.random((n_rows, n_cols)) < 1.0 / (np.arange(n_cols) + 1.0)
    A = sp.csr_matrix(mask * rng.standard_normal((n_rows, n_cols)))
    A.sort_indices()
    return A


def _chunk_rows_oracle(tile_indptr, n_chunks):
    """Row by row: the cost of each row (its values plus ``_VISIT_COST`` per tile),
    then the first row boundary whose cost so far reaches each share of the total."""
    n_tiles, m = tile_indptr.shape[0], tile_indptr.shape[1] - 1
    cost = [
        sum(int(tile_indptr[t, i + 1] - tile_indptr[t, i]) for t in range(n_tiles))
        + _spmm._VISIT_COST * n_tiles
        for i in range(m)
    ]
    total = sum(cost)
    bounds, done, i = [0], 0, 0
    for k in range(1, n_chunks + 1):
        while i < m and done < k * total // n_chunks:
            done += cost[i]
            i += 1
        bounds.append(i)
    return np.array(bounds), np.array(cost)


@pytest.mark.parametrize("n_chunks", [1, 2, 3, 7, 2000])
@pytest.mark.parametrize("transpose", [False, True])
def test_chunk_rows_split_the_work_evenly(n_chunks, transpose):
    """Chunk bounds equal the row-by-row oracle; no chunk holds more than its
    share of the work plus one row, where equal numbers of rows hold far more."""
    A = _power_law_csr(400, 300, seed=3)
    tiling = _spmm.tile_csr_transpose if transpose else _spmm.tile_csr
    tile_indptr = tiling(A.indptr, A.indices, A.data, 300, 4, 2)[0]
    bounds = _spmm.chunk_rows(tile_indptr, n_chunks)
    expected, cost = _chunk_rows_oracle(tile_indptr, n_chunks)
    assert bounds.dtype == np.int64
    assert_array_equal(bounds, expected)
    work = [cost[lo:hi].sum() for lo, hi in zip(bounds[:-1], bounds[1:])]
    assert max(work) <= cost.sum() / n_chunks + cost.max()
    if transpose and n_chunks == 2:
        # The first rows of M^T (columns of M) hold most values: equal numbers
        # of rows break the bound.
        m = tile_indptr.shape[1] - 1
        assert cost[: m // 2].sum() > cost.sum() / 2 + cost.max()


def test_gather_with_work_chunks_bitwise_independent_of_threads():
    """Power-law column counts: M^T @ Y over chunks of equal work gives the same
    bits for 1, 2 or 3 threads as over equal numbers of rows, and equals the
    dense product."""
    rng = np.random.default_rng(4)
    A = _power_law_csr(3000, 500, seed=5)
    Y = rng.standard_normal((3000, 19))
    tiles_t = _spmm.tile_csr_transpose(A.indptr, A.indices, A.data, 500, 5, 2)
    reference = _spmm.gather(*tiles_t, Y, 1)
    assert_allclose(reference, A.toarray().T @ Y, rtol=1e-12, atol=1e-12)
    for n_threads in (1, 2, 3):
        chunks = _spmm.chunk_rows(tiles_t[0], n_threads)
        even = np.arange(n_threads + 1) * 500 // n_threads
        assert n_threads == 1 or not np.array_equal(chunks, even)
        assert_array_equal(
            _spmm.gather(*tiles_t, Y, n_threads, chunks=chunks), reference
        )
        assert_array_equal(_spmm.gather(*tiles_t, Y, n_threads), reference)


def test_gather_and_chunk_rows_reject_bad_chunks():
    """Chunk bounds that do not cover the rows in order are refused."""
    indptr, indices, data, _ = _random_csr((30, 20), 0.2, np.float64, np.int32)
    tiles = _spmm.tile_csr(indptr, indices, data, 20, 2, 1)
    X = np.ones((20, 2))
    for chunks, match in [
        ([0, 10], "from 0 to 30"),
        ([5, 30], "from 0 to 30"),
        ([0], "from 0 to 30"),
        ([0, 20, 10, 30], "non-decreasing"),
    ]:
        with pytest.raises(ValueError, match=match):
            _spmm.gather(*tiles, X, 2, chunks=np.array(chunks, dtype=np.int64))
    with pytest.raises(ValueError, match="n_chunks"):
        _spmm.chunk_rows(tiles[0], 0)


def test_transpose_independent_of_the_order_within_rows():
    """The tiles of M^T list each row's values in increasing row order of M,
    however M's rows are ordered: the same bits from sorted and unsorted rows."""
    rng = np.random.default_rng(3)
    A = random_csr(rng, 400, 300, 0.05, np.int32, np.float64)
    shuffled = A.copy()
    for i in range(A.shape[0]):
        lo, hi = A.indptr[i], A.indptr[i + 1]
        order = lo + rng.permutation(hi - lo)
        shuffled.indices[lo:hi] = A.indices[order]
        shuffled.data[lo:hi] = A.data[order]
    Y = rng.standard_normal((400, 6))
    results = [
        _spmm.gather(
            *_spmm.tile_csr_transpose(M.indptr, M.indices, M.data, 300, 5, 2), Y, 2
        )
        for M in (A, shuffled)
    ]
    assert_array_equal(results[0], results[1])
    assert_allclose(results[0], A.toarray().T @ Y, rtol=1e-13, atol=1e-13)


def _tile(tile_indptr, tile_indices, tile_data, t, shape):
    """Tile ``t`` as a SciPy CSR matrix; the arrays are shared by all tiles,
    so they are sliced by the tile's first and last pointer."""
    first, last = tile_indptr[t, 0], tile_indptr[t, -1]
    return sp.csr_matrix(
        (tile_data[first:last], tile_indices[first:last], tile_indptr[t] - first),
        shape=shape,
    )


def test_tiles_keep_rows_and_relative_columns():
    """Each tile is the CSR matrix of its columns, shifted to start at 0."""
    indptr, indices, data, dense = _random_csr((50, 40), 0.2, np.float64, np.int64)
    tile_indptr, tile_indices, tile_data, starts = _spmm.tile_csr(
        indptr, indices, data, 40, 3, 2
    )
    assert_array_equal(starts, [0, 14, 28, 40])
    for t in range(3):
        lo, hi = starts[t], starts[t + 1]
        tile = _tile(tile_indptr, tile_indices, tile_data, t, (50, hi - lo))
        assert_array_equal(tile.toarray(), dense[:, lo:hi])


def test_transposed_tiles_hold_the_rows_of_m():
    """Tile t of M^T is the transpose of a range of M's rows, its column
    indices relative to the range's first row."""
    indptr, indices, data, dense = _random_csr((50, 40), 0.2, np.float64, np.int64)
    tile_indptr, tile_indices, tile_data, starts = _spmm.tile_csr_transpose(
        indptr, indices, data, 40, 3, 2
    )
    assert_array_equal(starts, [0, 17, 34, 50])
    for t in range(3):
        lo, hi = starts[t], starts[t + 1]
        tile = _tile(tile_indptr, tile_indices, tile_data, t, (40, hi - lo))
        assert tile.has_sorted_indices
        assert_array_equal(tile.toarray(), dense[lo:hi].T)


def test_tile_count_rounds_to_whole_tiles():
    """Tiles have ceil(n_cols / n_tiles) columns, so fewer may come back."""
    indptr, indices, data, dense = _random_csr((20, 10), 0.5, np.float64, np.int32)
    tiles = _spmm.tile_csr(indptr, indices, data, 10, 6, 1)
    assert_array_equal(tiles[3], [0, 2, 4, 6, 8, 10])
    X = np.arange(30.0).reshape(10, 3)
    assert_allclose(_spmm.gather(*tiles, X, 2), dense @ X, rtol=1e-13)
    tiles_t = _spmm.tile_csr_transpose(indptr, indices, data, 10, 6, 1)
    assert_array_equal(tiles_t[3], [0, 4, 8, 12, 16, 20])


def test_empty_matrix_and_block():
    """No stored values, or a block of zero columns, give zero products."""
    indptr = np.zeros(6, dtype=np.int32)
    indices = np.zeros(0, dtype=np.int32)
    tiles = _spmm.tile_csr(indptr, indices, np.zeros(0), 4, 2, 1)
    tiles_t = _spmm.tile_csr_transpose(indptr, indices, np.zeros(0), 4, 2, 1)
    assert_array_equal(_spmm.gather(*tiles, np.ones((4, 3)), 2), np.zeros((5, 3)))
    assert_array_equal(_spmm.gather(*tiles_t, np.ones((5, 3)), 2), np.zeros((4, 3)))
    assert _spmm.gather(*tiles, np.ones((4, 0)), 2).shape == (5, 0)
    assert _spmm.gather(*tiles_t, np.ones((5, 0)), 2).shape == (4, 0)


@pytest.mark.parametrize(
    "indptr, indices, n_cols, n_tiles, n_threads, match",
    [
        ([0, 1, 2], [0, 5], 5, 1, 1, r"Column indices must lie in \[0, 5\)"),
        ([0, 1, 2], [0, -1], 5, 1, 1, r"Column indices must lie"),
        ([0, 3, 2], [0, 1], 5, 1, 1, "indptr must be non-decreasing"),
        ([1, 2, 2], [0, 1], 5, 1, 1, "starting at 0"),
        ([0, 1, 3], [0, 1], 5, 1, 1, "must have indptr"),
        ([0, 1, 2], [0, 1], 5, 0, 1, "n_cols and n_tiles must be >= 1"),
        ([0, 1, 2], [0, 1], 0, 1, 1, "n_cols and n_tiles must be >= 1"),
        ([0, 1, 2], [0, 1], 5, 1, 0, "n_threads must be >= 1"),
    ],
)
@pytest.mark.parametrize("tiling", [_spmm.tile_csr, _spmm.tile_csr_transpose])
def test_tilings_reject_malformed_input(
    tiling, indptr, indices, n_cols, n_tiles, n_threads, match
):
    """Malformed CSR arrays are named, never read out of bounds."""
    indptr = np.asarray(indptr, dtype=np.int32)
    indices = np.asarray(indices, dtype=np.int32)
    data = np.ones(len(indices))
    with pytest.raises(ValueError, match=match):
        tiling(indptr, indices, data, n_cols, n_tiles, n_threads)


@pytest.mark.parametrize(
    "tiling, n_cols, match",
    [
        (_spmm.tile_csr, 2**32, "A tile of 4294967296 columns overflows int32"),
        (_spmm.tile_csr_transpose, 5, "M needs a row"),
    ],
)
def test_tilings_reject_what_their_tiles_cannot_hold(tiling, n_cols, match):
    """Tiles wider than int32 indices, or the transpose of a matrix without
    rows (a matrix without columns), are refused."""
    indptr = np.zeros(1, dtype=np.int64)
    indices = np.zeros(0, dtype=np.int64)
    with pytest.raises(ValueError, match=match):
        tiling(indptr, indices, np.ones(0), n_cols, 1, 1)


def test_products_reject_wrong_shapes():
    """A block whose rows do not match the matrix is refused."""
    indptr, indices, data, _ = _random_csr((30, 20), 0.2, np.float64, np.int32)
    tiles = _spmm.tile_csr(indptr, indices, data, 20, 2, 1)
    tiles_t = _spmm.tile_csr_transpose(indptr, indices, data, 20, 2, 1)
    with pytest.raises(ValueError, match="X must have 20 rows"):
        _spmm.gather(*tiles, np.ones((30, 2)), 1)
    with pytest.raises(ValueError, match="X must have 30 rows"):
        _spmm.gather(*tiles_t, np.ones((20, 2)), 1)
    with pytest.raises(ValueError, match="n_threads"):
        _spmm.gather(*tiles, np.ones((20, 2)), 0)
    tile_indptr, tile_indices, tile_data, starts = tiles
    with pytest.raises(ValueError, match="starts must increase"):
        _spmm.gather(
            tile_indptr,
            tile_indices,
            tile_data,
            starts[::-1].copy(),
            np.ones((20, 2)),
            1,
        )
