"""
=================================================
FFTInterpTSNE on a large data set, with progress
=================================================

``FFTInterpTSNE`` sums the repulsive forces on an interpolation grid by FFT
(FIt-SNE's method), in O(N) per iteration, where Barnes-Hut takes
O(N log N): from a few tens of thousands of points on it is the faster of the
two (the user guide has the measured crossover). Both take the same
parameters.

The data: 30,000 points in 50 dimensions, 8 groups of 5 sub-clusters each.
The fit's progress is routed through :mod:`logging` to this page's output
(in a terminal, ``verbose=1`` prints the same lines to stderr, with a
progress bar).
"""

import logging
import sys

import matplotlib.pyplot as plt
import numpy as np

import fasttsne
from fasttsne import FFTInterpTSNE

rng = np.random.default_rng(0)
groups = rng.normal(scale=6.0, size=(8, 50))
centers = np.repeat(groups, 5, axis=0) + rng.normal(scale=2.5, size=(40, 50))
cluster = rng.integers(0, 40, size=30_000)
X = centers[cluster] + rng.normal(size=(30_000, 50))
group = cluster // 5

logger = logging.getLogger("fasttsne")
logger.setLevel(logging.INFO)
handler = logging.StreamHandler(sys.stdout)
logger.addHandler(handler)

tsne = FFTInterpTSNE(n_jobs=-1, random_state=0)
Y = tsne.fit_transform(X)
logger.removeHandler(handler)
logger.setLevel(logging.NOTSET)

fasttsne.plot(Y, labels=group, title="30,000 points, FFTInterpTSNE")
plt.show()
