"""No silent wrong answer: reported KL, extreme scales, dof, metrics, grids."""

import numpy as np
import pytest
import scipy.sparse as sp
from numpy.testing import assert_allclose
from sklearn import config_context
from sklearn.datasets import make_blobs
from sklearn.manifold import trustworthiness

from fasttsne import BarnesHutTSNE, FFTInterpTSNE
from fasttsne.tsne._gradients._exact import kl_divergence
from fasttsne.tsne._gradients._interpolation import InterpolationGrid

# Exact repulsion: Barnes-Hut at angle 0, the FFT backend's direct sums (up to
# 1500 points), so the reported KL can be checked to rounding.
EXACT_ESTIMATORS = [
    pytest.param(lambda **kw: BarnesHutTSNE(angle=0.0, **kw), id="bh"),
    pytest.param(FFTInterpTSNE, id="fft"),
]


@pytest.fixture(scope="module")
def blobs():
    X, _ = make_blobs(150, n_features=6, centers=3, random_state=0)
    return X


@pytest.mark.parametrize("make", EXACT_ESTIMATORS)
def test_reported_kl_is_that_of_the_returned_embedding(make, blobs):
    """kl_divergence_ and the callbacks' KL describe the embedding they go with."""
    seen = []

    def callback(iteration, kl, embedding):
        seen.append((iteration, kl, embedding.copy()))

    tsne = make(
        max_iter=120,
        early_exaggeration_iter=50,
        callbacks=callback,
        callbacks_every_iters=25,
        random_state=0,
    )
    tsne.fit(blobs)
    P, _ = tsne._joint_probabilities(blobs, 1, np.random.RandomState(0))
    assert_allclose(tsne.kl_divergence_, kl_divergence(tsne.embedding_, P), rtol=1e-9)
    # Every check, the early phase's last (50) and the fit's last (120) too.
    assert [s[0] for s in seen] == [25, 50, 75, 100, 120]
    for _, kl, embedding in seen:
        assert_allclose(kl, kl_divergence(embedding, P), rtol=1e-9)
    assert_allclose(seen[-1][2], tsne.embedding_)


@pytest.mark.parametrize("Est", [BarnesHutTSNE, FFTInterpTSNE])
@pytest.mark.parametrize("scale", [1e-200, 1e-170, 1e160, 1e300])
@pytest.mark.parametrize("container", ["dense", "csr"])
def test_tiny_and_huge_data_embed_like_unit_data(Est, scale, container, blobs):
    """Data scaled by 1e-200 or 1e300 embed as well as the data themselves.

    Their squared distances would underflow to 0 or overflow to inf: the fit
    scales them by a power of two, and transform scales new points alike.
    """
    X = blobs * scale
    if container == "csr":
        X = sp.csr_matrix(X)
    tsne = Est(max_iter=250, random_state=0)
    Y = tsne.fit_transform(X)
    assert np.all(np.isfinite(Y))
    assert np.ptp(Y) > 1.0  # not collapsed onto a point
    unscaled = Est(max_iter=250, random_state=0).fit_transform(blobs)
    assert trustworthiness(blobs, Y, n_neighbors=10) > (
        trustworthiness(blobs, unscaled, n_neighbors=10) - 0.02
    )
    assert np.isfinite(tsne.kl_divergence_) and tsne.kl_divergence_ > 0
    # A training row comes back as its own position; a new one lands nearby.
    new = tsne.transform(X[:2])
    assert_allclose(new, Y[:2])
    moved = blobs[:1] * 1.001 * scale
    placed = tsne.transform(moved if container == "dense" else sp.csr_matrix(moved))
    assert np.all(np.isfinite(placed))


def test_new_points_too_large_for_the_fit_are_refused(blobs):
    """New points whose distances overflow get a clear error, not an IndexError."""
    tsne = BarnesHutTSNE(max_iter=60, random_state=0).fit(blobs)
    with pytest.raises(ValueError, match="overflow float64"):
        tsne.transform(blobs[:3] * 1e200)


def _nan_metric(a, b):
    return np.nan if a[0] > 0 else float(np.abs(a - b).sum())


def _negative_metric(a, b):
    return -float(np.abs(a - b).sum())


