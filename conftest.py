"""Test configuration shared by every test module."""

import os

# scikit-learn's array-API checks only run (instead of skipping) when scipy
# sees this variable at import time, so it must be set before scipy loads.
os.environ.setdefault("SCIPY_ARRAY_API", "1")
os.environ.setdefault("MPLBACKEND", "Agg")

import numpy as np  # noqa: E402  pylint: disable=wrong-import-position
import pytest  # noqa: E402  pylint: disable=wrong-import-position


@pytest.fixture
def rng():
    """A fresh seeded generator for each test."""
    return np.random.default_rng(0)
