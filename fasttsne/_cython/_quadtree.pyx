"""Barnes-Hut repulsion of t-SNE on a compressed 2^d-ary tree (d = 1, 2, 3).

Implementation notes
--------------------
Tree. Points are quantised onto a 2^B grid per axis over their bounding square
(B = 32 for d <= 2, 21 for d = 3), their bits interleaved into 64-bit Morton
codes and sorted by an LSD radix sort (stable, so ties keep input order). Every
node of the tree then holds a contiguous range ``start:end`` of that order. The
tree is *compressed*: a node splits at the first level where its codes differ,
so it never has a single child and has at most ``2 n - 1`` nodes; a range whose
codes are all equal (duplicates, or points closer than the grid resolution) is a
leaf however many points it holds, which bounds the depth by B and makes
recursion and division by zero impossible. Nodes are stored in depth-first
preorder with a skip index (see ``_quadtree.pxd``), so a walk runs forward
through one array without a stack. Each node summarises its points by their
centre of mass, their count and the longest side of their tight bounding box.

Walk. Points are processed in groups of ``_GROUP_SIZE`` consecutive points of
the Morton order (spatially compact). One walk per group builds an interaction
list of (position, mass) entries: a node is used as a summary when
``width < angle * dist`` for the distance from its centre of mass to the
group's bounding box, hence for every point of the group (the criterion of
Barnes & Hut 1986 applied conservatively; Barnes 1990 for the grouping), and
leaves that fail it contribute their points one by one. The list starts with
the group's own points, whose self-pairs the kernels mask out. It is then
applied to the group's points ``_LANES`` at a time in a loop that GCC
vectorises at the SSE2 baseline, since each lane owns its accumulators and no
reassociation is needed. Zero-width nodes (exact duplicates) are always
summarised, which is exact, so duplicates cost O(1) per group.
``bh_repulsion_reference`` instead walks each query point alone (plain
per-point Barnes-Hut, in double), so a query's result depends on nothing but
itself and the reference.

Precision. With ``angle > 0`` the kernel runs in float, on coordinates
relative to the group's centre, with partial sums over at most ``_BLOCK``
entries added to double accumulators: about 1e-7 relative, far below the
Barnes-Hut error (1e-3 to 1e-2), at twice the throughput of double (``dof != 1``
costs one scalar ``powf`` per pair). ``angle = 0`` runs in double throughout,
summarises nothing but duplicates and gives the exact sums up to rounding.

Complexity: O(n log n) for the tree (radix sort O(n), build O(n B)); the walk
is O(n log n) for fixed angle, with list lengths near ``1 / angle^d`` times the
depth. Memory: about 400 bytes per point (2n nodes of 64 bytes, bounding boxes,
sorted coordinates, codes, results), held by a ``_Workspace`` that a caller may
keep between calls (the gradient backend does, for a whole fit) so that
iterations allocate nothing; each thread mallocs one interaction list of at
most n entries (they cover disjoint sets of points) inside the parallel region,
of which only the pages reached are touched.

Thread safety and determinism: the tree is built serially; the walks only read
it; each point's force and kernel sum go to its own slot, and Z is summed
serially in Morton order. Which thread handles a group never changes what it
computes, so results are bitwise identical for any ``n_threads`` and across
calls.
"""

from cython cimport floating
from cython.parallel cimport parallel, prange
from libc.math cimport pow, powf
from libc.stdlib cimport free, malloc
from libc.string cimport memset

from fasttsne._cython._typedefs cimport float64_t, intp_t, uint64_t

import numpy as np

cdef enum:
    # Points a leaf may hold before it splits (unless they share one code).
    _LEAF_SIZE = 8
    # Consecutive points (Morton order) that share one interaction list.
    _GROUP_SIZE = 32
    # Points processed together against one list by the float kernels: 16
    # floats are four SSE registers per quantity, which GCC vectorises cleanly.
    _LANES = 16
    # The same for the double kernels (angle = 0, the exact sums).
    _DLANES = 4
    # Entries summed in float before the partial sums go into double.
    _BLOCK = 64


ctypedef fused floating_w:
    float
    double


# ---------------------------------------------------------------------------
# Tree construction (serial)
# ---------------------------------------------------------------------------

cdef inline uint64_t _spread2(uint64_t x) noexcept nogil:
    """Insert one zero bit between the low 32 bits of x."""
    x &= <uint64_t>0xFFFFFFFF
    x = (x | (x << 16)) & <uint64_t>0x0000FFFF0000FFFF
    x = (x | (x << 8)) & <uint64_t>0x00FF00FF00FF00FF
    x = (x | (x << 4)) & <uint64_t>0x0F0F0F0F0F0F0F0F
    x = (x | (x << 2)) & <uint64_t>0x3333333333333333
    x = (x | (x << 1)) & <uint64_t>0x5555555555555555
    return x


cdef inline uint64_t _spread3(uint64_t x) noexcept nogil:
    """Insert two zero bits between the low 21 bits of x."""
    x &= <uint64_t>0x1FFFFF
    x = (x | (x << 32)) & <uint64_t>0x001F00000000FFFF
    x = (x | (x << 16)) & <uint64_t>0x001F0000FF0000FF
    x = (x | (x << 8)) & <uint64_t>0x100F00F00F00F00F
    x = (x | (x << 4)) & <uint64_t>0x10C30C30C30C30C3
    x = (x | (x << 2)) & <uint64_t>0x1249249249249249
    return x


