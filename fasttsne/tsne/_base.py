"""Shared machinery of the t-SNE estimators: parameters, fit, transform, tags.

Data flows one way: ``X -> _affinity (P) -> _initialization (Y0) ->
_optimizer (loop) -> _gradients[backend]``. The subclasses only add their
backend's knobs and say which backend they prefer.
"""

import warnings
from numbers import Integral, Real

import numpy as np
import scipy.sparse as sp
from sklearn.base import (
    BaseEstimator,
    ClassNamePrefixFeaturesOutMixin,
    TransformerMixin,
)
from sklearn.utils import check_random_state

from fasttsne._neighbors import KNOWN_METRICS, check_precomputed
from fasttsne.tsne import _affinity
from fasttsne.tsne._gradients import get_backend, resolve_device
from fasttsne.tsne._initialization import initialize
from fasttsne.tsne._layout import (
    _REORDER_MIN_SAMPLES,
    _callback_in_input_order,
    _in_input_order,
)
from fasttsne.tsne._optimizer import GradientDescent
from fasttsne._utils import _Printer
from fasttsne._validation import (
    Interval,
    StrOptions,
    _fit_context,
    check_is_fitted,
    check_n_threads,
    validate_data,
)

# Out-of-sample embedding (transform): a fixed schedule, so that a new point's
# position depends on nothing but that point and the fitted model.
_TRANSFORM_N_ITER = 100
_TRANSFORM_LEARNING_RATE = 0.1
_TRANSFORM_MAX_STEP = 1.0

_MOMENTUM_EARLY = 0.5
_MOMENTUM_MAIN = 0.8


def _check_all_identical(X, metric):
    """Raise ``ValueError`` when every sample is the same point."""
    if metric == "precomputed":
        identical = X.max() == 0
    elif sp.issparse(X):
        # Column max == column min (implicit zeros included) for every column.
        identical = (X.max(axis=0) - X.min(axis=0)).count_nonzero() == 0
    else:
        identical = not np.any(np.ptp(X, axis=0))
    if identical:
        raise ValueError(
            "All samples in X are identical: t-SNE needs at least two distinct "
            "points to embed."
        )


