"""Benchmark: fasttsne's randomized SVD against scikit-learn, fbpca and svds.

Three cases, top ``k = 50`` singular triplets:

(a) dense float64 20000 x 2000, low rank plus noise: rank-100 signal with singular
    values ``1000 exp(-i / 20)`` plus Gaussian noise of standard deviation 0.1;
(b) dense float32 100000 x 1000 with a power-law spectrum: Gaussian scores scaled
    by ``i^(-1/2)`` and rotated by a random orthogonal matrix;
(c) sparse CSR 200000 x 50000, 1e7 uniform(0, 1) values at uniformly random
    positions (density 1e-3): a flat Marchenko-Pastur bulk below one large
    singular value, the hard case for randomized methods;
(d) dense float64 10000 x 1000 with a steep spectrum: 60 singular values
    ``1000 exp(-i / 3)`` plus Gaussian noise of standard deviation 1e-9, so
    s_50 ~ 1e-7 s_1, below the ``sqrt(eps) s_1`` that ``A^T A`` resolves;
(e) dense float32 20000 x 1000 of low rank: scikit-learn's
    ``make_low_rank_matrix`` with effective rank 10 and tail strength 0.1
    (s_1 / s_50 ~ 17, beyond what ``A^T A`` resolves in float32).

Cases (a), (b), (d) and (e) are the accuracy suite: on each, fasttsne's default
must be at least as accurate as scikit-learn's default.

Every method runs side by side in one process, ``--repeat`` times, interleaved
(median time reported; svds, minutes on (c), runs once). Errors are measured once
per method against a tight reference: LAPACK (``scipy.linalg.svdvals``, in
float64) for (a), (d) and (e), float64 Gram eigenvalues for (b) (relative error
below ``eps64 (s_1 / s_k)^2 ~ 1e-14`` here) and ARPACK on ``A^T A`` with
``tol=1e-12`` for (c). References are cached in ``~/.cache/fasttsne/bench_svd``.

Columns: time [s]; time relative to scikit-learn's default call; worst relative
error of the top-k singular values; ``||A - U S V^T||_F / ||A||_F`` (the optimum,
from the reference, is printed first).

Usage::

    python benchmarks/bench_svd.py            # all cases, full sizes (minutes)
    python benchmarks/bench_svd.py --quick    # smaller sizes (seconds)
    python benchmarks/bench_svd.py --case c --repeat 1 --threads 1 --skip svds
    python benchmarks/bench_svd.py --device cuda   # torch tensors on the GPU

``--device cuda`` (or ``cpu``: torch CPU tensors, which exercises the same code
path on a machine without a GPU) runs every case on torch tensors: fasttsne's
``randomized_svd`` under ``array_api_dispatch`` beside ``torch.svd_lowrank``
with scikit-learn's default power iterations (``q = k + 10``, ``niter = 7``,
the same accuracy class) and with its own default (``niter = 2``), and cuML's
``TruncatedSVD`` when installed (CUDA only). Without a CUDA device,
``--device cuda`` says so and exits 0.
"""

import argparse
import hashlib
import os
import statistics
import sys
import time
import warnings
from pathlib import Path

# Array API dispatch (torch tensors, --device) needs SciPy's array API mode,
# which SciPy reads when it is first imported.
if any(arg.startswith("--device") for arg in sys.argv):
    os.environ.setdefault("SCIPY_ARRAY_API", "1")

# pylint: disable=wrong-import-position
import numpy as np
import scipy
import scipy.linalg
import scipy.sparse as sp
from scipy.sparse.linalg import LinearOperator, eigsh, svds
from sklearn.datasets import make_low_rank_matrix
from sklearn.utils.extmath import randomized_svd as sklearn_randomized_svd
from threadpoolctl import threadpool_info, threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fasttsne import randomized_svd  # noqa: E402  pylint: disable=wrong-import-position

K = 50
SIZES = {
    # case: (full size, --quick size)
    "a": ((20_000, 2_000), (4_000, 500)),
    "b": ((100_000, 1_000), (20_000, 400)),
    "c": ((200_000, 50_000, 1e-3), (40_000, 10_000, 2e-3)),
    "d": ((10_000, 1_000), (2_000, 400)),
    "e": ((20_000, 1_000), (4_000, 400)),
}