cdef inline int _bits_per_axis(int d) noexcept nogil:
    return 21 if d == 3 else 32


cdef void _morton_codes(const floating[:, ::1] Y, uint64_t *codes) noexcept nogil:
    """Morton codes of the points Y (n, d) on their bounding square."""
    cdef double lo[3]
    cdef double hi[3]
    cdef double q[3]
    cdef double span = 0.0, scale = 0.0, top, v
    cdef int d = <int>Y.shape[1], bits = _bits_per_axis(d), k
    cdef intp_t i
    cdef uint64_t code
    for k in range(d):
        lo[k] = Y[0, k]
        hi[k] = Y[0, k]
    for i in range(Y.shape[0]):
        for k in range(d):
            v = Y[i, k]
            if v < lo[k]:
                lo[k] = v
            elif v > hi[k]:
                hi[k] = v
    for k in range(d):
        if hi[k] - lo[k] > span:
            span = hi[k] - lo[k]
    # One scale for every axis keeps the cells square, so a node's cell width
    # bounds its extent in every direction.
    top = <double>((<uint64_t>1) << bits)
    if span > 0.0:
        scale = top / span
    for i in range(Y.shape[0]):
        for k in range(d):
            q[k] = (Y[i, k] - lo[k]) * scale
            if q[k] > top - 1.0:
                q[k] = top - 1.0
            elif not q[k] >= 0.0:  # also maps NaN to a valid cell
                q[k] = 0.0
        if d == 1:
            code = <uint64_t>q[0]
        elif d == 2:
            code = _spread2(<uint64_t>q[0]) | (_spread2(<uint64_t>q[1]) << 1)
        else:
            code = (
                _spread3(<uint64_t>q[0])
                | (_spread3(<uint64_t>q[1]) << 1)
                | (_spread3(<uint64_t>q[2]) << 2)
            )
        codes[i] = code


cdef void _radix_sort(
    uint64_t *keys, intp_t *vals, uint64_t *tmp_keys, intp_t *tmp_vals, intp_t n
) noexcept nogil:
    """Stable LSD radix sort of keys (8-bit digits) carrying vals; in place."""
    cdef intp_t counts[8 * 256]
    cdef intp_t offset, c, i, pos
    cdef int b, digit
    cdef uint64_t *src_k = keys
    cdef uint64_t *dst_k = tmp_keys
    cdef intp_t *src_v = vals
    cdef intp_t *dst_v = tmp_vals
    cdef uint64_t *swap_k
    cdef intp_t *swap_v
    memset(counts, 0, sizeof(counts))
    for i in range(n):
        for b in range(8):
            counts[b * 256 + <int>((keys[i] >> (8 * b)) & 255)] += 1
    for b in range(8):
        # A digit shared by every key leaves the order unchanged: skip the pass.
        if counts[b * 256 + <int>((keys[0] >> (8 * b)) & 255)] == n:
            continue
        offset = 0
        for digit in range(256):
            c = counts[b * 256 + digit]
            counts[b * 256 + digit] = offset
            offset += c
        for i in range(n):
            digit = <int>((src_k[i] >> (8 * b)) & 255)
            pos = counts[b * 256 + digit]
            counts[b * 256 + digit] = pos + 1
            dst_k[pos] = src_k[i]
            dst_v[pos] = src_v[i]
        swap_k = src_k
        src_k = dst_k
        dst_k = swap_k
        swap_v = src_v
        src_v = dst_v
        dst_v = swap_v
    if src_k != keys:
        for i in range(n):
            keys[i] = src_k[i]
            vals[i] = src_v[i]


cdef intp_t _build_node(
    Tree *t, float64_t *sums, intp_t start, intp_t end, int level
) noexcept nogil:
    """Append the subtree of points start:end (codes equal above ``level``)."""
    cdef intp_t idx = t.n_nodes
    cdef Node *node = &t.nodes[idx]
    cdef int d = t.n_dims, k, shift, bits = _bits_per_axis(t.n_dims) * t.n_dims
    cdef uint64_t mask = ((<uint64_t>1) << d) - 1, diff, digit
    cdef float64_t *lo = &t.lo[3 * idx]
    cdef float64_t *hi = &t.hi[3 * idx]
    cdef float64_t *s = &sums[3 * idx]
    cdef float64_t v, side, width = 0.0
    cdef intp_t p, q, child
    cdef bint first = True

    t.n_nodes += 1
    node.start = start
    node.end = end
    node.mass = <float64_t>(end - start)
    for k in range(3):
        lo[k] = 0.0
        hi[k] = 0.0
        s[k] = 0.0
    if end - start <= _LEAF_SIZE or t.codes[start] == t.codes[end - 1]:
        for k in range(d):
            lo[k] = t.ys[start * d + k]
            hi[k] = lo[k]
        for p in range(start, end):
            for k in range(d):
                v = t.ys[p * d + k]
                s[k] += v
                if v < lo[k]:
                    lo[k] = v
                elif v > hi[k]:
                    hi[k] = v
    else:
        # Compressed tree: descend to the first level where the codes differ.
        diff = t.codes[start] ^ t.codes[end - 1]
        while ((diff >> (bits - (level + 1) * d)) & mask) == 0:
            level += 1
        shift = bits - (level + 1) * d
        p = start
        while p < end:
            digit = (t.codes[p] >> shift) & mask
            q = p + 1
            while q < end and ((t.codes[q] >> shift) & mask) == digit:
                q += 1
            child = _build_node(t, sums, p, q, level + 1)
            for k in range(d):
                s[k] += sums[3 * child + k]
                if first or t.lo[3 * child + k] < lo[k]:
                    lo[k] = t.lo[3 * child + k]
                if first or t.hi[3 * child + k] > hi[k]:
                    hi[k] = t.hi[3 * child + k]
            first = False
            p = q
    for k in range(3):
        node.com[k] = 0.0
    for k in range(d):
        side = hi[k] - lo[k]
        if side > width:
            width = side
        node.com[k] = s[k] / node.mass
    node.width2 = width * width
    if width == 0.0:
        # Exact duplicates: the first point itself, so that the summary is exact.
        for k in range(d):
            node.com[k] = t.ys[start * d + k]
    node.skip = t.n_nodes
    return idx


