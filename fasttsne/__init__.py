"""fasttsne: fast t-SNE, randomized SVD and Toeplitz kernels for scikit-learn."""

from fasttsne.linalg import RandomizedSVD, ToeplitzKernel, randomized_svd
from fasttsne.tsne import BarnesHutTSNE, FFTInterpTSNE

__version__ = "0.1.0"

__all__ = [
    "BarnesHutTSNE",
    "FFTInterpTSNE",
    "RandomizedSVD",
    "ToeplitzKernel",
    "randomized_svd",
    "__version__",
]
