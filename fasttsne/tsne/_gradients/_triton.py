"""t-SNE gradient backends on a CUDA device, through Triton kernels.

Two backends share one body, as the CPU's Barnes-Hut and FFT backends do:
the attraction is summed exactly over the stored entries of P, and they
differ in the repulsion of a fit:

* :class:`TritonGradient` (``"triton"``, what ``BarnesHutTSNE(device="cuda")``
  runs) sums it exactly, flash-attention style, in O(N^2) work and O(N)
  memory: a GPU does the exact sums faster than a tree walk, so ``angle`` is
  not used;
* :class:`TritonFFTGradient` (``"triton_fft"``, ``FFTInterpTSNE``) interpolates
  it on FIt-SNE's grid, the CPU's geometry (``_interpolation``) and FFT
  lengths (``linalg._circulant``), spread and interpolated by kernels and
  convolved by ``torch.fft``.

In reference mode (``transform``) both sum the repulsion of the new points
from the frozen embedding exactly: ``n_new x n_reference`` pairs per step.

:meth:`prepare` moves P (and the frozen embedding) to the device once;
a call takes and returns torch tensors on the device (the optimisation loop
keeps the embedding there), or NumPy arrays, which it moves in and out (the
oracle tests). torch, triton and the kernels are imported in
``is_usable_for`` and ``prepare`` only. The kernels and their launchers are
in :mod:`fasttsne.gpu`; ``docs/gpu.rst`` says what runs where.
"""

import math

import numpy as np

from fasttsne import gpu
from fasttsne.tsne._gradients._interpolation import (
    GRID_KNOB_DEFAULTS,
    GRID_KNOB_CONSTRAINTS,
    InterpolationGrid,
    check_grid_knobs,
)
from fasttsne.tsne._gradients._sparse import (
    _as_embedding,
    _check_n_threads,
    _check_prepare_inputs,
    _diverged_error,
    row_sums,
)


