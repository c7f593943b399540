"""fasttsne: fast t-SNE, randomized SVD and Toeplitz kernels for scikit-learn."""

from fasttsne._svd import RandomizedSVD, randomized_svd

__version__ = "0.1.0"

__all__ = ["RandomizedSVD", "__version__", "randomized_svd"]
