"""Benchmark ToeplitzKernel against scipy's Toeplitz products and solves.

Everything runs side by side in one process, so that the ratios compare
like with like::

    python benchmarks/bench_toeplitz.py
    python benchmarks/bench_toeplitz.py --sizes 1000 10000 --batches 1 --repeats 5
    SCIPY_ARRAY_API=1 python benchmarks/bench_toeplitz.py --device cuda  # GPU tensors
    SCIPY_ARRAY_API=1 python benchmarks/bench_toeplitz.py --device cpu   # CPU tensors

Products (``X @ T.T`` for a batch of rows): the fitted ``transform`` (1 thread,
all threads, float32), a bare real-FFT pair of the same length with the
kernel's FFT cached (the floor of any FFT product; the summary prints
``transform`` over it), ``scipy.linalg.matmul_toeplitz`` (1 thread, all
threads), ``scipy.signal.fftconvolve`` and a dense product with a prebuilt
``scipy.linalg.toeplitz`` matrix. Solves (``T z = x``): ``inverse_transform``
(circulant-preconditioned CG) and ``scipy.linalg.solve_toeplitz`` (Levinson).
The kernel is the t-SNE (Cauchy) kernel ``1 / (1 + (m / h)^2)``, symmetric,
with full support, so every FFT method works on the whole circulant embedding.
``matmul_toeplitz`` transforms the length ``2n - 1`` as it is, which at round
sizes (1999, 19999 = 7 * 2857, 199999, 1999999 = 17 * 71 * 1657) has large
prime factors; the table prints them, since part of the measured gap comes
from there and part from reusing the kernel's FFT.

Methods predicted to exceed ``--max-call-seconds`` per call (from their
measured time at the previous size, scaled by n log n for FFT methods and n^2
for dense and Levinson ones) or the memory limits are skipped, and the table
says so. Times are medians over up to ``--repeats`` calls after one warm-up
call, as many as fit in ``--budget-seconds``; a warm-up slower than a third of
that budget is the only sample (the ``reps`` column says how many). Ratios
are the time of each method over the time of the matching ToeplitzKernel
method (product or solve): above 1 means ToeplitzKernel is that many times
faster.

With ``--device cpu`` or ``--device cuda`` the rows are torch tensors on that
device, under ``sklearn.config_context(array_api_dispatch=True)``: the fitted
``transform`` and ``inverse_transform`` side by side with a plain
``torch.fft`` convolution of the same length with the kernel's FFT cached
(``rfft``, product, ``irfft``: the floor issue 12 compares with, target 1.5x
at 10^6 x 64 on CUDA). Without torch, or without a CUDA device for
``--device cuda``, it says so and exits 0.
"""

import argparse
import json
import math
import os
import platform
import time

import numpy as np
import scipy
import scipy.linalg
import scipy.fft
import scipy.signal
import sklearn

from fasttsne import ToeplitzKernel

OURS_PRODUCT = "ToeplitzKernel.transform"
OURS_SOLVE = "ToeplitzKernel.inverse_transform"
FFT_PAIR = "bare rfft/irfft pair, cached spectrum"


def _median_time(func, repeats, budget_seconds):
    """Median wall time of ``func()`` after one warm-up call.

    A warm-up slower than a third of ``budget_seconds`` is the only sample;
    otherwise as many calls as fit in the budget, at most ``repeats``.
    """
    start = time.perf_counter()
    func()
    first = time.perf_counter() - start
    if first > budget_seconds / 3:
        return first, 1
    repeats = min(repeats, int(budget_seconds / max(first, 1e-9)))
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        func()
        samples.append(time.perf_counter() - start)
    return float(np.median(samples)), repeats


def _predict(history, name, n, batch, power):
    """Time predicted for ``name`` at (n, batch) from its last measurement."""
    previous = [(m, t) for (key, b, m, t) in history if key == name and b == batch]
    if not previous:
        return 0.0
    m, t = previous[-1]
    if power == "nlogn":
        return t * (n * math.log(n)) / (m * math.log(m))
    return t * (n / m) ** power


