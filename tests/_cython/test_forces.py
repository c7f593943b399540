"""Tests of the sparse attraction kernels (``_cython/_forces.pyx``).

Checked against the dense NumPy oracles of ``tests/_oracles.py``, written from
the formulas ``t_ij = 1 + |y_i - y_j|^2 / dof``, ``w_ij = t_ij^(-dof)``.
"""

import numpy as np
import pytest
import scipy.sparse as sp
from numpy.testing import assert_allclose, assert_array_equal

from fasttsne._cython._forces import (
    _allow_avx,
    _attraction_kernel,
    attractive_forces,
    kl_attraction_term,
)
from tests._oracles import (
    clusters,
    exact_attraction,
    exact_kl_attraction_term,
    random_affinities,
    random_csr,
)


@pytest.mark.parametrize("d", [1, 2, 3])
@pytest.mark.parametrize("dof", [1.0, 0.5])
@pytest.mark.parametrize("index_dtype", [np.int32, np.int64])
@pytest.mark.parametrize("p_dtype", [np.float32, np.float64])
def test_attraction_square(rng, d, dof, index_dtype, p_dtype):
    """Attraction and KL term of a square P against the dense oracle.

    P's values in either dtype (a fit's are float32) with a float64 Y: the
    kernels widen them, so the oracle of the same values is met as tightly.
    """
    n = 400
    P = random_affinities(rng, n, 20, index_dtype)
    P.data = P.data.astype(p_dtype)
    Y = clusters(rng, n, d)
    out = np.empty_like(Y)
    attractive_forces(P.indptr, P.indices, P.data, Y, dof, 12.0, out, 2)
    assert_allclose(out, exact_attraction(P, Y, dof, 12.0), rtol=1e-12, atol=1e-18)
    term = kl_attraction_term(P.indptr, P.indices, P.data, Y, dof, 2)
    assert_allclose(term, exact_kl_attraction_term(P, Y, dof), rtol=1e-12)


@pytest.mark.parametrize("d", [1, 2, 3])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("p_dtype", [np.float32, np.float64])
def test_attraction_rectangular(rng, d, dtype, p_dtype):
    """Query rows against reference columns (transform), every pairing of
    the points' and P's dtypes."""
    n_query, n_ref = 90, 500
    P = random_csr(rng, n_query, n_ref, 0.03)
    P.data = P.data.astype(p_dtype)
    Y = clusters(rng, n_query, d).astype(dtype)
    Y_ref = clusters(rng, n_ref, d).astype(dtype)
    out = np.empty_like(Y)
    attractive_forces(P.indptr, P.indices, P.data, Y, 1.0, 1.0, out, 2, Y_ref=Y_ref)
    rtol = 1e-12 if dtype == np.float64 else 1e-6  # double sums, stored in Y's dtype
    expected = exact_attraction(P, Y, 1.0, 1.0, Y_ref)
    assert_allclose(out, expected, rtol=rtol, atol=rtol * np.abs(expected).max())
    term = kl_attraction_term(P.indptr, P.indices, P.data, Y, 1.0, 2, Y_ref=Y_ref)
    assert_allclose(term, exact_kl_attraction_term(P, Y, 1.0, Y_ref), rtol=rtol)


def test_attraction_zeros_and_empty_rows(rng):
    """Explicit zeros and empty rows contribute nothing."""
    P = random_affinities(rng, 50, 5)
    P.data[::3] = 0.0  # explicit zeros contribute nothing, not log(0)
    rows = np.repeat(np.arange(50), np.diff(P.indptr))
    keep = rows != 7  # row 7 becomes an empty row
    P = sp.csr_matrix((P.data[keep], (rows[keep], P.indices[keep])), shape=P.shape)
    assert np.any(P.data == 0.0) and P.indptr[7] == P.indptr[8]
    Y = rng.normal(size=(50, 2))
    out = np.empty_like(Y)
    attractive_forces(P.indptr, P.indices, P.data, Y, 1.0, 1.0, out, 1)
    assert_allclose(out, exact_attraction(P, Y, 1.0, 1.0), rtol=1e-12, atol=1e-18)
    assert_array_equal(out[7], 0.0)
    term = kl_attraction_term(P.indptr, P.indices, P.data, Y, 1.0, 1)
    assert_allclose(term, exact_kl_attraction_term(P, Y, 1.0), rtol=1e-12)


