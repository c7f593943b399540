"""Attractive t-SNE forces, the KL attraction term, the fused descent step.

Implementation notes
--------------------
The force and KL kernels make one pass over the rows of a CSR matrix P:
O(nnz(P) d) time. P may be square (the embedding against itself) or
rectangular (query rows against the columns of a fixed reference embedding,
for ``transform``). They allocate nothing but, for the KL term, one double
slot per row (a NumPy array freed by Python). Rows are split over threads
with ``prange``; a row owns its output row and its slot, and the slots are
summed serially in row order, so results are bitwise identical for any
number of threads. Sums are accumulated in double whatever the input dtype.
P's values may be float32 (a fit's own: with int32 indices, 8 bytes an
entry, against 12 for float64) or float64, independently of Y's dtype; each
is widened to double exactly, so the same values give the same bits in
either dtype.

The 2-D rows of a float32 P with int32 indices against a float64 Y (every
fit with fewer than 2^31 stored entries) take C kernels written with
GCC/clang vector extensions, in blocks of ``_ROW_BLOCK`` rows: the four
accumulators of the scalar loop become the lanes of two 128-bit vectors
(SSE2 on x86-64 and i686, NEON on arm64), or of one 256-bit vector on x86-64
CPUs with AVX (chosen at run time with ``__builtin_cpu_supports``, never by
build flags), so the divisions that bound the scalar loop issue as packed
divisions. The AVX kernel needs ``__builtin_shufflevector`` and
``__builtin_convertvector`` (clang, GCC 12 and later); older GCC runs the
128-bit kernel. Each lane does the scalar loop's operations in its order and
the lanes are combined as the scalar accumulators are, so every path gives
the same bits (the tests compare them with the int64 scalar loop). Other
targets (whose vectors may round differently, such as x87 or MSVC-compatible
compilers), dtypes and dimensions take the scalar loop. Given the repulsion
and its factor, the force kernel also assembles a fit's gradient block by
block, while the block's rows are in cache.

``descent_step_2d`` is serial, works in place and allocates nothing; it
gives NumPy's bits only when the C compiler does not contract ``a * b + c``
into FMAs, which ``setup.py`` forbids with ``-ffp-contract=off``.
"""

from cython cimport floating
from cython.parallel cimport prange
from libc.math cimport log, sqrt

from fasttsne._cython._typedefs cimport (
    float32_t,
    float64_t,
    index_t,
    int32_t,
    intp_t,
    pvalue_t,
)

import numpy as np


