"""Progress reporting: console lines, the progress bar, and the logger."""

import io
import logging
import os
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from fasttsne import BarnesHutTSNE, FFTInterpTSNE, ToeplitzKernel
from fasttsne._progress import FitProgress, Reporter

ROOT = Path(__file__).resolve().parents[1]
ESTIMATORS = [BarnesHutTSNE, FFTInterpTSNE]


@pytest.fixture
def blobs(rng):
    centers = rng.normal(scale=6.0, size=(3, 4))
    return centers[np.repeat(np.arange(3), 40)] + rng.normal(size=(120, 4))


def _lines(text):
    return [line for line in text.splitlines() if line.strip()]


@pytest.mark.parametrize("Est", ESTIMATORS)
def test_verbose_fit_reports_parameters_phases_and_summary(Est, blobs, capsys):
    Est(max_iter=300, perplexity=10, verbose=1, random_state=0).fit(blobs)
    err = capsys.readouterr().err
    lines = _lines(err)
    assert all(line.startswith("[fasttsne] ") for line in lines)
    # The resolved parameters come first, "auto" values shown resolved.
    assert lines[0].startswith(f"[fasttsne] {Est.__name__}: 120 samples x 4 features")
    assert "learning_rate 50 (auto)" in lines[0]
    assert f"backend {'bh' if Est is BarnesHutTSNE else 'fft'} on cpu" in lines[0]
    # Each phase with its time, in order.
    order = [
        "kNN: searching 30 nearest neighbours of 120 points",
        "kNN: done in",
        "affinities: perplexity 10,",
        "early exaggeration: 250 iterations, exaggeration 12",
        "Iteration 50: KL divergence",
        "early exaggeration: 250 iterations in",
        "main phase: 50 iterations, exaggeration 1",
        "Iteration 300: KL divergence",
        "main phase: 50 iterations in",
        "[fasttsne] done in",
    ]
    positions = [err.index(text) for text in order]
    assert positions == sorted(positions)
    assert "after 300 iterations (stopped: max_iter reached)" in lines[-1]
    # stderr is not a terminal here: plain lines, no bar.
    assert "\r" not in err and "it/s" not in err


def test_silent_without_verbose(blobs, capsys, caplog):
    BarnesHutTSNE(max_iter=260, perplexity=10, random_state=0).fit(blobs)
    assert capsys.readouterr().err == ""
    assert not [r for r in caplog.records if r.name.startswith("fasttsne")]


@pytest.mark.parametrize(
    "params, reason",
    [
        ({"n_iter_without_progress": 0, "callbacks_every_iters": 1}, "no progress for"),
        ({"min_grad_norm": 1e3}, "gradient norm at or below min_grad_norm"),
        ({"callbacks": lambda it, kl, Y: it >= 100}, "a callback returned True"),
    ],
)
def test_stop_reason_is_reported(blobs, capsys, params, reason):
    params = {"callbacks_every_iters": 10, **params}
    tsne = BarnesHutTSNE(
        max_iter=400, perplexity=10, random_state=0, verbose=1, **params
    ).fit(blobs)
    err = capsys.readouterr().err
    stop = [line for line in _lines(err) if "stopped at iteration" in line]
    assert stop and reason in stop[-1]
    assert f"after {tsne.n_iter_} iterations (stopped: {reason}" in err


def test_records_are_routable_through_logging(blobs, capsys, caplog):
    """An application's handler gets the records, without verbose and stderr."""
    caplog.set_level(logging.INFO, logger="fasttsne")
    FFTInterpTSNE(max_iter=260, perplexity=10, random_state=0).fit(blobs)
    records = [r for r in caplog.records if r.name.startswith("fasttsne")]
    messages = [r.getMessage() for r in records]
    assert {r.name for r in records} == {"fasttsne.tsne"}
    assert {r.levelno for r in records} == {logging.INFO}
    assert messages[0].startswith("FFTInterpTSNE: 120 samples")
    assert any(m.startswith("Iteration 50: KL divergence") for m in messages)
    assert messages[-1].startswith("done in")
    assert capsys.readouterr().err == ""


def test_verbose_does_not_force_records_onto_the_application(blobs, capsys, caplog):
    """verbose writes to stderr; handlers only see levels the application enabled."""
    caplog.set_level(logging.WARNING, logger="fasttsne")
    BarnesHutTSNE(max_iter=260, perplexity=10, random_state=0, verbose=1).fit(blobs)
    assert "[fasttsne] done in" in capsys.readouterr().err
    assert not [r for r in caplog.records if r.name.startswith("fasttsne")]


