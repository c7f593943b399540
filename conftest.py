"""Test configuration shared by every test module."""

import importlib.util
import os

# scikit-learn's array-API checks only run (instead of skipping) when scipy
# sees this variable at import time, so it must be set before scipy loads.
os.environ.setdefault("SCIPY_ARRAY_API", "1")
os.environ.setdefault("MPLBACKEND", "Agg")

# pylint: disable-next=wrong-import-position
from fasttsne.gpu import _driver_visible  # noqa: E402

# Without a GPU the Triton kernels run in Triton's interpreter, on CPU tensors
# (tests/gpu). Triton reads the variable when a kernel is decorated, i.e. when
# fasttsne.gpu._kernels is first imported, which no import above does; the
# check looks for a driver without importing torch.
if not _driver_visible():
    os.environ.setdefault("TRITON_INTERPRET", "1")


def _importable(name):
    """Whether ``import name`` can find the package (without importing it)."""
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


# Without torch and triton (the gpu extra) the kernel modules cannot even be
# imported, so --doctest-modules must leave them alone; tests/gpu skips.
if not (_importable("torch") and _importable("triton")):
    collect_ignore = [
        "fasttsne/gpu/_kernels.py",
        "fasttsne/gpu/_launchers.py",
        "tests/gpu/_compile_kernels.py",
    ]

import numpy as np  # noqa: E402  pylint: disable=wrong-import-position
import pytest  # noqa: E402  pylint: disable=wrong-import-position


@pytest.fixture
def rng():
    """A fresh seeded generator for each test."""
    return np.random.default_rng(0)


try:
    from hypothesis import HealthCheck, settings
except ImportError:  # the fuzz tests skip themselves without Hypothesis
    pass
else:
    # "ci" is derandomised (the same examples on every run, so CI is
    # reproducible) and small enough for a quick run on two cores; "deep" is
    # for local runs: HYPOTHESIS_PROFILE=deep python -m pytest tests/fuzz
    _FUZZ_HEALTH = [HealthCheck.too_slow, HealthCheck.data_too_large]
    settings.register_profile(
        "ci",
        max_examples=200,
        derandomize=True,
        deadline=None,
        database=None,
        print_blob=True,
        suppress_health_check=_FUZZ_HEALTH,
    )
    settings.register_profile(
        "deep",
        max_examples=2000,
        deadline=None,
        print_blob=True,
        suppress_health_check=_FUZZ_HEALTH,
    )
    settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
