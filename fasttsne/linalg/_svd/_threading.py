"""BLAS threads during a solve, and the basis products that go with them."""

import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

from threadpoolctl import ThreadpoolController

from fasttsne.linalg._svd._operators import _UNSPLIT, _SplitGemm


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
