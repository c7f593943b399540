"""FFTInterpTSNE against BarnesHutTSNE, side by side in one run, at several N.

For each data set both estimators fit with their defaults (``random_state=0``,
the same threads), one after the other in this process, ``--repeats`` times
interleaved; the table gives the median wall time of each fit, their ratio,
the KL divergence of each final embedding under one common P (exact for small
N, Barnes-Hut at angle 0.2 otherwise: ``bench_tsne.kl_of``), and
trustworthiness on a subset. Data: scikit-learn's digits, or the 20-cluster
Gaussian mixture of ``bench_tsne.py`` (``gmm:N``).

``--calibrate`` instead times one repulsion call of each method on one thread
(CPU time, steadier than wall time on a shared machine: medians of 5) on the
synthetic embeddings of ``bench_fft_gradient.py`` over N and span, next to the
FFT backend's cost model (``fasttsne/tsne/_gradients/_fft.py``), whose
constants were fitted to this table.

Examples
--------
python benchmarks/bench_fft_vs_bh.py --data digits gmm:10000 gmm:20000
python benchmarks/bench_fft_vs_bh.py --data gmm:100000 --repeats 1
python benchmarks/bench_fft_vs_bh.py --calibrate
"""

# The calibration reads the cost model's private constants.
# pylint: disable=protected-access
import argparse
import math
import time

import numpy as np

from bench_fft_gradient import make_embedding
from bench_tsne import common_affinities, kl_of, make_data, quality


def fit_once(cls, X, threads):
    """Wall time and embedding of one default fit."""
    start = time.perf_counter()
    Y = cls(random_state=0, n_jobs=threads).fit_transform(X)
    return time.perf_counter() - start, Y


def cpu_median(function, repeats=5):
    """Median CPU seconds of ``function()`` (all threads of the process)."""
    times = []
    for _ in range(repeats):
        start = time.process_time()
        function()
        times.append(time.process_time() - start)
    return float(np.median(times))


def calibrate(sizes, spans):
    """One-thread CPU time of a grid call and a tree call, and the model's."""
    from fasttsne._cython._quadtree import _Workspace, bh_repulsion
    from fasttsne.tsne._gradients import _fft
    from fasttsne.tsne._gradients._interpolation import (
        GRID_KNOB_DEFAULTS,
        InterpolationGrid,
        _fft_repulsion,
    )

    workspace = _Workspace()
    print(
        f"{'N':>8} {'span':>5} {'L':>8} {'grid ms':>8} {'tree ms':>8} "
        f"{'grid/tree':>9} {'model':>7} {'tree?':>6}"
    )
    for n_samples in sizes:
        for span in spans:
            Y = make_embedding(n_samples, span, seed=3)
            out = np.empty_like(Y)
            grid = InterpolationGrid.covering(
                Y.min(axis=0), Y.max(axis=0), **GRID_KNOB_DEFAULTS
            )
            n_nodes = math.prod(grid.fft_shape)
            grid_time = cpu_median(
                lambda Y=Y, out=out: _fft_repulsion(
                    Y, 1.0, out, 1, **GRID_KNOB_DEFAULTS
                )
            )
            tree_time = cpu_median(
                lambda Y=Y, out=out: bh_repulsion(
                    Y, _fft._TREE_ANGLE, 1.0, out, 1, workspace=workspace
                )
            )
            model = (
                n_nodes * math.log2(n_nodes) + _fft._GRID_COST_PER_POINT * n_samples
            ) / (_fft._TREE_COST_PER_POINT * n_samples * math.log2(n_samples))
            print(
                f"{n_samples:>8} {span:>5.0f} {n_nodes:>8} {grid_time * 1e3:>8.2f} "
                f"{tree_time * 1e3:>8.2f} {grid_time / tree_time:>9.2f} "
                f"{model:>7.2f} {str(_fft._tree_is_cheaper(n_samples, grid)):>6}",
                flush=True,
            )


def main(argv=None):
    """Print one row per data set: times, ratio, KL and trustworthiness."""
    from fasttsne import BarnesHutTSNE, FFTInterpTSNE

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", nargs="+", default=["digits"])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--n-eval", type=int, default=5000)
    parser.add_argument(
        "--calibrate", action="store_true", help="per-call times vs the cost model"
    )
    parser.add_argument(
        "--sizes", type=int, nargs="+", default=[2000, 5000, 10_000, 20_000, 50_000]
    )
    parser.add_argument(
        "--spans", type=float, nargs="+", default=[8.0, 20.0, 50.0, 100.0, 150.0]
    )
    args = parser.parse_args(argv)
    if args.calibrate:
        calibrate(args.sizes, args.spans)
        return
    print(f"threads={args.threads} repeats={args.repeats} (median wall seconds)")
    print(
        f"{'data':>12} {'N':>7} {'BH s':>8} {'FFT s':>8} {'FFT/BH':>7} "
        f"{'KL BH':>7} {'KL FFT':>7} {'KL ratio':>8} {'trust BH':>8} "
        f"{'trust FFT':>9}"
    )
    for spec in args.data:
        name, _, n = spec.partition(":")
        X, y = make_data(name, int(n or 0))
        times = {BarnesHutTSNE: [], FFTInterpTSNE: []}
        embeddings = {}
        for _ in range(args.repeats):
            for cls, slot in times.items():
                seconds, embeddings[cls] = fit_once(cls, X, args.threads)
                slot.append(seconds)
        P = common_affinities(X, args.threads)
        kl = {cls: kl_of(P, Y, args.threads) for cls, Y in embeddings.items()}
        trust = {cls: quality(X, Y, y, args.n_eval)[1] for cls, Y in embeddings.items()}
        bh, fft = (float(np.median(times[c])) for c in (BarnesHutTSNE, FFTInterpTSNE))
        print(
            f"{name:>12} {len(X):>7} {bh:>8.2f} {fft:>8.2f} {fft / bh:>7.2f} "
            f"{kl[BarnesHutTSNE]:>7.4f} {kl[FFTInterpTSNE]:>7.4f} "
            f"{kl[FFTInterpTSNE] / kl[BarnesHutTSNE]:>8.4f} "
            f"{trust[BarnesHutTSNE]:>8.4f} {trust[FFTInterpTSNE]:>9.4f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
