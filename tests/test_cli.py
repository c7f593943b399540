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


def test_embed_csv_with_text_label_column_matches_npy(tmp_path, data):
    X, labels = data
    names = np.array(["ant", "bee", "cat"])[labels]
    with open(tmp_path / "X.csv", "w", encoding="utf-8") as handle:
        handle.write(",".join([f"f{i}" for i in range(5)] + ["kind"]) + "\n")
        for row, name in zip(X, names):
            handle.write(",".join(f"{v:.18e}" for v in row) + f",{name}\n")
    np.save(tmp_path / "X.npy", X)
    assert (
        main(["embed", str(tmp_path / "X.npy"), "-o", str(tmp_path / "ref.npy"), *FAST])
        == 0
    )
    status = main(
        [
            "embed",
            str(tmp_path / "X.csv"),
            "-o",
            str(tmp_path / "Y.csv"),
            "--label-column",
            "kind",
            *FAST,
        ]
    )
    assert status == 0
    Y = np.loadtxt(tmp_path / "Y.csv", delimiter=",", skiprows=1)
    # The label column was removed from X: same data, same seed, same embedding.
    np.testing.assert_array_equal(Y, np.load(tmp_path / "ref.npy"))


def test_headerless_csv_with_label_and_single_column_and_txt(
    tmp_path, data, monkeypatch
):
    X, labels = data
    seen = {}
    monkeypatch.setattr(
        "fasttsne.cli._plot", lambda path, Y, lab, title: seen.update(labels=lab)
    )
    with open(tmp_path / "X.csv", "w", encoding="utf-8") as handle:
        for row, label in zip(X, labels):
            handle.write(",".join(f"{v:.6f}" for v in row) + f",c{label}\n")
    status = main(
        [
            "embed",
            str(tmp_path / "X.csv"),
            "-o",
            str(tmp_path / "Y.npy"),
            "--label-column",
            "5",
            "--plot",
            str(tmp_path / "p.png"),
            *FAST,
        ]
    )
    assert status == 0
    assert np.load(tmp_path / "Y.npy").shape == (90, 2)  # no row taken as a header
    assert list(seen["labels"]) == [f"c{label}" for label in labels]
    np.savetxt(tmp_path / "one.csv", X[:, :1], delimiter=",")
    assert (
        main(
            ["embed", str(tmp_path / "one.csv"), "-o", str(tmp_path / "one.npy"), *FAST]
        )
        == 0
    )
    assert np.load(tmp_path / "one.npy").shape == (90, 2)
    np.savetxt(tmp_path / "X.txt", X)  # whitespace-separated
    assert (
        main(["embed", str(tmp_path / "X.txt"), "-o", str(tmp_path / "Y.txt"), *FAST])
        == 0
    )
    assert np.loadtxt(tmp_path / "Y.txt", skiprows=1).shape == (90, 2)


def test_embed_npz_with_label_key_and_tsv_output(tmp_path, data, monkeypatch):
    X, labels = data
    seen = {}
    monkeypatch.setattr(
        "fasttsne.cli._plot", lambda path, Y, lab, title: seen.update(labels=lab)
    )
    np.savez(tmp_path / "d.npz", X=X, y=labels)
    status = main(
        [
            "embed",
            str(tmp_path / "d.npz"),
            "-o",
            str(tmp_path / "Y.tsv"),
            "--labels",
            "y",
            "--plot",
            str(tmp_path / "p.png"),
            *FAST,
        ]
    )
    assert status == 0
    assert np.loadtxt(tmp_path / "Y.tsv", skiprows=1).shape == (90, 2)
    np.testing.assert_array_equal(seen["labels"], labels)


def test_plot_into_a_new_folder(tmp_path, data):
    X, _ = data
    np.save(tmp_path / "X.npy", X)
    png = tmp_path / "new" / "dir" / "p.png"
    assert (
        main(
            [
                "embed",
                str(tmp_path / "X.npy"),
                "-o",
                str(tmp_path / "Y.npy"),
                "--plot",
                str(png),
                *FAST,
            ]
        )
        == 0
    )
    assert png.is_file()


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
