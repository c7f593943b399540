"""``device=`` and array API dispatch of ``randomized_svd`` and ``RandomizedSVD``.

The device path runs here on CPU tensors: ``fasttsne.gpu._TORCH_DEVICE`` is
pointed at the CPU and ``is_available`` made to say yes, as the GPU tests do.
Oracles: the NumPy path (tested against LAPACK elsewhere).
"""

import sys

import numpy as np
import pytest
import scipy.sparse as sp
import sklearn
from numpy.testing import assert_allclose, assert_array_equal

import fasttsne.gpu
from fasttsne import RandomizedSVD, randomized_svd
from tests.linalg._array_api_checks import ARRAY_API_CHECKS
from tests._oracles import power_law

torch = pytest.importorskip("torch")

pytestmark = pytest.mark.filterwarnings("ignore:Sparse CSR tensor support:UserWarning")

ATTRIBUTES = (
    "components_",
    "singular_values_",
    "explained_variance_",
    "explained_variance_ratio_",
    "mean_",
)


def _tensor(A, layout):
    tensor = torch.from_numpy(np.ascontiguousarray(A))
    return tensor.to_sparse_csr() if layout == "csr" else tensor


def test_shared_device_policy(monkeypatch):
    """The policy of fasttsne.gpu: cpu stays, auto follows availability, cuda
    names what is missing; randomized_svd and RandomizedSVD use it."""
    assert fasttsne.gpu.resolve_device("cpu") == "cpu"
    monkeypatch.setattr(fasttsne.gpu, "is_available", lambda: False)
    assert fasttsne.gpu.resolve_device("auto") == "cpu"
    with pytest.raises(ValueError, match="no CUDA device"):
        fasttsne.gpu.resolve_device("cuda")
    with pytest.raises(ValueError, match="no CUDA device"):
        randomized_svd(np.eye(5), 2, device="cuda")
    with pytest.raises(ValueError, match="no CUDA device"):
        RandomizedSVD(2, device="cuda").fit(np.eye(5))
    with pytest.raises(ValueError, match="device"):
        fasttsne.gpu.resolve_device("gpu")
    monkeypatch.setattr(fasttsne.gpu, "is_available", lambda: True)
    assert fasttsne.gpu.resolve_device("auto") == "cuda"
    monkeypatch.setitem(sys.modules, "torch", None)  # import torch fails
    with pytest.raises(ImportError, match=r'pip install "fasttsne\[gpu\]"'):
        fasttsne.gpu.resolve_device("cuda")
    with pytest.raises(ImportError, match=r'pip install "fasttsne\[gpu\]"'):
        RandomizedSVD(2, device="cuda").fit(np.eye(5))


@pytest.mark.usefixtures("cuda_on_cpu")
@pytest.mark.parametrize("container", [np.asarray, sp.csr_matrix])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_numpy_input_on_the_device_comes_back_as_numpy(rng, container, dtype):
    """NumPy/SciPy input with device="cuda" computes with torch and returns
    NumPy arrays of its dtype, equal to the NumPy path's to working precision."""
    A = power_law(rng, 300, 120).astype(dtype)
    A[rng.random(A.shape) < 0.3] = 0
    tol = 1e-4 if dtype == np.float32 else 1e-10
    U, S, Vt = randomized_svd(container(A), 6, random_state=0, device="cpu")
    Ud, Sd, Vtd = randomized_svd(container(A), 6, random_state=0, device="cuda")
    for result in (Ud, Sd, Vtd):
        assert isinstance(result, np.ndarray) and result.dtype == dtype
    assert_allclose(Sd, S, rtol=tol)
    assert_allclose(Ud[:, :3], U[:, :3], atol=100 * tol)
    for center in (False, True):
        ref = RandomizedSVD(6, center=center, random_state=0, device="cpu")
        est = RandomizedSVD(6, center=center, random_state=0, device="cuda")
        X_ref, X_new = ref.fit_transform(container(A)), est.fit_transform(container(A))
        assert isinstance(X_new, np.ndarray) and X_new.dtype == dtype
        scale = np.abs(X_ref).max()
        assert_allclose(X_new[:, :3], X_ref[:, :3], atol=100 * tol * scale)
        for name in ATTRIBUTES:
            expected, actual = getattr(ref, name), getattr(est, name)
            if expected is None:
                assert actual is None
                continue
            assert isinstance(actual, np.ndarray) and actual.dtype == dtype
            assert_allclose(actual[:3], expected[:3], rtol=tol, atol=tol)
        X_est = est.transform(container(A))
        assert isinstance(X_est, np.ndarray)
        assert_allclose(
            X_est[:, :3], ref.transform(container(A))[:, :3], atol=100 * tol * scale
        )


