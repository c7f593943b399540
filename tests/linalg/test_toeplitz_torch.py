"""ToeplitzKernel on torch tensors: the torch circulant core, ``device=`` and
array API dispatch.

The device path runs here on CPU tensors (``cuda_on_cpu``). Oracles: the
dense (block-)Toeplitz matrix for the products, and the NumPy path (tested
against dense and SciPy oracles in ``test_toeplitz.py``) for everything else.
"""

import pickle
import sys

import numpy as np
import pytest
import sklearn
from numpy.testing import assert_array_equal

import fasttsne.gpu
from fasttsne import ToeplitzKernel
from fasttsne.linalg._circulant import (
    _apply_spectrum,
    _embedded_kernel,
    _kernel_spectrum,
)
from tests.linalg._array_api_checks import ARRAY_API_CHECKS
from tests._oracles import dense_toeplitz, fft_tolerance, relative_error

torch = pytest.importorskip("torch")

pytestmark = pytest.mark.usefixtures("one_torch_thread")

# Float32 products: a few units of float32 rounding per FFT stage.
FLOAT32_TOL = 1e-5

# (estimator parameters, grid) of symmetric and non-symmetric kernels, 1-D to 3-D.
CASES = {
    "gaussian-1d": ({"kernel": "gaussian", "bandwidth": 2.0}, (257,)),
    "cauchy-2d": ({"kernel": "cauchy", "bandwidth": 1.5}, (12, 17)),
    "laplacian-3d": ({"kernel": "laplacian", "bandwidth": 1.0}, (3, 4, 5)),
    "nonsymmetric-1d": (
        {"kernel": lambda u: np.exp(-0.5 * (u.sum(axis=1) - 0.3) ** 2)},
        (100,),
    ),
    "nonsymmetric-2d": (
        {"kernel": lambda u: 1.0 / (1.0 + (u[:, 0] - 0.4) ** 2 + u[:, 1] ** 2)},
        (9, 11),
    ),
}


def _estimator(case, **params):
    options, grid_shape = CASES[case]
    return ToeplitzKernel(**options, grid_shape=grid_shape, **params), grid_shape


def _tensor_dtype(dtype):
    return getattr(torch, np.dtype(dtype).name)


@pytest.mark.parametrize("grid_shape", [(1,), (64,), (1000,), (7, 12), (3, 4, 5)])
@pytest.mark.parametrize("symmetric", [True, False])
def test_torch_core_matches_dense_and_numpy(rng, grid_shape, symmetric):
    """The torch circulant product equals the dense block-Toeplitz product and
    the NumPy core's, to 1e-12, from the same spectrum."""
    # pylint: disable-next=import-outside-toplevel
    from fasttsne.linalg._circulant_torch import circulant_product, spectrum_tensor

    kernel = rng.standard_normal(tuple(2 * n - 1 for n in grid_shape))
    if symmetric:
        kernel = kernel + np.flip(kernel)
    spectrum = _kernel_spectrum(kernel, grid_shape)
    charges = rng.standard_normal((5,) + grid_shape)
    values = spectrum_tensor(spectrum.spectrum, "cpu")
    actual = circulant_product(
        values, spectrum.fft_shape, grid_shape, torch.from_numpy(charges)
    )
    assert actual.dtype == torch.float64 and actual.is_contiguous()
    dense = dense_toeplitz(kernel, grid_shape)
    desired = charges.reshape(5, -1) @ dense.T
    n = int(np.prod(grid_shape))
    assert relative_error(actual.numpy().reshape(5, -1), desired) <= fft_tolerance(n)
    numpy_core = _apply_spectrum(spectrum, charges)
    assert relative_error(actual.numpy(), numpy_core) <= 1e-12


