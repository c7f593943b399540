"""Searches on data of tiny or huge magnitude find the same neighbours."""

import sys

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from fasttsne import _neighbors
from fasttsne._neighbors import _APPROX_MIN_SAMPLES, nearest_neighbors
from fasttsne._neighbors._common import rescaling_exponent


@pytest.mark.parametrize("scale", [2.0**-80, 2.0**-150, 2.0**70])
def test_approximate_search_is_scale_free(rng, scale):
    """faiss works in float32: squared distances of 1e-23 data underflow there.

    The search scales such data by a power of two first, so it finds the same
    neighbours as on the data themselves, at exactly scaled distances.
    """
    X = rng.normal(size=(1500, 8))
    reference = nearest_neighbors(X, 15, method="approx", random_state=0)
    indices, distances = nearest_neighbors(
        X * scale, 15, method="approx", random_state=0
    )
    assert_array_equal(indices, reference[0])
    assert_allclose(distances, reference[1] * scale, rtol=1e-12)


def test_rescaling_exponent():
    """0 inside the safe range; otherwise max |x| lands in [0.5, 1)."""
    assert rescaling_exponent(0.0, np.float64) == 0
    assert rescaling_exponent(1e-60, np.float64) == 0
    assert rescaling_exponent(1e70, np.float64) == 0
    assert rescaling_exponent(1e-5, np.float32) == 0
    for largest, dtype in [
        (1e-200, np.float64),
        (1e300, np.float64),
        (1e-23, np.float32),
        (3e20, np.float32),
    ]:
        exponent = rescaling_exponent(largest, dtype)
        assert exponent != 0
        assert 0.5 <= np.ldexp(largest, exponent) < 1.0


def test_a_broken_faiss_fails_loudly(rng, monkeypatch):
    """faiss is a dependency: the large-data default does not fall back silently.

    Where the cell plan of the exact search prunes too little (50-D noise,
    with a budget of 20,000 candidates a query standing in for a large N), an
    exact search would take quadratic time without a word; a missing or
    broken faiss raises ImportError before the search. Data the plan prunes
    (2-D) need no graph, hence no faiss.
    """
    monkeypatch.setitem(sys.modules, "faiss", None)  # "import faiss" now fails
    monkeypatch.setattr(_neighbors, "_PRUNED_MAX_PAIRS_PER_QUERY", 20_000)
    X = rng.normal(size=(_APPROX_MIN_SAMPLES, 50))
    with pytest.raises(ImportError, match="pip install faiss-cpu"):
        nearest_neighbors(X, 5, method="auto")
    X_2d = rng.normal(size=(_APPROX_MIN_SAMPLES, 2))
    indices, _ = nearest_neighbors(X_2d, 5, method="auto", n_threads=2)
    assert indices.shape == (_APPROX_MIN_SAMPLES, 5)
    with pytest.raises(ImportError, match="pip install faiss-cpu"):
        nearest_neighbors(X[:100], 5, method="approx")
