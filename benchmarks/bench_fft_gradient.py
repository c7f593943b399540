"""Time and accuracy of the FIt-SNE repulsion: fasttsne against openTSNE.

Modes (run from the repository root after building in place)::

    python benchmarks/bench_fft_gradient.py            # per call, N = 20k/100k/250k
    python benchmarks/bench_fft_gradient.py --span     # time and error vs span, caps
    python benchmarks/bench_fft_gradient.py --profile  # FFT part vs the rest
    python benchmarks/bench_fft_gradient.py --full     # whole gradient
    python benchmarks/bench_fft_gradient.py --transform  # transform, vs BH
    python benchmarks/bench_fft_gradient.py --frozen     # frozen grid vs exact sums
    python benchmarks/bench_fft_gradient.py --iteration  # one fit iteration, by part
    python benchmarks/bench_fft_gradient.py --kernels    # the attraction's kernels

Embeddings are synthetic but shaped like t-SNE output: 20 clusters of unequal
size, each a uniformly filled disc whose area is proportional to its size,
rescaled to a given span (about 10-30 under early exaggeration and 50-150 at
exaggeration 1 for N = 100k). openTSNE's repulsion
(``openTSNE._tsne.estimate_negative_gradient_fft_2d``, called as
``openTSNE.tsne.kl_divergence_fft`` does) is serial; ours runs with
``--threads`` (default 2). Times are medians of interleaved repeats; errors are
relative 2-norm errors of the unnormalised repulsion on a random subset of
points against exact sums over all N points, and of ``Z`` where N is small
enough for the exact O(N^2) sum.
"""

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from fasttsne.linalg._circulant import _apply_spectrum, _kernel_spectrum
from fasttsne.tsne._gradients._interpolation import (
    DEFAULT_MAX_NUM_INTERVALS,
    InterpolationGrid,
    fft_repulsion,
)

KNOBS = {"n_interpolation_points": 3, "min_num_intervals": 50, "ints_in_interval": 1}


def make_embedding(n_samples, span, seed=0, n_components=2, n_clusters=20):
    """A t-SNE-like embedding: uniform discs of unequal sizes, given span."""
    rng = np.random.default_rng(seed)
    sizes = rng.dirichlet(np.full(n_clusters, 2.0))
    labels = rng.choice(n_clusters, size=n_samples, p=sizes)
    centres = rng.uniform(-1.0, 1.0, size=(n_clusters, n_components))
    radii = 0.25 * np.sqrt(sizes)
    direction = rng.normal(size=(n_samples, n_components))
    direction /= np.linalg.norm(direction, axis=1, keepdims=True)
    radius = radii[labels] * rng.uniform(size=n_samples) ** (1.0 / n_components)
    Y = centres[labels] + direction * radius[:, None]
    Y *= span / np.ptp(Y, axis=0).max()
    return np.ascontiguousarray(Y - Y.mean(axis=0))


def exact_repulsion_rows(Y, rows, dof=1.0, chunk=500):
    """Exact ``sum_{j != i} (w_ij / t_ij)(y_i - y_j)`` for the given rows."""
    out = np.empty((rows.size, Y.shape[1]))
    for start in range(0, rows.size, chunk):
        idx = rows[start : start + chunk]
        diff = Y[idx, None, :] - Y[None, :, :]
        t = 1.0 + np.einsum("ijk,ijk->ij", diff, diff) / dof
        kernel = t ** -(dof + 1.0)
        kernel[np.arange(idx.size), idx] = 0.0
        out[start : start + chunk] = np.einsum("ij,ijk->ik", kernel, diff)
    return out


def exact_normaliser(Y, dof=1.0, chunk=1000):
    """Exact ``sum_{i != j} w_ij`` by blocks (O(N^2) time, O(N chunk) memory)."""
    sq = np.einsum("ij,ij->i", Y, Y)
    total = 0.0
    for start in range(0, Y.shape[0], chunk):
        block = Y[start : start + chunk]
        D = sq[start : start + chunk, None] + sq[None, :] - 2.0 * block @ Y.T
        np.maximum(D, 0.0, out=D)
        total += np.sum((1.0 + D / dof) ** -dof)
    return total - Y.shape[0]


