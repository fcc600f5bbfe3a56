"""The trial scheduler of a study run: ASHA on a per-epoch objective, MO-ASHA on several,
or run-to-end (FIFO).

A resumed study starts a fresh Tuner (nothing of Ray's is unpickled), so ASHA's rungs are
rebuilt from the trial records: every earlier trial's per-epoch objective is replayed into
them, and a continued trial's earlier epochs are replayed under its new Ray id, so the
stopping decisions of a resumed study match those of an uninterrupted one. The paper
baseline is never stopped early.

With several objectives (each measured every epoch), `ParetoASHA` is MO-ASHA (Schmucker et
al. 2021, as in Syne Tune): a rung keeps the trials of its best non-dominated fronts, ties
within a front broken by NSGA-II's crowding distance, in the same asynchronous successive
halving as ASHA.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Sequence
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd
from ray.tune.schedulers import ASHAScheduler, FIFOScheduler, TrialScheduler
from ray.tune.schedulers.async_hyperband import _Bracket

from revstudy.studyfolder import PER_EPOCH, PER_EPOCH_METRICS, Objective, pareto_fronts
from revstudy.studyinfo import StudyInfo

__all__ = [
    "ParetoASHA",
    "SeededASHA",
    "epoch_history",
    "make_scheduler",
    "record_result",
    "rung_keeps",
]

History = dict[str, list[tuple[int, tuple[float, ...]]]]  # folder id -> [(epoch, values)]


class SeededASHA(ASHAScheduler):
    """ASHA whose rungs can be filled from recorded per-epoch results, and which never stops
    a protected trial (the paper baseline: every report compares against its final values,
    so it must reach them; its per-epoch values still set the rungs' cutoffs for others)."""

    def __init__(self, *args: Any, protect: Callable[[dict], bool] | None = None, **kw: Any):
        super().__init__(*args, **kw)
        self._protect = protect

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict) -> str:
        decision = super().on_trial_result(tune_controller, trial, result)
        if decision == TrialScheduler.STOP and self._protect and self._protect(trial.config):
            return TrialScheduler.CONTINUE
        return decision

    def milestones(self) -> tuple[int, ...]:
        """The epochs at which ASHA compares trials (its rungs): a trial validates there
        whatever its `val_every`."""
        return tuple(sorted({int(m) for b in self._brackets for m, _ in b._rungs}))

    def seed(self, trial_id: str, values: list[tuple[int, tuple[float, ...]]]) -> None:
        """Replay `(epoch, objective values)` of one trial, in epoch order: each result is
        recorded where `_Bracket.on_result` records it, without the decision it would also
        compute (a percentile of the rung, or MO-ASHA's sort of it): the decisions of a
        replay are never used, and computing them made a resume's replay grow with the
        square of the trials (3.5 s at 10⁴ with one objective, minutes with several)."""
        fake: Any = SimpleNamespace(trial_id=trial_id)  # _Bracket reads trial_id only
        for bracket in self._brackets:
            for epoch, vector in sorted(values):
                if bracket._stop_last_trials:
                    record_result(bracket, trial_id, epoch, self._reward(vector))
                else:  # Ray's other rule (never set here): its own method
                    bracket.on_result(fake, epoch, self._reward(vector))

    def _reward(self, values: Sequence[float]) -> Any:
        """What a rung records: ASHA maximises metric_op * the first objective."""
        return float(self._metric_op or 1.0) * values[0]


def record_result(bracket: _Bracket, trial_id: str, epoch: int, reward: Any) -> None:
    """What Ray's `_Bracket.on_result` keeps of one result (with `stop_last_trials`, Ray's
    default): the reward, in the highest rung the epoch reaches that has no reward of the
    trial yet (rungs are held highest first)."""
    for milestone, recorded in bracket._rungs:
        if epoch < milestone or trial_id in recorded:
            continue
        if reward is not None:
            recorded[trial_id] = reward
        break


def rung_keeps(recorded: Sequence[np.ndarray], value: np.ndarray, reduction_factor: float) -> bool:
    """MO-ASHA's decision at one rung: does a trial with `value` (objectives signed to
    maximise) continue, given the values `recorded` there before it? It continues when
    fewer than ceil(len(recorded) / reduction_factor) of them rank ahead of it: in a better
    non-dominated front, or in its front with a larger crowding distance. With one
    objective this is ASHA's top-1/reduction_factor rule."""
    if not len(recorded):
        return True
    points = np.vstack([*recorded, value])
    points = np.where(np.isfinite(points), points, -np.inf)  # unmeasured or broken: worst
    kept = math.ceil(len(recorded) / reduction_factor)
    # fronts sorted only until `kept` points are: a trial not among them has at least
    # `kept` ahead of it whatever its exact front (at 10⁴ results: 18 ms, not 31)
    front = pareto_fronts(points, top=kept)
    mine = front[-1]
    same = np.flatnonzero(front == mine)
    crowd = crowding_distance(points[same])
    ahead = int((front < mine).sum()) + int((crowd[:-1] > crowd[-1]).sum())
    return ahead < kept


def crowding_distance(points: np.ndarray) -> np.ndarray:
    """NSGA-II's crowding distance of each point of one front (larger: more isolated, kept
    first); the extremes of each objective get infinity."""
    n, k = points.shape
    out = np.zeros(n)
    if n <= 2:
        return np.full(n, np.inf)
    for j in range(k):
        col = points[:, j]
        order = np.argsort(col, kind="stable")
        span = col[order[-1]] - col[order[0]]
        out[order[0]] = out[order[-1]] = np.inf
        if not np.isfinite(span) or span <= 0:
            continue
        gaps = (col[order[2:]] - col[order[:-2]]) / span
        out[order[1:-1]] += gaps
    return out


