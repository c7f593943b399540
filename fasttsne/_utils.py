"""Small shared helpers: verbose printing and timing."""

import sys
import time


class _Printer:
    """Print ``[fasttsne] ...`` lines to stderr when ``verbose`` is set."""

    def __init__(self, verbose):
        self.verbose = verbose
        self._start = time.perf_counter()

    def __call__(self, message):
        if self.verbose:
            elapsed = time.perf_counter() - self._start
            print(f"[fasttsne] {message} ({elapsed:.2f}s)", file=sys.stderr, flush=True)
