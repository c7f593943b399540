"""fasttsne: fast t-SNE, randomized SVD and Toeplitz kernels for scikit-learn."""

from fasttsne._bh import BarnesHutTSNE
from fasttsne._fft import FFTInterpTSNE
from fasttsne._svd import RandomizedSVD, randomized_svd
from fasttsne._toeplitz import ToeplitzKernel

__version__ = "0.1.0"

__all__ = [
    "BarnesHutTSNE",
    "FFTInterpTSNE",
    "RandomizedSVD",
    "ToeplitzKernel",
    "randomized_svd",
    "__version__",
]
