"""Tests of the Lagrange interpolation kernel of ``_cython/_interp.pyx``.

The pipelines built on these kernels (spreading, the FFT, interpolation back)
are tested against the exact sums in ``tests/tsne/test_interpolation.py``.
"""

import numpy as np
import pytest
from numpy.testing import assert_allclose

from fasttsne._cython._interp import MAX_INTERPOLATION_POINTS, lagrange_weights


@pytest.mark.parametrize("p", [1, 2, 3, 4, 5, 8])
def test_lagrange_weights_reproduce_polynomials(p):
    """Degree < p is interpolated exactly from the p nodes (k + 1/2) / p."""
    rng = np.random.default_rng(p)
    u = rng.uniform(0.0, 1.0, size=200)
    nodes = (np.arange(p) + 0.5) / p
    weights = lagrange_weights(u, p)
    for degree in range(p):
        coef = rng.normal(size=degree + 1)
        # rtol: products of p - 1 factors below 1 in double precision.
        assert_allclose(
            weights @ np.polyval(coef, nodes),
            np.polyval(coef, u),
            rtol=1e-12,
            atol=1e-12,
        )
    # Degree p is not reproduced: the test above can fail.
    if p >= 2:
        error = np.abs(weights @ nodes**p - u**p).max()
        assert error > 1e-4


def test_lagrange_weights_specialised_p3_matches_generic_formula():
    """The register-only p = 3 basis equals the textbook product formula."""
    u = np.linspace(0.0, 1.0, 101)
    nodes = np.array([1.0, 3.0, 5.0]) / 6.0
    expected = np.ones((u.size, 3))
    for k in range(3):
        for m in range(3):
            if m != k:
                expected[:, k] *= (u - nodes[m]) / (nodes[k] - nodes[m])
    assert_allclose(lagrange_weights(u, 3), expected, rtol=1e-14, atol=1e-15)


@pytest.mark.parametrize("p", [0, MAX_INTERPOLATION_POINTS + 1])
def test_lagrange_weights_rejects_bad_p(p):
    """p outside [1, MAX_INTERPOLATION_POINTS] is refused."""
    with pytest.raises(ValueError, match="n_interpolation_points"):
        lagrange_weights(np.zeros(3), p)
