"""``fasttsne.plot``: a scatter plot of an embedding that reads at any size.

matplotlib is imported when a plot is drawn, never at import time; without it
the call raises an ``ImportError`` with the ``[plot]`` install hint.
"""

import numpy as np

__all__ = ["plot"]

# Up to this many classes a categorical colouring gets a legend (and a 1-D
# strip plot one tick per class); beyond it a legend hides the picture.
_MAX_LEGEND_CLASSES = 30
# Numeric labels with more distinct values than this, or any non-integer
# value, are read as a continuous quantity (colour bar), else as classes.
_MAX_AUTO_CLASSES = 20


def _pyplot():
    """Import pyplot, or explain how to install it."""
    try:
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise ImportError(
            'fasttsne.plot needs matplotlib: pip install "fasttsne[plot]"'
        ) from exc
    return plt


def point_size(n_points):
    """Marker area (points^2) that keeps 1e2..1e6 points legible.

    The area shrinks like ``1 / sqrt(n)``: about 20 for 100 points, 4.7 for
    the 1,797 digits, 0.6 for 100k and 0.2 for a million, so that clusters
    stay visible without one blot of ink.

    Parameters
    ----------
    n_points : int
        Number of points drawn.

    Returns
    -------
    s : float
        Area for ``matplotlib.axes.Axes.scatter``.

    Examples
    --------
    >>> from fasttsne._plot import point_size
    >>> point_size(100), point_size(10_000), point_size(1_000_000)
    (20.0, 2.0, 0.2)
    """
    return float(np.clip(200.0 / np.sqrt(max(n_points, 1)), 0.2, 20.0))


def _opacity(n_points):
    """Opaque up to 10k points, then fading so that density shows (0.3 at 1M)."""
    return float(np.clip((1e4 / max(n_points, 1)) ** 0.25, 0.3, 1.0))


def _label_kind(labels, kind):
    """Resolve ``kind="auto"``: "categorical" or "continuous"."""
    if kind != "auto":
        return kind
    if labels.dtype.kind in "iuf":
        finite = labels[np.isfinite(labels)] if labels.dtype.kind == "f" else labels
        non_integer = np.any(finite != np.round(finite))
        if non_integer or np.unique(finite).size > _MAX_AUTO_CLASSES:
            return "continuous"
    return "categorical"


def _class_colors(n_classes, palette, plt):
    """One RGBA colour per class: tab10, tab20, or a spread of turbo beyond."""
    from matplotlib.colors import to_rgba_array

    if palette is not None:
        if isinstance(palette, str):
            cmap = plt.get_cmap(palette)
            if getattr(cmap, "N", 256) >= n_classes and cmap.N < 256:
                return cmap(np.arange(n_classes))
            return cmap(np.linspace(0.0, 1.0, n_classes))
        colors = to_rgba_array(list(palette))
        if len(colors) < n_classes:
            raise ValueError(
                f"palette has {len(colors)} colours for {n_classes} classes."
            )
        return colors[:n_classes]
    if n_classes <= 10:
        return plt.get_cmap("tab10")(np.arange(n_classes))
    if n_classes <= 20:
        return plt.get_cmap("tab20")(np.arange(n_classes))
    # Golden-ratio steps along turbo: neighbouring class codes get distant hues.
    return plt.get_cmap("turbo")((np.arange(n_classes) * 0.618034) % 1.0)


def _make_axes(plt, n_components, ax):
    """The axes to draw on: ``ax`` (checked), or a new figure's."""
    if ax is None:
        fig = plt.figure(figsize=(6.5, 6.0))
        if n_components == 3:
            return fig.add_subplot(projection="3d")
        return fig.add_subplot()
    if n_components == 3 and getattr(ax, "name", "") != "3d":
        raise ValueError(
            "a 3-D embedding needs 3-D axes: ax = fig.add_subplot(projection='3d')."
        )
    return ax


