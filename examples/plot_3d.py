"""
==========================
A 3-D embedding
==========================

``BarnesHutTSNE`` embeds in 1, 2 or 3 dimensions (an octree in 3-D);
``FFTInterpTSNE`` in 1 or 2. :func:`fasttsne.plot` draws a 3-D embedding on
3-D axes, and a 1-D one as a strip plot, one strip per class.
"""

import matplotlib.pyplot as plt
from sklearn.datasets import load_digits

import fasttsne
from fasttsne import BarnesHutTSNE, FFTInterpTSNE

X, y = load_digits(return_X_y=True)
Y3 = BarnesHutTSNE(n_components=3, random_state=0, n_jobs=-1).fit_transform(X)
Y1 = FFTInterpTSNE(n_components=1, random_state=0, n_jobs=-1).fit_transform(X)

fig = plt.figure(figsize=(12, 5.5))
ax3 = fig.add_subplot(1, 2, 1, projection="3d")
fasttsne.plot(Y3, y, ax=ax3, legend=False, title="3-D, BarnesHutTSNE")
ax1 = fig.add_subplot(1, 2, 2)
fasttsne.plot(Y1, y, ax=ax1, title="1-D, FFTInterpTSNE")
fig.tight_layout()
plt.show()
