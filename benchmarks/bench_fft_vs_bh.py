"""FFTInterpTSNE against BarnesHutTSNE (or its forced grid), side by side in one run.

For each data set the ``--estimators`` (``bh``: BarnesHutTSNE, ``fft``:
FFTInterpTSNE, ``fft-grid``: FFTInterpTSNE with ``repulsion="grid"``) fit with
their defaults (``random_state=0``, the same threads, 2 by default), one after
the other in this process, ``--repeats`` times in alternating order; the table
gives the median wall time of each fit, its ratio to the first estimator's,
the KL divergence of each final embedding under one common P (exact for small
N, Barnes-Hut at angle 0.2 otherwise: ``bench_tsne.kl_of``), trustworthiness
on a subset, the final span and FFTInterpTSNE's ``n_tree_calls_``. Data:
scikit-learn's digits, or the 20-cluster Gaussian mixture of ``bench_tsne.py``
(``gmm:N``). The commit and the load are printed with the results.

``--calibrate`` instead times one repulsion call of each method (medians of 5,
wall and CPU) at each of ``--threads-list`` on the synthetic embeddings of
``bench_fft_gradient.py`` over ``--sizes`` and ``--spans``, next to the FFT
backend's cost model (``fasttsne/tsne/_gradients/_fft.py``); it fits the
model's constants to the wall times by least squares, prints them, and counts
the cases where the model picks the slower method.

Examples
--------
cd benchmarks
PYTHONPATH=.. OMP_WAIT_POLICY=passive python bench_fft_vs_bh.py --data digits gmm:20000
PYTHONPATH=.. OMP_WAIT_POLICY=passive python bench_fft_vs_bh.py --data gmm:100000 \
    --estimators fft-grid fft bh --repeats 1
PYTHONPATH=.. OMP_WAIT_POLICY=passive python bench_fft_vs_bh.py --calibrate
"""

# The calibration reads the cost model's private constants.
# pylint: disable=protected-access
import argparse
import math
import os
import subprocess
import time

import numpy as np

from bench_fft_gradient import make_embedding
from bench_tsne import common_affinities, kl_of, make_data, quality

ESTIMATORS = {
    "bh": ("BarnesHutTSNE", {}),
    "fft": ("FFTInterpTSNE", {}),
    "fft-grid": ("FFTInterpTSNE", {"repulsion": "grid"}),
}


def fit_once(spec, X, threads):
    """Wall time, embedding and tree iterations of one default fit."""
    import fasttsne

    name, params = ESTIMATORS[spec]
    estimator = getattr(fasttsne, name)(random_state=0, n_jobs=threads, **params)
    start = time.perf_counter()
    Y = estimator.fit_transform(X)
    seconds = time.perf_counter() - start
    return seconds, Y, getattr(estimator, "n_tree_calls_", "-")


