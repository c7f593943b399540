"""Progress reporting: the ``fasttsne`` logger, console lines and a progress bar.

Every message is a :mod:`logging` record of the ``fasttsne`` logger (t-SNE
fits use its child ``fasttsne.tsne``), so notebooks and pipelines route them
like any other library's: ``logging.getLogger("fasttsne").setLevel("INFO")``
and a handler of their choice. The package never configures logging (no
``basicConfig``, no handler beyond the library's ``NullHandler``).

``verbose`` adds a console of its own, whatever the logging configuration:
the records of that fit are written to ``sys.stderr`` as ``[fasttsne] ...``
lines, and when stderr is a terminal and tqdm is installed the optimisation
shows a progress bar instead of a line every ``callbacks_every_iters``
iterations. Records reach the logger's handlers only when the application
enabled the level, so ``verbose`` never prints a line twice through a
default configuration.
"""

import logging
import sys
import time

__all__ = ["FitProgress", "Reporter", "describe", "logger"]

logger = logging.getLogger("fasttsne")
logger.addHandler(logging.NullHandler())

# Marks the per-check iteration records, which a progress bar replaces on the
# console (they still reach the logger's handlers).
_ITERATION = "fasttsne_iteration"

_STOP_REASONS = {
    "max_iter": "max_iter reached",
    "callback": "a callback returned True",
    "no_progress": "no progress for n_iter_without_progress iterations",
    "converged": "gradient norm at or below min_grad_norm",
}


def _stderr_is_terminal():
    """True when ``sys.stderr`` is an interactive terminal."""
    try:
        return bool(sys.stderr.isatty())
    except (AttributeError, ValueError):  # replaced or closed streams
        return False


def describe(value):
    """A short text for a parameter value: numbers compact, callables by name."""
    if callable(value):
        return getattr(value, "__name__", type(value).__name__)
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


class _Console(logging.Handler):
    """Write one reporter's records to the current ``sys.stderr``.

    ``sys.stderr`` is looked up at each record, so redirections (pytest's
    capsys, a notebook's streams) are honoured. With a progress bar showing,
    lines go through ``tqdm.write`` so that the bar stays at the bottom, and
    iteration records are dropped: the bar shows the iteration and the KL.
    """

    def __init__(self, reporter):
        super().__init__()
        self.reporter = reporter
        self.setFormatter(logging.Formatter("[fasttsne] %(message)s"))

    def emit(self, record):
        try:
            progress_bar = self.reporter.progress_bar
            if progress_bar is not None and getattr(record, _ITERATION, False):
                return
            message = self.format(record)
            if progress_bar is not None:
                progress_bar.write(message, file=sys.stderr)
            else:
                sys.stderr.write(message + "\n")
                sys.stderr.flush()
        except Exception:  # pylint: disable=broad-except
            # logging's contract: a failing handler reports, never raises.
            self.handleError(record)


class Reporter:
    """Send progress messages to the ``fasttsne`` logger and, if verbose, stderr.

    Parameters
    ----------
    verbose : int or bool
        Positive: also write the messages to stderr (see the module docstring).
    name : str, default="fasttsne"
        Logger name (a child of ``fasttsne``).

    Examples
    --------
    >>> from fasttsne._progress import Reporter
    >>> Reporter(verbose=0)("nothing is printed")
    """

    def __init__(self, verbose, name="fasttsne"):
        self.verbose = int(verbose) if verbose else 0
        self.logger = logging.getLogger(name)
        self.progress_bar = None
        self._console = _Console(self) if self.verbose else None
        self._start = time.perf_counter()

    @property
    def enabled(self):
        """Whether a message would go anywhere (cheap to test in loops)."""
        return self.verbose > 0 or self.logger.isEnabledFor(logging.INFO)

    def elapsed(self):
        """Seconds since the reporter was made."""
        return time.perf_counter() - self._start

    def info(self, message, *, iteration=False):
        """Send one message at level INFO."""
        routed = self.logger.isEnabledFor(logging.INFO)
        if not (self.verbose or routed):
            return
        record = self.logger.makeRecord(
            self.logger.name,
            logging.INFO,
            "fasttsne",
            0,
            message,
            None,
            None,
            extra={_ITERATION: iteration},
        )
        if self._console is not None:
            self._console.handle(record)
        if routed:
            self.logger.handle(record)

    __call__ = info


