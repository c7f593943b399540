"""The device path on a CUDA GPU: kernel throughput, fits, kNN, memory, quality.

For each size N (default 1e4, 1e5, 1e6) on the 20-cluster Gaussian mixture
of ``benchmarks/bench_tsne.py`` (50 features), prints:

* the exact repulsion kernel: pair interactions per second and the fraction
  of the device's FP32 peak, counting 14 flops per 2-D pair (2 differences,
  3 for the squared distance, 2 for ``t``, 1 division, 1 square, 5 for the
  three running sums; an FMA counts 2);
* the time per iteration and of a whole fit (750 iterations, kNN and
  affinities included) of ``BarnesHutTSNE(device="cuda")`` (exact sums) and
  ``FFTInterpTSNE(device="cuda")`` (the grid), with ``--neighbors`` (default
  "exact": the kNN on the device at every size; "auto" takes the CPU's
  approximate search from 80,000 points on); the exact fit is skipped above
  ``--exact-max-n``;
* the device's exact kNN (k = 90): time, and its recall against brute-force
  float64 distances on 1,000 sampled rows; rows it reported uncertain;
* peak device memory of each step;
* the KL divergence of the CPU backends' fits on the same data, up to
  ``--cpu-max-n``, beside the device's, and the kNN accuracy of both.

The kNN of a fit runs on the device (``fasttsne/gpu/_knn.py``), its
perplexity calibration on the CPU. Without a CUDA device (or without torch
and triton) the script says so and exits 0.

Examples
--------
python benchmarks/bench_gpu.py
python benchmarks/bench_gpu.py --sizes 10000 100000 --cpu-max-n 0
"""

import argparse
import sys
import time

import numpy as np

# Dense FP32 peak (TFLOPS, no tensor cores) of devices by name; others need
# --peak-tflops. H100/H200 SXM: 132 SMs x 128 FP32 lanes x 2 x 1.98 GHz.
_PEAK_TFLOPS = {"H100": 66.9, "H200": 66.9, "A100": 19.5, "L40S": 91.6}
_FLOPS_PER_PAIR = 14


