"""Time and accuracy of the Barnes-Hut t-SNE gradient: fasttsne, openTSNE, sklearn.

Run from the repository root after building in place::

    python benchmarks/bench_bh_gradient.py                  # N = 20,000, 2 threads
    python benchmarks/bench_bh_gradient.py --n 5000 --repeats 5

The embedding is shaped like t-SNE output in the middle of an optimisation: a
mixture of 20 Gaussian clusters of unequal sizes and widths, rescaled to a span
of 80. P comes from the 90 exact nearest neighbours (perplexity 30) of a
50-dimensional mixture with the same cluster labels, calibrated and symmetrised
by scikit-learn's ``_joint_probabilities_nn``, as ``sklearn.manifold.TSNE`` does.

Timed per call, all at the same ``--angle`` and ``--threads``, interleaved, with
medians over ``--repeats`` of the wall-clock time and of the CPU time summed
over threads (the latter is less sensitive to other jobs on a shared machine):

* repulsion only: ``fasttsne._cython._quadtree.bh_repulsion`` against openTSNE's
  tree build plus ``openTSNE._tsne.estimate_negative_gradient_bh``;
* whole gradient (attraction + repulsion + tree): ``BarnesHutGradient`` against
  openTSNE (``QuadTree`` + ``estimate_negative_gradient_bh`` +
  ``estimate_positive_gradient_nn``, as ``openTSNE.tsne.kl_divergence_bh`` calls
  them) and scikit-learn's ``sklearn.manifold._barnes_hut_tsne.gradient``
  (float32, builds its tree inside).

Accuracy: relative 2-norm error of the normalised repulsion ``F_i / Z`` (the
part of the gradient that Barnes-Hut approximates) on ``--subset`` random rows,
against exact sums over all N points, and the relative error of Z.
"""

import argparse
import json
import time
from pathlib import Path

import numpy as np

from fasttsne._cython._quadtree import _Workspace, bh_repulsion
from fasttsne.tsne._gradients._bh import BarnesHutGradient


def make_embedding(rng, n_samples, n_clusters=20, span=80.0):
    """A 2-D Gaussian mixture with unequal cluster sizes and widths, given span."""
    sizes = rng.dirichlet(np.full(n_clusters, 2.0))
    labels = rng.choice(n_clusters, size=n_samples, p=sizes)
    centres = rng.uniform(-1.0, 1.0, size=(n_clusters, 2))
    widths = rng.uniform(0.02, 0.08, size=n_clusters)
    Y = centres[labels] + rng.normal(size=(n_samples, 2)) * widths[labels, None]
    Y *= span / np.ptp(Y, axis=0).max()
    return np.ascontiguousarray(Y - Y.mean(axis=0)), labels


def make_affinities(rng, labels, perplexity=30.0, n_features=50, n_threads=2):
    """Symmetric P (CSR, sums to 1) from exact kNN of a labelled mixture."""
    from sklearn.manifold._t_sne import _joint_probabilities_nn
    from sklearn.neighbors import NearestNeighbors

    n_clusters = labels.max() + 1
    centres = rng.normal(size=(n_clusters, n_features)) * 4.0
    X = centres[labels] + rng.normal(size=(labels.size, n_features))
    n_neighbors = min(labels.size - 1, int(3.0 * perplexity + 1))
    knn = NearestNeighbors(n_neighbors=n_neighbors, n_jobs=n_threads).fit(X)
    distances = knn.kneighbors_graph(mode="distance")
    distances.data **= 2
    P = _joint_probabilities_nn(distances, perplexity, 0).tocsr()
    P.sort_indices()
    return P


def exact_rows(Y, rows, chunk=500):
    """Exact unnormalised repulsion ``sum_{j != i} w_ij^2 (y_i - y_j)`` of rows."""
    out = np.empty((rows.size, Y.shape[1]))
    for start in range(0, rows.size, chunk):
        idx = rows[start : start + chunk]
        diff = Y[idx, None, :] - Y[None, :, :]
        w = 1.0 / (1.0 + np.einsum("ijk,ijk->ij", diff, diff))
        w[np.arange(idx.size), idx] = 0.0
        out[start : start + chunk] = np.einsum("ij,ijk->ik", w * w, diff)
    return out


def exact_z(Y, chunk=1000):
    """Exact ``Z = sum_{i != j} w_ij`` by blocks."""
    sq = np.einsum("ij,ij->i", Y, Y)
    total = 0.0
    for start in range(0, Y.shape[0], chunk):
        D = sq[start : start + chunk, None] + sq[None, :]
        D -= 2.0 * Y[start : start + chunk] @ Y.T
        np.maximum(D, 0.0, out=D)
        total += np.sum(1.0 / (1.0 + D))
    return total - Y.shape[0]


