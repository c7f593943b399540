"""Handing the heap's free memory back to the system between phases of a fit.

glibc keeps freed blocks of up to 32 MiB in its heaps (the threshold above
which it maps a block on its own grows to the largest mapped block freed),
and keeps up to twice that free at the top of each of its arenas, which the
threads share (at most 8 per core). The search, the affinities and every
gradient allocate such blocks (an embedding-sized array is ``n x 2 x 8``
bytes), so the freed memory of one phase sits beside the largest arrays of
the next one and counts in the fit's peak. ``malloc_trim`` returns it; the
measured effect is in docs/affinities.rst.
"""

import ctypes
import functools
import sys

__all__ = ["release_free_memory"]


@functools.cache
def _malloc_trim():
    """glibc's ``malloc_trim``, or None where the C library has none."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None)  # the C library the process runs on
    except OSError:
        return None
    trim = getattr(libc, "malloc_trim", None)  # glibc has it, musl does not
    if trim is not None:
        trim.argtypes = [ctypes.c_size_t]
        trim.restype = ctypes.c_int
    return trim


def release_free_memory():
    """Return the C heap's free pages to the system, where glibc can.

    Returns
    -------
    released : bool
        Whether memory was released (False where ``malloc_trim`` is missing
        or found nothing to release).

    Notes
    -----
    ``malloc_trim`` walks every arena of the process, the host
    application's included, taking each one's lock in turn; its cost grows
    with the heap (milliseconds after a million-point phase), which is why
    a fit calls it between phases only, never per iteration.
    """
    trim = _malloc_trim()
    return bool(trim is not None and trim(0))