cdef extern from *:
    """
    #include <string.h>
    /* Only targets whose vectors round as the scalar loop does (SSE2, NEON)
       and whose compilers get -ffp-contract=off from setup.py: x87 vectors
       on i686 without SSE2 round differently, clang-cl gets no flag. */
    #if (defined(__GNUC__) || defined(__clang__)) && !defined(_MSC_VER) && \
        (defined(__x86_64__) || defined(__aarch64__) || \
         (defined(__i386__) && defined(__SSE2_MATH__)))
    #define FASTTSNE_VECTOR_ATTRACTION 1
    typedef double fasttsne_v2d __attribute__((vector_size(16)));
    typedef long long fasttsne_v2l __attribute__((vector_size(16)));
    #if defined(__clang__)
    #define FASTTSNE_PAIR(a, b, i, j) __builtin_shufflevector(a, b, i, j)
    #else
    #define FASTTSNE_PAIR(a, b, i, j) __builtin_shuffle(a, b, (fasttsne_v2l){i, j})
    #endif

    /* The end of a row for both vector kernels: the entries left over
       from the steps of four go to accumulator 0, then the accumulators
       are combined in _attract_row_2d's order. */
    static inline void fasttsne_finish_row_2d(
        const int32_t *indices, const float *data, const double *Y_ref,
        Py_ssize_t jj, Py_ssize_t j_end, double y0, double y1, double inv_dof,
        double exaggeration, double a0, double b0, double c0, double d0,
        double a1, double b1, double c1, double d1, double *out_i)
    {
        double s0, s1, q;
        for (; jj < j_end; jj++) {
            s0 = y0 - Y_ref[2 * (Py_ssize_t)indices[jj]];
            s1 = y1 - Y_ref[2 * (Py_ssize_t)indices[jj] + 1];
            q = data[jj] / (1.0 + (s0 * s0 + s1 * s1) * inv_dof);
            a0 += q * s0;
            a1 += q * s1;
        }
        out_i[0] = exaggeration * ((a0 + b0) + (c0 + d0));
        out_i[1] = exaggeration * ((a1 + b1) + (c1 + d1));
    }

    /* _attract_row_2d for a float32 P with int32 indices. Lanes (0, 1) of
       the "lo" vectors and (0, 1) of the "hi" vectors are the scalar loop's
       accumulators 0 to 3: each does the same operations in the same order,
       so the bits are the scalar loop's. A point's two coordinates are one
       16-byte load; shuffles, not stores, make the vectors of x and of y
       (building them through the stack stalls on store forwarding). */
    static inline void fasttsne_attract_row_2d(
        const int32_t *indptr, const int32_t *indices, const float *data,
        const double *Y, const double *Y_ref, Py_ssize_t i, double inv_dof,
        double exaggeration, double *out)
    {
        const double y0 = Y[2 * i], y1 = Y[2 * i + 1];
        const fasttsne_v2d yi = {y0, y1};
        fasttsne_v2d f0_lo = {0.0, 0.0}, f0_hi = {0.0, 0.0};
        fasttsne_v2d f1_lo = {0.0, 0.0}, f1_hi = {0.0, 0.0};
        fasttsne_v2d ra, rb, rc, rd, x0_lo, x1_lo, x0_hi, x1_hi, p_lo, p_hi;
        fasttsne_v2d pq_lo, pq_hi;
        Py_ssize_t jj = indptr[i], j_end = indptr[i + 1];
        for (; jj + 3 < j_end; jj += 4) {
            memcpy(&ra, Y_ref + 2 * (Py_ssize_t)indices[jj], sizeof ra);
            memcpy(&rb, Y_ref + 2 * (Py_ssize_t)indices[jj + 1], sizeof rb);
            memcpy(&rc, Y_ref + 2 * (Py_ssize_t)indices[jj + 2], sizeof rc);
            memcpy(&rd, Y_ref + 2 * (Py_ssize_t)indices[jj + 3], sizeof rd);
            ra = yi - ra;
            rb = yi - rb;
            rc = yi - rc;
            rd = yi - rd;
            x0_lo = FASTTSNE_PAIR(ra, rb, 0, 2);
            x1_lo = FASTTSNE_PAIR(ra, rb, 1, 3);
            x0_hi = FASTTSNE_PAIR(rc, rd, 0, 2);
            x1_hi = FASTTSNE_PAIR(rc, rd, 1, 3);
            p_lo = (fasttsne_v2d){data[jj], data[jj + 1]};
            p_hi = (fasttsne_v2d){data[jj + 2], data[jj + 3]};
            pq_lo = p_lo / (1.0 + (x0_lo * x0_lo + x1_lo * x1_lo) * inv_dof);
            pq_hi = p_hi / (1.0 + (x0_hi * x0_hi + x1_hi * x1_hi) * inv_dof);
            f0_lo += pq_lo * x0_lo;
            f1_lo += pq_lo * x1_lo;
            f0_hi += pq_hi * x0_hi;
            f1_hi += pq_hi * x1_hi;
        }
        fasttsne_finish_row_2d(indices, data, Y_ref, jj, j_end, y0, y1, inv_dof,
                               exaggeration, f0_lo[0], f0_lo[1], f0_hi[0],
                               f0_hi[1], f1_lo[0], f1_lo[1], f1_hi[0], f1_hi[1],
                               out + 2 * i);
    }

    #if defined(__x86_64__) && defined(__has_builtin)
    #if __has_builtin(__builtin_shufflevector) && \
        __has_builtin(__builtin_convertvector) && __has_builtin(__builtin_cpu_supports)
    #define FASTTSNE_AVX_ATTRACTION 1
    #endif
    #endif

    #ifdef FASTTSNE_AVX_ATTRACTION
    typedef double fasttsne_v4d __attribute__((vector_size(32)));
    typedef float fasttsne_v4f __attribute__((vector_size(16)));

    /* The same rows with the four accumulators in one 256-bit vector: one
       packed division per four entries where SSE2 needs two (the divisions
       bound the loop). AVX has no FMA, and setup.py forbids contraction
       anyway, so each lane still rounds as the scalar loop does: same bits.
       Chosen at run time (fasttsne_attract_rows_2d), never by build flags. */
    __attribute__((target("avx"))) static void fasttsne_attract_rows_2d_avx(
        const int32_t *indptr, const int32_t *indices, const float *data,
        const double *Y, const double *Y_ref, Py_ssize_t start, Py_ssize_t stop,
        double inv_dof, double exaggeration, double *out)
    {
        fasttsne_v2d yi, ra, rb, rc, rd;
        fasttsne_v4d ab, cd, x0, x1, p, pq, f0, f1;
        fasttsne_v4f pf;
        Py_ssize_t i, jj, j_end;
        double y0, y1;
        for (i = start; i < stop; i++) {
            y0 = Y[2 * i];
            y1 = Y[2 * i + 1];
            yi = (fasttsne_v2d){y0, y1};
            f0 = (fasttsne_v4d){0.0, 0.0, 0.0, 0.0};
            f1 = f0;
            jj = indptr[i];
            j_end = indptr[i + 1];
            for (; jj + 3 < j_end; jj += 4) {
                memcpy(&ra, Y_ref + 2 * (Py_ssize_t)indices[jj], sizeof ra);
                memcpy(&rb, Y_ref + 2 * (Py_ssize_t)indices[jj + 1], sizeof rb);
                memcpy(&rc, Y_ref + 2 * (Py_ssize_t)indices[jj + 2], sizeof rc);
                memcpy(&rd, Y_ref + 2 * (Py_ssize_t)indices[jj + 3], sizeof rd);
                ab = __builtin_shufflevector(yi - ra, yi - rb, 0, 1, 2, 3);
                cd = __builtin_shufflevector(yi - rc, yi - rd, 0, 1, 2, 3);
                x0 = __builtin_shufflevector(ab, cd, 0, 2, 4, 6);
                x1 = __builtin_shufflevector(ab, cd, 1, 3, 5, 7);
                memcpy(&pf, data + jj, sizeof pf);
                p = __builtin_convertvector(pf, fasttsne_v4d);
                pq = p / (1.0 + (x0 * x0 + x1 * x1) * inv_dof);
                f0 += pq * x0;
                f1 += pq * x1;
            }
            fasttsne_finish_row_2d(indices, data, Y_ref, jj, j_end, y0, y1,
                                   inv_dof, exaggeration, f0[0], f0[1], f0[2],
                                   f0[3], f1[0], f1[1], f1[2], f1[3],
                                   out + 2 * i);
        }
    }
    #endif

    /* 0 keeps the AVX kernel off (tests reach the 128-bit one this way). */
    static int fasttsne_allow_avx = 1;

    static int fasttsne_attraction_uses_avx(void)
    {
    #ifdef FASTTSNE_AVX_ATTRACTION
        /* Asked once: the answer is fixed for the process (-1: not yet). */
        static int cpu_has_avx = -1;
        if (cpu_has_avx < 0)
            cpu_has_avx = __builtin_cpu_supports("avx") ? 1 : 0;
        return fasttsne_allow_avx && cpu_has_avx;
    #else
        return 0;
    #endif
    }

    /* Rows start:stop, on the widest vectors this CPU has. */
    static void fasttsne_attract_rows_2d(
        const int32_t *indptr, const int32_t *indices, const float *data,
        const double *Y, const double *Y_ref, Py_ssize_t start, Py_ssize_t stop,
        double inv_dof, double exaggeration, double *out)
    {
        Py_ssize_t i;
    #ifdef FASTTSNE_AVX_ATTRACTION
        if (fasttsne_attraction_uses_avx()) {
            fasttsne_attract_rows_2d_avx(indptr, indices, data, Y, Y_ref, start,
                                         stop, inv_dof, exaggeration, out);
            return;
        }
    #endif
        for (i = start; i < stop; i++)
            fasttsne_attract_row_2d(indptr, indices, data, Y, Y_ref, i, inv_dof,
                                    exaggeration, out);
    }
    #else
    #define FASTTSNE_VECTOR_ATTRACTION 0
    static int fasttsne_allow_avx = 0;
    static int fasttsne_attraction_uses_avx(void) { return 0; }
    static void fasttsne_attract_rows_2d(
        const int32_t *indptr, const int32_t *indices, const float *data,
        const double *Y, const double *Y_ref, Py_ssize_t start, Py_ssize_t stop,
        double inv_dof, double exaggeration, double *out) {}
    #endif
    """
    bint FASTTSNE_VECTOR_ATTRACTION
    int fasttsne_allow_avx
    int fasttsne_attraction_uses_avx() noexcept nogil
    void fasttsne_attract_rows_2d(
        const int32_t *indptr, const int32_t *indices, const float *data,
        const double *Y, const double *Y_ref, intp_t start, intp_t stop,
        double inv_dof, double exaggeration, double *out
    ) noexcept nogil


