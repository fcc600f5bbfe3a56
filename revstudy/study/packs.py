"""Packs on the driver: one Ray trial trains K study trials (`revstudy.study.pack_trial`),
and Optuna, the scheduler and the records still see K trials.

Ray Tune schedules the pack; three adapters hand each member's row of the pack's report to
the parts that serve lone trials, as if the member were a Ray trial of its own (a
`MemberView`, named by its folder id):

- `PackSearcher` asks Optuna for a pack's members: the first freely, the others with its
  shape parameters fixed (`optuna.samplers.PartialFixedSampler`), so the sampler learns from
  every member; unfinished members of an earlier run are regrouped by shape. Each member's
  per-epoch values and outcome go to its own Optuna trial.
- `PackScheduler` asks the study's scheduler (ASHA, rungs replayed on resume exactly as for
  lone trials) about every member's epoch; a member it stops leaves the pack.
- `PackCallback` writes each member's trial.json, stopped.json and tables, and feeds the
  live panel, through `StudyCallback`.

Ray Tune calls them in this order for each report, before the pack's next epoch may start
(a function trial waits in `report`): scheduler, searcher, callback. The `PackBook` they
share holds the members and the scheduler's verdicts.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import optuna
from ray.tune.schedulers import FIFOScheduler, TrialScheduler
from ray.tune.search import Searcher

from revstudy.study.callbacks import StudyCallback
from revstudy.study.optuna_store import BASELINE_ATTR, Continuation, storage_id
from revstudy.study.search import StudySearcher, one_write
from revstudy.studyfolder import FAILED_KEY, FINAL_KEY, PACK_KEY, TRIAL_KEY

__all__ = [
    "MemberView",
    "PackBook",
    "PackCallback",
    "PackScheduler",
    "PackSearcher",
    "member_id",
]

STOPPED, COMPLETED, FAILED = "stopped", "completed", "failed"


def member_id(pack_id: str, j: int) -> str:
    """Folder id of a new pack's member `j` (the pack's Ray id, then its position)."""
    return f"{pack_id}-{j}"


@dataclass
class MemberView:
    """A pack member as Ray's trial objects look to revstudy's searcher, scheduler and
    callback: `trial_id` is its folder id, `config` its parameters with that id."""

    trial_id: str
    config: dict[str, Any]
    status: str = "PENDING"
    last_result: dict[str, Any] = field(default_factory=dict)
    error_file: str = ""


class PackBook:
    """The members of this run's packs and what became of each (`outcome`)."""

    def __init__(self) -> None:
        self.views: dict[str, MemberView] = {}
        self.packs: dict[str, list[str]] = {}
        self.outcome: dict[str, str] = {}

    def register(self, pack_id: str, configs: Sequence[dict[str, Any]]) -> None:
        ids = [str(c[TRIAL_KEY]) for c in configs]
        self.packs[pack_id] = ids
        for mid, c in zip(ids, configs, strict=True):
            self.views[mid] = MemberView(mid, dict(c))

    def members(self, pack_id: str) -> list[MemberView]:
        return [self.views[m] for m in self.packs.get(pack_id, [])]

    def open(self, pack_id: str) -> list[MemberView]:
        """Members of the pack with no outcome yet."""
        return [v for v in self.members(pack_id) if v.trial_id not in self.outcome]

    def rows(self, pack_id: str, result: dict[str, Any]) -> Iterator[tuple[MemberView, dict]]:
        """(member, its row) for each row of a pack's report, its view's last result set."""
        ids = set(self.packs.get(pack_id, []))
        for row in result.get(PACK_KEY) or []:
            mid = str(row.get(TRIAL_KEY, "")) if isinstance(row, dict) else ""
            if mid in ids:
                view = self.views[mid]
                if FAILED_KEY not in row:
                    view.last_result = row
                yield view, row

    def settle(self, view: MemberView, row: dict[str, Any]) -> str | None:
        """The member's outcome after `row`: the scheduler's verdict if it gave one, else
        completed (its final report) or failed (its own failure), else None (training on)."""
        outcome = self.outcome.get(view.trial_id)
        if outcome is None and FAILED_KEY in row:
            outcome = FAILED
        elif outcome is None and row.get(FINAL_KEY):
            outcome = COMPLETED
        if outcome is not None:
            self.outcome[view.trial_id] = outcome
        return outcome


