"""Exact and approximate k-nearest-neighbour search for t-SNE affinities.

Compares, on a seeded 20-cluster Gaussian mixture in 50-D, with the same
number of threads for every method:

* fasttsne exact (the cell-pruned exact search from 4,096 samples, blocked
  BLAS brute force below; the ground truth),
* scikit-learn's brute force ``NearestNeighbors`` (the anchor),
* fasttsne approx (faiss HNSW, deterministic build, exact re-ranking),
* fasttsne auto (the default: the pruned exact search where its plan is
  cheap, the graph otherwise; at the large size),
* hnswlib HNSW built with one thread (its only deterministic setting),
* pynndescent (numba; its JIT warm-up is timed apart).

Anchors that are not installed are left out (the script says which).

For each it prints build+query time, speed-up over the exact search, recall@k
and recall@10 against the exact neighbours, and (at the smallest size)
whether two runs with the same seed agree. Sizes above ``--full-recall-max``
measure recall on a fixed sample of query rows. A crossover sweep times
exact against approx at small sizes, which sets
``fasttsne._neighbors._APPROX_MIN_SAMPLES``.

``--data gmm`` takes ``benchmarks/bench_tsne.py``'s mixture instead (the data
of the t-SNE fits), and ``--split`` adds where the approximate search spends
its time (wall and process CPU seconds of the k-means grouping, the faiss
build, the faiss search, the exact re-ranking and the rest).

``--pruned N ...`` times the cell-pruned exact search (``_pruned``) against
the graph on three data sets (the t-SNE mixture, this script's overlapping
mixture and 50-D Gaussian noise) with the number of candidates a query its
plan ranks, which sets ``fasttsne._neighbors._PRUNED_MAX_PAIRS_PER_QUERY``.

Usage::

    python benchmarks/bench_knn.py                      # the README table
    python benchmarks/bench_knn.py --sizes 20000 --large 0 --crossover
    python benchmarks/bench_knn.py --sizes --large 1000000 --data gmm --split
    python benchmarks/bench_knn.py --pruned 100000 250000
"""

# The stage split wraps private functions of fasttsne.
# pylint: disable=protected-access
import argparse
import importlib.util
import time

import numpy as np
from sklearn.datasets import make_blobs
from sklearn.neighbors import NearestNeighbors

from fasttsne._neighbors import _hnsw, _pruned, nearest_neighbors
from fasttsne._neighbors._exact import rows_knn


def make_data(n_samples, data="blobs"):
    """The benchmark data: 20 overlapping Gaussian clusters in 50-D.

    With cluster_std=6 about 0.5% of the 90 nearest neighbours of a point lie
    in another cluster at N = 20k (the clusters touch, as real data do).
    ``data="gmm"`` is ``benchmarks/bench_tsne.py``'s mixture instead: 20
    separated unit Gaussians in 50-D of unequal sizes; ``data="noise"`` one
    50-D unit Gaussian (nothing for a cell plan to prune).
    """
    if data == "gmm":
        from bench_tsne import make_data as make_gmm

        return make_gmm("gmm", n_samples)[0]
    if data == "noise":
        return np.random.default_rng(0).normal(size=(n_samples, 50))
    X, _ = make_blobs(n_samples, 50, centers=20, cluster_std=6.0, random_state=0)
    return X


