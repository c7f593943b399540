"""Implementation notes: what OpenMP this build really has.

Without OpenMP every ``prange`` runs serially, and every test of the form
"1, 2 and 4 threads give the same bits" passes trivially. ``openmp_info``
reports whether the compiler defined ``_OPENMP`` for this extension (all
extensions share the flags of ``setup.py``) and how many threads one parallel
region, built like the kernels' (``parallel(num_threads=n)``), was granted, so
that a test can fail on a build that silently fell back to serial.

Complexity O(n_threads); allocates nothing; thread safety: each thread writes
its own slot of a stack array, the count is read after the join.
"""

from cython.parallel cimport parallel

from fasttsne._cython._openmp cimport (
    FASTTSNE_OPENMP,
    omp_get_num_threads,
    omp_get_thread_num,
)

cdef enum:
    # More than any test asks for; more threads are reported as this many.
    _MAX_THREADS = 64


def openmp_info(int n_threads):
    """Whether this build has OpenMP, and the threads a parallel region got.

    Parameters
    ----------
    n_threads : int
        Threads requested for the region, 1 to 64.

    Returns
    -------
    built_with_openmp : bool
        True when the extension was compiled with OpenMP (``_OPENMP`` defined).
    n_threads_granted : int
        Distinct threads that ran inside a ``parallel(num_threads=n_threads)``
        region: 1 in a serial build, usually ``n_threads`` otherwise (fewer
        when ``OMP_THREAD_LIMIT`` or ``OMP_DYNAMIC`` cut the team).
    """
    if not 1 <= n_threads <= _MAX_THREADS:
        raise ValueError(f"n_threads must be in [1, {_MAX_THREADS}], got {n_threads}.")
    cdef int seen[_MAX_THREADS]
    cdef int *slots = seen
    cdef int k, thread, n_granted = 0
    for k in range(_MAX_THREADS):
        seen[k] = 0
    with nogil, parallel(num_threads=n_threads):
        thread = omp_get_thread_num()
        if thread < _MAX_THREADS:
            slots[thread] = omp_get_num_threads()
    for k in range(_MAX_THREADS):
        if seen[k] > 0:
            n_granted += 1
    return bool(FASTTSNE_OPENMP), n_granted