def commit():
    """The checkout's commit (and whether it has local changes), for the record."""
    try:
        head = subprocess.run(
            ["git", "describe", "--always", "--dirty"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        head = "unknown"
    return head


def timed_medians(function, repeats=5):
    """Median wall and CPU seconds (all threads of the process) of ``function()``."""
    wall, cpu = [], []
    for _ in range(repeats):
        start_wall, start_cpu = time.perf_counter(), time.process_time()
        function()
        cpu.append(time.process_time() - start_cpu)
        wall.append(time.perf_counter() - start_wall)
    return float(np.median(wall)), float(np.median(cpu))


def fit_cost_model(rows):
    """Least-squares constants of the cost model from timed calls.

    ``rows`` holds ``(n_samples, n_nodes, grid_seconds, tree_seconds)``. The
    grid is fitted as ``a L log2 L + b N`` and the tree as ``c N log2 N``, each
    by least squares relative to the measured time (every call weighs the same
    whatever its size); the model's constants are ``b / a`` and ``c / a``.
    """
    n = np.array([row[0] for row in rows], dtype=float)
    nodes = np.array([row[1] for row in rows], dtype=float)
    grid = np.array([row[2] for row in rows])
    tree = np.array([row[3] for row in rows])
    design = np.column_stack([nodes * np.log2(nodes), n]) / grid[:, None]
    (a, b), *_ = np.linalg.lstsq(design, np.ones_like(grid), rcond=None)
    c = float(np.mean(tree / (n * np.log2(n))))
    return b / a, c / a


def model_ratio(n_samples, n_nodes, grid_per_point, tree_per_point):
    """The cost model's grid/tree ratio for given constants."""
    grid = n_nodes * math.log2(n_nodes) + grid_per_point * n_samples
    return grid / (tree_per_point * n_samples * math.log2(n_samples))


def calibrate(sizes, spans, threads):
    """Wall and CPU time of a grid and a tree call per thread count; fitted model.

    Prints one row per N, span and thread count, then the least-squares
    constants fitted to the wall times of each thread count, the model's
    constants and, per thread count, how often and by how much the model picks
    the slower method.
    """
    from fasttsne._cython._quadtree import _Workspace, bh_repulsion
    from fasttsne.tsne._gradients import _fft
    from fasttsne.tsne._gradients._interpolation import (
        GRID_KNOB_DEFAULTS,
        InterpolationGrid,
        _fft_repulsion,
    )

    workspace = _Workspace()
    constants = (_fft._GRID_COST_PER_POINT, _fft._TREE_COST_PER_POINT)
    print(
        f"{'N':>8} {'span':>5} {'thr':>3} {'L':>8} {'grid ms':>8} {'tree ms':>8} "
        f"{'grid cpu':>8} {'tree cpu':>8} {'grid/tree':>9} {'model':>7} {'tree?':>6}"
    )
    rows = {n_threads: [] for n_threads in threads}
    for n_samples in sizes:
        for span in spans:
            Y = make_embedding(n_samples, span, seed=3)
            out = np.empty_like(Y)
            grid = InterpolationGrid.covering(
                Y.min(axis=0), Y.max(axis=0), **GRID_KNOB_DEFAULTS
            )
            n_nodes = math.prod(grid.fft_shape)
            for n_threads in threads:
                grid_wall, grid_cpu = timed_medians(
                    lambda Y=Y, out=out, t=n_threads: _fft_repulsion(
                        Y, 1.0, out, t, **GRID_KNOB_DEFAULTS
                    )
                )
                tree_wall, tree_cpu = timed_medians(
                    lambda Y=Y, out=out, t=n_threads: bh_repulsion(
                        Y, _fft._TREE_ANGLE, 1.0, out, t, workspace=workspace
                    )
                )
                rows[n_threads].append((n_samples, n_nodes, grid_wall, tree_wall))
                print(
                    f"{n_samples:>8} {span:>5.0f} {n_threads:>3} {n_nodes:>8} "
                    f"{grid_wall * 1e3:>8.2f} {tree_wall * 1e3:>8.2f} "
                    f"{grid_cpu * 1e3:>8.2f} {tree_cpu * 1e3:>8.2f} "
                    f"{grid_wall / tree_wall:>9.2f} "
                    f"{model_ratio(n_samples, n_nodes, *constants):>7.2f} "
                    f"{str(_fft._tree_is_cheaper(n_samples, grid)):>6}",
                    flush=True,
                )
    for n_threads, timed in rows.items():
        fitted = fit_cost_model(timed)
        print(
            f"threads={n_threads}: least squares on wall times: "
            f"grid {fitted[0]:.1f} per point, tree {fitted[1]:.2f} per point"
        )
    print(f"model: grid {constants[0]:.1f} per point, tree {constants[1]:.2f}")
    for n_threads, timed in rows.items():
        wrong = [
            max(grid, tree) / min(grid, tree)
            for n_samples, n_nodes, grid, tree in timed
            if (model_ratio(n_samples, n_nodes, *constants) > 1) != (grid > tree)
        ]
        worst = max(wrong, default=1.0)
        print(
            f"threads={n_threads}: model picks the slower call in {len(wrong)} of "
            f"{len(timed)} cases, worst by {worst:.2f}x"
        )


def main(argv=None):
    """Print one row per data set and estimator: time, KL, trustworthiness."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", nargs="+", default=["digits"])
    parser.add_argument(
        "--estimators", nargs="+", choices=sorted(ESTIMATORS), default=["bh", "fft"]
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--threads-list",
        type=int,
        nargs="+",
        default=[1, 2],
        help="thread counts timed by --calibrate",
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--n-eval", type=int, default=5000)
    parser.add_argument(
        "--calibrate", action="store_true", help="per-call times vs the cost model"
    )
    parser.add_argument(
        "--sizes", type=int, nargs="+", default=[20_000, 100_000, 250_000]
    )
    parser.add_argument(
        "--spans",
        type=float,
        nargs="+",
        default=[20.0, 50.0, 100.0, 150.0, 200.0, 300.0],
    )
    args = parser.parse_args(argv)
    print(f"commit {commit()}, load {os.getloadavg()}")
    if args.calibrate:
        calibrate(args.sizes, args.spans, args.threads_list)
        print(f"load {os.getloadavg()}")
        return
    print(f"threads={args.threads} repeats={args.repeats} (median wall seconds)")
    first = args.estimators[0]
    print(
        f"{'data':>8} {'N':>7} {'estimator':>9} {'s':>8} {f'/{first}':>9} "
        f"{'KL':>7} {'trust':>7} {'span':>6} {'tree it':>7}"
    )
    for spec in args.data:
        name, _, n = spec.partition(":")
        X, y = make_data(name, int(n or 0))
        times = {est: [] for est in args.estimators}
        fitted = {}
        for repeat in range(args.repeats):
            # Alternate the order so neither estimator always runs first.
            order = args.estimators[:: -1 if repeat % 2 else 1]
            for est in order:
                seconds, Y, n_tree = fit_once(est, X, args.threads)
                times[est].append(seconds)
                fitted[est] = (Y, n_tree)
        P = common_affinities(X, args.threads)
        median = {est: float(np.median(slot)) for est, slot in times.items()}
        for est, (Y, n_tree) in fitted.items():
            kl = kl_of(P, Y, args.threads)
            trust = quality(X, Y, y, args.n_eval)[1]
            print(
                f"{name:>8} {len(X):>7} {est:>9} {median[est]:>8.2f} "
                f"{median[est] / median[first]:>9.2f} {kl:>7.4f} {trust:>7.4f} "
                f"{np.ptp(Y, axis=0).max():>6.0f} {n_tree:>7}",
                flush=True,
            )
    print(f"load {os.getloadavg()}")


if __name__ == "__main__":
    main()
