"""Tests of fasttsne._memory: freed heap memory handed back between phases."""

import platform
import sys

import numpy as np
import pytest

from fasttsne import FFTInterpTSNE, _memory
from fasttsne.tsne import _affinity, _base
from fasttsne.tsne._gradients._sparse import SparseAttractionBackend

GLIBC = sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"


def test_release_without_malloc_trim_does_nothing(monkeypatch):
    # musl, macOS and Windows have no malloc_trim: the lookup then gives None.
    monkeypatch.setattr(_memory, "_malloc_trim", lambda: None)
    assert _memory.release_free_memory() is False


@pytest.mark.skipif(not GLIBC, reason="glibc's malloc_trim only")
def test_glibc_releases_freed_blocks():
    assert _memory._malloc_trim() is not None
    # Blocks below the mmap threshold live in the heap; every other one freed
    # leaves holes that free() cannot hand back by itself, malloc_trim can.
    blocks = [np.ones(8192) for _ in range(1000)]
    del blocks[::2]
    assert _memory.release_free_memory() is True
    del blocks


def test_affinities_release_after_search_and_before_symmetrizing(monkeypatch, rng):
    events = []
    monkeypatch.setattr(
        _affinity, "release_free_memory", lambda: events.append("release")
    )
    symmetrized = _affinity._symmetrized

    def logged_symmetrized(*args, **kwargs):
        events.append("symmetrize")
        return symmetrized(*args, **kwargs)

    def logged_search(*args, **kwargs):
        events.append("search")
        return _affinity.nearest_neighbors(*args, **kwargs)

    monkeypatch.setattr(_affinity, "_symmetrized", logged_symmetrized)
    X = rng.normal(size=(60, 3))
    _affinity.joint_probabilities(
        X,
        perplexity=5.0,
        search=logged_search,
        before_symmetrize=lambda order: events.append("start"),
    )
    assert events == ["search", "release", "start", "release", "symmetrize"]


def test_fit_releases_before_the_first_gradient(monkeypatch, rng):
    events = []
    monkeypatch.setattr(_base, "release_free_memory", lambda: events.append("release"))
    call = SparseAttractionBackend.__call__

    def logged_call(self, Y, **kwargs):
        events.append("gradient")
        return call(self, Y, **kwargs)

    monkeypatch.setattr(SparseAttractionBackend, "__call__", logged_call)
    FFTInterpTSNE(perplexity=5.0, max_iter=3).fit(rng.normal(size=(40, 3)))
    assert events[0] == "release"
    assert len(events) > 1
    assert events[1:] == ["gradient"] * (len(events) - 1)