def ours(Y, n_threads, max_num_intervals=DEFAULT_MAX_NUM_INTERVALS):
    """Our unnormalised repulsion and Z."""
    out = np.empty_like(Y)
    Z = fft_repulsion(
        Y, 1.0, out, n_threads, **KNOBS, max_num_intervals=max_num_intervals
    )
    return out, Z


def opentsne(Y):
    """openTSNE's repulsion, unnormalised (it returns ``-rep / Z``) and Z."""
    from openTSNE import _tsne

    gradient = np.zeros_like(Y)
    args = (
        KNOBS["n_interpolation_points"],
        KNOBS["min_num_intervals"],
        KNOBS["ints_in_interval"],
    )
    if Y.shape[1] == 1:
        Z = _tsne.estimate_negative_gradient_fft_1d(
            Y.ravel(), gradient.ravel(), *args, dof=1.0
        )
    else:
        Z = _tsne.estimate_negative_gradient_fft_2d(Y, gradient, *args, dof=1.0)
    return -gradient * Z, Z


def median_times(functions, repeats):
    """Median seconds of each function, repeats interleaved so noise is shared."""
    times = [[] for _ in functions]
    for _ in range(repeats):
        for slot, function in zip(times, functions):
            start = time.perf_counter()
            function()
            slot.append(time.perf_counter() - start)
    return [float(np.median(slot)) for slot in times]


def subset_error(approx, exact, rows):
    """Relative 2-norm error of ``approx[rows]`` against ``exact``."""
    return float(np.linalg.norm(approx[rows] - exact) / np.linalg.norm(exact))


def per_call(args):
    """Ours vs openTSNE per repulsion call at N = 20k, 100k, 250k."""
    rows = []
    threads = f"ours {args.threads}t"
    print(
        f"{'N':>7} {'phase':>5} {'span':>5} | {'ours 1t':>8} {threads:>8}"
        f" {'openTSNE':>9} {'ratio':>6} | {'err ours':>8} {'err oTSNE':>9}"
        f" {'Z err ours':>10} {'Z err oTSNE':>11}"
    )
    for n_samples in args.sizes:
        scale = np.sqrt(n_samples / 100_000)
        for phase, span in (("EE", 20.0 * scale), ("late", 80.0 * scale)):
            Y = make_embedding(n_samples, span, seed=n_samples)
            t1, tn, t_open = median_times(
                [
                    lambda Y=Y: ours(Y, 1),
                    lambda Y=Y: ours(Y, args.threads),
                    lambda Y=Y: opentsne(Y),
                ],
                args.repeats,
            )
            rng = np.random.default_rng(1)
            size = min(args.subset, n_samples)
            subset = rng.choice(n_samples, size=size, replace=False)
            exact = exact_repulsion_rows(Y, subset)
            rep, Z = ours(Y, args.threads)
            rep_o, Z_o = opentsne(Y)
            z_err = z_err_o = float("nan")
            if n_samples <= args.exact_z_max:
                Z_exact = exact_normaliser(Y)
                z_err, z_err_o = abs(Z / Z_exact - 1), abs(Z_o / Z_exact - 1)
            row = {
                "n_samples": n_samples,
                "phase": phase,
                "span": span,
                "ours_1_thread_s": t1,
                "ours_s": tn,
                "opentsne_s": t_open,
                "ratio": tn / t_open,
                "error_ours": subset_error(rep, exact, subset),
                "error_opentsne": subset_error(rep_o, exact, subset),
                "Z_error_ours": z_err,
                "Z_error_opentsne": z_err_o,
            }
            rows.append(row)
            print(
                f"{n_samples:>7} {phase:>5} {span:>5.0f} | {t1 * 1e3:>6.1f}ms"
                f" {tn * 1e3:>6.1f}ms {t_open * 1e3:>7.1f}ms {row['ratio']:>6.2f} |"
                f" {row['error_ours']:>8.1e} {row['error_opentsne']:>9.1e}"
                f" {z_err:>10.1e} {z_err_o:>11.1e}",
                flush=True,
            )
    return rows