cdef class _Workspace:
    """Buffers of the tree and of the per-point results, kept between calls.

    One instance serves one caller at a time (a gradient backend keeps one for
    a whole fit), so that repeated calls allocate, and fault in, nothing new.
    Every buffer is sized for ``capacity`` points of up to 3 dimensions.
    """

    cdef Tree tree
    cdef uint64_t *tmp_keys    # radix sort scratch, (capacity,)
    cdef intp_t *tmp_vals
    cdef float64_t *sums       # per-node coordinate sums, (2 capacity, 3)
    cdef float64_t *fs         # forces in Morton order, (capacity, 3)
    cdef float64_t *ws         # kernel sums in Morton order, (capacity,)
    cdef intp_t capacity

    def __cinit__(self):
        self.capacity = 0

    def __dealloc__(self):
        self._release()

    cdef void _release(self) noexcept:
        free(self.tree.nodes)
        free(self.tree.lo)
        free(self.tree.hi)
        free(self.tree.ys)
        free(self.tree.perm)
        free(self.tree.codes)
        free(self.tmp_keys)
        free(self.tmp_vals)
        free(self.sums)
        free(self.fs)
        free(self.ws)
        memset(&self.tree, 0, sizeof(Tree))
        self.tmp_keys = NULL
        self.tmp_vals = NULL
        self.sums = NULL
        self.fs = NULL
        self.ws = NULL
        self.capacity = 0

    cdef int reserve(self, intp_t n) except -1:
        """Make room for n points (only grows)."""
        cdef intp_t cap = n if n > 0 else 1
        if cap <= self.capacity:
            return 0
        self._release()
        self.tree.nodes = <Node *>malloc(2 * cap * sizeof(Node))
        self.tree.lo = <float64_t *>malloc(6 * cap * sizeof(float64_t))
        self.tree.hi = <float64_t *>malloc(6 * cap * sizeof(float64_t))
        self.tree.ys = <float64_t *>malloc(3 * cap * sizeof(float64_t))
        self.tree.perm = <intp_t *>malloc(cap * sizeof(intp_t))
        self.tree.codes = <uint64_t *>malloc(cap * sizeof(uint64_t))
        self.tmp_keys = <uint64_t *>malloc(cap * sizeof(uint64_t))
        self.tmp_vals = <intp_t *>malloc(cap * sizeof(intp_t))
        self.sums = <float64_t *>malloc(6 * cap * sizeof(float64_t))
        self.fs = <float64_t *>malloc(3 * cap * sizeof(float64_t))
        self.ws = <float64_t *>malloc(cap * sizeof(float64_t))
        if (
            self.tree.nodes == NULL or self.tree.lo == NULL or self.tree.hi == NULL
            or self.tree.ys == NULL or self.tree.perm == NULL
            or self.tree.codes == NULL or self.tmp_keys == NULL
            or self.tmp_vals == NULL or self.sums == NULL or self.fs == NULL
            or self.ws == NULL
        ):
            self._release()
            raise MemoryError()
        self.capacity = cap
        return 0


cdef int _build_tree(_Workspace w, const floating[:, ::1] Y) except -1:
    """Build the tree of Y into ``w.tree`` (sorted, float64 coordinates)."""
    cdef Tree *t = &w.tree
    cdef intp_t n = Y.shape[0], i, p
    cdef int d = <int>Y.shape[1], k
    w.reserve(n)
    t.n_points = n
    t.n_dims = d
    t.n_nodes = 0
    if n == 0:
        return 0
    with nogil:
        _morton_codes(Y, t.codes)
        for i in range(n):
            t.perm[i] = i
        _radix_sort(t.codes, t.perm, w.tmp_keys, w.tmp_vals, n)
        for p in range(n):
            for k in range(d):
                t.ys[p * d + k] = Y[t.perm[p], k]
        _build_node(t, w.sums, 0, n, 0)
    return 0


# ---------------------------------------------------------------------------
# Walks (parallel, read-only on the tree)
# ---------------------------------------------------------------------------

