"""The command-line tool: options, files in and out, and one-line errors.

The tests named ``test_finding_*`` reproduce the command-line findings of the
reliability review (issue 13), one each.
"""

import gzip
import os
import subprocess
import sys
import warnings
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from fasttsne import BarnesHutTSNE, FFTInterpTSNE, __version__, cli
from fasttsne import _tables
from fasttsne.cli import main

ROOT = Path(__file__).resolve().parents[1]
FAST = ["--max-iter", "260", "--perplexity", "10", "--random-state", "0"]


@pytest.fixture
def data(rng):
    centers = rng.normal(scale=8, size=(3, 5))
    labels = np.repeat(np.arange(3), 30)
    X = centers[labels] + rng.normal(size=(90, 5))
    return X, labels


@pytest.fixture(params=["pandas", "numpy"])
def engine(request, monkeypatch):
    """Run a test with pandas' CSV parser and with numpy's (pandas absent)."""
    if request.param == "pandas":
        pytest.importorskip("pandas")
    else:
        monkeypatch.setattr(_tables, "_import_pandas", lambda: None)
    return request.param


def _embed(path, out, *extra):
    return main(["embed", str(path), "-o", str(out), *FAST, *extra])


def _reference(tmp_path, X, name="ref.npy"):
    """The embedding of ``X`` through an .npy file: what every reader must match."""
    np.save(tmp_path / "ref_input.npy", X)
    assert _embed(tmp_path / "ref_input.npy", tmp_path / name) == 0
    return np.load(tmp_path / name)


def _one_line_error(capsys, status, *fragments):
    err = capsys.readouterr().err
    assert status == 2, err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1, err
    for fragment in fragments:
        assert fragment in err, err
    return err


@pytest.fixture
def captured(monkeypatch):
    """Replace the fit by zeros and keep the estimator the options built."""
    seen = {}
    build = cli._estimator  # pylint: disable=protected-access

    def fake(args, method, verbose):
        estimator = build(args, method, verbose)
        estimator.fit_transform = lambda X: np.zeros((len(X), estimator.n_components))
        seen["estimator"] = estimator
        return estimator

    monkeypatch.setattr(cli, "_estimator", fake)
    return seen


# ---------------------------------------------------------------- basic runs
def test_embed_npy_to_npy_with_plot(tmp_path, data):
    X, labels = data
    np.save(tmp_path / "X.npy", X)
    np.save(tmp_path / "y.npy", labels)
    out, png = tmp_path / "Y.npy", tmp_path / "plot.png"
    status = _embed(
        tmp_path / "X.npy", out, "--plot", str(png), "--labels", str(tmp_path / "y.npy")
    )
    assert status == 0
    Y = np.load(out)
    assert Y.shape == (90, 2) and np.all(np.isfinite(Y))
    assert png.stat().st_size > 10_000
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_embed_csv_with_text_label_column_matches_npy(tmp_path, data, engine):
    X, labels = data
    names = np.array(["ant", "bee", "cat"])[labels]
    with open(tmp_path / "X.csv", "w", encoding="utf-8") as handle:
        handle.write(",".join([f"f{i}" for i in range(5)] + ["kind"]) + "\n")
        for row, name in zip(X, names):
            handle.write(",".join(f"{v:.17g}" for v in row) + f",{name}\n")
    reference = _reference(tmp_path, X)
    status = _embed(tmp_path / "X.csv", tmp_path / "Y.npy", "--label-column", "kind")
    assert status == 0, engine
    # The label column was removed from X: same data, same seed, same embedding.
    assert_array_equal(np.load(tmp_path / "Y.npy"), reference)