def test_embedding_of_a_tensor_is_the_numpy_embedding(rng):
    """The one embedding function embeds a tensor on its device, bitwise as
    it embeds the ndarray (the GPU t-SNE grid embeds its kernel this way)."""
    kernel = rng.standard_normal((13, 9))
    expected = _embedded_kernel(kernel, (7, 5))
    actual = _embedded_kernel(torch.from_numpy(kernel), (7, 5))
    assert torch.is_tensor(actual) and actual.dtype == torch.float64
    assert_array_equal(actual.numpy(), expected)
    with pytest.raises(ValueError, match="expected"):
        _embedded_kernel(torch.zeros((3, 3)), (7, 5))


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_transform_on_torch_matches_numpy(rng, case, dtype):
    """Under array API dispatch a tensor is transformed as a tensor of its
    dtype and device, to the NumPy path's values: 1e-12 norm-wise in
    float64, float32 rounding in float32; X @ T and X @ T.T both."""
    est, grid_shape = _estimator(case)
    X = rng.standard_normal((6, int(np.prod(grid_shape)))).astype(dtype)
    expected = est.fit(X).transform(X)
    expected_conj = est._product(  # pylint: disable=protected-access
        X.astype(np.float64), conjugate=True, n_threads=1
    )
    X_t = torch.from_numpy(X)
    with sklearn.config_context(array_api_dispatch=True):
        fitted = sklearn.clone(est).fit(X_t)
        actual = fitted.transform(X_t)
    assert torch.is_tensor(actual) and actual.dtype == _tensor_dtype(dtype)
    assert actual.device == X_t.device and actual.shape == X_t.shape
    tol = 1e-12 if dtype == np.float64 else FLOAT32_TOL
    assert relative_error(actual.numpy(), expected) <= tol
    # pylint: disable-next=import-outside-toplevel
    from fasttsne.linalg._circulant_torch import TorchOps

    actual_conj = fitted._product(  # pylint: disable=protected-access
        X_t.to(torch.float64), conjugate=True, n_threads=1, ops=TorchOps("cpu")
    )
    assert relative_error(actual_conj.numpy(), expected_conj) <= 1e-12


@pytest.mark.parametrize(
    "case, params",
    [
        ("gaussian-1d", {"alpha": 1e-3}),
        ("gaussian-1d", {"alpha": 0.1, "preconditioner": None}),
        ("cauchy-2d", {"preconditioner": "strang"}),
        ("laplacian-3d", {}),
        ("nonsymmetric-1d", {"alpha": 0.1}),
        ("nonsymmetric-2d", {"alpha": 0.05}),
    ],
)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_inverse_transform_on_torch_matches_numpy(rng, case, params, dtype):
    """The solves (PCG, CGNR) run unchanged on tensors: the same solver, every
    row converged, the NumPy path's solution to the solve's accuracy, and
    tensors of the input's dtype out."""
    est, grid_shape = _estimator(case, **params)
    X = rng.standard_normal((5, int(np.prod(grid_shape)))).astype(dtype)
    X[2] = 0  # an all-zero row is solved by z = 0
    expected, expected_info = est.fit(X).inverse_transform(X, return_info=True)
    X_t = torch.from_numpy(X)
    with sklearn.config_context(array_api_dispatch=True):
        fitted = sklearn.clone(est).fit(X_t)
        actual, info = fitted.inverse_transform(X_t, return_info=True)
    assert torch.is_tensor(actual) and actual.dtype == _tensor_dtype(dtype)
    assert info.converged.all() and expected_info.converged.all()
    assert_array_equal(info.solver, expected_info.solver)
    assert_array_equal(actual.numpy()[2], 0)
    assert np.abs(info.n_iter - expected_info.n_iter).max() <= 2
    tol = 1e-6 if dtype == np.float64 else FLOAT32_TOL
    assert relative_error(actual.numpy(), expected) <= tol


def test_indefinite_rows_fall_back_to_cgnr_on_torch(rng):
    """A symmetric indefinite T: PCG breaks down and the rows are re-solved by
    CGNR on tensors, as on NumPy arrays."""
    c = np.array([1.0, 2.0, 0.5, 0.0, 0.0, 0.0])
    X = rng.standard_normal((3, c.size))
    est = ToeplitzKernel(coefficients=c, preconditioner=None)
    expected, expected_info = est.fit(X).inverse_transform(X, return_info=True)
    with sklearn.config_context(array_api_dispatch=True):
        fitted = sklearn.clone(est).fit(torch.from_numpy(X))
        actual, info = fitted.inverse_transform(torch.from_numpy(X), return_info=True)
    assert (expected_info.solver == "cgnr").any()
    assert_array_equal(info.solver, expected_info.solver)
    assert relative_error(actual.numpy(), expected) <= 1e-8


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_extreme_magnitudes_on_torch(rng, dtype):
    """Rows near the ends of the dtype's range are scaled by powers of two on
    the device as on the host: the same products and solves."""
    est = ToeplitzKernel("cauchy", bandwidth=1.0, alpha=0.1)
    X = rng.standard_normal((4, 50))
    info = np.finfo(dtype)
    X[0] *= float(info.max) / 8
    X[1] *= float(info.tiny) * 4
    X[2] *= float(info.smallest_subnormal) * 16
    X = X.astype(dtype)
    est.fit(X)
    expected = est.transform(X), est.inverse_transform(X)
    X_t = torch.from_numpy(X)
    with sklearn.config_context(array_api_dispatch=True):
        fitted = sklearn.clone(est).fit(X_t)
        actual = fitted.transform(X_t), fitted.inverse_transform(X_t)
    tol = 1e-6 if dtype == np.float64 else FLOAT32_TOL
    for got, want in zip(actual, expected):
        got = got.numpy().astype(np.float64)
        assert np.isfinite(got).all()
        for row in range(4):
            # Compared at unit magnitude, where the norms neither overflow
            # nor underflow.
            scale = np.abs(want[row].astype(np.float64)).max()
            assert relative_error(got[row] / scale, want[row] / scale) <= tol, row