def span_scan(args):
    """Time and error against span, with and without the cap on boxes."""
    n_samples = args.span_n
    caps = args.caps
    print(f"N = {n_samples}, {args.threads} threads; time (ms) / subset error per cap")
    header = " ".join(f"{'cap ' + (str(c) if c else 'none'):>17}" for c in caps)
    print(f"{'span':>5} {header} {'openTSNE':>17}")
    rows = []
    for span in args.spans:
        Y = make_embedding(n_samples, span, seed=7)
        rng = np.random.default_rng(2)
        subset = rng.choice(n_samples, size=args.subset, replace=False)
        exact = exact_repulsion_rows(Y, subset)
        functions = [lambda Y=Y, cap=cap: ours(Y, args.threads, cap) for cap in caps]
        functions.append(lambda Y=Y: opentsne(Y))
        times = median_times(functions, args.repeats)
        cells, row = [], {"span": span, "n_samples": n_samples}
        for cap, seconds in zip(caps, times):
            error = subset_error(ours(Y, args.threads, cap)[0], exact, subset)
            row[f"cap_{cap}"] = {"seconds": seconds, "error": error}
            cells.append(f"{seconds * 1e3:>8.1f} / {error:.1e}")
        error_o = subset_error(opentsne(Y)[0], exact, subset)
        row["opentsne"] = {"seconds": times[-1], "error": error_o}
        cells.append(f"{times[-1] * 1e3:>8.1f} / {error_o:.1e}")
        rows.append(row)
        print(f"{span:>5.0f} " + " ".join(cells), flush=True)
    return rows


def profile(args):
    """Split our call into the FFT part and the rest (sort, spread, interpolate)."""
    n_samples = args.span_n
    print(f"N = {n_samples}, {args.threads} threads (medians, ms)")
    print(f"{'span':>5} {'grid':>11} {'total':>7} {'FFT part':>9} {'rest':>7}")
    rows = []
    for span in args.spans:
        Y = make_embedding(n_samples, span, seed=7)
        grid = InterpolationGrid.covering(
            Y.min(axis=0),
            Y.max(axis=0),
            **KNOBS,
            max_num_intervals=DEFAULT_MAX_NUM_INTERVALS,
        )
        shape = list(grid.shape)
        kernel = np.random.default_rng(0).random([2 * n - 1 for n in shape])
        charges = np.random.default_rng(1).random([Y.shape[1] + 2] + shape)

        def fft_part(kernel=kernel, charges=charges, shape=tuple(shape)):
            spectrum = _kernel_spectrum(kernel, shape, workers=args.threads)
            _apply_spectrum(spectrum, charges, workers=args.threads)

        total, fft_time = median_times(
            [lambda Y=Y: ours(Y, args.threads), fft_part], args.repeats
        )
        rows.append({"span": span, "grid": shape, "total": total, "fft": fft_time})
        print(
            f"{span:>5.0f} {str(shape[0]) + 'x' + str(shape[1]):>11}"
            f" {total * 1e3:>7.1f} {fft_time * 1e3:>9.1f}"
            f" {(total - fft_time) * 1e3:>7.1f}",
            flush=True,
        )
    return rows


def random_affinities(n_samples, n_neighbors, seed=0):
    """A symmetric CSR P summing to 1 with ~2 n_neighbors entries per row."""
    import scipy.sparse

    rng = np.random.default_rng(seed)
    rows = np.repeat(np.arange(n_samples), n_neighbors)
    cols = (rows + rng.integers(1, n_samples, size=rows.size)) % n_samples
    P = scipy.sparse.csr_matrix(
        (rng.uniform(size=rows.size), (rows, cols)), shape=(n_samples, n_samples)
    )
    P = P + P.T
    return (P / P.sum()).tocsr()