def test_headerless_csv_with_label_and_single_column_and_txt(
    tmp_path, data, monkeypatch, engine
):
    X, labels = data
    seen = {}
    monkeypatch.setattr(cli, "_plot", lambda path, Y, lab, title: seen.update(lab=lab))
    with open(tmp_path / "X.csv", "w", encoding="utf-8") as handle:
        for row, label in zip(X, labels):
            handle.write(",".join(f"{v:.6f}" for v in row) + f",c{label}\n")
    status = _embed(
        tmp_path / "X.csv",
        tmp_path / "Y.npy",
        "--label-column",
        "5",
        "--plot",
        str(tmp_path / "p.png"),
    )
    assert status == 0, engine
    assert np.load(tmp_path / "Y.npy").shape == (90, 2)  # no row taken as a header
    assert list(seen["lab"]) == [f"c{label}" for label in labels]
    np.savetxt(tmp_path / "one.csv", X[:, :1], delimiter=",")
    assert _embed(tmp_path / "one.csv", tmp_path / "one.npy") == 0
    assert np.load(tmp_path / "one.npy").shape == (90, 2)
    np.savetxt(tmp_path / "X.txt", X)  # whitespace-separated
    assert _embed(tmp_path / "X.txt", tmp_path / "Y.txt") == 0
    assert np.loadtxt(tmp_path / "Y.txt", skiprows=1).shape == (90, 2)


def test_embed_npz_with_label_key_and_tsv_output(tmp_path, data, monkeypatch):
    X, labels = data
    seen = {}
    monkeypatch.setattr(cli, "_plot", lambda path, Y, lab, title: seen.update(lab=lab))
    np.savez(tmp_path / "d.npz", X=X, y=labels)
    status = _embed(
        tmp_path / "d.npz",
        tmp_path / "Y.tsv",
        "--labels",
        "y",
        "--plot",
        str(tmp_path / "p.png"),
    )
    assert status == 0
    assert np.loadtxt(tmp_path / "Y.tsv", skiprows=1).shape == (90, 2)
    assert_array_equal(seen["lab"], labels)


def test_plot_into_a_new_folder_and_plots_of_1d_and_3d(tmp_path, data):
    X, labels = data
    np.save(tmp_path / "X.npy", X)
    np.save(tmp_path / "y.npy", labels.astype(float) + 0.5)  # continuous labels
    for n_components in (1, 3):
        png = tmp_path / "new" / f"{n_components}" / "p.png"
        status = _embed(
            tmp_path / "X.npy",
            tmp_path / f"Y{n_components}.npy",
            "--plot",
            str(png),
            "--n-components",
            str(n_components),
            "--labels",
            str(tmp_path / "y.npy"),
        )
        assert status == 0
        assert png.stat().st_size > 5_000
        assert np.load(tmp_path / f"Y{n_components}.npy").shape == (90, n_components)


def test_same_seed_same_output(tmp_path, data):
    X, _ = data
    np.save(tmp_path / "X.npy", X)
    for name in ("a", "b"):
        assert _embed(tmp_path / "X.npy", tmp_path / f"{name}.npy") == 0
    assert_array_equal(np.load(tmp_path / "a.npy"), np.load(tmp_path / "b.npy"))


def test_demo_runs_on_bundled_digits(tmp_path):
    out, png = tmp_path / "digits.npy", tmp_path / "digits.png"
    status = main(["demo", "-o", str(out), "--plot", str(png), "--max-iter", "260"])
    assert status == 0
    assert np.load(out).shape == (1797, 2)
    assert png.stat().st_size > 10_000


