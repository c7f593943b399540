"""Property-based fuzzing of the four estimators and the CLI reader.

Hypothesis draws arrays over dtypes, shapes 0..50 x 0..20, magnitudes
1e-300..1e300, duplicated rows, NaN/inf and sparse formats. Every outcome
must be either a result that passes its invariants or a ``ValueError`` /
``TypeError`` raised by our validation (fasttsne's or scikit-learn's input
checks), never an error from deep inside NumPy, SciPy or a kernel.

The profile comes from ``HYPOTHESIS_PROFILE`` (``conftest.py``): ``ci``
(derandomised, the default) or ``deep`` for longer local runs.
"""

import os
import traceback
import warnings

import numpy as np
import pytest
import scipy.sparse as sp

from tests._oracles import dense_toeplitz

hypothesis = pytest.importorskip("hypothesis")
st = pytest.importorskip("hypothesis.strategies")

# pylint: disable=wrong-import-position
from fasttsne import BarnesHutTSNE, FFTInterpTSNE, RandomizedSVD, ToeplitzKernel
from fasttsne.cli import CLIError, _read_input

given = hypothesis.given

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__import__("fasttsne").__file__))
# Where a validation error may be raised: our package, and scikit-learn's
# input and parameter validation.
_VALIDATION_FILES = (
    os.sep + os.path.join("sklearn", "utils", "validation.py"),
    os.sep + os.path.join("sklearn", "utils", "_param_validation.py"),
    os.sep + os.path.join("sklearn", "utils", "_array_api.py"),
)

# SVD values must match numpy.linalg.svd to this tolerance, relative to the
# largest singular value (the dtype's rounding, a few hundred times over).
_SVD_RTOL = {np.dtype(np.float64): 1e-8, np.dtype(np.float32): 1e-3}
# Toeplitz products must match the dense product to this tolerance, relative to
# max|x| times the kernel's largest row sum (the FFT's rounding).
_TOEPLITZ_RTOL = {np.dtype(np.float64): 1e-10, np.dtype(np.float32): 1e-4}


def _raised_by_validation(exc):
    """Whether ``exc`` is a ``ValueError``/``TypeError`` from our checks."""
    if not isinstance(exc, (ValueError, TypeError)):
        return False
    frames = traceback.extract_tb(exc.__traceback__)
    if not frames:
        return False
    where = os.path.abspath(frames[-1].filename)
    return where.startswith(_PACKAGE_DIR) or where.endswith(_VALIDATION_FILES)