def full_gradient(args):
    """The whole gradient: FFTGradient against openTSNE's kl_divergence_fft."""
    from openTSNE.tsne import kl_divergence_fft

    from fasttsne.tsne._gradients._fft import FFTGradient

    backend = FFTGradient(**KNOBS, n_threads=args.threads)
    rows = []
    print(f"{'N':>7} {'phase':>5} | {'ours':>8} {'openTSNE':>9} {'ratio':>6}")
    for n_samples in args.sizes:
        P = random_affinities(n_samples, 90)
        scale = np.sqrt(n_samples / 100_000)
        phases = (("EE", 20 * scale, 12.0), ("late", 80 * scale, 1.0))
        for phase, span, exaggeration in phases:
            Y = make_embedding(n_samples, span, seed=n_samples)
            P_open = P * exaggeration  # openTSNE exaggerates by scaling P

            backend.prepare(P)

            def run_ours(Y=Y, exaggeration=exaggeration):
                backend(Y, exaggeration=exaggeration, dof=1.0, compute_error=False)

            def run_open(Y=Y, P_open=P_open):
                kl_divergence_fft(Y, P_open, 1.0, dict(KNOBS), n_jobs=args.threads)

            t_ours, t_open = median_times([run_ours, run_open], args.repeats)
            rows.append(
                {
                    "n_samples": n_samples,
                    "phase": phase,
                    "ours_s": t_ours,
                    "opentsne_s": t_open,
                    "ratio": t_ours / t_open,
                }
            )
            print(
                f"{n_samples:>7} {phase:>5} | {t_ours * 1e3:>6.1f}ms"
                f" {t_open * 1e3:>7.1f}ms {t_ours / t_open:>6.2f}",
                flush=True,
            )
    return rows


def transform_quality(args):
    """Held-out digits placed by transform: BH against FFT, kNN accuracy and time."""
    from sklearn.datasets import load_digits
    from sklearn.neighbors import KNeighborsClassifier

    from fasttsne import BarnesHutTSNE, FFTInterpTSNE

    X, y = load_digits(return_X_y=True)
    rows = []
    print(f"{'train':>6} {'new':>5} {'estimator':>14} | {'5-NN acc':>8} {'time':>7}")
    for n_train in args.train_sizes:
        pixels = KNeighborsClassifier(5).fit(X[:n_train], y[:n_train])
        baseline = pixels.score(X[n_train:], y[n_train:])
        for cls in (BarnesHutTSNE, FFTInterpTSNE):
            tsne = cls(random_state=0, n_jobs=args.threads).fit(X[:n_train])
            start = time.perf_counter()
            Y_new = tsne.transform(X[n_train:])
            seconds = time.perf_counter() - start
            knn = KNeighborsClassifier(5).fit(tsne.embedding_, y[:n_train])
            accuracy = knn.score(Y_new, y[n_train:])
            rows.append(
                {
                    "n_train": n_train,
                    "estimator": cls.__name__,
                    "accuracy": accuracy,
                    "pixels_accuracy": baseline,
                    "transform_s": seconds,
                }
            )
            print(
                f"{n_train:>6} {len(X) - n_train:>5} {cls.__name__:>14} |"
                f" {accuracy:>8.3f} {seconds:>6.2f}s (5-NN on pixels {baseline:.3f})",
                flush=True,
            )
    return rows


def frozen_crossover(args):
    """Per step against a frozen embedding: exact sums against the frozen grid."""
    from fasttsne._cython._quadtree import _Workspace, bh_repulsion_from_frozen
    from fasttsne.tsne._gradients._interpolation import FrozenInterpolation

    rng = np.random.default_rng(0)
    queries = make_embedding(args.n_queries, 40.0, seed=1)
    rows = []
    print(f"{'frozen':>7} | {'exact/step':>10} {'grid/step':>10} {'grid build':>10}")
    for n_frozen in args.frozen_sizes:
        frozen = make_embedding(n_frozen, 40.0, seed=int(rng.integers(1 << 30)))
        out, sum_w = np.empty_like(queries), np.empty(len(queries))
        workspace = _Workspace()

        def exact(frozen=frozen, out=out, sum_w=sum_w, workspace=workspace):
            bh_repulsion_from_frozen(
                frozen, queries, 0.0, 1.0, out, sum_w, args.threads, workspace
            )

        start = time.perf_counter()
        grid = FrozenInterpolation(
            frozen, 1.0, args.threads, **KNOBS, max_num_intervals=0
        )
        build = time.perf_counter() - start
        t_exact, t_grid = median_times(
            [exact, lambda grid=grid, out=out, sum_w=sum_w: grid(queries, out, sum_w)],
            args.repeats,
        )
        rows.append(
            {"n_frozen": n_frozen, "exact": t_exact, "grid": t_grid, "build": build}
        )
        print(
            f"{n_frozen:>7} | {t_exact * 1e3:>8.2f}ms {t_grid * 1e3:>8.2f}ms"
            f" {build * 1e3:>8.1f}ms",
            flush=True,
        )
    return rows


