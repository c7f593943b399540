"""``fasttsne.gpu.is_available``: the switch ``device="auto"`` reads.

Its own module: the device fixtures of the other modules replace it for
their whole scope.
"""

import pytest

import fasttsne.gpu
from tests.gpu.conftest import torch


@pytest.mark.parametrize(
    "capability, error, expected",
    [
        ((9, 0), None, True),
        ((6, 1), None, False),
        ((9, 0), RuntimeError("CUDA driver initialization failed"), False),
        ((9, 0), OSError("libcudart.so: cannot open shared object file"), False),
    ],
)
def test_is_available_is_false_on_an_unusable_device(
    monkeypatch, capability, error, expected
):
    """An old GPU or a CUDA install that fails to load leaves the CPU default."""
    if torch is None:
        pytest.skip('needs torch and triton: pip install "fasttsne[gpu]"')

    def cuda_available():
        if error is not None:
            raise error
        return True

    monkeypatch.setattr(fasttsne.gpu, "_driver_visible", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_available", cuda_available)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda: capability)
    assert fasttsne.gpu.is_available() is expected
