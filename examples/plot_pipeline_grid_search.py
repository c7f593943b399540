"""
=====================================================
t-SNE in a pipeline, tuned by cross-validated search
=====================================================

``BarnesHutTSNE.transform`` places new points into a fitted embedding, so the
embedding can feed a classifier inside a :class:`~sklearn.pipeline.Pipeline`
and its perplexity can be tuned with :class:`~sklearn.model_selection.GridSearchCV`.
Held-out digits are embedded against the frozen training embedding.
"""

import matplotlib.pyplot as plt
from sklearn.datasets import load_digits
from sklearn.model_selection import GridSearchCV, train_test_split
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import Pipeline

from fasttsne import BarnesHutTSNE

X, y = load_digits(return_X_y=True)
X_train, X_test, y_train, y_test = train_test_split(
    X, y, test_size=0.25, random_state=0
)

pipe = Pipeline(
    [
        ("tsne", BarnesHutTSNE(random_state=0, n_jobs=-1)),
        ("knn", KNeighborsClassifier(n_neighbors=10)),
    ]
)
search = GridSearchCV(pipe, {"tsne__perplexity": [10, 30]}, cv=2)
search.fit(X_train, y_train)
print(f"best perplexity: {search.best_params_['tsne__perplexity']}")
print(f"cross-validated accuracy: {search.best_score_:.3f}")
print(f"held-out accuracy: {search.score(X_test, y_test):.3f}")

tsne = search.best_estimator_.named_steps["tsne"]
Y_train, Y_test = tsne.embedding_, tsne.transform(X_test)
fig, ax = plt.subplots(figsize=(7, 6))
ax.scatter(*Y_train.T, c=y_train, cmap="tab10", s=4, alpha=0.3)
ax.scatter(*Y_test.T, c=y_test, cmap="tab10", s=18, marker="x")
ax.set_title("Held-out digits (crosses) placed into the fitted embedding (dots)")
ax.set_xticks([])
ax.set_yticks([])
plt.show()