# ------------------------------------------------------------------- options
def test_version(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"fasttsne {__version__}"


def test_help_shows_a_default_for_every_option(capsys):
    assert main(["embed", "--help"]) == 0
    text = capsys.readouterr().out
    parser = cli._build_parser()  # pylint: disable=protected-access
    embed = parser._subparsers._group_actions[0].choices["embed"]  # noqa
    described = [
        action
        for action in embed._actions  # pylint: disable=protected-access
        if action.option_strings and action.dest not in ("help",)
    ]
    assert len(described) >= 30
    for action in described:
        assert action.help, action.dest
        assert action.option_strings[-1] in text
    optional = {"output", "plot", "labels", "label_column", "id_column", "verbose"}
    for action in described:
        if action.dest not in optional and action.dest != "quiet":
            assert "(default:" in action.help, action.dest


def test_help_is_fast_imports_nothing_heavy():
    code = (
        "import sys\n"
        "from fasttsne.cli import main\n"
        "status = main(['embed', '--help'])\n"
        "heavy = [m for m in ('numpy', 'scipy', 'sklearn', 'matplotlib', 'pandas')"
        " if m in sys.modules]\n"
        "print(status, heavy, file=sys.stderr)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert result.stderr.strip() == "0 []"
    assert "--perplexity" in result.stdout


def test_cli_defaults_are_the_estimators_defaults():
    bh, fft = BarnesHutTSNE().get_params(), FFTInterpTSNE().get_params()
    for name, default in cli._DEFAULTS.items():  # pylint: disable=protected-access
        assert bh.get(name, fft.get(name)) == default, name


@pytest.mark.parametrize(
    "flags, expected",
    [
        (["--perplexity", "7.5"], {"perplexity": 7.5}),
        (
            ["--affinity", "multiscale", "--perplexity", "5,20"],
            {"affinity": "multiscale", "perplexity": [5.0, 20.0]},
        ),
        (
            ["--affinity", "uniform", "--n-neighbors", "10"],
            {"affinity": "uniform", "n_neighbors": 10},
        ),
        (["--n-components", "1"], {"n_components": 1}),
        (["--early-exaggeration", "4"], {"early_exaggeration": 4.0}),
        (["--early-exaggeration-iter", "100"], {"early_exaggeration_iter": 100}),
        (["--exaggeration", "2.5"], {"exaggeration": 2.5}),
        (["--learning-rate", "333"], {"learning_rate": 333.0}),
        (["--learning-rate", "auto"], {"learning_rate": "auto"}),
        (["--max-iter", "300"], {"max_iter": 300}),
        (["--n-iter-without-progress", "-1"], {"n_iter_without_progress": -1}),
        (["--min-grad-norm", "1e-5"], {"min_grad_norm": 1e-5}),
        (["--metric", "cosine"], {"metric": "cosine"}),
        (["--init", "random"], {"init": "random"}),
        (["--dof", "0.5"], {"dof": 0.5}),
        (["--neighbors", "exact"], {"neighbors": "exact"}),
        (["--device", "cpu"], {"device": "cpu"}),
        (["--random-state", "7"], {"random_state": 7}),
        (["--n-jobs", "2"], {"n_jobs": 2}),
        ([], {"n_jobs": -1, "random_state": None}),
        (["--angle", "0.25"], {"angle": 0.25, "class": "BarnesHutTSNE"}),
        (["--method", "fft"], {"class": "FFTInterpTSNE"}),
        (["--method", "bh"], {"class": "BarnesHutTSNE"}),
        (
            ["--n-interpolation-points", "4", "--min-num-intervals", "20"],
            {
                "n_interpolation_points": 4,
                "min_num_intervals": 20,
                "class": "FFTInterpTSNE",
            },
        ),
        (
            ["--ints-in-interval", "2", "--max-num-intervals", "100"],
            {"ints_in_interval": 2.0, "max_num_intervals": 100},
        ),
        (["--repulsion", "grid"], {"repulsion": "grid", "class": "FFTInterpTSNE"}),
        (["-q"], {"verbose": 0}),
        (["-v"], {"verbose": 1}),
    ],
)
def test_every_option_reaches_the_estimator(tmp_path, data, captured, flags, expected):
    X, _ = data
    np.save(tmp_path / "X.npy", X)
    status = main(["embed", str(tmp_path / "X.npy"), "-o", str(tmp_path / "Y.npy")])
    assert status == 0
    status = main(
        ["embed", str(tmp_path / "X.npy"), "-o", str(tmp_path / "Y.npy"), *flags]
    )
    assert status == 0
    estimator = captured["estimator"]
    expected = dict(expected)
    name = expected.pop("class", None)
    if name is not None:
        assert type(estimator).__name__ == name
    params = estimator.get_params()
    for key, value in expected.items():
        assert params[key] == value, key


def test_method_auto_uses_the_measured_crossover(monkeypatch):
    args = SimpleNamespace(method="auto", n_components=2, angle=None)
    for knob in cli._FFT_KNOBS:  # pylint: disable=protected-access
        setattr(args, knob, None)
    crossover = cli._FFT_MIN_SAMPLES  # pylint: disable=protected-access
    resolve = cli._resolve_method  # pylint: disable=protected-access
    assert resolve(args, crossover - 1) == "bh"
    assert resolve(args, crossover) == "fft"
    args.n_components = 3  # FFT interpolation is 1-D and 2-D only
    assert resolve(args, 10 * crossover) == "bh"
    args.n_components = 1
    assert resolve(args, crossover) == "fft"
    # A knob of one method chooses it.
    args.n_components, args.angle = 2, 0.3
    assert resolve(args, 10 * crossover) == "bh"
    args.angle, args.min_num_intervals = None, 20
    assert resolve(args, 10) == "fft"


def test_method_knob_of_the_other_method_is_refused(tmp_path, data, capsys):
    X, _ = data
    np.save(tmp_path / "X.npy", X)
    status = _embed(tmp_path / "X.npy", tmp_path / "Y.npy", "--method", "fft")
    assert status == 0
    capsys.readouterr()
    status = _embed(
        tmp_path / "X.npy", tmp_path / "Y.npy", "--method", "fft", "--angle", "0.2"
    )
    _one_line_error(capsys, status, "--angle is an option of --method bh")
    status = _embed(
        tmp_path / "X.npy", tmp_path / "Y.npy", "--method", "bh", "--repulsion", "grid"
    )
    _one_line_error(capsys, status, "--repulsion is an option of --method fft")
    status = _embed(
        tmp_path / "X.npy",
        tmp_path / "Y.npy",
        "--angle",
        "0.2",
        "--ints-in-interval",
        "2",
    )
    _one_line_error(capsys, status, "choose one")


def test_verbosity(tmp_path, data, capsys):
    X, _ = data
    np.save(tmp_path / "X.npy", X)
    assert _embed(tmp_path / "X.npy", tmp_path / "Y.npy", "-q") == 0
    assert capsys.readouterr().err == ""
    # stderr is not a terminal under pytest: no progress unless -v.
    assert _embed(tmp_path / "X.npy", tmp_path / "Y.npy") == 0
    assert capsys.readouterr().err.strip().splitlines() == [
        f"fasttsne: wrote {tmp_path / 'Y.npy'}"
    ]
    assert _embed(tmp_path / "X.npy", tmp_path / "Y.npy", "-v") == 0
    err = capsys.readouterr().err
    assert "[fasttsne] read X.npy: 90 rows x 5 columns" in err
    assert "[fasttsne] BarnesHutTSNE: 90 samples" in err
    assert "[fasttsne] done in" in err


def test_progress_by_default_on_a_terminal(tmp_path, data, monkeypatch):
    """What a user's shell shows: progress without -v, silence with -q."""
    X, _ = data
    np.save(tmp_path / "X.npy", X)
    monkeypatch.setattr("fasttsne._progress._stderr_is_terminal", lambda: True)
    monkeypatch.setitem(sys.modules, "tqdm", None)  # plain lines, no bar
    shown = []
    monkeypatch.setattr(
        "fasttsne._progress._Console.emit",
        lambda self, record: shown.append(record.getMessage()),
    )
    assert _embed(tmp_path / "X.npy", tmp_path / "Y.npy") == 0
    assert any(m.startswith("done in") for m in shown)
    shown.clear()
    assert _embed(tmp_path / "X.npy", tmp_path / "Y.npy", "-q") == 0
    assert not shown


def test_row_ids_are_carried_to_the_output(tmp_path, data, engine):
    X, labels = data
    ids = [f"cell-{i:03d}" for i in range(90)]
    with open(tmp_path / "X.csv", "w", encoding="utf-8") as handle:
        handle.write("barcode,a,b,c,d,e,kind\n")
        for row_id, row, label in zip(ids, X, labels):
            handle.write(row_id + "," + ",".join(f"{v:.17g}" for v in row))
            handle.write(f",k{label}\n")
    reference = _reference(tmp_path, X)
    for column in ("barcode", "0"):
        out = tmp_path / f"Y_{column}.csv"
        status = _embed(
            tmp_path / "X.csv",
            out,
            "--id-column",
            column,
            "--label-column",
            "kind",
        )
        assert status == 0, engine
        lines = out.read_text(encoding="utf-8").splitlines()
        assert lines[0] == "barcode,tsne0,tsne1"
        assert [line.split(",")[0] for line in lines[1:]] == ids
        values = np.loadtxt(out, delimiter=",", skiprows=1, usecols=(1, 2))
        assert_allclose(values, reference, rtol=1e-7, atol=1e-6)


def test_ids_need_a_text_output(tmp_path, data, capsys):
    X, _ = data
    np.savez(tmp_path / "d.npz", X=X, ids=np.arange(90))
    status = _embed(tmp_path / "d.npz", tmp_path / "Y.npy", "--id-column", "ids")
    _one_line_error(capsys, status, "--id-column writes the ids")
    status = _embed(tmp_path / "d.npz", tmp_path / "Y.tsv", "--id-column", "ids")
    assert status == 0
    lines = (tmp_path / "Y.tsv").read_text(encoding="utf-8").splitlines()
    assert lines[0] == "ids\ttsne0\ttsne1" and lines[5].startswith("4\t")


def test_compact_float_output(tmp_path, data, capsys):
    X, _ = data
    reference = _reference(tmp_path, X)
    out = tmp_path / "Y.csv"
    assert _embed(tmp_path / "ref_input.npy", out) == 0
    text = out.read_text(encoding="utf-8")
    fields = [f for line in text.splitlines()[1:] for f in line.split(",")]
    assert max(len(f) for f in fields) <= 15  # %.8g, never %.18e
    assert_allclose(np.loadtxt(out, delimiter=",", skiprows=1), reference, rtol=1e-7)
    assert _embed(tmp_path / "ref_input.npy", out, "--float-format", "%.3f") == 0
    assert all(len(f.split(".")[1]) == 3 for f in out.read_text().split()[1].split(","))
    capsys.readouterr()
    status = _embed(tmp_path / "ref_input.npy", out, "--float-format", "%d%d")
    _one_line_error(capsys, status, "--float-format")


def test_gzipped_csv_input(tmp_path, data, engine):
    X, _ = data
    reference = _reference(tmp_path, X)
    with gzip.open(tmp_path / "X.csv.gz", "wt", encoding="utf-8") as handle:
        handle.write("a,b,c,d,e\n")
        np.savetxt(handle, X, fmt="%.17g", delimiter=",")
    assert _embed(tmp_path / "X.csv.gz", tmp_path / "Y.npy") == 0, engine
    assert_array_equal(np.load(tmp_path / "Y.npy"), reference)


def test_parquet_input(tmp_path, data):
    pd = pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    X, labels = data
    frame = pd.DataFrame(X, columns=list("abcde"), index=[f"r{i}" for i in range(90)])
    frame["kind"] = np.array(["x", "y", "z"])[labels]
    frame.to_parquet(tmp_path / "X.parquet")
    reference = _reference(tmp_path, X)
    out = tmp_path / "Y.csv"
    assert _embed(tmp_path / "X.parquet", out, "--label-column", "kind") == 0
    lines = out.read_text(encoding="utf-8").splitlines()
    assert lines[0] == "id,tsne0,tsne1" and lines[1].startswith("r0,")
    values = np.loadtxt(out, delimiter=",", skiprows=1, usecols=(1, 2))
    assert_allclose(values, reference, rtol=1e-7, atol=1e-6)


def test_parquet_without_pyarrow_gives_the_hint(tmp_path, data, capsys, monkeypatch):
    pd = pytest.importorskip("pandas")
    X, _ = data
    (tmp_path / "X.parquet").write_bytes(b"PAR1")

    def missing(*args, **kwargs):
        raise ImportError("Unable to find a usable engine")

    monkeypatch.setattr(pd, "read_parquet", missing)
    status = _embed(tmp_path / "X.parquet", tmp_path / "Y.npy")
    _one_line_error(capsys, status, "pip install pandas pyarrow")
    del X


def test_header_option(tmp_path, data, engine):
    X, _ = data
    np.savetxt(tmp_path / "X.csv", X[:, :3], delimiter=",", fmt="%.17g")
    assert _embed(tmp_path / "X.csv", tmp_path / "Y.npy") == 0
    assert np.load(tmp_path / "Y.npy").shape == (90, 2)
    assert _embed(tmp_path / "X.csv", tmp_path / "Y.npy", "--header", "yes") == 0
    assert np.load(tmp_path / "Y.npy").shape == (89, 2), engine
    (tmp_path / "h.csv").write_text("1,2,3\n" + "4,5,6\n" * 20)
    status = _embed(
        tmp_path / "h.csv", tmp_path / "Y.npy", "--header", "no", "--perplexity", "5"
    )
    assert status == 0
    assert np.load(tmp_path / "Y.npy").shape == (21, 2)


# ------------------------------------------------------- issue 13 findings
def test_finding_pandas_csv_index_column_is_ids_not_a_feature(tmp_path, data, engine):
    pd = pytest.importorskip("pandas")
    X, _ = data
    reference = _reference(tmp_path, X)
    pd.DataFrame(X, index=np.arange(100, 190)).to_csv(tmp_path / "X.csv")
    out = tmp_path / "Y.csv"
    assert _embed(tmp_path / "X.csv", out) == 0, engine
    values = np.loadtxt(out, delimiter=",", skiprows=1)
    assert_array_equal(values[:, 0], np.arange(100, 190))  # the index, as ids
    assert_allclose(values[:, 1:], reference, rtol=1e-7, atol=1e-6)


def test_finding_numeric_header_row_is_a_header(tmp_path, data, engine):
    pd = pytest.importorskip("pandas")
    X, _ = data
    reference = _reference(tmp_path, X)
    pd.DataFrame(X).to_csv(tmp_path / "X.csv", index=False)  # header 0,1,2,3,4
    assert _embed(tmp_path / "X.csv", tmp_path / "Y.npy") == 0, engine
    assert_array_equal(np.load(tmp_path / "Y.npy"), reference)  # 90 rows, not 91


def test_finding_quoted_fields(tmp_path, data, engine):
    X, labels = data
    with open(tmp_path / "X.csv", "w", encoding="utf-8") as handle:
        handle.write('"name, with comma","a","b","c","d","e"\n')
        for label, row in zip(labels, X):
            handle.write(f'"kind {label}, ok",' + ",".join(f'"{v:.17g}"' for v in row))
            handle.write("\n")
    reference = _reference(tmp_path, X)
    out = tmp_path / "Y.csv"
    status = _embed(tmp_path / "X.csv", out, "--id-column", "name, with comma")
    assert status == 0, engine
    lines = out.read_text(encoding="utf-8").splitlines()
    assert lines[0] == '"name, with comma",tsne0,tsne1'
    assert lines[1].startswith('"kind 0, ok",')
    Y = np.loadtxt(out, delimiter=",", skiprows=1, usecols=(1, 2), quotechar='"')
    assert_allclose(Y, reference, rtol=1e-7, atol=1e-6)


def test_finding_column_named_nan(tmp_path, data, engine):
    X, _ = data
    reference = _reference(tmp_path, X)
    with open(tmp_path / "X.csv", "w", encoding="utf-8") as handle:
        handle.write("a,nan,inf,d,e\n")
        np.savetxt(handle, X, fmt="%.17g", delimiter=",")
    assert _embed(tmp_path / "X.csv", tmp_path / "Y.npy") == 0, engine
    assert_array_equal(np.load(tmp_path / "Y.npy"), reference)


@pytest.mark.parametrize(
    "content, message",
    [
        ("", "X.csv is empty"),
        ("\n\n", "X.csv is empty"),
        ("a,b,c\n", "has a header row but no data rows"),
    ],
)
def test_finding_empty_and_header_only_csv(tmp_path, capsys, content, message, engine):
    (tmp_path / "X.csv").write_text(content)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no numpy warning before the message
        status = _embed(tmp_path / "X.csv", tmp_path / "Y.npy")
    _one_line_error(capsys, status, message)
    del engine


@pytest.mark.parametrize(
    "content, message",
    [
        ("a,b,c\n1,2,3\n4,5,6\n7,8\n9,10,11\n", "line 4 of X.csv has 2 fields"),
        ("a,b,c\n1,2,3\n4,5,6\n7,8,9,10\n", "line 4 of X.csv has 4 fields"),
        ("1,2,3\n4,5,6\n\n7,8\n", "line 4 of X.csv has 2 fields"),
        ("a,b,c\n1,2,3\n4,x,6\n", "line 3 of X.csv, column 1: 'x' is not a finite"),
        ("a,b,c\n1,2,3\n4,,6\n", "line 3 of X.csv, column 1: 'an empty field'"),
        ("a,b,c\n1,2,3\n4,inf,6\n", "line 3 of X.csv, column 1: 'inf'"),
    ],
)
def test_finding_ragged_or_bad_csv_names_the_line(
    tmp_path, capsys, content, message, engine
):
    (tmp_path / "X.csv").write_text(content)
    status = _embed(tmp_path / "X.csv", tmp_path / "Y.npy")
    _one_line_error(capsys, status, message)
    del engine


def test_finding_bad_number_option_is_one_line(capsys):
    status = main(["embed", "x.npy", "-o", "y.npy", "--perplexity", "abc"])
    _one_line_error(
        capsys,
        status,
        "--perplexity",
        "must be a number or comma-separated numbers, not 'abc'",
    )
    status = main(["embed", "x.npy", "-o", "y.npy", "--method", "pca"])
    _one_line_error(capsys, status, "invalid choice")
    status = main(["embed", "x.npy", "-o", "y.npy", "--learning-rate", "fast"])
    _one_line_error(capsys, status, "must be 'auto' or a number")


@pytest.mark.parametrize("where", ["parent_is_a_file", "is_a_directory"])
def test_finding_unwritable_output_is_reported_before_the_fit(
    tmp_path, data, capsys, monkeypatch, where
):
    X, _ = data
    np.save(tmp_path / "X.npy", X)
    (tmp_path / "file.txt").write_text("")
    (tmp_path / "folder.npy").mkdir()
    (tmp_path / "folder.png").mkdir()

    def no_fit(*args):
        raise AssertionError("the fit ran before the output was checked")

    monkeypatch.setattr(cli, "_estimator", no_fit)
    output = {
        "parent_is_a_file": tmp_path / "file.txt" / "Y.npy",
        "is_a_directory": tmp_path / "folder.npy",
    }[where]
    status = main(["embed", str(tmp_path / "X.npy"), "-o", str(output)])
    _one_line_error(capsys, status, "cannot write" if "file" in where else "directory")
    status = main(
        ["embed", str(tmp_path / "X.npy"), "-o", str(tmp_path / "Y.npy")]
        + ["--plot", str(output.with_suffix(".png"))]
    )
    assert status == 2


@pytest.mark.parametrize("scale", [1e300, 1e153, 1e-200])
def test_finding_extreme_magnitudes_are_embedded(tmp_path, data, scale):
    """Exact power-of-two rescaling: the same embedding as the data near 1."""
    X, _ = data
    X = X * scale
    exponent = np.frexp(np.max(np.abs(X)))[1]
    reference = _reference(tmp_path, np.ldexp(X, -exponent))
    np.save(tmp_path / "X.npy", X)
    assert _embed(tmp_path / "X.npy", tmp_path / "Y.npy") == 0
    assert_array_equal(np.load(tmp_path / "Y.npy"), reference)


def test_finding_corrupt_npz_and_npy(tmp_path, capsys):
    (tmp_path / "X.npz").write_bytes(b"PK\x03\x04 this is not a zip archive")
    status = _embed(tmp_path / "X.npz", tmp_path / "Y.npy")
    _one_line_error(capsys, status, "not a valid .npz file")
    (tmp_path / "X.npy").write_bytes(b"\x93NUMPY garbage")
    status = _embed(tmp_path / "X.npy", tmp_path / "Y.npy")
    _one_line_error(capsys, status, "not a valid .npy file")
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object))
    status = _embed(tmp_path / "obj.npy", tmp_path / "Y.npy")
    _one_line_error(capsys, status, "obj.npy")
    np.save(tmp_path / "text.npy", np.array([["a", "b"], ["c", "d"]]))
    status = _embed(tmp_path / "text.npy", tmp_path / "Y.npy")
    _one_line_error(capsys, status, "t-SNE needs numbers")


