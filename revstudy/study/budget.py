"""`--time-budget` across driver runs: `driver.json` counts the wall time of every run so far.

The count is written while a run goes on (every `DriverClock.interval` seconds, from a
background thread) and once more when it ends, so a driver that is killed (SIGKILL, a lost
head node) loses at most one interval of its time: a resumed study cannot overrun its budget
by the length of the run that died. A damaged `driver.json` is reported, not trusted.
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from pathlib import Path

from revstudy.files import read_json, write_json_atomic
from revstudy.studyfolder import DRIVER_FILE
from revstudy.studyinfo import StudyInfo

INTERVAL_S = 15.0  # how much of a killed run's time the count may miss


def spent_seconds(study: Path) -> tuple[float, int]:
    """(wall seconds, driver runs) recorded so far; a damaged file counts as none, with a
    note on stderr naming it."""
    path = study / DRIVER_FILE
    if not path.exists():
        return 0.0, 0
    doc = read_json(path) or {}
    elapsed, runs = doc.get("elapsed_s"), doc.get("runs")
    if not isinstance(elapsed, int | float) or elapsed < 0 or not isinstance(runs, int):
        print(
            f"note: {path} is damaged; the time budget counts from this run on",
            file=sys.stderr,
        )
        return 0.0, 0
    return float(elapsed), runs


def remaining_budget(study: Path, info: StudyInfo) -> float | None:
    """Seconds left of `--time-budget` after earlier driver runs (None: no budget)."""
    if info.time_budget_s is None:
        return None
    return info.time_budget_s - spent_seconds(study)[0]


class DriverClock:
    """Counts one driver run into `driver.json`: `with DriverClock(study): run()`."""

    def __init__(self, study: Path, interval: float = INTERVAL_S):
        self.study = study
        self.interval = interval
        self._lock = threading.Lock()  # one writer at a time (the temp file is per process)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._tick, name="revstudy-clock", daemon=True)

    def __enter__(self) -> DriverClock:
        self.before, runs = spent_seconds(self.study)
        self.runs = runs + 1  # this run counts as soon as it starts
        self.started = time.monotonic()
        self._write()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._write()

    @property
    def elapsed(self) -> float:
        """Seconds of this run so far."""
        return time.monotonic() - self.started

    def _tick(self) -> None:
        while not self._stop.wait(self.interval):
            with contextlib.suppress(OSError):  # e.g. a full disk: the closing write reports it
                self._write()

    def _write(self) -> None:
        with self._lock:
            doc = {"elapsed_s": self.before + self.elapsed, "runs": self.runs}
            write_json_atomic(self.study / DRIVER_FILE, doc)
