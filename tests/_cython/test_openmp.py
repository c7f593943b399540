"""The build has OpenMP: otherwise every "1 vs 2 vs 4 threads" test is vacuous."""

import os

import pytest

from fasttsne._cython._openmp_info import openmp_info

# A deliberately serial build (a compiler without OpenMP) sets this to run the
# rest of the suite; it must never be set on CI.
_ALLOW_SERIAL = os.environ.get("FASTTSNE_ALLOW_SERIAL") == "1"


@pytest.mark.skipif(_ALLOW_SERIAL, reason="FASTTSNE_ALLOW_SERIAL=1: serial build")
@pytest.mark.parametrize("n_threads", [2, 4])
def test_parallel_regions_get_the_threads_they_ask_for(n_threads):
    """The kernels were compiled with OpenMP and a region really forks."""
    built_with_openmp, n_granted = openmp_info(n_threads)
    assert built_with_openmp, (
        "fasttsne was built without OpenMP: n_jobs has no effect and the "
        "thread-determinism tests prove nothing (FASTTSNE_ALLOW_SERIAL=1 "
        "accepts a deliberately serial build)."
    )
    assert n_granted == n_threads


def test_one_thread_and_bad_requests():
    """One thread is one thread in any build; nonsense requests are refused."""
    assert openmp_info(1)[1] == 1
    with pytest.raises(ValueError, match="n_threads"):
        openmp_info(0)