class _BaseTSNE(ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator):
    """Base class of the t-SNE estimators; not for direct use.

    Subclasses set ``_backend_preference`` (the gradient backends they prefer
    on each device, tried in order) and implement ``_backend_knobs`` (the
    parameters their backends take).
    """

    _parameter_constraints: dict = {
        "n_components": [Interval(Integral, 1, None, closed="left")],
        "perplexity": [Interval(Real, 0, None, closed="neither")],
        "early_exaggeration": [Interval(Real, 1, None, closed="left")],
        "early_exaggeration_iter": [Interval(Integral, 0, None, closed="left")],
        "exaggeration": [Interval(Real, 0, None, closed="neither"), None],
        "learning_rate": [
            StrOptions({"auto"}),
            Interval(Real, 0, None, closed="neither"),
        ],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "n_iter_without_progress": [Interval(Integral, -1, None, closed="left")],
        "min_grad_norm": [Interval(Real, 0, None, closed="left")],
        "metric": [
            StrOptions(KNOWN_METRICS | {"precomputed"}),
            callable,
        ],
        "metric_params": [dict, None],
        "init": [StrOptions({"pca", "random", "spectral"}), np.ndarray],
        "dof": [Interval(Real, 0, None, closed="neither")],
        "neighbors": [StrOptions({"auto", "exact", "approx"})],
        "device": [StrOptions({"auto", "cpu", "cuda"})],
        "callbacks": [list, callable, None],
        "callbacks_every_iters": [Interval(Integral, 1, None, closed="left")],
        "verbose": ["verbose"],
        "random_state": ["random_state"],
        "n_jobs": [Integral, None],
    }

    _backend_preference: dict = {"cpu": (), "cuda": ()}

    def __init__(
        self,
        n_components=2,
        *,
        perplexity=30.0,
        early_exaggeration=12.0,
        early_exaggeration_iter=250,
        exaggeration=None,
        learning_rate="auto",
        max_iter=750,
        n_iter_without_progress=300,
        min_grad_norm=1e-7,
        metric="euclidean",
        metric_params=None,
        init="pca",
        dof=1.0,
        neighbors="auto",
        device="auto",
        callbacks=None,
        callbacks_every_iters=50,
        verbose=0,
        random_state=None,
        n_jobs=None,
    ):
        self.n_components = n_components
        self.perplexity = perplexity
        self.early_exaggeration = early_exaggeration
        self.early_exaggeration_iter = early_exaggeration_iter
        self.exaggeration = exaggeration
        self.learning_rate = learning_rate
        self.max_iter = max_iter
        self.n_iter_without_progress = n_iter_without_progress
        self.min_grad_norm = min_grad_norm
        self.metric = metric
        self.metric_params = metric_params
        self.init = init
        self.dof = dof
        self.neighbors = neighbors
        self.device = device
        self.callbacks = callbacks
        self.callbacks_every_iters = callbacks_every_iters
        self.verbose = verbose
        self.random_state = random_state
        self.n_jobs = n_jobs

    # ------------------------------------------------------------------ hooks
    def _backend_knobs(self):
        """The estimator's parameters that its gradient backends take."""
        return {}

    # ------------------------------------------------------------- resolution
    def _backend(self, name, n_threads):
        """An unprepared gradient backend: ``name``, or ``"auto"`` on ``device_``."""
        return get_backend(
            name,
            preference=self._backend_preference.get(self.device_, ()),
            device=self.device_,
            n_components=self.n_components,
            n_threads=n_threads,
            **self._backend_knobs(),
        )

    def _resolve_perplexity(self, n_samples):
        """Clip the perplexity to what ``n_samples`` allows, with a warning."""
        limit = (n_samples - 1) / 3.0
        if self.perplexity > limit:
            warnings.warn(
                f"perplexity={self.perplexity} is too large for n_samples={n_samples};"
                f" using {limit:.4g} = (n_samples - 1) / 3 instead.",
                UserWarning,
                stacklevel=3,
            )
            return limit
        return float(self.perplexity)

    def _validate_X(self, X, *, reset):
        """``validate_data`` with the t-SNE input contract."""
        precomputed = self.metric == "precomputed"
        return validate_data(
            self,
            X,
            reset=reset,
            accept_sparse=["csr"],
            dtype=[np.float64, np.float32],
            ensure_min_samples=2 if reset else 1,
            ensure_all_finite=True,
            order="C" if not precomputed else None,
        )

    # -------------------------------------------------------------------- fit
    def fit(self, X, y=None):
        """Fit the embedding of ``X``.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Training data; a square distance matrix when
            ``metric="precomputed"``.
        y : None
            Ignored.

        Returns
        -------
        self : object
            The fitted estimator.
        """
        self.fit_transform(X, y)
        return self

    @_fit_context(prefer_skip_nested_validation=True)
    def fit_transform(self, X, y=None):  # pylint: disable=arguments-differ
        """Fit the embedding of ``X`` and return it.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Training data; a square distance matrix when
            ``metric="precomputed"``.
        y : None
            Ignored.

        Returns
        -------
        embedding : ndarray of shape (n_samples, n_components)
            The embedding, in the dtype of ``X`` (float32 or float64).
        """
        del y
        X = self._validate_X(X, reset=True)
        n_samples = X.shape[0]
        if self.metric == "precomputed":
            check_precomputed(X)
            if isinstance(self.init, str) and self.init == "pca":
                raise ValueError(
                    'init="pca" cannot be used with metric="precomputed"; use '
                    'init="spectral" or init="random".'
                )
        _check_all_identical(X, self.metric)
        callbacks = self._callbacks()
        dtype = X.dtype
        printer = _Printer(self.verbose)

        rng = check_random_state(self.random_state)
        n_threads = check_n_threads(self.n_jobs)
        self.device_ = resolve_device(
            self.device,
            preference=self._backend_preference,
            n_components=self.n_components,
        )
        backend = self._backend("auto", n_threads)
        self.backend_ = backend.name
        self.perplexity_ = self._resolve_perplexity(n_samples)
        self.learning_rate_ = (
            max(n_samples / self.early_exaggeration, 50.0)
            if self.learning_rate == "auto"
            else float(self.learning_rate)
        )

        # The optimisation runs on the points numbered in ``order`` (a
        # cache-friendly order of the kNN graph); results are given back in
        # the input's order.
        reorder = n_samples >= _REORDER_MIN_SAMPLES
        result = _affinity.joint_probabilities(
            X,
            self.perplexity_,
            metric=self.metric,
            metric_params=self.metric_params,
            neighbors=self.neighbors,
            n_threads=n_threads,
            random_state=rng,
            verbose=self.verbose,
            reorder=reorder,
        )
        P, order = result if reorder else (result, None)
        printer(
            f"Affinities of {n_samples} points: {P.nnz / n_samples:.1f} non-zeros "
            "per row after symmetrisation."
        )
        Y = initialize(
            self.init,
            X=X,
            P=P,
            order=order,
            n_components=self.n_components,
            rng=rng,
            dtype=dtype,
        )
        P = P.astype(dtype, copy=False)
        if order is not None:
            callbacks = [_callback_in_input_order(cb, order) for cb in callbacks]
        kl, n_iter = self._optimize(Y, P, backend, printer, callbacks)

        if order is not None:
            Y = _in_input_order(Y, order)
        self.embedding_ = Y
        self.kl_divergence_ = kl
        self.n_iter_ = n_iter
        # transform needs the training rows; precomputed distances need only
        # their count (new points arrive as distances to the training points).
        self._fit_X = X if self.metric != "precomputed" else np.empty((n_samples, 0))
        self._n_features_out = self.n_components
        return Y

    def _optimize(self, Y, P, backend, printer, callbacks):
        """Early-exaggeration phase, then the main phase; returns ``(kl, n_iter)``.

        ``backend`` is prepared with ``P`` once, here. Like scikit-learn, the
        no-progress rule is off during early exaggeration, and a stop by
        ``min_grad_norm`` in the early phase still runs the main phase (its
        embedding would otherwise stay exaggerated); only a callback ends the
        whole optimisation.
        """
        backend.prepare(P)
        dof = float(self.dof)
        optimizer = GradientDescent(
            self.learning_rate_,
            n_iter_check=self.callbacks_every_iters,
            callbacks=callbacks,
            printer=printer if self.verbose else None,
        )
        no_progress = (
            None if self.n_iter_without_progress < 0 else self.n_iter_without_progress
        )
        n_early = min(self.early_exaggeration_iter, self.max_iter)
        late = 1.0 if self.exaggeration is None else float(self.exaggeration)
        phases = [
            (n_early, float(self.early_exaggeration), _MOMENTUM_EARLY, None),
            (self.max_iter - n_early, late, _MOMENTUM_MAIN, no_progress),
        ]
        kl, n_done = None, 0
        for n_iter, exaggeration, momentum, phase_no_progress in phases:
            if n_iter == 0:
                continue

            def objective(Y_now, compute_error, exaggeration=exaggeration):
                return backend(
                    Y_now,
                    exaggeration=exaggeration,
                    dof=dof,
                    compute_error=compute_error,
                )

            kl, n_phase, reason = optimizer.run(
                Y,
                objective,
                n_iter=n_iter,
                momentum=momentum,
                start_iter=n_done,
                n_iter_without_progress=phase_no_progress,
                min_grad_norm=self.min_grad_norm,
            )
            n_done += n_phase
            if reason == "callback":
                break
        return float(kl), n_done

    def _callbacks(self):
        """The ``callbacks`` parameter as a list, each entry checked callable."""
        callbacks = self.callbacks
        if callbacks is None:
            return []
        callbacks = [callbacks] if callable(callbacks) else list(callbacks)
        for callback in callbacks:
            if not callable(callback):
                raise TypeError(
                    f"callbacks must be callables or a list of callables; got "
                    f"{callback!r}."
                )
        return callbacks

    # -------------------------------------------------------------- transform
    def transform(self, X):
        """Place new points into the fitted embedding.

        Each row is handled on its own: a row identical to a training row gets
        that row's ``embedding_`` entry; any other row gets affinities to its
        nearest training points, starts at their affinity-weighted mean and is
        optimised for a fixed number of steps against the frozen embedding
        (attraction to its neighbours, repulsion from all training points,
        normalised per point). The result does not depend on the other rows.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_queries, n_features)
            New data; distances to the training points when
            ``metric="precomputed"``.

        Returns
        -------
        embedding : ndarray of shape (n_queries, n_components)
            Positions in the fitted embedding.
        """
        check_is_fitted(self)
        X = self._validate_X(X, reset=False)
        n_threads = check_n_threads(self.n_jobs)
        reference = self.embedding_
        P_new, match = _affinity.new_point_affinities(
            X,
            self._fit_X,
            self.perplexity_,
            metric=self.metric,
            metric_params=self.metric_params,
            n_threads=n_threads,
        )
        dtype = reference.dtype
        P_new = P_new.astype(dtype)
        Y = np.ascontiguousarray(P_new @ reference, dtype=dtype)
        todo = np.flatnonzero(match < 0)
        if todo.size:
            Y[todo] = self._optimize_new_points(
                np.ascontiguousarray(Y[todo]), P_new[todo], n_threads
            )
        matched = match >= 0
        Y[matched] = reference[match[matched]]
        return Y

    def _optimize_new_points(self, Y, P_new, n_threads):
        """Optimise new points against the frozen ``embedding_`` (no centring).

        The fitted backend (``backend_`` with the current knobs) runs in
        reference mode: each row's gradient depends on nothing but that row
        and ``embedding_``.
        """
        backend = self._backend(self.backend_, n_threads)
        backend.prepare(P_new, reference=self.embedding_)
        dof = float(self.dof)
        optimizer = GradientDescent(
            _TRANSFORM_LEARNING_RATE, max_step_norm=_TRANSFORM_MAX_STEP, center=False
        )
        for it in range(_TRANSFORM_N_ITER):
            momentum = (
                _MOMENTUM_EARLY if it < _TRANSFORM_N_ITER // 4 else _MOMENTUM_MAIN
            )
            _, grad = backend(Y, exaggeration=1.0, dof=dof, compute_error=False)
            optimizer.step(Y, grad, momentum)
        return Y

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        tags.input_tags.pairwise = self.metric == "precomputed"
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags


