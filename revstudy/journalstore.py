"""Optuna's journal storage as a study's driver uses it: trial lists kept by state, and the
appends of one driver call written together.

Stock `JournalStorage` answers every `get_all_trials` by walking every trial of the study,
and the driver asks for trial lists several times per ask (the per-ask trial cache, the
queue of waiting trials, TPE's finished and running trials): at 10⁴ trials that is
~2-4 ms a walk, ~10-15 ms an ask (benchmarks/driver_loop.py). `StudyJournalStorage` keeps,
per study and per set of states asked for, the list Optuna would return, in trial order,
and updates it from the operations it replays (each touched trial re-read from the replay:
finished trials never change again, so a finished list only gains members). It answers
exactly what the stock storage answers: tests/test_journalstore.py replays the same
operations through both and compares every list after every step.

Stock `JournalFileBackend` takes the file lock, appends one line and fsyncs for every
operation: ~14 a trial (its creation, one per parameter, TPE's shared parameters, the
folder id, five reports, its outcome). `StudyJournalBackend.batch()` holds the operations
of one driver call (a pack's asks, one epoch's reports) in memory, replayed at once as
stock Optuna replays what it has written, and writes them with one lock, one write and
one fsync when the call ends, failed or not. A driver killed inside a call loses that
call's operations, and they never reached Ray either: a trial is returned to Ray only
after its ask is written. Batching assumes what the study lock guarantees, that the
driver is the journal's only writer; a flush that finds the file changed by anyone else
writes nothing and fails with the file's name instead of numbering operations wrongly.

A write that holds only per-epoch reports (intermediate values) is not fsync'ed: it is in
the operating system's hands when the call returns, so a killed driver loses none of it,
and the next write with anything else (an ask, an outcome) fsyncs the file, reports
included. Only a machine that loses power in between loses reports, and what they record
is kept in the trial's own folder too (its epochs). That is 5 of a lone trial's 7 fsyncs,
~0.3 ms each (benchmarks/driver_loop.py).
"""

from __future__ import annotations

import copy
import json
import os
from bisect import bisect_left
from collections.abc import Container, Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any

from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.storages.journal._file import get_lock_file
from optuna.storages.journal._storage import JournalOperation, JournalStorageReplayResult
from optuna.trial import FrozenTrial, TrialState

from revstudy.errors import RevstudyError

__all__ = ["StudyJournalBackend", "StudyJournalStorage", "TrialViews", "batched"]

StateKey = frozenset[TrialState] | None  # None: every trial
REPORT = JournalOperation.SET_TRIAL_INTERMEDIATE_VALUE  # a per-epoch report's operation


class TrialViews:
    """Per study and per set of states, the study's trials in those states in trial order
    (numbers beside them for bisection), built on first request and then kept up to date
    from the trials each replay touched."""

    def __init__(self) -> None:
        self._views: dict[int, dict[StateKey, tuple[list[int], list[FrozenTrial]]]] = {}

    def clear(self) -> None:
        self._views.clear()

    def trials(
        self,
        replay: JournalStorageReplayResult,
        study_id: int,
        states: Container[TrialState] | None,
    ) -> list[FrozenTrial]:
        """What `replay.get_all_trials(study_id, states)` returns (a new list)."""
        key: StateKey = None
        if states is not None:
            if not isinstance(states, Iterable):  # a Container we cannot list: stock walk
                return replay.get_all_trials(study_id, states)
            key = frozenset(states)
        views = self._views.get(study_id)
        view = None if views is None else views.get(key)
        if view is None:
            found = replay.get_all_trials(study_id, key)  # raises for an unknown study
            view = ([t.number for t in found], found)
            self._views.setdefault(study_id, {})[key] = view
        return list(view[1])

    def update(
        self, replay: JournalStorageReplayResult, logs: list[dict[str, Any]], created_from: int
    ) -> None:
        """Bring the views up to date after `logs` were replayed (applied or not: each
        touched trial is read back from the replay); trial ids from `created_from` on are
        the trials they created."""
        if not self._views:
            return
        if any(log.get("op_code") == JournalOperation.DELETE_STUDY for log in logs):
            self._views.clear()  # rare: rebuilt on the next request
            return
        touched = {log["trial_id"] for log in logs if "trial_id" in log}
        touched.update(range(created_from, len(replay._trials)))
        for trial_id in sorted(touched):
            views = self._views.get(replay._trial_id_to_study_id.get(trial_id, -1))
            trial = replay._trials.get(trial_id)
            if views is None or trial is None:
                continue
            for key, (numbers, trials) in views.items():
                i = bisect_left(numbers, trial.number)
                present = i < len(numbers) and numbers[i] == trial.number
                wanted = key is None or trial.state in key
                if present and wanted:
                    trials[i] = trial  # the replay copies a trial on every change
                elif present:
                    del numbers[i]
                    del trials[i]
                elif wanted:
                    numbers.insert(i, trial.number)
                    trials.insert(i, trial)


