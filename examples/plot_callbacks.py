"""
===================================================
Watching the optimisation with callbacks
===================================================

``callbacks`` are called as ``callback(iteration, kl_divergence, embedding)``
every ``callbacks_every_iters`` iterations; returning True stops the fit. Here
one records frames: the early-exaggeration phase (the first 250 iterations)
gathers the clusters, the main phase spreads them out.
"""

import matplotlib.pyplot as plt
from sklearn.datasets import load_digits

import fasttsne
from fasttsne import BarnesHutTSNE

X, y = load_digits(return_X_y=True)
frames = {}


def record(it, kl, embedding):
    """Keep a copy of the embedding and its KL divergence."""
    frames[it] = (kl, embedding.copy())
    return False  # True would stop the optimisation here


tsne = BarnesHutTSNE(
    random_state=0, n_jobs=-1, callbacks=record, callbacks_every_iters=50
)
tsne.fit(X)

shown = [50, 150, 250, 300, 400, 750]
fig, axes = plt.subplots(2, 3, figsize=(12, 8))
for ax, iteration in zip(axes.ravel(), shown):
    kl_divergence, frame = frames[iteration]
    fasttsne.plot(frame, y, ax=ax, legend=False)
    ax.set_title(f"iteration {iteration}, KL {kl_divergence:.2f}")
fig.tight_layout()

# %%
# The KL divergence at every call: it jumps when the exaggeration ends, as the
# objective itself changes.
iterations = sorted(frames)
fig, ax = plt.subplots(figsize=(6, 3.5))
ax.plot(iterations, [frames[i][0] for i in iterations], marker="o")
ax.axvline(250, color="grey", linestyle=":")
ax.set_xlabel("iteration")
ax.set_ylabel("KL divergence")
fig.tight_layout()
plt.show()

# %%
# For an animation, feed the frames to
# :class:`matplotlib.animation.FuncAnimation` and save it with
# ``anim.save("tsne.gif")``.