def test_finding_cuda_without_torch_gives_the_install_hint(
    tmp_path, data, capsys, monkeypatch
):
    X, _ = data
    np.save(tmp_path / "X.npy", X)
    monkeypatch.setitem(sys.modules, "torch", None)
    monkeypatch.setitem(sys.modules, "triton", None)
    status = _embed(tmp_path / "X.npy", tmp_path / "Y.npy", "--device", "cuda")
    _one_line_error(capsys, status, 'pip install "fasttsne[gpu]"')


def test_finding_internal_errors_keep_their_traceback(tmp_path, data, monkeypatch):
    """Only validation errors are user mistakes; a bug is not disguised as one."""
    X, _ = data
    np.save(tmp_path / "X.npy", X)

    def broken(*args, **kwargs):
        return np.reshape(np.arange(3), (2, 2))  # raises inside numpy

    monkeypatch.setattr("fasttsne.tsne._affinity.binary_search_perplexity", broken)
    with pytest.raises(ValueError, match="cannot reshape"):
        _embed(tmp_path / "X.npy", tmp_path / "Y.npy")


# ------------------------------------------------------------ other mistakes
@pytest.mark.parametrize(
    "make_args, message",
    [
        (
            lambda p: ["embed", str(p / "missing.npy"), "-o", str(p / "Y.npy")],
            "does not exist",
        ),
        (
            lambda p: ["embed", str(p / "X.npy"), "-o", str(p / "Y.json")],
            "cannot write",
        ),
        (lambda p: ["embed", str(p / "X.xlsx"), "-o", str(p / "Y.npy")], "cannot read"),
        (
            lambda p: ["embed", str(p / "bad.csv"), "-o", str(p / "Y.npy")],
            "is not a finite number",
        ),
        (lambda p: ["embed", str(p / "nan.npy"), "-o", str(p / "Y.npy")], "NaN"),
        (
            lambda p: ["embed", str(p / "X.npy"), "-o", str(p / "Y.npy")]
            + ["--perplexity", "-3"],
            "perplexity",
        ),
        (
            lambda p: ["embed", str(p / "X.npy"), "-o", str(p / "Y.npy")]
            + ["--labels", str(p / "short.npy")],
            "3 labels for 90 rows",
        ),
        (
            lambda p: ["embed", str(p / "X.npy"), "-o", str(p / "Y.npy")]
            + ["--plot", str(p / "Y.docx")],
            "cannot plot to Y.docx",
        ),
        (
            lambda p: ["embed", str(p / "X.csv"), "-o", str(p / "Y.npy")]
            + ["--label-column", "nope"],
            "--label-column 'nope' is neither a column of X.csv",
        ),
        (
            lambda p: ["embed", str(p / "X.csv"), "-o", str(p / "Y.csv")]
            + ["--id-column", "7"],
            "--id-column 7 is out of range",
        ),
        (
            lambda p: ["embed", str(p / "X.npy"), "-o", str(p / "Y.npy")]
            + ["--metric", "nonsense"],
            "metric",
        ),
        (
            lambda p: ["embed", str(p / "X.npy"), "-o", str(p / "Y.npy")]
            + ["--method", "fft", "--n-components", "3"],
            "n_components",
        ),
        (
            lambda p: ["embed", str(p / "one_row.npy"), "-o", str(p / "Y.npy")],
            "minimum of 2 is required",
        ),
    ],
)
def test_user_mistakes_give_one_line_and_status_2(
    tmp_path, capsys, make_args, message, data
):
    X, _ = data
    np.save(tmp_path / "X.npy", X)
    np.save(tmp_path / "one_row.npy", X[:1])
    np.save(tmp_path / "short.npy", np.arange(3))
    np.savetxt(tmp_path / "X.csv", X, delimiter=",", header="a,b,c,d,e", comments="")
    (tmp_path / "X.xlsx").write_bytes(b"not a spreadsheet")
    (tmp_path / "bad.csv").write_text("1,2,x\n3,4,y\n")
    bad = X.copy()
    bad[0, 0] = np.nan
    np.save(tmp_path / "nan.npy", bad)
    _one_line_error(capsys, main(make_args(tmp_path)), message)


def test_python_dash_m_runs_the_tool(tmp_path, data):
    X, _ = data
    np.save(tmp_path / "X.npy", X)
    result = subprocess.run(
        [sys.executable, "-m", "fasttsne", "embed", str(tmp_path / "X.npy")]
        + ["-o", str(tmp_path / "Y.csv"), *FAST],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert np.loadtxt(tmp_path / "Y.csv", delimiter=",", skiprows=1).shape == (90, 2)
    result = subprocess.run(
        [sys.executable, "-m", "fasttsne", "embed", "missing.npy", "-o", "Y.npy"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "fasttsne: error: input file missing.npy does not exist."
    ]
