"""Time and peak memory of what a fit does between its kNN search and its loop.

The kNN of ``benchmarks/bench_tsne.py``'s 50-D Gaussian mixture (k = 90, as
for perplexity 30) is searched once and saved; each run then loads it and
times, in a fresh process, ``joint_probabilities`` (perplexity calibration,
renumbering, symmetrisation, normalisation) on the saved kNN and the PCA
initialisation, as ``fit`` runs them from 20,000 points on (the PCA inside
``joint_probabilities`` where the code has the ``before_symmetrize`` hook,
after it otherwise). The resident memory is read from ``/proc/self/status``
(Linux only): the baseline with X, with X and the kNN arrays loaded, the
peak from the end of the search to the first iteration (the kernel's peak
counter is reset first), and what is left (X and P). A SHA-256 digest of P
and the order shows whether two versions of the code give the same bits:
run this script with ``PYTHONPATH`` pointing at each.

Examples
--------
PYTHONPATH=. python benchmarks/bench_affinities.py --n 250000 --threads 2
PYTHONPATH=. python benchmarks/bench_affinities.py --n 1000000 --repeat 1
"""

import argparse
import hashlib
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from bench_tsne import make_data
from sklearn.utils import check_random_state

PERPLEXITY = 30.0
N_NEIGHBORS = 90


def mixture(n_samples):
    """The 20-cluster Gaussian mixture of benchmarks/bench_tsne.py."""
    return make_data("gmm", n_samples)[0]


def status_mb(field):
    """A memory field of /proc/self/status (VmRSS, VmHWM) in MiB."""
    for line in Path("/proc/self/status").read_text(encoding="ascii").splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024.0
    raise KeyError(field)


def reset_peak():
    """Reset the kernel's peak resident memory of this process to its RSS."""
    Path("/proc/self/clear_refs").write_text("5", encoding="ascii")


def knn_files(args):
    """The saved kNN of the mixture (searched and saved on the first call)."""
    folder = Path(args.cache)
    stem = folder / f"knn_gmm_{args.n}_{N_NEIGHBORS}"
    files = (Path(f"{stem}_indices.npy"), Path(f"{stem}_distances.npy"))
    if not all(f.exists() for f in files):
        from fasttsne._neighbors import nearest_neighbors

        start = time.perf_counter()
        indices, distances = nearest_neighbors(
            mixture(args.n),
            N_NEIGHBORS,
            method="auto",
            n_threads=args.threads,
            random_state=check_random_state(0),
            squared=True,
        )
        print(f"kNN searched in {time.perf_counter() - start:.1f} s", flush=True)
        folder.mkdir(parents=True, exist_ok=True)
        np.save(files[0], indices)
        np.save(files[1], distances)
    return files


def digest(*arrays):
    """Hex SHA-256 of the arrays' dtypes, shapes and bytes (first 16 digits)."""
    sha = hashlib.sha256()
    for array in arrays:
        array = np.ascontiguousarray(array)
        sha.update(f"{array.dtype.str}{array.shape}".encode())
        sha.update(array.tobytes())
    return sha.hexdigest()[:16]


def worker(args):
    """One measured run: affinities on the saved kNN and the PCA start."""
    import inspect

    from fasttsne.tsne._affinity import joint_probabilities
    from fasttsne.tsne._initialization import initialize

    X = mixture(args.n)
    indices_file, distances_file = knn_files(args)
    rows = {"X": status_mb("VmRSS")}
    # np.load reads into fresh arrays, as the search hands them over.
    indices, distances = np.load(indices_file), np.load(distances_file)
    rows["X + kNN"] = status_mb("VmRSS")

    def search(*_args, **_kwargs):
        nonlocal indices, distances
        result = indices, distances
        indices = distances = None
        return result

    start_times = []

    def build_start(order, P=None):
        start, cpu = time.perf_counter(), time.process_time()
        initialize(
            "pca",
            X=X,
            P=P,
            order=order,
            n_components=2,
            rng=check_random_state(0),
            dtype=np.float64,
        )
        start_times.append((time.perf_counter() - start, time.process_time() - cpu))

    # As fit does: the start inside the affinities where the code has that
    # hook, after them otherwise.
    hook = "before_symmetrize" in inspect.signature(joint_probabilities).parameters
    reset_peak()
    start, cpu = time.perf_counter(), time.process_time()
    P, order = joint_probabilities(
        X,
        PERPLEXITY,
        n_threads=args.threads,
        reorder=True,
        search=search,
        **({"before_symmetrize": build_start} if hook else {}),
    )
    if not hook:
        build_start(order, P)
    total = (time.perf_counter() - start, time.process_time() - cpu)
    rows["peak"] = status_mb("VmHWM")
    rows["X + P"] = status_mb("VmRSS")
    init = start_times[0]
    memory = "  ".join(f"{name} {mb:.0f}" for name, mb in rows.items())
    print(
        f"affinities {total[0] - init[0]:6.2f} s (CPU {total[1] - init[1]:6.2f})  "
        f"PCA start {init[0]:5.2f} s (CPU {init[1]:5.2f})  "
        f"nnz {P.nnz}  P {digest(P.data, P.indices, P.indptr, order)}",
        flush=True,
    )
    print(f"  memory (MiB): {memory}", flush=True)


def main():
    """Parse the arguments; run the repeats, each in its own process."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=250_000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--cache",
        default=os.path.join(tempfile.gettempdir(), "fasttsne_bench"),
        help="folder of the saved kNN",
    )
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return
    knn_files(args)
    print(f"n = {args.n}, k = {N_NEIGHBORS}, {args.threads} threads", flush=True)
    command = [
        sys.executable,
        __file__,
        "--worker",
        f"--n={args.n}",
        f"--threads={args.threads}",
        f"--cache={args.cache}",
    ]
    for _ in range(args.repeat):
        subprocess.run(command, check=True)


if __name__ == "__main__":
    main()