cdef inline intp_t _push(
    float64_t *ent, float *entf, const float64_t *ctr, intp_t n_e,
    float64_t x, float64_t y, float64_t z, float64_t mass
) noexcept nogil:
    """Append the entry (x, y, z, mass) to a list; return the new length.

    The list is ``entf`` (float, relative to ``ctr``) unless that is NULL,
    then ``ent`` (double, absolute).
    """
    if entf != NULL:
        entf[4 * n_e] = <float>(x - ctr[0])
        entf[4 * n_e + 1] = <float>(y - ctr[1])
        entf[4 * n_e + 2] = <float>(z - ctr[2])
        entf[4 * n_e + 3] = <float>mass
    else:
        ent[4 * n_e] = x
        ent[4 * n_e + 1] = y
        ent[4 * n_e + 2] = z
        ent[4 * n_e + 3] = mass
    return n_e + 1


cdef inline intp_t _push_points(
    const Tree *t, intp_t start, intp_t end, float64_t *ent, float *entf,
    const float64_t *ctr, intp_t n_e
) noexcept nogil:
    """Append the points start:end of the Morton order with mass 1."""
    cdef int d = t.n_dims
    cdef const float64_t *y
    cdef intp_t p
    for p in range(start, end):
        y = &t.ys[p * d]
        n_e = _push(
            ent, entf, ctr, n_e, y[0], y[1] if d > 1 else 0.0,
            y[2] if d > 2 else 0.0, 1.0
        )
    return n_e


cdef inline float64_t _gap(float64_t c, float64_t lo, float64_t hi) noexcept nogil:
    """Distance from c to the interval [lo, hi] (written to compile to maxsd)."""
    cdef float64_t a = lo - c, b = c - hi
    a = a if a > b else b
    return a if a > 0.0 else 0.0


cdef intp_t _collect(
    const Tree *t, intp_t gs, intp_t ge, const float64_t *glo,
    const float64_t *ghi, float64_t theta2, float64_t *ent, float *entf,
    const float64_t *ctr, intp_t *n_own
) noexcept nogil:
    """Interaction list (x, y, z, mass) of the points gs:ge; returns its length.

    ``glo``/``ghi`` bound the group's points (0 beyond d). The list starts with
    the group's own points (``n_own`` of them, entry e being point ``gs + e``),
    whose self-terms the kernels leave out; identical points are one entry of
    their count instead (exact), so duplicates cost O(1). See ``_push`` for
    where the entries go.
    """
    cdef const Node *nodes = t.nodes
    cdef const Node *nd
    cdef intp_t node = 0, n_e = 0, n_out
    cdef float64_t d2, gx, gy, gz
    if glo[0] != ghi[0] or glo[1] != ghi[1] or glo[2] != ghi[2]:
        n_e = _push_points(t, gs, ge, ent, entf, ctr, 0)
        n_own[0] = n_e
    else:
        n_own[0] = 0
        if ge - gs > 1:
            n_e = _push(
                ent, entf, ctr, 0, glo[0], glo[1], glo[2], <float64_t>(ge - gs - 1)
            )
    while node < t.n_nodes:
        nd = &nodes[node]
        if nd.end <= gs or nd.start >= ge:
            # Disjoint from the group: squared distance from the centre of mass
            # to the group's bounding box, a lower bound over its points.
            gx = _gap(nd.com[0], glo[0], ghi[0])
            gy = _gap(nd.com[1], glo[1], ghi[1])
            gz = _gap(nd.com[2], glo[2], ghi[2])
            d2 = gx * gx + gy * gy + gz * gz
            if nd.width2 < theta2 * d2 or nd.width2 == 0.0:
                n_e = _push(
                    ent, entf, ctr, n_e, nd.com[0], nd.com[1], nd.com[2], nd.mass
                )
                node = nd.skip
            elif nd.skip == node + 1:
                n_e = _push_points(t, nd.start, nd.end, ent, entf, ctr, n_e)
                node = nd.skip
            else:
                node += 1
        elif nd.start >= gs and nd.end <= ge:
            node = nd.skip  # inside the group: already in the list
        elif nd.skip == node + 1:
            # A leaf that straddles the group's ends: its points outside it.
            if nd.width2 == 0.0:
                n_out = (nd.end - nd.start) - (
                    (ge if ge < nd.end else nd.end)
                    - (gs if gs > nd.start else nd.start)
                )
                n_e = _push(
                    ent, entf, ctr, n_e, nd.com[0], nd.com[1], nd.com[2],
                    <float64_t>n_out
                )
            else:
                if nd.start < gs:
                    n_e = _push_points(t, nd.start, gs, ent, entf, ctr, n_e)
                if nd.end > ge:
                    n_e = _push_points(t, ge, nd.end, ent, entf, ctr, n_e)
            node = nd.skip
        else:
            node += 1  # overlaps the group: always opened
    return n_e


