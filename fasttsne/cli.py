"""The ``fasttsne`` command-line tool: data file in, embedding and plot out.

Commands
--------
``fasttsne embed INPUT -o OUTPUT [--plot PNG] [--labels ...] [options]``
    Embed the rows of a ``.npy``, ``.npz``, ``.csv``, ``.tsv`` or ``.txt``
    file (the text formats also gzipped, ``.csv.gz``; ``.parquet`` with
    pandas and pyarrow) and write the embedding as ``.npy``, ``.csv``,
    ``.tsv`` or ``.txt``, row ids first when the input has them.
``fasttsne demo [-o OUTPUT] [--plot PNG] [options]``
    Embed scikit-learn's bundled handwritten digits (no download needed).

Every option of the estimators has a flag (``--perplexity``, ``--affinity``,
``--angle``, ``--min-num-intervals``...); ``fasttsne embed --help`` lists
them with their defaults. Nothing heavy is imported before the arguments are parsed, so
``--help`` and ``--version`` answer at once.

Errors: a user mistake (a bad file, option or data, a missing optional
package) prints one line on stderr and exits with status 2; an internal
error keeps its traceback (status 1), so that a bug is never disguised as a
mistake. The data files are read and written by :mod:`fasttsne._tables`.
"""

import argparse
import sys
from pathlib import Path

from fasttsne._tables import WRITABLE, Table, TableError, read_table, write_table

__all__ = ["main"]

# --method auto picks FFTInterpTSNE from this many samples on (for 1-D and
# 2-D embeddings) and BarnesHutTSNE below: where the two cross in
# benchmarks/bench_tsne.py (docs/user_guide.rst, "Barnes-Hut or FFT?").
_FFT_MIN_SAMPLES = 20_000


# Defaults shown in --help; tests/test_cli.py checks them against the
# estimators' own defaults, so that the two cannot drift apart.
_DEFAULTS = {
    "n_components": 2,
    "perplexity": 30.0,
    "affinity": "perplexity",
    "n_neighbors": 15,
    "early_exaggeration": 12.0,
    "early_exaggeration_iter": 250,
    "exaggeration": None,
    "learning_rate": "auto",
    "max_iter": 750,
    "n_iter_without_progress": 300,
    "min_grad_norm": 1e-7,
    "metric": "euclidean",
    "init": "pca",
    "dof": 1.0,
    "neighbors": "auto",
    "device": "auto",
    "angle": 0.5,
    "n_interpolation_points": 3,
    "min_num_intervals": 50,
    "ints_in_interval": 1.0,
    "max_num_intervals": 300,
    "repulsion": "auto",
}
_BH_KNOBS = ("angle",)
_FFT_KNOBS = (
    "n_interpolation_points",
    "min_num_intervals",
    "ints_in_interval",
    "max_num_intervals",
    "repulsion",
)


class CLIError(Exception):
    """A user mistake, reported as one line without a traceback."""


class _Parser(argparse.ArgumentParser):
    """argparse, with its errors on one line instead of a usage block."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _check_table(table, name):
    """A numeric 2-D table, labels and ids one per row."""
    import numpy as np

    X = table.X
    if X.dtype.kind not in "biuf":
        raise CLIError(f"{name} holds {X.dtype} values; t-SNE needs numbers.")
    if X.ndim != 2:
        raise CLIError(f"the data must be a 2-D table; {name} has shape {X.shape}.")
    for what, values in (("labels", table.labels), ("row ids", table.ids)):
        if values is not None and len(values) != len(X):
            raise CLIError(f"{len(values)} {what} for {len(X)} rows of data.")
    if X.dtype.kind in "biu":
        table.X = X.astype(np.float64)


# ------------------------------------------------------------------- writing
def _check_writable(path, option):
    """Fail before the fit, not after it, when ``path`` cannot be written."""
    import os

    path = Path(path)
    if path.is_dir():
        raise CLIError(f"{option} {path} is a directory.")
    parent = path.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise CLIError(f"cannot write {path}: {parent} is not a directory.")
    if not os.access(parent, os.W_OK) or (
        path.exists() and not os.access(path, os.W_OK)
    ):
        raise CLIError(f"cannot write {path}: permission denied.")


def _check_outputs(args):
    """Check the output, plot and format options before reading or fitting."""
    suffix = Path(args.output).suffix.lower()
    if suffix not in WRITABLE:
        raise CLIError(
            f"cannot write {Path(args.output).name}: the output must be one of "
            f"{', '.join(WRITABLE)}."
        )
    if getattr(args, "id_column", None) is not None and suffix == ".npy":
        raise CLIError(
            "--id-column writes the ids beside the embedding: use a .csv, .tsv or "
            ".txt output."
        )
    try:
        args.float_format % 1.0  # pylint: disable=pointless-statement
    except (TypeError, ValueError) as exc:
        raise CLIError(
            f"--float-format {args.float_format!r} is not a format for one number "
            "(e.g. %.8g)."
        ) from exc
    _check_writable(args.output, "--output")
    if args.plot is None:
        return
    _check_writable(args.plot, "--plot")
    try:
        from matplotlib.backend_bases import FigureCanvasBase
    except ImportError as exc:
        raise CLIError('--plot needs matplotlib: pip install "fasttsne[plot]"') from exc
    formats = FigureCanvasBase.get_supported_filetypes()
    if Path(args.plot).suffix.lower().lstrip(".") not in formats:
        raise CLIError(
            f"cannot plot to {Path(args.plot).name}: use one of "
            f"{', '.join('.' + name for name in sorted(formats))}."
        )


def _plot(path, Y, labels, title):
    """Draw ``fasttsne.plot`` off-screen into ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from fasttsne._plot import plot

    ax = plot(Y, labels, title=title)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    ax.figure.savefig(path, dpi=150, bbox_inches="tight")
    plt.close(ax.figure)


