"""
===========================================
Embedding the digits with Barnes-Hut t-SNE
===========================================

The 1,797 8x8 images of scikit-learn's digits, embedded in 2-D; the ten digits
form ten clusters. This is what ``fasttsne demo --plot digits.png`` draws.
"""

import matplotlib.pyplot as plt
from sklearn.datasets import load_digits

from fasttsne import BarnesHutTSNE

X, y = load_digits(return_X_y=True)
tsne = BarnesHutTSNE(random_state=0, n_jobs=-1, verbose=1)
Y = tsne.fit_transform(X)
print(f"KL divergence {tsne.kl_divergence_:.3f} after {tsne.n_iter_} iterations")

fig, ax = plt.subplots(figsize=(7, 7))
scatter = ax.scatter(*Y.T, c=y, cmap="tab10", s=5)
ax.legend(*scatter.legend_elements(), title="digit", fontsize=8)
fig.savefig("digits.png", dpi=120)
