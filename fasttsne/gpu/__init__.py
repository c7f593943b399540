"""Optional CUDA support through torch and Triton (the ``fasttsne[gpu]`` extra).

Nothing here imports torch or triton, or queries a device, at import time.
"""


def is_available():
    """Return True when torch, triton and a CUDA device are all usable.

    Returns
    -------
    available : bool
        False on machines without the ``gpu`` extra or without a CUDA device.

    Examples
    --------
    >>> from fasttsne.gpu import is_available
    >>> isinstance(is_available(), bool)
    True
    """
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
