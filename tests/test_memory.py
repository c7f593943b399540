"""Tests of fasttsne._memory: freed heap memory handed back between phases."""

import sys

import numpy as np
import pytest

from fasttsne import _memory
from fasttsne.tsne import _affinity


def test_release_reports_a_bool():
    assert isinstance(_memory.release_free_memory(), bool)


def test_release_without_malloc_trim_does_nothing(monkeypatch):
    # musl, macOS and Windows have no malloc_trim: the call is then a no-op.
    monkeypatch.setattr(_memory, "_malloc_trim", lambda: None)
    assert _memory.release_free_memory() is False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc only")
def test_glibc_trim_is_found():
    libc_name = " ".join(str(part) for part in __import__("platform").libc_ver())
    if "glibc" not in libc_name:
        pytest.skip(f"C library {libc_name!r} is not glibc")
    assert _memory._malloc_trim() is not None


def test_affinities_release_memory_between_phases(monkeypatch):
    # After the search and before P is formed (the two points where a
    # phase's freed blocks would otherwise sit beside the next one's arrays).
    calls = []
    monkeypatch.setattr(_affinity, "release_free_memory", lambda: calls.append(1))
    X = np.random.default_rng(0).normal(size=(60, 3))
    P = _affinity.joint_probabilities(X, perplexity=5.0)
    assert len(calls) == 2
    np.testing.assert_allclose(P.sum(), 1.0)
