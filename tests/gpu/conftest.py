"""Fixtures of the device-path tests: a real GPU, or CPU tensors interpreted.

Without a GPU, the root ``conftest.py`` sets ``TRITON_INTERPRET=1`` and the
``device`` fixtures map ``device="cuda"`` to torch's CPU device through
``fasttsne.gpu._TORCH_DEVICE`` (a test-only setting), so that the estimators,
the backend and the kernels run unchanged, interpreted. With a GPU they run on
it. Without torch and triton every test here skips.
"""

import contextlib
import os

import pytest

import fasttsne.gpu

try:
    import torch
    import triton  # noqa: F401  pylint: disable=unused-import
except ImportError:  # without the gpu extra, every test here skips
    torch = None

INTERPRETING = os.environ.get("TRITON_INTERPRET") == "1"


@contextlib.contextmanager
def _device_path():
    """The torch device that ``device="cuda"`` computes on, within the block."""
    if torch is None:
        pytest.skip('needs torch and triton: pip install "fasttsne[gpu]"')
    if INTERPRETING:
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(fasttsne.gpu, "_TORCH_DEVICE", "cpu")
            patch.setattr(fasttsne.gpu, "is_available", lambda: True)
            yield torch.device("cpu")
        return
    if not fasttsne.gpu.is_available():
        pytest.skip("no CUDA device, and TRITON_INTERPRET is not set")
    yield torch.device("cuda")


@pytest.fixture
def device():
    """The torch device of the device path, for one test."""
    with _device_path() as torch_device:
        yield torch_device


@pytest.fixture(scope="module")
def module_device():
    """The same for a module's fixtures (fits shared by several tests)."""
    with _device_path() as torch_device:
        yield torch_device
