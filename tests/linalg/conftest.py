"""Fixtures shared by the linear-algebra tests."""

import pytest
from threadpoolctl import threadpool_limits


@pytest.fixture(scope="module")
def one_blas_thread():
    """Hold the BLAS to one thread for a module of small SVD problems.

    The test matrices are small: BLAS threads would only add synchronisation,
    which on a shared, oversubscribed machine costs far more in spinning.
    """
    with threadpool_limits(1):
        yield