def runners(Y, P, angle, n_threads):
    """Name -> zero-argument callable for every timed variant."""
    from openTSNE import _tsne
    from openTSNE.quad_tree import QuadTree  # pylint: disable=no-name-in-module
    from sklearn.manifold import _barnes_hut_tsne

    rep = np.empty_like(Y)
    workspace = _Workspace()  # kept between calls, as the backend does
    ours = BarnesHutGradient(angle=angle, n_threads=n_threads).prepare(P)
    Y32 = Y.astype(np.float32)
    ours32 = BarnesHutGradient(angle=angle, n_threads=n_threads).prepare(
        P.astype(np.float32)
    )
    sk_data = P.data.astype(np.float32)
    sk_indices = P.indices.astype(np.int64)
    sk_indptr = P.indptr.astype(np.int64)

    def opentsne_repulsion():
        gradient = np.zeros_like(Y)
        tree = QuadTree(Y)
        _tsne.estimate_negative_gradient_bh(
            tree, Y, gradient, angle, 1.0, n_threads, True
        )
        return gradient

    def opentsne_gradient():
        gradient = opentsne_repulsion()
        _tsne.estimate_positive_gradient_nn(
            P.indices, P.indptr, P.data, Y, Y, gradient, 1.0, n_threads, False
        )
        return gradient

    def sklearn_gradient():
        forces = np.zeros(Y32.shape, dtype=np.float32)
        _barnes_hut_tsne.gradient(
            sk_data, Y32, sk_indices, sk_indptr, forces, angle, 2, 0,
            dof=1, compute_error=False, num_threads=n_threads,
        )  # fmt: skip
        return forces

    def call(backend, Z):
        return lambda: backend(Z, exaggeration=1.0, dof=1.0, compute_error=False)

    return {
        "repulsion: fasttsne": lambda: bh_repulsion(
            Y, angle, 1.0, rep, n_threads, workspace=workspace
        ),
        "repulsion: openTSNE": opentsne_repulsion,
        "gradient: fasttsne float64": call(ours, Y),
        "gradient: fasttsne float32": call(ours32, Y32),
        "gradient: openTSNE": opentsne_gradient,
        "gradient: sklearn (float32)": sklearn_gradient,
    }


def time_all(funcs, repeats):
    """Interleaved wall-clock and CPU (all threads) times: name -> lists of s."""
    wall = {name: [] for name in funcs}
    cpu = {name: [] for name in funcs}
    for func in funcs.values():
        func()  # warm-up
    for _ in range(repeats):
        for name, func in funcs.items():
            start, start_cpu = time.perf_counter(), time.process_time()
            func()
            wall[name].append(time.perf_counter() - start)
            cpu[name].append(time.process_time() - start_cpu)
    return wall, cpu


def accuracy(Y, angle, n_threads, rows):
    """Errors of F/Z on ``rows`` and of Z, for the three implementations."""
    from openTSNE import _tsne
    from openTSNE.quad_tree import QuadTree  # pylint: disable=no-name-in-module
    from sklearn.manifold import _barnes_hut_tsne

    n = Y.shape[0]
    Z_exact = exact_z(Y)
    F_exact = exact_rows(Y, rows) / Z_exact
    results = {}

    rep = np.empty_like(Y)
    Z = bh_repulsion(Y, angle, 1.0, rep, n_threads)
    results["fasttsne"] = (rep[rows] / Z, Z)

    gradient = np.zeros_like(Y)
    sum_q = _tsne.estimate_negative_gradient_bh(
        QuadTree(Y), Y, gradient, angle, 1.0, n_threads, True
    )
    results["openTSNE"] = (-gradient[rows], sum_q)

    # sklearn with an empty P: the forces are -F / Z alone.
    forces = np.zeros(Y.shape, dtype=np.float32)
    empty = np.zeros(0, dtype=np.float32)
    _barnes_hut_tsne.gradient(
        empty, Y.astype(np.float32), np.zeros(0, np.int64),
        np.zeros(n + 1, np.int64), forces, angle, 2, 0,
        dof=1, compute_error=False, num_threads=n_threads,
    )  # fmt: skip
    results["sklearn"] = (-forces[rows].astype(np.float64), None)

    report = {}
    for name, (F, Z) in results.items():
        err_f = np.linalg.norm(F - F_exact) / np.linalg.norm(F_exact)
        err_z = None if Z is None else abs(Z - Z_exact) / Z_exact
        report[name] = {"force_over_Z": err_f, "Z": err_z}
    return report


def main(argv=None):
    """Run the benchmark and print (and optionally save) the figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--angle", type=float, default=0.5)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--subset", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", type=Path, default=None, help="JSON file")
    args = parser.parse_args(argv)

    rng = np.random.default_rng(args.seed)
    Y, labels = make_embedding(rng, args.n)
    P = make_affinities(rng, labels, n_threads=args.threads)
    print(
        f"N = {args.n}, nnz(P) = {P.nnz}, span = {np.ptp(Y, axis=0).max():.0f}, "
        f"angle = {args.angle}, threads = {args.threads}, repeats = {args.repeats}"
    )

    wall, cpu = time_all(runners(Y, P, args.angle, args.threads), args.repeats)
    medians = {name: float(np.median(t)) for name, t in wall.items()}
    cpu_medians = {name: float(np.median(t)) for name, t in cpu.items()}
    print(
        f"\n{'per call':30s} {'wall ms':>8s} {'min ms':>8s} {'cpu ms':>8s} "
        f"{'wall vs fasttsne':>17s}"
    )
    for name, t in wall.items():
        kind = name.split(":")[0]
        base = medians[f"{kind}: fasttsne" + (" float64" if kind == "gradient" else "")]
        print(
            f"{name:30s} {1e3 * medians[name]:8.2f} {1e3 * min(t):8.2f} "
            f"{1e3 * cpu_medians[name]:8.2f} {medians[name] / base:16.2f}x"
        )

    rows = rng.choice(args.n, size=min(args.subset, args.n), replace=False)
    errors = accuracy(Y, args.angle, args.threads, rows)
    print(f"\nrelative error, {rows.size} rows vs exact sums over all N points")
    for name, err in errors.items():
        z = "n/a" if err["Z"] is None else f"{err['Z']:.2e}"
        print(f"  {name:10s} F/Z: {err['force_over_Z']:.2e}   Z: {z}")

    if args.output is not None:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        record = {"args": {k: str(v) for k, v in vars(args).items()}}
        record.update(median_s=medians, cpu_median_s=cpu_medians, errors=errors)
        args.output.write_text(json.dumps(record, indent=2))


if __name__ == "__main__":
    main()
