"""Ray Tune's `OptunaSearch`, with the Optuna database as its only state.

Stock `OptunaSearch` keeps its bookkeeping in memory and saves it by pickling; resuming a
study through `Tuner.restore` unpickles that and `tuner.pkl`, so a shared study folder could
run code. `StudySearcher` saves nothing: every fact it needs on resume is in `optuna.db`
(SQLite) and the trial folders (JSON, weights-only checkpoints). On resume a fresh Tuner
runs the unfinished Optuna trials again under their old folder ids (`Continuation`), then
asks Optuna (through `OptunaSearch.suggest`) for new trials up to `num_samples`.

Optuna states mirror Ray's outcomes: a trial that reported its final evaluation is
COMPLETE, one stopped early by the scheduler is PRUNED with its last per-epoch value
(single objective), an errored one is FAIL.
"""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import optuna
from ray.tune.search import Searcher
from ray.tune.search.optuna import OptunaSearch

from revstudy.study.spaces import SearchSpace
from revstudy.studyfolder import FINAL_KEY, PER_EPOCH, TRIAL_KEY

__all__ = [
    "COUNTED",
    "Continuation",
    "StudySearcher",
    "counted_trials",
    "retries",
    "tell",
    "unfinished",
]

RAY_ID_ATTR = "ray_trial_id"  # Optuna user attr: the trial's folder under trials/
RETRIED_ATTR = "revstudy_retried"  # a FAIL trial run again (under a new Optuna number)
UNSTARTED_ATTR = "revstudy_never_started"  # asked of Optuna, driver died before Ray had it
TS = optuna.trial.TrialState
COUNTED = (TS.COMPLETE, TS.PRUNED, TS.FAIL, TS.RUNNING)  # WAITING: enqueued, not started


@dataclass(frozen=True)
class Continuation:
    """An Optuna trial to run (again) under its old folder id, from its checkpoint if any."""

    number: int  # Optuna trial number
    record_id: str  # folder name under trials/
    params: dict[str, Any]


