"""The trial scheduler of a study run: ASHA on a per-epoch objective, or run-to-end (FIFO).

A resumed study starts a fresh Tuner (nothing of Ray's is unpickled), so ASHA's rungs are
rebuilt from the trial records: every earlier trial's per-epoch objective is replayed into
them, and a continued trial's earlier epochs are replayed under its new Ray id, so the
stopping decisions of a resumed study match those of an uninterrupted one. The paper
baseline is never stopped early.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pandas as pd
from ray.tune.schedulers import ASHAScheduler, FIFOScheduler, TrialScheduler

from revstudy.studyfolder import PER_EPOCH, PER_EPOCH_METRICS
from revstudy.studyinfo import StudyInfo

__all__ = ["SeededASHA", "make_scheduler"]


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

    def seed(self, trial_id: str, values: list[tuple[int, float]]) -> None:
        """Replay `(epoch, objective)` pairs of one trial, in epoch order."""
        sign = float(self._metric_op or 1.0)  # ASHA maximises metric_op * value
        fake: Any = SimpleNamespace(trial_id=trial_id)  # _Bracket reads trial_id only
        for bracket in self._brackets:
            for epoch, value in sorted(values):
                bracket.on_result(fake, epoch, sign * value)


def make_scheduler(
    info: StudyInfo,
    max_t: int,
    history: dict[str, list[tuple[int, float]]] | None = None,
    protect: Callable[[dict], bool] | None = None,
) -> tuple[Any, SeededASHA | None]:
    """(scheduler, the ASHA or None), ASHA's rungs filled from `history` (`epoch_history`).

    ASHA counts our reported `epoch`, not Ray's `training_iteration`, which restarts at 1
    when a trial is continued under a new Ray id."""
    first, mode = info.objectives[0].metric, info.objectives[0].mode
    single = len(info.objectives) == 1
    if info.scheduler == "asha" and single and first in PER_EPOCH_METRICS and max_t > 1:
        asha = SeededASHA(
            metric=first,
            mode=mode,
            time_attr="epoch",
            max_t=max_t,
            grace_period=min(2, max_t),
            reduction_factor=3,
            protect=protect,
        )
        for tid, values in (history or {}).items():
            asha.seed(tid, values)
        return asha, asha
    if info.scheduler == "asha" and not single:
        print(
            "note: ASHA ranks trials on one objective and would stop them before the "
            "others are measured; a multi-objective study runs trials to completion",
            file=sys.stderr,
        )
    elif info.scheduler == "asha" and max_t > 1:
        print(
            f"note: ASHA needs a per-epoch first objective ({', '.join(PER_EPOCH_METRICS)})"
            f"; {first} is known only at the end, so trials run to completion",
            file=sys.stderr,
        )
    return FIFOScheduler(), None


def epoch_history(epochs: pd.DataFrame, objective: str) -> dict[str, list[tuple[int, float]]]:
    """{trial folder id: [(epoch, mean over repeats of the objective's per-epoch key)]}."""
    key = PER_EPOCH[objective]
    if epochs.empty or key not in epochs:
        return {}
    means = epochs.groupby(["trial_id", "epoch"])[key].mean().dropna()
    out: dict[str, list[tuple[int, float]]] = {}
    for (tid, epoch), value in means.items():
        out.setdefault(str(tid), []).append((int(epoch), float(value)))
    return out
