"""Where a large fit's memory goes: by phase, and in one gradient of its grid.

Two measurements (Linux only: RSS is read from ``/proc/self/statm``):

* ``fit``: one ``FFTInterpTSNE`` fit of ``benchmarks/bench_tsne.py``'s
  50-D mixture, with a thread of the fitting process sampling the resident
  memory every 10 ms; the largest sample of each phase (kNN search,
  affinities and start, optimisation) is printed. The fit itself is the one
  ``bench_tsne.py`` runs (its timings are not the point here). The sampler
  cannot run while a call holds the GIL, so each figure is a lower bound of
  the phase's peak (``bench_tsne.py`` reports the process's own maximum).
* ``gradient``: ``tracemalloc``'s peak (NumPy's allocations) of one grid
  repulsion of N points spread over a capped grid, as a fit's last
  iterations compute it, and the median wall time of ``--repeat`` calls.

``MALLOC_MMAP_THRESHOLD_=1048576`` in the environment gives glibc a fixed 1
MiB mapping threshold: a lower bound on what handing freed memory back
(``fasttsne._memory``) can reach.

Examples
--------
PYTHONPATH=. python benchmarks/bench_memory.py gradient --n 1000000
PYTHONPATH=. python benchmarks/bench_memory.py fit --n 250000
"""

import argparse
import os
import statistics
import threading
import time
import tracemalloc

import numpy as np
from bench_tsne import make_data

# The phases and the grid's repulsion are measured from inside the package.
# pylint: disable=protected-access

PAGE_MIB = os.sysconf("SC_PAGE_SIZE") / 2**20


def rss_mib():
    """Resident memory of this process, MiB."""
    with open("/proc/self/statm", encoding="ascii") as statm:
        return int(statm.read().split()[1]) * PAGE_MIB


def fit_by_phase(n_samples, n_iter, n_threads):
    """Largest RSS sample of each phase of one fit; prints them."""
    # pylint: disable=import-outside-toplevel
    from fasttsne import FFTInterpTSNE
    from fasttsne.tsne import _affinity, _base

    X, _ = make_data("gmm", n_samples)
    samples, marks, done = [], [], threading.Event()

    def sample():
        while not done.is_set():
            samples.append((time.perf_counter(), rss_mib()))
            time.sleep(0.01)

    def marked(owner, name, label):
        original = getattr(owner, name)

        def wrapper(*args, **kwargs):
            marks.append((label, time.perf_counter()))
            return original(*args, **kwargs)

        setattr(owner, name, wrapper)

    # _conditional starts right after the search, _optimize after the start.
    marked(_affinity, "_conditional", "affinities and start")
    marked(_base._BaseTSNE, "_optimize", "optimisation")
    sampler = threading.Thread(target=sample, daemon=True)
    baseline = rss_mib()
    start = time.perf_counter()
    sampler.start()
    FFTInterpTSNE(max_iter=n_iter, n_jobs=n_threads, random_state=0).fit(X)
    done.set()
    sampler.join()
    bounds = [("kNN search", start)] + marks + [("end", time.perf_counter())]
    print(f"N={n_samples} iterations={n_iter} threads={n_threads}")
    print(f"  before the fit (X and libraries)  {baseline:7.0f} MiB")
    for (label, begin), (_, end) in zip(bounds[:-1], bounds[1:]):
        peak = max((m for t, m in samples if begin <= t < end), default=np.nan)
        print(f"  {label:32s}  {peak:7.0f} MiB  ({end - begin:6.1f} s)")


def gradient_peak(n_samples, spread, n_threads, repeat):
    """tracemalloc peak and median time of one grid repulsion; prints them."""
    # pylint: disable=import-outside-toplevel
    from fasttsne.tsne._gradients import _interpolation

    Y = np.random.default_rng(0).normal(scale=spread, size=(n_samples, 2))
    grid = _interpolation.InterpolationGrid.covering(
        *_interpolation.bounding_box(Y), **_interpolation.GRID_KNOB_DEFAULTS
    )
    out = np.empty_like(Y)
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        _interpolation._repulsion_on_grid(Y, grid, 1.0, out, n_threads)
        times.append(time.perf_counter() - start)
    tracemalloc.start()
    _interpolation._repulsion_on_grid(Y, grid, 1.0, out, n_threads)
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    precision = np.dtype(_interpolation._fft_dtype(grid)).name
    print(
        f"N={n_samples} grid {grid.shape[0]} x {grid.shape[1]} nodes "
        f"(capped: {grid.capped}, FFTs in {precision}), "
        f"{n_threads} threads: peak {peak:.1f} MiB, median "
        f"{statistics.median(times):.3f} s of {repeat} calls"
    )


def main():
    """Parse the command line and run one measurement."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("what", choices=("fit", "gradient"))
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--n-iter", type=int, default=750)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--spread", type=float, default=30.0)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    if args.what == "fit":
        fit_by_phase(args.n, args.n_iter, args.threads)
    else:
        gradient_peak(args.n, args.spread, args.threads, args.repeat)


if __name__ == "__main__":
    main()
