"""
==========================
Choosing the perplexity
==========================

The perplexity is the effective number of neighbours each point attends to:
each point's Gaussian bandwidth is calibrated so that its distribution over
its ``3 * perplexity`` nearest neighbours has this perplexity. Small values
show local structure (and split clusters into fragments); large values
emphasise larger-scale structure and cost more (more neighbours to find and
attract). Values between 10 and 50 suit most data; 30 is the default.
"""

import matplotlib.pyplot as plt
from sklearn.datasets import load_digits

import fasttsne
from fasttsne import BarnesHutTSNE

X, y = load_digits(return_X_y=True)

fig, axes = plt.subplots(1, 3, figsize=(13, 4.5))
for ax, perplexity in zip(axes, [5, 30, 80]):
    tsne = BarnesHutTSNE(perplexity=perplexity, random_state=0, n_jobs=-1)
    Y = tsne.fit_transform(X)
    fasttsne.plot(Y, y, ax=ax, legend=perplexity == 80)
    ax.set_title(f"perplexity {perplexity}: KL {tsne.kl_divergence_:.2f}")
    print(f"perplexity {perplexity:3d}: KL divergence {tsne.kl_divergence_:.3f}")
fig.tight_layout()
plt.show()

# %%
# KL divergences are not comparable across perplexities (each perplexity
# defines its own P); compare pictures, or a downstream score such as the
# kNN accuracy of :ref:`sphx_glr_auto_examples_plot_pipeline_grid_search.py`.
