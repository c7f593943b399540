"""Randomized truncated SVD as a function: ``randomized_svd`` and its validated twin.

The module is one piece (past the usual ~700 lines) because the range finders
share its preparation (scaling, centring, transposing) and its final step.

Three range finders are implemented, after Halko, Martinsson and Tropp (2011):

``"subspace"``
    Randomized subspace (power) iteration: ``Y = (A A^T)^q A Omega`` for a Gaussian
    ``Omega`` with ``l = k + p`` columns, renormalised between products (LU, QR or not
    at all), then the Rayleigh-Ritz step ``B = Q^T A``. This is what
    ``sklearn.utils.extmath.randomized_svd`` and fbpca do.

``"krylov"``
    Randomized block Krylov iteration (Musco and Musco, 2015): instead of keeping only
    the last block ``(A^T A)^q Omega`` it keeps the whole block Krylov space
    ``span{Omega, (A^T A) Omega, ..., (A^T A)^q Omega}`` and extracts the best
    approximation from it. For the same number of products with ``A`` the Krylov space
    contains the subspace-iteration space, and on flat spectra it converges like a
    Chebyshev polynomial instead of a monomial (error ``~ exp(-2 q sqrt(gap))`` instead
    of ``(1 - gap)^(2q)``). Built by block Lanczos on ``A^T A``, which cannot resolve
    singular values below about ``sqrt(eps) s_1``: when the spectrum is steeper than
    that allows, the same space is built by ``"bidiagonal"`` instead.

``"bidiagonal"``
    The same Krylov space by block Golub-Kahan-Lanczos bidiagonalisation, which
    alternates ``A`` and ``A^T`` and resolves singular values down to ``eps s_1``.

The Krylov solvers are in :mod:`fasttsne.linalg._svd._lanczos` and
:mod:`fasttsne.linalg._svd._bidiagonal`, subspace iteration in
:mod:`fasttsne.linalg._svd._subspace`, the products with the data in
:mod:`fasttsne.linalg._svd._operators`, the scaling of data of extreme magnitude
in :mod:`fasttsne.linalg._scaling`.
"""

import warnings
from contextlib import contextmanager
from numbers import Integral, Real

import numpy as np
import scipy.sparse as sp
from sklearn import get_config
from sklearn.utils import check_array, check_random_state

from fasttsne import gpu
from fasttsne._validation import Interval, StrOptions, validate_params
from fasttsne.linalg._scaling import (
    SVD_SAFE_RANGE,
    _max_abs,
    _scale_exponent,
    _scaled,
)
from fasttsne.linalg._svd._bidiagonal import _BlockBidiagonal, _needs_bidiagonal
from fasttsne.linalg._svd._lanczos import _BlockLanczos, _block_krylov
from fasttsne.linalg._svd._operators import _LinearOperator
from fasttsne.linalg._svd._orthogonal import _eps
from fasttsne.linalg._svd._subspace import _subspace_iteration
from fasttsne.linalg._svd._threading import _blas_n_threads, _threaded_products
from fasttsne.linalg._svd._torch import is_tensor

__all__ = ["randomized_svd"]

# algorithm="auto" falls back to subspace iteration when the Krylov basis (short
# side x basis) would take more than this.
_MAX_KRYLOV_BYTES = 2**30
# A sparse float64 solve asked for a tol of at least _MIN_FLOAT32_TOL builds its
# Krylov basis in float32 while the Ritz values' float32 rounding errors stay
# _FLOAT32_MARGIN times below tol (_float32_resolves; docs/svd.rst).
_MIN_FLOAT32_TOL = 1e-4
_FLOAT32_MARGIN = 16.0