class PackSearcher(StudySearcher):
    """`StudySearcher` whose suggestions are packs of up to `pack` trials of one shape."""

    def __init__(
        self,
        *args: Any,
        pack: int,
        book: PackBook,
        shape: Callable[[dict[str, Any]], Any],
        shape_params: Sequence[str],
        **kw: Any,
    ):
        super().__init__(*args, **kw)
        self.pack = pack
        self.book = book
        self.shape_params = tuple(shape_params)
        self._groups = _group(self._pending, shape, pack)
        self._pending = []

    @property
    def total(self) -> int:
        """Ray trials (packs) at most: a pack of the regrouped continuations each, the paper
        baseline alone, the new trials `pack` at a time."""
        return len(self._groups) + 1 + -(-self._new // self.pack)

    @one_write
    def suggest(self, trial_id: str) -> dict[str, Any] | None:
        if self.hold is not None and self.hold():
            return None  # Ray asks again later
        if self._groups:
            configs = [self._continue(c) for c in self._groups.pop(0)]
        elif self._new <= 0:
            return Searcher.FINISHED  # type: ignore[return-value]  # Ray's documented sentinel
        else:
            configs = self._ask_pack(trial_id)
        self.book.register(trial_id, configs)
        return {PACK_KEY: configs}

    def _continue(self, c: Continuation) -> dict[str, Any]:
        number = storage_id(self.study, c.number)
        self._ot_trials[c.record_id] = optuna.trial.Trial(self.study, number)
        return {**c.params, TRIAL_KEY: c.record_id}

    def _ask_pack(self, pack_id: str) -> list[dict[str, Any]]:
        first = self._ask_member(member_id(pack_id, 0))
        members = [first]
        if self._ot_trials[first[TRIAL_KEY]].user_attrs.get(BASELINE_ATTR):
            return members  # the paper baseline runs alone
        fixed = {k: first[k] for k in self.shape_params if k in first}
        base = self.study.sampler
        with warnings.catch_warnings():  # experimental since Optuna 2.4, still there in 5.0
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            self.study.sampler = optuna.samplers.PartialFixedSampler(fixed, base)
        try:
            while len(members) < self.pack and self._new > 0:
                members.append(self._ask_member(member_id(pack_id, len(members))))
        finally:
            self.study.sampler = base
        return members

    def _ask_member(self, mid: str) -> dict[str, Any]:
        self._new -= 1
        return {**self.ask_new(mid), TRIAL_KEY: mid}

    @one_write
    def on_trial_result(self, trial_id: str, result: dict) -> None:
        for view, row in self.book.rows(trial_id, result):
            outcome = self.book.settle(view, row)
            if outcome is None:
                self.record_epoch(view.trial_id, row)
            else:
                super().on_trial_complete(view.trial_id, row, error=outcome == FAILED)

    @one_write
    def on_trial_complete(
        self, trial_id: str, result: dict | None = None, error: bool = False
    ) -> None:
        """The pack ended: its last rows first (Ray skips `on_trial_result` for a report it
        stops on), then every member still open, with its last result (PRUNED) or FAIL."""
        if result:
            self.on_trial_result(trial_id, result)
        for view in self.book.open(trial_id):
            self.book.outcome[view.trial_id] = FAILED if error else STOPPED
            super().on_trial_complete(view.trial_id, view.last_result, error=error)


def _group(
    continuations: list[Continuation], shape: Callable[[dict[str, Any]], Any], pack: int
) -> list[list[Continuation]]:
    """Unfinished trials regrouped into packs of one shape, in Optuna's order (a pack
    resumed with the members it had continues as it would have); a trial whose shape cannot
    be told (its config fails) goes alone and fails there."""
    groups: list[list[Continuation]] = []
    open_groups: dict[Any, list[Continuation]] = {}
    for c in continuations:
        try:
            key = shape(c.params)
        except Exception:
            groups.append([c])
            continue
        current = open_groups.get(key)
        if current is None or len(current) >= pack:
            current = open_groups[key] = []
            groups.append(current)
        current.append(c)
    return groups


class PackScheduler(FIFOScheduler):
    """Runs packs first come, first served, and asks `inner` (the study's ASHA, or None:
    every member runs to its end) about each member's epochs."""

    def __init__(self, book: PackBook, inner: Any | None):
        super().__init__()
        self.book = book
        self.inner = inner

    def milestones(self) -> tuple[int, ...]:
        return () if self.inner is None else tuple(self.inner.milestones())

    def on_trial_add(self, tune_controller: Any, trial: Any) -> None:
        if self.inner is not None:
            for view in self.book.members(trial.trial_id):
                self.inner.on_trial_add(tune_controller, view)

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict) -> str:
        for view, row in self.book.rows(trial.trial_id, result):
            if view.trial_id in self.book.outcome or self.inner is None:
                continue
            if FAILED_KEY in row:
                self.book.settle(view, row)
                self.inner.on_trial_remove(tune_controller, view)
                continue
            decision = self.inner.on_trial_result(tune_controller, view, row)
            if row.get(FINAL_KEY) or decision == TrialScheduler.STOP:
                self.inner.on_trial_complete(tune_controller, view, row)
                if not row.get(FINAL_KEY):
                    self.book.outcome[view.trial_id] = STOPPED
        return TrialScheduler.CONTINUE  # the pack ends by itself when no member is left

    def on_trial_complete(self, tune_controller: Any, trial: Any, result: dict) -> None:
        self.on_trial_remove(tune_controller, trial)

    def on_trial_error(self, tune_controller: Any, trial: Any) -> None:
        self.on_trial_remove(tune_controller, trial)

    def on_trial_remove(self, tune_controller: Any, trial: Any) -> None:
        if self.inner is None:
            return
        for view in self.book.open(trial.trial_id):
            self.inner._trial_info.pop(view.trial_id, None)  # ASHA's bracket of the member