@pytest.mark.usefixtures("cuda_on_cpu")
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_numpy_input_on_the_device_comes_back_as_numpy(rng, dtype):
    """device="cuda" computes NumPy input with torch and returns NumPy arrays
    of its dtype; the fitted attributes stay NumPy."""
    X = rng.standard_normal((4, 300)).astype(dtype)
    ref = ToeplitzKernel("gaussian", bandwidth=3.0, alpha=1e-2).fit(X)
    est = ToeplitzKernel("gaussian", bandwidth=3.0, alpha=1e-2, device="cuda").fit(X)
    assert isinstance(est.kernel_values_, np.ndarray)
    assert_array_equal(est.kernel_values_, ref.kernel_values_)
    tol = 1e-12 if dtype == np.float64 else FLOAT32_TOL
    for method in ("transform", "inverse_transform"):
        actual = getattr(est, method)(X)
        assert isinstance(actual, np.ndarray) and actual.dtype == dtype
        assert relative_error(actual, getattr(ref, method)(X)) <= max(tol, 1e-8)


@pytest.mark.usefixtures("cuda_on_cpu")
def test_tensor_on_another_device_comes_back_home(rng):
    """device="cuda" computes a tensor on the device and returns it on its own
    device; device="cpu" likewise."""
    X = torch.from_numpy(rng.standard_normal((3, 40)))
    with sklearn.config_context(array_api_dispatch=True):
        for device in ("cuda", "cpu"):
            est = ToeplitzKernel(device=device).fit(X)
            assert est.kernel_values_.device == X.device
            out = est.transform(X)
            assert torch.is_tensor(out) and out.device == X.device


def test_array_api_fitted_attributes_are_tensors(rng):
    """Fitted on a tensor under dispatch, the array attributes are tensors on
    its device with the NumPy fit's values (the same host computation)."""
    X = rng.standard_normal((3, 30))
    for params in ({}, {"coefficients": (X[0], X[1])}, {"preconditioner": None}):
        ref = ToeplitzKernel(**params).fit(X)
        with sklearn.config_context(array_api_dispatch=True):
            est = ToeplitzKernel(**params).fit(torch.from_numpy(X))
        for name in ("kernel_values_", "preconditioner_eigenvalues_"):
            expected, actual = getattr(ref, name), getattr(est, name)
            if expected is None:
                assert actual is None
                continue
            assert torch.is_tensor(actual)
            assert_array_equal(actual.numpy(), expected)
        assert est.n_features_in_ == 30 and est.solver_ == ref.solver_


def test_array_api_mixing_libraries_is_an_error(rng):
    """A model fitted on tensors does not transform NumPy arrays, nor one
    fitted on NumPy arrays tensors under dispatch."""
    X = rng.standard_normal((3, 20))
    with sklearn.config_context(array_api_dispatch=True):
        on_torch = ToeplitzKernel().fit(torch.from_numpy(X))
        with pytest.raises(TypeError, match="same array library"):
            on_torch.transform(X)
        with pytest.raises(TypeError, match="same array library"):
            ToeplitzKernel().fit(X).inverse_transform(torch.from_numpy(X))
    with pytest.raises(TypeError, match="same array library"):
        on_torch.transform(X)


def test_tensor_validation(rng):
    """Tensors are validated as check_array validates arrays."""
    X = torch.from_numpy(rng.standard_normal((4, 20)))
    with sklearn.config_context(array_api_dispatch=True):
        est = ToeplitzKernel().fit(X)
        bad = X.clone()
        bad[1, 3] = float("nan")
        with pytest.raises(ValueError, match="NaN or infinity"):
            est.transform(bad)
        with pytest.raises(ValueError, match="NaN or infinity"):
            ToeplitzKernel().fit(bad)
        with pytest.raises(ValueError, match="2-D"):
            est.transform(X[0])
        with pytest.raises(ValueError, match="20 features"):
            est.transform(X[:, :10])
        ints = torch.ones((2, 20), dtype=torch.int64)
        assert est.transform(ints).dtype == torch.float64