class StageClock:
    """Wall and process CPU seconds of the approximate search's stages.

    Wraps, while in use, the k-means grouping and the re-ranking of
    ``fasttsne._neighbors._hnsw`` and faiss's ``IndexHNSWFlat.add`` and
    ``search``; the rest of the search is reported as "other".
    """

    STAGES = {
        "k-means grouping": (_hnsw, "_cluster_order"),
        "exact re-ranking": (_hnsw, "_rerank"),
    }

    def __init__(self):
        self.seconds = {}
        self._originals = []

    def _wrap(self, owner, attribute, stage):
        original = getattr(owner, attribute)

        def clocked(*args, **kwargs):
            wall, cpu = time.perf_counter(), time.process_time()
            try:
                return original(*args, **kwargs)
            finally:
                spent = self.seconds.setdefault(stage, [0.0, 0.0])
                spent[0] += time.perf_counter() - wall
                spent[1] += time.process_time() - cpu

        self._originals.append((owner, attribute, original))
        setattr(owner, attribute, clocked)

    def __enter__(self):
        faiss = _hnsw.import_faiss()
        for stage, (owner, attribute) in self.STAGES.items():
            self._wrap(owner, attribute, stage)
        self._wrap(faiss.IndexHNSWFlat, "add", "faiss build")
        self._wrap(faiss.IndexHNSWFlat, "search", "faiss search")
        return self

    def __exit__(self, *exc):
        for owner, attribute, original in reversed(self._originals):
            setattr(owner, attribute, original)
        self._originals = []

    def report(self, total_wall, total_cpu):
        """Print each stage's wall and CPU seconds, and the rest."""
        print("\n| stage | wall (s) | CPU (s) |\n|---|---|---|")
        for stage, (wall, cpu) in self.seconds.items():
            print(f"| {stage} | {wall:.2f} | {cpu:.2f} |")
        rest_wall = total_wall - sum(wall for wall, _ in self.seconds.values())
        rest_cpu = total_cpu - sum(cpu for _, cpu in self.seconds.values())
        print(f"| other (copies, conversions) | {rest_wall:.2f} | {rest_cpu:.2f} |")
        print(f"| total | {total_wall:.2f} | {total_cpu:.2f} |\n", flush=True)


def timed(function):
    """Run ``function()``; return (seconds, result)."""
    start = time.perf_counter()
    result = function()
    return time.perf_counter() - start, result


def strip_self(labels, k):
    """Drop each row's own index (or the last entry) from k + 1 labels."""
    rows = np.arange(labels.shape[0])[:, None]
    drop = labels == rows
    drop[~drop.any(axis=1), -1] = True
    return labels[~drop].reshape(labels.shape[0], k)


def recall(found, truth, k):
    """Mean fraction of the true k nearest neighbours that were found."""
    hits = [np.intersect1d(a[:k], b[:k]).size for a, b in zip(found, truth)]
    return float(np.mean(hits)) / k


def run_sklearn(X, k, threads):
    """scikit-learn brute force; returns neighbour indices."""
    knn = NearestNeighbors(n_neighbors=k, algorithm="brute", n_jobs=threads)
    return knn.fit(X).kneighbors(return_distance=False)


def run_fasttsne_approx(X, k, threads, seed=0):
    """fasttsne's approximate search (faiss HNSW)."""
    return nearest_neighbors(
        X, k, method="approx", n_threads=threads, random_state=seed
    )[0]


def run_fasttsne_auto(X, k, threads, seed=0):
    """fasttsne's default: the cell-pruned exact search or the graph."""
    return nearest_neighbors(X, k, method="auto", n_threads=threads, random_state=seed)[
        0
    ]


def run_hnswlib(X, k, threads, seed=0):
    """hnswlib with settings matching ours; built serially (deterministic)."""
    import hnswlib

    X32 = np.ascontiguousarray(X, dtype=np.float32)
    index = hnswlib.Index(space="l2", dim=X.shape[1])
    index.init_index(
        max_elements=X.shape[0], M=32, ef_construction=100, random_seed=seed
    )
    index.add_items(X32, np.arange(X.shape[0]), num_threads=1)
    index.set_ef(max(128, 2 * (k + 1)))
    labels, _ = index.knn_query(X32, k=k + 1, num_threads=threads)
    return strip_self(labels.astype(np.intp), k)


def run_pynndescent(X, k, threads, seed=0):
    """pynndescent's NN-descent graph with its default settings."""
    import pynndescent

    X32 = np.ascontiguousarray(X, dtype=np.float32)
    index = pynndescent.NNDescent(
        X32, n_neighbors=k + 1, random_state=seed, n_jobs=threads
    )
    return strip_self(index.neighbor_graph[0].astype(np.intp), k)


def pynndescent_warmup(threads):
    """Seconds of numba compilation paid by the first call in a process."""
    seconds, _ = timed(
        lambda: run_pynndescent(make_data(500), 10, threads)  # tiny problem
    )
    return seconds


