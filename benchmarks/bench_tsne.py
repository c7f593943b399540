"""fasttsne t-SNE side by side with openTSNE and scikit-learn, in one run.

Every method runs in its own subprocess (so that peak memory is its own) on the
same data, with the same number of iterations and threads, and prints wall
time split into neighbours+affinities / optimisation, CPU time (all threads;
steadier than wall time on a loaded machine), peak resident memory,
final KL divergence (all recomputed by one exact formula where N allows),
kNN recall@10 of the embedding against the input space, trustworthiness, and
ratios to the anchors.

The ``-graph`` methods are the scanpy-style workflow: a k = 15 connectivity
graph (scanpy's count, the point itself included: 14 neighbours) with
uniform weights, symmetrised like UMAP's fuzzy union of 0/1 weights (an edge
if either point lists the other), is built once from the approximate (or
exact, ``--neighbors exact``) kNN and given to both as precomputed
affinities, ``FFTInterpTSNE(affinity="precomputed")`` against openTSNE's
``PrecomputedAffinities``, from one shared PCA initialisation (first axis
std 1e-4); their KL is that of the graph's P, and their time excludes the
graph.

Examples
--------
python benchmarks/bench_tsne.py --data digits
python benchmarks/bench_tsne.py --data gmm --n 20000 \
    --methods fasttsne-bh opentsne-bh sklearn
python benchmarks/bench_tsne.py --data gmm --n 100000 \
    --methods fasttsne-fft opentsne-fft fasttsne-bh
python benchmarks/bench_tsne.py --data gmm --n 100000 \
    --methods fasttsne-graph opentsne-graph
"""

# Phase timing wraps private functions of fasttsne.
# pylint: disable=protected-access
import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

METHODS = (
    "fasttsne-bh",
    "fasttsne-fft",
    "opentsne-bh",
    "opentsne-fft",
    "sklearn",
    "fasttsne-graph",
    "opentsne-graph",
)

# scanpy's default n_neighbors, which counts the point itself.
GRAPH_NEIGHBORS = 15


def make_data(name, n, seed=0):
    """Digits, or a seeded 20-cluster Gaussian mixture in 50-D."""
    if name == "digits":
        from sklearn.datasets import load_digits

        X, y = load_digits(return_X_y=True)
        return X.astype(np.float64), y
    rng = np.random.default_rng(seed)
    centers = rng.normal(scale=3.0, size=(20, 50))
    weights = rng.dirichlet(np.full(20, 5.0))
    y = rng.choice(20, size=n, p=weights)
    X = centers[y] + rng.normal(size=(n, 50))
    return X, y


class _Clock:
    """Accumulate wall time of wrapped functions by phase name."""

    def __init__(self):
        self.phases = {}

    def wrap(self, module, attribute, phase):
        """Replace ``module.attribute`` by a timed version charged to ``phase``."""
        original = getattr(module, attribute)

        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                elapsed = time.perf_counter() - start
                self.phases[phase] = self.phases.get(phase, 0.0) + elapsed

        setattr(module, attribute, timed)


def run_fasttsne(method, X, args):
    """Fit fasttsne, timing the neighbour search and affinities separately."""
    from fasttsne.tsne import _affinity
    from fasttsne import BarnesHutTSNE, FFTInterpTSNE

    clock = _Clock()
    # joint_probabilities takes its search as a default argument, bound when
    # the module loads: the timed search is passed to it explicitly.
    clock.wrap(_affinity, "nearest_neighbors", "knn")
    clock.wrap(_affinity, "joint_probabilities", "affinities")
    timed_joint = _affinity.joint_probabilities
    search = _affinity.nearest_neighbors

    def joint_probabilities(*call_args, **kwargs):
        kwargs.setdefault("search", search)
        return timed_joint(*call_args, **kwargs)

    _affinity.joint_probabilities = joint_probabilities
    cls = BarnesHutTSNE if method == "fasttsne-bh" else FFTInterpTSNE
    tsne = cls(
        max_iter=args.n_iter,
        n_jobs=args.threads,
        random_state=0,
        neighbors=args.neighbors,
    )
    start = time.perf_counter()
    Y = tsne.fit_transform(X)
    total = time.perf_counter() - start
    knn = clock.phases.get("knn", 0.0)
    affinities = clock.phases.get("affinities", 0.0) - knn
    return Y, total, {"knn": knn, "affinities": affinities}


