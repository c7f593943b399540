"""The ``fasttsne`` command-line tool: data file in, embedding and plot out.

Commands
--------
``fasttsne embed INPUT -o OUTPUT [--plot PNG] [--labels ...]``
    Embed the rows of a ``.npy``, ``.npz``, ``.csv`` or ``.tsv`` file and write
    the embedding as ``.npy``, ``.csv`` or ``.tsv``.
``fasttsne demo [-o OUTPUT] [--plot PNG]``
    Embed scikit-learn's bundled handwritten digits (no download needed).

User mistakes print one line on stderr and exit with status 2; nothing heavy
is imported before the arguments are parsed.
"""

import argparse
import sys
from pathlib import Path

_READABLE = (".npy", ".npz", ".csv", ".tsv", ".txt")
_WRITABLE = (".npy", ".csv", ".tsv", ".txt")


class CLIError(Exception):
    """A user mistake, reported as one line without a traceback."""


def _delimiter(path):
    return "\t" if path.suffix.lower() == ".tsv" else ","


def _read_table(path, label_column):
    """Read a CSV/TSV file into ``(X, labels, header)``; labels may be None."""
    import numpy as np

    delimiter = _delimiter(path)
    with open(path, encoding="utf-8") as handle:
        first = handle.readline().rstrip("\n").split(delimiter)
    try:
        for value in first:
            if value.strip():
                float(value)
        header = None
    except ValueError:
        header = [name.strip() for name in first]
    raw = np.genfromtxt(
        path, delimiter=delimiter, dtype=str, skip_header=1 if header else 0
    )
    raw = np.atleast_2d(raw)
    labels = None
    if label_column is not None:
        if header is not None and label_column in header:
            column = header.index(label_column)
        else:
            try:
                column = int(label_column)
            except ValueError as exc:
                raise CLIError(
                    f"--label-column {label_column!r} is neither a column name of "
                    f"{path.name} nor an integer index."
                ) from exc
        if not -raw.shape[1] <= column < raw.shape[1]:
            raise CLIError(
                f"--label-column {column} is out of range: {path.name} has "
                f"{raw.shape[1]} columns."
            )
        labels = raw[:, column]
        raw = np.delete(raw, column, axis=1)
    try:
        X = raw.astype(np.float64)
    except ValueError as exc:
        raise CLIError(
            f"{path.name} has non-numeric values ({exc}); use --label-column for a "
            "label column."
        ) from exc
    return X, labels


def _read_input(path, labels_arg, label_column):
    """Load ``X`` (and labels when asked) from a data file."""
    import numpy as np

    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in _READABLE:
        raise CLIError(
            f"cannot read {path.name}: the input must be one of {', '.join(_READABLE)}."
        )
    if not path.is_file():
        raise CLIError(f"input file {path} does not exist.")
    labels = None
    try:
        if suffix == ".npy":
            X = np.load(path, allow_pickle=False)
        elif suffix == ".npz":
            with np.load(path, allow_pickle=False) as archive:
                keys = list(archive.keys())
                if not keys:
                    raise CLIError(f"{path.name} holds no arrays.")
                key = "X" if "X" in keys else keys[0]
                X = archive[key]
                if labels_arg is not None and labels_arg in keys:
                    labels = archive[labels_arg]
                    labels_arg = None
        else:
            X, labels = _read_table(path, label_column)
    except (OSError, ValueError) as exc:
        raise CLIError(f"cannot read {path.name}: {exc}") from exc
    if labels_arg is not None:
        labels = _read_labels(Path(labels_arg))
    return X, labels


def _read_labels(path):
    """Read one label per row from a .npy or text file."""
    import numpy as np

    if not path.is_file():
        raise CLIError(
            f"labels file {path} does not exist (or is not a key of the .npz)."
        )
    try:
        if path.suffix.lower() == ".npy":
            return np.load(path, allow_pickle=False).ravel()
        return np.atleast_1d(np.loadtxt(path, dtype=str, delimiter=_delimiter(path)))
    except (OSError, ValueError) as exc:
        raise CLIError(f"cannot read labels from {path.name}: {exc}") from exc


def _check_output(path):
    """Fail before the fit, not after it, when the output cannot be written."""
    if Path(path).suffix.lower() not in _WRITABLE:
        raise CLIError(
            f"cannot write {Path(path).name}: the output must be one of "
            f"{', '.join(_WRITABLE)}."
        )


def _write_output(path, Y):
    """Write the embedding to ``.npy`` or a delimited text file."""
    import numpy as np

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() == ".npy":
        np.save(path, Y)
    else:
        header = _delimiter(path).join(f"tsne{i}" for i in range(Y.shape[1]))
        np.savetxt(path, Y, delimiter=_delimiter(path), header=header, comments="")