def test_other_estimators_report_through_the_same_logger(rng, capsys, caplog):
    caplog.set_level(logging.INFO, logger="fasttsne")
    ToeplitzKernel(verbose=1).fit(rng.normal(size=(3, 16)))
    assert "[fasttsne] ToeplitzKernel: grid" in capsys.readouterr().err
    assert any(r.getMessage().startswith("ToeplitzKernel") for r in caplog.records)


class _FakeTerminal(io.StringIO):
    def isatty(self):
        return True


class _FakeBar:
    """Records what FitProgress asks of a tqdm bar."""

    def __init__(self, **kwargs):
        self.kwargs, self.n, self.written, self.closed = kwargs, 0, [], False
        self.description, self.postfix = None, None

    def update(self, n):
        self.n += n

    def set_description(self, text):
        self.description = text

    def set_postfix(self, refresh=True, **values):
        del refresh
        self.postfix = values

    def write(self, text, file=None):
        self.written.append(text)
        file.write("<bar> " + text + "\n")

    def close(self):
        self.closed = True


def test_bar_on_a_terminal_takes_over_the_iteration_lines(monkeypatch):
    terminal = _FakeTerminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    bars = []
    progress = FitProgress(verbose=1)
    monkeypatch.setattr(
        progress, "_make_bar", lambda: bars.append(_FakeBar()) or bars[-1]
    )
    progress._total = 100  # pylint: disable=protected-access
    progress.phase_start("early exaggeration", 100, 12.0, 0.5)
    for it in range(1, 101):
        progress.iteration(it, *((1.5, 1e-3) if it % 50 == 0 else ()))
    progress.phase_end("early exaggeration", 100, 1.5, "max_iter", 100)
    progress.close()
    (bar,) = bars
    assert bar.n == 100 and bar.closed
    assert bar.description == "early exaggeration"
    assert bar.postfix == {"kl": "1.5000"}
    # Phase lines go through the bar; iteration lines are left to the bar.
    assert bar.written == [
        line for line in bar.written if not line.startswith("[fasttsne] Iteration")
    ]
    assert any("early exaggeration: 100 iterations in" in w for w in bar.written)
    assert "Iteration 50" not in terminal.getvalue()


def test_plain_lines_on_a_terminal_without_tqdm(blobs, monkeypatch):
    terminal = _FakeTerminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    monkeypatch.setitem(sys.modules, "tqdm", None)  # import tqdm -> ImportError
    BarnesHutTSNE(max_iter=260, perplexity=10, random_state=0, verbose=1).fit(blobs)
    text = terminal.getvalue()
    assert "[fasttsne] Iteration 250: KL divergence" in text
    assert "[fasttsne] done in" in text


def test_real_bar_in_a_pseudo_terminal():
    """A child whose stderr is a terminal draws tqdm's bar; with a pipe, it does not."""
    pytest.importorskip("tqdm")
    pty = pytest.importorskip("pty")
    fcntl = pytest.importorskip("fcntl")
    termios = pytest.importorskip("termios")
    script = (
        "import numpy as np\n"
        "from fasttsne import BarnesHutTSNE\n"
        "X = np.random.default_rng(0).normal(size=(100, 3))\n"
        "BarnesHutTSNE(max_iter=260, perplexity=10, random_state=0,"
        " verbose=1).fit(X)\n"
    )
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    master, slave = pty.openpty()
    # A new pseudo-terminal is 0 columns wide: give it a window, like a shell's.
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    child = subprocess.Popen(  # pylint: disable=consider-using-with
        [sys.executable, "-c", script], stderr=slave, env=env, cwd=ROOT
    )
    os.close(slave)
    chunks = []
    while True:
        try:
            chunk = os.read(master, 4096)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(master)
    assert child.wait(timeout=300) == 0
    on_terminal = b"".join(chunks).decode(errors="replace")
    assert "it/s" in on_terminal or "s/it" in on_terminal
    assert "[fasttsne] done in" in on_terminal
    assert "[fasttsne] Iteration 250" not in on_terminal
    piped = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        check=True,
    ).stderr
    assert "it/s" not in piped and "\r" not in piped
    assert "[fasttsne] Iteration 250: KL divergence" in piped


def test_reporter_formats_nothing_when_off(caplog):
    caplog.set_level(logging.WARNING, logger="fasttsne")
    report = Reporter(verbose=0)
    assert not report.enabled
    report("never shown")
    assert not caplog.records