def counted_trials(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    """Trials that count towards `num_samples` (a retried failure counts once, a trial that
    never started not at all)."""
    return [
        t
        for t in study.get_trials(deepcopy=False, states=COUNTED)
        if not t.user_attrs.get(RETRIED_ATTR) and not t.user_attrs.get(UNSTARTED_ATTR)
    ]


def discard_unstarted(study: optuna.Study) -> int:
    """RUNNING trials without a folder id: the driver died while Optuna was sampling them
    (between `ask` and the id), so no Ray trial and no folder ever existed. Each is marked
    failed and never started (not counted, so a new trial takes its place), and an enqueued
    one (the paper baseline) is enqueued again. Only a driver holding the study lock may call
    this. Returns how many were discarded."""
    n = 0
    for t in study.get_trials(deepcopy=False, states=(TS.RUNNING,)):
        if t.user_attrs.get(RAY_ID_ATTR):
            continue
        optuna.trial.Trial(study, t._trial_id).set_user_attr(UNSTARTED_ATTR, True)
        study.tell(t.number, state=TS.FAIL)
        fixed = t.system_attrs.get("fixed_params")
        if isinstance(fixed, dict) and fixed:
            study.enqueue_trial(fixed)
        n += 1
    return n


def unfinished(study: optuna.Study) -> list[Continuation]:
    """RUNNING trials: their driver died (or was interrupted) before they ended."""
    out = []
    for t in study.get_trials(deepcopy=False, states=(TS.RUNNING,)):
        rid = t.user_attrs.get(RAY_ID_ATTR)
        if isinstance(rid, str) and rid:
            out.append(Continuation(t.number, rid, dict(t.params)))
    return out


def retries(study: optuna.Study) -> list[Continuation]:
    """FAIL trials to run again (`resume --retry-failed`), each as a new RUNNING Optuna trial
    with the same parameters and folder (it continues from its last checkpoint there)."""
    out = []
    for t in study.get_trials(deepcopy=False, states=(TS.FAIL,)):
        rid = t.user_attrs.get(RAY_ID_ATTR)
        if t.user_attrs.get(RETRIED_ATTR) or not isinstance(rid, str) or not rid:
            continue
        template = optuna.trial.FrozenTrial(
            number=-1,
            state=TS.RUNNING,
            value=None,
            values=None,
            datetime_start=datetime.now(),
            datetime_complete=None,
            params=dict(t.params),
            distributions=dict(t.distributions),
            user_attrs={**t.user_attrs, "revstudy_retry_of": t.number},
            system_attrs={},
            intermediate_values={},
            trial_id=-1,
        )
        new_id = study._storage.create_new_trial(study._study_id, template_trial=template)
        study._storage.set_trial_user_attr(t._trial_id, RETRIED_ATTR, True)
        number = study._storage.get_trial_number_from_id(new_id)
        out.append(Continuation(int(number), rid, dict(t.params)))
    return out


class StudySearcher(OptunaSearch):
    """OptunaSearch over an existing Optuna study: continuations first, then `new` trials."""

    def __init__(
        self,
        study: optuna.Study,
        space: SearchSpace,
        objectives: list[tuple[str, str]],
        *,
        continuations: list[Continuation],
        new: int,
        on_continue: Callable[[str, str], None] | None = None,
    ):
        multi = len(objectives) > 1
        super().__init__(
            space=space.suggest,  # define-by-run: conditional parameters
            metric=[m for m, _ in objectives] if multi else objectives[0][0],
            mode=[d for _, d in objectives] if multi else objectives[0][1],
            sampler=study.sampler,
            study_name=study.study_name,
            storage=study._storage,
        )
        self.objectives = objectives
        self.continuations = list(continuations)  # as given: unfinished trials to continue
        self._pending = list(continuations)
        self._new = max(0, new)
        self._told: set[str] = set()
        self._on_continue = on_continue

    @property
    def total(self) -> int:
        """Ray trials this searcher will start (Tune's `num_samples` for this run)."""
        return len(self._pending) + self._new

    # Ray's Searcher API ----------------------------------------------------------------------
    def set_search_properties(
        self, metric: str | None, mode: str | None, config: dict, **spec: Any
    ) -> bool:
        return True  # objectives come from study.json, never from TuneConfig

    @property
    def study(self) -> optuna.Study:
        assert self._ot_study is not None  # created by OptunaSearch.__init__ (space given)
        return self._ot_study

    def suggest(self, trial_id: str) -> dict[str, Any] | None:
        study = self.study
        if self._pending:
            c = self._pending.pop(0)
            self._ot_trials[trial_id] = optuna.trial.Trial(study, _storage_id(study, c.number))
            if self._on_continue is not None:
                self._on_continue(trial_id, c.record_id)
            return {**c.params, TRIAL_KEY: c.record_id}
        if self._new <= 0:
            return Searcher.FINISHED  # type: ignore[return-value]  # Ray's documented sentinel
        self._new -= 1
        with warnings.catch_warnings():  # the enqueued paper baseline may lie outside the space
            warnings.filterwarnings("ignore", "Fixed parameter .* is out of range")
            params = super().suggest(trial_id)  # Optuna's ask + the define-by-run space
        self._ot_trials[trial_id].set_user_attr(RAY_ID_ATTR, trial_id)
        return params

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        """Per-epoch objective as Optuna's intermediate value, at step = epoch (Ray's
        `training_iteration` restarts at 1 when a trial is continued)."""
        trial = self._ot_trials.get(trial_id)
        if trial is None or len(self.objectives) != 1:
            return  # Optuna stores intermediate values of single-objective studies only
        value = _number(result.get(PER_EPOCH.get(self.objectives[0][0], "")))
        step = result.get("epoch")
        if value is None or not isinstance(step, int):
            return
        with warnings.catch_warnings():  # a resumed trial re-reports its last epoch
            warnings.simplefilter("ignore")
            # finished or multi-objective: nothing to record
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                trial.report(value, step)

    def on_trial_complete(
        self, trial_id: str, result: dict | None = None, error: bool = False
    ) -> None:
        trial = self._ot_trials.get(trial_id)
        if trial is None or trial_id in self._told:
            return
        self._told.add(trial_id)
        if result and not error:  # the result a scheduler stopped on never came through
            self.on_trial_result(trial_id, result)  # on_trial_result: PRUNED keeps it
        tell(self.study, trial.number, self.objectives, result, error)

    def save_to_dir(self, checkpoint_dir: str, session_str: str = "default") -> None:
        """Nothing to save: the Optuna database is the state (and nothing gets pickled)."""


def tell(
    study: optuna.Study,
    number: int,
    objectives: list[tuple[str, str]],
    result: dict | None,
    error: bool,
) -> TS:
    """Record a trial's outcome in Optuna; returns the state told."""
    result = result or {}
    values = [_number(result.get(m)) for m, _ in objectives]
    if error:
        state = TS.FAIL
    elif result.get(FINAL_KEY):
        state = TS.COMPLETE if all(v is not None for v in values) else TS.FAIL
        if state == TS.FAIL:
            study._storage.set_trial_user_attr(  # why, for optuna-dashboard and status
                _storage_id(study, number), "revstudy_reason", "final objective is NaN"
            )
    else:
        state = TS.PRUNED  # stopped before its final evaluation (scheduler, time budget)
    try:
        if state == TS.COMPLETE:
            study.tell(number, [v for v in values if v is not None])
        else:
            study.tell(number, state=state)
    except (ValueError, RuntimeError):  # already finished (told by an earlier driver)
        pass
    return state


def _storage_id(study: optuna.Study, number: int) -> int:
    """The storage's id of trial `number` (numbers count per study, ids per database)."""
    return int(study._storage.get_trial_id_from_study_id_trial_number(study._study_id, number))


def _number(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, int | float):
        return None
    return float(v) if math.isfinite(v) else None
