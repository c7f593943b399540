"""Optional CUDA support through torch and Triton (the ``fasttsne[gpu]`` extra).

Nothing here imports torch or triton, or queries a device, at import time:
:func:`is_available` looks for a GPU driver before it imports anything, so
that ``device="auto"`` on a machine without a GPU never imports torch. The
kernels are in ``_kernels.py`` (``@triton.jit`` code only) and their torch
glue in ``_launchers.py``; ``docs/gpu.rst`` says what runs where.
"""

import glob
import importlib.util
import os

# The torch device that ``device="cuda"`` computes on. Only the interpreter
# tests change it (to "cpu", with TRITON_INTERPRET=1, through monkeypatch),
# so that the device path runs on CPU tensors; it is not a user setting.
_TORCH_DEVICE = "cuda"


def _driver_visible():
    """Whether a GPU driver exposes a device, without importing anything.

    NVIDIA's device nodes and driver directory, ROCm's ``/dev/kfd`` and WSL's
    ``/dev/dxg``; ``CUDA_VISIBLE_DEVICES`` set to nothing hides them all.
    """
    if os.environ.get("CUDA_VISIBLE_DEVICES") in ("", "-1"):
        return False
    if glob.glob("/dev/nvidia[0-9]*") or glob.glob("/proc/driver/nvidia/gpus/*"):
        return True
    return os.path.exists("/dev/kfd") or os.path.exists("/dev/dxg")


def is_available():
    """Return True when torch, triton and a CUDA device are all usable.

    Returns
    -------
    available : bool
        False on machines without the ``gpu`` extra or without a CUDA device;
        torch is imported only when a GPU driver is visible.

    Examples
    --------
    >>> from fasttsne.gpu import is_available
    >>> isinstance(is_available(), bool)
    True
    """
    if not _driver_visible():
        return False
    if any(importlib.util.find_spec(name) is None for name in ("torch", "triton")):
        return False
    try:
        import torch
        import triton  # noqa: F401  pylint: disable=unused-import
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def require():
    """Import torch and triton, for code that is about to run on CUDA.

    Returns
    -------
    torch, triton : module
        The imported packages.

    Raises
    ------
    ImportError
        When either is missing, with the ``pip install "fasttsne[gpu]"`` hint.
    """
    try:
        import torch
        import triton
    except ImportError as exc:
        raise ImportError(
            'device="cuda" needs torch and triton: pip install "fasttsne[gpu]"'
        ) from exc
    return torch, triton
