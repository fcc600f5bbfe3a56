"""Ray Tune's callback and stopper of a driver run: the driver-side records of a study's
trials, as Ray reports them.

`StudyCallback` is a Ray Tune callback: it writes each trial's `trial.json` (Optuna number,
params, baseline flag), keeps the tidy tables in step as trials report and end
(`records.LiveTables`: only trials that had an event are read again), removes a
finished trial's checkpoint, and feeds the `LivePanel` (revstudy.study.live_panel).
`StudyStopper` ends a study whose first trials all fail.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ray import tune

from revstudy.files import read_json, write_json_atomic
from revstudy.optunafile import optuna_storage
from revstudy.study import stopping
from revstudy.study.devices import trial_device
from revstudy.study.live_panel import LivePanel, short
from revstudy.study.optuna_store import RAY_ID_ATTR
from revstudy.study.records import LiveTables
from revstudy.study.spaces import SearchSpace, baseline_params
from revstudy.study.tracking import StudyTrackers
from revstudy.studyfolder import (
    FAILURE_FILE,
    FINAL_KEY,
    STATE_FILE,
    STOPPED_FILE,
    TRIAL_FILE,
    TRIAL_KEY,
    numerical_problem,
    public_params,
    trial_dir,
)
from revstudy.studyinfo import StudyInfo


class StudyStopper(tune.Stopper):
    """Stop a study whose trials all fail. Once `threshold` trials failed and none
    succeeded, no new trial starts (`holding`, which the searcher reads); the study stops
    when the trials still running have ended, unless one of them succeeds, and then it goes
    on: a trial still training when the failures arrive may be the one that works.
    `succeeded` starts at the study's earlier successes (a setup known to work is never
    stopped by its failures, e.g. by `resume --retry-failed`)."""

    def __init__(self, threshold: int, succeeded: int = 0):
        self.threshold = max(1, threshold)
        self.failed = 0
        self.succeeded = succeeded
        self.running: set[str] = set()  # folder ids of this run's trials that started

    def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
        return False

    def holding(self) -> bool:
        """Whether new trials wait: enough failures and no success yet."""
        return self.succeeded == 0 and self.failed >= self.threshold

    def stop_all(self) -> bool:
        return self.holding() and not self.running


class StudyCallback(tune.Callback):
    """Ray Tune callback of a driver run: each trial's `trial.json` when it starts, the tidy
    tables as trials report and end, a finished trial's checkpoint removed, the stopper's
    counts; what it sees is drawn by a `LivePanel`."""

    def __init__(
        self,
        study: Path,
        info: StudyInfo,
        stopper: StudyStopper,
        live: bool = True,
        done_before: int = 0,
    ):
        self.study = study
        self.info = info
        self.stopper = stopper
        self.trials: dict[str, Any] = {}
        self.panel = LivePanel(info, live=live, done_before=done_before)
        self.tables: LiveTables | None = LiveTables(study)
        # the searcher's Optuna number of a folder id (`StudySearcher.number_of`), if known
        self.number_of: Callable[[str], int | None] | None = None
        self._space = SearchSpace.from_info(info.space)
        self._baseline = baseline_params(self._space) if info.baseline else None
        self.trackers: StudyTrackers | None = None  # `launch --log` (set by the driver)

    def __getstate__(self) -> dict[str, Any]:
        """Ray pickles run configs (tuner.pkl): leave out the terminal, live trials and
        tracker clients."""
        state = dict(self.__dict__)
        state.update(panel=None, trials={}, number_of=None, trackers=None, tables=None)
        return state

    def display(self) -> contextlib.AbstractContextManager[None]:
        return self.panel.display(self.trials)

    def ray_states(self) -> dict[str, dict[str, Any]]:
        """Ray's view of this run's trials, keyed by trial folder id."""
        out = {}
        for tid, t in self.trials.items():
            err = ""
            if t.status == "ERROR":
                err = str(getattr(t, "error_file", "") or "failed (see Ray logs)")
            out[tid] = {
                "status": t.status,
                "config": public_params(dict(t.config)),
                "error": err,
                "last_result": dict(t.last_result or {}),
            }
        return out

    def _refresh(self, rid: str) -> None:
        """Trial `rid` had an event: the tables, re-read for the trials that had one, when
        their refresh is due (`LiveTables`: spaced to stay a small share of the run)."""
        if self.tables is None:
            return
        self.tables.touch(rid)
        if self.tables.due():
            first = not self.tables.read_all
            self.tables.refresh(self.ray_states())
            if first:  # it read every folder: the panel ranks earlier runs' trials too
                rows = self.tables.rows()
                self.panel.seed(row for tid, row in rows.items() if tid not in self.trials)

    def _optuna_number(self, trial_id: str) -> int | None:
        """Optuna's number for a trial folder id: from the searcher that asked for it
        (`number_of`, set by the driver), else looked up in the Optuna record (each lookup reads
        every trial: at 10⁴ trials that is seconds per trial start)."""
        if self.number_of is not None:
            number = self.number_of(trial_id)
            if number is not None:
                return number
        import optuna

        try:
            s = optuna.load_study(
                study_name=self.info.optuna_name, storage=optuna_storage(self.study)
            )
        except Exception:
            return None
        for t in reversed(s.get_trials(deepcopy=False)):
            if t.user_attrs.get(RAY_ID_ATTR) == trial_id:
                return int(t.number)
        return None

    def _write_trial_json(self, rid: str, trial: Any) -> None:
        meta_path = trial_dir(self.study, rid) / TRIAL_FILE
        if meta_path.is_file():
            return
        params = public_params(dict(trial.config))
        try:
            config = self._space.to_config(params).to_dict()
        except Exception:  # the trial itself reports an invalid config as its failure
            config = {}
        write_json_atomic(
            meta_path,
            {
                "config": config,
                "trial_id": rid,
                "number": self._optuna_number(rid),
                "params": params,
                "is_baseline": self._baseline is not None and params == self._baseline,
                "device": trial_device(self.info.gpus_per_trial),
            },
        )

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        rid = record_id(trial)
        self.trials[rid] = trial
        self._write_trial_json(rid, trial)
        self.stopper.running.add(rid)
        if self.trackers is not None:
            meta = read_json(trial_dir(self.study, rid) / TRIAL_FILE) or {}
            tags = {k: meta.get(k) for k in ("number", "is_baseline")}
            params = public_params(dict(trial.config))
            self.trackers.started(rid, params, meta.get("config") or {}, tags)
        self._refresh(rid)
        self.panel.say(f"trial {rid} started", self.trials)

    def on_trial_result(
        self, iteration: int, trials: list, trial: Any, result: dict, **info: Any
    ) -> None:
        rid = record_id(trial)
        self.trials[rid] = trial
        if self.trackers is not None:
            self.trackers.epoch(rid, result)
        self._refresh(rid)
        self.panel.update(self.trials, rid)

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        rid = record_id(trial)
        self.trials[rid] = trial
        # finished or stopped for good: its checkpoint is no longer needed (lean folders)
        (trial_dir(self.study, rid) / STATE_FILE).unlink(missing_ok=True)
        result = trial.last_result or {}
        state = "COMPLETED" if result.get(FINAL_KEY) else "STOPPED_EARLY"
        stopped = state == "STOPPED_EARLY"
        problem = numerical_problem(result, tuple(self.info.metrics))
        if problem is not None:
            state = "DIVERGED"
        if stopped:  # Ray ends a trial unfinished only when its scheduler
            # stops it: a trial cut off by Ctrl-C or the time budget never gets here, and
            # without this record it reads as INTERRUPTED (records.build_trials_table)
            write_json_atomic(
                trial_dir(self.study, rid) / STOPPED_FILE,
                {"epoch": result.get("epoch"), "by": "scheduler"},
            )
        self.stopper.succeeded += 1
        self.stopper.running.discard(rid)
        if self.trackers is not None:
            self.trackers.ended(rid, state, result)
        self.panel.ended(state, rid, result, public_params(dict(trial.config)))
        self._refresh(rid)
        objectives = self.info.objectives  # each one: a multi-objective study ranks on all
        figures = ", ".join(f"{o.metric}={short(result.get(o.metric))}" for o in objectives)
        self.panel.say(
            f"trial {rid} {state.lower()}: {figures} "
            f"[{self.panel.done}/{self.info.num_samples}]"
            + (f" ({problem}; never ranked)" if problem else ""),
            self.trials,
        )

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        rid = record_id(trial)
        self.stopper.running.discard(rid)
        if stopping.requested():  # its worker died as the study was stopped (SIGTERM):
            self.trials.pop(rid, None)  # interrupted, not failed; resume continues it
            self.panel.say(f"trial {rid} interrupted by the stop", self.trials)
            return
        self.trials[rid] = trial
        self.stopper.failed += 1
        if self.trackers is not None:
            self.trackers.ended(rid, "FAILED", {})
        self.panel.ended("FAILED", rid, {}, {})
        self._refresh(rid)
        reason = (read_json(trial_dir(self.study, rid) / FAILURE_FILE) or {}).get("reason", "")
        self.panel.say(f"trial {rid} failed: {reason}", self.trials)


def record_id(trial: Any) -> str:
    """The trial's folder id: its first Ray id, kept when `resume` continues it."""
    return str(trial.config.get(TRIAL_KEY) or trial.trial_id)