class TritonGradient:
    """t-SNE gradient on a CUDA device, with the repulsion summed exactly.

    Fit: ``4 (a sum_j p_ij (y_i - y_j) / t_ij - (1 / Z) sum_j (w_ij / t_ij)
    (y_i - y_j))``; reference mode: the same per new point with its own
    normaliser ``sum_j w_ij`` over the frozen points (see
    :class:`~fasttsne.tsne._gradients._sparse.SparseAttractionBackend`).
    Every sum is owned by one row of one kernel program and ``Z`` and the KL
    divergence are reduced in a fixed order, so repeated calls (and fits) on
    one device give the same bits.

    Parameters
    ----------
    n_threads : int, default=1
        Accepted for the common protocol; the device decides its parallelism.
    """

    name = "triton"
    aliases = ("gpu", "triton_exact")
    knobs = ()

    def __init__(self, *, n_threads=1):
        self.n_threads = _check_n_threads(n_threads)
        self._torch = None
        self._launchers = None
        self._shape = None
        self._csr = None
        self._data = None
        self._reference = {}
        self._total_p = 0.0
        self._row_sums = None

    @classmethod
    def is_usable_for(cls, *, n_components, device):
        """Usable on a visible CUDA device for 1 to 3 components."""
        return device == "cuda" and 1 <= n_components <= 3 and gpu.is_available()

    # ---------------------------------------------------------------- prepare
    def prepare(self, P, reference=None):
        """Move ``P`` (and the frozen ``reference``) to the device.

        Parameters
        ----------
        P : sparse matrix of shape (n_samples, n_samples) or (n_samples, n_reference)
            Symmetric joint affinities summing to 1 (fit), or the conditional
            affinities of new points to the reference points. P is never
            modified.
        reference : ndarray of shape (n_reference, n_components), default=None
            The frozen embedding (``transform``); None for a fit.

        Returns
        -------
        self : object
            The prepared backend.
        """
        P, reference = _check_prepare_inputs(P, reference)
        self._torch, _ = gpu.require()
        from fasttsne.gpu import _launchers

        self._launchers = _launchers
        fits_32 = max(P.nnz, P.shape[1]) < np.iinfo(np.int32).max
        index_dtype = np.int32 if fits_32 else np.int64
        self._shape = P.shape
        self._csr = (
            _launchers.to_device(P.indptr, dtype=index_dtype),
            _launchers.to_device(P.indices, dtype=index_dtype),
        )
        data = P.data if P.data.dtype in (np.float32, np.float64) else P.data * 1.0
        # Kept as given: the kernel reads the values in the points' dtype.
        self._data = _launchers.to_device(data)
        self._total_p = float(np.sum(P.data, dtype=np.float64))
        self._reference = {}
        self._row_sums = None
        if reference is not None:
            device_reference = _launchers.to_device(reference)
            self._reference = {device_reference.dtype: device_reference}
            self._row_sums = _launchers.to_device(
                row_sums(P.indptr, P.data.astype(np.float64))
            )
        return self

    def _as(self, store, dtype):
        """The device array of ``store`` in ``dtype`` (converted once, then kept)."""
        if dtype not in store:
            store[dtype] = next(iter(store.values())).to(dtype)
        return store[dtype]

    # ----------------------------------------------------------- transfers
    def to_device(self, Y):
        """``Y`` as a tensor on the backend's device (the optimisation loop's)."""
        return self._launchers.to_device(_as_embedding(Y, "The embedding"))

    def to_host(self, Y):
        """A NumPy copy of a device embedding."""
        return self._launchers.to_numpy(Y)

    # ------------------------------------------------------------------ call
    def __call__(self, Y, *, exaggeration, dof, compute_error):
        """Return ``(kl or None, gradient)``, the gradient where Y lives.

        Parameters
        ----------
        Y : torch.Tensor or ndarray of shape (n_samples, n_components)
            The embedding (fit) or the new points (reference mode): a float32
            or float64 tensor on the device, or an array (moved there and
            back).
        exaggeration : float
            Factor ``a`` on the attraction; P itself is never modified.
        dof : float
            Degrees of freedom of the heavy-tailed kernel.
        compute_error : bool
            Whether to return the KL divergence (of the unexaggerated P); a
            device embedding is checked finite at these calls only, where the
            KL synchronises with the device anyway.

        Returns
        -------
        kl : float or None
            As :class:`~fasttsne.tsne._gradients._sparse.SparseAttractionBackend`.
        grad : torch.Tensor or ndarray of shape (n_samples, n_components)
            In Y's dtype, a tensor for a tensor and an array for an array.
        """
        if self._csr is None:
            raise RuntimeError(f"Call {type(self).__name__}.prepare(P) first.")
        on_host = not isinstance(Y, self._torch.Tensor)
        if on_host:
            Y = self.to_device(Y)
        elif Y.ndim != 2 or Y.dtype not in (self._torch.float32, self._torch.float64):
            raise ValueError(
                "The embedding must be a 2-D float32 or float64 tensor, got "
                f"{tuple(Y.shape)} {Y.dtype}."
            )
        if Y.shape[0] != self._shape[0]:
            raise ValueError(f"P has shape {self._shape}, but Y has {Y.shape[0]} rows.")
        if self._reference:
            kl, grad = self._reference_gradient(Y, exaggeration, dof, compute_error)
        else:
            kl, grad = self._fit_gradient(Y, exaggeration, dof, compute_error)
        if kl is not None and not (
            math.isfinite(kl) and bool(self._torch.isfinite(Y).all())
        ):
            raise _diverged_error("The embedding")
        return kl, (self.to_host(grad) if on_host else grad)

    def _repulsion(self, Y, dof):
        """``(sum_j (w_ij / t_ij) (y_i - y_j), Z)`` of a fit, Z a float64 tensor."""
        launchers = self._launchers
        force, sum_w = launchers.exact_repulsion(Y, dof=dof)
        return force, launchers.ordered_sum(sum_w)

    def _fit_gradient(self, Y, exaggeration, dof, compute_error):
        launchers = self._launchers
        csr = self._csr + (self._data,)
        attraction, kl_rows = launchers.attraction(
            csr,
            Y,
            exaggeration=exaggeration,
            dof=dof,
            compute_error=compute_error,
        )
        repulsion, Z = self._repulsion(Y, dof)
        # Z = 0 only without pairs (one point, or rounding of a lone pair).
        scale = self._torch.where(Z > 0, 4.0 / Z, 0.0).to(Y.dtype)
        grad = repulsion * -scale
        grad += attraction * 4.0
        kl = None
        if compute_error:
            kl = float(launchers.ordered_sum(kl_rows))
            total = float(Z)
            if total > 0:
                kl += self._total_p * math.log(total)
        return kl, grad

    def _reference_gradient(self, Y, exaggeration, dof, compute_error):
        launchers = self._launchers
        reference = self._as(self._reference, Y.dtype)
        if Y.shape[1] != reference.shape[1]:
            raise ValueError(
                f"Y has {Y.shape[1]} columns, the reference {reference.shape[1]}."
            )
        csr = self._csr + (self._data,)
        attraction, kl_rows = launchers.attraction(
            csr,
            Y,
            reference,
            exaggeration=exaggeration,
            dof=dof,
            compute_error=compute_error,
        )
        repulsion, sum_w = launchers.exact_repulsion(Y, reference, dof=dof)
        grad = attraction - repulsion / sum_w[:, None]
        grad *= 4.0
        kl = None
        if compute_error:
            log_terms = self._row_sums * self._torch.log(sum_w.to(self._torch.float64))
            kl = float(launchers.ordered_sum(kl_rows)) + float(
                launchers.ordered_sum(log_terms)
            )
        return kl, grad


