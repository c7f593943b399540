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
from fasttsne._tables import TableError, read_table

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
# largest singular value or the data's norm, whichever is larger (the dtype's
# rounding, a few hundred times over).
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
            result = run()
        hypothesis.event("result")
        return result
    except (ValueError, TypeError) as exc:
        hypothesis.event(f"refused: {type(exc).__name__}")
        if not _raised_by_validation(exc):
            raise AssertionError(
                f"an error from outside our validation: {exc!r}"
            ) from exc
        assert str(exc), "a validation error must say what is wrong"
        return None


# Sparse formats are drawn half of the time; ToeplitzKernel, which takes dense
# input only, draws them rarely.
_CONTAINERS = ("dense", "dense", "list", "csr", "csc", "coo")
_DENSE_CONTAINERS = ("dense", "dense", "dense", "list", "list", "csr")


@st.composite
def data(draw, max_rows=50, max_cols=20, containers=_CONTAINERS):
    """An input matrix: dense array, nested list or sparse, of any dtype."""
    n_rows = draw(st.integers(0, max_rows))
    n_cols = draw(st.integers(0, max_cols))
    dtype = draw(st.sampled_from(["float64", "float32", "int64", "bool"]))
    exponent = draw(st.one_of(st.integers(-3, 3), st.integers(-300, 300)))
    seed = draw(st.integers(0, 2**32 - 1))
    n_duplicates = draw(st.integers(0, n_rows))
    zero_fraction = draw(st.sampled_from([0.0, 0.0, 0.5, 0.9, 1.0]))
    special = draw(st.sampled_from([None] * 6 + [np.nan, np.inf, -np.inf]))
    container = draw(st.sampled_from(containers))

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
    X = np.asarray(X, dtype=np.float64)
    return X.reshape(0, 0) if X.ndim == 1 else X  # [] is a list of no rows


def _out_dtype(X):
    """float32 for float32 input, float64 for everything else."""
    dtype = X.dtype if hasattr(X, "dtype") else np.float64
    return np.dtype(np.float32 if dtype == np.float32 else np.float64)


def _largest(X):
    """max |x| of the drawn input (0 when empty)."""
    return float(np.max(np.abs(_dense64(X)), initial=0.0))


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
    # Compared at unit magnitude, where the oracle's own sums cannot under-
    # or overflow; rounding is relative to the data, also where centring
    # cancels them.
    largest = _largest(X) or 1.0
    unit = dense / largest
    scale = np.linalg.norm(unit)
    if center:
        unit = unit - unit.mean(axis=0)
    exact = np.linalg.svd(unit, compute_uv=False)[:n_components]
    atol = _SVD_RTOL[_out_dtype(X)] * max(exact[0], scale)
    np.testing.assert_allclose(values / largest, exact, rtol=0, atol=atol)


@given(
    X=data(containers=_DENSE_CONTAINERS),
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


@given(
    X=data(),
    suffix=st.sampled_from([".npy", ".csv", ".tsv"]),
    header=st.booleans(),
)
def test_cli_reader_fuzz(tmp_path_factory, X, suffix, header):
    """The CLI reads back what was written, or reports a one-line TableError."""
    dense = _dense64(X)
    path = tmp_path_factory.mktemp("fuzz") / f"data{suffix}"
    if suffix == ".npy":
        np.save(path, dense)
    else:
        delimiter = "," if suffix == ".csv" else "\t"
        names = delimiter.join(f"x{j}" for j in range(dense.shape[1]))
        np.savetxt(
            path,
            dense,
            fmt="%.17g",
            delimiter=delimiter,
            header=names if header else "",
            comments="",
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            table = read_table(path)
    except TableError as exc:
        assert str(exc) and "\n" not in str(exc)
        return
    read = np.asarray(table.X, dtype=np.float64)
    # An empty table has no rows to give it a width.
    if dense.size:
        assert read.shape == dense.shape
    np.testing.assert_array_equal(read.reshape(dense.shape), dense)


@pytest.mark.parametrize(
    "scale, dtype",
    [
        (1e-200, np.float64),
        (1e154, np.float64),
        (1e-30, np.float32),
        (1e19, np.float32),
    ],
)
def test_randomized_svd_extreme_magnitudes(rng, scale, dtype):
    """Singular values are scale-equivariant: those of 1e-200 A are 1e-200 s(A)."""
    A = rng.standard_normal((40, 15))
    X = (A * scale).astype(dtype)
    values = RandomizedSVD(3, random_state=0).fit(X).singular_values_
    exact = np.linalg.svd(X.astype(np.float64), compute_uv=False)[:3]
    np.testing.assert_allclose(values, exact, rtol=_SVD_RTOL[np.dtype(dtype)])


def test_toeplitz_float32_near_max(rng):
    X = (rng.uniform(0.5, 1.0, (3, 30)) * 3e38).astype(np.float32)
    Xt = ToeplitzKernel(normalize=True).fit(X).transform(X)
    assert np.all(np.isfinite(Xt))


def test_cli_reader_keeps_a_first_row_with_nan(tmp_path):
    """Found by the fuzz suite: a first data row holding a NaN was taken for a
    header and dropped without a word; it is data, and the NaN is refused."""
    path = tmp_path / "data.csv"
    path.write_text("nan,0.5,1\n2,3,4\n5,6,7\n")
    with pytest.raises(TableError, match="line 1 .* not a finite number"):
        read_table(path)
    path.write_text("x,nan,y\n2,3,4\n")  # a header may still name a column nan
    assert read_table(path).X.shape == (1, 3)
