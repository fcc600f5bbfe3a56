"""The study directory's tidy records, written and read without ray (see docs/study-dir.md).

Each trial writes its own files under `trials/<trial_id>/` (epochs.jsonl as it goes,
result.json and arrays.npz when it finishes, failure.json when it fails): they are the record
of truth. The driver merges them with Ray's trial states into trials.parquet/epochs.parquet.
"""

from __future__ import annotations

import json
import math
import os
import stat
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from revstudy.errors import RevstudyError
from revstudy.files import UnsafeFileError, json_safe, read_json, replaced_atomically
from revstudy.studyfolder import (
    EPOCHS_FILE,
    EPOCHS_TABLE,
    RESULT_FILE,
    STATE_FILE,
    TRIALS_DIR,
    TRIALS_TABLE,
    trial_dir,
    trial_entries,
)
from revstudy.trialtable import (
    TableRules,
    assemble_table,
    build_trials_table,
    epochs_table,
    read_epochs,
    trial_epochs,
    trial_row,
)

__all__ = [
    "LiveTables",
    "append_epochs",
    "drop_finished_checkpoints",
    "refresh_tables",
    "remove_stale_temps",
    "write_parquet_atomic",
]


def append_epochs(study: Path, trial_id: str, rows: list[dict[str, Any]]) -> None:
    """Append rows with one `write` on an O_APPEND descriptor, so a kill leaves whole lines.

    A torn tail left by an older writer (no final newline) is cut off first, with a warning,
    so new rows never glue onto half a line.
    """
    path = trial_dir(study, trial_id) / EPOCHS_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    data = "".join(json.dumps(json_safe(row)) + "\n" for row in rows).encode()
    try:  # never through a planted link (O_NOFOLLOW), never into a FIFO or device
        fd = os.open(
            path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK, 0o644
        )
    except OSError as e:
        raise UnsafeFileError(f"{path}: not a file of this trial ({e.strerror}): refused") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise UnsafeFileError(f"{path}: not a regular file: refused")
    try:
        size = os.fstat(fd).st_size
        if size and os.pread(fd, 1, size - 1) != b"\n":
            keep = _last_newline(fd, size)
            warnings.warn(f"{path}: cut a torn last line ({size - keep} bytes)", stacklevel=2)
            os.ftruncate(fd, keep)
        os.write(fd, data)
    finally:
        os.close(fd)


def remove_stale_temps(study: Path) -> int:
    """Remove the temporary files (`.NAME.*.tmp`, `revstudy.files.unique_temp`) a run
    killed mid-write, or stopped by a full disk, left in the study folder and its trial
    folders; call under the study lock (no other driver is writing). Links are removed as
    links. Returns how many."""
    ids, _ = trial_entries(study)
    n = 0
    for folder in [study, *(study / TRIALS_DIR / tid for tid in ids)]:
        try:
            entries = list(folder.iterdir()) if folder.is_dir() else []
        except OSError:
            continue
        for p in entries:
            if p.name.startswith(".") and p.name.endswith(".tmp") and not p.is_dir():
                p.unlink(missing_ok=True)
                n += 1
    return n


def drop_finished_checkpoints(study: Path) -> int:
    """Remove the checkpoint of every trial that has its result (it is never needed again).
    The driver removes it as a trial ends; one is left when a driver died between telling
    Optuna and removing it, and no later run would touch that trial. Returns how many."""
    n = 0
    ids, _ = trial_entries(study)  # never through a linked folder
    for ckpt in [study / TRIALS_DIR / tid / STATE_FILE for tid in ids]:
        if not ckpt.is_file() or ckpt.is_symlink():
            continue
        result = read_json(ckpt.parent / RESULT_FILE)
        if result is not None and isinstance(result.get("report"), dict):
            ckpt.unlink(missing_ok=True)
            n += 1
    return n


def _last_newline(fd: int, size: int) -> int:
    """Offset just past the file's last newline (0 if none)."""
    pos = size
    while pos > 0:
        start = max(0, pos - 65536)
        chunk = os.pread(fd, pos - start, start)
        i = chunk.rfind(b"\n")
        if i >= 0:
            return start + i + 1
        pos = start
    return 0


def write_parquet_atomic(df: pd.DataFrame, path: Path) -> None:
    with replaced_atomically(path) as tmp:
        df.to_parquet(tmp, index=False)


