"""fasttsne: fast t-SNE, randomized SVD and Toeplitz kernels for scikit-learn."""

__version__ = "0.1.0"

__all__ = ["__version__"]