@pytest.mark.parametrize("d", [1, 2, 3])
@pytest.mark.parametrize("p_dtype", [np.float32, np.float64])
def test_attraction_bitwise_across_threads(rng, d, p_dtype):
    """Attraction and KL term are bitwise equal across thread counts (float32
    P in 2-D: the vector kernels; float64 P: the scalar loop)."""
    n = 2000
    P = random_affinities(rng, n, 20, dtype=p_dtype)
    Y = clusters(rng, n, d)
    out1 = np.empty_like(Y)
    attractive_forces(P.indptr, P.indices, P.data, Y, 1.0, 4.0, out1, 1)
    term1 = kl_attraction_term(P.indptr, P.indices, P.data, Y, 1.0, 1)
    for n_threads in (2, 4):
        out = np.empty_like(Y)
        attractive_forces(P.indptr, P.indices, P.data, Y, 1.0, 4.0, out, n_threads)
        assert_array_equal(out, out1)
        assert kl_attraction_term(P.indptr, P.indices, P.data, Y, 1.0, n_threads) == (
            term1
        )


@pytest.fixture(params=["avx", "vector"])
def attraction_kernel(request):
    """Each vector kernel of the 2-D attraction this machine can run."""
    if request.param == "avx" and _attraction_kernel() != "avx":
        pytest.skip("no AVX kernel on this machine or compiler")
    previous = _allow_avx(request.param == "avx")
    try:
        if _attraction_kernel() != request.param:
            pytest.skip(f"no {request.param} kernel with this compiler")
        yield request.param
    finally:
        _allow_avx(previous)


@pytest.mark.parametrize("n_neighbors", [1, 3, 4, 7, 20])
def test_vector_rows_match_scalar_rows(rng, n_neighbors, attraction_kernel):
    """The vector kernels of a 2-D float32 P with int32 indices and a float64
    Y give the scalar loop's bits.

    int32 indices with float32 values take the vector kernel (the fixture
    checks which one ``_attraction_kernel`` reports); int64 indices, and
    float64 values (the same values, widened), always the scalar loop, so
    the three compare two code paths; rows of every length modulo 4 and
    empty rows, with an exaggeration and a dof other than 1, square and
    rectangular.
    """
    assert _attraction_kernel() == attraction_kernel
    n = 300
    P = random_affinities(rng, n, n_neighbors)
    keep = np.repeat(np.arange(n), np.diff(P.indptr)) % 17 != 5  # empty rows
    rows = np.repeat(np.arange(n), np.diff(P.indptr))[keep]
    P = sp.csr_matrix((P.data[keep], (rows, P.indices[keep])), shape=P.shape)
    P.data = P.data.astype(np.float32)
    Y = clusters(rng, n, 2)
    Y_ref = clusters(rng, n, 2)
    paths = [(np.int32, np.float32), (np.int64, np.float32), (np.int32, np.float64)]
    for reference in (None, Y_ref):
        outputs = []
        for index_dtype, p_dtype in paths:
            out = np.empty_like(Y)
            attractive_forces(
                P.indptr.astype(index_dtype),
                P.indices.astype(index_dtype),
                P.data.astype(p_dtype),
                Y,
                0.7,
                12.0,
                out,
                2,
                Y_ref=reference,
            )
            outputs.append(out)
        assert_array_equal(outputs[0], outputs[1])
        assert_array_equal(outputs[0], outputs[2])
        expected = exact_attraction(P, Y, 0.7, 12.0, reference)
        assert_allclose(outputs[0], expected, rtol=1e-12, atol=1e-18)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("d", [1, 2, 3])
