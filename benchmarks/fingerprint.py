"""SHA-256 fingerprints of fasttsne's outputs, to show that a refactoring kept them.

Runs the public API only (so the same script runs before and after a move of
modules) on fixed-seed data and prints one hash per output: t-SNE fits (digits,
and a 25,000-point mixture that takes the renumbering path), ``transform`` of
new rows, ``RandomizedSVD`` dense / sparse / float32, ``ToeplitzKernel`` 1-D and
2-D products and solves. Compare two runs with ``diff``.

Examples
--------
python benchmarks/fingerprint.py > before.txt
python benchmarks/fingerprint.py --quick > after.txt   # without the 25k fits
"""

import argparse
import hashlib

import numpy as np
import scipy.sparse as sp
from sklearn.datasets import load_digits

from fasttsne import BarnesHutTSNE, FFTInterpTSNE, RandomizedSVD, ToeplitzKernel


def digest(*arrays):
    """Hex SHA-256 of the arrays' dtypes, shapes and bytes (first 16 digits)."""
    sha = hashlib.sha256()
    for array in arrays:
        array = np.ascontiguousarray(array)
        sha.update(f"{array.dtype.str}{array.shape}".encode())
        sha.update(array.tobytes())
    return sha.hexdigest()[:16]


def mixture(n_samples, seed=0, n_features=50, n_clusters=20):
    """The 20-cluster Gaussian mixture of benchmarks/bench_tsne.py."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(scale=3.0, size=(n_clusters, n_features))
    weights = rng.dirichlet(np.full(n_clusters, 5.0))
    labels = rng.choice(n_clusters, size=n_samples, p=weights)
    return centers[labels] + rng.normal(size=(n_samples, n_features))


def tsne_rows(quick):
    """Fits and transforms of both t-SNE estimators."""
    X, _ = load_digits(return_X_y=True)
    X_fit, X_new = X[:1600], X[1600:]  # above the FFT backend's direct-sum size
    for cls in (BarnesHutTSNE, FFTInterpTSNE):
        tsne = cls(random_state=0, n_jobs=2)
        Y = tsne.fit_transform(X_fit)
        yield f"{cls.__name__} digits fit", digest(Y, np.array(tsne.kl_divergence_))
        yield f"{cls.__name__} digits transform", digest(tsne.transform(X_new))
    X32 = X_fit.astype(np.float32)
    tsne = BarnesHutTSNE(random_state=0, n_jobs=2, max_iter=300).fit(X32)
    yield "BarnesHutTSNE digits float32 fit", digest(tsne.embedding_)
    tsne = BarnesHutTSNE(n_components=3, random_state=0, max_iter=300).fit(X_fit)
    yield "BarnesHutTSNE digits 3-D fit", digest(tsne.embedding_)
    tsne = FFTInterpTSNE(n_components=1, random_state=0, max_iter=300).fit(X_fit)
    yield "FFTInterpTSNE digits 1-D fit", digest(tsne.embedding_)
    if quick:
        return
    X = mixture(25_000)
    for cls in (BarnesHutTSNE, FFTInterpTSNE):
        tsne = cls(random_state=0, n_jobs=2)
        Y = tsne.fit_transform(X)
        yield f"{cls.__name__} mixture 25k fit", digest(Y)
        yield f"{cls.__name__} mixture 25k transform", digest(
            tsne.transform(mixture(200, seed=1))
        )


def svd_rows():
    """RandomizedSVD on dense float64, float32 and sparse input, PCA too."""
    rng = np.random.default_rng(0)
    A = rng.standard_normal((2000, 60)) @ rng.standard_normal((60, 400))
    A += 0.1 * rng.standard_normal(A.shape)
    S = sp.random(3000, 1500, density=0.01, format="csr", random_state=0)
    cases = {
        "dense f64": A,
        "dense f32": A.astype(np.float32),
        "sparse csr": S,
        "sparse csc": S.tocsc(),
    }
    for name, data in cases.items():
        for algorithm in ("krylov", "subspace"):
            svd = RandomizedSVD(20, algorithm=algorithm, random_state=0)
            out = svd.fit_transform(data)
            yield f"RandomizedSVD {name} {algorithm}", digest(
                out, svd.components_, svd.singular_values_
            )
    pca = RandomizedSVD(10, center=True, random_state=0)
    yield "RandomizedSVD sparse PCA", digest(pca.fit_transform(S))


def toeplitz_rows():
    """ToeplitzKernel products and solves, 1-D and 2-D."""
    rng = np.random.default_rng(0)
    X1 = rng.standard_normal((16, 3000))
    X2 = rng.standard_normal((8, 40 * 50))
    for name, X, params in (
        ("1-D", X1, {}),
        ("2-D", X2, {"grid_shape": (40, 50)}),
    ):
        for kernel in ("gaussian", "cauchy"):
            est = ToeplitzKernel(
                kernel, bandwidth=3.0, normalize=True, alpha=0.1, **params
            )
            product = est.fit_transform(X)
            yield f"ToeplitzKernel {name} {kernel} product", digest(product)
            yield f"ToeplitzKernel {name} {kernel} solve", digest(
                est.inverse_transform(product)
            )


def main(argv=None):
    """Print ``name: hash`` lines."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="skip the 25k fits")
    args = parser.parse_args(argv)
    for rows in (svd_rows(), toeplitz_rows(), tsne_rows(args.quick)):
        for name, value in rows:
            print(f"{name:45s} {value}", flush=True)


if __name__ == "__main__":
    main()
