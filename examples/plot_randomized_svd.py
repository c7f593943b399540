"""
========================================================
Randomized SVD: block Krylov against subspace iteration
========================================================

Randomized SVD samples the range of a matrix with a few products with random
vectors. Subspace (power) iteration, the algorithm of scikit-learn and fbpca,
keeps only the last block ``(A A^T)^q A Omega``; block Krylov iteration keeps
every block and takes the best approximation from all of them. Both cost the same
products with ``A``; the difference shows when the spectrum has no gap after the
``k``-th singular value, where powers converge slowly and Krylov polynomials fast.

This example compares, for ``k = 20``, the worst relative error of the top
singular values against the number of products with ``A``, on a matrix with a
decaying spectrum and on a sparse matrix with a flat one.
"""

# %%
import time

import matplotlib.pyplot as plt
import numpy as np
import scipy.sparse as sp
from sklearn.utils.extmath import randomized_svd as sklearn_randomized_svd

from fasttsne import RandomizedSVD, randomized_svd

rng = np.random.default_rng(0)
k = 20

# Decaying spectrum: rank-60 signal plus noise.
U = np.linalg.qr(rng.standard_normal((3000, 60)))[0]
V = np.linalg.qr(rng.standard_normal((600, 60)))[0]
decaying = (U * np.exp(-np.arange(60) / 10)) @ V.T
decaying += 1e-3 * rng.standard_normal(decaying.shape)

# Flat spectrum: random sparse matrix (a Marchenko-Pastur bulk).
flat = sp.random(3000, 600, density=0.02, format="csr", random_state=0)

matrices = {"decaying spectrum (dense)": decaying, "flat spectrum (sparse)": flat}

# %%
# Error against the number of products with A (or A^T)
# -----------------------------------------------------
# ``n_iter = q`` counts power iterations, as in scikit-learn. Subspace iteration
# then costs ``2 q + 2`` products of ``k + 10`` columns (the last for
# ``Q^T A``); block Krylov runs ``q + 1`` blocks after the first (a space that
# contains the subspace-iteration one), here of ``k`` columns: ``2 q + 3``
# products (its Rayleigh-Ritz step reuses them).

fig, axes = plt.subplots(1, 2, figsize=(11, 4), layout="constrained")
for ax, (title, A) in zip(axes, matrices.items()):
    dense = A.toarray() if sp.issparse(A) else A
    exact = np.linalg.svd(dense, compute_uv=False)[:k]
    for algorithm, marker in [("subspace", "o"), ("krylov", "s")]:
        columns, errors = [], []
        for n_iter in range(1, 9):
            krylov = algorithm == "krylov"
            S = randomized_svd(
                A,
                k,
                algorithm=algorithm,
                n_iter=n_iter,
                block_size=k if krylov else None,
                tol=0,
                random_state=0,
            )[1]
            width = k if krylov else k + 10
            n_products = 2 * n_iter + (3 if krylov else 2)
            columns.append(n_products * width)
            errors.append(np.max(np.abs(S - exact) / exact))
        ax.semilogy(columns, errors, marker=marker, label=algorithm)
    S = sklearn_randomized_svd(A, k, random_state=0)[1]
    ax.semilogy(
        [16 * (k + 10)],
        [np.max(np.abs(S - exact) / exact)],
        "k*",
        markersize=12,
        label="scikit-learn default",
    )
    default = RandomizedSVD(k, random_state=0).fit(A)  # blocks of k columns here
    ax.semilogy(
        [(2 * default.n_iter_ + 1) * k],
        [np.max(np.abs(default.singular_values_ - exact) / exact)],
        "r^",
        markersize=10,
        label="fasttsne default",
    )
    ax.set_title(title)
    ax.set_xlabel("matrix-vector products (columns)")
    ax.set_ylabel(f"worst relative error of s_1..s_{k}")
    ax.legend()
plt.show()

# %%
# As a transformer
# ----------------
# ``RandomizedSVD`` is a drop-in for ``TruncatedSVD``; ``center=True`` makes it
# PCA, with sparse input centred implicitly (never densified).

start = time.perf_counter()
svd = RandomizedSVD(n_components=k, center=True, random_state=0).fit(flat)
print(f"fit in {time.perf_counter() - start:.3f} s with {svd.algorithm_!r}")
print("explained variance ratio of the first 5:", svd.explained_variance_ratio_[:5])
print("transformed shape:", svd.transform(flat).shape)