def run_graph(method, args):
    """Fit the precomputed connectivity graph from the shared initialisation."""
    import scipy.sparse as sp

    A = sp.load_npz(args.graph_file).tocsr()
    init = np.load(args.init_file)
    if method == "fasttsne-graph":
        from fasttsne import FFTInterpTSNE
        from fasttsne.tsne import _affinity

        clock = _Clock()
        clock.wrap(_affinity, "precomputed_joint_probabilities", "affinities")
        tsne = FFTInterpTSNE(
            affinity="precomputed",
            init=init,
            max_iter=args.n_iter,
            n_jobs=args.threads,
            random_state=0,
        )
        start = time.perf_counter()
        Y = tsne.fit_transform(A)
        return Y, time.perf_counter() - start, dict(clock.phases)
    from openTSNE import TSNE, affinity

    start = time.perf_counter()
    P = affinity.PrecomputedAffinities(A)
    affinities = time.perf_counter() - start
    tsne = TSNE(
        n_iter=args.n_iter - 250,
        early_exaggeration_iter=250,
        n_jobs=args.threads,
        negative_gradient_method="fft",
        random_state=0,
    )
    Y = tsne.fit(affinities=P, initialization=init)
    return np.asarray(Y), time.perf_counter() - start, {"affinities": affinities}


def connectivity_graph(X, args):
    """scanpy-style 0/1 kNN graph (k = 15 with the point), symmetrised by union."""
    import scipy.sparse as sp

    from fasttsne._neighbors import nearest_neighbors

    n = X.shape[0]
    k = GRAPH_NEIGHBORS - 1
    indices, _ = nearest_neighbors(
        X, k, method=args.neighbors, n_threads=args.threads, random_state=0
    )
    A = sp.csr_matrix(
        (np.ones(n * k), indices.ravel(), np.arange(0, n * k + 1, k)), shape=(n, n)
    )
    return ((A + A.T) > 0).astype(np.float64).tocsr()


def prepare_graph(X, args, graph_file, init_file):
    """Save the graph and the shared initialisation; return the graph's P."""
    import scipy.sparse as sp

    start = time.perf_counter()
    A = connectivity_graph(X, args)
    print(
        f"  connectivity graph: {A.nnz / A.shape[0]:.1f} edges per point, "
        f"built in {time.perf_counter() - start:.1f}s",
        flush=True,
    )
    sp.save_npz(graph_file, A)
    np.save(init_file, shared_init(X))
    if args.no_kl:
        return None
    P = sp.csr_matrix(A / A.sum())
    P.sort_indices()
    return P


def shared_init(X):
    """PCA of X, first axis rescaled to std 1e-4 (openTSNE's convention)."""
    from sklearn.decomposition import PCA

    Y = PCA(2, svd_solver="randomized", random_state=0).fit_transform(X)
    return np.ascontiguousarray(Y * (1e-4 / Y[:, 0].std()))


def run_opentsne(method, X, args):
    """openTSNE with its defaults, the given gradient method and iterations."""
    from openTSNE import TSNE, affinity, initialization

    start = time.perf_counter()
    neighbors = "exact" if args.neighbors == "exact" else "auto"
    P = affinity.PerplexityBasedNN(
        X, perplexity=30, n_jobs=args.threads, random_state=0, method=neighbors
    )
    knn_aff = time.perf_counter() - start
    init = initialization.pca(X, random_state=0)
    tsne = TSNE(
        n_iter=args.n_iter - 250,
        early_exaggeration_iter=250,
        n_jobs=args.threads,
        negative_gradient_method="bh" if method == "opentsne-bh" else "fft",
        random_state=0,
    )
    Y = tsne.fit(affinities=P, initialization=init)
    total = time.perf_counter() - start
    return np.asarray(Y), total, {"knn+affinities": knn_aff}


