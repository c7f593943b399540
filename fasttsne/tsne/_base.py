"""Shared machinery of the t-SNE estimators: parameters, fit, transform, tags.

Data flows one way: ``X -> _affinity (P) -> _initialization (Y0) ->
_optimizer (loop) -> _gradients[backend]``. The subclasses only add their
backend's knobs and say which backend they prefer.

The module is one piece (past the usual ~700 lines) because most of it is
the shared numpydoc of both estimators' parameters and attributes, filled
into each subclass's docstring.
"""

import hashlib
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

from fasttsne._memory import release_free_memory
from fasttsne._neighbors import KNOWN_METRICS, check_precomputed
from fasttsne._neighbors._common import max_abs, rescaling_exponent
from fasttsne.tsne import _affinity
from fasttsne.tsne._affinity import AFFINITIES
from fasttsne.tsne._gradients import get_backend, resolve_device
from fasttsne.tsne._initialization import initialize
from fasttsne.tsne._layout import (
    _REORDER_MIN_SAMPLES,
    _callback_in_input_order,
    _in_input_order,
)
from fasttsne.tsne._optimizer import GradientDescent
from fasttsne._progress import FitProgress
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
# The range of dof in which the kernel can be evaluated faithfully (see the
# dof entry of the docstring).
_MIN_DOF = 1e-3
_MAX_DOF = 1e6
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


# Metrics whose nearest neighbours and t-SNE affinities do not change when
# the data are multiplied by a constant (homogeneous distances, angles,
# boolean patterns): every known one but the spherical and user-given ones.
_SCALE_FREE_METRICS = (KNOWN_METRICS | {"precomputed"}) - {"haversine", "pyfunc"}


def _input_exponent(X, metric, affinity):
    """The power of two by which a fit scales ``X`` (0: none; see ``_rescaled``).

    t-SNE's affinities do not depend on the scale of the data for the metrics
    of ``_SCALE_FREE_METRICS`` (the bandwidths are calibrated, or the kNN
    taken as they are) and precomputed affinities are normalised, but their
    squared distances underflow to 0 below about 1e-77 (float64) and overflow
    above about 1e77: such data are brought to max |x| ~ 1 first, by an exact
    power of two. A callable metric gets the data as given.
    """
    if affinity != "precomputed" and (
        callable(metric) or metric not in _SCALE_FREE_METRICS
    ):
        return 0
    return rescaling_exponent(max_abs(X), X.dtype)


def _rescaled(X, exponent):
    """``X * 2 ** exponent`` (a copy when ``exponent`` is not 0)."""
    if exponent == 0:
        return X
    if sp.issparse(X):
        X = X.copy()
        X.data = np.ldexp(X.data, exponent)
        return X
    return np.ldexp(X, exponent)


def _data_digest(X):
    """A digest of the validated input's type, shape and values.

    A warm start compares it with the previous fit's, so that it continues
    only on the same data (including a matrix changed in place).
    """
    sha = hashlib.blake2b(digest_size=16)
    sha.update(f"{type(X).__name__}{X.dtype.str}{X.shape}".encode())
    if sp.issparse(X):
        for array in (X.indptr, X.indices):
            sha.update(np.ascontiguousarray(array, dtype=np.int64))
        sha.update(np.ascontiguousarray(X.data))
    else:
        sha.update(np.ascontiguousarray(X))
    return sha.hexdigest()


