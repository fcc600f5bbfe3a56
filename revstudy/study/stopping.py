"""A driver asked to stop (SIGTERM: `scancel`, a batch system's time limit, `kill`) stops as
after Ctrl-C, and what dies around it is an interruption, not a failure.

On a cluster the signal reaches the Ray workers too: a trial whose worker dies while the
driver stops would otherwise be recorded as failed, and a failed trial is only run again
with `resume --retry-failed`. Once a stop is requested, a trial error is treated as the
interruption it is: Optuna keeps the trial RUNNING and no failure is recorded, so the next
`revstudy resume` continues it from its last checkpoint (examples/slurm/).
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Iterator
from types import FrameType

__all__ = ["on_sigterm", "requested"]

_requested = threading.Event()


def requested() -> bool:
    """Whether this driver run was asked to stop (its trials' errors are interruptions)."""
    return _requested.is_set()


@contextlib.contextmanager
def on_sigterm() -> Iterator[None]:
    """While a driver run lasts, SIGTERM stops it as Ctrl-C does: Ray Tune ends its run on
    SIGUSR1 (its own graceful stop, while `fit` runs), the unfinished trials stay to be
    resumed; outside `fit` it interrupts like Ctrl-C. A second SIGTERM exits at once. The
    previous handler comes back afterwards (a Python program calling the API keeps its
    own). Main thread only: Python delivers signals there."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _requested.clear()

    def on_term(signum: int, frame: FrameType | None) -> None:
        if _requested.is_set():  # asked twice: stop now
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGTERM)
            return
        _requested.set()
        print(
            "note: stop requested (SIGTERM); ending this run, `revstudy resume` continues it",
            file=sys.stderr,
            flush=True,
        )
        if callable(signal.getsignal(signal.SIGUSR1)):  # Ray Tune's, while it runs
            os.kill(os.getpid(), signal.SIGUSR1)
        else:
            raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, on_term)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