def _product_methods(est, kernel_values, n, n_threads):
    """Callables computing ``X @ T.T`` for a batch ``X`` of shape (b, n)."""
    column = kernel_values[n - 1 :]

    def fftconvolve(X):
        full = scipy.signal.fftconvolve(X, kernel_values[None, :], axes=-1)
        return full[:, n - 1 : 2 * n - 1]

    threaded = ToeplitzKernel(est.kernel, bandwidth=est.bandwidth, n_jobs=n_threads)
    threaded.fit(np.zeros((1, n)))
    length, spectrum = est.fft_shape_[0], est.spectrum_.spectrum

    def fft_pair(X):
        # The floor of any FFT product: one real FFT of the padded rows, the
        # product with the kernel's FFT computed once, one inverse FFT; no
        # validation, no cropping.
        product = scipy.fft.rfft(X, n=length, axis=-1)
        product *= spectrum
        return scipy.fft.irfft(product, n=length, axis=-1)

    return {
        OURS_PRODUCT: (est.transform, "nlogn"),
        FFT_PAIR: (fft_pair, "nlogn"),
        f"ToeplitzKernel.transform n_jobs={n_threads}": (threaded.transform, "nlogn"),
        "ToeplitzKernel.transform float32": (
            lambda X: est.transform(X.astype(np.float32)),
            "nlogn",
        ),
        "scipy matmul_toeplitz": (
            lambda X: scipy.linalg.matmul_toeplitz(column, X.T).T,
            "nlogn",
        ),
        f"scipy matmul_toeplitz workers={n_threads}": (
            lambda X: scipy.linalg.matmul_toeplitz(column, X.T, workers=n_threads).T,
            "nlogn",
        ),
        "scipy fftconvolve": (fftconvolve, "nlogn"),
        "dense toeplitz(c) @ X.T": ("dense", 2),
    }


def _largest_prime_factor(n):
    """Largest prime factor of n (trial division; n is at most a few million)."""
    factor, largest = 2, 1
    while factor * factor <= n:
        while n % factor == 0:
            largest, n = factor, n // factor
        factor += 1
    return max(largest, n)


def _dense_product(dense):
    """``X @ T.T`` with a prebuilt matrix (building it is not timed)."""

    def product(X):
        return X @ dense.T

    return product


def _run_products(args, history, n, batch, rng, n_threads):
    """Time every product method at one (n, batch); return table rows."""
    est = ToeplitzKernel(args.kernel, bandwidth=args.bandwidth)
    X = rng.standard_normal((batch, n))
    start = time.perf_counter()
    est.fit(X)
    fit_time = time.perf_counter() - start
    fft_bytes = 4 * batch * est.fft_shape_[0] * 8  # input, spectrum, output copies
    rows = [("ToeplitzKernel.fit (once)", fit_time, 1, None, "")]
    reference = None
    for name, (func, power) in _product_methods(
        est, est.kernel_values_, n, n_threads
    ).items():
        predicted = _predict(history, name, n, batch, power)
        if func == "dense":
            if n * n * 8 > args.max_dense_bytes:
                rows.append(
                    (name, None, 0, None, f"skipped: {n}^2 matrix > memory cap")
                )
                continue
            if predicted > args.max_call_seconds:
                rows.append((name, None, 0, None, f"skipped: ~{predicted:.0f} s/call"))
                continue
            func = _dense_product(scipy.linalg.toeplitz(est.kernel_values_[n - 1 :]))
        elif not name.startswith(("ToeplitzKernel", "bare")) and (
            predicted > args.max_call_seconds or fft_bytes > args.max_fft_bytes
        ):
            reason = (
                f"~{predicted:.0f} s/call"
                if predicted > args.max_call_seconds
                else f"~{fft_bytes / 2**30:.1f} GiB of FFT buffers"
            )
            rows.append((name, None, 0, None, f"skipped: {reason}"))
            continue
        seconds, repeats = _median_time(
            lambda func=func: func(X), args.repeats, args.budget_seconds
        )
        history.append((name, batch, n, seconds))
        if name == OURS_PRODUCT:
            reference = seconds
        note = ""
        if name.startswith("scipy matmul_toeplitz"):
            # matmul_toeplitz transforms length 2n - 1 as is; pocketfft falls
            # back to Bluestein's algorithm when that has a large prime factor.
            note = f"FFT length {2 * n - 1}, largest prime factor " + str(
                _largest_prime_factor(2 * n - 1)
            )
        elif name in (OURS_PRODUCT, FFT_PAIR):
            note = f"FFT length {est.fft_shape_[0]}"
        rows.append((name, seconds, repeats, seconds / reference, note))
    return rows


