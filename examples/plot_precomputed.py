"""
==========================================
t-SNE on precomputed (geodesic) distances
==========================================

With ``metric="precomputed"``, ``X`` is a square matrix of distances and any
dissimilarity can be embedded. Here: the swiss roll, a 2-D sheet rolled up in
3-D. Euclidean distances cut across the roll; geodesic distances (shortest
paths along a k-nearest-neighbour graph, as in Isomap) follow the sheet, and
t-SNE on them unrolls it. The colour is the position along the roll, a
continuous label, which :func:`fasttsne.plot` draws with a colour bar.

Precomputed distances are used as given (only ``metric="euclidean"`` is
squared, scikit-learn's convention), and ``init="pca"`` needs features, so
the spectral initialisation is used.
"""

import matplotlib.pyplot as plt
from scipy.sparse.csgraph import shortest_path
from sklearn.datasets import make_swiss_roll
from sklearn.metrics import pairwise_distances
from sklearn.neighbors import kneighbors_graph

import fasttsne
from fasttsne import BarnesHutTSNE

X, position = make_swiss_roll(n_samples=1500, noise=0.3, random_state=0)
graph = kneighbors_graph(X, n_neighbors=10, mode="distance")
geodesic = shortest_path(graph, directed=False)
euclidean = pairwise_distances(X)

fig, axes = plt.subplots(1, 2, figsize=(12, 5))
for ax, (name, D) in zip(axes, [("euclidean", euclidean), ("geodesic", geodesic)]):
    tsne = BarnesHutTSNE(metric="precomputed", init="spectral", random_state=0)
    Y = tsne.fit_transform(D)
    fasttsne.plot(Y, position, ax=ax, title=f"{name} distances")
fig.tight_layout()
plt.show()

# %%
# New points are placed with their distances to the training points, one
# row per new point: here the training rows themselves, which map to their
# own positions.
print(tsne.transform(geodesic[:3])[:, :2])
print(tsne.embedding_[:3])