def refresh_tables(study: Path, ray_states: dict[str, dict[str, Any]]) -> pd.DataFrame:
    """Rewrite trials.parquet and epochs.parquet atomically; return the trials table."""
    trials = build_trials_table(study, ray_states)
    write_parquet_atomic(trials, study / TRIALS_TABLE)
    write_parquet_atomic(read_epochs(study), study / EPOCHS_TABLE)
    return trials


class LiveTables:
    """trials.parquet and epochs.parquet kept in step with a running study by its driver.

    Rebuilding both tables from every trial folder at each trial's end cost the driver
    0.24 s a trial at 100 trials and 1.8 s at 1,000 (benchmarks/driver_loop.py): past a few
    hundred trials the driver, not the GPU, set the pace. A run's trial folders change only
    through its own trials, each of which the driver hears from, so a refresh reads again
    only the trials `touch`ed since the last one (the first reads every folder, once a
    run), and refreshes are spaced so that they take at most `share` of the run's time and
    come at least `min_interval` seconds apart. The driver's last refresh (`refresh_tables`, after
    the run) rebuilds both tables from the folders alone.

    The share is 1 %: a refresh rewrites both tables whole (~1.4 s at 10⁴ trials on 2
    cores: 10⁴ trial rows and 5×10⁴ epoch rows), so at 10⁴ trials the tables lag the
    folders by up to ~2.5 min, against a driver that has 0.36 s a trial at 10,000 trials
    an hour and must stay under 10 % of the study's time (issue #31); at 10³ trials they
    lag ~15 s, below that `min_interval`. `revstudy status` and the report read these
    tables, so while a large run goes on they are that far behind (the live panel is not);
    after the run they are exact.
    """

    def __init__(
        self,
        study: Path,
        *,
        min_interval: float = 5.0,
        share: float = 0.01,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.study = study
        self.min_interval = min_interval
        self.share = share
        self._clock = clock
        self._rows: dict[str, dict[str, Any]] | None = None  # None: nothing read yet
        self._epochs: dict[str, list[dict[str, Any]]] = {}
        self._refused: dict[str, str] = {}
        self._rules = TableRules()
        self._touched: set[str] = set()
        self._next = -math.inf  # when the next refresh may run
        self.last_cost = 0.0  # seconds the last refresh took

    @property
    def read_all(self) -> bool:
        """Whether a refresh has run (the first reads every trial folder)."""
        return self._rows is not None

    def rows(self) -> dict[str, dict[str, Any]]:
        """The trials table's rows as last refreshed, by trial id (empty before the first
        refresh, which reads every folder: earlier driver runs' trials included)."""
        return dict(self._rows or {})

    def touch(self, trial_id: str) -> None:
        """Trial `trial_id` had an event: read it again at the next refresh."""
        self._touched.add(trial_id)

    def due(self) -> bool:
        """Whether a refresh would run now (callers skip gathering Ray's states if not)."""
        return self._clock() >= self._next

    def refresh(self, ray_states: dict[str, dict[str, Any]], force: bool = False) -> bool:
        """Rewrite both tables if due (or `force`); returns whether it did."""
        if not force and not self.due():
            return False
        start = self._clock()
        first = self._rows is None
        if self._rows is None:  # the run's first refresh: every folder
            self._rules = TableRules.of(self.study)
            own, self._refused = trial_entries(self.study)
            stale = (set(ray_states) | set(own)) - set(self._refused)
            self._rows = {}
        else:
            stale = (self._touched | (set(ray_states) - set(self._rows))) - set(self._refused)
        self._touched = set()
        for tid in stale:
            self._rows[tid] = trial_row(self.study, tid, ray_states.get(tid, {}), self._rules)
            try:
                self._epochs[tid] = trial_epochs(self.study, trial_dir(self.study, tid).name)
            except RevstudyError:  # an id the folder cannot be trusted for: its row says so
                self._epochs[tid] = []
        write_parquet_atomic(assemble_table(self._refused, self._rows), self.study / TRIALS_TABLE)
        write_parquet_atomic(epochs_table(self._epochs), self.study / EPOCHS_TABLE)
        self.last_cost = self._clock() - start
        # the first reads every folder, once a run: the next is spaced by what it costs
        # to read only the trials that change, known after it
        spacing = 0.0 if first else self.last_cost / self.share
        self._next = self._clock() + max(self.min_interval, spacing)
        return True
