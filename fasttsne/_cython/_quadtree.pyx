"""Barnes-Hut repulsion of t-SNE on a compressed 2^d-ary tree (d = 1, 2, 3).

One module past 700 lines on purpose: the tree build, the grouped walk, the
frozen-tree walk and their vectorised kernels share the node layout, the
workspace and ``cdef inline`` helpers that must inline into the hot loops.

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

Walk. Points are processed in groups of at most ``_GROUP_SIZE`` consecutive
points of the Morton order made of whole sibling cells (``_make_groups``), so
spatially compact. One walk per group builds an interaction list of
(position, mass) entries: a node is used as a summary when
``width < angle * dist`` for the distance from its centre of mass to the
group's bounding box, hence for every point of the group (the criterion of
Barnes & Hut 1986 applied conservatively; Barnes 1990 for the grouping), and
leaves that fail it contribute their points one by one. The list starts with
the group's own points, whose self-pairs the kernels never form. It is then
applied to the group's points ``_LANES`` at a time in a loop that GCC
vectorises at the SSE2 baseline, since each lane owns its accumulators and no
reassociation is needed. Zero-width nodes (exact duplicates) are always
summarised, which is exact, so duplicates cost O(1) per group.
``bh_repulsion_from_frozen`` (``transform``: new points against the frozen
``embedding_``) instead walks each query point alone on the frozen tree (plain
per-point Barnes-Hut, in double), so a query's result depends on nothing but
itself and the frozen points.

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
keep between calls (a gradient backend does, from ``prepare`` on) so that
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
    # Most points (consecutive in Morton order) sharing one interaction list.
    _GROUP_SIZE = 64
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
    Tree *tree, float64_t *sums, intp_t start, intp_t end, int level
) noexcept nogil:
    """Append the subtree of points start:end (codes equal above ``level``)."""
    cdef intp_t idx = tree.n_nodes
    cdef Node *node = &tree.nodes[idx]
    cdef int d = tree.n_dims, k, shift, bits = _bits_per_axis(tree.n_dims) * tree.n_dims
    cdef uint64_t mask = ((<uint64_t>1) << d) - 1, diff, digit
    cdef float64_t *lo = &tree.lo[3 * idx]
    cdef float64_t *hi = &tree.hi[3 * idx]
    cdef float64_t *s = &sums[3 * idx]
    cdef float64_t v, side, width = 0.0
    cdef intp_t p, q, child
    cdef bint first = True

    tree.n_nodes += 1
    node.start = start
    node.end = end
    node.mass = <float64_t>(end - start)
    for k in range(3):
        lo[k] = 0.0
        hi[k] = 0.0
        s[k] = 0.0
    if end - start <= _LEAF_SIZE or tree.codes[start] == tree.codes[end - 1]:
        for k in range(d):
            lo[k] = tree.ys[start * d + k]
            hi[k] = lo[k]
        for p in range(start, end):
            for k in range(d):
                v = tree.ys[p * d + k]
                s[k] += v
                if v < lo[k]:
                    lo[k] = v
                elif v > hi[k]:
                    hi[k] = v
    else:
        # Compressed tree: descend to the first level where the codes differ.
        diff = tree.codes[start] ^ tree.codes[end - 1]
        while ((diff >> (bits - (level + 1) * d)) & mask) == 0:
            level += 1
        shift = bits - (level + 1) * d
        p = start
        while p < end:
            digit = (tree.codes[p] >> shift) & mask
            q = p + 1
            while q < end and ((tree.codes[q] >> shift) & mask) == digit:
                q += 1
            child = _build_node(tree, sums, p, q, level + 1)
            for k in range(d):
                s[k] += sums[3 * child + k]
                if first or tree.lo[3 * child + k] < lo[k]:
                    lo[k] = tree.lo[3 * child + k]
                if first or tree.hi[3 * child + k] > hi[k]:
                    hi[k] = tree.hi[3 * child + k]
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
            node.com[k] = tree.ys[start * d + k]
    node.skip = tree.n_nodes
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
    cdef float64_t *forces     # forces in Morton order, (capacity, 3)
    cdef float64_t *kernel_sums  # kernel sums in Morton order, (capacity,)
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
        free(self.forces)
        free(self.kernel_sums)
        memset(&self.tree, 0, sizeof(Tree))
        self.tmp_keys = NULL
        self.tmp_vals = NULL
        self.sums = NULL
        self.forces = NULL
        self.kernel_sums = NULL
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
        self.forces = <float64_t *>malloc(3 * cap * sizeof(float64_t))
        self.kernel_sums = <float64_t *>malloc(cap * sizeof(float64_t))
        if (
            self.tree.nodes == NULL or self.tree.lo == NULL or self.tree.hi == NULL
            or self.tree.ys == NULL or self.tree.perm == NULL
            or self.tree.codes == NULL or self.tmp_keys == NULL
            or self.tmp_vals == NULL or self.sums == NULL or self.forces == NULL
            or self.kernel_sums == NULL
        ):
            self._release()
            raise MemoryError()
        self.capacity = cap
        return 0


cdef bint _holds_points(const Tree *tree, const floating[:, ::1] Y) noexcept nogil:
    """Whether tree is the tree of exactly the points Y (same values, same rows).

    The build is deterministic, so such a tree can be reused as it is.
    """
    cdef intp_t n = Y.shape[0], p
    cdef int d = <int>Y.shape[1], k
    if tree.nodes == NULL or tree.n_points != n or tree.n_dims != d:
        return False
    for p in range(n):
        for k in range(d):
            if tree.ys[p * d + k] != Y[tree.perm[p], k]:
                return False
    return True


cdef int _build_tree(_Workspace workspace, const floating[:, ::1] Y) except -1:
    """Build the tree of Y into ``workspace.tree`` (sorted, float64 coordinates)."""
    cdef Tree *tree = &workspace.tree
    cdef intp_t n = Y.shape[0], i, p
    cdef int d = <int>Y.shape[1], k
    workspace.reserve(n)
    tree.n_points = n
    tree.n_dims = d
    tree.n_nodes = 0
    if n == 0:
        return 0
    with nogil:
        _morton_codes(Y, tree.codes)
        for i in range(n):
            tree.perm[i] = i
        _radix_sort(tree.codes, tree.perm, workspace.tmp_keys, workspace.tmp_vals, n)
        for p in range(n):
            for k in range(d):
                tree.ys[p * d + k] = Y[tree.perm[p], k]
        _build_node(tree, workspace.sums, 0, n, 0)
    return 0


# ---------------------------------------------------------------------------
# Walks (parallel, read-only on the tree)
# ---------------------------------------------------------------------------

cdef inline intp_t _push(
    float64_t *entries, float *entries32, const float64_t *centre,
    intp_t n_entries, float64_t x, float64_t y, float64_t z, float64_t mass
) noexcept nogil:
    """Append the entry (x, y, z, mass) to a list; return the new length.

    The list is ``entries32`` (float, relative to ``centre``) unless that is
    NULL, then ``entries`` (double, absolute).
    """
    if entries32 != NULL:
        entries32[4 * n_entries] = <float>(x - centre[0])
        entries32[4 * n_entries + 1] = <float>(y - centre[1])
        entries32[4 * n_entries + 2] = <float>(z - centre[2])
        entries32[4 * n_entries + 3] = <float>mass
    else:
        entries[4 * n_entries] = x
        entries[4 * n_entries + 1] = y
        entries[4 * n_entries + 2] = z
        entries[4 * n_entries + 3] = mass
    return n_entries + 1


cdef inline intp_t _push_points(
    const Tree *tree, intp_t start, intp_t end, float64_t *entries,
    float *entries32, const float64_t *centre, intp_t n_entries
) noexcept nogil:
    """Append the points start:end of the Morton order with mass 1."""
    cdef int d = tree.n_dims
    cdef const float64_t *y
    cdef intp_t p
    for p in range(start, end):
        y = &tree.ys[p * d]
        n_entries = _push(
            entries, entries32, centre, n_entries, y[0], y[1] if d > 1 else 0.0,
            y[2] if d > 2 else 0.0, 1.0
        )
    return n_entries


cdef inline float64_t _gap(float64_t c, float64_t lo, float64_t hi) noexcept nogil:
    """Distance from c to the interval [lo, hi] (written to compile to maxsd)."""
    cdef float64_t a = lo - c, b = c - hi
    a = a if a > b else b
    return a if a > 0.0 else 0.0


cdef intp_t _collect(
    const Tree *tree, intp_t group_start, intp_t group_end,
    const float64_t *group_lo, const float64_t *group_hi, float64_t theta2,
    float64_t *entries, float *entries32, const float64_t *centre, intp_t *n_own
) noexcept nogil:
    """Interaction list (x, y, z, mass) of the group's points; returns its length.

    The group is the points ``group_start:group_end`` of the Morton order;
    ``group_lo``/``group_hi`` bound them (0 beyond d). The list starts with the
    group's own points (``n_own`` of them, entry e being point
    ``group_start + e``), whose self-terms the kernels leave out; identical
    points are one entry of their count instead (exact), so duplicates cost
    O(1). See ``_push`` for where the entries go.
    """
    cdef const Node *nodes = tree.nodes
    cdef const Node *nd
    cdef intp_t node = 0, n_entries = 0, n_out
    cdef float64_t d2, gx, gy, gz
    if (
        group_lo[0] != group_hi[0] or group_lo[1] != group_hi[1]
        or group_lo[2] != group_hi[2]
    ):
        n_entries = _push_points(
            tree, group_start, group_end, entries, entries32, centre, 0
        )
        n_own[0] = n_entries
    else:
        n_own[0] = 0
        if group_end - group_start > 1:
            n_entries = _push(
                entries, entries32, centre, 0, group_lo[0], group_lo[1],
                group_lo[2], <float64_t>(group_end - group_start - 1)
            )
    while node < tree.n_nodes:
        nd = &nodes[node]
        if nd.end <= group_start or nd.start >= group_end:
            # Disjoint from the group: squared distance from the centre of mass
            # to the group's bounding box, a lower bound over its points.
            gx = _gap(nd.com[0], group_lo[0], group_hi[0])
            gy = _gap(nd.com[1], group_lo[1], group_hi[1])
            gz = _gap(nd.com[2], group_lo[2], group_hi[2])
            d2 = gx * gx + gy * gy + gz * gz
            if nd.width2 < theta2 * d2 or nd.width2 == 0.0:
                n_entries = _push(
                    entries, entries32, centre, n_entries, nd.com[0], nd.com[1],
                    nd.com[2], nd.mass
                )
                node = nd.skip
            elif nd.skip == node + 1:
                n_entries = _push_points(
                    tree, nd.start, nd.end, entries, entries32, centre, n_entries
                )
                node = nd.skip
            else:
                node += 1
        elif nd.start >= group_start and nd.end <= group_end:
            node = nd.skip  # inside the group: already in the list
        elif nd.skip == node + 1:
            # A leaf that straddles the group's ends: its points outside it.
            if nd.width2 == 0.0:
                n_out = (nd.end - nd.start) - (
                    (group_end if group_end < nd.end else nd.end)
                    - (group_start if group_start > nd.start else nd.start)
                )
                n_entries = _push(
                    entries, entries32, centre, n_entries, nd.com[0], nd.com[1],
                    nd.com[2], <float64_t>n_out
                )
            else:
                if nd.start < group_start:
                    n_entries = _push_points(
                        tree, nd.start, group_start, entries, entries32, centre,
                        n_entries
                    )
                if nd.end > group_end:
                    n_entries = _push_points(
                        tree, group_end, nd.end, entries, entries32, centre,
                        n_entries
                    )
            node = nd.skip
        else:
            node += 1  # overlaps the group: always opened
    return n_entries


cdef void _chunk_sums_cauchy_2d(
    const float *entries, intp_t n_own, intp_t n_entries, const float64_t *ys,
    const float64_t *centre, intp_t group_start, intp_t chunk_start,
    intp_t chunk_end, float64_t *forces, float64_t *kernel_sums
) noexcept nogil:
    """Cauchy sums, in float, of a chunk of 2-D points against a list.

    The chunk is the points ``chunk_start:chunk_end`` (at most _LANES) of the
    Morton order. ``entries`` holds (x, y, z, mass) relative to ``centre``; its
    first ``n_own`` entries are the group's points ``group_start + e``. The
    chunk's own points meet each other in a rotation (lane ``lane`` against
    point ``lane + rotation`` for ``rotation`` in ``1.._LANES - 1``), so
    self-pairs are never formed and the loop needs no mask; every other entry
    goes through the plain loop. Partial sums over at most _BLOCK entries are
    kept in float, then added to double accumulators.
    """
    cdef float px[_LANES]
    cdef float py[_LANES]
    cdef float part_w[_LANES]
    cdef float part_x[_LANES]
    cdef float part_y[_LANES]
    cdef float ring_x[2 * _LANES]
    cdef float ring_y[2 * _LANES]
    cdef float ring_m[2 * _LANES]
    cdef float64_t sum_w[_LANES]
    cdef float64_t sum_x[_LANES]
    cdef float64_t sum_y[_LANES]
    cdef float ex, ey, m, dx, dy, w, mw, one = 1.0, zero = 0.0
    cdef intp_t e, src, e0, e1, end, skip0 = n_entries, skip1 = n_entries
    cdef int lane, rotation, part, n_valid = <int>(chunk_end - chunk_start)
    for lane in range(_LANES):
        src = chunk_start + lane if lane < n_valid else chunk_start
        px[lane] = <float>(ys[2 * src] - centre[0])
        py[lane] = <float>(ys[2 * src + 1] - centre[1])
        sum_w[lane] = 0.0
        sum_x[lane] = 0.0
        sum_y[lane] = 0.0
        part_w[lane] = 0.0
        part_x[lane] = 0.0
        part_y[lane] = 0.0
    if n_own > 0:
        for lane in range(_LANES):
            ring_x[lane] = px[lane]
            ring_x[lane + _LANES] = px[lane]
            ring_y[lane] = py[lane]
            ring_y[lane + _LANES] = py[lane]
            # Padding lanes weigh nothing.
            ring_m[lane] = one if lane < n_valid else zero
            ring_m[lane + _LANES] = ring_m[lane]
        for rotation in range(1, _LANES):
            for lane in range(_LANES):
                dx = px[lane] - ring_x[lane + rotation]
                dy = py[lane] - ring_y[lane + rotation]
                w = one / (one + dx * dx + dy * dy)
                mw = ring_m[lane + rotation] * w
                part_w[lane] += mw
                mw = mw * w
                part_x[lane] += mw * dx
                part_y[lane] += mw * dy
        skip0 = chunk_start - group_start
        skip1 = skip0 + n_valid
    for part in range(2):
        e0 = 0 if part == 0 else skip1
        end = skip0 if part == 0 else n_entries
        while True:
            # Flush the float partial sums of the previous block into double.
            for lane in range(_LANES):
                sum_w[lane] += part_w[lane]
                sum_x[lane] += part_x[lane]
                sum_y[lane] += part_y[lane]
                part_w[lane] = 0.0
                part_x[lane] = 0.0
                part_y[lane] = 0.0
            if e0 >= end:
                break
            e1 = e0 + _BLOCK if e0 + _BLOCK < end else end
            for e in range(e0, e1):
                ex = entries[4 * e]
                ey = entries[4 * e + 1]
                m = entries[4 * e + 3]
                for lane in range(_LANES):
                    dx = px[lane] - ex
                    dy = py[lane] - ey
                    w = one / (one + dx * dx + dy * dy)
                    mw = m * w
                    part_w[lane] += mw
                    mw = mw * w
                    part_x[lane] += mw * dx
                    part_y[lane] += mw * dy
            e0 = e1
    for lane in range(n_valid):
        kernel_sums[chunk_start + lane] = sum_w[lane]
        forces[2 * (chunk_start + lane)] = sum_x[lane]
        forces[2 * (chunk_start + lane) + 1] = sum_y[lane]


cdef void _chunk_sums_float(
    const float *entries, intp_t n_own, intp_t n_entries, const float64_t *ys,
    int d, const float64_t *centre, intp_t group_start, intp_t chunk_start,
    intp_t chunk_end, float64_t dof, float64_t *forces, float64_t *kernel_sums
) noexcept nogil:
    """As _chunk_sums_cauchy_2d for any d and dof (unused coordinates are 0).

    With ``dof != 1`` the kernel ``t^(-dof)`` is one ``powf`` per pair, the
    only part of the loop that stays scalar.
    """
    cdef float px[_LANES]
    cdef float py[_LANES]
    cdef float pz[_LANES]
    cdef float part_w[_LANES]
    cdef float part_x[_LANES]
    cdef float part_y[_LANES]
    cdef float part_z[_LANES]
    cdef float ring_x[2 * _LANES]
    cdef float ring_y[2 * _LANES]
    cdef float ring_z[2 * _LANES]
    cdef float ring_m[2 * _LANES]
    cdef float64_t sum_w[_LANES]
    cdef float64_t sum_x[_LANES]
    cdef float64_t sum_y[_LANES]
    cdef float64_t sum_z[_LANES]
    cdef float ex, ey, ez, m, dx, dy, dz, t, w, mw, one = 1.0, zero = 0.0
    cdef float fdof = <float>dof, inv_dof = <float>(1.0 / dof)
    cdef bint cauchy = dof == 1.0
    cdef intp_t e, src, e0, e1, end, skip0 = n_entries, skip1 = n_entries
    cdef int lane, rotation, part, n_valid = <int>(chunk_end - chunk_start)
    for lane in range(_LANES):
        src = chunk_start + lane if lane < n_valid else chunk_start
        px[lane] = <float>(ys[d * src] - centre[0])
        py[lane] = <float>(ys[d * src + 1] - centre[1]) if d > 1 else zero
        pz[lane] = <float>(ys[d * src + 2] - centre[2]) if d > 2 else zero
        sum_w[lane] = 0.0
        sum_x[lane] = 0.0
        sum_y[lane] = 0.0
        sum_z[lane] = 0.0
        part_w[lane] = 0.0
        part_x[lane] = 0.0
        part_y[lane] = 0.0
        part_z[lane] = 0.0
    if n_own > 0:
        for lane in range(_LANES):
            ring_x[lane] = px[lane]
            ring_x[lane + _LANES] = px[lane]
            ring_y[lane] = py[lane]
            ring_y[lane + _LANES] = py[lane]
            ring_z[lane] = pz[lane]
            ring_z[lane + _LANES] = pz[lane]
            ring_m[lane] = one if lane < n_valid else zero
            ring_m[lane + _LANES] = ring_m[lane]
        for rotation in range(1, _LANES):
            for lane in range(_LANES):
                dx = px[lane] - ring_x[lane + rotation]
                dy = py[lane] - ring_y[lane + rotation]
                dz = pz[lane] - ring_z[lane + rotation]
                if cauchy:
                    t = one + dx * dx + dy * dy + dz * dz
                    w = one / t
                else:
                    t = one + (dx * dx + dy * dy + dz * dz) * inv_dof
                    w = powf(t, -fdof)
                mw = ring_m[lane + rotation] * w
                part_w[lane] += mw
                mw = mw / t
                part_x[lane] += mw * dx
                part_y[lane] += mw * dy
                part_z[lane] += mw * dz
        skip0 = chunk_start - group_start
        skip1 = skip0 + n_valid
    for part in range(2):
        e0 = 0 if part == 0 else skip1
        end = skip0 if part == 0 else n_entries
        while True:
            for lane in range(_LANES):
                sum_w[lane] += part_w[lane]
                sum_x[lane] += part_x[lane]
                sum_y[lane] += part_y[lane]
                sum_z[lane] += part_z[lane]
                part_w[lane] = 0.0
                part_x[lane] = 0.0
                part_y[lane] = 0.0
                part_z[lane] = 0.0
            if e0 >= end:
                break
            e1 = e0 + _BLOCK if e0 + _BLOCK < end else end
            if cauchy:
                for e in range(e0, e1):
                    ex = entries[4 * e]
                    ey = entries[4 * e + 1]
                    ez = entries[4 * e + 2]
                    m = entries[4 * e + 3]
                    for lane in range(_LANES):
                        dx = px[lane] - ex
                        dy = py[lane] - ey
                        dz = pz[lane] - ez
                        w = one / (one + dx * dx + dy * dy + dz * dz)
                        mw = m * w
                        part_w[lane] += mw
                        mw = mw * w
                        part_x[lane] += mw * dx
                        part_y[lane] += mw * dy
                        part_z[lane] += mw * dz
            else:
                for e in range(e0, e1):
                    ex = entries[4 * e]
                    ey = entries[4 * e + 1]
                    ez = entries[4 * e + 2]
                    m = entries[4 * e + 3]
                    for lane in range(_LANES):
                        dx = px[lane] - ex
                        dy = py[lane] - ey
                        dz = pz[lane] - ez
                        t = one + (dx * dx + dy * dy + dz * dz) * inv_dof
                        w = powf(t, -fdof)
                        mw = m * w
                        part_w[lane] += mw
                        mw = mw / t
                        part_x[lane] += mw * dx
                        part_y[lane] += mw * dy
                        part_z[lane] += mw * dz
            e0 = e1
    for lane in range(n_valid):
        kernel_sums[chunk_start + lane] = sum_w[lane]
        forces[d * (chunk_start + lane)] = sum_x[lane]
        if d > 1:
            forces[d * (chunk_start + lane) + 1] = sum_y[lane]
        if d > 2:
            forces[d * (chunk_start + lane) + 2] = sum_z[lane]


cdef void _chunk_sums_double(
    const float64_t *entries, intp_t n_own, intp_t n_entries, const float64_t *ys,
    int d, intp_t group_start, intp_t chunk_start, intp_t chunk_end,
    float64_t dof, float64_t *forces, float64_t *kernel_sums
) noexcept nogil:
    """Kernel sums, in double, of a chunk of points against a list.

    The chunk is the points ``chunk_start:chunk_end`` (at most _DLANES).

    Any dof; ``entries`` holds absolute (x, y, z, mass), unused coordinates 0, its
    first ``n_own`` entries being the points ``group_start + e`` (self-pairs skipped).
    """
    cdef float64_t px[_DLANES]
    cdef float64_t py[_DLANES]
    cdef float64_t pz[_DLANES]
    cdef float64_t sum_w[_DLANES]
    cdef float64_t sum_x[_DLANES]
    cdef float64_t sum_y[_DLANES]
    cdef float64_t sum_z[_DLANES]
    cdef float64_t ex, ey, ez, m, dx, dy, dz, t, w, mw, inv_dof = 1.0 / dof
    cdef bint cauchy = dof == 1.0
    cdef intp_t e, src
    cdef int lane, n_valid = <int>(chunk_end - chunk_start)
    for lane in range(_DLANES):
        src = chunk_start + lane if lane < n_valid else chunk_start
        px[lane] = ys[d * src]
        py[lane] = ys[d * src + 1] if d > 1 else 0.0
        pz[lane] = ys[d * src + 2] if d > 2 else 0.0
        sum_w[lane] = 0.0
        sum_x[lane] = 0.0
        sum_y[lane] = 0.0
        sum_z[lane] = 0.0
    for e in range(n_entries):
        ex = entries[4 * e]
        ey = entries[4 * e + 1]
        ez = entries[4 * e + 2]
        m = entries[4 * e + 3]
        for lane in range(_DLANES):
            if e < n_own and group_start + e == chunk_start + lane:
                continue
            dx = px[lane] - ex
            dy = py[lane] - ey
            dz = pz[lane] - ez
            if cauchy:
                t = 1.0 + dx * dx + dy * dy + dz * dz
                w = 1.0 / t
            else:
                t = 1.0 + (dx * dx + dy * dy + dz * dz) * inv_dof
                w = pow(t, -dof)
            mw = m * w
            sum_w[lane] += mw
            mw = mw / t
            sum_x[lane] += mw * dx
            sum_y[lane] += mw * dy
            sum_z[lane] += mw * dz
    for lane in range(n_valid):
        kernel_sums[chunk_start + lane] = sum_w[lane]
        forces[d * (chunk_start + lane)] = sum_x[lane]
        if d > 1:
            forces[d * (chunk_start + lane) + 1] = sum_y[lane]
        if d > 2:
            forces[d * (chunk_start + lane) + 2] = sum_z[lane]


cdef void _group_repulsion(
    const Tree *tree, intp_t group_start, intp_t group_end, float64_t theta2,
    float64_t dof, float64_t *entries, float *entries32, float64_t *forces,
    float64_t *kernel_sums
) noexcept nogil:
    """Forces and kernel sums of the points group_start:group_end (Morton order).

    ``entries32`` not NULL selects the float kernels.
    """
    cdef intp_t n_own, n_entries, chunk_start = group_start, chunk_end, p
    cdef float64_t lo[3]
    cdef float64_t hi[3]
    cdef float64_t centre[3]
    cdef int k, d = tree.n_dims
    for k in range(3):
        lo[k] = 0.0
        hi[k] = 0.0
    for k in range(d):
        lo[k] = tree.ys[group_start * d + k]
        hi[k] = lo[k]
    for p in range(group_start + 1, group_end):
        for k in range(d):
            if tree.ys[p * d + k] < lo[k]:
                lo[k] = tree.ys[p * d + k]
            elif tree.ys[p * d + k] > hi[k]:
                hi[k] = tree.ys[p * d + k]
    # Coordinates relative to the group's centre keep the float differences
    # of nearby points accurate.
    for k in range(3):
        centre[k] = 0.5 * (lo[k] + hi[k])
    n_entries = _collect(
        tree, group_start, group_end, lo, hi, theta2, entries, entries32, centre,
        &n_own
    )
    if entries32 == NULL:
        while chunk_start < group_end:
            chunk_end = chunk_start + _DLANES
            if chunk_end > group_end:
                chunk_end = group_end
            _chunk_sums_double(
                entries, n_own, n_entries, tree.ys, d, group_start, chunk_start,
                chunk_end, dof, forces, kernel_sums
            )
            chunk_start = chunk_end
        return
    while chunk_start < group_end:
        chunk_end = chunk_start + _LANES
        if chunk_end > group_end:
            chunk_end = group_end
        if d == 2 and dof == 1.0:
            _chunk_sums_cauchy_2d(
                entries32, n_own, n_entries, tree.ys, centre, group_start,
                chunk_start, chunk_end, forces, kernel_sums
            )
        else:
            _chunk_sums_float(
                entries32, n_own, n_entries, tree.ys, d, centre, group_start,
                chunk_start, chunk_end, dof, forces, kernel_sums
            )
        chunk_start = chunk_end


cdef intp_t _make_groups(
    const Tree *tree, intp_t node, intp_t *starts, intp_t n_groups
) noexcept nogil:
    """Append the group starts of the subtree of ``node``; return the new count.

    A subtree of at most _GROUP_SIZE points (or a leaf of duplicates) is one
    group; otherwise runs of consecutive small children of the node are merged
    while they fit, and larger children are split recursively. Groups are thus
    contiguous in Morton order and made of whole sibling cells, which keeps
    their bounding boxes small and their lanes full.
    """
    cdef const Node *nd = &tree.nodes[node]
    cdef intp_t child, run_start = -1
    if nd.mass <= _GROUP_SIZE or nd.skip == node + 1:
        starts[n_groups] = nd.start
        return n_groups + 1
    child = node + 1
    while child < nd.skip:
        if tree.nodes[child].mass <= _GROUP_SIZE:
            if run_start < 0 or tree.nodes[child].end - run_start > _GROUP_SIZE:
                run_start = tree.nodes[child].start
                starts[n_groups] = run_start
                n_groups += 1
        else:
            run_start = -1
            n_groups = _make_groups(tree, child, starts, n_groups)
        child = tree.nodes[child].skip
    return n_groups


cdef void _query_sums(
    const Tree *tree, const float64_t *q, float64_t theta2, float64_t dof,
    float64_t *res
) noexcept nogil:
    """res = (force[0:3], sum w) in double of a query point q against the tree."""
    cdef const Node *nd
    cdef intp_t node = 0, p
    cdef int d = tree.n_dims, k
    cdef bint cauchy = dof == 1.0
    cdef float64_t diff[3]
    cdef float64_t acc[4]
    cdef float64_t d2, w, t
    for k in range(4):
        acc[k] = 0.0
    while node < tree.n_nodes:
        nd = &tree.nodes[node]
        d2 = 0.0
        for k in range(d):
            diff[k] = q[k] - nd.com[k]
            d2 += diff[k] * diff[k]
        if nd.width2 < theta2 * d2 or nd.width2 == 0.0:
            t = 1.0 + d2 / dof
            w = 1.0 / t if cauchy else pow(t, -dof)
            acc[3] += nd.mass * w
            w = nd.mass * w / t
            for k in range(d):
                acc[k] += w * diff[k]
            node = nd.skip
        elif nd.skip == node + 1:
            for p in range(nd.start, nd.end):
                d2 = 0.0
                for k in range(d):
                    diff[k] = q[k] - tree.ys[p * d + k]
                    d2 += diff[k] * diff[k]
                t = 1.0 + d2 / dof
                w = 1.0 / t if cauchy else pow(t, -dof)
                acc[3] += w
                w = w / t
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
    cdef float64_t *forces
    cdef float64_t *kernel_sums
    cdef float64_t *entries = NULL
    cdef float *entries32 = NULL
    cdef intp_t[::1] starts
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
    forces = workspace.forces
    kernel_sums = workspace.kernel_sums
    starts = np.empty(n + 1, dtype=np.intp)
    n_groups = _make_groups(tree, 0, &starts[0], 0)
    starts[n_groups] = n
    with nogil, parallel(num_threads=n_threads):
        # At most n entries: they stand for disjoint sets of points. Only the
        # pages a list reaches are touched.
        entries = NULL
        entries32 = NULL
        if use_float:
            entries32 = <float *>malloc(4 * n * sizeof(float))
        else:
            entries = <float64_t *>malloc(4 * n * sizeof(float64_t))
        if entries == NULL and entries32 == NULL:
            with gil:
                raise MemoryError()
        # Groups are small and uneven: handing them out one at a time keeps
        # every thread busy, also when the OS delays one of them.
        for gi in prange(n_groups, schedule="dynamic"):
            _group_repulsion(
                tree, starts[gi], starts[gi + 1], theta2, dof, entries, entries32,
                forces, kernel_sums
            )
        free(entries)
        free(entries32)
    with nogil:
        for p in range(n):
            Z += kernel_sums[p]
            for k in range(d):
                out[tree.perm[p], k] = <floating>forces[p * d + k]
    return Z


def build_frozen_tree(const floating[:, ::1] Y_frozen, _Workspace workspace):
    """Build the tree of a frozen embedding into ``workspace``, once.

    Nothing is done when the workspace already holds the tree of exactly
    these points (checked in O(n)); :func:`bh_repulsion_from_frozen` then
    reuses it.

    Parameters
    ----------
    Y_frozen : ndarray of shape (n_frozen, n_components), float32 or float64
        C-contiguous embedding, ``n_components`` in 1..3.
    workspace : _Workspace
        Receives the tree.
    """
    cdef bint held
    if not 1 <= Y_frozen.shape[1] <= 3:
        raise ValueError(
            f"The embedding must have 1 to 3 columns, got {Y_frozen.shape[1]}."
        )
    with nogil:
        held = _holds_points(&workspace.tree, Y_frozen)
    if not held:
        _build_tree(workspace, Y_frozen)


def bh_repulsion_from_frozen(
    const floating[:, ::1] Y_frozen,
    const floating[:, ::1] Y_query,
    double angle,
    double dof,
    floating[:, ::1] out,
    floating_w[::1] sum_w,
    int n_threads,
    _Workspace workspace=None,
):
    """Barnes-Hut repulsion of query points from a frozen embedding.

    The query points are not part of the frozen embedding (``transform``'s
    new points against ``embedding_``). For each query point ``q_i``, writes
    ``out[i] = sum_j (w_ij / t_ij) (q_i - y_j)`` and ``sum_w[i] = sum_j w_ij``
    over the frozen points ``y_j``. Each query point is walked on its own, in
    double precision, so its result depends only on it and on ``Y_frozen``.

    Parameters
    ----------
    Y_frozen : ndarray of shape (n_frozen, n_components), float32 or float64
        C-contiguous frozen embedding, ``n_components`` in 1..3.
    Y_query : ndarray of shape (n_queries, n_components), same dtype
        C-contiguous query points.
    angle : float
        Opening angle (0 is exact).
    dof : float
        Degrees of freedom of the heavy-tailed kernel.
    out : ndarray of shape (n_queries, n_components), same dtype as Y_frozen
        Receives the unnormalised repulsive sums.
    sum_w : ndarray of shape (n_queries,), float32 or float64
        Receives the per-point kernel sums.
    n_threads : int
        OpenMP threads; the result does not depend on it.
    workspace : _Workspace, default=None
        Buffers kept between calls (one caller at a time). The tree is built
        as :func:`build_frozen_tree` does, so repeated calls against one
        frozen embedding build it once.
    """
    cdef intp_t d = Y_frozen.shape[1], m = Y_query.shape[0], i
    cdef int k
    cdef double theta2 = angle * angle
    cdef float64_t[:, ::1] res
    cdef float64_t *q
    _check_common(d, angle, dof, n_threads)
    if Y_query.shape[1] != d:
        raise ValueError(
            f"Y_query has {Y_query.shape[1]} columns, Y_frozen has {d}."
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
    if workspace is None:
        workspace = _Workspace()
    build_frozen_tree(Y_frozen, workspace)
    with nogil:
        for i in prange(m, schedule="dynamic", chunksize=16, num_threads=n_threads):
            q = &res[i, 4]
            for k in range(d):
                q[k] = Y_query[i, k]
            _query_sums(&workspace.tree, q, theta2, dof, &res[i, 0])
        for i in range(m):
            sum_w[i] = <floating_w>res[i, 3]
            for k in range(d):
                out[i, k] = <floating>res[i, k]