# -------------------------------------------------------------------- parser
def _number_or_auto(text):
    """``--learning-rate``: a positive number or "auto"."""
    if text == "auto":
        return text
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"must be 'auto' or a number, not {text!r}"
        ) from None


def _perplexities(text):
    """``--perplexity``: a number, or comma-separated numbers for multiscale."""
    try:
        values = [float(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"must be a number or comma-separated numbers, not {text!r}"
        ) from None
    return values[0] if len(values) == 1 else values


def _add_estimator_options(sub):
    """The estimators' parameters, with their defaults in the help."""

    def option(group, flag, help_text, default=None, **kwargs):
        dest = flag.lstrip("-").replace("-", "_")
        shown = _DEFAULTS.get(dest, default)
        group.add_argument(
            flag,
            default=_DEFAULTS.get(dest, default) if dest not in knobs else None,
            help=f"{help_text} (default: {'none' if shown is None else shown})",
            **kwargs,
        )

    knobs = (*_BH_KNOBS, *_FFT_KNOBS)
    tsne = sub.add_argument_group("t-SNE")
    option(
        tsne,
        "--method",
        "repulsion by Barnes-Hut (bh) or FFT interpolation (fft); auto: fft "
        f"from {_FFT_MIN_SAMPLES:,} points in 1-D/2-D, bh otherwise",
        default="auto",
        choices=["auto", "bh", "fft"],
    )
    option(tsne, "--n-components", "embedding dimension", type=int, choices=[1, 2, 3])
    option(
        tsne,
        "--perplexity",
        "effective number of neighbours; comma-separated values (10,50) with "
        "--affinity multiscale",
        type=_perplexities,
    )
    option(
        tsne,
        "--affinity",
        "input-space affinities: perplexity-calibrated Gaussians, equal weights "
        "on the --n-neighbors nearest (uniform), or the average over several "
        "perplexities (multiscale)",
        choices=["perplexity", "uniform", "multiscale"],
    )
    option(
        tsne,
        "--n-neighbors",
        "neighbours per point with --affinity uniform",
        type=int,
    )
    option(tsne, "--metric", "distance of the input space (scikit-learn names)")
    option(
        tsne,
        "--neighbors",
        "nearest-neighbour search",
        choices=["auto", "exact", "approx"],
    )
    option(
        tsne,
        "--init",
        "initial embedding",
        choices=["pca", "spectral", "random"],
    )
    option(
        tsne,
        "--dof",
        "degrees of freedom of the output kernel; < 1 separates clusters more",
        type=float,
    )
    option(tsne, "--random-state", "seed, for reproducible output", type=int)

    opt = sub.add_argument_group("optimisation")
    option(
        opt,
        "--learning-rate",
        "step size, or auto = max(N / early_exaggeration, 50); the same number "
        "takes the same steps as in scikit-learn",
        type=_number_or_auto,
    )
    option(opt, "--max-iter", "iterations, early exaggeration included", type=int)
    option(
        opt, "--early-exaggeration", "attraction factor of the early phase", type=float
    )
    option(
        opt,
        "--early-exaggeration-iter",
        "length of the early-exaggeration phase",
        type=int,
    )
    option(
        opt,
        "--exaggeration",
        "attraction factor of the main phase; none means 1",
        type=float,
    )
    option(
        opt,
        "--n-iter-without-progress",
        "stop after this many iterations without progress; -1: never",
        type=int,
    )
    option(
        opt, "--min-grad-norm", "stop when the gradient norm falls to this", type=float
    )

    bh = sub.add_argument_group("Barnes-Hut (--method bh)")
    option(bh, "--angle", "opening angle theta; 0 is exact", type=float)
    fft = sub.add_argument_group("FFT interpolation (--method fft)")
    option(
        fft, "--n-interpolation-points", "interpolation nodes per interval", type=int
    )
    option(fft, "--min-num-intervals", "fewest grid intervals per axis", type=int)
    option(fft, "--ints-in-interval", "embedding units per grid interval", type=float)
    option(
        fft,
        "--repulsion",
        "grid: interpolate at every iteration (FIt-SNE); auto: a Barnes-Hut walk "
        "where the grid would cost more",
        choices=["auto", "grid"],
    )
    option(fft, "--max-num-intervals", "most grid intervals per axis", type=int)

    run = sub.add_argument_group("running")
    option(
        run,
        "--device",
        "where the gradient runs (cuda needs fasttsne[gpu])",
        choices=["auto", "cpu", "cuda"],
    )
    option(
        run,
        "--n-jobs",
        "threads; -1: every CPU this process may use",
        default=-1,
        type=int,
    )
    chatter = run.add_mutually_exclusive_group()
    chatter.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="report progress even when stderr is not a terminal",
    )
    chatter.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        help="print nothing but errors (progress shows on a terminal by default)",
    )


