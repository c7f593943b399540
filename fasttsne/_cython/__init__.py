"""Cython kernels of fasttsne: quad tree, interpolation, perplexity calibration."""
