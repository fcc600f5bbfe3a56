"""Ray Tune's `OptunaSearch`, with the Optuna record as its only state.

Stock `OptunaSearch` keeps its bookkeeping in memory and saves it by pickling; resuming a
study through `Tuner.restore` unpickles that and `tuner.pkl`, so a shared study folder could
run code. `StudySearcher` saves nothing: every fact it needs on resume is in the Optuna
record (`optuna.journal`, JSON lines; older studies' `optuna.db`) and the trial folders
(JSON, weights-only checkpoints). On resume a fresh Tuner runs the unfinished Optuna trials
again under their old folder ids (`Continuation`), then asks Optuna (through
`OptunaSearch.suggest`) for new trials up to `num_samples`.

Optuna states mirror Ray's outcomes: a trial that reported its final evaluation is
COMPLETE, one stopped early by the scheduler is PRUNED with its last per-epoch value
(single objective), an errored one is FAIL.
"""

from __future__ import annotations

import contextlib
import functools
import warnings
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import optuna
from ray.tune.search import Searcher
from ray.tune.search.optuna import OptunaSearch

from revstudy.journalstore import batched
from revstudy.study import stopping
from revstudy.study.optuna_store import (
    RAY_ID_ATTR,
    Continuation,
    as_number,
    storage_id,
    tell,
)
from revstudy.study.spaces import SearchSpace
from revstudy.studyfolder import PER_EPOCH, TRIAL_KEY, Constraint, Objective

__all__ = ["StudySearcher", "one_write"]

Call = TypeVar("Call", bound=Callable[..., Any])


def one_write(call: Call) -> Call:
    """A searcher call whose Optuna operations (a pack's asks, an epoch's reports, the
    outcomes) reach the study's journal as one append with one fsync when it returns
    (`revstudy.journalstore`: ~14 locked, fsync'ed appends a trial otherwise)."""

    @functools.wraps(call)
    def in_one_write(self: StudySearcher, *args: Any, **kw: Any) -> Any:
        with batched(self.study._storage):
            return call(self, *args, **kw)

    return in_one_write  # type: ignore[return-value]


class StudySearcher(OptunaSearch):
    """OptunaSearch over an existing Optuna study: continuations first, then `new` trials."""

    def __init__(
        self,
        study: optuna.Study,
        space: SearchSpace,
        objectives: Sequence[Objective],
        *,
        continuations: list[Continuation],
        new: int,
        on_continue: Callable[[str, str], None] | None = None,
        constraints: Sequence[Constraint] = (),
        hold: Callable[[], bool] | None = None,
    ):
        multi = len(objectives) > 1
        super().__init__(
            space=space.suggest,  # define-by-run: conditional parameters
            metric=[o.metric for o in objectives] if multi else objectives[0].metric,
            mode=[o.mode for o in objectives] if multi else objectives[0].mode,
            sampler=study.sampler,
            study_name=study.study_name,
            storage=study._storage,
        )
        self.objectives = tuple(objectives)
        self.constraints = tuple(constraints)  # bounds told to Optuna with each outcome
        self.continuations = list(continuations)  # as given: unfinished trials to continue
        self._pending = list(continuations)
        self._new = max(0, new)
        self._told: set[str] = set()
        self._on_continue = on_continue
        # while it says so, no trial starts (`StudyStopper.holding`: the trials so far failed)
        self.hold = hold

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

    @one_write
    def suggest(self, trial_id: str) -> dict[str, Any] | None:
        if self.hold is not None and self.hold():
            return None  # Ray asks again later
        study = self.study
        if self._pending:
            c = self._pending.pop(0)
            self._ot_trials[trial_id] = optuna.trial.Trial(study, storage_id(study, c.number))
            if self._on_continue is not None:
                self._on_continue(trial_id, c.record_id)
            return {**c.params, TRIAL_KEY: c.record_id}
        if self._new <= 0:
            return Searcher.FINISHED  # type: ignore[return-value]  # Ray's documented sentinel
        self._new -= 1
        return self.ask_new(trial_id)

    def ask_new(self, trial_id: str) -> dict[str, Any]:
        """A new Optuna trial's parameters (Optuna's ask + the define-by-run space), the
        trial tagged with `trial_id`, its folder id."""
        with warnings.catch_warnings():  # the enqueued paper baseline may lie outside the space
            warnings.filterwarnings("ignore", "Fixed parameter .* is out of range")
            params = super().suggest(trial_id)
        if params is None:  # OptunaSearch says it is finished: never for an open study
            raise RuntimeError(f"Optuna gave no parameters for trial {trial_id}")
        self._ot_trials[trial_id].set_user_attr(RAY_ID_ATTR, trial_id)
        return params

    @one_write
    def on_trial_result(self, trial_id: str, result: dict) -> None:
        self.record_epoch(trial_id, result)

    def record_epoch(self, trial_id: str, result: dict) -> None:
        """Per-epoch objective as Optuna's intermediate value, at step = epoch (Ray's
        `training_iteration` restarts at 1 when a trial is continued)."""
        trial = self._ot_trials.get(trial_id)
        if trial is None or len(self.objectives) != 1:
            return  # Optuna stores intermediate values of single-objective studies only
        value = as_number(result.get(PER_EPOCH.get(self.objectives[0].metric, "")))
        step = result.get("epoch")
        if value is None or not isinstance(step, int):
            return
        with warnings.catch_warnings():  # a resumed trial re-reports its last epoch
            warnings.simplefilter("ignore")
            # finished or multi-objective: nothing to record
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                trial.report(value, step)

    @one_write
    def on_trial_complete(
        self, trial_id: str, result: dict | None = None, error: bool = False
    ) -> None:
        trial = self._ot_trials.get(trial_id)
        if trial is None or trial_id in self._told:
            return
        if error and stopping.requested():  # its worker died as the study was stopped:
            return  # an interruption; Optuna keeps it RUNNING and resume continues it
        self._told.add(trial_id)
        if result and not error:  # the result a scheduler stopped on never came through
            self.record_epoch(trial_id, result)  # on_trial_result: PRUNED keeps it
        tell(self.study, trial.number, self.objectives, result, error, self.constraints)

    def number_of(self, trial_id: str) -> int | None:
        """The Optuna number of the trial this searcher runs under `trial_id` (a new trial's
        folder id), None when it does not know it."""
        trial = self._ot_trials.get(trial_id)
        return None if trial is None else int(trial.number)

    def save_to_dir(self, checkpoint_dir: str, session_str: str = "default") -> None:
        """Nothing to save: the Optuna database is the state (and nothing gets pickled)."""