def local_affinities(Y, n_neighbors, seed=0):
    """A symmetric CSR P summing to 1 from the kNN of the 2-D points ``Y``.

    Returns ``(Y, P)`` with the points renumbered in the reverse Cuthill-McKee
    order of the kNN graph, as a large fit numbers them (``_layout.py``), so
    that the attraction gathers neighbours close in memory as in a real fit.
    The values are random: only the sparsity pattern and the values' dtype
    matter for speed. They are in a fit's dtype: ``P_DTYPE``, or float64
    where the package has none (the script also runs against other commits).
    """
    import scipy.sparse
    from scipy.spatial import cKDTree

    from fasttsne.tsne import _affinity
    from fasttsne.tsne._layout import _locality_order

    n_samples = Y.shape[0]
    _, indices = cKDTree(Y).query(Y, k=n_neighbors + 1, workers=-1)
    indices = indices[:, 1:]
    indptr = np.arange(0, indices.size + 1, n_neighbors)
    order = _locality_order(indices, indptr)
    rank = np.empty_like(order)
    rank[order] = np.arange(n_samples)
    rows = np.repeat(np.arange(n_samples), n_neighbors)
    values = np.random.default_rng(seed).uniform(0.5, 1.0, size=rows.size)
    P = scipy.sparse.csr_matrix(
        (values, (rank[rows], rank[indices.ravel()])), shape=(n_samples,) * 2
    )
    P = P + P.T
    P = (P / P.sum()).tocsr()
    P.sort_indices()
    P.data = P.data.astype(getattr(_affinity, "P_DTYPE", np.float64))
    return np.ascontiguousarray(Y[order]), P


def time_parts(funcs, repeats):
    """Interleaved medians of wall and CPU (all threads) seconds, after a warm-up."""
    wall = {name: [] for name in funcs}
    cpu = {name: [] for name in funcs}
    for func in funcs.values():
        func()
    for _ in range(repeats):
        for name, func in funcs.items():
            start, start_cpu = time.perf_counter(), time.process_time()
            func()
            wall[name].append(time.perf_counter() - start)
            cpu[name].append(time.process_time() - start_cpu)
    return {
        name: (float(np.median(wall[name])), float(np.median(cpu[name])))
        for name in funcs
    }


