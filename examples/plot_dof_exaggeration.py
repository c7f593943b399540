"""
================================================
Heavy tails (dof) and exaggeration, side by side
================================================

Two knobs change the balance between attraction and repulsion, and with it
the picture:

* ``dof``, the degrees of freedom of the output kernel
  ``(1 + d^2 / dof)^(-dof)``: 1 is standard t-SNE (a Cauchy kernel); smaller
  values give heavier tails, so that clusters separate further and split into
  finer sub-clusters (Kobak et al., 2019).
* ``exaggeration``, a factor on the attraction during the main phase (after
  the ``early_exaggeration`` phase): values above 1 pull neighbourhoods
  together and keep more of the global layout, towards UMAP-like pictures
  (Böhm et al., 2022).
"""

import matplotlib.pyplot as plt
from sklearn.datasets import load_digits

import fasttsne
from fasttsne import BarnesHutTSNE

X, y = load_digits(return_X_y=True)
settings = [
    {"dof": 1.0},
    {"dof": 0.6},
    {"dof": 0.3},
    {"exaggeration": 1.0},
    {"exaggeration": 2.0},
    {"exaggeration": 4.0},
]

embeddings = {}
fig, axes = plt.subplots(2, 3, figsize=(13, 8.5))
for ax, params in zip(axes.ravel(), settings):
    # dof=1 and exaggeration=1 are both the defaults: one fit draws both panels.
    key = frozenset((name, value) for name, value in params.items() if value != 1)
    if key not in embeddings:
        tsne = BarnesHutTSNE(random_state=0, n_jobs=-1, **params)
        embeddings[key] = tsne.fit_transform(X)
    fasttsne.plot(embeddings[key], y, ax=ax, legend=False)
    name, value = next(iter(params.items()))
    ax.set_title(f"{name} = {value:g}")
fig.tight_layout()
plt.show()