class TritonFFTGradient(TritonGradient):
    """t-SNE gradient on a CUDA device, with the repulsion of a fit on a grid.

    The grid is the CPU's (:class:`~fasttsne.tsne._gradients._fft.FFTGradient`
    documents the knobs): the same geometry from the embedding's bounding
    box, the same FFT lengths, and the same charges, self-interaction removal
    and ``Z``; the grid computes in float64 whatever the embedding's dtype.
    Unlike the CPU backend it uses the grid at every size (there is no
    direct-sum threshold), and reference mode sums exactly.

    Parameters
    ----------
    n_interpolation_points : int, default=3
        Equispaced Lagrange nodes per box and axis.
    min_num_intervals : int, default=50
        Fewest boxes per axis.
    ints_in_interval : float, default=1.0
        Target box width in embedding units.
    max_num_intervals : int, default=DEFAULT_MAX_NUM_INTERVALS
        Most boxes per axis of a 2-D grid; 0 for no cap.
    n_threads : int, default=1
        Accepted for the common protocol.
    """

    name = "triton_fft"
    aliases = ("gpu_fft",)
    knobs = tuple(GRID_KNOB_CONSTRAINTS)

    def __init__(
        self,
        *,
        n_interpolation_points=GRID_KNOB_DEFAULTS["n_interpolation_points"],
        min_num_intervals=GRID_KNOB_DEFAULTS["min_num_intervals"],
        ints_in_interval=GRID_KNOB_DEFAULTS["ints_in_interval"],
        max_num_intervals=GRID_KNOB_DEFAULTS["max_num_intervals"],
        n_threads=1,
    ):
        super().__init__(n_threads=n_threads)
        check_grid_knobs(
            n_interpolation_points,
            min_num_intervals,
            ints_in_interval,
            max_num_intervals,
            caller=type(self).__name__,
        )
        self.n_interpolation_points = n_interpolation_points
        self.min_num_intervals = min_num_intervals
        self.ints_in_interval = ints_in_interval
        self.max_num_intervals = max_num_intervals

    @classmethod
    def is_usable_for(cls, *, n_components, device):
        """Usable on a visible CUDA device for 1-D and 2-D embeddings."""
        return device == "cuda" and n_components in (1, 2) and gpu.is_available()

    def _repulsion(self, Y, dof):
        launchers = self._launchers
        # The grid's geometry needs the bounding box on the host: one
        # synchronisation per call, which also catches a diverged embedding.
        lo, hi = launchers.bounding_box(Y)
        if not np.isfinite([*lo, *hi]).all():
            raise _diverged_error("The embedding")
        grid = InterpolationGrid.covering(
            lo, hi, **{knob: getattr(self, knob) for knob in self.knobs}
        )
        return launchers.grid_repulsion(Y, dof=dof, grid=grid)