# Rows per scheduling block of the attraction: one vector-kernel dispatch
# each, small enough that threads share uneven rows out evenly.
cdef enum:
    _ROW_BLOCK = 256


cdef void _attract_row_2d(
    const index_t *indptr, const index_t *indices, const pvalue_t *data,
    const floating *Y, const floating *Y_ref, intp_t i, double inv_dof,
    double exaggeration, floating *out
) noexcept nogil:
    """The 2-D case of _attract_row, four stored entries per step.

    Four independent accumulators break the dependency chain of the sums (the
    loop is latency-bound otherwise); they are combined in a fixed order.
    """
    cdef double y0 = Y[2 * i], y1 = Y[2 * i + 1]
    cdef double f0[4]
    cdef double f1[4]
    cdef double x0[4]
    cdef double x1[4]
    cdef double pq[4]
    cdef index_t jj = indptr[i], j_end = indptr[i + 1]
    cdef intp_t j
    cdef int u
    for u in range(4):
        f0[u] = 0.0
        f1[u] = 0.0
    while jj + 3 < j_end:
        for u in range(4):
            j = indices[jj + u]
            x0[u] = y0 - Y_ref[2 * j]
            x1[u] = y1 - Y_ref[2 * j + 1]
        for u in range(4):
            pq[u] = data[jj + u] / (1.0 + (x0[u] * x0[u] + x1[u] * x1[u]) * inv_dof)
        for u in range(4):
            f0[u] += pq[u] * x0[u]
            f1[u] += pq[u] * x1[u]
        jj += 4
    while jj < j_end:
        j = indices[jj]
        x0[0] = y0 - Y_ref[2 * j]
        x1[0] = y1 - Y_ref[2 * j + 1]
        pq[0] = data[jj] / (1.0 + (x0[0] * x0[0] + x1[0] * x1[0]) * inv_dof)
        f0[0] += pq[0] * x0[0]
        f1[0] += pq[0] * x1[0]
        jj += 1
    out[2 * i] = <floating>(exaggeration * ((f0[0] + f0[1]) + (f0[2] + f0[3])))
    out[2 * i + 1] = <floating>(exaggeration * ((f1[0] + f1[1]) + (f1[2] + f1[3])))


