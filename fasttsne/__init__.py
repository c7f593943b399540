"""fasttsne: fast t-SNE, randomized SVD and Toeplitz kernels for scikit-learn.

The public names are imported on first use (PEP 562), so that ``import
fasttsne`` and the command line's ``--help`` load neither scikit-learn nor
the compiled kernels.
"""

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # what linters and IDEs resolve the lazy names to
    from fasttsne._plot import plot
    from fasttsne.linalg import RandomizedSVD, ToeplitzKernel, randomized_svd
    from fasttsne.tsne import BarnesHutTSNE, FFTInterpTSNE

__version__ = "0.1.0"

_PUBLIC = {
    "BarnesHutTSNE": "fasttsne.tsne",
    "FFTInterpTSNE": "fasttsne.tsne",
    "RandomizedSVD": "fasttsne.linalg",
    "ToeplitzKernel": "fasttsne.linalg",
    "randomized_svd": "fasttsne.linalg",
    "plot": "fasttsne._plot",
}

__all__ = [*_PUBLIC, "__version__"]


def __getattr__(name):
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module 'fasttsne' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted({*globals(), *__all__})