APPROX = {
    "fasttsne approx (faiss HNSW)": run_fasttsne_approx,
    "fasttsne auto (pruned exact or HNSW)": run_fasttsne_auto,
    "hnswlib (1-thread build)": run_hnswlib,
    "pynndescent": run_pynndescent,
}

# The package each approximate method needs.
REQUIRES = {
    "fasttsne approx (faiss HNSW)": "faiss",
    "fasttsne auto (pruned exact or HNSW)": "faiss",
    "hnswlib (1-thread build)": "hnswlib",
    "pynndescent": "pynndescent",
}


def installed_methods():
    """The approximate methods whose package can be imported here."""
    return [
        name for name in APPROX if importlib.util.find_spec(REQUIRES[name]) is not None
    ]


def ground_truth_sample(X, k, threads, n_queries):
    """Exact neighbours of a fixed sample of rows (for large N)."""
    rows = np.sort(
        np.random.default_rng(0).choice(X.shape[0], n_queries, replace=False)
    )
    return rows, rows_knn(X, rows, k, n_threads=threads)[0]


def print_row(cells):
    """One markdown table row."""
    print("| " + " | ".join(cells) + " |", flush=True)


def bench_size(n_samples, k, threads, args, methods, check_determinism):
    """Time every method at one size and print its rows."""
    X = make_data(n_samples, args.data)
    exact_time = None
    if n_samples <= args.full_recall_max:
        exact_time, (truth, _) = timed(
            lambda: nearest_neighbors(X, k, n_threads=threads)
        )
        rows = np.arange(n_samples)
        print_row(
            [
                f"{n_samples:,}",
                "fasttsne exact",
                f"{exact_time:.2f}",
                "1.00",
                "1.0000",
                "1.0000",
                "yes (exact)",
            ]
        )
        sk_time, sk = timed(lambda: run_sklearn(X, k, threads))
        print_row(
            [
                f"{n_samples:,}",
                "sklearn brute",
                f"{sk_time:.2f}",
                f"{exact_time / sk_time:.2f}",
                f"{recall(sk, truth, k):.4f}",
                f"{recall(sk, truth, 10):.4f}",
                "yes (exact)",
            ]
        )
    else:
        rows, truth = ground_truth_sample(X, k, threads, args.queries)
    for name in methods:
        if args.split and name == "fasttsne approx (faiss HNSW)":
            cpu = time.process_time()
            with StageClock() as clock:
                seconds, found = timed(lambda name=name: APPROX[name](X, k, threads))
            clock.report(seconds, time.process_time() - cpu)
        else:
            seconds, found = timed(lambda name=name: APPROX[name](X, k, threads))
        deterministic = "-"
        if check_determinism:
            again = APPROX[name](X, k, threads)
            deterministic = "yes" if np.array_equal(found, again) else "no"
        speedup = f"{exact_time / seconds:.2f}" if exact_time else "-"
        print_row(
            [
                f"{n_samples:,}",
                name,
                f"{seconds:.2f}",
                speedup,
                f"{recall(found[rows], truth, k):.4f}",
                f"{recall(found[rows], truth, 10):.4f}",
                deterministic,
            ]
        )


def crossover(k, threads, sizes, data):
    """Exact against approx at small sizes (sets _APPROX_MIN_SAMPLES)."""
    print("\n| N | exact (s) | approx (s) | exact / approx | recall@k |")
    print("|---|---|---|---|---|")
    for n_samples in sizes:
        X = make_data(n_samples, data)
        exact_time, (truth, _) = timed(
            lambda X=X: nearest_neighbors(X, k, n_threads=threads)
        )
        approx_time, found = timed(lambda X=X: run_fasttsne_approx(X, k, threads))
        print(
            f"| {n_samples:,} | {exact_time:.2f} | {approx_time:.2f} | "
            f"{exact_time / approx_time:.2f} | {recall(found, truth, k):.4f} |",
            flush=True,
        )


