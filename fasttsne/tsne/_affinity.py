"""Affinities: from the k nearest neighbours (or a given matrix) to t-SNE's P.

``X -> fasttsne._neighbors -> conditional probabilities -> symmetrize`` gives
the symmetric joint probabilities of a fit (:func:`joint_probabilities`);
:func:`new_point_affinities` gives the conditional probabilities of new
points over their training neighbours, for ``transform``. The conditional
probabilities of a point over its k nearest neighbours are, by ``affinity``:

* ``"perplexity"``: Gaussian weights calibrated to a perplexity, over
  ``k = 3 * perplexity`` neighbours (van der Maaten and Hinton, 2008);
* ``"uniform"``: ``1 / k`` over ``k = n_neighbors`` neighbours;
* ``"multiscale"``: the mean of the perplexity-calibrated probabilities at
  each of several perplexities, over ``k = 3 * max(perplexities)``
  neighbours (openTSNE's ``Multiscale``).

``"precomputed"`` affinities skip the search: a given non-negative matrix is
symmetrised and normalised (:func:`precomputed_joint_probabilities`), and
``transform`` takes each new point's affinities to the training points, one
row each. docs/affinities.rst describes the choices. The neighbour search
itself lives in :mod:`fasttsne._neighbors`.

The module is one piece (past the usual ~700 lines) because the three
routes to P (a fit's, given affinities, ``transform``'s) share their
contract: the value dtype and its rounding, the empty-row errors and the
validation of given matrices; apart, each would reach into the others.
"""

import time

import numpy as np
from scipy import sparse

from fasttsne._cython._perplexity import (
    binary_search_perplexity,
    knn_rows_to_csr,
    place_rows,
    symmetric_fill,
    symmetric_row_offsets,
    symmetrize,
)
from fasttsne._memory import release_free_memory
from fasttsne._neighbors import nearest_neighbors, new_point_neighbors
from fasttsne._progress import Reporter, describe
from fasttsne.tsne._layout import _locality_order

__all__ = [
    "AFFINITIES",
    "check_affinities",
    "joint_probabilities",
    "n_neighbors_of",
    "new_point_affinities",
    "precomputed_joint_probabilities",
]

AFFINITIES = ("perplexity", "uniform", "multiscale", "precomputed")

# Points named in an error message about empty rows, at most.
_MAX_NAMED = 5

# Blocks of rows in which the kNN's rows move into P's arrays: the memory
# of one block is what they hold twice (joint_probabilities).
_PLACE_BLOCKS = 64

# The dtype of the affinities' values. P is a fit's largest object and the
# attraction streams it every iteration, so its values are stored in single
# precision, each rounded once from the float64 arithmetic that forms it
# (docs/affinities.rst).
P_DTYPE = np.float32


def _squares_distances(metric):
    """Whether the calibration takes the metric's distances squared.

    This is scikit-learn's TSNE convention: only ``metric="euclidean"`` is
    squared; every other metric (including "l2") and precomputed distances
    are used as given.
    """
    return metric == "euclidean"


def _perplexities(affinity, perplexity):
    """The perplexities of ``affinity``: one float, or a tuple for multiscale."""
    if affinity == "multiscale":
        return tuple(float(p) for p in np.atleast_1d(perplexity))
    return float(perplexity)


def n_neighbors_of(affinity, perplexity, n_neighbors, n_reference):
    """The number k of nearest neighbours that ``affinity`` uses.

    Parameters
    ----------
    affinity : {"perplexity", "uniform", "multiscale"}
        The kind of affinities.
    perplexity : float or sequence of float
        The perplexity, or the perplexities of ``"multiscale"``.
    n_neighbors : int or None
        The neighbours of ``"uniform"`` (unused by the other kinds).
    n_reference : int
        The most neighbours there are: ``n_samples - 1`` for a fit, the
        number of training points for new points.

    Returns
    -------
    k : int
        ``n_neighbors`` for ``"uniform"``, ``int(3 * max(perplexity))``
        otherwise, clipped to ``[1, n_reference]``.
    """
    if affinity == "uniform":
        if n_neighbors is None:
            raise ValueError('affinity="uniform" needs n_neighbors.')
        k = int(n_neighbors)
    else:
        k = int(3 * np.max(perplexity))
    return max(1, min(n_reference, k))