@pytest.mark.parametrize(
    "metric, found", [(_nan_metric, "NaN or infinite"), (_negative_metric, "negative")]
)
def test_callable_metric_returning_bad_distances_is_named(metric, found, blobs):
    """A callable metric's NaN, inf or negative values get an error naming it."""
    X = blobs[:40]
    with pytest.raises(ValueError, match=f"{metric.__name__}.*{found}"):
        BarnesHutTSNE(metric=metric, perplexity=5, max_iter=30).fit(X)
    tsne = BarnesHutTSNE(metric="manhattan", perplexity=5, max_iter=30).fit(X)
    tsne.set_params(metric=metric)
    with pytest.raises(ValueError, match=f"{metric.__name__}.*{found}"):
        tsne.transform(X[:3] + 0.5)


def test_metric_params_that_the_metric_does_not_take(blobs):
    """metric_params={"p": 2} with the euclidean metric: a clear ValueError."""
    X = blobs[:40]
    with pytest.raises(ValueError, match=r"not parameters of the metric 'euclidean'"):
        BarnesHutTSNE(metric_params={"p": 2}, perplexity=5, max_iter=30).fit(X)
    # The parameter that the metric takes is accepted.
    Y = BarnesHutTSNE(
        metric="minkowski", metric_params={"p": 3}, perplexity=5, max_iter=30
    ).fit_transform(X)
    assert np.all(np.isfinite(Y))


@pytest.mark.parametrize("dof", [1e-300, 1e-4, 2e6, 1e20])
def test_dof_outside_its_range_is_refused(dof, blobs):
    """Extreme dof gave impossible KL values: it is validated instead."""
    with pytest.raises(ValueError, match="dof"):
        BarnesHutTSNE(dof=dof).fit(blobs)


@pytest.mark.parametrize("Est", [BarnesHutTSNE, FFTInterpTSNE])
@pytest.mark.parametrize("dof", [1e-3, 1e6])
def test_kl_is_right_at_the_ends_of_the_dof_range(Est, dof):
    """At both ends of the range the reported KL is the exact one's (to 1%).

    1600 points: the FFT backend interpolates on its grid from 1500 on.
    """
    X, _ = make_blobs(1600, n_features=4, centers=4, random_state=0)
    tsne = Est(dof=dof, max_iter=60, early_exaggeration_iter=30, random_state=0)
    tsne.fit(X)
    P, _ = tsne._joint_probabilities(X, 1, np.random.RandomState(0))
    assert_allclose(
        tsne.kl_divergence_, kl_divergence(tsne.embedding_, P, dof=dof), rtol=1e-2
    )


def test_one_dimensional_grids_are_capped():
    """ints_in_interval=1e-7 in 1-D asked for gigabytes: the grid is capped."""
    grid = InterpolationGrid.covering(
        (-10.0,),
        (10.0,),
        n_interpolation_points=3,
        min_num_intervals=50,
        ints_in_interval=1e-7,
        max_num_intervals=300,
    )
    assert 300 <= grid.n_boxes[0] <= 300**2 * 2
    X, _ = make_blobs(200, n_features=4, random_state=0)
    Y = FFTInterpTSNE(1, ints_in_interval=1e-7, max_iter=30, random_state=0)
    assert np.all(np.isfinite(Y.fit_transform(X)))


@pytest.mark.parametrize("lo, hi", [((-10.0,), (10.0,)), ((-10.0, -1.0), (10.0, 1.0))])
def test_uncapped_grids_too_large_are_refused_before_allocating(lo, hi):
    with pytest.raises(ValueError, match="interpolation grid would have"):
        InterpolationGrid.covering(
            lo,
            hi,
            n_interpolation_points=3,
            min_num_intervals=50,
            ints_in_interval=1e-7,
            max_num_intervals=0,
        )


@pytest.mark.parametrize("Est", [BarnesHutTSNE, FFTInterpTSNE])
def test_pca_init_under_a_global_pandas_output(Est, blobs):
    """transform_output="pandas" set globally does not reach the internal SVD."""
    pytest.importorskip("pandas")
    expected = Est(max_iter=60, random_state=0).fit_transform(blobs)
    with config_context(transform_output="pandas"):
        Y = Est(max_iter=60, random_state=0).fit_transform(blobs)
    assert_allclose(np.asarray(Y), expected)
