"""The README's promises: its snippets run when pasted; its learning-rate rule holds."""

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from numpy.testing import assert_allclose
from scipy.spatial.distance import squareform

from fasttsne import BarnesHutTSNE
from fasttsne.tsne._affinity import joint_probabilities

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
SNIPPETS = re.findall(r"```python\n(.*?)```", README, flags=re.DOTALL)


def test_the_readme_has_snippets_and_the_two_commands():
    assert len(SNIPPETS) >= 6
    commands = re.findall(r"```bash\n(.*?)```", README, flags=re.DOTALL)
    assert 'python3 -m pip install ".[plot]" && fasttsne demo' in commands[0]
    assert 'python3 -m pip install -e ".[test]" && python3 -m pytest' in commands[1]


@pytest.mark.parametrize(
    "snippet", SNIPPETS, ids=[f"snippet{i + 1}" for i in range(len(SNIPPETS))]
)
def test_readme_snippet_runs_when_pasted(snippet, tmp_path):
    """Each snippet in a fresh interpreter, as a user pasting it would run it."""
    result = subprocess.run(
        [sys.executable, "-c", snippet],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT), "MPLBACKEND": "Agg"},
        check=False,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]


def test_numeric_learning_rate_takes_scikit_learn_steps(rng):
    """One step from the same start and P equals scikit-learn's optimiser step.

    scikit-learn's exact objective and gradient descent (private functions of
    ``sklearn.manifold._t_sne``) against ``BarnesHutTSNE`` with ``angle=0``
    (exact sums), ``max_iter=1`` (one early-exaggeration step, momentum 0.5)
    and an ``init`` array already at the standard deviation fasttsne rescales
    to.
    """
    from sklearn.manifold._t_sne import _gradient_descent, _kl_divergence

    n_samples, learning_rate, exaggeration = 60, 200.0, 12.0
    X = rng.normal(size=(n_samples, 4))
    perplexity = (n_samples - 1) / 3  # every other point is a neighbour
    P = joint_probabilities(X, perplexity).toarray().astype(np.float64)
    Y0 = rng.normal(size=(n_samples, 2))
    Y0 *= 1e-4 / Y0[:, 0].std()
    ours = BarnesHutTSNE(
        perplexity=perplexity,
        angle=0.0,
        init=Y0,
        max_iter=1,
        learning_rate=learning_rate,
        early_exaggeration=exaggeration,
        random_state=0,
    ).fit_transform(X)

    Y_sklearn, _, _ = _gradient_descent(
        _kl_divergence,
        Y0.ravel().copy(),
        0,
        1,
        momentum=0.5,
        learning_rate=learning_rate,
        min_gain=0.01,
        args=[squareform(P, checks=False) * exaggeration, 1.0, n_samples, 2],
    )
    Y_sklearn = Y_sklearn.reshape(n_samples, 2)
    step = Y_sklearn - Y0
    assert np.abs(step).max() > 1e-3 * np.abs(Y0).max()  # the step is not nothing
    # fasttsne centres the embedding after each step; scikit-learn does not.
    assert_allclose(ours, Y_sklearn - Y_sklearn.mean(axis=0), rtol=1e-7, atol=1e-12)


def test_auto_learning_rate_is_four_times_scikit_learns(rng, monkeypatch):
    """Only "auto" differs: max(N / early_exaggeration, 50), 4x scikit-learn's."""
    from sklearn.manifold import TSNE
    from sklearn.manifold import _t_sne

    X = rng.normal(size=(4_800, 3))  # large enough that neither is floored at 50
    # scikit-learn resolves learning_rate_ before optimising; skip the optimisation.
    monkeypatch.setattr(
        _t_sne.TSNE,
        "_tsne",
        lambda self, P, degrees_of_freedom, n_samples, X_embedded, **kw: X_embedded,
    )
    reference = TSNE(learning_rate="auto", init="random", random_state=0).fit(X)
    ours = BarnesHutTSNE(max_iter=1, init="random", random_state=0).fit(X)
    assert reference.learning_rate_ == 4_800 / 12 / 4
    assert ours.learning_rate_ == 4 * reference.learning_rate_