cdef void _attract_row(
    const index_t *indptr, const index_t *indices, const pvalue_t *data,
    const floating *Y, const floating *Y_ref, intp_t i, int d, double inv_dof,
    double exaggeration, floating *out
) noexcept nogil:
    """out[i] = exaggeration * sum_j p_ij (y_i - y_j) / t_ij for one row."""
    cdef double f0 = 0.0, f1 = 0.0, f2 = 0.0, y0, y1 = 0.0, y2 = 0.0
    cdef double x0, x1 = 0.0, x2 = 0.0, pq
    cdef index_t jj
    cdef intp_t j
    if d == 2:
        _attract_row_2d(
            indptr, indices, data, Y, Y_ref, i, inv_dof, exaggeration, out
        )
        return
    y0 = Y[i * d]
    if d > 1:
        y1 = Y[i * d + 1]
    if d > 2:
        y2 = Y[i * d + 2]
    for jj in range(indptr[i], indptr[i + 1]):
        j = indices[jj]
        x0 = y0 - Y_ref[d * j]
        if d > 1:
            x1 = y1 - Y_ref[d * j + 1]
        if d > 2:
            x2 = y2 - Y_ref[d * j + 2]
        pq = data[jj] / (1.0 + (x0 * x0 + x1 * x1 + x2 * x2) * inv_dof)
        f0 += pq * x0
        f1 += pq * x1
        f2 += pq * x2
    out[d * i] = <floating>(exaggeration * f0)
    if d > 1:
        out[d * i + 1] = <floating>(exaggeration * f1)
    if d > 2:
        out[d * i + 2] = <floating>(exaggeration * f2)