def _run_solves(args, history, n, batch, rng):
    """Time the solves at one (n, batch); return table rows."""
    est = ToeplitzKernel(args.kernel, bandwidth=args.solve_bandwidth, tol=args.tol).fit(
        np.zeros((1, n))
    )
    B = est.transform(rng.standard_normal((batch, n)))
    column = est.kernel_values_[n - 1 :]
    rows = []
    predicted = _predict(history, OURS_SOLVE, n, batch, "nlogn")
    if predicted > args.max_call_seconds:
        return [(OURS_SOLVE, None, 0, None, f"skipped: ~{predicted:.0f} s/call")]
    seconds, repeats = _median_time(
        lambda: est.inverse_transform(B), args.repeats, args.budget_seconds
    )
    _, info = est.inverse_transform(B, return_info=True)
    history.append((OURS_SOLVE, batch, n, seconds))
    note = (
        f"CG iterations {info.n_iter.min()}..{info.n_iter.max()}, "
        f"residual <= {info.residual.max():.1e}"
    )
    rows.append((OURS_SOLVE, seconds, repeats, 1.0, note))
    predicted = _predict(history, "scipy solve_toeplitz", n, batch, 2)
    if predicted > args.max_call_seconds:
        rows.append(
            ("scipy solve_toeplitz", None, 0, None, f"skipped: ~{predicted:.0f} s/call")
        )
    else:
        levinson, repeats = _median_time(
            lambda: scipy.linalg.solve_toeplitz(column, B.T),
            args.repeats,
            args.budget_seconds,
        )
        history.append(("scipy solve_toeplitz", batch, n, levinson))
        rows.append(("scipy solve_toeplitz", levinson, repeats, levinson / seconds, ""))
    return rows


def _print_table(title, rows):
    print(f"\n{title}")
    print(f"  {'method':<42} {'median s':>11} {'reps':>4} {'ratio':>8}  note")
    for name, seconds, repeats, ratio, note in rows:
        time_text = f"{seconds:11.5f}" if seconds is not None else f"{'-':>11}"
        ratio_text = f"{ratio:8.2f}" if ratio is not None else f"{'-':>8}"
        print(f"  {name:<42} {time_text} {repeats:>4} {ratio_text}  {note}")


def _growth(history, name, batch, small, large):
    """Measured time ratio of ``name`` from n=small to n=large."""
    times = {n: t for (key, b, n, t) in history if key == name and b == batch}
    if small in times and large in times:
        return times[large] / times[small]
    return None


