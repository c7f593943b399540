"""fasttsne: fast t-SNE, randomized SVD and Toeplitz kernels for scikit-learn."""

from fasttsne._toeplitz import ToeplitzKernel

__version__ = "0.1.0"

__all__ = ["ToeplitzKernel", "__version__"]