def run_sklearn(X, args):
    """scikit-learn's Barnes-Hut TSNE with matching iterations and threads."""
    from sklearn.manifold import TSNE

    start = time.perf_counter()
    tsne = TSNE(max_iter=args.n_iter, n_jobs=args.threads, random_state=0, init="pca")
    Y = tsne.fit_transform(X)
    return Y, time.perf_counter() - start, {}


def worker(args):
    """Run one method on the saved data and write a JSON result."""
    X = np.load(args.data_file)
    # CPU seconds of all the process' threads: on a shared machine they vary
    # less with the load than the wall time does.
    cpu_start = time.process_time()
    if args.method.endswith("-graph"):
        Y, total, phases = run_graph(args.method, args)
    elif args.method.startswith("fasttsne"):
        Y, total, phases = run_fasttsne(args.method, X, args)
    elif args.method.startswith("opentsne"):
        Y, total, phases = run_opentsne(args.method, X, args)
    else:
        Y, total, phases = run_sklearn(X, args)
    cpu = time.process_time() - cpu_start
    np.save(args.out_file, Y)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    result = {"total": total, "cpu": cpu, "phases": phases, "peak_mb": peak_mb}
    Path(args.out_file).with_suffix(".json").write_text(
        json.dumps(result), encoding="utf-8"
    )


def quality(X, Y, y, n_eval, seed=0):
    """KL divergence (exact, fasttsne's affinities), recall@10, trustworthiness.

    For large N the neighbourhood measures use a random subset of query points
    against all points, and the exact KL is skipped (it needs O(N^2)).
    """
    from sklearn.manifold import trustworthiness
    from sklearn.neighbors import NearestNeighbors

    rng = np.random.default_rng(seed)
    queries = rng.choice(len(X), size=min(n_eval, len(X)), replace=False)
    nn_x = NearestNeighbors(n_neighbors=11, algorithm="brute").fit(X)
    nn_y = NearestNeighbors(n_neighbors=11).fit(Y)
    ix = nn_x.kneighbors(X[queries], return_distance=False)[:, 1:]
    iy = nn_y.kneighbors(Y[queries], return_distance=False)[:, 1:]
    recall = np.mean([len(set(a) & set(b)) / 10.0 for a, b in zip(ix, iy)])
    sub = queries[: min(2000, len(queries))]
    trust = trustworthiness(X[sub], Y[sub], n_neighbors=10)
    knn_acc = None
    if y is not None:
        from sklearn.model_selection import cross_val_score
        from sklearn.neighbors import KNeighborsClassifier

        knn_acc = cross_val_score(
            KNeighborsClassifier(10), Y[queries], y[queries], cv=3
        ).mean()
    return recall, trust, knn_acc


def common_affinities(X, threads):
    """fasttsne's perplexity-30 affinities, the yardstick for every KL."""
    from fasttsne.tsne import _affinity

    # A fixed seed: the approximate kNN (from 80k points) gives the same P
    # in every run, so KL figures compare across runs too.
    return _affinity.joint_probabilities(
        X, 30.0, neighbors="auto", n_threads=threads, random_state=0
    )


def kl_of(P, Y, threads):
    """KL(P || Q) for a common P, with Z by Barnes-Hut at angle 0.2 (~0.1%)."""
    from fasttsne.tsne._gradients import get_backend

    Y = np.ascontiguousarray(Y, dtype=np.float64)
    backend = get_backend(
        "bh", device="cpu", n_components=Y.shape[1], n_threads=threads, angle=0.2
    )
    backend.prepare(P)
    kl, _ = backend(Y, exaggeration=1.0, dof=1.0, compute_error=True)
    return kl


