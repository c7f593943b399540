"""fasttsne.plot: palettes, colour bars, 1-D strips, 3-D axes, sizes, errors."""

import os
import sys
from pathlib import Path

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

import fasttsne
from fasttsne._plot import point_size

plt = pytest.importorskip("matplotlib.pyplot")


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _offsets(ax):
    (collection,) = ax.collections
    return np.asarray(collection.get_offsets())


def test_categorical_labels_get_a_palette_and_a_legend(rng):
    Y = rng.normal(size=(300, 2))
    labels = np.repeat(["cat", "ant", "bee"], 100)
    ax = fasttsne.plot(Y, labels, title="t")
    texts = [t.get_text() for t in ax.get_legend().get_texts()]
    assert texts == ["ant", "bee", "cat"]
    assert ax.get_title() == "t"
    # Every point is drawn once, in a shuffled order, each with its class colour.
    offsets = _offsets(ax)
    order = np.lexsort(offsets.T[::-1])
    assert_array_equal(offsets[order], Y[np.lexsort(Y.T[::-1])])
    colors = ax.collections[0].get_facecolors()
    tab10 = plt.get_cmap("tab10")
    for point, color in zip(offsets[:20], colors[:20]):
        index = np.flatnonzero((Y == point).all(axis=1))[0]
        code = ["ant", "bee", "cat"].index(labels[index])
        assert_allclose(color[:3], tab10(code)[:3])
    assert len(ax.figure.axes) == 1  # no colour bar


def test_continuous_labels_get_a_colour_bar(rng):
    Y = rng.normal(size=(200, 2))
    ax = fasttsne.plot(Y, labels=rng.normal(size=200))
    assert ax.get_legend() is None
    assert len(ax.figure.axes) == 2  # the colour bar's axes


@pytest.mark.parametrize(
    "labels, kind, expected",
    [
        (np.arange(200) % 5, "auto", "categorical"),
        (np.arange(200) % 50, "auto", "continuous"),
        (np.arange(200) % 25, "categorical", "categorical"),
        (np.arange(200) % 25, "auto", "continuous"),
        (np.linspace(0, 1, 200), "auto", "continuous"),
        (np.arange(200) % 2 == 0, "auto", "categorical"),
        (np.arange(200) % 3, "continuous", "continuous"),
    ],
)
def test_label_kind(rng, labels, kind, expected):
    ax = fasttsne.plot(rng.normal(size=(200, 2)), labels, kind=kind)
    has_colorbar = len(ax.figure.axes) == 2
    assert has_colorbar == (expected == "continuous")
    assert (ax.get_legend() is not None) == (expected == "categorical")


def test_many_classes_get_distinct_colours_and_no_legend(rng):
    labels = np.arange(400) % 40
    ax = fasttsne.plot(rng.normal(size=(400, 2)), labels, kind="categorical")
    assert ax.get_legend() is None
    colors = np.unique(np.round(ax.collections[0].get_facecolors(), 6), axis=0)
    assert len(colors) == 40


def test_one_dimensional_strip_plot(rng):
    Y = rng.normal(size=(150, 1))
    labels = np.repeat([2, 7, 9], 50)
    ax = fasttsne.plot(Y, labels)
    offsets = _offsets(ax)
    assert_array_equal(np.sort(offsets[:, 0]), np.sort(Y[:, 0]))
    # Each class in its own strip around its row, labelled on the y axis.
    assert [t.get_text() for t in ax.get_yticklabels()] == ["2", "7", "9"]
    rows = np.round(offsets[:, 1])
    for row, label in enumerate([2, 7, 9]):
        x_in_row = np.sort(offsets[rows == row, 0])
        assert_array_equal(x_in_row, np.sort(Y[labels == label, 0]))
    assert np.all(np.abs(offsets[:, 1] - rows) <= 0.35)
    # Without labels: one strip, no y ticks; a 1-D array is one component.
    ax = fasttsne.plot(Y[:, 0])
    assert len(ax.get_yticks()) == 0


def test_three_dimensional_embedding(rng):
    Y = rng.normal(size=(100, 3))
    ax = fasttsne.plot(Y, labels=np.arange(100) % 4)
    assert ax.name == "3d"
    _, flat = plt.subplots()
    with pytest.raises(ValueError, match="3-D axes"):
        fasttsne.plot(Y, ax=flat)


def test_draws_on_given_axes(rng):
    fig, (left, right) = plt.subplots(1, 2)
    assert fasttsne.plot(rng.normal(size=(50, 2)), ax=right) is right
    assert not left.collections and len(right.collections) == 1
    assert fig.axes == [left, right]


def test_marker_size_and_opacity_follow_the_number_of_points(rng):
    sizes = [point_size(n) for n in (100, 1_000, 10_000, 100_000, 1_000_000)]
    assert sizes == sorted(sizes, reverse=True)
    assert sizes[0] <= 20.0 and sizes[-1] >= 0.2
    ax = fasttsne.plot(rng.normal(size=(20_000, 2)))
    (collection,) = ax.collections
    assert_allclose(collection.get_sizes(), [point_size(20_000)])
    assert collection.get_alpha() < 1.0
    assert collection.get_rasterized()
    ax = fasttsne.plot(rng.normal(size=(20, 2)), s=50, alpha=0.5)
    assert_allclose(ax.collections[0].get_sizes(), [50])
    assert ax.collections[0].get_alpha() == 0.5


def test_palette_argument(rng):
    labels = np.repeat(["a", "b"], 10)
    ax = fasttsne.plot(rng.normal(size=(20, 2)), labels, palette=["red", "blue"])
    colors = {tuple(c) for c in ax.collections[0].get_facecolors()}
    assert colors == {(1.0, 0.0, 0.0, 1.0), (0.0, 0.0, 1.0, 1.0)}
    with pytest.raises(ValueError, match="1 colours for 2 classes"):
        fasttsne.plot(rng.normal(size=(20, 2)), labels, palette=["red"])


@pytest.mark.parametrize(
    "Y, labels, kwargs, match",
    [
        (np.zeros((10, 4)), None, {}, "1-, 2- or 3-D"),
        (np.zeros((10, 2)), np.arange(9), {}, "one entry per point"),
        (np.zeros((10, 2)), np.arange(10), {"kind": "ordinal"}, "kind must be"),
    ],
)
def test_bad_input(Y, labels, kwargs, match):
    with pytest.raises(ValueError, match=match):
        fasttsne.plot(Y, labels, **kwargs)


def test_without_matplotlib_the_error_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    with pytest.raises(ImportError, match=r'pip install "fasttsne\[plot\]"'):
        fasttsne.plot(np.zeros((5, 2)))


def test_import_fasttsne_loads_no_heavy_module():
    """The lazy package: `import fasttsne` imports neither sklearn nor matplotlib."""
    import subprocess

    code = (
        "import sys, fasttsne\n"
        "heavy = [m for m in ('sklearn', 'scipy', 'matplotlib', 'torch')"
        " if m in sys.modules]\n"
        "print(heavy)\n"
    )
    root = Path(__file__).resolve().parents[1]
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)},
    ).stdout
    assert out.strip() == "[]"
    assert fasttsne.plot is fasttsne._plot.plot  # pylint: disable=protected-access
