"""Fast linear algebra, usable without t-SNE.

Randomized truncated SVD (:class:`RandomizedSVD`, :func:`randomized_svd`) and
Toeplitz kernel products and solves (:class:`ToeplitzKernel`), both over one
FFT core (``_circulant``) and, for the SVD, one operator interface.
"""

from fasttsne.linalg._svd import RandomizedSVD, randomized_svd
from fasttsne.linalg._toeplitz import ToeplitzKernel

__all__ = ["RandomizedSVD", "ToeplitzKernel", "randomized_svd"]