cdef double _kl_row(
    const index_t *indptr, const index_t *indices, const pvalue_t *data,
    const floating *Y, const floating *Y_ref, intp_t i, int d, double dof
) noexcept nogil:
    """sum_j p_ij log(p_ij / w_ij) over one row (terms with p_ij = 0 are 0)."""
    cdef double acc = 0.0, d2, diff, p
    cdef index_t jj
    cdef intp_t j
    cdef int k
    for jj in range(indptr[i], indptr[i + 1]):
        p = data[jj]
        if p <= 0.0:
            continue
        j = indices[jj]
        d2 = 0.0
        for k in range(d):
            diff = Y[i * d + k] - Y_ref[j * d + k]
            d2 += diff * diff
        # log(p / w) with w = t^(-dof): one logarithm when dof = 1.
        if dof == 1.0:
            acc += p * log(p * (1.0 + d2))
        else:
            acc += p * (log(p) + dof * log(1.0 + d2 / dof))
    return acc


cdef void _check_csr(
    const index_t[::1] indptr, const index_t[::1] indices, intp_t nnz,
    intp_t n_rows, intp_t d, intp_t d_ref, double dof, int n_threads
) except *:
    if d < 1 or d > 3 or d != d_ref:
        raise ValueError(
            f"Y and Y_ref must have the same number of columns, 1 to 3; got "
            f"{d} and {d_ref}."
        )
    if indptr.shape[0] != n_rows + 1:
        raise ValueError(
            f"indptr has length {indptr.shape[0]}, expected n_rows + 1 = "
            f"{n_rows + 1}."
        )
    if indices.shape[0] != nnz or indptr[0] != 0 or indptr[n_rows] != nnz:
        raise ValueError(
            f"Inconsistent CSR arrays: indptr[0]={indptr[0]}, "
            f"indptr[-1]={indptr[n_rows]}, {indices.shape[0]} indices and "
            f"{nnz} values."
        )
    if not dof > 0.0:
        raise ValueError(f"dof must be positive, got {dof}.")
    if n_threads < 1:
        raise ValueError(f"n_threads must be at least 1, got {n_threads}.")


def _attraction_kernel():
    """Which kernel a 2-D attraction runs (float64 Y, float32 P, int32 indices).

    Returns
    -------
    kernel : {"avx", "vector", "scalar"}
        The 256-bit kernel, the 128-bit one (GCC/clang vector extensions on
        x86-64, arm64 or SSE2 i686), or the scalar loop (other targets).
    """
    if not FASTTSNE_VECTOR_ATTRACTION:
        return "scalar"
    return "avx" if fasttsne_attraction_uses_avx() else "vector"


