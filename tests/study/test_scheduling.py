"""ASHA as a study uses it: rungs rebuilt from records on resume, the baseline never stopped."""

from __future__ import annotations

from types import SimpleNamespace

import pandas as pd
from ray.tune.schedulers import FIFOScheduler, TrialScheduler

from revstudy.study.scheduling import SeededASHA, epoch_history, make_scheduler
from revstudy.studyinfo import StudyInfo

INFO = {
    "name": "s",
    "objectives": [{"metric": "f1_macro_skill", "mode": "max"}],
    "scheduler": "asha",
}


def _asha(**kw) -> SeededASHA:
    return SeededASHA(
        metric="m", mode="max", time_attr="epoch", max_t=9, grace_period=1,
        reduction_factor=3, **kw,
    )  # fmt: skip


def _trial(tid: str, **config) -> SimpleNamespace:
    return SimpleNamespace(trial_id=tid, config=config)


def test_seeded_rungs_stop_a_weak_newcomer_like_the_uninterrupted_run() -> None:
    asha = _asha()
    for tid, v in (("a", 0.9), ("b", 0.8), ("c", 0.7)):
        asha.seed(tid, [(1, v)])
    weak = _trial("new")
    asha.on_trial_add(None, weak)
    assert asha.on_trial_result(None, weak, {"epoch": 1, "m": 0.1}) == TrialScheduler.STOP


def test_the_baseline_is_never_stopped_early() -> None:
    asha = _asha(protect=lambda config: config.get("lr") == 1e-3)
    for tid, v in (("a", 0.9), ("b", 0.8), ("c", 0.7)):
        asha.seed(tid, [(1, v)])
    base, other = _trial("base", lr=1e-3), _trial("x", lr=5e-3)
    for t in (base, other):
        asha.on_trial_add(None, t)
    assert asha.on_trial_result(None, base, {"epoch": 1, "m": 0.0}) == TrialScheduler.CONTINUE
    assert asha.on_trial_result(None, other, {"epoch": 1, "m": 0.0}) == TrialScheduler.STOP


def test_history_is_the_mean_over_repeats_per_epoch() -> None:
    epochs = pd.DataFrame(
        {
            "trial_id": ["t", "t", "t", "t"],
            "repeat": [0, 1, 0, 1],
            "epoch": [1, 1, 2, 2],
            "val_f1_skill": [0.1, 0.3, 0.2, 0.4],
        }
    )
    hist = epoch_history(epochs, "f1_macro_skill")
    assert [(e, round(v, 6)) for e, v in hist["t"]] == [(1, 0.2), (2, 0.3)]
    assert epoch_history(epochs, "val_loss") == {}


def test_asha_needs_a_per_epoch_single_objective(capsys) -> None:
    sched, asha = make_scheduler(StudyInfo.from_dict(INFO), 5)
    assert isinstance(sched, SeededASHA) and asha is sched
    multi = {
        **INFO,
        "objectives": [*INFO["objectives"], {"metric": "aromatic_corr", "mode": "max"}],
    }
    sched, asha = make_scheduler(StudyInfo.from_dict(multi), 5)
    assert isinstance(sched, FIFOScheduler) and asha is None
    assert "multi-objective study runs trials to completion" in capsys.readouterr().err


def test_milestones_are_the_epochs_asha_compares_trials_at() -> None:
    """A trial validates at these epochs whatever its `val_every` (driver._milestones)."""
    assert _asha().milestones() == (1, 3, 9)
    for max_t, rungs in ((20, (2, 6, 18)), (5, (2,)), (6, (2, 6))):
        asha = make_scheduler(StudyInfo.from_dict(INFO), max_t)[1]
        assert asha is not None and asha.milestones() == rungs