def make_case(case, quick, seed=0):
    """Build the test matrix of a case."""
    rng = np.random.default_rng(seed)
    size = SIZES[case][1 if quick else 0]
    if case == "a":
        m, n = size
        r = 100
        U = np.linalg.qr(rng.standard_normal((m, r)))[0]
        V = np.linalg.qr(rng.standard_normal((n, r)))[0]
        signal = (U * (1000.0 * np.exp(-np.arange(r) / 20.0))) @ V.T
        return signal + 0.1 * rng.standard_normal((m, n))
    if case == "b":
        m, n = size
        scale = ((1.0 + np.arange(n)) ** -0.5).astype(np.float32)
        scores = rng.standard_normal((m, n), dtype=np.float32) * scale
        rotation = np.linalg.qr(rng.standard_normal((n, n)))[0].astype(np.float32)
        return scores @ rotation
    if case == "d":
        m, n = size
        r = 60
        U = np.linalg.qr(rng.standard_normal((m, r)))[0]
        V = np.linalg.qr(rng.standard_normal((n, r)))[0]
        signal = (U * (1000.0 * np.exp(-np.arange(r) / 3.0))) @ V.T
        return signal + 1e-9 * rng.standard_normal((m, n))
    if case == "e":
        m, n = size
        X = make_low_rank_matrix(
            m, n, effective_rank=10, tail_strength=0.1, random_state=seed
        )
        return X.astype(np.float32)
    m, n, density = size
    nnz = int(m * n * density)
    rows = rng.integers(0, m, nnz)
    cols = rng.integers(0, n, nnz)
    A = sp.csr_matrix((rng.random(nnz), (rows, cols)), shape=(m, n))
    A.sum_duplicates()
    return A


def _cache_path(case, quick, seed):
    key = f"{case}-{SIZES[case][1 if quick else 0]}-{seed}-k{K}-v1"
    digest = hashlib.sha1(key.encode()).hexdigest()[:12]
    root = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return root / "fasttsne" / "bench_svd" / f"ref-{case}-{digest}.npy"


def reference_singular_values(case, A, quick, seed, use_cache=True):
    """Top ``K + 10`` singular values, to (near) machine precision."""
    path = _cache_path(case, quick, seed)
    if use_cache and path.exists():
        return np.load(path)
    start = time.perf_counter()
    if case in ("a", "d", "e"):
        s = scipy.linalg.svdvals(A.astype(np.float64), check_finite=False)[: K + 10]
    elif case == "b":
        gram = np.zeros((A.shape[1], A.shape[1]))
        for rows in np.array_split(np.arange(A.shape[0]), 20):
            block = A[rows].astype(np.float64)
            gram += block.T @ block
        s = np.sqrt(np.linalg.eigvalsh(gram)[::-1][: K + 10])
    else:
        AT = A.T.tocsr()
        n = A.shape[1]
        gram = LinearOperator((n, n), matvec=lambda x: AT @ (A @ x), dtype=np.float64)
        lam = eigsh(
            gram,
            k=K + 10,
            which="LA",
            tol=1e-12,
            ncv=300,
            v0=np.ones(n),
            return_eigenvectors=False,
        )
        s = np.sqrt(np.sort(lam)[::-1])
    print(f"  reference computed in {time.perf_counter() - start:.1f} s", flush=True)
    if use_cache:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, s)
    return s