cdef void _apply_f2(
    const float *ent, intp_t n_own, intp_t n_e, const float64_t *ys,
    const float64_t *ctr, intp_t gs, intp_t c0, intp_t c1, float64_t *fs,
    float64_t *ws
) noexcept nogil:
    """Cauchy sums, in float, of the 2-D points c0:c1 (<= _LANES) against a list.

    ``ent`` holds (x, y, z, mass) relative to ``ctr``; its first ``n_own``
    entries are the group's points ``gs + e``. The chunk's own points meet each
    other in a rotation (lane ``ln`` against point ``ln + o`` for ``o`` in
    ``1.._LANES - 1``), so self-pairs are never formed and the loop needs no
    mask; every other entry goes through the plain loop. Partial sums over at
    most _BLOCK entries are kept in float, then added to double accumulators.
    """
    cdef float px[_LANES]
    cdef float py[_LANES]
    cdef float aw[_LANES]
    cdef float ax[_LANES]
    cdef float ay[_LANES]
    cdef float x2[2 * _LANES]
    cdef float y2[2 * _LANES]
    cdef float m2[2 * _LANES]
    cdef float64_t sw[_LANES]
    cdef float64_t sx[_LANES]
    cdef float64_t sy[_LANES]
    cdef float ex, ey, m, dx, dy, w, mw, one = 1.0, zero = 0.0
    cdef intp_t e, src, e0, e1, end, skip0 = n_e, skip1 = n_e
    cdef int ln, o, part, nv = <int>(c1 - c0)
    for ln in range(_LANES):
        src = c0 + ln if ln < nv else c0
        px[ln] = <float>(ys[2 * src] - ctr[0])
        py[ln] = <float>(ys[2 * src + 1] - ctr[1])
        sw[ln] = 0.0
        sx[ln] = 0.0
        sy[ln] = 0.0
        aw[ln] = 0.0
        ax[ln] = 0.0
        ay[ln] = 0.0
    if n_own > 0:
        for ln in range(_LANES):
            x2[ln] = px[ln]
            x2[ln + _LANES] = px[ln]
            y2[ln] = py[ln]
            y2[ln + _LANES] = py[ln]
            m2[ln] = one if ln < nv else zero  # padding lanes weigh nothing
            m2[ln + _LANES] = m2[ln]
        for o in range(1, _LANES):
            for ln in range(_LANES):
                dx = px[ln] - x2[ln + o]
                dy = py[ln] - y2[ln + o]
                w = one / (one + dx * dx + dy * dy)
                mw = m2[ln + o] * w
                aw[ln] += mw
                mw = mw * w
                ax[ln] += mw * dx
                ay[ln] += mw * dy
        skip0 = c0 - gs
        skip1 = skip0 + nv
    for part in range(2):
        e0 = 0 if part == 0 else skip1
        end = skip0 if part == 0 else n_e
        while True:
            # Flush the float partial sums of the previous block into double.
            for ln in range(_LANES):
                sw[ln] += aw[ln]
                sx[ln] += ax[ln]
                sy[ln] += ay[ln]
                aw[ln] = 0.0
                ax[ln] = 0.0
                ay[ln] = 0.0
            if e0 >= end:
                break
            e1 = e0 + _BLOCK if e0 + _BLOCK < end else end
            for e in range(e0, e1):
                ex = ent[4 * e]
                ey = ent[4 * e + 1]
                m = ent[4 * e + 3]
                for ln in range(_LANES):
                    dx = px[ln] - ex
                    dy = py[ln] - ey
                    w = one / (one + dx * dx + dy * dy)
                    mw = m * w
                    aw[ln] += mw
                    mw = mw * w
                    ax[ln] += mw * dx
                    ay[ln] += mw * dy
            e0 = e1
    for ln in range(nv):
        ws[c0 + ln] = sw[ln]
        fs[2 * (c0 + ln)] = sx[ln]
        fs[2 * (c0 + ln) + 1] = sy[ln]