class FitProgress(Reporter):
    """Progress of one t-SNE fit: parameters, phases, iterations, stop, summary.

    The estimator calls :meth:`parameters` once its "auto" values are resolved,
    :meth:`phase_start`/:meth:`phase_end` around each optimisation phase,
    :meth:`summary` at the end and :meth:`close` in any case; the optimiser
    calls :meth:`iteration` after every iteration.

    Parameters
    ----------
    verbose : int or bool
        Positive: write to stderr, with a progress bar on a terminal.
    """

    def __init__(self, verbose):
        super().__init__(verbose, name="fasttsne.tsne")
        self._total = None
        self._phase_start = None
        self._reason = "max_iter"
        self._use_bar = bool(self.verbose) and _stderr_is_terminal()

    def parameters(self, estimator, X, n_threads, n_early=None):
        """One line with the resolved parameters of ``estimator``'s fit of ``X``.

        ``n_early`` is the length of the early-exaggeration phase (0 for a
        warm start); None reads it from the estimator.
        """
        self._total = int(estimator.max_iter)
        if not self.enabled:
            return
        est = estimator
        rate = describe(est.learning_rate_)
        if isinstance(est.learning_rate, str):
            rate += f" ({est.learning_rate})"
        if n_early is None:
            n_early = min(est.early_exaggeration_iter, est.max_iter)
        affinity = getattr(est, "affinity", "perplexity")
        if affinity == "perplexity":
            affinity = f"perplexity {describe(est.perplexity_)}"
        elif affinity == "multiscale":
            affinity = f"multiscale perplexities {describe(est.perplexity_)}"
        elif affinity == "uniform":
            affinity = f"uniform affinities over {est.n_neighbors_} neighbours"
        else:
            affinity = "precomputed affinities"
        late = 1.0 if est.exaggeration is None else est.exaggeration
        knobs = ", ".join(
            f"{name} {describe(value)}"
            for name, value in est._backend_knobs().items()  # pylint: disable=W0212
        )
        init = est.init if isinstance(est.init, str) else "array"
        self.info(
            f"{type(est).__name__}: {X.shape[0]} samples x {X.shape[1]} features "
            f"({X.dtype}) -> {est.n_components}-D; {affinity}, learning_rate {rate}, "
            f"early_exaggeration {describe(est.early_exaggeration)} for {n_early} "
            f"iterations, then exaggeration {describe(late)} for "
            f"{est.max_iter - n_early} iterations, dof {describe(est.dof)}, metric "
            f"{describe(est.metric)}, neighbors {est.neighbors}, init {init}; "
            f"backend {est.backend_} on {est.device_}"
            + (f" ({knobs})" if knobs else "")
            + f", {n_threads} thread{'s' if n_threads > 1 else ''}"
        )

    def phase_start(self, name, n_iter, exaggeration, momentum):
        """Announce an optimisation phase and show the bar on a terminal.

        ``exaggeration`` is a factor or the phase's schedule (one per
        iteration), shown as its first and last factors when they differ.
        """
        if not isinstance(exaggeration, (int, float)):
            factors = list(exaggeration)
            exaggeration = (
                describe(factors[0])
                if min(factors) == max(factors)
                else f"{describe(factors[0])} to {describe(factors[-1])}"
            )
        self._phase_start = time.perf_counter()
        if self._use_bar and self.progress_bar is None:
            self.progress_bar = self._make_bar()
        if self.progress_bar is not None:
            self.progress_bar.set_description(name)
        else:
            self.info(
                f"{name}: {n_iter} iterations, exaggeration "
                f"{describe(exaggeration)}, momentum {describe(momentum)}"
            )

    def iteration(self, it, kl=None, grad_norm=None):
        """After iteration ``it`` (1-based); ``kl`` and ``grad_norm`` at checks."""
        if self.progress_bar is not None:
            self.progress_bar.update(1)
            if kl is not None:
                self.progress_bar.set_postfix(kl=f"{kl:.4f}", refresh=False)
        if kl is not None and self.enabled:
            self.info(
                f"Iteration {it}: KL divergence {kl:.4f}, gradient norm "
                f"{grad_norm:.3e} ({self.elapsed():.2f} s)",
                iteration=True,
            )

    def phase_end(self, name, n_done, kl, reason, it):
        """Close a phase: its length, time, KL and, if it ended early, why."""
        self._reason = reason
        if not self.enabled:
            return
        seconds = time.perf_counter() - self._phase_start
        kl_text = "" if kl is None else f", KL divergence {kl:.4f}"
        self.info(f"{name}: {n_done} iterations in {seconds:.2f} s{kl_text}")
        if reason != "max_iter":
            self.info(f"{name} stopped at iteration {it}: {_STOP_REASONS[reason]}")

    def summary(self, estimator, n_samples):
        """The final line: time, size, KL and iterations of the fit."""
        if not self.enabled:
            return
        self.info(
            f"done in {self.elapsed():.2f} s: {n_samples} points -> "
            f"{estimator.n_components}-D, KL divergence "
            f"{estimator.kl_divergence_:.4f} after {estimator.n_iter_} iterations "
            f"(stopped: {_STOP_REASONS[self._reason]})"
        )

    def close(self):
        """Remove the progress bar, if one is showing."""
        if self.progress_bar is not None:
            self.progress_bar.close()
            self.progress_bar = None

    def _make_bar(self):
        """A tqdm bar over all iterations of the fit, or None without tqdm."""
        try:
            from tqdm import tqdm
        except ImportError:
            self._use_bar = False
            return None
        return tqdm(
            total=self._total,
            file=sys.stderr,
            unit="it",
            dynamic_ncols=True,
            leave=False,
        )
