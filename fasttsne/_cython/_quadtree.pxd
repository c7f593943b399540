# Compressed 2^d-ary space-partitioning tree (d = 1, 2, 3) for Barnes-Hut t-SNE.
from fasttsne._cython._typedefs cimport float64_t, intp_t, uint64_t

# Most nodes one group walk visits are only looked at, not opened, so the node
# keeps what that look needs and nothing else: 64 bytes, one cache line.
# Nodes are stored in depth-first preorder: the first child of node k is k + 1,
# and ``skip`` is the index just past the subtree of k, so a walk needs no stack.
ctypedef struct Node:
    float64_t com[3]   # centre of mass (unused trailing coordinates are 0)
    float64_t width2   # squared longest side of the tight bounding box of the points
    float64_t mass     # number of points, as a double for the kernel sums
    intp_t start       # the node holds the points start:end of the Morton order
    intp_t end
    intp_t skip        # next node in preorder outside this subtree; leaf iff k + 1


# One tree; the buffers belong to the _Workspace that built it.
ctypedef struct Tree:
    intp_t n_points
    int n_dims
    intp_t n_nodes
    Node *nodes        # (<= 2 n_points - 1,) preorder
    float64_t *lo      # (n_nodes, 3) tight bounding box of each node
    float64_t *hi
    float64_t *ys      # (n_points, n_dims) coordinates in Morton order
    intp_t *perm       # Morton position -> row of the input
    uint64_t *codes    # (n_points,) sorted Morton codes
