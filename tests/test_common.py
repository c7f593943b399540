"""scikit-learn's estimator checks on every public estimator, defaults included."""

from sklearn.utils.estimator_checks import parametrize_with_checks

from fasttsne import BarnesHutTSNE, FFTInterpTSNE, RandomizedSVD, ToeplitzKernel

# Default parameters are what a user's ``check_estimator(Est())`` runs; the fast
# configurations mirror sklearn's own ``TSNE(perplexity=2)`` registration.
ESTIMATORS = [
    BarnesHutTSNE(),
    BarnesHutTSNE(perplexity=2, max_iter=100, early_exaggeration_iter=50),
    FFTInterpTSNE(),
    FFTInterpTSNE(perplexity=2, max_iter=100, min_num_intervals=10),
    ToeplitzKernel(),
    ToeplitzKernel(
        "laplacian",
        bandwidth=3.0,
        normalize=True,
        alpha=0.1,
        preconditioner="strang",
        n_jobs=2,
    ),
    RandomizedSVD(),
    RandomizedSVD(
        n_components=1,
        algorithm="subspace",
        n_iter=3,
        power_iteration_normalizer="QR",
        center=True,
        random_state=0,
    ),
]


@parametrize_with_checks(ESTIMATORS)
def test_sklearn_compatible_estimator(estimator, check):
    """Every check passes, no expected failures; none skipped but the array API
    checks of namespaces and devices this machine lacks (RandomizedSVD)."""
    check(estimator)
