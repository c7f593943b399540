"""Fixtures shared by the linear-algebra tests."""

import pytest
from threadpoolctl import threadpool_limits

import fasttsne.gpu


@pytest.fixture(scope="module")
def one_blas_thread():
    """Hold the BLAS to one thread for a module of small SVD problems.

    The test matrices are small: BLAS threads would only add synchronisation,
    which on a shared, oversubscribed machine costs far more in spinning.
    """
    with threadpool_limits(1):
        yield


@pytest.fixture(name="cuda_on_cpu")
def fixture_cuda_on_cpu(monkeypatch):
    """``device="cuda"`` computes on CPU tensors (the device path of
    ``RandomizedSVD`` and ``ToeplitzKernel`` without a GPU)."""
    monkeypatch.setattr(fasttsne.gpu, "_TORCH_DEVICE", "cpu")
    monkeypatch.setattr(fasttsne.gpu, "is_available", lambda: True)


@pytest.fixture(scope="module")
def one_torch_thread():
    """Hold torch's CPU thread pool to one thread for a module of small
    products: on a shared, oversubscribed machine its OpenMP threads spin, and
    small FFTs take orders of magnitude longer (docs/toeplitz.rst)."""
    torch = pytest.importorskip("torch")
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
