"""Randomized truncated SVD: the solvers, their compute interfaces and the estimator."""

from fasttsne.linalg._svd._estimator import RandomizedSVD
from fasttsne.linalg._svd._randomized import randomized_svd

__all__ = ["RandomizedSVD", "randomized_svd"]