class _BaseTSNE(ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator):
    """Base class of the t-SNE estimators; not for direct use.

    Subclasses set ``_backend_preference`` (the gradient backends they prefer
    on each device, tried in order) and implement ``_backend_knobs`` (the
    parameters their backends take).
    """

    _parameter_constraints: dict = {
        "n_components": [Interval(Integral, 1, None, closed="left")],
        "perplexity": [Interval(Real, 0, None, closed="neither"), "array-like"],
        "affinity": [StrOptions(set(AFFINITIES))],
        "n_neighbors": [Interval(Integral, 1, None, closed="left")],
        "early_exaggeration": [Interval(Real, 1, None, closed="left"), callable],
        "early_exaggeration_iter": [Interval(Integral, 0, None, closed="left")],
        "exaggeration": [Interval(Real, 0, None, closed="neither"), callable, None],
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
        "warm_start": ["boolean"],
        "dof": [Interval(Real, _MIN_DOF, _MAX_DOF, closed="both")],
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
        affinity="perplexity",
        n_neighbors=15,
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
        warm_start=False,
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
        self.affinity = affinity
        self.n_neighbors = n_neighbors
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
        self.warm_start = warm_start
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

    def _record_backend(self, backend, progress):
        """Set the fitted attributes that say what ``backend`` ran (after fit)."""

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
        """The perplexity (or perplexities) used, clipped to what n_samples allows.

        Returns a float for ``affinity="perplexity"``, a tuple of floats for
        ``"multiscale"`` and None for the kinds that use none.
        """
        if self.affinity in ("uniform", "precomputed"):
            return None
        values = np.asarray(self.perplexity, dtype=np.float64)
        if self.affinity == "perplexity" and values.ndim != 0:
            raise ValueError(
                f"perplexity must be a number with affinity='perplexity', got "
                f"{self.perplexity!r}; a list of perplexities needs "
                "affinity='multiscale'."
            )
        values = np.atleast_1d(values)
        if values.ndim != 1 or values.size == 0:
            raise ValueError(
                "perplexity must be a number or a non-empty 1-D list of numbers, "
                f"got {self.perplexity!r}."
            )
        if not np.all(np.isfinite(values) & (values > 0)):
            raise ValueError(
                f"Every perplexity must be finite and > 0, got {self.perplexity!r}."
            )
        limit = (n_samples - 1) / 3.0
        if np.any(values > limit):
            warnings.warn(
                f"perplexity={self.perplexity} is too large for n_samples="
                f"{n_samples}; using at most {limit:.4g} = (n_samples - 1) / 3 "
                "instead.",
                UserWarning,
                stacklevel=3,
            )
        clipped = tuple(float(min(value, limit)) for value in values)
        return clipped[0] if self.affinity == "perplexity" else clipped

    def _resolve_n_neighbors(self, n_samples):
        """k of the kNN search (None for precomputed affinities); warns if clipped."""
        if self.affinity == "precomputed":
            return None
        if self.affinity == "uniform" and self.n_neighbors > n_samples - 1:
            warnings.warn(
                f"n_neighbors={self.n_neighbors} is too large for n_samples="
                f"{n_samples}; using n_samples - 1 = {n_samples - 1} instead.",
                UserWarning,
                stacklevel=3,
            )
        return _affinity.n_neighbors_of(
            self.affinity, self.perplexity_, self.n_neighbors, n_samples - 1
        )

    def _schedule(self, name, start, stop):
        """Exaggeration factors (floats) of the iterations ``start .. stop - 1``.

        ``name`` is "early_exaggeration" or "exaggeration": a number (None
        means 1) or a callable ``iteration -> factor``, called once per
        iteration of this fit (0-based) and checked here, before any work.
        """
        value = getattr(self, name)
        if value is None:
            return [1.0] * (stop - start)
        if not callable(value):
            return [float(value)] * (stop - start)
        factors = []
        for iteration in range(start, stop):
            factor = value(iteration)
            if isinstance(factor, (bool, np.bool_)) or not isinstance(factor, Real):
                raise TypeError(
                    f"{name}({iteration}) must return a real number, got "
                    f"{factor!r}."
                )
            factor = float(factor)
            if not (np.isfinite(factor) and factor > 0):
                raise ValueError(
                    f"{name}({iteration}) must return a finite factor > 0, got "
                    f"{factor!r}."
                )
            factors.append(factor)
        return factors

    def _validate_X(self, X, *, reset):
        """``validate_data`` with the t-SNE input contract."""
        precomputed = "precomputed" in (self.metric, self.affinity)
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

    def _check_input_kind(self, X):
        """Checks that depend on what ``X`` holds: features, distances, affinities."""
        kind = None
        if self.affinity == "precomputed":
            if self.metric == "precomputed":
                raise ValueError(
                    'affinity="precomputed" takes affinities (larger is closer) and '
                    'metric="precomputed" takes distances: set only one of them.'
                )
            kind = 'affinity="precomputed"'
        else:
            if self.metric == "precomputed":
                check_precomputed(X)
                kind = 'metric="precomputed"'
            _check_all_identical(X, self.metric)
        if kind is not None and isinstance(self.init, str) and self.init == "pca":
            raise ValueError(
                f'init="pca" cannot be used with {kind}; use init="spectral", '
                'init="random" or an array.'
            )

    def _warm_start_embedding(self, n_samples, digest):
        """The embedding a warm start continues from, or None for a cold fit.

        A warm start continues the previous fit: the same data (compared
        by digest) and the same ``n_components``; other parameters may
        change (perplexity, affinity, exaggeration, ...).
        """
        if not self.warm_start or not hasattr(self, "embedding_"):
            return None
        previous = self.embedding_
        if previous.shape[1] != self.n_components:
            raise ValueError(
                f"warm_start=True continues an embedding of {previous.shape[1]} "
                f"components, but n_components={self.n_components}; set "
                "warm_start=False to start a new fit."
            )
        if previous.shape[0] != n_samples or digest != self._fit_digest:
            raise ValueError(
                "warm_start=True continues the previous fit on the same data, but "
                f"X differs from it ({n_samples} samples now, "
                f"{previous.shape[0]} before, or other values). To start a fit "
                "on other data of the same points from that embedding, pass "
                "init=embedding_ and early_exaggeration_iter=0 with "
                "warm_start=False."
            )
        return previous

    # -------------------------------------------------------------------- fit
    def fit(self, X, y=None):
        """Fit the embedding of ``X``.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features) or \
(n_samples, n_samples)
            Training data; a square distance matrix when
            ``metric="precomputed"``, a square affinity matrix when
            ``affinity="precomputed"``.
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
        X : {array-like, sparse matrix} of shape (n_samples, n_features) or \
(n_samples, n_samples)
            Training data; a square distance matrix when
            ``metric="precomputed"``, a square affinity matrix when
            ``affinity="precomputed"``.
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
        self._check_input_kind(X)
        digest = _data_digest(X)
        exponent = _input_exponent(X, self.metric, self.affinity)
        X = _rescaled(X, exponent)
        warm = self._warm_start_embedding(n_samples, digest)
        callbacks = self._callbacks()
        dtype = X.dtype
        progress = FitProgress(self.verbose)

        # Every schedule is evaluated (and checked) before any work.
        n_early = min(self.early_exaggeration_iter, self.max_iter)
        early = self._schedule("early_exaggeration", 0, n_early)
        if warm is not None:
            n_early = 0  # a warm start continues in the main phase
        main = self._schedule("exaggeration", n_early, self.max_iter)

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
        self.n_neighbors_ = self._resolve_n_neighbors(n_samples)
        if self.learning_rate != "auto":
            self.learning_rate_ = float(self.learning_rate)
        elif callable(self.early_exaggeration):
            # The largest factor of the phase that runs; without one (no early
            # phase, or a warm start) the factor at iteration 0, so that a
            # constant schedule gives the constant's learning rate.
            factors = early[:n_early] or self._schedule("early_exaggeration", 0, 1)
            self.learning_rate_ = max(n_samples / max(factors), 50.0)
        else:
            self.learning_rate_ = max(n_samples / self.early_exaggeration, 50.0)
        progress.parameters(self, X, n_threads, n_early=n_early)

        init = self.init if warm is None else warm
        starts = []

        def build_start(order, P=None):
            starts.append(
                initialize(
                    init,
                    X=X,
                    P=P,
                    order=order,
                    n_components=self.n_components,
                    rng=rng,
                    dtype=dtype,
                )
            )

        # Unless it needs P, the start is built between the kNN search and the
        # forming of P, when the fewest bytes are in use: a PCA's centred copy
        # of X then never sits beside P (docs/affinities.rst).
        needs_affinities = isinstance(init, str) and init == "spectral"
        P, order = self._joint_probabilities(
            X,
            n_threads,
            rng,
            before_symmetrize=None if needs_affinities else build_start,
        )
        if not starts:
            build_start(order, P)
        Y = starts[0]
        if order is not None:
            callbacks = [_callback_in_input_order(cb, order) for cb in callbacks]
        phases = [
            (early[:n_early], _MOMENTUM_EARLY, None),
            (main, _MOMENTUM_MAIN, self.n_iter_without_progress),
        ]
        try:
            kl, n_iter = self._optimize(Y, P, backend, progress, callbacks, phases)
        finally:
            progress.close()

        if order is not None:
            Y = _in_input_order(Y, order)
        self.embedding_ = Y
        self.kl_divergence_ = kl
        self.n_iter_ = n_iter
        self._record_backend(backend, progress)
        # transform needs the training rows; precomputed distances or
        # affinities need only their count (new points arrive as distances or
        # affinities to the training points).
        precomputed = "precomputed" in (self.metric, self.affinity)
        self._fit_X = X if not precomputed else np.empty((n_samples, 0))
        self._fit_digest = digest
        self._input_exponent = exponent
        self._n_features_out = self.n_components
        progress.summary(self, n_samples)
        return Y

    def _joint_probabilities(self, X, n_threads, rng, before_symmetrize=None):
        """P of the fit and the numbering of its points (None: the input's).

        The optimisation runs on the points numbered in ``order`` (a
        cache-friendly order of the affinity graph) from
        ``_REORDER_MIN_SAMPLES`` points on; results are given back in the
        input's order. ``before_symmetrize(order)`` is called before P is
        formed from the kNN (see ``joint_probabilities``); not at all with
        precomputed affinities.
        """
        reorder = X.shape[0] >= _REORDER_MIN_SAMPLES
        if self.affinity == "precomputed":
            result = _affinity.precomputed_joint_probabilities(
                X, n_threads=n_threads, verbose=self.verbose, reorder=reorder
            )
        else:
            result = _affinity.joint_probabilities(
                X,
                self.perplexity_,
                affinity=self.affinity,
                n_neighbors=self.n_neighbors_,
                metric=self.metric,
                metric_params=self.metric_params,
                neighbors=self.neighbors,
                n_threads=n_threads,
                random_state=rng,
                verbose=self.verbose,
                reorder=reorder,
                before_symmetrize=before_symmetrize,
                **self._knn_search("nearest_neighbors"),
            )
        return result if reorder else (result, None)

    def _knn_search(self, name):
        """``{"search": fasttsne.gpu._knn.<name>}`` on the device, else ``{}``.

        On ``device_ == "cuda"`` the affinities' kNN search runs there
        (``fasttsne/gpu/_knn.py`` says which settings it serves).
        """
        if getattr(self, "device_", "cpu") != "cuda":
            return {}
        from fasttsne.gpu import _knn

        return {"search": getattr(_knn, name)}

    def _optimize(self, Y, P, backend, progress, callbacks, phases):
        """Run the phases on ``Y``; returns ``(kl, n_iter)``.

        ``phases`` lists ``(factors, momentum, n_iter_without_progress)``,
        one exaggeration factor per iteration of the phase. ``backend`` is
        prepared with ``P`` once, here. Like scikit-learn, the no-progress
        rule is off during early exaggeration, and a stop by
        ``min_grad_norm`` in the early phase still runs the main phase (its
        embedding would otherwise stay exaggerated); only a callback ends the
        whole optimisation.
        """
        backend.prepare(P)
        # What the affinities freed would otherwise sit under every
        # iteration's arrays (fasttsne._memory).
        release_free_memory()
        # On the device the whole loop runs on the backend's tensors, which
        # come back once at the end (DESIGN.md, section 5).
        Y_run = backend.to_device(Y) if self.device_ == "cuda" else Y
        dof = float(self.dof)
        optimizer = GradientDescent(
            self.learning_rate_,
            n_iter_check=self.callbacks_every_iters,
            callbacks=callbacks,
            progress=progress,
        )
        kl, n_done = None, 0
        for name, (factors, momentum, no_progress) in zip(
            ("early exaggeration", "main phase"), phases
        ):
            if not factors:
                continue
            progress.phase_start(name, len(factors), factors, momentum)
            # The optimiser calls the objective once per iteration, in order,
            # so the factors are consumed one per iteration; its last call
            # only evaluates the KL of the phase's final embedding (which does
            # not depend on the factor).
            factors_left = iter([*factors, factors[-1]])

            def objective(Y_now, compute_error, factors_left=factors_left):
                return backend(
                    Y_now,
                    exaggeration=next(factors_left),
                    dof=dof,
                    compute_error=compute_error,
                )

            kl, n_phase, reason = optimizer.run(
                Y_run,
                objective,
                n_iter=len(factors),
                momentum=momentum,
                start_iter=n_done,
                n_iter_without_progress=(
                    None if no_progress is None or no_progress < 0 else no_progress
                ),
                min_grad_norm=self.min_grad_norm,
            )
            n_done += n_phase
            progress.phase_end(name, n_phase, kl, reason, n_done)
            if reason == "callback":
                break
        if Y_run is not Y:
            Y[...] = backend.to_host(Y_run)
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

        New points get the fit's kind of affinities: perplexity-calibrated,
        uniform or multiscale over their nearest training points, or with
        ``affinity="precomputed"`` the given row of affinities to the
        training points (normalised to sum 1; no row is taken for a training
        row there).

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_queries, n_features) or \
(n_queries, n_samples_fit)
            New data; distances to the training points when
            ``metric="precomputed"``, affinities to them when
            ``affinity="precomputed"``.

        Returns
        -------
        embedding : ndarray of shape (n_queries, n_components)
            Positions in the fitted embedding.
        """
        check_is_fitted(self)
        # No exponent (0) on an estimator whose fitted state was set by hand
        # from another's public attributes and _fit_X.
        exponent = getattr(self, "_input_exponent", 0)
        X = _rescaled(self._validate_X(X, reset=False), exponent)
        n_threads = check_n_threads(self.n_jobs)
        reference = self.embedding_
        P_new, match = _affinity.new_point_affinities(
            X,
            self._fit_X,
            self.perplexity_,
            affinity=self.affinity,
            n_neighbors=self.n_neighbors_,
            metric=self.metric,
            metric_params=self.metric_params,
            n_threads=n_threads,
            **self._knn_search("new_point_neighbors"),
        )
        dtype = reference.dtype
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
        Y_run = backend.to_device(Y) if self.device_ == "cuda" else Y
        dof = float(self.dof)
        optimizer = GradientDescent(
            _TRANSFORM_LEARNING_RATE, max_step_norm=_TRANSFORM_MAX_STEP, center=False
        )
        for it in range(_TRANSFORM_N_ITER):
            momentum = (
                _MOMENTUM_EARLY if it < _TRANSFORM_N_ITER // 4 else _MOMENTUM_MAIN
            )
            _, grad = backend(Y_run, exaggeration=1.0, dof=dof, compute_error=False)
            optimizer.step(Y_run, grad, momentum)
        return Y_run if Y_run is Y else backend.to_host(Y_run)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        tags.input_tags.pairwise = "precomputed" in (self.metric, self.affinity)
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags


_COMMON_PARAMETERS_DOC = """n_components : int, default=2
        Dimension of the embedding: 1, 2 (the usual) or 3.

    perplexity : float or list of float, default=30.0
        Effective number of neighbours of each point; each point's Gaussian
        bandwidth is calibrated so that its conditional distribution has this
        perplexity over its ``min(n_samples - 1, 3 * perplexity)`` nearest
        neighbours. Values larger than ``(n_samples - 1) / 3`` are clipped to it
        with a warning (see ``perplexity_``). A list of perplexities with
        ``affinity="multiscale"``; unused by ``"uniform"`` and
        ``"precomputed"``.

        .. versionchanged:: 0.2
           A list of perplexities for ``affinity="multiscale"``.

    affinity : {"perplexity", "uniform", "multiscale", "precomputed"}, \
default="perplexity"
        How the input affinities P are built (docs/affinities.rst). For each
        point, a distribution over its k nearest neighbours: ``"perplexity"``
        Gaussian weights calibrated to ``perplexity`` (k = 3 perplexity);
        ``"uniform"`` equal weights over ``n_neighbors`` neighbours (the kNN
        graph of UMAP-like and scanpy workflows; Böhm et al. 2022);
        ``"multiscale"`` the mean of the Gaussian weights at each perplexity
        of a list (k = 3 max(perplexity); openTSNE's ``Multiscale``, Lee et
        al. 2015). They are symmetrised, ``P = (P_cond + P_cond^T) / 2N``.
        With ``"precomputed"``, ``X`` is itself a square, non-negative
        affinity or connectivity matrix, sparse or dense (e.g. scanpy's
        ``adata.obsp["connectivities"]``): its diagonal is ignored, it is
        symmetrised and normalised the same way, and every point needs a
        positive entry in its row or column. ``transform`` then takes the
        affinities of new points to the training points, one row each
        (normalised to sum 1), and ``metric`` is unused (it cannot be
        ``"precomputed"``, which means distances).

        .. versionadded:: 0.2

    n_neighbors : int, default=15
        Number of neighbours of ``affinity="uniform"`` (also for new points
        in ``transform``); larger than ``n_samples - 1``, it is clipped with a
        warning. Unused by the other kinds (see ``n_neighbors_``).

        .. versionadded:: 0.2

    early_exaggeration : float or callable, default=12.0
        Factor multiplying the attractive forces during the first
        ``early_exaggeration_iter`` iterations, so that clusters form early.
        A callable ``iteration -> factor`` gives a schedule: it is called
        once per iteration of the phase (``0 .. early_exaggeration_iter -
        1``) before the optimisation starts, and must return finite numbers
        > 0. With ``learning_rate="auto"``, a schedule's largest factor takes
        the number's place (its factor at iteration 0 when no early phase
        runs: ``early_exaggeration_iter=0`` or a warm start).

        .. versionchanged:: 0.2
           A callable (schedule).

    early_exaggeration_iter : int, default=250
        Length of the early-exaggeration phase (part of ``max_iter``).

    exaggeration : float or callable, default=None
        Exaggeration of the main phase; None means 1 (standard t-SNE). Values
        around 2-4 emphasise global structure on large data sets. A callable
        ``iteration -> factor`` gives a schedule (a late-exaggeration ramp,
        say): it is called for the iterations ``early_exaggeration_iter ..
        max_iter - 1`` of the fit (``0 .. max_iter - 1`` in a warm start)
        before the optimisation starts, and must return finite numbers > 0.

        .. versionchanged:: 0.2
           A callable (schedule).

    learning_rate : float or "auto", default="auto"
        Step size, applied to the exact KL gradient (the factor 4 included, as
        in scikit-learn): a number takes the same steps as the same number in
        :class:`sklearn.manifold.TSNE`, and as ``4 * learning_rate`` in
        openTSNE, whose gradient omits the factor 4. ``"auto"`` is
        ``max(n_samples / early_exaggeration, 50)``, 4x scikit-learn's "auto"
        (``max(n_samples / early_exaggeration / 4, 50)``); pass that number to
        take scikit-learn's default steps.

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
        (scikit-learn's convention). Unused with ``affinity="precomputed"``.
        The affinities do not depend on the scale of ``X`` (for every named
        metric but ``"haversine"``): data whose largest magnitude lies
        outside about ``[1e-77, 1e77]`` (float64; ``[1e-10, 1e9]`` float32),
        where squared distances would underflow or overflow, are multiplied
        by an exact power of two first, and new points in ``transform`` by
        the same one. A callable metric gets ``X`` as given; it must return
        finite values >= 0 (``ValueError`` otherwise).

    metric_params : dict, default=None
        Extra keyword arguments of the metric; a ``ValueError`` names those
        that a named metric does not take (the euclidean metric takes none,
        ``"minkowski"`` takes ``p`` and ``w``).

    init : {"pca", "spectral", "random"} or ndarray of shape \
(n_samples, n_components), default="pca"
        Initial embedding. The three schemes are rescaled so that their first
        axis has standard deviation 1e-4; ``"pca"`` needs features (not
        ``metric="precomputed"`` or ``affinity="precomputed"``). An array is
        used as given, as in scikit-learn. openTSNE and Kobak & Berens (2019)
        recommend a standard deviation of about 1e-4 along the first axis for
        a new layout (so that early exaggeration can organise it);
        ``init = Y0 * (1e-4 / Y0[:, 0].std())`` gives an array ``Y0`` that
        scale. An embedding to continue keeps its scale (see
        ``warm_start``).

        .. versionchanged:: 0.2
           An array is no longer rescaled.

    warm_start : bool, default=False
        Continue the previous fit: when fitted, the next ``fit`` on the same
        ``X`` starts from ``embedding_`` (not from ``init``), skips early
        exaggeration and runs ``max_iter`` more iterations of the main phase
        (gains and momentum start afresh; ``n_iter_`` and the callbacks count
        this fit's iterations). Other parameters may change between the fits
        (``perplexity`` and ``affinity``, for perplexity annealing;
        ``exaggeration``, ``dof``, ``learning_rate``); ``X`` and
        ``n_components`` may not (``ValueError``). To start from an
        embedding on other data of the same points, pass it as ``init`` with
        ``early_exaggeration_iter=0`` instead: that is the same computation.

        .. versionadded:: 0.2

    dof : float, default=1.0
        Degrees of freedom of the heavy-tailed output kernel
        ``(1 + d^2 / dof)^(-dof)``; 1 is the Cauchy kernel of standard t-SNE,
        smaller values separate clusters further (Kobak et al. 2019). It must
        lie in ``[1e-3, 1e6]``: above, ``1 + d^2 / dof`` rounds to 1 for the
        small distances of a starting embedding (every kernel value becomes 1
        instead of tending to the Gaussian ``exp(-d^2)``, which dof = 1e6
        already matches closely); below, the kernel is flat to within a few
        percent over any range of distances an embedding spans, so it
        separates nothing, and the Barnes-Hut and FFT sums lose their
        accuracy on it (both gave impossible KL values).

    neighbors : {"auto", "exact", "approx"}, default="auto"
        Nearest-neighbour search: exact (blocked BLAS for the euclidean
        metric; for dense data from 4,096 samples, only the k-means cells
        that can hold a neighbour are searched, with the same answer),
        approximate (a faiss HNSW graph, for dense data and the euclidean,
        cosine or correlation metric; a ``ValueError`` for other inputs), or
        exact below a measured size (80,000 samples) and above it wherever
        the exact search's cell plan is cheap (clustered euclidean data),
        approximate otherwise; it warns if it must take the exact search for
        inputs the graph cannot serve (sparse data, other metrics).

        .. versionchanged:: 0.2
           Cosine and correlation metrics take the approximate search; it
           is no longer silently replaced by the exact one.

        .. versionchanged:: 0.2
           ``"auto"`` keeps the exact search above 80,000 samples where its
           cell plan is cheap (docs/neighbors.rst).

    device : {"auto", "cpu", "cuda"}, default="auto"
        Where the gradient runs; ``"auto"`` picks the CPU unless a CUDA backend
        is installed and a device is visible (see ``device_``).

    callbacks : callable or list of callable, default=None
        Called as ``callback(iteration, kl_divergence, embedding)`` every
        ``callbacks_every_iters`` iterations and after the last one:
        ``iteration`` is the number of iterations done, ``embedding`` the
        embedding after them (the array being optimised, in the input's
        order; copy it to keep it) and ``kl_divergence`` the KL divergence of
        that embedding (of the unexaggerated P, also during early
        exaggeration). Returning True stops the fit with that embedding.

    callbacks_every_iters : int, default=50
        How often the KL divergence is evaluated, callbacks are called and the
        stopping rules are checked.

    verbose : int, default=0
        Report progress on stderr: the resolved parameters, each phase with its
        time (kNN, affinities, early exaggeration, main phase), the KL
        divergence every ``callbacks_every_iters`` iterations (a progress bar
        instead when stderr is a terminal and tqdm is installed), why the
        optimisation stopped and a summary. The same messages are records of
        the ``fasttsne`` logger, for applications that configure logging.

    random_state : int, RandomState instance or None, default=None
        Seed of the initialisation and of the approximate neighbour search. A
        fixed value gives bitwise-identical results, whatever ``n_jobs``.

    n_jobs : int, default=None
        Threads for the neighbour search, the affinities and the gradient;
        None means 1 and -1 all cores. Results do not depend on it."""

_COMMON_ATTRIBUTES_DOC = """embedding_ : ndarray of shape (n_samples, n_components)
        The fitted embedding, in the dtype of the training data.

    kl_divergence_ : float
        KL divergence of ``embedding_``, the embedding after the last
        iteration (with the backend's approximation of the normalisation).

    n_iter_ : int
        Number of iterations run.

    learning_rate_ : float
        The learning rate used (``"auto"`` resolved).

    perplexity_ : float, tuple of float or None
        The perplexity used (clipped to ``(n_samples - 1) / 3`` if needed); a
        tuple with ``affinity="multiscale"``, None with ``"uniform"`` and
        ``"precomputed"``.

    n_neighbors_ : int or None
        The number of nearest neighbours of each point that the affinities
        use (None with ``affinity="precomputed"``).

        .. versionadded:: 0.2

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