def _allow_avx(allow):
    """Allow or forbid the AVX kernel in this process from now on.

    Tests forbid it to reach the 128-bit kernel on CPUs that have AVX.

    Parameters
    ----------
    allow : bool
        Whether the attraction may run the AVX kernel (True by default).

    Returns
    -------
    previous : bool
        The setting before this call.
    """
    global fasttsne_allow_avx
    previous = bool(fasttsne_allow_avx)
    if FASTTSNE_VECTOR_ATTRACTION:
        fasttsne_allow_avx = 1 if allow else 0
    return previous


def attractive_forces(
    const index_t[::1] indptr,
    const index_t[::1] indices,
    const pvalue_t[::1] data,
    const floating[:, ::1] Y,
    double dof,
    double exaggeration,
    floating[:, ::1] out,
    int n_threads,
    const floating[:, ::1] Y_ref=None,
    const floating[:, ::1] repulsion=None,
    double repulsion_scale=0.0,
):
    """Attractive t-SNE forces of a sparse affinity matrix, without the factor 4.

    Writes ``out[i] = exaggeration * sum_j p_ij (y_i - y_j) / t_ij`` with
    ``t_ij = 1 + |y_i - y_j|^2 / dof``, the sum running over the stored entries
    of row i of the CSR matrix ``(data, indices, indptr)``. With
    ``repulsion``, writes the gradient ``4 out[i] + s repulsion[i]`` instead
    (``s = repulsion_scale`` rounded to Y's dtype), in the same pass and with
    the bits of the NumPy expression ``repulsion * s + 4 * attraction``: each
    product and the sum are rounded as NumPy rounds them (``setup.py``
    forbids FMAs), and the factor 4 is exact.

    Parameters
    ----------
    indptr, indices : ndarray of int32 or int64 (the same for both)
        CSR structure; column indices must be valid rows of ``Y_ref``.
    data : ndarray of shape (nnz,), float32 or float64
        The affinities p_ij, in either dtype whatever Y's.
    Y : ndarray of shape (n_rows, n_components), float32 or float64
        C-contiguous points of the rows, ``n_components`` in 1..3.
    dof : float
        Degrees of freedom of the heavy-tailed kernel.
    exaggeration : float
        Factor on the attraction (early exaggeration); P itself is untouched.
    out : ndarray of shape (n_rows, n_components), same dtype as Y
        Receives the forces.
    n_threads : int
        OpenMP threads; the result does not depend on it.
    Y_ref : ndarray of shape (n_columns, n_components), default=None
        Points of the columns; None means ``Y`` (a square P). Neither ``Y``
        nor ``Y_ref`` may share memory with ``out``.
    repulsion : ndarray of shape (n_rows, n_components), default=None
        The repulsion term to add, scaled by ``repulsion_scale`` (a fit's
        gradient in one pass); None for the attraction alone. Must not
        share memory with ``out`` (``out`` is written before it is read).
    repulsion_scale : float, default=0.0
        Its factor, typically ``-4 / Z``; only allowed with ``repulsion``.
    """
    cdef const floating[:, ::1] ref = Y if Y_ref is None else Y_ref
    cdef intp_t n = Y.shape[0], i, k, block, n_blocks, start, stop
    cdef int d = <int>Y.shape[1]
    cdef bint assemble = repulsion is not None
    cdef floating scale = <floating>repulsion_scale
    cdef floating four = 4.0
    _check_csr(
        indptr, indices, data.shape[0], n, Y.shape[1], ref.shape[1], dof, n_threads
    )
    if out.shape[0] != n or out.shape[1] != d:
        raise ValueError(
            f"out has shape {(out.shape[0], out.shape[1])}, expected {(n, d)}."
        )
    if assemble and (repulsion.shape[0] != n or repulsion.shape[1] != d):
        raise ValueError(
            f"repulsion has shape {(repulsion.shape[0], repulsion.shape[1])}, "
            f"expected {(n, d)}."
        )
    if not assemble and repulsion_scale != 0.0:
        raise ValueError("repulsion_scale is given without repulsion.")
    # out is written row by row while Y, Y_ref and repulsion are still read.
    for name, arr in (("Y", Y), ("Y_ref", Y_ref), ("repulsion", repulsion)):
        if arr is not None and np.may_share_memory(np.asarray(out), np.asarray(arr)):
            raise ValueError(f"out must not share memory with {name}.")
    if n == 0:
        return
    if data.shape[0] == 0 or ref.shape[0] == 0:
        out[:, :] = 0
        if assemble:
            for i in range(n):
                for k in range(d):
                    out[i, k] = repulsion[i, k] * scale + out[i, k] * four
        return
    # Dynamic blocks of rows: rows differ in length, and a thread that the OS
    # delays (shared machines) leaves its blocks to the others instead of
    # stalling all. A row's result never depends on its block or thread.
    n_blocks = (n + _ROW_BLOCK - 1) // _ROW_BLOCK
    for block in prange(
        n_blocks, nogil=True, schedule="dynamic", num_threads=n_threads
    ):
        start = block * _ROW_BLOCK
        stop = min(start + _ROW_BLOCK, n)
        if (
            floating is double and index_t is int32_t and pvalue_t is float32_t
            and d == 2 and FASTTSNE_VECTOR_ATTRACTION
        ):
            fasttsne_attract_rows_2d(
                &indptr[0], &indices[0], &data[0], &Y[0, 0], &ref[0, 0],
                start, stop, 1.0 / dof, exaggeration, &out[0, 0]
            )
        else:
            for i in range(start, stop):
                _attract_row(
                    &indptr[0], &indices[0], &data[0], &Y[0, 0], &ref[0, 0], i,
                    d, 1.0 / dof, exaggeration, &out[0, 0]
                )
        if assemble:
            # The block's rows are still in L1: the gradient costs no pass.
            for i in range(start, stop):
                for k in range(d):
                    out[i, k] = repulsion[i, k] * scale + out[i, k] * four


