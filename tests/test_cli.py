"""The command-line tool: files in, embedding and plot out, clean errors."""

import numpy as np
import pytest

from fasttsne.cli import main

FAST = ["--max-iter", "260", "--perplexity", "10", "--random-state", "0"]


@pytest.fixture
def data(rng):
    centers = rng.normal(scale=8, size=(3, 5))
    labels = np.repeat(np.arange(3), 30)
    X = centers[labels] + rng.normal(size=(90, 5))
    return X, labels


def test_embed_npy_to_npy_with_plot(tmp_path, data):
    X, labels = data
    np.save(tmp_path / "X.npy", X)
    np.save(tmp_path / "y.npy", labels)
    out, png = tmp_path / "Y.npy", tmp_path / "plot.png"
    status = main(
        [
            "embed",
            str(tmp_path / "X.npy"),
            "-o",
            str(out),
            "--plot",
            str(png),
            "--labels",
            str(tmp_path / "y.npy"),
            *FAST,
        ]
    )
    assert status == 0
    Y = np.load(out)
    assert Y.shape == (90, 2) and np.all(np.isfinite(Y))
    assert png.stat().st_size > 10_000
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_embed_csv_with_header_and_label_column_to_csv(tmp_path, data):
    X, labels = data
    table = np.column_stack([X, labels])
    header = ",".join([f"f{i}" for i in range(5)] + ["kind"])
    np.savetxt(tmp_path / "X.csv", table, delimiter=",", header=header, comments="")
    status = main(
        [
            "embed",
            str(tmp_path / "X.csv"),
            "-o",
            str(tmp_path / "Y.csv"),
            "--label-column",
            "kind",
            "--plot",
            str(tmp_path / "p.png"),
            *FAST,
        ]
    )
    assert status == 0
    Y = np.loadtxt(tmp_path / "Y.csv", delimiter=",", skiprows=1)
    assert Y.shape == (90, 2)


def test_embed_npz_with_label_key_and_tsv_output(tmp_path, data):
    X, labels = data
    np.savez(tmp_path / "d.npz", X=X, y=labels)
    status = main(
        [
            "embed",
            str(tmp_path / "d.npz"),
            "-o",
            str(tmp_path / "Y.tsv"),
            "--labels",
            "y",
            "--method",
            "bh",
            *FAST,
        ]
    )
    assert status == 0
    assert np.loadtxt(tmp_path / "Y.tsv", skiprows=1).shape == (90, 2)


def test_same_seed_same_output(tmp_path, data):
    X, _ = data
    np.save(tmp_path / "X.npy", X)
    for name in ("a", "b"):
        assert (
            main(
                [
                    "embed",
                    str(tmp_path / "X.npy"),
                    "-o",
                    str(tmp_path / f"{name}.npy"),
                    *FAST,
                ]
            )
            == 0
        )
    np.testing.assert_array_equal(
        np.load(tmp_path / "a.npy"), np.load(tmp_path / "b.npy")
    )


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
            "non-numeric",
        ),
        (lambda p: ["embed", str(p / "nan.npy"), "-o", str(p / "Y.npy")], "NaN"),
        (
            lambda p: [
                "embed",
                str(p / "X.npy"),
                "-o",
                str(p / "Y.npy"),
                "--perplexity",
                "-3",
            ],
            "perplexity",
        ),
        (
            lambda p: [
                "embed",
                str(p / "X.npy"),
                "-o",
                str(p / "Y.npy"),
                "--labels",
                str(p / "short.npy"),
            ],
            "labels for",
        ),
    ],
)
def test_user_mistakes_give_one_line_and_status_2(
    tmp_path, capsys, make_args, message, data
):
    X, _ = data
    np.save(tmp_path / "X.npy", X)
    np.save(tmp_path / "short.npy", np.arange(3))
    (tmp_path / "X.xlsx").write_bytes(b"not a spreadsheet")
    (tmp_path / "bad.csv").write_text("1,2,x\n3,4,y\n")
    bad = X.copy()
    bad[0, 0] = np.nan
    np.save(tmp_path / "nan.npy", bad)
    status = main(make_args(tmp_path))
    err = capsys.readouterr().err
    assert status == 2
    assert message in err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_bad_option_is_reported_by_argparse(capsys):
    assert main(["embed", "x.npy", "-o", "y.npy", "--method", "pca"]) == 2
    assert "invalid choice" in capsys.readouterr().err


def test_demo_runs_on_bundled_digits(tmp_path):
    out, png = tmp_path / "digits.npy", tmp_path / "digits.png"
    status = main(["demo", "-o", str(out), "--plot", str(png), "--max-iter", "260"])
    assert status == 0
    assert np.load(out).shape == (1797, 2)
    assert png.stat().st_size > 10_000