@pytest.mark.parametrize("p_dtype", [np.float32, np.float64])
def test_assembled_gradient_is_numpy(rng, dtype, d, p_dtype):
    """With ``repulsion``, the gradient has NumPy's three-pass bits, any threads.

    Every pairing of Y's and P's dtypes; float64 Y with float32 P in 2-D is a
    fit's, on the vector kernels.
    """
    n = 1001
    P = random_affinities(rng, n, 7, dtype=p_dtype)
    Y = clusters(rng, n, d).astype(dtype)
    repulsion = rng.normal(size=(n, d)).astype(dtype)
    scale = -4.0 / 3.7
    attraction = np.empty_like(Y)
    attractive_forces(P.indptr, P.indices, P.data, Y, 1.0, 12.0, attraction, 1)
    expected = repulsion * dtype(scale)
    expected += attraction * dtype(4.0)
    for n_threads in (1, 2, 3):
        out = np.empty_like(Y)
        attractive_forces(
            P.indptr, P.indices, P.data, Y, 1.0, 12.0, out, n_threads,
            repulsion=repulsion, repulsion_scale=scale,
        )  # fmt: skip
        assert_array_equal(out, expected)
    with pytest.raises(ValueError, match="repulsion has shape"):
        attractive_forces(
            P.indptr, P.indices, P.data, Y, 1.0, 1.0, out, 1,
            repulsion=repulsion[:5], repulsion_scale=scale,
        )  # fmt: skip


def test_assembled_gradient_without_attraction(rng):
    """With no stored entry (or no reference point) the gradient is the
    scaled repulsion, NumPy's ``repulsion * s + 0 * 4`` bits."""
    n, d = 50, 2
    Y = rng.normal(size=(n, d))
    repulsion = rng.normal(size=(n, d))
    scale = -4.0 / 3.7
    expected = repulsion * scale + np.zeros_like(Y) * 4.0
    empty = sp.csr_matrix((n, n))
    empty_rect = sp.csr_matrix((n, 0))
    cases = [(empty, None), (empty_rect, np.empty((0, d)))]
    for P, reference in cases:
        out = np.full_like(Y, np.nan)
        attractive_forces(
            P.indptr.astype(np.int32), P.indices.astype(np.int32), P.data, Y,
            1.0, 12.0, out, 2, Y_ref=reference, repulsion=repulsion,
            repulsion_scale=scale,
        )  # fmt: skip
        assert_array_equal(out, expected)


def test_attraction_rejects_overlapping_out(rng):
    """out sharing memory with an input, or a scale without repulsion, raises."""
    P = random_affinities(rng, 20, 4)
    Y = rng.normal(size=(20, 2))
    repulsion = rng.normal(size=(20, 2))
    args = (P.indptr, P.indices, P.data)
    with pytest.raises(ValueError, match="share memory with repulsion"):
        attractive_forces(
            *args, Y, 1.0, 1.0, repulsion, 1, repulsion=repulsion,
            repulsion_scale=-1.0,
        )  # fmt: skip
    with pytest.raises(ValueError, match="share memory with Y"):
        attractive_forces(*args, Y, 1.0, 1.0, Y, 1)
    Y_ref = rng.normal(size=(20, 2))
    with pytest.raises(ValueError, match="share memory with Y_ref"):
        attractive_forces(*args, Y, 1.0, 1.0, Y_ref, 1, Y_ref=Y_ref)
    with pytest.raises(ValueError, match="repulsion_scale is given"):
        attractive_forces(*args, Y, 1.0, 1.0, np.empty_like(Y), 1, repulsion_scale=2.0)


def test_attraction_validation(rng):
    """Inconsistent CSR arrays and shapes raise ValueError."""
    P = random_affinities(rng, 20, 4)
    Y = rng.normal(size=(20, 2))
    with pytest.raises(ValueError, match="indptr has length"):
        attractive_forces(P.indptr, P.indices, P.data, Y[:10], 1.0, 1.0, Y[:10], 1)
    with pytest.raises(ValueError, match="same number of columns"):
        attractive_forces(
            P.indptr,
            P.indices,
            P.data,
            Y,
            1.0,
            1.0,
            np.empty_like(Y),
            1,
            Y_ref=np.ascontiguousarray(Y[:, :1]),
        )
    with pytest.raises(ValueError, match="Inconsistent CSR"):
        attractive_forces(
            P.indptr, P.indices[:-1], P.data, Y, 1.0, 1.0, np.empty_like(Y), 1
        )
    with pytest.raises(ValueError, match="out has shape"):
        attractive_forces(P.indptr, P.indices, P.data, Y, 1.0, 1.0, Y[:5], 1)
    with pytest.raises(ValueError, match="n_threads"):
        kl_attraction_term(P.indptr, P.indices, P.data, Y, 1.0, 0)