def test_torch_without_dispatch_is_numpy(rng):
    """Without array_api_dispatch a CPU tensor is converted as scikit-learn
    converts it: NumPy results, bitwise those of the ndarray."""
    X = rng.standard_normal((3, 50))
    est = ToeplitzKernel(alpha=0.1).fit(X)
    for method in ("transform", "inverse_transform"):
        expected = getattr(est, method)(X)
        actual = getattr(est, method)(torch.from_numpy(X))
        assert isinstance(actual, np.ndarray)
        assert_array_equal(actual, expected)


def test_pickle_drops_the_device_spectra(rng):
    """The per-device spectra are a cache: a pickle holds none, and the loaded
    model computes the same results."""
    X = rng.standard_normal((3, 40))
    with sklearn.config_context(array_api_dispatch=True):
        est = ToeplitzKernel(alpha=0.1).fit(torch.from_numpy(X))
        expected = est.inverse_transform(torch.from_numpy(X))
        loaded = pickle.loads(pickle.dumps(est))
        assert not loaded._spectra  # pylint: disable=protected-access
        actual = loaded.inverse_transform(torch.from_numpy(X))
    assert torch.equal(actual, expected)


@pytest.mark.usefixtures("cuda_on_cpu")
@pytest.mark.parametrize("on_tensor", [False, True])
def test_pickle_without_new_attributes_on_torch(rng, on_tensor):
    """A model pickled before ``device_`` and the host spectra existed
    computes as it did: on the device it was fitted for, products equal to
    the dense matrix's, the solve's residual within tol."""
    X = rng.standard_normal((3, 40))
    T = dense_toeplitz(ToeplitzKernel().fit(X).kernel_values_, (40,))
    with sklearn.config_context(array_api_dispatch=on_tensor):
        data = torch.from_numpy(X) if on_tensor else X
        est = ToeplitzKernel(alpha=0.1, device="cuda").fit(data)
        old = pickle.loads(pickle.dumps(est))
        for name in ("device_", "_host_spectra", "_spectra"):
            del old.__dict__[name]
        old.__dict__["_device"] = "cuda"  # where the pickle kept the device
        product = old.transform(data)
        solution = old.inverse_transform(data)
    assert torch.is_tensor(product) == on_tensor
    # Computed on torch, as fitted for: the spectra were copied to the device.
    assert all(torch.is_tensor(values) for values, _ in vars(old)["_spectra"].values())
    assert vars(old)["_spectra"]
    product = product.numpy() if on_tensor else product
    solution = solution.numpy() if on_tensor else solution
    assert relative_error(product, X @ T.T) <= fft_tolerance(40)
    assert relative_error(solution @ (T + 0.1 * np.eye(40)).T, X) <= 1e-8


def test_device_policy(monkeypatch, rng):
    """ToeplitzKernel resolves device= through fasttsne.gpu's policy."""
    X = rng.standard_normal((2, 10))
    monkeypatch.setattr(fasttsne.gpu, "is_available", lambda: False)
    assert ToeplitzKernel().fit(X).device_ == "cpu"
    with sklearn.config_context(array_api_dispatch=True):
        assert ToeplitzKernel().fit(torch.from_numpy(X)).device_ == "input"
        assert ToeplitzKernel(device="cpu").fit(torch.from_numpy(X)).device_ == "cpu"
    with pytest.raises(ValueError, match="no CUDA device"):
        ToeplitzKernel(device="cuda").fit(X)
    with pytest.raises(ValueError, match="device"):
        ToeplitzKernel(device="gpu").fit(X)
    monkeypatch.setitem(sys.modules, "torch", None)  # import torch fails
    with pytest.raises(ImportError, match=r'pip install "fasttsne\[gpu\]"'):
        ToeplitzKernel(device="cuda").fit(X)


@pytest.mark.parametrize(
    "check, array_namespace, device_name, dtype_name", ARRAY_API_CHECKS
)
@pytest.mark.parametrize(
    "estimator",
    [
        ToeplitzKernel(),
        ToeplitzKernel(
            coefficients=(np.linspace(1.0, 0.1, 10), np.linspace(1.0, 0.5, 10)),
            alpha=0.5,
            preconditioner="strang",
        ),
    ],
    ids=["default", "nonsymmetric"],
)
def test_sklearn_array_api_checks(
    estimator, check, array_namespace, device_name, dtype_name
):
    """scikit-learn's array API checks, parametrised as scikit-learn's own
    tests parametrise them (namespaces and devices not installed skip)."""
    check(
        type(estimator).__name__,
        estimator,
        array_namespace,
        device_name=device_name,
        dtype_name=dtype_name,
    )