def _plot(path, Y, labels, title):
    """Scatter plot of a 1-D or 2-D embedding, coloured by labels when given."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise CLIError(
            'plotting needs matplotlib: pip install "fasttsne[plot]"'
        ) from exc
    import numpy as np

    fig, ax = plt.subplots(figsize=(7, 7), dpi=120)
    y_axis = Y[:, 1] if Y.shape[1] > 1 else np.zeros(len(Y))
    size = max(0.5, min(10.0, 4000.0 / len(Y)))
    if labels is None:
        ax.scatter(Y[:, 0], y_axis, s=size, c="tab:blue", linewidths=0)
    else:
        classes, codes = np.unique(np.asarray(labels).astype(str), return_inverse=True)
        cmap = plt.get_cmap("tab10" if len(classes) <= 10 else "tab20")
        for code, name in enumerate(classes):
            mask = codes == code
            ax.scatter(
                Y[mask, 0],
                y_axis[mask],
                s=size,
                color=cmap(code % cmap.N),
                linewidths=0,
                label=name,
            )
        if len(classes) <= 20:
            ax.legend(
                markerscale=max(1.0, 6.0 / size), fontsize=8, frameon=False, loc="best"
            )
    ax.set_title(title)
    ax.set_xticks([])
    ax.set_yticks([])
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _build_parser():
    parser = argparse.ArgumentParser(
        prog="fasttsne",
        description="Embed data with t-SNE (Barnes-Hut or FFT interpolation).",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    def add_common(sub):
        sub.add_argument("--plot", metavar="PNG", help="also write a scatter plot")
        sub.add_argument(
            "--method",
            choices=["bh", "fft"],
            default="bh",
            help="repulsion: Barnes-Hut (default) or FFT interpolation",
        )
        sub.add_argument("--n-components", type=int, default=2)
        sub.add_argument("--perplexity", type=float, default=30.0)
        sub.add_argument("--max-iter", type=int, default=750)
        sub.add_argument("--early-exaggeration", type=float, default=12.0)
        sub.add_argument("--learning-rate", default="auto")
        sub.add_argument("--metric", default="euclidean")
        sub.add_argument("--init", choices=["pca", "spectral", "random"], default="pca")
        sub.add_argument("--dof", type=float, default=1.0)
        sub.add_argument(
            "--neighbors", choices=["auto", "exact", "approx"], default="auto"
        )
        sub.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
        sub.add_argument("--random-state", type=int, default=None)
        sub.add_argument(
            "--n-jobs", type=int, default=-1, help="threads (default -1: all cores)"
        )
        sub.add_argument("-v", "--verbose", action="store_true")

    embed = commands.add_parser("embed", help="embed the rows of a data file")
    embed.add_argument("input", help="data file: .npy, .npz, .csv, .tsv")
    embed.add_argument(
        "-o", "--output", required=True, help="embedding file: .npy, .csv or .tsv"
    )
    embed.add_argument(
        "--labels",
        help="labels for the plot: a .npy/.txt/.csv file, or a key of the .npz input",
    )
    embed.add_argument(
        "--label-column",
        help="for CSV/TSV input: the column (name or index) holding labels",
    )
    add_common(embed)

    demo = commands.add_parser("demo", help="embed scikit-learn's digits")
    demo.add_argument("-o", "--output", default="digits_embedding.npy")
    add_common(demo)
    demo.set_defaults(random_state=0)
    return parser


def _estimator(args):
    """The estimator the options describe."""
    from fasttsne import BarnesHutTSNE, FFTInterpTSNE

    learning_rate = args.learning_rate
    if learning_rate != "auto":
        try:
            learning_rate = float(learning_rate)
        except ValueError as exc:
            raise CLIError(
                f"--learning-rate must be 'auto' or a number, not {learning_rate!r}."
            ) from exc
    cls = BarnesHutTSNE if args.method == "bh" else FFTInterpTSNE
    return cls(
        args.n_components,
        perplexity=args.perplexity,
        max_iter=args.max_iter,
        early_exaggeration=args.early_exaggeration,
        learning_rate=learning_rate,
        metric=args.metric,
        init=args.init,
        dof=args.dof,
        neighbors=args.neighbors,
        device=args.device,
        random_state=args.random_state,
        n_jobs=args.n_jobs,
        verbose=int(args.verbose),
    )


def _run(args):
    import numpy as np

    if args.command == "demo":
        from sklearn.datasets import load_digits

        X, labels = load_digits(return_X_y=True)
        title = f"fasttsne {args.method}: scikit-learn digits ({len(X)} images)"
    else:
        X, labels = _read_input(args.input, args.labels, args.label_column)
        title = f"fasttsne {args.method}: {Path(args.input).name}"
    _check_output(args.output)
    if labels is not None and len(labels) != len(X):
        raise CLIError(f"{len(labels)} labels for {len(X)} rows of data.")
    if np.asarray(X).ndim != 2:
        raise CLIError(f"the data must be a 2-D table; it has shape {np.shape(X)}.")
    Y = _estimator(args).fit_transform(X)
    _write_output(args.output, Y)
    if args.plot:
        _plot(args.plot, Y, labels, title)
    print(
        f"fasttsne: wrote {args.output}" + (f" and {args.plot}" if args.plot else ""),
        file=sys.stderr,
    )


def main(argv=None):
    """Run the command line; returns the exit status.

    Parameters
    ----------
    argv : list of str, default=None
        Arguments without the program name; None reads ``sys.argv``.

    Returns
    -------
    status : int
        0 on success, 2 on a user mistake.
    """
    parser = _build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse already printed the message
        return int(exc.code or 0)
    try:
        _run(args)
    except (CLIError, ValueError, TypeError, ImportError, MemoryError) as exc:
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        print(f"fasttsne: error: {message}", file=sys.stderr)
        return 2
    return 0