cdef void _apply_f3(
    const float *ent, intp_t n_own, intp_t n_e, const float64_t *ys, int d,
    const float64_t *ctr, intp_t gs, intp_t c0, intp_t c1, float64_t dof,
    float64_t *fs, float64_t *ws
) noexcept nogil:
    """As _apply_f2 for any d and dof (unused coordinates are 0 on both sides).

    With ``dof != 1`` the kernel ``t^(-dof)`` is one ``powf`` per pair, the
    only part of the loop that stays scalar.
    """
    cdef float px[_LANES]
    cdef float py[_LANES]
    cdef float pz[_LANES]
    cdef float aw[_LANES]
    cdef float ax[_LANES]
    cdef float ay[_LANES]
    cdef float az[_LANES]
    cdef float x2[2 * _LANES]
    cdef float y2[2 * _LANES]
    cdef float z2[2 * _LANES]
    cdef float m2[2 * _LANES]
    cdef float64_t sw[_LANES]
    cdef float64_t sx[_LANES]
    cdef float64_t sy[_LANES]
    cdef float64_t sz[_LANES]
    cdef float ex, ey, ez, m, dx, dy, dz, t, w, mw, one = 1.0, zero = 0.0
    cdef float fdof = <float>dof, inv_dof = <float>(1.0 / dof)
    cdef bint cauchy = dof == 1.0
    cdef intp_t e, src, e0, e1, end, skip0 = n_e, skip1 = n_e
    cdef int ln, o, part, nv = <int>(c1 - c0)
    for ln in range(_LANES):
        src = c0 + ln if ln < nv else c0
        px[ln] = <float>(ys[d * src] - ctr[0])
        py[ln] = <float>(ys[d * src + 1] - ctr[1]) if d > 1 else zero
        pz[ln] = <float>(ys[d * src + 2] - ctr[2]) if d > 2 else zero
        sw[ln] = 0.0
        sx[ln] = 0.0
        sy[ln] = 0.0
        sz[ln] = 0.0
        aw[ln] = 0.0
        ax[ln] = 0.0
        ay[ln] = 0.0
        az[ln] = 0.0
    if n_own > 0:
        for ln in range(_LANES):
            x2[ln] = px[ln]
            x2[ln + _LANES] = px[ln]
            y2[ln] = py[ln]
            y2[ln + _LANES] = py[ln]
            z2[ln] = pz[ln]
            z2[ln + _LANES] = pz[ln]
            m2[ln] = one if ln < nv else zero
            m2[ln + _LANES] = m2[ln]
        for o in range(1, _LANES):
            for ln in range(_LANES):
                dx = px[ln] - x2[ln + o]
                dy = py[ln] - y2[ln + o]
                dz = pz[ln] - z2[ln + o]
                if cauchy:
                    t = one + dx * dx + dy * dy + dz * dz
                    w = one / t
                else:
                    t = one + (dx * dx + dy * dy + dz * dz) * inv_dof
                    w = powf(t, -fdof)
                mw = m2[ln + o] * w
                aw[ln] += mw
                mw = mw / t
                ax[ln] += mw * dx
                ay[ln] += mw * dy
                az[ln] += mw * dz
        skip0 = c0 - gs
        skip1 = skip0 + nv
    for part in range(2):
        e0 = 0 if part == 0 else skip1
        end = skip0 if part == 0 else n_e
        while True:
            for ln in range(_LANES):
                sw[ln] += aw[ln]
                sx[ln] += ax[ln]
                sy[ln] += ay[ln]
                sz[ln] += az[ln]
                aw[ln] = 0.0
                ax[ln] = 0.0
                ay[ln] = 0.0
                az[ln] = 0.0
            if e0 >= end:
                break
            e1 = e0 + _BLOCK if e0 + _BLOCK < end else end
            if cauchy:
                for e in range(e0, e1):
                    ex = ent[4 * e]
                    ey = ent[4 * e + 1]
                    ez = ent[4 * e + 2]
                    m = ent[4 * e + 3]
                    for ln in range(_LANES):
                        dx = px[ln] - ex
                        dy = py[ln] - ey
                        dz = pz[ln] - ez
                        w = one / (one + dx * dx + dy * dy + dz * dz)
                        mw = m * w
                        aw[ln] += mw
                        mw = mw * w
                        ax[ln] += mw * dx
                        ay[ln] += mw * dy
                        az[ln] += mw * dz
            else:
                for e in range(e0, e1):
                    ex = ent[4 * e]
                    ey = ent[4 * e + 1]
                    ez = ent[4 * e + 2]
                    m = ent[4 * e + 3]
                    for ln in range(_LANES):
                        dx = px[ln] - ex
                        dy = py[ln] - ey
                        dz = pz[ln] - ez
                        t = one + (dx * dx + dy * dy + dz * dz) * inv_dof
                        w = powf(t, -fdof)
                        mw = m * w
                        aw[ln] += mw
                        mw = mw / t
                        ax[ln] += mw * dx
                        ay[ln] += mw * dy
                        az[ln] += mw * dz
            e0 = e1
    for ln in range(nv):
        ws[c0 + ln] = sw[ln]
        fs[d * (c0 + ln)] = sx[ln]
        if d > 1:
            fs[d * (c0 + ln) + 1] = sy[ln]
        if d > 2:
            fs[d * (c0 + ln) + 2] = sz[ln]


cdef void _apply_d(
    const float64_t *ent, intp_t n_own, intp_t n_e, const float64_t *ys, int d,
    intp_t gs, intp_t c0, intp_t c1, float64_t dof, float64_t *fs, float64_t *ws
) noexcept nogil:
    """Kernel sums, in double, of the points c0:c1 (<= _DLANES) against a list.

    Any dof; ``ent`` holds absolute (x, y, z, mass), unused coordinates 0, its
    first ``n_own`` entries being the points ``gs + e`` (self-pairs skipped).
    """
    cdef float64_t px[_DLANES]
    cdef float64_t py[_DLANES]
    cdef float64_t pz[_DLANES]
    cdef float64_t aw[_DLANES]
    cdef float64_t ax[_DLANES]
    cdef float64_t ay[_DLANES]
    cdef float64_t az[_DLANES]
    cdef float64_t ex, ey, ez, m, dx, dy, dz, t, w, mw, inv_dof = 1.0 / dof
    cdef bint cauchy = dof == 1.0
    cdef intp_t e, src
    cdef int ln, nv = <int>(c1 - c0)
    for ln in range(_DLANES):
        src = c0 + ln if ln < nv else c0
        px[ln] = ys[d * src]
        py[ln] = ys[d * src + 1] if d > 1 else 0.0
        pz[ln] = ys[d * src + 2] if d > 2 else 0.0
        aw[ln] = 0.0
        ax[ln] = 0.0
        ay[ln] = 0.0
        az[ln] = 0.0
    for e in range(n_e):
        ex = ent[4 * e]
        ey = ent[4 * e + 1]
        ez = ent[4 * e + 2]
        m = ent[4 * e + 3]
        for ln in range(_DLANES):
            if e < n_own and gs + e == c0 + ln:
                continue
            dx = px[ln] - ex
            dy = py[ln] - ey
            dz = pz[ln] - ez
            if cauchy:
                t = 1.0 + dx * dx + dy * dy + dz * dz
                w = 1.0 / t
            else:
                t = 1.0 + (dx * dx + dy * dy + dz * dz) * inv_dof
                w = pow(t, -dof)
            mw = m * w
            aw[ln] += mw
            mw = mw / t
            ax[ln] += mw * dx
            ay[ln] += mw * dy
            az[ln] += mw * dz
    for ln in range(nv):
        ws[c0 + ln] = aw[ln]
        fs[d * (c0 + ln)] = ax[ln]
        if d > 1:
            fs[d * (c0 + ln) + 1] = ay[ln]
        if d > 2:
            fs[d * (c0 + ln) + 2] = az[ln]