def kl_attraction_term(
    const index_t[::1] indptr,
    const index_t[::1] indices,
    const pvalue_t[::1] data,
    const floating[:, ::1] Y,
    double dof,
    int n_threads,
    const floating[:, ::1] Y_ref=None,
):
    """``sum_ij p_ij log(p_ij / w_ij)`` over the stored entries of a CSR P.

    With ``w_ij = (1 + |y_i - y_j|^2 / dof)^(-dof)``. The KL divergence of
    t-SNE is this plus ``sum(P) * log(Z)``. Per-row sums are reduced serially,
    so the result does not depend on ``n_threads``.

    Parameters
    ----------
    indptr, indices : ndarray of int32 or int64 (the same for both)
        CSR structure; column indices must be valid rows of ``Y_ref``.
    data : ndarray of shape (nnz,), float32 or float64
        The affinities p_ij, in either dtype whatever Y's (zeros contribute
        nothing).
    Y : ndarray of shape (n_rows, n_components), float32 or float64
        C-contiguous points of the rows, ``n_components`` in 1..3.
    dof : float
        Degrees of freedom of the heavy-tailed kernel.
    n_threads : int
        OpenMP threads.
    Y_ref : ndarray of shape (n_columns, n_components), default=None
        Points of the columns; None means ``Y``.

    Returns
    -------
    term : float
        The attraction part of the KL divergence.
    """
    cdef const floating[:, ::1] ref = Y if Y_ref is None else Y_ref
    cdef intp_t n = Y.shape[0], i
    cdef int d = <int>Y.shape[1]
    cdef double total = 0.0
    cdef float64_t[::1] slots
    _check_csr(
        indptr, indices, data.shape[0], n, Y.shape[1], ref.shape[1], dof, n_threads
    )
    if n == 0 or data.shape[0] == 0 or ref.shape[0] == 0:
        return 0.0
    slots = np.empty(n, dtype=np.float64)
    for i in prange(
        n, nogil=True, schedule="dynamic", chunksize=256, num_threads=n_threads
    ):
        slots[i] = _kl_row(
            &indptr[0], &indices[0], &data[0], &Y[0, 0], &ref[0, 0], i, d, dof
        )
    for i in range(n):
        total += slots[i]
    return total


