"""BLAS threads during a solve, and the basis products that go with them.

Dense solves leave the BLAS as it is. Sparse solves alternate OpenMP sparse
products with BLAS calls, so they hold the BLAS to one thread
(:class:`_OneBlasThread`) and split the large products with the basis over a
thread pool of their own instead (:func:`_threaded_products`).
"""

import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

from threadpoolctl import ThreadpoolController

from fasttsne.linalg._svd._operators import _ONE_CALL_PRODUCTS, _BasisProducts


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
def _threaded_products(sparse, n_threads):
    """Threads for a solve: yields the :class:`_BasisProducts` to use.

    Dense input keeps the BLAS as it is (``_ONE_CALL_PRODUCTS``). With sparse
    input the sparse products run in OpenMP threads between BLAS calls, and
    OpenBLAS's pthreads workers busy-wait for about 0.1 s after every call: on
    a machine with no spare core they take half the cores from the sparse
    products (docs/svd.rst, "Benchmark"). So the BLAS is held to one thread for
    the solve (:class:`_OneBlasThread`), and the large products with the basis
    are split over a pool of ``n_threads`` threads instead.
    """
    if not sparse:
        yield _ONE_CALL_PRODUCTS
        return
    if n_threads == 1:
        yield _BasisProducts()
        return
    with (
        _OneBlasThread(),
        ThreadPoolExecutor(n_threads, thread_name_prefix="fasttsne-svd") as executor,
    ):
        yield _BasisProducts(executor)