def relative_residual(A, U, S, Vt):
    """``||A - U diag(S) Vt||_F / ||A||_F`` in float64, without forming A densely
    when it is sparse."""
    U = np.asarray(U, dtype=np.float64)
    S = np.asarray(S, dtype=np.float64)
    Vt = np.asarray(Vt, dtype=np.float64)
    if sp.issparse(A):
        norm2 = float(A.multiply(A).sum())
        AV = A @ Vt.T
        cross = float(np.sum(S * np.einsum("ij,ij->j", U, AV)))
        low_rank2 = float(np.sum(np.outer(S, S) * (U.T @ U) * (Vt @ Vt.T)))
        residual2 = max(norm2 - 2 * cross + low_rank2, 0.0)
        return np.sqrt(residual2 / norm2)
    residual2 = norm2 = 0.0
    for rows in np.array_split(np.arange(A.shape[0]), max(1, A.shape[0] // 5000)):
        block = A[rows].astype(np.float64)
        norm2 += float(np.sum(block**2))
        residual2 += float(np.sum((block - (U[rows] * S) @ Vt) ** 2))
    return np.sqrt(residual2 / norm2)


def methods(case):
    """(name, function of A returning U, S, Vt) for every competitor."""
    import fbpca

    def sk_default(A):
        return sklearn_randomized_svd(A, K, random_state=0)

    def sk_iter2(A):
        return sklearn_randomized_svd(A, K, n_iter=2, random_state=0)

    def fb(A):
        return fbpca.pca(A, K, raw=True)

    def scipy_svds(A):
        U, S, Vt = svds(A, k=K, rng=np.random.default_rng(0))
        order = np.argsort(S)[::-1]
        return U[:, order], S[order], Vt[order]

    def ours(A):
        return randomized_svd(A, K, random_state=0)

    def ours_subspace(A):
        return randomized_svd(A, K, algorithm="subspace", random_state=0)

    def ours_deep(A):
        # Three correct digits on the flat case (c): a Krylov space of 64 blocks
        # of 16 columns (found by sweeping block_size and n_iter on case (c));
        # n_iter counts power iterations, n_iter + 1 Krylov blocks follow the first.
        return randomized_svd(
            A, K, algorithm="krylov", block_size=16, n_iter=62, tol=0, random_state=0
        )

    def ours_three_digits(A):
        # The same space, asked for three digits: tol=1e-3 lets block Lanczos
        # build it in float32 (the final Rayleigh-Ritz step in float64), and
        # n_iter caps it at 64 blocks, where the residual bound has not yet
        # fallen to 1e-3.
        return randomized_svd(
            A,
            K,
            algorithm="krylov",
            block_size=16,
            n_iter=62,
            tol=1e-3,
            random_state=0,
        )

    table = [
        ("sklearn randomized_svd (default)", sk_default),
        ("sklearn randomized_svd (n_iter=2)", sk_iter2),
        ("fbpca.pca (default, raw=True)", fb),
        ("scipy svds (arpack, default)", scipy_svds),
        ("fasttsne randomized_svd (default)", ours),
        ("fasttsne algorithm='subspace'", ours_subspace),
    ]
    if case == "c":
        table.append(("fasttsne block_size=16, n_iter=62", ours_deep))
        table.append(("fasttsne same, tol=1e-3 (float32)", ours_three_digits))
    return table


def device_methods(device):
    """(name, function of a tensor returning U, S, Vt) on torch tensors."""
    import sklearn
    import torch

    def ours(A):
        with sklearn.config_context(array_api_dispatch=True):
            return randomized_svd(A, K, random_state=0)

    def lowrank(niter):
        def run(A):
            torch.manual_seed(0)
            U, S, V = torch.svd_lowrank(A, q=K + 10, niter=niter)
            return U[:, :K], S[:K], V[:, :K].T

        return run

    table = [
        ("torch.svd_lowrank (q=k+10, niter=7)", lowrank(7)),
        ("torch.svd_lowrank (default niter=2)", lowrank(2)),
        ("fasttsne randomized_svd (default)", ours),
    ]
    if device == "cuda":
        try:
            from cuml.decomposition import TruncatedSVD
        except ImportError:
            print("cuML is not installed: no cuML TruncatedSVD column")
        else:

            def cuml_svd(A):
                svd = TruncatedSVD(n_components=K, algorithm="full")
                X_new = svd.fit_transform(A)
                S = torch.as_tensor(svd.singular_values_, device=A.device)
                Vt = torch.as_tensor(svd.components_, device=A.device)
                return torch.as_tensor(X_new, device=A.device) / S, S, Vt

            table.append(("cuML TruncatedSVD (full)", cuml_svd))
    return table


def _on_device(A, device):
    """``A`` as a dense or CSR torch tensor on ``device``, and a function that
    waits for the device and brings results to NumPy."""
    import torch

    if sp.issparse(A):
        csr = A.tocsr()
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Sparse CSR tensor support")
            tensor = torch.sparse_csr_tensor(
                torch.from_numpy(csr.indptr.astype(np.int64)),
                torch.from_numpy(csr.indices.astype(np.int64)),
                torch.from_numpy(csr.data),
                csr.shape,
                check_invariants=False,
            ).to(device)
    else:
        tensor = torch.from_numpy(np.ascontiguousarray(A)).to(device)

    def wait():
        if device == "cuda":
            torch.cuda.synchronize()

    return tensor, wait


def run_case(case, quick, repeat, seed, use_cache, skip, *, device=None):
    """Time every method on one case and print the table."""
    A = make_case(case, quick, seed)
    kind = "sparse CSR" if sp.issparse(A) else f"dense {A.dtype}"
    print(f"\ncase ({case}): {kind} {A.shape[0]} x {A.shape[1]}", end="")
    print(f", nnz={A.nnz}" if sp.issparse(A) else "", flush=True)
    s_ref = reference_singular_values(case, A, quick, seed, use_cache)[:K]
    optimum = np.sqrt(
        max(1.0 - np.sum(s_ref**2) / _squared_norm(A), 0.0)
    )  # Eckart-Young
    if device is None:
        operand, wait = A, _no_wait
        candidates = methods(case)
    else:
        operand, wait = _on_device(A, device)
        candidates = device_methods(device)
        print(
            f"torch tensors on {device}" + (" (CPU figures)" if device == "cpu" else "")
        )
    table = [(name, f) for name, f in candidates if not any(w in name for w in skip)]
    times = {name: [] for name, _ in table}
    results = {}
    for rep in range(repeat):
        # Interleaved repetitions: slow drifts of a shared machine hit all alike.
        for name, func in table:
            if rep and name.startswith("scipy svds"):
                continue  # minutes per run on (c): timed once
            wait()
            start = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                U, S, Vt = func(operand)
            wait()
            times[name].append(time.perf_counter() - start)
            results[name] = _host(U, S, Vt)
    baseline = statistics.median(times[table[0][0]]) if table else 1.0
    if device is not None and table:
        print(f"'vs sk' is relative to {table[0][0]} here")
    header = f"{'method':<36} {'time [s]':>9} {'vs sk':>6} {'max rel err s_1..k':>19}"
    print(header + f" {'||A-USV^T||/||A||':>18}")
    print(f"{'(optimum, Eckart-Young)':<36} {'':>9} {'':>6} {'':>19} {optimum:>18.6f}")
    for name, _ in table:
        U, S, Vt = results[name]
        S = np.asarray(S, dtype=np.float64)[:K]
        error = float(np.max(np.abs(S - s_ref) / s_ref))
        median = statistics.median(times[name])
        print(
            f"{name:<36} {median:>9.2f} {median / baseline:>6.2f} {error:>19.2e} "
            f"{relative_residual(A, U, S, Vt):>18.6f}",
            flush=True,
        )


def _no_wait():
    """NumPy work is done when the call returns."""


def _host(*arrays):
    """The arrays as NumPy arrays on the host (torch tensors copied back)."""
    return tuple(
        a.detach().cpu().numpy() if hasattr(a, "detach") else np.asarray(a)
        for a in arrays
    )


def _squared_norm(A):
    if sp.issparse(A):
        return float(A.multiply(A).sum())
    return float(sum(np.sum(block.astype(np.float64) ** 2) for block in A))


def main(argv=None):
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--case", choices=["a", "b", "c", "d", "e", "all"], default="all"
    )
    parser.add_argument("--quick", action="store_true", help="smaller sizes")
    parser.add_argument("--repeat", type=int, default=3, help="runs per method")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-cache", action="store_true", help="recompute references")
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="limit BLAS threads (and so fasttsne's sparse threads) to this",
    )
    parser.add_argument(
        "--skip",
        action="append",
        default=[],
        help="skip methods whose name contains this (repeatable), e.g. svds",
    )
    parser.add_argument(
        "--device",
        choices=["cpu", "cuda"],
        default=None,
        help="run on torch tensors on this device, beside torch.svd_lowrank",
    )
    args = parser.parse_args(argv)
    if args.device is not None:
        try:
            import torch
        except ImportError:
            print("--device needs torch: nothing to measure.")
            return 0
        if args.device == "cuda" and not torch.cuda.is_available():
            print("No CUDA device on this machine: nothing to measure.")
            return 0
    cases = ["a", "b", "c", "d", "e"] if args.case == "all" else [args.case]
    with threadpool_limits(args.threads):
        blas = [
            lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"
        ]
        print(
            f"k = {K}, repeat = {args.repeat}, BLAS threads {blas}, "
            f"numpy {np.__version__}, scipy {scipy.__version__}",
            flush=True,
        )
        for case in cases:
            run_case(
                case,
                args.quick,
                args.repeat,
                args.seed,
                not args.no_cache,
                args.skip,
                device=args.device,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