class _ParetoBracket(_Bracket):
    """ASHA's bracket with vector rewards: a rung keeps its best non-dominated fronts."""

    def on_result(self, trial: Any, cur_iter: int, cur_rew: Any) -> str:
        for milestone, recorded in self._rungs:
            if cur_iter < milestone or trial.trial_id in recorded:
                continue
            value = np.asarray(cur_rew, dtype=float)
            keep = rung_keeps(list(recorded.values()), value, self.rf)
            recorded[trial.trial_id] = value
            return TrialScheduler.CONTINUE if keep else TrialScheduler.STOP
        return TrialScheduler.CONTINUE


class ParetoASHA(SeededASHA):
    """MO-ASHA over several per-epoch objectives (`rung_keeps`), with ASHA's rungs, replay
    (`seed`) and protected baseline."""

    def __init__(
        self,
        objectives: Sequence[Objective],
        *,
        grace_period: int,
        reduction_factor: float,
        **kw: Any,
    ):
        first = objectives[0]
        super().__init__(
            metric=first.metric,
            mode=first.mode,
            grace_period=grace_period,
            reduction_factor=reduction_factor,
            **kw,
        )
        self._objectives = tuple(objectives)
        self._brackets = [_ParetoBracket(grace_period, self._max_t, reduction_factor, 0)]

    def _reward(self, values: Sequence[float]) -> Any:
        return np.array([o.sign * v for o, v in zip(self._objectives, values, strict=True)])

    def _values(self, result: dict) -> list[float] | None:
        out = []
        for o in self._objectives:
            v = result.get(o.metric)
            if isinstance(v, bool) or not isinstance(v, int | float):
                return None
            out.append(float(v))
        return out

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict) -> str:
        values = self._values(result)
        if self._time_attr not in result or values is None:
            return TrialScheduler.CONTINUE
        if result[self._time_attr] >= self._max_t:
            decision = TrialScheduler.STOP  # its last epoch: it ends by itself
        else:
            bracket = self._trial_info[trial.trial_id]
            decision = bracket.on_result(trial, result[self._time_attr], self._reward(values))
        if decision == TrialScheduler.STOP and self._protect and self._protect(trial.config):
            return TrialScheduler.CONTINUE
        if decision == TrialScheduler.STOP:
            self._num_stopped += 1
        return decision

    def on_trial_complete(self, tune_controller: Any, trial: Any, result: dict) -> None:
        values = self._values(result)
        bracket = self._trial_info.pop(trial.trial_id, None)
        if bracket is not None and self._time_attr in result and values is not None:
            bracket.on_result(trial, result[self._time_attr], self._reward(values))


def make_scheduler(
    info: StudyInfo,
    max_t: int,
    history: History | None = None,
    protect: Callable[[dict], bool] | None = None,
) -> tuple[Any, SeededASHA | None]:
    """(scheduler, the ASHA or None), ASHA's rungs filled from `history` (`epoch_history`).

    ASHA counts our reported `epoch`, not Ray's `training_iteration`, which restarts at 1
    when a trial is continued under a new Ray id. Several objectives, each measured every
    epoch: MO-ASHA (`ParetoASHA`)."""
    per_epoch = all(o.metric in PER_EPOCH_METRICS for o in info.objectives)
    if info.scheduler == "asha" and per_epoch and max_t > 1:
        settings: dict[str, Any] = dict(
            time_attr="epoch",
            max_t=max_t,
            grace_period=min(2, max_t),
            reduction_factor=3,
            protect=protect,
        )
        first = info.objectives[0]
        asha = (
            SeededASHA(metric=first.metric, mode=first.mode, **settings)
            if len(info.objectives) == 1
            else ParetoASHA(info.objectives, **settings)
        )
        for tid, values in (history or {}).items():
            asha.seed(tid, values)
        return asha, asha
    if info.scheduler == "asha" and max_t > 1:
        late = [o.metric for o in info.objectives if o.metric not in PER_EPOCH_METRICS]
        print(
            f"note: ASHA compares trials every few epochs, and {', '.join(late)} "
            f"{'is' if len(late) == 1 else 'are'} known only at the end (per epoch: "
            f"{', '.join(PER_EPOCH_METRICS)}); trials run to completion",
            file=sys.stderr,
        )
    return FIFOScheduler(), None


def epoch_history(epochs: pd.DataFrame, objectives: Sequence[str]) -> History:
    """{trial folder id: [(epoch, mean over repeats of each objective's per-epoch key)]},
    epochs where one of them was not measured left out."""
    keys = [PER_EPOCH.get(o, "") for o in objectives]
    if epochs.empty or any(k not in epochs for k in keys):
        return {}
    means = epochs.groupby(["trial_id", "epoch"])[keys].mean().dropna()
    out: History = {}
    # one float array, not a Series a row (iterrows: 1.5 s of a resume at 10⁴ trials, now 0.2)
    for (tid, epoch), row in zip(means.index, means.to_numpy(dtype=float), strict=True):
        out.setdefault(str(tid), []).append((int(epoch), tuple(float(v) for v in row)))
    return out