def pruned_crossover(k, threads, sizes, datasets):
    """The cell-pruned exact search against the graph, with the plan's cost.

    Sets ``fasttsne._neighbors._PRUNED_MAX_PAIRS_PER_QUERY``: the candidates
    a query at which both searches take the same time.
    """
    print(
        "\n| data | N | plan (s) | pairs a query | pruned exact (s) | HNSW (s) "
        "| exact / HNSW | HNSW recall@k |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for data in datasets:
        for n_samples in sizes:
            X = make_data(n_samples, data)
            plan_time, plan = timed(
                lambda X=X: _pruned.cell_plan(
                    X, k, n_threads=threads, center=X.mean(axis=0)
                )
            )
            exact_time, (truth, _) = timed(
                lambda X=X, plan=plan: _pruned.pruned_euclidean_knn(
                    X, k, n_threads=threads, plan=plan
                )
            )
            approx_time, found = timed(lambda X=X: run_fasttsne_approx(X, k, threads))
            print(
                f"| {data} | {n_samples:,} | {plan_time:.2f} | "
                f"{plan.pairs / n_samples:,.0f} | {exact_time:.2f} | "
                f"{approx_time:.2f} | {(plan_time + exact_time) / approx_time:.2f} | "
                f"{recall(found, truth, k):.4f} |",
                flush=True,
            )


def main():
    """Parse arguments and print the tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="*", default=[20_000, 100_000])
    parser.add_argument(
        "--large",
        type=int,
        default=250_000,
        help="size run with fasttsne approx only (0: skip)",
    )
    parser.add_argument("--k", type=int, default=90)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--queries",
        type=int,
        default=2000,
        help="sampled query rows for recall above --full-recall-max",
    )
    parser.add_argument("--full-recall-max", type=int, default=100_000)
    parser.add_argument(
        "--crossover",
        action="store_true",
        help="also sweep N = 10k..80k for exact vs approx",
    )
    parser.add_argument(
        "--data",
        choices=("blobs", "gmm"),
        default="blobs",
        help="this script's mixture, or bench_tsne.py's (the t-SNE fits' data)",
    )
    parser.add_argument(
        "--split",
        action="store_true",
        help="time the approximate search's stages (wall and CPU)",
    )
    parser.add_argument(
        "--pruned",
        type=int,
        nargs="*",
        default=None,
        help="sizes at which to time the cell-pruned exact search against "
        "the graph on the blobs, the gmm and 50-D Gaussian noise (sets "
        "_PRUNED_MAX_PAIRS_PER_QUERY; no sizes: 100,000 and 250,000)",
    )
    args = parser.parse_args()
    if args.pruned is not None:
        sizes = args.pruned or [100_000, 250_000]
        pruned_crossover(args.k, args.threads, sizes, ("gmm", "blobs", "noise"))
        return

    described = {
        "blobs": "20-cluster Gaussian mixture in 50-D (cluster_std=6)",
        "gmm": "bench_tsne.py's 20-cluster Gaussian mixture in 50-D",
    }
    print(f"k = {args.k}, {args.threads} threads, {described[args.data]}")
    methods = installed_methods()
    missing = [name for name in APPROX if name not in methods]
    if missing:
        print(f"not installed, left out: {', '.join(missing)}")
    if "pynndescent" in methods:
        warmup = pynndescent_warmup(args.threads)
        print(f"pynndescent numba warm-up (first call in a process): {warmup:.1f} s")
    print()
    print(
        "| N | method | build+query (s) | speed-up vs exact | recall@k "
        "| recall@10 | same result twice |"
    )
    print("|---|---|---|---|---|---|---|")
    for i, n_samples in enumerate(args.sizes):
        bench_size(
            n_samples,
            args.k,
            args.threads,
            args,
            methods,
            check_determinism=i == 0,
        )
    if args.large:
        bench_size(
            args.large,
            args.k,
            args.threads,
            args,
            ["fasttsne approx (faiss HNSW)", "fasttsne auto (pruned exact or HNSW)"],
            check_determinism=False,
        )
    if args.crossover:
        crossover(
            args.k, args.threads, [10_000, 20_000, 40_000, 60_000, 80_000], args.data
        )


if __name__ == "__main__":
    main()