class PackCallback(StudyCallback):
    """`StudyCallback` per member: a pack's start, reports and end are its members'."""

    def __init__(self, *args: Any, book: PackBook, **kw: Any):
        super().__init__(*args, **kw)
        self.book = book

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        state["book"] = None
        return state

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        for view in self.book.members(trial.trial_id):
            view.status = "RUNNING"
            super().on_trial_start(iteration, trials, view, **info)

    def on_trial_result(
        self, iteration: int, trials: list, trial: Any, result: dict, **info: Any
    ) -> None:
        for view, row in self.book.rows(trial.trial_id, result):
            if view.status != "RUNNING":
                continue
            outcome = self.book.settle(view, row)
            if outcome == FAILED:
                view.status = "ERROR"
                view.error_file = str(row.get(FAILED_KEY, ""))
                super().on_trial_error(iteration, trials, view, **info)
            elif outcome is not None:
                view.status = "TERMINATED"
                super().on_trial_complete(iteration, trials, view, **info)
            else:
                super().on_trial_result(iteration, trials, view, row, **info)

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        for view in self.book.members(trial.trial_id):
            if view.status == "RUNNING":  # the pack was stopped with the member in it
                view.status = "TERMINATED"
                super().on_trial_complete(iteration, trials, view, **info)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        for view in self.book.members(trial.trial_id):
            if view.status == "RUNNING":
                view.status = "ERROR"
                view.error_file = str(getattr(trial, "error_file", "") or "")
                super().on_trial_error(iteration, trials, view, **info)