def _add_output_options(sub, output_default=None):
    """Output file, plot and number format."""
    out = sub.add_argument_group("output")
    out.add_argument(
        "-o",
        "--output",
        required=output_default is None,
        default=output_default,
        help="embedding file: .npy, .csv, .tsv or .txt"
        + ("" if output_default is None else f" (default: {output_default})"),
    )
    out.add_argument(
        "--plot",
        metavar="IMAGE",
        help="also draw a scatter plot (.png, .pdf, .svg...; needs matplotlib)",
    )
    out.add_argument(
        "--float-format",
        default="%.8g",
        help="printf format of the numbers of a text output (default: %%.8g)",
    )


def _build_parser():
    from fasttsne import __version__

    parser = _Parser(
        prog="fasttsne",
        description="Embed data with t-SNE (Barnes-Hut or FFT interpolation).",
        epilog="fasttsne COMMAND --help lists the options of a command.",
    )
    parser.add_argument(
        "--version", action="version", version=f"fasttsne {__version__}"
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    embed = commands.add_parser(
        "embed",
        help="embed the rows of a data file",
        description="Embed the rows of a data file and write the embedding.",
    )
    embed.add_argument(
        "input",
        help="data file: .npy, .npz, .csv, .tsv, .txt (also .gz), .parquet; a "
        "table's first row is its header unless it looks like data",
    )
    _add_output_options(embed)
    data = embed.add_argument_group("input")
    data.add_argument(
        "--labels",
        help="labels for the plot: a .npy or text file, or a key of the .npz input",
    )
    data.add_argument(
        "--label-column",
        help="the table column (name or number) holding labels; not a feature",
    )
    data.add_argument(
        "--id-column",
        help="the column (or .npz key) of row ids, written first in the output; "
        "a pandas CSV's unnamed index column is used by default",
    )
    data.add_argument(
        "--header",
        choices=["auto", "yes", "no"],
        default="auto",
        help="whether a CSV/TSV/TXT table starts with a header row (default: auto)",
    )
    _add_estimator_options(embed)

    demo = commands.add_parser(
        "demo",
        help="embed scikit-learn's bundled digits",
        description="Embed scikit-learn's 1,797 handwritten digits (no download).",
    )
    _add_output_options(demo, output_default="digits_embedding.npy")
    _add_estimator_options(demo)
    demo.set_defaults(random_state=0, labels=None, label_column=None, id_column=None)
    return parser


# ------------------------------------------------------------------- running
def _resolve_method(args, n_samples):
    """``--method``: "bh" or "fft", from the knobs given and the data size."""
    given = {
        "bh": [k for k in _BH_KNOBS if getattr(args, k) is not None],
        "fft": [k for k in _FFT_KNOBS if getattr(args, k) is not None],
    }
    for method, other in (("bh", "fft"), ("fft", "bh")):
        if given[other] and args.method == method:
            flag = "--" + given[other][0].replace("_", "-")
            raise CLIError(f"{flag} is an option of --method {other}.")
    if args.method != "auto":
        return args.method
    if given["bh"] and given["fft"]:
        raise CLIError(
            "options of both --method bh and --method fft were given; choose one."
        )
    if given["bh"] or given["fft"]:
        return "bh" if given["bh"] else "fft"
    if args.n_components <= 2 and n_samples >= _FFT_MIN_SAMPLES:
        return "fft"
    return "bh"


def _estimator(args, method, verbose):
    """The estimator the options describe."""
    from fasttsne.tsne import BarnesHutTSNE, FFTInterpTSNE

    knobs = _BH_KNOBS if method == "bh" else _FFT_KNOBS
    params = {
        name: getattr(args, name)
        for name in _DEFAULTS
        if name not in (*_BH_KNOBS, *_FFT_KNOBS, "n_components")
    }
    params.update(
        {name: getattr(args, name) for name in knobs if getattr(args, name) is not None}
    )
    cls = BarnesHutTSNE if method == "bh" else FFTInterpTSNE
    return cls(
        args.n_components,
        random_state=args.random_state,
        n_jobs=args.n_jobs,
        verbose=verbose,
        **params,
    )


def _run(args):
    """Check, read, embed, write and plot as ``args`` say."""
    from fasttsne._progress import Reporter, _stderr_is_terminal

    verbose = 0 if args.quiet else int(args.verbose or _stderr_is_terminal())
    report = Reporter(verbose)
    _check_outputs(args)
    if args.command == "demo":
        from sklearn.datasets import load_digits

        digits = load_digits()
        table = Table(digits.data, digits.target)
        name = f"scikit-learn digits ({len(table.X)} images)"
    else:
        table = read_table(
            args.input,
            labels=args.labels,
            label_column=args.label_column,
            id_column=args.id_column,
            header=args.header,
        )
        name = Path(args.input).name
        _check_table(table, name)
    report(f"read {name}: {table.X.shape[0]} rows x {table.X.shape[1]} columns")
    X = table.X
    method = _resolve_method(args, X.shape[0])
    Y = _estimator(args, method, verbose).fit_transform(X)
    try:
        write_table(args.output, Y, table.ids, table.id_name, args.float_format)
        if args.plot:
            _plot(args.plot, Y, table.labels, f"fasttsne {method}: {name}")
    except OSError as exc:
        raise CLIError(f"cannot write the output: {exc}") from exc
    if not args.quiet:
        print(
            f"fasttsne: wrote {args.output}"
            + (f" and {args.plot}" if args.plot else ""),
            file=sys.stderr,
        )


def _raised_by_validation(exc):
    """Whether ``exc`` comes from a check of the input, not from a bug.

    True when the innermost frame that raised it is fasttsne's own Python code
    (its deliberate ``raise ValueError(...)`` naming the problem) or
    scikit-learn's validation of parameters and data; False for errors raised
    inside numpy, scipy or the compiled kernels, which are internal errors.
    """
    traceback = exc.__traceback__
    if traceback is None:
        return False
    while traceback.tb_next is not None:
        traceback = traceback.tb_next
    where = Path(traceback.tb_frame.f_code.co_filename).resolve()
    package = Path(__file__).resolve().parent
    if package in where.parents:
        return "_cython" not in where.relative_to(package).parts
    return (
        where.name in ("validation.py", "_param_validation.py")
        and where.parent.name == "utils"
        and where.parent.parent.name == "sklearn"
    )


def _one_line(exc):
    """The first line of an exception's message."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def main(argv=None):
    """Run the command line; returns the exit status.

    Parameters
    ----------
    argv : list of str, default=None
        Arguments without the program name; None reads ``sys.argv``.

    Returns
    -------
    status : int
        0 on success, 2 on a user mistake (bad file, option or data, or a
        missing optional package), 130 when interrupted. Internal errors
        raise, with their traceback.
    """
    parser = _build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse printed the help, version or error
        return int(exc.code or 0)
    try:
        _run(args)
    except (CLIError, TableError) as exc:
        message = _one_line(exc)
    except ImportError as exc:
        if "fasttsne[" not in str(exc):
            raise
        message = _one_line(exc)
    except (ValueError, TypeError) as exc:
        if not _raised_by_validation(exc):
            raise
        message = _one_line(exc)
    except KeyboardInterrupt:
        print("fasttsne: interrupted", file=sys.stderr)
        return 130
    else:
        return 0
    print(f"fasttsne: error: {message}", file=sys.stderr)
    return 2