def _summary(history, sizes):
    """The figures the issue asks for, read off the measurements."""
    print("\nSummary")

    def speedup(n, batch):
        ours = [t for (k, b, m, t) in history if (k, b, m) == (OURS_PRODUCT, batch, n)]
        theirs = [
            t
            for (k, b, m, t) in history
            if (k, b, m) == ("scipy matmul_toeplitz", batch, n)
        ]
        return theirs[0] / ours[0] if ours and theirs else None

    for n in sizes:
        for batch in (1, 64):
            ours = [
                t for (k, b, m, t) in history if (k, b, m) == (OURS_PRODUCT, batch, n)
            ]
            pair = [t for (k, b, m, t) in history if (k, b, m) == (FFT_PAIR, batch, n)]
            if ours and pair:
                print(
                    f"  transform / bare FFT pair, n={n}, batch={batch}: "
                    f"{ours[0] / pair[0]:.2f} (target <= 1.5)"
                )
    for n, batch, target in [(100_000, 1, 8), (100_000, 64, 8), (10_000, 64, 3)]:
        value = speedup(n, batch)
        if value is not None:
            print(
                f"  transform vs matmul_toeplitz, n={n}, batch={batch}: "
                f"{value:.1f}x faster (target >= {target}x)"
            )
    for name, model in [(OURS_SOLVE, "n log n"), ("scipy solve_toeplitz", "n^2")]:
        for small, large in zip(sizes[:-1], sizes[1:]):
            ratio = _growth(history, name, 1, small, large)
            if ratio is None:
                continue
            expected = (
                (large * math.log(large)) / (small * math.log(small))
                if model == "n log n"
                else (large / small) ** 2
            )
            print(
                f"  {name}, batch 1, n {small} -> {large}: time x{ratio:.1f} "
                f"({model} predicts x{expected:.1f})"
            )


def _torch_or_none(device):
    """torch when it can run on ``device``; else None, having said why."""
    try:
        import torch  # pylint: disable=import-outside-toplevel
    except ImportError:
        print('torch is not installed (pip install "fasttsne[gpu]"); nothing to run.')
        return None
    if os.environ.get("SCIPY_ARRAY_API") != "1":
        print(
            "scikit-learn's array API dispatch needs SciPy's: run with "
            "SCIPY_ARRAY_API=1 in the environment."
        )
        return None
    if device == "cuda" and not torch.cuda.is_available():
        print(
            "--device cuda: torch sees no CUDA device on this machine; nothing to "
            "run (the GPU figures need a CUDA machine)."
        )
        return None
    return torch


def _run_torch(args):
    """Products and solves on torch tensors of ``args.device``, against a bare
    cached ``torch.fft`` convolution of the same length."""
    torch = _torch_or_none(args.device)
    if torch is None:
        return
    label = "CUDA" if args.device == "cuda" else "CPU"
    if args.torch_threads:
        torch.set_num_threads(args.torch_threads)
    device = torch.device(args.device)
    name = (
        torch.cuda.get_device_name(device)
        if args.device == "cuda"
        else f"{platform.processor() or platform.machine()}, "
        f"{torch.get_num_threads()} torch threads"
    )
    print(f"torch {torch.__version__} on {label} ({name}); kernel {args.kernel}")

    def timed(func):
        def run():
            func()
            if args.device == "cuda":
                torch.cuda.synchronize()

        return _median_time(run, args.repeats, args.budget_seconds)

    rows = []
    rng = np.random.default_rng(0)
    for batch in args.batches:
        for n in args.sizes:
            est = ToeplitzKernel(args.kernel, bandwidth=args.bandwidth)
            length = scipy.fft.next_fast_len(2 * n - 1, real=True)
            fft_bytes = 5 * batch * length * 8
            if fft_bytes > args.max_fft_bytes:
                rows.append((n, batch, None, None, None, "skipped: FFT buffers"))
                continue
            X = torch.from_numpy(rng.standard_normal((batch, n))).to(device)
            with sklearn.config_context(array_api_dispatch=True):
                est.fit(X)
                spectrum = torch.from_numpy(est.spectrum_.spectrum).to(device)

                def pair(X=X, spectrum=spectrum, length=length):
                    product = torch.fft.rfft(X, n=length, dim=-1)
                    product *= spectrum
                    return torch.fft.irfft(product, n=length, dim=-1)

                ours, _ = timed(lambda est=est, X=X: est.transform(X))
                bare, _ = timed(pair)
                solver = ToeplitzKernel(
                    args.kernel, bandwidth=args.solve_bandwidth, tol=args.tol
                ).fit(X)
                B = solver.transform(X)
                solve, _ = timed(lambda solver=solver, B=B: solver.inverse_transform(B))
                _, info = solver.inverse_transform(B, return_info=True)
            note = f"CG iterations {info.n_iter.min()}..{info.n_iter.max()}"
            rows.append((n, batch, ours, bare, solve, note))
    print(f"\nProducts X @ T.T and solves T z = x on torch tensors ({label})")
    print(
        f"  {'n':>9} {'batch':>5} {'transform s':>12} {'torch.fft s':>12} "
        f"{'ratio':>6} {'inverse s':>10}  note"
    )
    for n, batch, ours, bare, solve, note in rows:
        if ours is None:
            print(f"  {n:>9} {batch:>5} {'-':>12} {'-':>12} {'-':>6} {'-':>10}  {note}")
            continue
        print(
            f"  {n:>9} {batch:>5} {ours:12.5f} {bare:12.5f} {ours / bare:6.2f} "
            f"{solve:10.5f}  {note}"
        )
    print(
        f"\nratio: transform over the bare cached torch.fft convolution ({label}); "
        "issue 12's target is <= 1.5 at n = 10^6, batch 64, on CUDA."
    )


