"""No silent wrong answer: reported KL, extreme scales, dof, metrics, grids."""

import numpy as np
import pytest
from numpy.testing import assert_allclose
from sklearn.datasets import make_blobs

from fasttsne import BarnesHutTSNE, FFTInterpTSNE
from fasttsne.tsne._gradients._exact import kl_divergence

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
