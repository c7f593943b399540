"""Array-library helpers shared by the NumPy and torch paths.

Imports neither torch nor any fasttsne module, so that the FFT core and the
estimators can tell tensors from arrays without loading the torch backends.
"""

import numpy as np
from sklearn import get_config


def is_tensor(array):
    """Whether ``array`` is a torch tensor, without importing torch."""
    return type(array).__module__.split(".")[0] == "torch" and hasattr(array, "device")


def numpy_dtype(dtype):
    """NumPy dtype of a torch floating dtype."""
    return np.dtype(str(dtype).rsplit(".", maxsplit=1)[-1])


def check_array_library(X, estimator):
    """Reject, under array API dispatch, arrays of libraries other than NumPy
    and torch.

    scikit-learn's validation hands such an array back unconverted under
    dispatch, and fasttsne's estimators compute only on NumPy arrays and torch
    tensors.

    Parameters
    ----------
    X : object
        The input of ``fit``, ``transform`` or ``inverse_transform``.
    estimator : str
        The estimator's name, for the message.

    Raises
    ------
    TypeError
        ``X`` has an ``__array_namespace__`` and is neither a NumPy array nor
        a torch tensor, and ``array_api_dispatch`` is on.
    """
    if isinstance(X, (np.ndarray, np.generic)) or is_tensor(X):
        return
    if hasattr(X, "__array_namespace__") and get_config()["array_api_dispatch"]:
        raise TypeError(
            f"{estimator} supports NumPy arrays and torch tensors under "
            f"array_api_dispatch, got {type(X).__module__.split('.')[0]}."
            f"{type(X).__name__}; convert it to one of them."
        )