@pytest.mark.parametrize("layout", ["dense", "csr"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("center", [False, True])
@pytest.mark.parametrize("algorithm", ["krylov", "subspace"])
def test_array_api_round_trip(rng, layout, dtype, center, algorithm):
    """Under array_api_dispatch torch in is torch out: every fitted array
    attribute and output a tensor of the input's dtype and device, with the
    NumPy path's values; transform and inverse_transform likewise."""
    A = power_law(rng, 200, 60).astype(dtype) + 1
    if layout == "csr":
        A[rng.random(A.shape) < 0.5] = 0
    container = sp.csr_matrix if layout == "csr" else np.asarray
    options = {"center": center, "algorithm": algorithm, "random_state": 0}
    ref = RandomizedSVD(5, **options).fit(container(A))
    X_ref = ref.transform(container(A))
    torch_dtype = getattr(torch, np.dtype(dtype).name)
    tol = 1e-4 if dtype == np.float32 else 1e-10
    with sklearn.config_context(array_api_dispatch=True):
        X = _tensor(A, layout)
        est = RandomizedSVD(5, **options)
        X_fit = est.fit_transform(X)
        X_new = est.transform(X)
        X_back = est.inverse_transform(X_new)
        U, S, Vt = randomized_svd(X, 5, random_state=0)
    for result in (X_fit, X_new, X_back, U, S, Vt):
        assert torch.is_tensor(result) and result.dtype == torch_dtype
        assert result.device == X.device and result.layout == torch.strided
    assert X_back.shape == A.shape
    scale = np.abs(X_ref).max()
    assert_allclose(X_new.numpy(), X_ref, atol=100 * tol * scale)
    assert_allclose(X_fit.numpy(), X_ref, atol=100 * tol * scale)
    for name in ATTRIBUTES:
        expected, actual = getattr(ref, name), getattr(est, name)
        if expected is None:
            assert actual is None
            continue
        assert torch.is_tensor(actual) and actual.dtype == torch_dtype
        assert_allclose(
            actual.numpy(), expected, rtol=tol, atol=tol * np.abs(expected).max()
        )
    assert est.n_features_in_ == A.shape[1]
    assert isinstance(est.n_iter_, int)


def test_array_api_mixing_libraries_is_an_error(rng):
    """A model fitted on tensors does not transform NumPy arrays (and back)."""
    A = rng.standard_normal((50, 10))
    with sklearn.config_context(array_api_dispatch=True):
        est = RandomizedSVD(3, random_state=0).fit(torch.from_numpy(A))
        with pytest.raises(TypeError, match="same array library"):
            est.transform(A)
    with pytest.raises(TypeError, match="same array library"):
        est.transform(A)


def test_tensor_validation(rng):
    """Tensors are validated as check_array validates arrays."""
    A = torch.from_numpy(rng.standard_normal((30, 8)))
    A[3, 2] = float("nan")
    with sklearn.config_context(array_api_dispatch=True):
        with pytest.raises(ValueError, match="NaN or infinity"):
            RandomizedSVD(2).fit(A)
        with pytest.raises(ValueError, match="2-D"):
            randomized_svd(A[0], 2)
        with pytest.raises(ValueError, match="n_components=9"):
            randomized_svd(torch.ones((30, 8)), 9)
        ints = torch.ones((30, 8), dtype=torch.int64)
        assert RandomizedSVD(2).fit(ints).components_.dtype == torch.float64


def test_torch_without_dispatch_is_numpy(rng):
    """Without array_api_dispatch, a CPU tensor is converted as scikit-learn
    converts it: NumPy results, bitwise those of the ndarray."""
    A = rng.standard_normal((60, 20))
    expected = randomized_svd(A, 4, random_state=0)
    actual = randomized_svd(torch.from_numpy(A), 4, random_state=0)
    for first, second in zip(expected, actual):
        assert isinstance(second, np.ndarray)
        assert_array_equal(first, second)


@pytest.mark.parametrize(
    "check, array_namespace, device_name, dtype_name", ARRAY_API_CHECKS
)
@pytest.mark.parametrize(
    "estimator",
    [
        RandomizedSVD(random_state=0),
        RandomizedSVD(3, algorithm="subspace", center=True, random_state=0),
    ],
    ids=["default", "subspace-centred"],
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


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_torch_products_astype_casts_a_copy(rng, dtype):
    """``TorchProducts.astype`` (the cast of the final Rayleigh-Ritz step) gives
    a copy in the NumPy dtype asked for, with the values rounded once."""
    from fasttsne.linalg._svd._torch import (  # pylint: disable=C0415
        TorchProducts,
    )

    Z = torch.from_numpy(rng.standard_normal((50, 4)))
    cast = TorchProducts("cpu").astype(Z, dtype)
    assert cast.dtype == (torch.float32 if dtype == np.float32 else torch.float64)
    assert_array_equal(cast.numpy(), Z.numpy().astype(dtype))
    cast[0, 0] = 7.0
    assert Z[0, 0] != 7.0
