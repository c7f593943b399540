"""
===========================================
Embedding the digits with Barnes-Hut t-SNE
===========================================

The 1,797 8x8 images of scikit-learn's digits, embedded in 2-D; the ten digits
form ten clusters. This is what ``fasttsne demo --plot digits.png`` draws, with
:func:`fasttsne.plot` choosing the palette, legend and point size.
"""

import matplotlib.pyplot as plt
from sklearn.datasets import load_digits

import fasttsne
from fasttsne import BarnesHutTSNE

X, y = load_digits(return_X_y=True)
tsne = BarnesHutTSNE(random_state=0, n_jobs=-1)
Y = tsne.fit_transform(X)
print(
    f"KL divergence {tsne.kl_divergence_:.3f} after {tsne.n_iter_} iterations, "
    f"learning rate {tsne.learning_rate_:.1f}, backend {tsne.backend_}"
)

fasttsne.plot(Y, labels=y, title="scikit-learn digits, BarnesHutTSNE")
plt.show()