def descent_step_2d(
    float64_t[:, ::1] Y,
    const float64_t[:, ::1] grad,
    float64_t[:, ::1] update,
    float64_t[:, ::1] gains,
    double momentum,
    double learning_rate,
    double min_gain,
    double max_step_norm,
    bint cap_steps,
    bint center,
):
    """One gains-and-momentum update of a 2-D float64 embedding, in place.

    The arithmetic of ``fasttsne.tsne._optimizer.GradientDescent.step`` in
    one pass over the rows instead of a dozen NumPy passes (most of them
    allocating an array of the embedding's size), which at a million points
    cost more than the attraction: each row's gains, update and point are
    computed with the same operations in the same order as NumPy's, and the
    centring sums the columns in row order, as ``Y.mean(axis=0)`` does for
    two columns, so the result is bitwise the same. Serial: the pass is
    bound by memory traffic, not arithmetic.

    Parameters
    ----------
    Y : ndarray of shape (n_samples, 2), float64
        The embedding, updated in place.
    grad : ndarray of shape (n_samples, 2), float64
        The gradient at ``Y``.
    update, gains : ndarray of shape (n_samples, 2), float64
        The optimiser's state, updated in place.
    momentum, learning_rate, min_gain : float
        As in ``GradientDescent``.
    max_step_norm : float
        Cap on each row's update norm, applied when ``cap_steps``.
    cap_steps : bool
        Whether to cap the update norms.
    center : bool
        Whether to subtract the column means after the step.
    """
    cdef intp_t n = Y.shape[0], i
    cdef int c
    cdef double g, u, gain, norm, sum0 = 0.0, sum1 = 0.0, mean0, mean1
    for name, array in (("grad", grad), ("update", update), ("gains", gains)):
        if array.shape[0] != n or array.shape[1] != 2:
            raise ValueError(
                f"{name} has shape {(array.shape[0], array.shape[1])}, "
                f"expected {(n, 2)}."
            )
    if Y.shape[1] != 2:
        raise ValueError(f"Y must have 2 columns, got {Y.shape[1]}.")
    with nogil:
        for i in range(n):
            for c in range(2):
                g = grad[i, c]
                u = update[i, c]
                gain = gains[i, c]
                # The descent keeps its direction where grad * update < 0.
                if u * g < 0:
                    gain = gain + 0.2
                else:
                    gain = gain * 0.8
                # (NaN passes unchanged, as through np.clip)
                if gain < min_gain:
                    gain = min_gain
                gains[i, c] = gain
                # Rounded after each product as in NumPy: no FMA (setup.py).
                update[i, c] = u * momentum - learning_rate * gain * g
            if cap_steps:
                norm = sqrt(update[i, 0] * update[i, 0] + update[i, 1] * update[i, 1])
                if norm < max_step_norm:
                    norm = max_step_norm
                norm = max_step_norm / norm
                update[i, 0] = update[i, 0] * norm
                update[i, 1] = update[i, 1] * norm
            Y[i, 0] = Y[i, 0] + update[i, 0]
            Y[i, 1] = Y[i, 1] + update[i, 1]
            sum0 = sum0 + Y[i, 0]
            sum1 = sum1 + Y[i, 1]
        if center and n > 0:
            mean0 = sum0 / n
            mean1 = sum1 / n
            for i in range(n):
                Y[i, 0] = Y[i, 0] - mean0
                Y[i, 1] = Y[i, 1] - mean1