cdef void _group_repulsion(
    const Tree *t, intp_t gs, intp_t ge, float64_t theta2, float64_t dof,
    float64_t *ent, float *entf, float64_t *fs, float64_t *ws
) noexcept nogil:
    """Forces and kernel sums of the points gs:ge of the Morton order.

    ``entf`` not NULL selects the float kernels.
    """
    cdef intp_t n_own, n_e, c0 = gs, c1, p
    cdef float64_t lo[3]
    cdef float64_t hi[3]
    cdef float64_t ctr[3]
    cdef int k, d = t.n_dims
    for k in range(3):
        lo[k] = 0.0
        hi[k] = 0.0
    for k in range(d):
        lo[k] = t.ys[gs * d + k]
        hi[k] = lo[k]
    for p in range(gs + 1, ge):
        for k in range(d):
            if t.ys[p * d + k] < lo[k]:
                lo[k] = t.ys[p * d + k]
            elif t.ys[p * d + k] > hi[k]:
                hi[k] = t.ys[p * d + k]
    # Coordinates relative to the group's centre keep the float differences
    # of nearby points accurate.
    for k in range(3):
        ctr[k] = 0.5 * (lo[k] + hi[k])
    n_e = _collect(t, gs, ge, lo, hi, theta2, ent, entf, ctr, &n_own)
    if entf == NULL:
        while c0 < ge:
            c1 = c0 + _DLANES if c0 + _DLANES < ge else ge
            _apply_d(ent, n_own, n_e, t.ys, d, gs, c0, c1, dof, fs, ws)
            c0 = c1
        return
    while c0 < ge:
        c1 = c0 + _LANES if c0 + _LANES < ge else ge
        if d == 2 and dof == 1.0:
            _apply_f2(entf, n_own, n_e, t.ys, ctr, gs, c0, c1, fs, ws)
        else:
            _apply_f3(entf, n_own, n_e, t.ys, d, ctr, gs, c0, c1, dof, fs, ws)
        c0 = c1


cdef void _point_reference(
    const Tree *t, const float64_t *q, float64_t theta2, float64_t dof,
    float64_t *res
) noexcept nogil:
    """res = (force[0:3], sum w) in double of a point q outside the tree."""
    cdef const Node *nd
    cdef intp_t node = 0, p
    cdef int d = t.n_dims, k
    cdef bint cauchy = dof == 1.0
    cdef float64_t diff[3]
    cdef float64_t acc[4]
    cdef float64_t d2, w, tt
    for k in range(4):
        acc[k] = 0.0
    while node < t.n_nodes:
        nd = &t.nodes[node]
        d2 = 0.0
        for k in range(d):
            diff[k] = q[k] - nd.com[k]
            d2 += diff[k] * diff[k]
        if nd.width2 < theta2 * d2 or nd.width2 == 0.0:
            tt = 1.0 + d2 / dof
            w = 1.0 / tt if cauchy else pow(tt, -dof)
            acc[3] += nd.mass * w
            w = nd.mass * w / tt
            for k in range(d):
                acc[k] += w * diff[k]
            node = nd.skip
        elif nd.skip == node + 1:
            for p in range(nd.start, nd.end):
                d2 = 0.0
                for k in range(d):
                    diff[k] = q[k] - t.ys[p * d + k]
                    d2 += diff[k] * diff[k]
                tt = 1.0 + d2 / dof
                w = 1.0 / tt if cauchy else pow(tt, -dof)
                acc[3] += w
                w = w / tt
                for k in range(d):
                    acc[k] += w * diff[k]
            node = nd.skip
        else:
            node += 1
    for k in range(4):
        res[k] = acc[k]


# ---------------------------------------------------------------------------
# Entry points
# ---------------------------------------------------------------------------

cdef void _check_common(intp_t d, double angle, double dof, int n_threads) except *:
    if d < 1 or d > 3:
        raise ValueError(f"The embedding must have 1 to 3 columns, got {d}.")
    if not angle >= 0.0:
        raise ValueError(f"angle must be non-negative, got {angle}.")
    if not dof > 0.0:
        raise ValueError(f"dof must be positive, got {dof}.")
    if n_threads < 1:
        raise ValueError(f"n_threads must be at least 1, got {n_threads}.")


