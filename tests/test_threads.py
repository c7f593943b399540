"""Thread resolution: n_jobs against affinity masks, quotas and OMP_NUM_THREADS.

Each case runs in a fresh interpreter, because the CPU count is read once per
process and OMP_NUM_THREADS once per OpenMP runtime.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from fasttsne import BarnesHutTSNE, ToeplitzKernel
from fasttsne._validation import check_n_threads

ROOT = Path(__file__).resolve().parents[1]

_PROBE = """
import json, os, sys
mask = json.loads(sys.argv[1])
if mask is not None:
    os.sched_setaffinity(0, mask)
from fasttsne._validation import check_n_threads
from fasttsne._cython._openmp_info import openmp_info
requests = [-1, -2, 1, 2, 64, 2**31, 2**63]
resolved = {str(n): check_n_threads(n) for n in requests}
resolved["granted"] = openmp_info(check_n_threads(-1))[1]
print(json.dumps(resolved))
"""


def _resolve_in_subprocess(mask=None, **env):
    """``check_n_threads`` of several requests, in a child with ``mask`` and ``env``."""
    child_env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("OMP_NUM_THREADS", "LOKY_MAX_CPU_COUNT")
    }
    child_env.update(env, PYTHONPATH=str(ROOT))
    result = subprocess.run(
        [sys.executable, "-c", _PROBE, json.dumps(mask)],
        capture_output=True,
        text=True,
        env=child_env,
        cwd=ROOT,
        check=True,
    )
    return json.loads(result.stdout.splitlines()[-1])


def _n_cpus():
    return len(os.sched_getaffinity(0))


@pytest.mark.skipif(
    not hasattr(os, "sched_setaffinity"), reason="no CPU affinity API here"
)
def test_affinity_mask_of_one_cpu_gives_one_thread():
    """A Slurm job or ``taskset -c 0`` with one CPU: -1 and large requests give 1."""
    cpu = min(os.sched_getaffinity(0))
    resolved = _resolve_in_subprocess([cpu])
    assert resolved["-1"] == 1
    assert resolved["-2"] == 1
    assert resolved["64"] == 1
    assert resolved["granted"] == 1


def test_omp_num_threads_sets_the_meaning_of_minus_one():
    resolved = _resolve_in_subprocess(OMP_NUM_THREADS="1")
    assert resolved["-1"] == 1
    assert resolved["granted"] == 1
    # An explicit request still wins over the variable (scikit-learn's rule),
    # within the CPUs the process may use.
    assert resolved["2"] == min(2, _n_cpus())
    # The variable may ask for more threads than CPUs; -1 then follows it.
    resolved = _resolve_in_subprocess(OMP_NUM_THREADS="3")
    assert resolved["-1"] == 3
    assert resolved["-2"] == 2
    assert resolved["64"] == max(3, _n_cpus())


def test_cpu_count_comes_from_joblib():
    """joblib's count (cgroup quotas, affinity; capped here by its variable)."""
    resolved = _resolve_in_subprocess(LOKY_MAX_CPU_COUNT="1")
    assert resolved["-1"] == 1
    assert resolved["64"] == 1


def test_huge_requests_are_capped_to_the_machine():
    resolved = _resolve_in_subprocess()
    n_all = resolved["-1"]
    assert n_all >= 1
    assert resolved["1"] == 1
    assert resolved[str(2**31)] == n_all
    assert resolved[str(2**63)] == n_all
    assert resolved["granted"] == n_all


@pytest.mark.parametrize("n_jobs", [True, False, 2.0, "2", np.True_])
def test_n_jobs_must_be_an_integer(n_jobs):
    with pytest.raises(TypeError, match="n_jobs must be an int"):
        check_n_threads(n_jobs)


def test_zero_is_refused_and_numpy_integers_accepted():
    with pytest.raises(ValueError, match="n_jobs == 0"):
        check_n_threads(0)
    assert check_n_threads(np.int64(1)) == 1
    assert check_n_threads(np.int32(-1)) == check_n_threads(-1)


def test_estimators_take_huge_n_jobs_and_refuse_bools(rng):
    """n_jobs >= 2**31 used to overflow the kernels' int; True was accepted."""
    X = rng.normal(size=(40, 3))
    reference = BarnesHutTSNE(max_iter=30, perplexity=5, random_state=0)
    Y = reference.fit_transform(X)
    huge = BarnesHutTSNE(max_iter=30, perplexity=5, random_state=0, n_jobs=2**40)
    np.testing.assert_array_equal(huge.fit_transform(X), Y)
    with pytest.raises(TypeError, match="n_jobs"):
        BarnesHutTSNE(max_iter=30, perplexity=5, n_jobs=True).fit(X)
    with pytest.raises(TypeError, match="n_jobs"):
        ToeplitzKernel(n_jobs=True).fit(X)