class StudyJournalStorage(JournalStorage):
    """`JournalStorage` whose trial lists come from `TrialViews` instead of a walk over
    every trial. `batch()` batches the appends where the backend can."""

    def __init__(self, backend: JournalFileBackend) -> None:
        self._views = TrialViews()  # before the first replay (in JournalStorage.__init__)
        super().__init__(backend)

    def __getstate__(self) -> dict[Any, Any]:
        state = super().__getstate__()
        del state["_views"]  # rebuilt from the journal, as Optuna rebuilds its replay
        return state

    def __setstate__(self, state: dict[Any, Any]) -> None:
        super().__setstate__(state)
        self._views = TrialViews()

    def _sync_with_backend(self) -> None:
        replay = self._replay_result
        logs = self._backend.read_logs(replay.log_number_read)
        logs = logs if isinstance(logs, list) else list(logs)
        if not logs:
            return
        created_from = len(replay._trials)
        try:
            replay.apply_logs(logs)  # may raise for this worker's own invalid operation
        finally:
            self._views.update(replay, logs, created_from)

    def get_all_trials(
        self,
        study_id: int,
        deepcopy: bool = True,
        states: Container[TrialState] | None = None,
    ) -> list[FrozenTrial]:
        with self._thread_lock:
            self._sync_with_backend()
            trials = self._views.trials(self._replay_result, study_id, states)
        return copy.deepcopy(trials) if deepcopy else trials

    @contextmanager
    def batch(self) -> Iterator[None]:
        """The appends made inside, written together at the end (see the module)."""
        backend = self._backend
        if not isinstance(backend, StudyJournalBackend):
            yield
            return
        with backend.batch():
            yield


class StudyJournalBackend(JournalFileBackend):
    """`JournalFileBackend` that can hold appends until a batch ends (see the module)."""

    def __init__(self, file_path: str) -> None:
        super().__init__(file_path)
        self._held: list[dict[str, Any]] = []  # appended inside a batch, not yet written
        self._depth = 0  # batches open (they nest: one write when the outermost ends)
        self._in_file = 0  # operations known to be in the file (read or written by us)

    def __getstate__(self) -> dict[Any, Any]:
        if self._held:  # a copy would write them again, or lose them
            raise RuntimeError(f"{self._file_path}: copied with operations held in a batch")
        return self.__dict__.copy()

    def read_logs(self, log_number_from: int) -> list[dict[str, Any]]:  # type: ignore[override]
        start = self._in_file
        if self._held and log_number_from >= start:  # only held ones are new: no file read
            return self._held[log_number_from - start :]
        logs = list(super().read_logs(log_number_from))
        if self._held:  # the file must end where the held operations were numbered from
            if log_number_from + len(logs) != start:
                raise self._foreign()
            return logs + self._held
        self._in_file = max(start, log_number_from + len(logs))
        return logs

    def append_logs(self, logs: list[dict[str, Any]]) -> None:
        if self._depth == 0:
            super().append_logs(logs)
        else:
            self._held.extend(logs)

    @contextmanager
    def batch(self) -> Iterator[None]:
        self._depth += 1
        try:
            yield
        finally:
            self._depth -= 1
            if self._depth == 0:
                self._write_held()

    def _write_held(self) -> None:
        if not self._held:
            return
        held, self._held = self._held, []
        lines = [(json.dumps(log, separators=(",", ":")) + "\n").encode() for log in held]
        reports_only = all(log.get("op_code") == REPORT for log in held)
        with get_lock_file(self._lock):
            offset = self._log_number_offset.get(self._in_file)
            if offset is None or os.stat(self._file_path).st_size != offset:
                raise self._foreign()
            with open(self._file_path, "ab") as f:
                f.write(b"".join(lines))
                f.flush()
                if not reports_only:  # reports: synced with the next write (the module)
                    os.fsync(f.fileno())
        for line in lines:
            self._log_number_offset[self._in_file + 1] = offset = offset + len(line)
            self._in_file += 1

    def _foreign(self) -> RevstudyError:
        return RevstudyError(
            f"{self._file_path}: changed by another process while the study's driver held "
            "it (the driver is its only writer under the study lock); the driver's last "
            "operations were not written: stop the other writer and resume the study"
        )


def batched(storage: Any) -> AbstractContextManager[None]:
    """`storage.batch()` where the storage batches its appends, else nothing."""
    return storage.batch() if isinstance(storage, StudyJournalStorage) else nullcontext()