def mixture(n_samples, seed=0, n_features=50, n_clusters=20):
    """The 20-cluster Gaussian mixture of benchmarks/bench_tsne.py, float32."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(scale=3.0, size=(n_clusters, n_features))
    weights = rng.dirichlet(np.full(n_clusters, 5.0))
    labels = rng.choice(n_clusters, size=n_samples, p=weights)
    X = centers[labels] + rng.normal(size=(n_samples, n_features))
    return X.astype(np.float32), labels


def _peak_tflops(torch, override):
    if override:
        return override
    name = torch.cuda.get_device_name()
    for key, value in _PEAK_TFLOPS.items():
        if key in name:
            return value
    return float("nan")


def _timed(torch, function, repeats=1):
    """(median seconds, peak device memory in GiB, last result) of a call."""
    times, result = [], None
    torch.cuda.reset_peak_memory_stats()
    for _ in range(repeats):
        torch.cuda.synchronize()
        start = time.perf_counter()
        result = function()
        torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return float(np.median(times)), torch.cuda.max_memory_allocated() / 2**30, result


def _knn_accuracy(Y, labels, n_eval=5000, seed=0):
    """5-NN label accuracy of the embedding on a sample (a quality number)."""
    from sklearn.model_selection import cross_val_score
    from sklearn.neighbors import KNeighborsClassifier

    rng = np.random.default_rng(seed)
    rows = rng.choice(Y.shape[0], min(n_eval, Y.shape[0]), replace=False)
    return cross_val_score(KNeighborsClassifier(5), Y[rows], labels[rows], cv=3).mean()


def _recall(X, indices, k, n_sample=1000, seed=0):
    """Recall@k of ``indices`` against brute-force float64 distances."""
    rng = np.random.default_rng(seed)
    rows = rng.choice(X.shape[0], min(n_sample, X.shape[0]), replace=False)
    X64 = X.astype(np.float64)
    found = 0
    for row in rows:
        distances = ((X64 - X64[row]) ** 2).sum(axis=1)
        distances[row] = np.inf
        truth = np.lexsort((np.arange(X.shape[0]), distances))[:k]
        found += np.intersect1d(truth, indices[row]).size
    return found / (rows.size * k)


def _fit_recording(Est, X, params, times):
    """A function fitting ``Est`` on the device, appending check times to ``times``."""

    def callback(iteration, kl, embedding):
        del kl, embedding
        times.append((iteration, time.perf_counter()))

    return lambda: Est(device="cuda", callbacks=callback, **params).fit(X)


def bench_size(torch, n, args):
    """Print every figure for one size."""
    from fasttsne import BarnesHutTSNE, FFTInterpTSNE
    from fasttsne.gpu import _launchers

    X, labels = mixture(n)
    print(f"\n== N = {n}")
    Y = torch.from_numpy(np.random.default_rng(0).normal(size=(n, 2)) * 10.0)
    Y = Y.to(device="cuda", dtype=torch.float32)
    _launchers.exact_repulsion(Y, dof=1.0)  # compile
    repeats = 5 if n <= 100_000 else 1
    seconds, memory, _ = _timed(
        torch, lambda: _launchers.exact_repulsion(Y, dof=1.0), repeats
    )
    pairs = n * (n - 1) / seconds
    fraction = pairs * _FLOPS_PER_PAIR / (args.peak_tflops * 1e12)
    print(
        f"exact repulsion kernel: {seconds * 1e3:.2f} ms, {pairs:.3e} pairs/s, "
        f"{100 * fraction:.1f}% of {args.peak_tflops:.1f} TFLOPS FP32 peak, "
        f"peak memory {memory:.2f} GiB"
    )

    k = 90
    seconds, memory, (indices, _, uncertain) = _timed(
        torch, lambda: _launchers.exact_knn(X, k)
    )
    print(
        f"exact kNN (k = {k}) on the device: {seconds:.2f} s, recall@{k} "
        f"{_recall(X, indices, k):.4f} (1,000 rows), {int(uncertain.sum())} "
        f"uncertain rows, peak memory {memory:.2f} GiB"
    )

    estimators = [("fft", FFTInterpTSNE)]
    if n <= args.exact_max_n:
        estimators.insert(0, ("exact", BarnesHutTSNE))
    params = {
        "random_state": 0,
        "max_iter": 750,
        "n_jobs": -1,
        "neighbors": args.neighbors,
    }
    for label, Est in estimators:
        times = []
        fit = _fit_recording(Est, X, params, times)
        seconds, memory, tsne = _timed(torch, fit)
        per_iteration = (times[-1][1] - times[0][1]) / (times[-1][0] - times[0][0])
        again = Est(device="cuda", **params).fit(X)
        same = np.array_equal(again.embedding_, tsne.embedding_)
        line = (
            f"{label} fit on the device ({tsne.backend_}): {seconds:.1f} s, "
            f"{per_iteration * 1e3:.2f} ms/iteration, KL {tsne.kl_divergence_:.4f}, "
            f"kNN accuracy {_knn_accuracy(tsne.embedding_, labels):.3f}, "
            f"bitwise equal on a second run: {same}, peak memory {memory:.2f} GiB"
        )
        if n <= args.cpu_max_n:
            start = time.perf_counter()
            cpu = Est(device="cpu", **params).fit(X)
            line += (
                f"; CPU {cpu.backend_}: {time.perf_counter() - start:.1f} s, "
                f"KL {cpu.kl_divergence_:.4f}, kNN accuracy "
                f"{_knn_accuracy(cpu.embedding_, labels):.3f}"
            )
        print(line)


def main(argv=None):
    """Run the benchmark; exit 0 without a CUDA device."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10**4, 10**5, 10**6])
    parser.add_argument("--exact-max-n", type=int, default=200_000)
    parser.add_argument("--cpu-max-n", type=int, default=100_000)
    parser.add_argument("--peak-tflops", type=float, default=None)
    parser.add_argument(
        "--neighbors", choices=["auto", "exact", "approx"], default="exact"
    )
    args = parser.parse_args(argv)
    from fasttsne import gpu

    if not gpu.is_available():
        print("No CUDA device (or no torch and triton): nothing to measure.")
        return 0
    import torch

    args.peak_tflops = _peak_tflops(torch, args.peak_tflops)
    print(
        f"device: {torch.cuda.get_device_name()}, torch {torch.__version__}, "
        f"FP32 peak {args.peak_tflops} TFLOPS, neighbors={args.neighbors!r}"
    )
    for n in args.sizes:
        bench_size(torch, n, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