def _conditional(distances, affinity, perplexity, n_threads):
    """Row-normalised conditional probabilities over each row's neighbours.

    ``distances`` is the (n, k) array of neighbour distances (squared for the
    euclidean metric); the result has its shape, float64, rows summing to 1.
    A C-contiguous, writeable float64 ``distances`` (what the searches hand
    over) is overwritten and returned: the rows are formed in place.
    """
    distances = np.ascontiguousarray(distances, dtype=np.float64)
    if not distances.flags.writeable:
        distances = distances.copy()
    if affinity == "uniform":
        distances.fill(1.0 / distances.shape[1])
        return distances
    return binary_search_perplexity(
        distances, _perplexities(affinity, perplexity), n_threads, out=distances
    )


def _owner(array):
    """The array that owns ``array``'s memory, if that memory is exactly its."""
    base = array.base
    if not (isinstance(base, np.ndarray) and base.flags.owndata):
        return array
    same = base.nbytes == array.nbytes and base.ctypes.data == array.ctypes.data
    contiguous = base.flags.c_contiguous and array.flags.c_contiguous
    return base if same and contiguous else array


class _Buffer:
    """The memory of one array, read as a flat array of some dtype; shrinkable.

    P's rows are built in the kNN's own arrays (:func:`joint_probabilities`),
    which give their memory back as P takes its place. ``ndarray.resize``
    shrinks an array in place (the tail pages return to the system) as long
    as the array owns its memory and nothing else refers to it, which is why
    this object keeps the only reference (the caller deletes its own).
    """

    def __init__(self, array):
        # Rows are built in place: a read-only or non-contiguous array (a
        # search may return one) is copied once here, never silently later.
        self._array = _owner(np.require(array, requirements="CW"))

    def view(self, dtype, size):
        """The first ``size`` items of the buffer, as ``dtype`` (a view)."""
        flat = self._array.view()
        # Setting the shape raises instead of copying.
        flat.shape = (-1,)
        return flat.view(dtype)[:size]

    def shrink(self, dtype, size):
        """Release the memory past the first ``size`` items of ``dtype``.

        Returns whether it could (an array that does not own its memory, or
        that something else refers to, is left as it is).
        """
        count = -(-size * np.dtype(dtype).itemsize // self._array.itemsize)
        if count >= self._array.size:
            return True
        try:
            self._array.resize(count, refcheck=True)
        except ValueError:
            return False
        return True

    def narrow(self, dtype):
        """Convert the (integer) items to the narrower ``dtype``, in place.

        Item p is written over the first half of item p / 2: blocks ``[a,
        2a)`` never overlap their source, so NumPy copies them directly. The
        buffer then shrinks to the narrow items (or is copied, if it cannot).
        """
        size = self._array.size
        if self._array.dtype == dtype:
            return
        if not (
            self._array.flags.c_contiguous
            and self._array.flags.writeable
            and self._array.dtype.kind == np.dtype(dtype).kind == "i"
            and self._array.itemsize > np.dtype(dtype).itemsize
        ):
            self._array = np.ascontiguousarray(self._array, dtype=dtype)
            return
        flat = self._array.reshape(-1)
        narrow = flat.view(dtype)
        start = min(size, 1 << 16)
        narrow[:start] = flat[:start].copy()
        while start < size:
            stop = min(2 * start, size)
            narrow[start:stop] = flat[start:stop]
            start = stop
        del flat, narrow  # views would keep the array from being resized
        if not self.shrink(dtype, size):
            self._array = self.view(dtype, size).copy()


def _rounded(P):
    """P with its values in ``P_DTYPE``, those below its smallest normal dropped.

    In place, but for the values' conversion when they are not yet in
    ``P_DTYPE``. Rounding to float32 turns values below 2^-150 into 0 and
    those below 1.2e-38 into subnormals, which lose precision (and which GPU
    math may flush to 0, making a log infinite). They weigh nothing in the
    gradient: P keeps neither zeros nor subnormals. A value and its
    transpose are rounded alike, so P stays symmetric.
    """
    P.data = P.data.astype(P_DTYPE, copy=False)
    tiny = np.finfo(P_DTYPE).tiny
    # The minimum first: a mask of P's size is made only when needed.
    if P.nnz and P.data.min() < tiny:
        P.data[P.data < tiny] = 0.0
        P.eliminate_zeros()
    return P


def _symmetrized(values, columns, shape, index_dtype, order, n_threads):
    """``A + A^T``, normalised, from the kNN rows in ``values`` and ``columns``.

    The rows are renumbered in ``order`` (None: kept), become the CSR matrix
    A in place, and are copied into P's arrays by blocks, from the last,
    while the buffers shrink behind them: a row exists twice only within a
    block. The buffers are left empty (where they can shrink). A is
    normalised in float64, by ``2 sum(A)`` (P's sum), and P's values are
    rounded to ``P_DTYPE`` as they are placed: P's float64 values never exist
    all at once.
    """
    n_samples, k = shape
    indptr = knn_rows_to_csr(
        values.view(np.float64, n_samples * k).reshape(shape),
        columns.view(index_dtype, n_samples * k).reshape(shape),
        order,
        n_threads,
    )
    nnz = int(indptr[-1])
    conditional = values.view(np.float64, nnz)
    mass = float(conditional.sum())
    if mass > 0.0:
        conditional /= 2.0 * mass
    del conditional  # a view would keep the buffer from shrinking
    out_indptr = symmetric_row_offsets(
        values.view(np.float64, nnz), columns.view(index_dtype, nnz), indptr, n_threads
    )
    total = int(out_indptr[-1])
    data = np.empty(total, dtype=P_DTYPE)
    indices = np.empty(total, dtype=index_dtype)
    bounds = np.linspace(0, n_samples, _PLACE_BLOCKS + 1).astype(np.intp)
    for row_start, row_stop in zip(bounds[-2::-1], bounds[:0:-1]):
        place_rows(
            values.view(np.float64, nnz),
            columns.view(index_dtype, nnz),
            indptr,
            out_indptr,
            data,
            indices,
            row_start,
            row_stop,
            n_threads,
        )
        values.shrink(np.float64, int(indptr[row_start]))
        columns.shrink(index_dtype, int(indptr[row_start]))
    symmetric_fill(data, indices, indptr, out_indptr, n_threads)
    P = sparse.csr_matrix((data, indices, out_indptr), shape=(n_samples, n_samples))
    # scipy narrows 64-bit index arrays whose values fit in 32 bits; the
    # attraction wants one width for both, so the chosen one is put back.
    P.indices, P.indptr = indices, out_indptr
    # A row's largest value is at least 1 / (2 n k): no row empties.
    return _rounded(P)


def joint_probabilities(
    X,
    perplexity,
    *,
    affinity="perplexity",
    n_neighbors=None,
    metric="euclidean",
    metric_params=None,
    neighbors="auto",
    n_threads=1,
    random_state=None,
    verbose=0,
    reorder=False,
    search=nearest_neighbors,
    before_symmetrize=None,
):
    """Symmetric joint probabilities P of t-SNE over the kNN graph.

    Parameters
    ----------
    X : {ndarray, sparse matrix} of shape (n_samples, n_features) or \
            (n_samples, n_samples)
        Data, or a distance matrix with ``metric="precomputed"``.
    perplexity : float or sequence of float
        Target perplexity; ``k = min(n_samples - 1, int(3 * perplexity))``
        neighbours (at least 1) are used. A sequence of perplexities with
        ``affinity="multiscale"`` (k from the largest).
    affinity : {"perplexity", "uniform", "multiscale"}, default="perplexity"
        The conditional probabilities of each point over its neighbours
        (see the module's docstring); the precomputed kind has its own
        function, :func:`precomputed_joint_probabilities`.
    n_neighbors : int, default=None
        k for ``affinity="uniform"`` (clipped to ``n_samples - 1``); unused
        by the other kinds.
    metric : str or callable, default="euclidean"
        Any metric of :class:`sklearn.neighbors.NearestNeighbors`, or
        ``"precomputed"``. As in :class:`sklearn.manifold.TSNE`, euclidean
        distances are squared and every other metric is used as is.
    metric_params : dict, default=None
        Keyword arguments of the metric.
    neighbors : {"auto", "exact", "approx"}, default="auto"
        Nearest-neighbour search method (see
        :func:`fasttsne._neighbors.nearest_neighbors`).
    n_threads : int, default=1
        Number of threads. The result does not depend on it.
    random_state : int, RandomState instance or None, default=None
        Seeds the approximate search.
    verbose : int, default=0
        Print progress when positive (see :mod:`fasttsne._progress`).
    reorder : bool, default=False
        Number the points in a cache-friendly order (see
        :mod:`fasttsne.tsne._layout`) and return that order too.
    search : callable, default=nearest_neighbors
        The kNN search, with the signature of
        :func:`fasttsne._neighbors.nearest_neighbors` (the device's:
        ``fasttsne.gpu._knn``). Its arrays are overwritten (they hold the
        conditional probabilities, then are released as P is filled).
    before_symmetrize : callable, default=None
        Called as ``before_symmetrize(order)`` (``order`` None without
        ``reorder``) once the conditional probabilities are calibrated and
        before P is formed: the moment after the search when the fewest
        bytes are in use, at which a fit builds its PCA initialisation.

    Returns
    -------
    P : scipy.sparse.csr_matrix of shape (n_samples, n_samples), float32
        ``(P_cond + P_cond.T)`` normalised in float64 to sum to 1, each value
        then rounded to float32 (``P_DTYPE``): symmetric, non-negative,
        sorted indices, no stored diagonal and no stored zeros.
        With ``reorder``, ``P[a, b]`` is the affinity of the points
        ``order[a]`` and ``order[b]``.
    order : ndarray of shape (n_samples,), intp
        Only with ``reorder``: a permutation of the samples.

    Examples
    --------
    >>> import numpy as np
    >>> from fasttsne.tsne._affinity import joint_probabilities
    >>> X = np.random.default_rng(0).normal(size=(50, 3))
    >>> P = joint_probabilities(X, perplexity=5.0)
    >>> bool(abs(P.data.sum(dtype=np.float64) - 1.0) < 1e-6), (P != P.T).nnz
    (True, 0)
    """
    if affinity not in AFFINITIES[:3]:
        raise ValueError(
            f"affinity must be one of {AFFINITIES[:3]} here, got {affinity!r}."
        )
    report = Reporter(verbose, name="fasttsne.tsne")
    n_samples = X.shape[0]
    k = n_neighbors_of(affinity, perplexity, n_neighbors, n_samples - 1)
    report(
        f"kNN: searching {k} nearest neighbours of {n_samples} points (metric "
        f"{describe(metric)}, neighbors {neighbors})"
    )
    start = time.perf_counter()
    indices, distances = search(
        X,
        k,
        metric=metric,
        metric_params=metric_params,
        method=neighbors,
        n_threads=n_threads,
        random_state=random_state,
        squared=_squares_distances(metric),
    )
    report(f"kNN: done in {time.perf_counter() - start:.2f} s")
    # The search's freed blocks would otherwise sit beside P (fasttsne._memory).
    release_free_memory()
    if indices.shape != (n_samples, k) or distances.shape != (n_samples, k):
        raise ValueError(
            f"The search returned arrays of shapes {indices.shape} and "
            f"{distances.shape}, expected {(n_samples, k)}."
        )
    start = time.perf_counter()
    # The kNN's arrays become A, the conditional probabilities in CSR form, in
    # place: the distances their values, the indices their 32-bit columns.
    # P's arrays are reserved beside them, but their pages are committed only
    # as P's rows are written while A's buffers shrink, where the system
    # commits memory lazily, as Linux does (docs/affinities.rst).
    values = _Buffer(_conditional(distances, affinity, perplexity, n_threads))
    del distances
    nnz = n_samples * k
    # 32-bit indices whenever they fit: P is the largest object of a fit (and
    # the attraction streams it every iteration), so this halves its index part.
    index_dtype = np.int32 if nnz < np.iinfo(np.int32).max // 2 else np.intp
    columns = _Buffer(indices)
    del indices
    columns.narrow(index_dtype)
    order = None
    if reorder:
        order = _locality_order(
            columns.view(index_dtype, nnz).reshape(n_samples, k),
            np.arange(0, nnz + 1, k, dtype=index_dtype),
        )
        report("affinities: points numbered in reverse Cuthill-McKee order")
    if before_symmetrize is not None:
        before_symmetrize(order)
    # The calibration's and the start's freed blocks, before P's pages fill.
    release_free_memory()
    P = _symmetrized(values, columns, (n_samples, k), index_dtype, order, n_threads)
    calibration = (
        f"uniform over {k} neighbours"
        if affinity == "uniform"
        else f"perplexity {describe(_perplexities(affinity, perplexity))}"
    )
    report(
        f"affinities: {calibration}, {P.nnz / n_samples:.1f} non-zeros per row, "
        f"in {time.perf_counter() - start:.2f} s"
    )
    if reorder:
        return P, order
    return P


def check_affinities(A, n_columns=None):
    """Validate a precomputed affinity matrix; return it as canonical CSR.

    Parameters
    ----------
    A : {ndarray, sparse matrix} of shape (n_rows, n_columns)
        Non-negative, finite affinities (weights of a graph: larger is
        closer). Entries stored more than once are summed, as scipy does.
    n_columns : int, default=None
        The number of columns required (affinities of new points to the
        training points); ``None`` requires a square matrix, whose diagonal
        is then dropped (a point's affinity to itself has no part in t-SNE).

    Returns
    -------
    A : scipy.sparse.csr_matrix, float64
        Sorted indices, no stored zeros (and no diagonal if square).

    Raises
    ------
    ValueError
        For a matrix that is not 2-D, not square (or without ``n_columns``
        columns), negative, NaN or infinite.
    """
    if not sparse.issparse(A):
        A = np.asarray(A, dtype=np.float64)
        if A.ndim != 2:
            raise ValueError(f"An affinity matrix must be 2-D, got {A.ndim}-D.")
    A = sparse.csr_matrix(A, dtype=np.float64, copy=True)
    if n_columns is None and A.shape[0] != A.shape[1]:
        raise ValueError(
            f"A precomputed affinity matrix must be square (n_samples, "
            f"n_samples), got shape {A.shape}."
        )
    if n_columns is not None and A.shape[1] != n_columns:
        raise ValueError(
            f"Precomputed affinities to the training points must have "
            f"{n_columns} columns, got shape {A.shape}."
        )
    A.sum_duplicates()
    if not np.all(np.isfinite(A.data)):
        raise ValueError("A precomputed affinity matrix must be finite (no NaN).")
    negative = np.count_nonzero(A.data < 0)
    if negative:
        raise ValueError(
            f"A precomputed affinity matrix must be non-negative; {negative} "
            "entries are negative."
        )
    if n_columns is None:
        rows = np.repeat(np.arange(A.shape[0]), np.diff(A.indptr))
        A.data[A.indices == rows] = 0.0
    A.eliminate_zeros()
    A.sort_indices()
    return A


def _empty_rows_error(rows, what, reason=""):
    """A ``ValueError`` naming (some of) the points without affinities."""
    named = ", ".join(str(r) for r in rows[:_MAX_NAMED])
    more = (
        f" and {rows.shape[0] - _MAX_NAMED} more" if rows.shape[0] > _MAX_NAMED else ""
    )
    return ValueError(
        f"Every point needs a positive affinity to another point, but {what} "
        f"{named}{more} have none{reason}."
    )


def precomputed_joint_probabilities(A, *, n_threads=1, verbose=0, reorder=False):
    """Symmetric joint probabilities P from a precomputed affinity matrix.

    ``P = (A + A^T) / sum``, as for the affinities computed here: a
    connectivity or kNN graph (scanpy's ``connectivities``, a
    ``kneighbors_graph``) or any non-negative affinity matrix. Given a P of
    :func:`joint_probabilities`, it returns that P to rounding.

    Parameters
    ----------
    A : {ndarray, sparse matrix} of shape (n_samples, n_samples)
        Non-negative affinities; the diagonal is ignored. Every point needs
        a positive entry in its row or its column.
    n_threads : int, default=1
        Number of threads. The result does not depend on it.
    verbose : int, default=0
        Print progress when positive.
    reorder : bool, default=False
        As in :func:`joint_probabilities`.

    Returns
    -------
    P : scipy.sparse.csr_matrix of shape (n_samples, n_samples), float32
        With the contract of :func:`joint_probabilities`' P.
    order : ndarray of shape (n_samples,), intp
        Only with ``reorder``.

    Raises
    ------
    ValueError
        See :func:`check_affinities`; also for a point whose row and column
        are both empty (off the diagonal), or whose affinities are all below
        float32's range (1.2e-38) once normalised.

    Examples
    --------
    >>> import numpy as np
    >>> from fasttsne.tsne._affinity import precomputed_joint_probabilities
    >>> A = np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 3.0], [0.0, 0.0, 0.0]])
    >>> precomputed_joint_probabilities(A).toarray()
    array([[0. , 0.2, 0. ],
           [0.2, 0. , 0.3],
           [0. , 0.3, 0. ]], dtype=float32)
    """
    report = Reporter(verbose, name="fasttsne.tsne")
    A = check_affinities(A)
    n_samples = A.shape[0]
    degree = np.diff(A.indptr) + np.bincount(A.indices, minlength=n_samples)
    empty = np.flatnonzero(degree == 0)
    if empty.size:
        raise _empty_rows_error(empty, "the points (rows and columns)")
    index_dtype = np.int32 if A.nnz < np.iinfo(np.int32).max // 2 else np.intp
    if reorder:
        order = _locality_order(A.indices, A.indptr)
        A = A[order][:, order]
        A.sort_indices()
        report("affinities: points numbered in reverse Cuthill-McKee order")
    P = sparse.csr_matrix(
        symmetrize(
            A.data,
            A.indices.astype(index_dtype),
            A.indptr.astype(index_dtype),
            n_threads,
        ),
        shape=(n_samples, n_samples),
    )
    del A
    P.data /= P.data.sum()
    empty = np.flatnonzero(np.diff(_rounded(P).indptr) == 0)
    if empty.size:
        raise _empty_rows_error(
            empty,
            "the points",
            reason=": their affinities, as fractions of the total, are below "
            "float32's range (1.2e-38)",
        )
    report(
        "affinities: precomputed, symmetrised and normalised, "
        f"{P.nnz / n_samples:.1f} non-zeros per row"
    )
    if reorder:
        return P, order
    return P


def new_point_affinities(
    X_new,
    X_fit,
    perplexity,
    *,
    affinity="perplexity",
    n_neighbors=None,
    metric="euclidean",
    metric_params=None,
    n_threads=1,
    search=new_point_neighbors,
):
    """Conditional affinities of new points to the training points.

    Each new row is handled on its own: its result depends only on that row
    and ``X_fit``, bitwise, whatever batch it arrives in. New points get the
    fit's kind of affinities: perplexity-calibrated, uniform or multiscale
    over their k nearest training points (k as in the fit, at most
    ``n_fit``), or with ``affinity="precomputed"`` their given affinities to
    the training points, each row normalised.

    Parameters
    ----------
    X_new : {ndarray, sparse matrix} of shape (n_new, n_features)
        New points; with ``metric="precomputed"`` their distances to the
        training points, with ``affinity="precomputed"`` their affinities to
        them, of shape (n_new, n_fit).
    X_fit : {ndarray, sparse matrix} of shape (n_fit, n_features)
        Training points. Only its number of rows is used with
        ``metric="precomputed"`` or ``affinity="precomputed"`` (it may then
        be any (n_fit, ...) array).
    perplexity : float or sequence of float
        As in :func:`joint_probabilities`.
    affinity : {"perplexity", "uniform", "multiscale", "precomputed"}, \
default="perplexity"
        The kind of affinities of the fit.
    n_neighbors : int, default=None
        k for ``affinity="uniform"``.
    metric : str or callable, default="euclidean"
        As in :func:`joint_probabilities`.
    metric_params : dict, default=None
        Keyword arguments of the metric.
    n_threads : int, default=1
        Number of threads. The result does not depend on it.
    search : callable, default=new_point_neighbors
        The kNN search, with the signature of
        :func:`fasttsne._neighbors.new_point_neighbors` (the device's:
        ``fasttsne.gpu._knn``).

    Returns
    -------
    P_new : scipy.sparse.csr_matrix of shape (n_new, n_fit), float32
        p_{j|new} over the k nearest training points, computed in float64
        and rounded to float32; rows sum to 1 up to that rounding (not
        symmetrised), sorted indices, no stored zeros.
    match : ndarray of shape (n_new,), intp
        Smallest index of a training row equal to the new row
        (``np.array_equal``), or -1; with ``metric="precomputed"``, the
        smallest index at distance exactly 0; always -1 with
        ``affinity="precomputed"``.

    Raises
    ------
    ValueError
        With ``affinity="precomputed"``, for the matrices that
        :func:`check_affinities` refuses and for a row without a positive
        affinity.

    Examples
    --------
    >>> import numpy as np
    >>> from fasttsne.tsne._affinity import new_point_affinities
    >>> X_fit = np.random.default_rng(0).normal(size=(30, 2))
    >>> P_new, match = new_point_affinities(X_fit[[4, 7]] + [0.0, 1e-3], X_fit, 3.0)
    >>> P_new.shape, match.tolist()
    ((2, 30), [-1, -1])
    >>> new_point_affinities(X_fit[[4, 7]], X_fit, 3.0)[1].tolist()
    [4, 7]
    """
    n_fit = X_fit.shape[0]
    n_new = X_new.shape[0]
    if affinity == "precomputed":
        return _precomputed_new_point_affinities(X_new, n_fit)
    if affinity not in AFFINITIES:
        raise ValueError(f"affinity must be one of {AFFINITIES}, got {affinity!r}.")
    k = n_neighbors_of(affinity, perplexity, n_neighbors, n_fit)
    indices, distances, match = search(
        X_new,
        X_fit,
        k,
        metric=metric,
        metric_params=metric_params,
        n_threads=n_threads,
        squared=_squares_distances(metric),
    )
    if n_new == 0:
        return sparse.csr_matrix((0, n_fit), dtype=P_DTYPE), match
    conditional = _conditional(distances, affinity, perplexity, n_threads)
    P_new = sparse.csr_matrix(
        (
            conditional.ravel(),
            indices.ravel(),
            np.arange(0, n_new * k + 1, k),
        ),
        shape=(n_new, n_fit),
    )
    _rounded(P_new)
    P_new.sort_indices()
    return P_new, match


def _precomputed_new_point_affinities(A_new, n_fit):
    """Rows of given affinities to the training points, each normalised."""
    P_new = check_affinities(A_new, n_columns=n_fit)
    sums = np.asarray(P_new.sum(axis=1)).ravel()
    empty = np.flatnonzero(sums == 0)
    if empty.size:
        raise _empty_rows_error(empty, "the rows")
    # Row by row, so that a row's result does not depend on its batch.
    P_new.data /= np.repeat(sums, np.diff(P_new.indptr))
    # A row's largest value is at least 1 / n_fit: no row empties.
    _rounded(P_new)
    return P_new, np.full(P_new.shape[0], -1, dtype=np.intp)
