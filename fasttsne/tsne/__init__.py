"""The t-SNE product line: the two estimators and the pipeline under them.

``X -> fasttsne._neighbors (kNN) -> _affinity (P) -> _initialization (Y0) ->
_optimizer (loop) -> _gradients[backend]``; ``_base`` holds the estimator
contract shared by :class:`BarnesHutTSNE` and :class:`FFTInterpTSNE`.
"""

from fasttsne.tsne._bh import BarnesHutTSNE
from fasttsne.tsne._fft import FFTInterpTSNE

__all__ = ["BarnesHutTSNE", "FFTInterpTSNE"]