def main():
    """Generate the data, run every method in a subprocess, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", choices=["digits", "gmm"], default="digits")
    parser.add_argument("--n", type=int, default=20000)
    parser.add_argument("--n-iter", type=int, default=750)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--neighbors", choices=["auto", "exact", "approx"], default="auto"
    )
    parser.add_argument(
        "--methods",
        nargs="+",
        choices=METHODS,
        default=["fasttsne-bh", "opentsne-bh", "sklearn"],
    )
    parser.add_argument("--n-eval", type=int, default=5000)
    parser.add_argument("--no-kl", action="store_true", help="skip the common KL")
    parser.add_argument("--method", help=argparse.SUPPRESS)
    parser.add_argument("--data-file", help=argparse.SUPPRESS)
    parser.add_argument("--out-file", help=argparse.SUPPRESS)
    parser.add_argument("--graph-file", help=argparse.SUPPRESS)
    parser.add_argument("--init-file", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.method:
        worker(args)
        return

    X, y = make_data(args.data, args.n)
    print(
        f"data={args.data} N={len(X)} D={X.shape[1]} iterations={args.n_iter} "
        f"threads={args.threads} neighbors={args.neighbors}",
        flush=True,
    )
    rows = {}
    graph_methods = [m for m in args.methods if m.endswith("-graph")]
    other_methods = [m for m in args.methods if not m.endswith("-graph")]
    P = None if args.no_kl or not other_methods else common_affinities(X, args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        data_file = Path(tmp) / "X.npy"
        np.save(data_file, X)
        graph_file, init_file = Path(tmp) / "graph.npz", Path(tmp) / "init.npy"
        P_graph = None
        if graph_methods:
            P_graph = prepare_graph(X, args, graph_file, init_file)
        for method in args.methods:
            out_file = Path(tmp) / f"{method}.npy"
            command = [
                sys.executable,
                __file__,
                "--method",
                method,
                "--data-file",
                str(data_file),
                "--out-file",
                str(out_file),
                "--n-iter",
                str(args.n_iter),
                "--threads",
                str(args.threads),
                "--neighbors",
                args.neighbors,
                "--graph-file",
                str(graph_file),
                "--init-file",
                str(init_file),
            ]
            # Thread counts are fixed before numpy/BLAS/OpenMP load.
            env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
            subprocess.run(command, check=True, env=env)
            result = json.loads(out_file.with_suffix(".json").read_text())
            Y = np.load(out_file)
            result["recall"], result["trust"], result["knn_acc"] = quality(
                X, Y, y, args.n_eval
            )
            P_used = P_graph if method.endswith("-graph") else P
            result["kl"] = None if P_used is None else kl_of(P_used, Y, args.threads)
            rows[method] = result
            phases = " ".join(f"{k}={v:.1f}s" for k, v in result["phases"].items())
            print(
                f"  {method:13s} total {result['total']:8.1f}s  "
                f"(CPU {result['cpu']:7.1f}s)  [{phases}]  "
                f"peak {result['peak_mb']:7.0f} MB  "
                f"KL {result['kl'] or float('nan'):.4f}  "
                f"recall@10 {result['recall']:.3f}  trust {result['trust']:.4f}  "
                f"kNN-acc {result['knn_acc']:.3f}",
                flush=True,
            )
    ours = [m for m in rows if m.startswith("fasttsne")]
    anchors = [m for m in rows if not m.startswith("fasttsne")]
    for mine in ours:
        for anchor in anchors:
            if mine.endswith("-graph") != anchor.endswith("-graph"):
                continue  # different affinities: not comparable
            a, b = rows[mine], rows[anchor]
            kl_ratio = (a["kl"] / b["kl"]) if a["kl"] and b["kl"] else float("nan")
            print(
                f"  {mine} / {anchor}: time x{a['total'] / b['total']:.2f}  "
                f"CPU time x{a['cpu'] / b['cpu']:.2f}  "
                f"memory x{a['peak_mb'] / b['peak_mb']:.2f}  KL x{kl_ratio:.4f}"
            )


if __name__ == "__main__":
    main()