def main(argv=None):
    """Run the benchmark and print the tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sizes", type=int, nargs="+", default=[10**3, 10**4, 10**5, 10**6]
    )
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 64])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--kernel", default="cauchy")
    parser.add_argument("--bandwidth", type=float, default=10.0)
    parser.add_argument(
        "--solve-bandwidth",
        type=float,
        default=1.0,
        help="bandwidth for the solves, where a wide kernel is ill-conditioned",
    )
    parser.add_argument("--tol", type=float, default=1e-10)
    parser.add_argument(
        "--max-call-seconds",
        type=float,
        default=60.0,
        help="skip a method whose predicted time per call is above this",
    )
    parser.add_argument(
        "--budget-seconds",
        type=float,
        default=20.0,
        help="time budget of the repeated calls of one method at one size",
    )
    parser.add_argument("--max-dense-bytes", type=float, default=2**30)
    parser.add_argument("--max-fft-bytes", type=float, default=3 * 2**30)
    parser.add_argument("--output", help="also write the measurements as JSON")
    parser.add_argument(
        "--device",
        choices=["cpu", "cuda"],
        help="time torch tensors on this device instead of NumPy arrays",
    )
    parser.add_argument(
        "--torch-threads",
        type=int,
        help="torch's CPU threads (torch.set_num_threads) with --device",
    )
    args = parser.parse_args(argv)
    if args.device is not None:
        _run_torch(args)
        return

    n_threads = os.cpu_count() or 1
    print(
        f"numpy {np.__version__}, scipy {scipy.__version__}, "
        f"{platform.processor() or platform.machine()}, {n_threads} CPUs; "
        f"kernel {args.kernel}, bandwidth {args.bandwidth} (products), "
        f"{args.solve_bandwidth} (solves)"
    )
    rng = np.random.default_rng(0)
    history = []
    for batch in args.batches:
        for n in args.sizes:
            rows = _run_products(args, history, n, batch, rng, n_threads)
            _print_table(f"Products X @ T.T, n={n}, batch={batch}", rows)
            rows = _run_solves(args, history, n, batch, rng)
            _print_table(f"Solves T z = x, n={n}, batch={batch}", rows)
    _summary(history, args.sizes)
    if args.output:
        with open(args.output, "w", encoding="utf-8") as handle:
            json.dump(
                [dict(zip(["method", "batch", "n", "seconds"], h)) for h in history],
                handle,
                indent=1,
            )


if __name__ == "__main__":
    main()