def _flip_signs(U, Vt, u_based_decision=False):
    """Make the largest-magnitude entry of each column of ``U`` (or row of ``Vt``)
    positive.

    ``u_based_decision=False`` is the convention of ``TruncatedSVD`` and ``PCA``
    in scikit-learn >= 1.5 (``svd_flip(u_based_decision=False)``): signs follow
    ``V``, which does not depend on the number of samples. ``True`` is that of
    ``sklearn.utils.extmath.randomized_svd``: signs follow the left singular
    vectors of the input, whichever side the solver worked on.
    """
    if is_tensor(U):
        if u_based_decision:
            signs = U.gather(0, U.abs().argmax(dim=0, keepdim=True))[0].sign()
        else:
            signs = Vt.gather(1, Vt.abs().argmax(dim=1, keepdim=True))[:, 0].sign()
        signs[signs == 0] = 1
        return U * signs, Vt * signs[:, None]
    if u_based_decision:
        cols = np.arange(U.shape[1])
        signs = np.sign(U[np.argmax(np.abs(U), axis=0), cols])
    else:
        rows = np.arange(Vt.shape[0])
        signs = np.sign(Vt[rows, np.argmax(np.abs(Vt), axis=1)])
    signs[signs == 0] = 1
    return U * signs, Vt * signs[:, np.newaxis]


def _float32_operator(op, tol):
    """A float32 copy of ``op`` for block Lanczos to build its basis on, or None.

    Only for a float64 sparse matrix without implicit centring (whose
    subtraction of the means could cancel in float32) and a ``tol`` of at least
    ``_MIN_FLOAT32_TOL``: the caller asks for a few digits, which float32
    products resolve (:func:`_float32_resolves`). NumPy and SciPy input only: a
    torch operator is never copied. The copy's values are scaled by a power of
    two that puts their largest magnitude in ``[0.5, 1)``, so that products
    through ``A^T A`` neither overflow nor underflow in float32 whatever the
    input's magnitude; the Krylov space, and so the final step on ``op``, does
    not depend on that scale.
    """
    if tol is None or tol < _MIN_FLOAT32_TOL or not isinstance(op, _LinearOperator):
        return None
    if op.sparse and op.mean is None and op.dtype == np.float64:
        return op.astype(np.float32)[0]
    return None


def _float32_resolves(S, tol):
    """Whether a float32 Krylov basis resolves the singular values ``S`` to ``tol``.

    Block Lanczos works through ``A^T A``: a float32 basis carries relative
    errors of about ``eps32 (s_1 / s_i)^2`` in the Ritz values, which must
    stay ``_FLOAT32_MARGIN`` times below ``tol``. The first block's Ritz values
    never exceed the singular values, so a spectrum too steep shows at once.
    """
    S = np.asarray(S, dtype=np.float64)
    if len(S) < 2 or S[0] <= 0:
        return True
    return bool(_FLOAT32_MARGIN * _eps(np.float32) * S[0] ** 2 <= tol * S[-1] ** 2)


