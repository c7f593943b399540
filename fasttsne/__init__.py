"""fasttsne: fast t-SNE, randomized SVD and Toeplitz kernels for scikit-learn."""

from fasttsne._bh import BarnesHutTSNE
from fasttsne._fft import FFTInterpTSNE

__version__ = "0.1.0"

__all__ = ["BarnesHutTSNE", "FFTInterpTSNE", "__version__"]