def iteration_funcs(Y, P, n_threads):
    """Name -> zero-argument callable for each timed part of one iteration.

    Returns the callables and the grid of ``Y``. The private pipeline steps
    are reached through their module, so that this also runs against a
    version without ``_fft_dtype`` (a before/after comparison).
    """
    # pylint: disable=protected-access
    from fasttsne._cython._forces import attractive_forces
    from fasttsne._cython._interp import (
        bounding_box,
        interpolate_repulsion,
        sort_into_boxes,
        spread_charges,
    )
    from fasttsne.tsne._gradients import _interpolation
    from fasttsne.tsne._gradients._fft import FFTGradient
    from fasttsne.tsne._optimizer import GradientDescent

    backend = FFTGradient(**KNOBS, repulsion="grid", n_threads=n_threads)
    backend.prepare(P)
    grid = InterpolationGrid.covering(
        *bounding_box(Y), **KNOBS, max_num_intervals=DEFAULT_MAX_NUM_INTERVALS
    )
    fft_dtype = _interpolation._fft_dtype(grid)  # the precision of a fit's call
    out = np.empty_like(Y)
    order, offsets = sort_into_boxes(Y, grid)
    ys, charges, kernel = spread_charges(Y, order, offsets, grid, 1.0, False, n_threads)
    table = _interpolation._self_table(grid, kernel)
    optimizer = GradientDescent(float(Y.shape[0]) / 12.0)
    Y_step = Y.copy()
    _, grad = backend(Y, exaggeration=1.0, dof=1.0, compute_error=False)
    indptr, indices = P.indptr.astype(np.int32), P.indices.astype(np.int32)

    def ffts():
        spectrum = _interpolation._grid_spectrum(grid, kernel, n_threads, fft_dtype)
        return _interpolation._potentials(spectrum, charges, n_threads)

    potentials = ffts()
    funcs = {
        "gradient call": lambda: backend(
            Y, exaggeration=1.0, dof=1.0, compute_error=False
        ),
        "attraction": lambda: attractive_forces(
            indptr, indices, P.data, Y, 1.0, 1.0, out, n_threads
        ),
        "repulsion": lambda: _interpolation._repulsion_on_grid(
            Y, grid, 1.0, out, n_threads
        ),
        "  bounding box": lambda: bounding_box(Y),
        "  sort": lambda: sort_into_boxes(Y, grid),
        "  spread + kernel": lambda: spread_charges(
            Y, order, offsets, grid, 1.0, False, n_threads
        ),
        "  FFTs": ffts,
        "  interpolate": lambda: interpolate_repulsion(
            ys, order, offsets, grid, potentials, table, 1.0, out, n_threads
        ),
        "descent step": lambda: optimizer.step(Y_step, grad, 0.8),
    }
    return funcs, grid


def attraction_kernels(args):
    """The attraction's code paths on one kNN P, one thread, by P's dtype.

    On the same P and embedding (``local_affinities`` at ``--sizes`` with
    spans ``--iteration-spans``): with float32 values (a fit's) and int32
    indices, the 128-bit vector kernel (AVX forbidden) and the AVX kernel
    where the CPU has it; the scalar loop otherwise (int64 indices, or
    float64 values). Interleaved medians of ``--repeats`` wall and CPU
    times.
    """
    from fasttsne._cython._forces import (
        _allow_avx,
        _attraction_kernel,
        attractive_forces,
    )

    def run(indptr, indices, data, Y, out, allow_avx):
        def call():
            previous = _allow_avx(allow_avx)
            try:
                attractive_forces(indptr, indices, data, Y, 1.0, 1.0, out, 1)
            finally:
                _allow_avx(previous)

        return call

    rows = []
    for n_samples, span in zip(args.sizes, args.iteration_spans):
        Y, P = local_affinities(
            make_embedding(n_samples, span, seed=n_samples), args.n_neighbors
        )
        out = np.empty_like(Y)
        funcs = {}
        for dtype in (np.float32, np.float64):
            data = P.data.astype(dtype)
            for index_dtype in (np.int32, np.int64):
                indptr = P.indptr.astype(index_dtype)
                indices = P.indices.astype(index_dtype)
                for allow_avx in (False, True):
                    previous = _allow_avx(allow_avx)
                    fast = index_dtype == np.int32 and dtype == np.float32
                    kernel = _attraction_kernel() if fast else "scalar"
                    _allow_avx(previous)
                    width = np.dtype(index_dtype).itemsize * 8
                    name = f"{np.dtype(dtype).name} P, int{width}, {kernel}"
                    if name not in funcs:
                        funcs[name] = run(indptr, indices, data, Y, out, allow_avx)
        times = time_parts(funcs, args.repeats)
        print(
            f"N = {n_samples}, nnz(P) = {P.nnz}, one thread; medians of "
            f"{args.repeats}"
        )
        print(f"{'path':>27} {'wall ms':>8} {'cpu ms':>8}")
        for name, (wall, cpu) in times.items():
            print(f"{name:>27} {wall * 1e3:>8.1f} {cpu * 1e3:>8.1f}", flush=True)
        rows.append({"n_samples": n_samples, "nnz": P.nnz, "times": times})
    return rows