def _check_outcome(run):
    """``run()``'s result, or None when it raised one of our clear errors."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return run()
    except (ValueError, TypeError) as exc:
        if not _raised_by_validation(exc):
            raise AssertionError(
                f"an error from outside our validation: {exc!r}"
            ) from exc
        assert str(exc), "a validation error must say what is wrong"
        return None


@st.composite
def data(draw, max_rows=50, max_cols=20):
    """An input matrix: dense array, nested list or sparse, of any dtype."""
    n_rows = draw(st.integers(0, max_rows))
    n_cols = draw(st.integers(0, max_cols))
    dtype = draw(st.sampled_from(["float64", "float32", "int64", "bool"]))
    exponent = draw(st.one_of(st.integers(-3, 3), st.integers(-300, 300)))
    seed = draw(st.integers(0, 2**32 - 1))
    n_duplicates = draw(st.integers(0, n_rows))
    zero_fraction = draw(st.sampled_from([0.0, 0.0, 0.5, 0.9, 1.0]))
    special = draw(st.sampled_from([None, None, None, np.nan, np.inf, -np.inf]))
    container = draw(st.sampled_from(["dense", "dense", "list", "csr", "csc", "coo"]))

    rng = np.random.default_rng(seed)
    if dtype == "bool":
        X = rng.random((n_rows, n_cols)) < 0.5
    elif dtype == "int64":
        X = rng.integers(-5, 6, size=(n_rows, n_cols))
    else:
        # Uniform in (-1, 1) times the scale: no overflow in float64.
        X = rng.uniform(-1.0, 1.0, (n_rows, n_cols)) * 10.0**exponent
        if n_duplicates and n_rows:
            X[rng.integers(n_rows, size=n_duplicates)] = X[
                rng.integers(n_rows, size=n_duplicates)
            ]
        X[rng.random((n_rows, n_cols)) < zero_fraction] = 0.0
        if special is not None and X.size:
            X[rng.integers(n_rows), rng.integers(n_cols)] = special
        with np.errstate(over="ignore"):
            X = X.astype(dtype)
    if container == "list":
        return X.tolist()
    if container != "dense":
        return {"csr": sp.csr_matrix, "csc": sp.csc_matrix, "coo": sp.coo_matrix}[
            container
        ](X)
    return X


def _dense64(X):
    """The drawn input as a float64 ndarray, for the oracles."""
    if sp.issparse(X):
        X = X.toarray()
    return np.asarray(X, dtype=np.float64)


def _out_dtype(X):
    """float32 for float32 input, float64 for everything else."""
    dtype = X.dtype if hasattr(X, "dtype") else np.float64
    return np.dtype(np.float32 if dtype == np.float32 else np.float64)


@pytest.mark.parametrize("estimator_class", [BarnesHutTSNE, FFTInterpTSNE])
@given(
    X=data(),
    n_components=st.sampled_from([1, 2]),
    perplexity=st.sampled_from([2.0, 5.0, 30.0]),
    init=st.sampled_from(["pca", "random"]),
)
def test_tsne_fuzz(estimator_class, X, n_components, perplexity, init):
    """A t-SNE fit returns a finite, non-degenerate embedding or refuses clearly."""
    tsne = estimator_class(
        n_components,
        perplexity=perplexity,
        init=init,
        max_iter=40,
        early_exaggeration_iter=20,
        random_state=0,
    )
    Y = _check_outcome(lambda: tsne.fit_transform(X))
    if Y is None:
        return
    dense = _dense64(X)
    assert Y.shape == (dense.shape[0], n_components)
    assert Y.dtype == _out_dtype(X)
    assert np.all(np.isfinite(Y))
    # KL divergence is >= 0; the tree and grid estimates may dip a little below.
    assert np.isfinite(tsne.kl_divergence_) and tsne.kl_divergence_ > -1e-2
    # Distinct points (which the fit requires) never collapse onto one: the
    # initialisation alone spreads them over about 1e-4.
    assert np.ptp(Y) > 1e-8
    new = _check_outcome(lambda: tsne.transform(X[:3] if not sp.issparse(X) else X))
    if new is not None:
        assert np.all(np.isfinite(new))
        assert new.shape[1] == n_components


@given(
    X=data(),
    n_components=st.integers(1, 6),
    center=st.booleans(),
)
def test_randomized_svd_fuzz(X, n_components, center):
    """Singular values sorted, non-negative, equal to LAPACK's; finite output."""
    svd = RandomizedSVD(n_components, center=center, random_state=0)
    Xt = _check_outcome(lambda: svd.fit_transform(X))
    if Xt is None:
        return
    dense = _dense64(X)
    assert Xt.shape == (dense.shape[0], n_components)
    assert Xt.dtype == _out_dtype(X)
    assert np.all(np.isfinite(Xt))
    values = svd.singular_values_
    assert values.shape == (n_components,)
    assert np.all(np.isfinite(values)) and np.all(values >= 0)
    assert np.all(np.diff(values) <= 0)
    if center:
        dense = dense - dense.mean(axis=0)
    exact = np.linalg.svd(dense, compute_uv=False)[:n_components]
    atol = _SVD_RTOL[_out_dtype(X)] * exact[0]
    np.testing.assert_allclose(values, exact, rtol=0, atol=atol)


@given(
    X=data(),
    kernel=st.sampled_from(["gaussian", "laplacian", "cauchy"]),
    bandwidth=st.sampled_from([0.3, 1.0, 4.0]),
)
def test_toeplitz_kernel_fuzz(X, kernel, bandwidth):
    """Products equal the dense Toeplitz product, or a clear refusal."""
    toeplitz = ToeplitzKernel(kernel, bandwidth=bandwidth)
    Xt = _check_outcome(lambda: toeplitz.fit(X).transform(X))
    if Xt is None:
        return
    dense = _dense64(X)
    assert Xt.shape == dense.shape
    assert Xt.dtype == _out_dtype(X)
    T = dense_toeplitz(toeplitz.kernel_values_, toeplitz.grid_shape_)
    expected = dense @ T.T
    finfo = np.finfo(Xt.dtype)
    if np.all(np.isfinite(expected)) and np.abs(expected).max(initial=0) < finfo.max:
        scale = np.abs(dense).max(initial=0) * np.abs(T).sum(axis=1).max(initial=0)
        atol = _TOEPLITZ_RTOL[Xt.dtype] * scale
        assert np.all(np.isfinite(Xt))
        np.testing.assert_allclose(Xt, expected, rtol=0, atol=atol)


@given(X=data(), suffix=st.sampled_from([".npy", ".csv", ".tsv"]))
def test_cli_reader_fuzz(tmp_path_factory, X, suffix):
    """The CLI reads back what was written, or reports a one-line error."""
    dense = _dense64(X)
    path = tmp_path_factory.mktemp("fuzz") / f"data{suffix}"
    if suffix == ".npy":
        np.save(path, dense)
    else:
        delimiter = "," if suffix == ".csv" else "\t"
        header = delimiter.join(f"x{j}" for j in range(dense.shape[1]))
        np.savetxt(
            path, dense, fmt="%.17g", delimiter=delimiter, header=header, comments=""
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            read, _ = _read_input(path, None, None)
    except CLIError as exc:
        assert str(exc)
        return
    np.testing.assert_array_equal(np.asarray(read, dtype=np.float64), dense)
