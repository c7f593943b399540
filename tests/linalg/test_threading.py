"""Tests of the BLAS-thread plumbing of sparse solves."""

import pytest
from threadpoolctl import ThreadpoolController, threadpool_limits

from fasttsne.linalg._svd._operators import _ONE_CALL_PRODUCTS, _BasisProducts
from fasttsne.linalg._svd._threading import (
    _blas_n_threads,
    _OneBlasThread,
    _threaded_products,
)


def _blas_threads():
    """Threads of every BLAS library loaded."""
    controller = ThreadpoolController()
    return [lib["num_threads"] for lib in controller.select(user_api="blas").info()]


def test_blas_threads_reported_from_before_the_limit():
    """A solve starting while another holds the BLAS to one thread still sees the
    count from before, and runs its sparse products on as many threads."""
    with threadpool_limits(2, user_api="blas"):
        with _OneBlasThread():
            assert _blas_n_threads() == 2
        assert _blas_n_threads() == 2


def test_blas_limit_nests_and_restores():
    """Overlapping sparse solves hold the BLAS at one thread until the last one
    ends, which restores it, also after an exception."""
    # Overlapping, not nested: the dunder calls are the point.
    # pylint: disable=unnecessary-dunder-call
    with threadpool_limits(2, user_api="blas"):
        before = _blas_threads()
        first, second = _OneBlasThread(), _OneBlasThread()
        first.__enter__()
        second.__enter__()
        first.__exit__(None, None, None)
        assert set(_blas_threads()) == {1}
        second.__exit__(None, None, None)
        assert _blas_threads() == before
        with pytest.raises(RuntimeError):
            with _OneBlasThread():
                assert set(_blas_threads()) == {1}
                raise RuntimeError("solve failed")
        assert _blas_threads() == before


@pytest.mark.parametrize("sparse, n_threads", [(False, 2), (True, 1), (True, 2)])
def test_threaded_products_for_each_kind_of_solve(sparse, n_threads):
    """Dense solves keep the BLAS threads and one-call products; sparse solves
    with threads hold the BLAS to one thread and split the products over a pool,
    and give the BLAS back afterwards."""
    with threadpool_limits(2, user_api="blas"):
        before = _blas_threads()
        with _threaded_products(sparse, n_threads) as products:
            assert isinstance(products, _BasisProducts)
            if not sparse:
                assert products is _ONE_CALL_PRODUCTS
                assert _blas_threads() == before
            elif n_threads == 1:
                assert products.split and products.executor is None
            else:
                assert set(_blas_threads()) == {1}
                assert products.executor is not None
        assert _blas_threads() == before