def iteration_parts(args):
    """One fit iteration at the given sizes and spans, split into its parts.

    The gradient call (attraction, repulsion, assembly) of ``FFTGradient``
    with ``repulsion="grid"``, each of its steps alone (attraction; bounding
    box, sort, spreading with the kernel table, FFTs, interpolation), and
    the descent step, on a kNN P of ``--n-neighbors`` per point (about
    ``1.1 n_neighbors`` stored entries per row after symmetrisation).
    """
    rows = []
    for n_samples, span in zip(args.sizes, args.iteration_spans):
        Y0 = make_embedding(n_samples, span, seed=n_samples)
        Y, P = local_affinities(Y0, args.n_neighbors)
        funcs, grid = iteration_funcs(Y, P, args.threads)
        times = time_parts(funcs, args.repeats)
        nnz = P.nnz
        print(
            f"N = {n_samples}, span {span:.0f}, nnz(P) = {nnz} "
            f"({nnz / n_samples:.0f} a row), grid {grid.shape}, circulant "
            f"{grid.fft_shape}, {args.threads} threads; medians of {args.repeats}"
        )
        print(f"{'part':>18} {'wall ms':>8} {'cpu ms':>8}")
        row = {"n_samples": n_samples, "span": span, "nnz": nnz}
        for name, (wall, cpu) in times.items():
            row[name.strip()] = {"wall_s": wall, "cpu_s": cpu}
            print(f"{name:>18} {wall * 1e3:>8.1f} {cpu * 1e3:>8.1f}", flush=True)
        rows.append(row)
    return rows


def main(argv=None):
    """Parse the options, run the chosen mode, print (and save) the results."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--span", action="store_true", help="time and error vs span")
    mode.add_argument("--profile", action="store_true", help="FFT part vs the rest")
    mode.add_argument("--full", action="store_true", help="whole gradient")
    mode.add_argument(
        "--transform", action="store_true", help="transform of held-out digits"
    )
    mode.add_argument(
        "--frozen", action="store_true", help="frozen grid against exact sums"
    )
    mode.add_argument(
        "--iteration", action="store_true", help="one fit iteration, by part"
    )
    mode.add_argument(
        "--kernels", action="store_true", help="the attraction's code paths"
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument(
        "--sizes", type=int, nargs="+", default=[20_000, 100_000, 250_000]
    )
    parser.add_argument(
        "--spans", type=float, nargs="+", default=[25, 50, 100, 200, 300, 400, 600]
    )
    parser.add_argument("--span-n", type=int, default=100_000)
    parser.add_argument(
        "--caps", type=int, nargs="+", default=[0, 400, 300, 200], help="0: no cap"
    )
    parser.add_argument(
        "--train-sizes", type=int, nargs="+", default=[1300, 1600], help="transform"
    )
    parser.add_argument(
        "--frozen-sizes", type=int, nargs="+", default=[32, 64, 128, 512, 1500]
    )
    parser.add_argument("--n-queries", type=int, default=5000, help="--frozen")
    parser.add_argument(
        "--iteration-spans",
        type=float,
        nargs="+",
        default=[100, 100, 300],
        help="--iteration: one span per size",
    )
    parser.add_argument("--n-neighbors", type=int, default=90, help="--iteration")
    parser.add_argument("--subset", type=int, default=2000)
    parser.add_argument("--exact-z-max", type=int, default=20_000)
    parser.add_argument("--save", type=Path, help="write the rows as JSON here")
    args = parser.parse_args(argv)
    if args.span:
        rows = span_scan(args)
    elif args.profile:
        rows = profile(args)
    elif args.full:
        rows = full_gradient(args)
    elif args.transform:
        rows = transform_quality(args)
    elif args.frozen:
        rows = frozen_crossover(args)
    elif args.iteration:
        rows = iteration_parts(args)
    elif args.kernels:
        rows = attraction_kernels(args)
    else:
        rows = per_call(args)
    if args.save:
        args.save.parent.mkdir(parents=True, exist_ok=True)
        args.save.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
