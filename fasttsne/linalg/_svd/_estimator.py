"""The ``RandomizedSVD`` transformer."""

from numbers import Integral, Real

import numpy as np
import scipy.sparse as sp
from sklearn.base import (
    BaseEstimator,
    ClassNamePrefixFeaturesOutMixin,
    TransformerMixin,
)
from sklearn.utils import check_array

from fasttsne._validation import (
    Interval,
    StrOptions,
    _fit_context,
    check_is_fitted,
    validate_data,
)
from fasttsne import gpu
from fasttsne._array_api import check_array_library
from fasttsne.linalg._svd._randomized import _dispatching, _on_device, _randomized_svd
from fasttsne.linalg._svd._torch import is_tensor

__all__ = ["RandomizedSVD"]


class RandomizedSVD(ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator):
    """Truncated SVD (or PCA) by randomized block Krylov or subspace iteration.

    A transformer in the shape of :class:`sklearn.decomposition.TruncatedSVD`:
    ``fit`` computes the top ``n_components`` singular triplets of ``X``,
    ``transform`` projects on the right singular vectors. Dense and sparse
    (CSR/CSC) input; float32 stays float32. With ``center=True`` it is PCA, and
    sparse input is centred implicitly, never densified.

    The default, randomized block Krylov iteration, matches or beats the accuracy
    of scikit-learn's ``randomized_svd`` default for about half the products
    with ``X`` (see :func:`randomized_svd`). Signs follow ``V``, as in
    ``TruncatedSVD`` and ``PCA``. Data of any magnitude are decomposed
    accurately: outside a safe range they are scaled by a power of two, which
    is exact.

    .. versionadded:: 0.1

    Parameters
    ----------
    n_components : int, default=2
        Number of components, at most ``min(n_samples, n_features)``.
    algorithm : {"auto", "krylov", "bidiagonal", "subspace"}, default="auto"
        Range finder; see :func:`randomized_svd`. ``"auto"`` picks
        ``"krylov"`` unless its basis would exceed 1 GiB; ``"krylov"`` switches
        to ``"bidiagonal"`` on spectra too steep for it.
    n_iter : int or "auto", default="auto"
        Power iterations, as in ``TruncatedSVD``: subspace iteration runs them,
        block Krylov ``n_iter + 1`` blocks after the first, a space that
        contains theirs; see :func:`randomized_svd`.
    n_oversamples : int, default=10
        Extra sampled dimensions; see :func:`randomized_svd`.
    power_iteration_normalizer : {"auto", "LU", "QR", "none"}, default="auto"
        Renormalisation of subspace iteration; see :func:`randomized_svd`.
    block_size : int, default=None
        Columns per Krylov block; see :func:`randomized_svd`.
    tol : float, default=None
        Early stop of the Krylov iteration; at least ``1e-4`` on sparse float64
        input (not centred) also lets block Lanczos work in float32; see
        :func:`randomized_svd`.
    center : bool, default=False
        Subtract the column means first, which makes this PCA. Sparse input is
        centred implicitly (``X`` is neither densified nor copied).
    transpose : bool or "auto", default="auto"
        Work on ``X.T``; ``"auto"`` transposes wide matrices.
    random_state : int, RandomState instance or None, default=None
        Seed of the random test matrix. Pass an int for reproducible results.
    device : {"auto", "cpu", "cuda"}, default="auto"
        Where ``fit`` computes. ``"cuda"`` moves the data to the CUDA device
        with torch (the ``fasttsne[gpu]`` extra); NumPy and SciPy input then
        gives NumPy attributes and outputs. ``"auto"`` takes the device when
        torch, triton and a device are there, and computes a torch tensor
        where it lives. Under ``sklearn.config_context(array_api_dispatch=True)``
        torch tensors (dense or sparse CSR) stay tensors: the fitted
        attributes and the outputs are tensors on the input's device, as for
        scikit-learn's array API estimators.

        .. versionadded:: 0.2

    Attributes
    ----------
    components_ : ndarray of shape (n_components, n_features)
        Right singular vectors, as rows, with the sign convention of
        scikit-learn >= 1.5 (largest-magnitude entry of each row positive).
    singular_values_ : ndarray of shape (n_components,)
        Singular values of ``X`` (centred if ``center``), in decreasing order.
    explained_variance_ : ndarray of shape (n_components,)
        Variance of each component of the transformed training data. With
        ``center=True`` this is PCA's ``singular_values_**2 / (n_samples - 1)``;
        without, as in ``TruncatedSVD``, the variance of ``fit_transform(X)``'s
        columns.
    explained_variance_ratio_ : ndarray of shape (n_components,)
        ``explained_variance_`` divided by the total variance of ``X`` (with the
        same degrees of freedom).
    mean_ : ndarray of shape (n_features,) or None
        Column means subtracted with ``center=True``; ``None`` otherwise.
    n_iter_ : int
        Iterations run: power iterations, or Krylov blocks after the first (fewer
        than planned when the iteration converged or the basis filled the
        space).
    algorithm_ : str
        The range finder that produced the result: ``"krylov"``,
        ``"bidiagonal"`` or ``"subspace"``.
    n_features_in_ : int
        Number of features seen during :term:`fit`.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Names of features seen during :term:`fit`. Defined only when ``X``
        has feature names that are all strings.

    See Also
    --------
    randomized_svd : The same as a function.
    sklearn.decomposition.TruncatedSVD : Randomized subspace iteration or ARPACK.
    sklearn.decomposition.PCA : Exact, ARPACK or randomized PCA of dense data.

    Notes
    -----
    Cost: ``O(nnz(X) * n_components)`` per iteration, with about half the products
    of ``TruncatedSVD(algorithm="randomized")`` by default. ``fit_transform``
    equals ``fit(X).transform(X)``: it returns ``U * S`` from the Krylov
    solvers (equal to ``transform(X)`` to rounding) and, as ``TruncatedSVD``
    does, ``X V^T`` (centred) from subspace iteration.

    References
    ----------
    N. Halko, P.-G. Martinsson and J. A. Tropp, SIAM Review 53(2), 2011.

    C. Musco and C. Musco, NeurIPS 2015.

    Examples
    --------
    >>> import numpy as np
    >>> from scipy.sparse import random as sparse_random
    >>> from fasttsne import RandomizedSVD
    >>> X = sparse_random(100, 80, density=0.05, format="csr", random_state=0)
    >>> svd = RandomizedSVD(n_components=5, random_state=0).fit(X)
    >>> svd.components_.shape
    (5, 80)
    >>> svd.transform(X).shape
    (100, 5)
    >>> bool(np.all(np.diff(svd.singular_values_) <= 0))
    True
    """

    _parameter_constraints: dict = {
        "n_components": [Interval(Integral, 1, None, closed="left")],
        "algorithm": [StrOptions({"auto", "krylov", "bidiagonal", "subspace"})],
        "n_iter": [StrOptions({"auto"}), Interval(Integral, 0, None, closed="left")],
        "n_oversamples": [Interval(Integral, 0, None, closed="left")],
        "power_iteration_normalizer": [StrOptions({"auto", "LU", "QR", "none"})],
        "block_size": [None, Interval(Integral, 1, None, closed="left")],
        "tol": [None, Interval(Real, 0, None, closed="left")],
        "center": ["boolean"],
        "transpose": [StrOptions({"auto"}), "boolean"],
        "random_state": ["random_state"],
        "device": [StrOptions({"auto", "cpu", "cuda"})],
    }

    def __init__(
        self,
        n_components=2,
        *,
        algorithm="auto",
        n_iter="auto",
        n_oversamples=10,
        power_iteration_normalizer="auto",
        block_size=None,
        tol=None,
        center=False,
        transpose="auto",
        random_state=None,
        device="auto",
    ):
        self.n_components = n_components
        self.algorithm = algorithm
        self.n_iter = n_iter
        self.n_oversamples = n_oversamples
        self.power_iteration_normalizer = power_iteration_normalizer
        self.block_size = block_size
        self.tol = tol
        self.center = center
        self.transpose = transpose
        self.random_state = random_state
        self.device = device

    def fit(self, X, y=None):
        """Compute the truncated SVD of ``X``.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Training data.
        y : Ignored
            Not used, present for API consistency by convention.

        Returns
        -------
        self : object
            The fitted estimator.
        """
        self.fit_transform(X, y)
        return self

    @_fit_context(prefer_skip_nested_validation=True)
    def fit_transform(self, X, y=None):  # pylint: disable=arguments-differ
        """Compute the truncated SVD of ``X`` and return ``X`` in its components.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Training data.
        y : Ignored
            Not used, present for API consistency by convention.

        Returns
        -------
        X_new : ndarray of shape (n_samples, n_components)
            The data in the space of the components: ``U * S``, equal to
            ``transform(X)``.
        """
        del y  # unsupervised; accepted for API consistency
        check_array_library(X, "RandomizedSVD")
        if _dispatching(X):
            # pylint: disable-next=import-outside-toplevel
            from fasttsne.linalg._svd._torch import check_tensor

            X = check_tensor(X, ensure_min_samples=2)
            validate_data(self, X, skip_check_array=True)
            where = "auto" if self.device == "auto" else gpu.resolve_device(self.device)
            return self._fit_on_torch(X, where)
        # scikit-learn's finiteness check sums the data first, which overflows
        # near the largest float: no warning for valid data.
        with np.errstate(over="ignore", invalid="ignore"):
            X = validate_data(
                self,
                X,
                accept_sparse=["csr", "csc"],
                dtype=[np.float64, np.float32],
                ensure_min_samples=2,
            )
        if gpu.resolve_device(self.device) == "cuda":
            return self._fit_on_torch(X, "cuda")
        self._check_n_components(X.shape)
        n_samples = X.shape[0]
        U, S, Vt, info = self._decompose(X)
        if info["algorithm"] == "subspace":
            # U S is X V^T only up to the approximation error of subspace
            # iteration: TruncatedSVD returns X V^T, so that fit_transform(X)
            # equals fit(X).transform(X); the Krylov solvers give both to rounding.
            X_new = np.asarray(X @ Vt.T)
            if self.center:
                X_new -= (
                    np.asarray(X.mean(axis=0, dtype=np.float64)).ravel().astype(X.dtype)
                    @ Vt.T
                )
        else:
            X_new = U * S
        # Variances in the units of the scaled data, where their squares neither
        # overflow nor underflow; the ratio is scale-free.
        exponent = info["scale_exponent"]
        ddof = 1 if self.center else 0
        if self.center:
            self.mean_ = np.asarray(X.mean(axis=0, dtype=np.float64)).ravel()
            self.mean_ = self.mean_.astype(X.dtype)
            scaled = np.ldexp(S.astype(np.float64), exponent)
            explained_variance = scaled**2 / (n_samples - 1)
        else:
            self.mean_ = None
            scaled = np.ldexp(X_new, exponent) if exponent else X_new
            explained_variance = np.var(scaled, axis=0, dtype=np.float64)
        total_variance = _column_variances(X, ddof, exponent).sum()
        if total_variance > 0:
            ratio = explained_variance / total_variance
        else:
            ratio = np.zeros_like(explained_variance)
        if exponent:
            # A variance beyond the range of the dtype is inf, one below it 0.
            with np.errstate(over="ignore", under="ignore"):
                explained_variance = np.ldexp(explained_variance, -2 * exponent)
        self.components_ = Vt
        self.singular_values_ = S
        with np.errstate(over="ignore"):
            self.explained_variance_ = explained_variance.astype(X.dtype)
        self.explained_variance_ratio_ = ratio.astype(X.dtype)
        self.n_iter_ = info["n_iter"]
        self.algorithm_ = info["algorithm"]
        return X_new

    def _decompose(self, X):
        """``_randomized_svd`` of ``X`` with this estimator's parameters."""
        return _randomized_svd(
            X,
            self.n_components,
            n_oversamples=self.n_oversamples,
            n_iter=self.n_iter,
            power_iteration_normalizer=self.power_iteration_normalizer,
            algorithm=self.algorithm,
            block_size=self.block_size,
            tol=self.tol,
            transpose=self.transpose,
            random_state=self.random_state,
            center=self.center,
            return_info=True,
        )

    def _check_n_components(self, shape):
        """ValueError when ``n_components`` exceeds the short side of ``X``."""
        n_samples, n_features = shape
        if self.n_components > min(n_samples, n_features):
            raise ValueError(
                f"n_components={self.n_components} must be at most "
                f"min(n_samples, n_features)={min(n_samples, n_features)} "
                f"(n_samples={n_samples}, n_features={n_features})."
            )

    def _fit_on_torch(self, X, where):
        """``fit_transform`` with torch: ``X`` a NumPy/SciPy input to compute
        on CUDA (attributes come back as NumPy), or a validated tensor kept
        as one (attributes on its device); ``where`` as for ``_on_device``."""
        # pylint: disable-next=import-outside-toplevel
        from fasttsne.linalg._svd._torch import fitted_attributes

        self._check_n_components(X.shape)
        X, back = _on_device(X, where)
        U, S, Vt, info = self._decompose(X)
        attributes = fitted_attributes(X, U, S, Vt, info, center=self.center)
        X_new = back(attributes.pop("X_new"))
        for name, value in attributes.items():
            setattr(self, name, None if value is None else back(value))
        self.n_iter_ = info["n_iter"]
        self.algorithm_ = info["algorithm"]
        return X_new

    def transform(self, X):
        """Project ``X`` on the components: ``(X - mean_) @ components_.T``.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            New data.

        Returns
        -------
        X_new : ndarray of shape (n_samples, n_components)
            The data in the space of the components.
        """
        check_is_fitted(self)
        check_array_library(X, "RandomizedSVD")
        if is_tensor(self.components_) or _dispatching(X):
            return self._project_on_torch(X)
        X = validate_data(
            self,
            X,
            accept_sparse=["csr", "csc"],
            dtype=[np.float64, np.float32],
            reset=False,
        )
        components = self.components_.astype(X.dtype, copy=False)
        X_new = np.asarray(X @ components.T)
        if self.mean_ is not None:
            X_new -= self.mean_.astype(X.dtype, copy=False) @ components.T
        return X_new

    def _project_on_torch(self, X):
        """``transform`` of a tensor, or by components that are tensors."""
        # pylint: disable-next=import-outside-toplevel
        from fasttsne.linalg._svd._torch import check_tensor, to_torch

        if not is_tensor(X) or not is_tensor(self.components_):
            raise TypeError(
                "RandomizedSVD fitted on "
                f"{type(self.components_).__module__.split('.')[0]} arrays "
                f"cannot transform {type(X).__module__.split('.')[0]} arrays; "
                "fit and transform with the same array library (torch tensors "
                "need sklearn.config_context(array_api_dispatch=True))."
            )
        X = check_tensor(X)
        validate_data(self, X, skip_check_array=True, reset=False)
        components = to_torch(self.components_, X.device).to(X.dtype)
        X_new = X @ components.T
        if self.mean_ is not None:
            mean = to_torch(self.mean_, X.device).to(X.dtype)
            X_new -= mean @ components.T
        return X_new

    def inverse_transform(self, X):
        """Map data back to the input space: ``X @ components_ + mean_``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_components)
            Data in the space of the components.

        Returns
        -------
        X_back : ndarray of shape (n_samples, n_features)
            The rank-``n_components`` approximation in the input space.
        """
        check_is_fitted(self)
        check_array_library(X, "RandomizedSVD")
        if is_tensor(self.components_) or _dispatching(X):
            return self._inverse_on_torch(X)
        X = check_array(X, dtype=[np.float64, np.float32])
        n_components = self.components_.shape[0]
        if X.shape[1] != n_components:
            raise ValueError(
                f"X has {X.shape[1]} columns, but inverse_transform maps data in "
                f"the space of the {n_components} components (the output of "
                "transform) back to the input space."
            )
        X_back = X @ self.components_.astype(X.dtype, copy=False)
        if self.mean_ is not None:
            X_back += self.mean_.astype(X.dtype, copy=False)
        return X_back

    def _inverse_on_torch(self, X):
        """``inverse_transform`` of a tensor by components that are tensors."""
        # pylint: disable-next=import-outside-toplevel
        from fasttsne.linalg._svd._torch import check_tensor

        if not is_tensor(X) or not is_tensor(self.components_):
            raise TypeError(
                "inverse_transform takes the array library RandomizedSVD was "
                "fitted with (torch tensors need "
                "sklearn.config_context(array_api_dispatch=True))."
            )
        X = check_tensor(X)
        n_components = self.components_.shape[0]
        if X.shape[1] != n_components:
            raise ValueError(
                f"X has {X.shape[1]} columns, but inverse_transform maps data in "
                f"the space of the {n_components} components back to the input "
                "space."
            )
        X_back = X @ self.components_.to(X.device, X.dtype)
        if self.mean_ is not None:
            X_back += self.mean_.to(X.device, X.dtype)
        return X_back

    @property
    def _n_features_out(self):
        """Number of transformed output features."""
        return self.components_.shape[0]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        tags.array_api_support = True
        return tags


def _column_variances(X, ddof, exponent=0):
    """Per-column variances of dense or sparse ``X * 2**exponent``, in float64."""
    n_samples = X.shape[0]
    if sp.issparse(X):
        if exponent:
            X = X.astype(np.float64)
            X.data = np.ldexp(X.data, exponent)
        mean = np.asarray(X.mean(axis=0, dtype=np.float64)).ravel()
        squares = np.asarray(X.multiply(X).sum(axis=0, dtype=np.float64)).ravel()
        # Sum of (x - mean)^2 over the column, zeros included.
        centred = np.maximum(squares - n_samples * mean**2, 0.0)
    else:
        if exponent:
            X = np.ldexp(X.astype(np.float64), exponent)
        centred = np.var(X, axis=0, dtype=np.float64) * n_samples
    return centred / max(n_samples - ddof, 1)