def plot(
    embedding,
    labels=None,
    *,
    ax=None,
    kind="auto",
    palette=None,
    cmap="viridis",
    s=None,
    alpha=None,
    legend=True,
    colorbar=True,
    title=None,
    random_state=0,
):
    """Scatter plot of a 1-, 2- or 3-D embedding, coloured by labels.

    Categorical labels (strings, booleans, or at most 20 distinct integers) get
    a qualitative palette and a legend; numeric labels with more values, or
    with fractions, get a colour map and a colour bar. A 1-D embedding is drawn
    as a strip plot (one strip per class), a 3-D one on 3-D axes. The marker
    size and opacity follow the number of points, so that 100 and a million
    points both read; points are drawn in a random order so that no class
    hides the others.

    .. versionadded:: 0.1

    Parameters
    ----------
    embedding : array-like of shape (n_samples, n_components)
        The embedding, ``n_components`` 1, 2 or 3 (a 1-D array is one
        component).
    labels : array-like of shape (n_samples,), default=None
        Colour of each point: classes or a continuous quantity.
    ax : matplotlib Axes, default=None
        Where to draw (3-D axes for a 3-D embedding); None makes a new figure.
    kind : {"auto", "categorical", "continuous"}, default="auto"
        How to read ``labels``.
    palette : str or sequence of colours, default=None
        Colours of the classes: a colour map name or a list; None means tab10,
        tab20, or a spread of turbo beyond 20 classes.
    cmap : str or Colormap, default="viridis"
        Colour map of continuous labels.
    s : float, default=None
        Marker area in points^2; None picks one from the number of points.
    alpha : float, default=None
        Marker opacity; None is opaque up to 10k points, fainter beyond.
    legend : bool, default=True
        Show a legend of the classes (up to 30 of them).
    colorbar : bool, default=True
        Show a colour bar for continuous labels.
    title : str, default=None
        Axes title.
    random_state : int, default=0
        Seed of the drawing order and of the strip jitter of 1-D plots.

    Returns
    -------
    ax : matplotlib Axes
        The axes drawn on.

    Raises
    ------
    ImportError
        When matplotlib is not installed (``pip install "fasttsne[plot]"``).
    ValueError
        For an embedding that is not 1-, 2- or 3-D, or labels of another
        length.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import numpy as np
    >>> import fasttsne
    >>> Y = np.random.default_rng(0).normal(size=(300, 2))
    >>> ax = fasttsne.plot(Y, labels=np.repeat(["a", "b", "c"], 100))
    >>> [text.get_text() for text in ax.get_legend().get_texts()]
    ['a', 'b', 'c']
    """
    Y = np.asarray(embedding)
    if Y.ndim == 1:
        Y = Y[:, None]
    if Y.ndim != 2 or not 1 <= Y.shape[1] <= 3:
        raise ValueError(
            f"plot draws 1-, 2- or 3-D embeddings; got an array of shape {Y.shape}."
        )
    if kind not in ("auto", "categorical", "continuous"):
        raise ValueError(
            f"kind must be 'auto', 'categorical' or 'continuous', not {kind!r}."
        )
    n_samples, n_components = Y.shape
    if labels is not None:
        labels = np.asarray(labels)
        if labels.ndim != 1 or len(labels) != n_samples:
            raise ValueError(
                f"labels must have one entry per point: {n_samples} points, "
                f"labels of shape {labels.shape}."
            )
    plt = _pyplot()
    ax = _make_axes(plt, n_components, ax)
    rng = np.random.default_rng(random_state)
    order = rng.permutation(n_samples)
    style = {
        "s": point_size(n_samples) if s is None else s,
        "alpha": _opacity(n_samples) if alpha is None else alpha,
        "linewidths": 0,
        "rasterized": n_samples > 10_000,
    }

    kind = None if labels is None else _label_kind(labels, kind)
    classes, codes = None, np.zeros(n_samples, dtype=np.intp)
    if kind == "categorical":
        values = labels if labels.dtype.kind in "biuf" else labels.astype(str)
        classes, codes = np.unique(values, return_inverse=True)
        colors = _class_colors(len(classes), palette, plt)
        style["c"] = colors[codes[order]]
    elif kind == "continuous":
        style.update(c=labels[order].astype(float), cmap=cmap)
    else:
        style["c"] = [plt.get_cmap("tab10")(0)]

    if n_components == 1:
        coords = [Y[order, 0], (codes + rng.uniform(-0.35, 0.35, n_samples))[order]]
    else:
        coords = [Y[order, j] for j in range(n_components)]
    artist = ax.scatter(*coords, **style)

    if (
        n_components == 1
        and classes is not None
        and len(classes) <= _MAX_LEGEND_CLASSES
    ):
        ax.set_yticks(np.arange(len(classes)), [str(c) for c in classes])
    elif n_components == 1:
        ax.set_yticks([])
    elif classes is not None and legend and len(classes) <= _MAX_LEGEND_CLASSES:
        from matplotlib.lines import Line2D

        handles = [
            Line2D([], [], marker="o", linestyle="", color=color, label=str(name))
            for name, color in zip(classes, _class_colors(len(classes), palette, plt))
        ]
        ax.legend(
            handles=handles,
            fontsize="small",
            frameon=False,
            loc="center left",
            bbox_to_anchor=(1.0, 0.5),
        )
    if kind == "continuous" and colorbar:
        ax.figure.colorbar(artist, ax=ax, shrink=0.8)

    if n_components == 2:
        ax.set_aspect("equal", adjustable="datalim")
    ax.set_xticks([])
    if n_components >= 2:
        ax.set_yticks([])
    if n_components == 3:
        ax.set_zticks([])
    if title is not None:
        ax.set_title(title)
    return ax