_COMMON_PARAMETERS_DOC = """n_components : int, default=2
        Dimension of the embedding: 1, 2 (the usual) or 3.

    perplexity : float, default=30.0
        Effective number of neighbours of each point; each point's Gaussian
        bandwidth is calibrated so that its conditional distribution has this
        perplexity over its ``min(n_samples - 1, 3 * perplexity)`` nearest
        neighbours. Values larger than ``(n_samples - 1) / 3`` are clipped to it
        with a warning (see ``perplexity_``).

    early_exaggeration : float, default=12.0
        Factor multiplying the attractive forces during the first
        ``early_exaggeration_iter`` iterations, so that clusters form early.

    early_exaggeration_iter : int, default=250
        Length of the early-exaggeration phase (part of ``max_iter``).

    exaggeration : float, default=None
        Exaggeration of the main phase; None means 1 (standard t-SNE). Values
        around 2-4 emphasise global structure on large data sets.

    learning_rate : float or "auto", default="auto"
        Step size, applied to the exact KL gradient (the factor 4 included, as
        in scikit-learn). ``"auto"`` is ``max(n_samples / early_exaggeration,
        50)``, the number Belkina et al. (2019) and openTSNE use; scikit-learn's
        "auto" is 4x smaller, ``max(n_samples / early_exaggeration / 4, 50)``.
        So ``TSNE(learning_rate=L / 4)`` in scikit-learn takes the same steps as
        ``learning_rate=L`` here, and openTSNE, whose gradient omits the factor
        4, takes them with ``learning_rate=4 * L``.

    max_iter : int, default=750
        Total number of iterations, early exaggeration included.

    n_iter_without_progress : int, default=300
        Stop when the KL divergence has not improved for this many iterations
        (checked every ``callbacks_every_iters`` iterations); -1 disables it.

    min_grad_norm : float, default=1e-7
        Stop when the gradient norm falls to this value.

    metric : str or callable, default="euclidean"
        Distance used for the nearest neighbours: any metric of
        :class:`sklearn.neighbors.NearestNeighbors`, or ``"precomputed"`` (then
        ``X`` is a square distance matrix and ``transform`` takes distances to
        the training points). Euclidean distances are squared before the
        perplexity calibration, other metrics are used as they are
        (scikit-learn's convention).

    metric_params : dict, default=None
        Extra keyword arguments of the metric.

    init : {"pca", "spectral", "random"} or ndarray of shape \
(n_samples, n_components), default="pca"
        Initial embedding, rescaled so that its first axis has standard
        deviation 1e-4. ``"pca"`` needs features (not ``"precomputed"``).

    dof : float, default=1.0
        Degrees of freedom of the heavy-tailed output kernel
        ``(1 + d^2 / dof)^(-dof)``; 1 is the Cauchy kernel of standard t-SNE,
        smaller values separate clusters further (Kobak et al. 2019).

    neighbors : {"auto", "exact", "approx"}, default="auto"
        Nearest-neighbour search: exact (blocked BLAS), approximate, or exact
        below a measured size and approximate above.

    device : {"auto", "cpu", "cuda"}, default="auto"
        Where the gradient runs; ``"auto"`` picks the CPU unless a CUDA backend
        is installed and a device is visible (see ``device_``).

    callbacks : callable or list of callable, default=None
        Called as ``callback(iteration, kl_divergence, embedding)`` every
        ``callbacks_every_iters`` iterations; returning True stops the fit.

    callbacks_every_iters : int, default=50
        How often the KL divergence is evaluated, callbacks are called and the
        stopping rules are checked.

    verbose : int, default=0
        Print progress lines (iteration, KL divergence, elapsed time) to stderr.

    random_state : int, RandomState instance or None, default=None
        Seed of the initialisation and of the approximate neighbour search. A
        fixed value gives bitwise-identical results, whatever ``n_jobs``.

    n_jobs : int, default=None
        Threads for the neighbour search, the affinities and the gradient;
        None means 1 and -1 all cores. Results do not depend on it."""

_COMMON_ATTRIBUTES_DOC = """embedding_ : ndarray of shape (n_samples, n_components)
        The fitted embedding, in the dtype of the training data.

    kl_divergence_ : float
        KL divergence of the embedding after the last iteration.

    n_iter_ : int
        Number of iterations run.

    learning_rate_ : float
        The learning rate used (``"auto"`` resolved).

    perplexity_ : float
        The perplexity used (clipped to ``(n_samples - 1) / 3`` if needed).

    backend_ : str
        Name of the gradient backend that ran.

    device_ : str
        The device the gradient ran on.

    n_features_in_ : int
        Number of features seen during fit.

    feature_names_in_ : ndarray of shape (n_features_in_,)
        Names of features seen during fit. Defined only when ``X`` has feature
        names that are all strings."""


def _fill_doc(cls):
    """Insert the shared parameter and attribute sections into a class docstring."""
    cls.__doc__ = cls.__doc__.replace(
        "{common_parameters}", _COMMON_PARAMETERS_DOC
    ).replace("{common_attributes}", _COMMON_ATTRIBUTES_DOC)
    return cls