def bh_repulsion(
    const floating[:, ::1] Y,
    double angle,
    double dof,
    floating[:, ::1] out,
    int n_threads,
    _Workspace workspace=None,
):
    """Barnes-Hut estimate of the unnormalised t-SNE repulsion.

    With ``t_ij = 1 + |y_i - y_j|^2 / dof`` and ``w_ij = t_ij^(-dof)``, writes
    ``out[i] = sum_{j != i} (w_ij / t_ij) (y_i - y_j)`` and returns
    ``Z = sum_{i != j} w_ij``, both approximated by Barnes-Hut.

    Parameters
    ----------
    Y : ndarray of shape (n_samples, n_components), float32 or float64
        C-contiguous embedding, ``n_components`` in 1..3.
    angle : float
        Opening angle: a tree node stands for its points when the longest side
        of their bounding box is below ``angle`` times its distance to the
        points. ``angle = 0`` computes the exact sums in double precision; for
        ``angle > 0`` the kernel is evaluated in float (partial sums of at most
        64 terms, then double), far below the Barnes-Hut error.
    dof : float
        Degrees of freedom of the heavy-tailed kernel (1 is Cauchy).
    out : ndarray of shape (n_samples, n_components), same dtype as Y
        Receives the repulsive sums.
    n_threads : int
        OpenMP threads; the result does not depend on it.
    workspace : _Workspace, default=None
        Buffers to reuse between calls (one caller at a time); None allocates
        temporary ones.

    Returns
    -------
    Z : float
        The kernel sum over all ordered pairs ``i != j``.
    """
    cdef intp_t n = Y.shape[0], d = Y.shape[1], n_groups, gi, p
    cdef int k
    cdef double theta2 = angle * angle, Z = 0.0
    cdef bint use_float = angle > 0.0
    cdef Tree *tree
    cdef float64_t *fs
    cdef float64_t *ws
    cdef float64_t *ent = NULL
    cdef float *entf = NULL
    _check_common(d, angle, dof, n_threads)
    if out.shape[0] != n or out.shape[1] != d:
        raise ValueError(
            f"out has shape {(out.shape[0], out.shape[1])}, expected {(n, d)}."
        )
    if n == 0:
        return 0.0
    if workspace is None:
        workspace = _Workspace()
    _build_tree(workspace, Y)
    tree = &workspace.tree
    fs = workspace.fs
    ws = workspace.ws
    n_groups = (n + _GROUP_SIZE - 1) // _GROUP_SIZE
    with nogil, parallel(num_threads=n_threads):
        # At most n entries: they stand for disjoint sets of points. Only the
        # pages a list reaches are touched.
        ent = NULL
        entf = NULL
        if use_float:
            entf = <float *>malloc(4 * n * sizeof(float))
        else:
            ent = <float64_t *>malloc(4 * n * sizeof(float64_t))
        if ent == NULL and entf == NULL:
            with gil:
                raise MemoryError()
        # Groups cost ~10 us each and unevenly: one at a time keeps every
        # thread busy, also when the OS delays one of them.
        for gi in prange(n_groups, schedule="dynamic"):
            _group_repulsion(
                tree, gi * _GROUP_SIZE, min(gi * _GROUP_SIZE + _GROUP_SIZE, n),
                theta2, dof, ent, entf, fs, ws
            )
        free(ent)
        free(entf)
    with nogil:
        for p in range(n):
            Z += ws[p]
            for k in range(d):
                out[tree.perm[p], k] = <floating>fs[p * d + k]
    return Z


def bh_repulsion_reference(
    const floating[:, ::1] Y_ref,
    const floating[:, ::1] Y_query,
    double angle,
    double dof,
    floating[:, ::1] out,
    floating_w[::1] sum_w,
    int n_threads,
):
    """Barnes-Hut repulsion of query points from a fixed reference embedding.

    The query points are not part of the reference. For each query point
    ``q_i``, writes ``out[i] = sum_j (w_ij / t_ij) (q_i - y_j)`` and
    ``sum_w[i] = sum_j w_ij`` over the reference points ``y_j``. Each query
    point is walked on its own, in double precision, so its result depends only
    on it and on ``Y_ref``.

    Parameters
    ----------
    Y_ref : ndarray of shape (n_reference, n_components), float32 or float64
        C-contiguous reference embedding, ``n_components`` in 1..3.
    Y_query : ndarray of shape (n_queries, n_components), same dtype
        C-contiguous query points.
    angle : float
        Opening angle (0 is exact).
    dof : float
        Degrees of freedom of the heavy-tailed kernel.
    out : ndarray of shape (n_queries, n_components), same dtype as Y_ref
        Receives the unnormalised repulsive sums.
    sum_w : ndarray of shape (n_queries,), float32 or float64
        Receives the per-point kernel sums.
    n_threads : int
        OpenMP threads; the result does not depend on it.
    """
    cdef intp_t d = Y_ref.shape[1], m = Y_query.shape[0], i
    cdef int k
    cdef double theta2 = angle * angle
    cdef _Workspace workspace = _Workspace()
    cdef float64_t[:, ::1] res
    cdef float64_t *q
    _check_common(d, angle, dof, n_threads)
    if Y_query.shape[1] != d:
        raise ValueError(
            f"Y_query has {Y_query.shape[1]} columns, Y_ref has {d}."
        )
    if out.shape[0] != m or out.shape[1] != d:
        raise ValueError(
            f"out has shape {(out.shape[0], out.shape[1])}, expected {(m, d)}."
        )
    if sum_w.shape[0] != m:
        raise ValueError(f"sum_w has length {sum_w.shape[0]}, expected {m}.")
    if m == 0:
        return
    # Row i: force (0:3), kernel sum (3), the query point padded with 0 (4:7).
    res = np.zeros((m, 8), dtype=np.float64)
    _build_tree(workspace, Y_ref)
    with nogil:
        for i in prange(m, schedule="dynamic", chunksize=16, num_threads=n_threads):
            q = &res[i, 4]
            for k in range(d):
                q[k] = Y_query[i, k]
            _point_reference(&workspace.tree, q, theta2, dof, &res[i, 0])
        for i in range(m):
            sum_w[i] = <floating_w>res[i, 3]
            for k in range(d):
                out[i, k] = <floating>res[i, k]