def _krylov_auto_iter(n_components, n_oversamples, block):
    """Krylov iterations for about half of scikit-learn's default products.

    scikit-learn's default runs 7 power iterations on ``l = n_components +
    n_oversamples`` columns, ``16 l`` column products (``10 l`` when
    ``n_components`` is at least a tenth of the short side). ``n_iter`` Krylov
    iterations on blocks of ``block`` columns cost ``(2 n_iter + 1) block``; the
    budget is ``8 l``, and at least 4 iterations (degree 9 in the singular values),
    which flat spectra need to match 7 power iterations.
    """
    budget = 8 * (n_components + n_oversamples)
    return max(4, (budget // block - 1) // 2)


def _resolve_options(
    shape,
    n_components,
    *,
    n_oversamples,
    n_iter,
    normalizer,
    algorithm,
    block,
    sparse=False,
):
    """Resolve the ``"auto"`` options into ``(algorithm, n_iter, normalizer, block)``.

    The returned ``n_iter`` counts power iterations for ``"subspace"`` and
    Krylov blocks after the first for ``"krylov"`` and ``"bidiagonal"``.

    ``algorithm="auto"`` takes block Krylov unless its basis, ``(n_iter + 1) *
    block_size`` columns on the short side of the matrix, would take more than
    ``_MAX_KRYLOV_BYTES``; subspace iteration needs only ``n_components +
    n_oversamples`` columns. The spectrum then decides how many Krylov iterations
    run: they stop early once the top singular values have converged (``tol``).

    ``n_iter="auto"`` gives subspace iteration scikit-learn's schedule (7 power
    iterations, or 4 when ``n_components`` is at least a tenth of the short side)
    and block Krylov about half of scikit-learn's products
    (:func:`_krylov_auto_iter`): 4 iterations for ``k >= 8`` (9 block products
    instead of 16), more for narrower blocks. ``block_size=None`` is
    ``n_components``, for dense input rounded up to a multiple of 8 when that
    adds at most 15%.

    An explicit ``n_iter`` is a number of power iterations, as in scikit-learn.
    ``q`` power iterations leave the approximation ``Q Q^T A`` with ``Q`` an
    orthonormal basis of ``(A A^T)^q A Omega``, whose right space is that of
    ``(A^T A)^(q + 1) Omega``: block Krylov then runs ``q + 1`` blocks after the
    first, and ``block_size=None`` is ``n_components + n_oversamples`` (the width
    of ``Omega``), so that its space contains the subspace-iteration space, for
    one more block product.
    """
    short = min(shape)
    explicit = n_iter != "auto"
    if block is None:
        if explicit:
            block = n_components + n_oversamples
        else:
            # Dense GEMM kernels work on tiles of 8 columns: rounding the block
            # up to a multiple of 8 oversamples at no cost in time. Not beyond
            # 15%, though: for the same budget, narrower blocks run more
            # iterations, which pays on flat spectra. Sparse products cost in
            # proportion to the columns.
            block = -(-n_components // 8) * 8
            if sparse or block > 1.15 * n_components:
                block = n_components
    block = max(1, min(block, short))
    if explicit:
        krylov_iter = n_iter + 1
    else:
        krylov_iter = _krylov_auto_iter(n_components, n_oversamples, block)
    if algorithm == "auto":
        krylov_bytes = short * (krylov_iter + 1) * block * 8
        algorithm = "krylov" if krylov_bytes <= _MAX_KRYLOV_BYTES else "subspace"
    if algorithm == "subspace":
        if not explicit:
            n_iter = 4 if n_components >= 0.1 * short else 7
    else:
        n_iter = krylov_iter
        if (n_iter + 1) * block < min(n_components, short):
            raise ValueError(
                f"A Krylov basis of {(n_iter + 1) * block} columns ({n_iter + 1} "
                f"blocks of block_size={block}) cannot hold "
                f"n_components={n_components} singular vectors; increase n_iter "
                "or block_size."
            )
    if normalizer == "auto":
        normalizer = "none" if n_iter <= 2 else "LU"
    return algorithm, n_iter, normalizer, block


def _prepare(M, center):
    """Convert ``M``, centre it if asked and scale it by a power of two if its
    magnitude is outside the safe range (:mod:`fasttsne.linalg._scaling`).

    Returns ``(M, mean, exponent)``: the matrix to decompose (a copy when
    centred or scaled), the column means still to subtract implicitly (sparse
    input) or None, and the exponent ``e`` with ``M = 2**e * (input - mean)``.
    """
    if is_tensor(M):
        # pylint: disable-next=import-outside-toplevel
        from fasttsne.linalg._svd import _torch

        return _torch.prepare(M, center)
    if sp.issparse(M):
        if M.format not in ("csr", "csc"):
            M = M.tocsr()
        if M.dtype not in (np.float32, np.float64):
            M = M.astype(np.float64)
    else:
        M = np.asarray(M)
        if M.dtype not in (np.float32, np.float64):
            M = M.astype(np.float32 if M.dtype == np.float16 else np.float64)
    exponent = _scale_exponent(_max_abs(M), M.dtype, SVD_SAFE_RANGE)
    if exponent:
        M = _scaled(M, exponent)
    mean = None
    if center:
        mean = np.asarray(M.mean(axis=0, dtype=np.float64)).ravel().astype(M.dtype)
        if not sp.issparse(M):
            # Dense input is centred explicitly: A X - 1 (mu^T X) would cancel
            # catastrophically when the means dwarf the spread.
            M, mean = M - mean, None
            # The spread may lie far below the means.
            shift = _scale_exponent(_max_abs(M), M.dtype, SVD_SAFE_RANGE)
            if shift:
                M = np.ldexp(M, shift, out=M)
                exponent += shift
    return M, mean, exponent


def _is_sparse(M):
    """Whether ``M`` is a SciPy sparse matrix or a sparse torch tensor."""
    if is_tensor(M):
        # pylint: disable-next=import-outside-toplevel
        from fasttsne.linalg._svd._torch import is_sparse

        return is_sparse(M)
    return sp.issparse(M)


@contextmanager
def _operator_and_products(M, *, mean, transpose, width):
    """The operator and the basis products for ``M``'s array library and device.

    Yields ``(operator, products)`` (:mod:`fasttsne.linalg._svd._operators`
    describes both): NumPy's for ndarrays and SciPy sparse matrices, with the
    BLAS threads of :func:`_threaded_products`; torch's
    (:mod:`fasttsne.linalg._svd._torch`) for torch tensors, on their device.
    """
    if is_tensor(M):
        # pylint: disable-next=import-outside-toplevel
        from fasttsne.linalg._svd._torch import TorchOperator, TorchProducts

        yield TorchOperator(M, mean=mean, transpose=transpose), TorchProducts(M.device)
        return
    sparse = sp.issparse(M)
    n_threads = _blas_n_threads() if sparse else 1
    op = _LinearOperator(
        M, mean=mean, transpose=transpose, n_threads=n_threads, width=width
    )
    # The caller's with statement exits this one (the generator runs to its end).
    # pylint: disable-next=contextmanager-generator-missing-cleanup
    with _threaded_products(sparse, n_threads) as products:
        yield op, products


def _finish(U, S, Vt, *, transpose, flip_sign, u_based_decision, dtype):
    """Signs, layout and dtype of the result, in the tall arrays' library.

    ``U`` and ``Vt`` are the solver's tall arrays (before undoing ``transpose``),
    ``S`` its NumPy singular values. NumPy results are C-contiguous ndarrays;
    torch results are tensors on the data's device, ``S`` included.
    """
    if transpose:
        U, Vt = Vt.T, U.T
    if flip_sign:
        U, Vt = _flip_signs(U, Vt, u_based_decision)
    S = S.astype(dtype, copy=False)
    if is_tensor(U):
        # pylint: disable-next=import-outside-toplevel
        import torch

        return U.contiguous(), torch.from_numpy(S).to(U.device), Vt.contiguous()
    return np.ascontiguousarray(U), S, np.ascontiguousarray(Vt)


def _on_device(M, device):
    """Where to compute on ``M``, and how the results come back.

    Returns ``(M, back)``: ``M`` moved to the device that ``device`` (a
    resolved ``"cpu"`` or ``"cuda"``, or ``"auto"`` for a tensor: where it
    lives) asks for, and a function that takes the results there to the
    caller's library and device: NumPy input computed on CUDA comes back as
    NumPy, a tensor on its own device.
    """
    if is_tensor(M):
        if device == "auto":
            return M, lambda result: result
        target = gpu.torch_device() if device == "cuda" else "cpu"
        home = M.device
        return M.to(target), lambda result: result.to(home)
    if device != "cuda":
        return M, lambda result: result
    # pylint: disable-next=import-outside-toplevel
    from fasttsne.linalg._svd._torch import to_numpy, to_torch

    return to_torch(M, gpu.torch_device()), to_numpy


def _dispatching(M):
    """Whether ``M`` is a tensor to keep as one: array API dispatch is on."""
    return is_tensor(M) and get_config()["array_api_dispatch"]


def _randomized_svd(  # pylint: disable=too-many-arguments,too-many-locals
    M,
    n_components,
    *,
    n_oversamples=10,
    n_iter="auto",
    power_iteration_normalizer="auto",
    algorithm="auto",
    block_size=None,
    tol=None,
    transpose="auto",
    flip_sign=True,
    u_based_decision=False,
    random_state=None,
    svd_lapack_driver="gesdd",
    center=False,
    return_info=False,
):
    """Body of :func:`randomized_svd` without input validation.

    Extra keyword arguments for internal callers: ``center`` subtracts the column
    means implicitly (``M`` is never modified or densified), ``u_based_decision``
    chooses the sign convention (``False``, the default here: signs follow ``V``,
    as ``RandomizedSVD`` and ``TruncatedSVD`` do; :func:`randomized_svd` passes
    ``True``) and ``return_info`` appends a dict with the resolved
    ``algorithm`` (the solver that produced the result), ``n_iter``,
    ``power_iteration_normalizer``, ``block_size``, ``transpose``,
    ``scale_exponent`` (the power of two the data were scaled by) and
    ``basis_dtype`` (the dtype of the Krylov or subspace basis: ``"float32"``
    where a float32 copy of a float64 sparse matrix built it).
    """
    M, mean, exponent = _prepare(M, center)
    if isinstance(random_state, np.random.Generator):
        rng = random_state
    else:
        rng = check_random_state(random_state)
    if transpose == "auto":
        transpose = M.shape[0] < M.shape[1]
    algorithm, n_iter, normalizer, block = _resolve_options(
        M.shape,
        n_components,
        n_oversamples=n_oversamples,
        n_iter=n_iter,
        normalizer=power_iteration_normalizer,
        algorithm=algorithm,
        block=block_size,
        sparse=_is_sparse(M),
    )
    width = n_components + n_oversamples if algorithm == "subspace" else block
    basis_dtype = None
    with _operator_and_products(M, mean=mean, transpose=transpose, width=width) as (
        op,
        products,
    ):
        if algorithm == "subspace":
            U, S, Vt, n_run = _subspace_iteration(
                op,
                n_components,
                n_oversamples=n_oversamples,
                n_iter=n_iter,
                normalizer=normalizer,
                rng=rng,
                products=products,
                lapack_driver=svd_lapack_driver,
            )
        else:
            options = {
                "n_oversamples": n_oversamples,
                "block_size": block,
                "n_iter": n_iter,
                "tol": tol,
                "rng": rng,
                "products": products,
                "lapack_driver": svd_lapack_driver,
            }
            result = None
            op32 = _float32_operator(op, tol) if algorithm == "krylov" else None
            if op32 is not None:
                # Three digits or so asked for: a float32 copy of A halves the
                # bytes of every product and reorthogonalisation pass; the final
                # Rayleigh-Ritz step is taken on A in float64. Abandoned (for
                # the float64 solve below) where float32 cannot resolve the
                # spectrum to tol.
                # For tol above about 0.02 this test is weaker than the float64
                # path's _needs_bidiagonal (a ratio of 1e-2), which the float32
                # basis does not make: the final step on A in float64 and the
                # tol-sized request cover it.
                def coarse(S):
                    return not _float32_resolves(S, tol)

                result = _block_krylov(
                    op32,
                    n_components,
                    solver=_BlockLanczos,
                    abandon_if=coarse,
                    final_op=op,
                    **options,
                )
                # The float32 copy and its tiles are not needed again: freed
                # before a float64 solve allocates its own.
                op32 = None
                if result is None or coarse(result[1]):
                    result = None
                else:
                    basis_dtype = "float32"
            if algorithm == "krylov" and result is None:
                # Block Lanczos, unless its first block (whose Ritz values
                # underestimate the singular values) or its result shows singular
                # values below what it resolves: then the same Krylov space,
                # built without squaring them.
                def steep(S):
                    return _needs_bidiagonal(S, op.dtype)

                result = _block_krylov(
                    op, n_components, solver=_BlockLanczos, abandon_if=steep, **options
                )
                if result is None or steep(result[1]):
                    algorithm = "bidiagonal"
                    result = None
            if result is None:
                result = _block_krylov(
                    op, n_components, solver=_BlockBidiagonal, **options
                )
            U, S, Vt, n_run = result
            basis_dtype = basis_dtype or op.dtype.name
    S_top = float(S[0]) if S.size else 0.0
    dtype = op.dtype
    S = S.astype(dtype, copy=False)
    if exponent:
        with np.errstate(over="ignore", under="ignore"):
            S = np.ldexp(S, -exponent).astype(dtype, copy=False)
        if not np.all(np.isfinite(S)):
            raise ValueError(
                f"The singular values of the input exceed the {dtype.name} "
                f"range (the largest is about 2**{int(np.frexp(S_top)[1]) - exponent}"
                f"); convert the data to float64 or scale them down."
            )
    U, S, Vt = _finish(
        U,
        S,
        Vt,
        transpose=transpose,
        flip_sign=flip_sign,
        u_based_decision=u_based_decision,
        dtype=dtype,
    )
    if not return_info:
        return U, S, Vt
    info = {
        "algorithm": algorithm,
        "n_iter": n_run,
        "power_iteration_normalizer": normalizer,
        "block_size": block,
        "transpose": bool(transpose),
        "scale_exponent": exponent,
        "basis_dtype": basis_dtype,
    }
    return U, S, Vt, info


@validate_params(
    {
        "M": ["array-like", "sparse matrix"],
        "n_components": [Interval(Integral, 1, None, closed="left")],
        "n_oversamples": [Interval(Integral, 0, None, closed="left")],
        "n_iter": [StrOptions({"auto"}), Interval(Integral, 0, None, closed="left")],
        "power_iteration_normalizer": [StrOptions({"auto", "LU", "QR", "none"})],
        "algorithm": [StrOptions({"auto", "krylov", "bidiagonal", "subspace"})],
        "block_size": [None, Interval(Integral, 1, None, closed="left")],
        "tol": [None, Interval(Real, 0, None, closed="left")],
        "transpose": [StrOptions({"auto"}), "boolean"],
        "flip_sign": ["boolean"],
        "random_state": ["random_state"],
        "svd_lapack_driver": [StrOptions({"gesdd", "gesvd"})],
        "device": [StrOptions({"auto", "cpu", "cuda"})],
    },
    prefer_skip_nested_validation=True,
)
def randomized_svd(
    M,
    n_components,
    *,
    n_oversamples=10,
    n_iter="auto",
    power_iteration_normalizer="auto",
    algorithm="auto",
    block_size=None,
    tol=None,
    transpose="auto",
    flip_sign=True,
    random_state=None,
    svd_lapack_driver="gesdd",
    device="auto",
):
    """Compute a truncated SVD with a randomized range finder.

    A drop-in alternative to :func:`sklearn.utils.extmath.randomized_svd`: the
    same arguments with the same meaning, the same outputs and the same sign
    convention, plus ``algorithm``, ``block_size`` and ``tol``. It defaults to
    randomized block Krylov iteration: at least as accurate as scikit-learn's
    default for about half the matrix products.

    .. versionadded:: 0.1

    Parameters
    ----------
    M : {array-like, sparse matrix} of shape (n_rows, n_cols)
        The matrix to decompose. float32 input is computed in float32 and float64
        in float64; sparse CSR/CSC input is never densified (LIL and DOK input is
        converted to CSR, with scikit-learn's ``SparseEfficiencyWarning``).
        Any magnitude is fine: data outside a safe range are scaled by a power
        of two, exactly, and the singular values scaled back.
    n_components : int
        Number of singular values and vectors to compute, at most
        ``min(n_rows, n_cols)``.
    n_oversamples : int, default=10
        Extra dimensions of the sampled subspace. Subspace iteration samples
        ``n_components + n_oversamples`` vectors; block Krylov passes that many
        Ritz vectors to its final Rayleigh-Ritz step.
    n_iter : int or "auto", default="auto"
        Number of power iterations, as in scikit-learn. Subspace iteration runs
        them as they are; ``"auto"`` is 7, or 4 when ``n_components`` is at least
        a tenth of ``min(M.shape)``. Block Krylov runs ``n_iter + 1`` blocks
        after the first (by default of ``n_components + n_oversamples``
        columns), a space that contains the one of ``n_iter`` power iterations:
        at least scikit-learn's accuracy for one more block product.
        ``"auto"`` spends about half of scikit-learn's default products: at
        least 4 blocks after the first, and ``(2 n + 1) * block_size`` up to ``8
        (n_components + n_oversamples)`` columns for ``n`` of them.
    power_iteration_normalizer : {"auto", "LU", "QR", "none"}, default="auto"
        How subspace iteration renormalises its block between products: ``"LU"``
        (partial-pivoting LU, cheapest stable choice), ``"QR"`` (orthonormalise)
        or ``"none"`` (fastest, loses precision beyond a few iterations).
        ``"auto"`` is ``"none"`` for ``n_iter <= 2`` and ``"LU"`` otherwise.
        Block Krylov always orthonormalises and ignores this.
    algorithm : {"auto", "krylov", "bidiagonal", "subspace"}, default="auto"
        ``"krylov"``: randomized block Krylov (Musco and Musco, 2015), far fewer
        products on flat spectra, by block Lanczos on ``M^T M``; when the
        singular values it finds span more than that resolves (``s_k < 10^-2
        s_1`` in float64, ``s_k < s_1 / 8`` in float32), the same space is built
        again by ``"bidiagonal"``. ``"bidiagonal"``: the same space by block
        Golub-Kahan-Lanczos bidiagonalisation, which alternates ``M`` and
        ``M^T`` and resolves singular values down to about ``eps s_1``, as
        subspace iteration does; it reorthogonalises both sides, so it costs
        more. ``"subspace"``: randomized subspace iteration (Halko et al., 2011),
        the algorithm of scikit-learn and fbpca, with the smallest memory
        footprint. ``"auto"`` picks ``"krylov"`` unless its basis would exceed
        1 GiB (see Notes).
    block_size : int, default=None
        Block Krylov: columns per block. ``None`` means ``n_components``, for
        dense input rounded up to a multiple of 8 (the GEMM tile) when that adds
        at most 15%, and ``n_components + n_oversamples`` when ``n_iter`` is
        given. Blocks narrower than ``n_components`` converge slowly in the first
        iterations on flat spectra, but with many iterations reach high accuracy
        for fewer products.
    tol : float, default=None
        Block Krylov: stop before ``n_iter`` once the residual bound on the
        relative error of each of the top ``n_components`` singular values is
        below ``tol``; a bound, the actual errors are usually far smaller.
        ``None`` means the square root of the machine epsilon of the dtype (stop
        once converged to working precision), tested after every block but only
        where the test costs little next to an iteration (not on small
        matrices); an explicit ``tol`` is tested after each of the first 8
        blocks, then whenever the blocks have grown by an eighth. ``0`` never
        stops early. A ``tol`` of at least ``1e-4`` on a sparse float64 matrix
        (not centred) asks for a few digits, which float32 resolves: block
        Lanczos then builds its basis on a float32 copy of ``M`` and takes the
        final Rayleigh-Ritz step on ``M`` in float64, unless the spectrum is too
        steep for float32 to resolve to ``tol`` (``16 eps32 (s_1 / s_k)^2 >
        tol``), where the solve is in float64 throughout.

        .. versionchanged:: 0.2
           The float32 basis, and the schedule of an explicit ``tol``.
    transpose : bool or "auto", default="auto"
        Work on ``M.T``. ``"auto"`` transposes wide matrices so that the sampled
        basis lives on the short side.
    flip_sign : bool, default=True
        Resolve the sign ambiguity as scikit-learn's ``randomized_svd`` does:
        the largest-magnitude entry of each left singular vector (column of
        ``U``) is positive, whether or not ``M`` was transposed.
    random_state : int, RandomState instance or None, default=None
        Seed of the Gaussian test matrix. Pass an int for reproducible results.
    svd_lapack_driver : {"gesdd", "gesvd"}, default="gesdd"
        LAPACK driver of the SVDs of the small projected matrices:
        divide-and-conquer (``"gesdd"``) or the QR iteration (``"gesvd"``),
        as in scikit-learn.
    device : {"auto", "cpu", "cuda"}, default="auto"
        Where the products run. ``"cuda"`` moves the data to the CUDA device
        with torch (the ``fasttsne[gpu]`` extra) and brings the results back
        as NumPy arrays; ``"auto"`` does so when torch, triton and a device
        are there (:func:`fasttsne.gpu.is_available`), and computes a torch
        tensor where it lives. Torch tensors (dense or sparse CSR) are kept as
        tensors, results on their device, under
        ``sklearn.config_context(array_api_dispatch=True)``; without it they
        are converted to NumPy, as scikit-learn does.

        .. versionadded:: 0.2

    Returns
    -------
    U : ndarray or tensor of shape (n_rows, n_components)
        Left singular vectors.
    S : ndarray or tensor of shape (n_components,)
        Singular values, in decreasing order.
    Vt : ndarray or tensor of shape (n_components, n_cols)
        Right singular vectors, as rows.

    See Also
    --------
    RandomizedSVD : The same as a scikit-learn transformer.
    sklearn.utils.extmath.randomized_svd : Randomized subspace iteration.
    scipy.sparse.linalg.svds : Implicitly restarted Lanczos (ARPACK) or LOBPCG.

    Notes
    -----
    Block Krylov keeps ``(n_iter + 1) * block_size`` basis columns on the short
    side of ``M`` (``n_iter`` counted in Krylov blocks) and ``M`` times them on
    the long side (recomputed instead when that would exceed 1 GiB); subspace
    iteration keeps ``n_components + n_oversamples`` columns. Both cost
    ``O(nnz(M))`` per basis column and product.

    References
    ----------
    N. Halko, P.-G. Martinsson and J. A. Tropp, "Finding structure with
    randomness: probabilistic algorithms for constructing approximate matrix
    decompositions", SIAM Review 53(2), 2011.

    C. Musco and C. Musco, "Randomized block Krylov methods for stronger and
    faster approximate singular value decomposition", NeurIPS 2015.

    G. H. Golub, F. T. Luk and M. L. Overton, "A block Lanczos method for
    computing the singular values and corresponding singular vectors of a
    matrix", ACM Trans. Math. Softw. 7(2), 1981.

    Examples
    --------
    >>> import numpy as np
    >>> from fasttsne import randomized_svd
    >>> rng = np.random.default_rng(0)
    >>> X = rng.standard_normal((100, 5)) @ rng.standard_normal((5, 40))
    >>> U, S, Vt = randomized_svd(X, 3, random_state=0)
    >>> U.shape, S.shape, Vt.shape
    ((100, 3), (3,), (3, 40))
    >>> bool(np.allclose(S, np.linalg.svd(X, compute_uv=False)[:3]))
    True
    """
    if _dispatching(M):
        # pylint: disable-next=import-outside-toplevel
        from fasttsne.linalg._svd._torch import check_tensor

        M = check_tensor(M)
        where = device if device == "auto" else gpu.resolve_device(device)
    else:
        M = _check_matrix(M)
        where = gpu.resolve_device(device)
    if n_components > min(M.shape):
        raise ValueError(
            f"n_components={n_components} must be at most min(M.shape)="
            f"{min(M.shape)} for M of shape {M.shape}."
        )
    M, back = _on_device(M, where)
    U, S, Vt = _randomized_svd(
        M,
        n_components,
        n_oversamples=n_oversamples,
        n_iter=n_iter,
        power_iteration_normalizer=power_iteration_normalizer,
        algorithm=algorithm,
        block_size=block_size,
        tol=tol,
        transpose=transpose,
        flip_sign=flip_sign,
        u_based_decision=True,
        random_state=random_state,
        svd_lapack_driver=svd_lapack_driver,
    )
    return back(U), back(S), back(Vt)


def _check_matrix(M):
    """``M`` as a float32/float64 ndarray or CSR/CSC matrix, as scikit-learn's
    ``randomized_svd`` accepts it."""
    if sp.issparse(M) and M.format in ("lil", "dok"):
        # scikit-learn's randomized_svd warns in these words.
        warnings.warn(
            f"Calculating SVD of a {type(M).__name__} is expensive. "
            "CSR format is more efficient.",
            sp.SparseEfficiencyWarning,
        )
    # scikit-learn's finiteness check sums the data first, which overflows near
    # the largest float: no warning for valid data.
    with np.errstate(over="ignore", invalid="ignore"):
        M = check_array(
            M,
            accept_sparse=["csr", "csc"],
            dtype=[np.float64, np.float32],
            copy=False,
        )
    return M
