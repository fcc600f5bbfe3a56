"""ASHA as a study uses it: rungs rebuilt from records on resume, the baseline never stopped;
MO-ASHA with several objectives (issue #33)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import optuna
import pandas as pd
import pytest
from ray.tune.schedulers import FIFOScheduler, TrialScheduler

from revstudy.study.scheduling import (
    ParetoASHA,
    SeededASHA,
    crowding_distance,
    epoch_history,
    make_scheduler,
    rung_keeps,
)
from revstudy.studyfolder import Objective
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
        asha.seed(tid, [(1, (v,))])
    weak = _trial("new")
    asha.on_trial_add(None, weak)
    assert asha.on_trial_result(None, weak, {"epoch": 1, "m": 0.1}) == TrialScheduler.STOP


def test_the_baseline_is_never_stopped_early() -> None:
    asha = _asha(protect=lambda config: config.get("lr") == 1e-3)
    for tid, v in (("a", 0.9), ("b", 0.8), ("c", 0.7)):
        asha.seed(tid, [(1, (v,))])
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
    hist = epoch_history(epochs, ["f1_macro_skill"])
    assert [(e, round(v[0], 6)) for e, v in hist["t"]] == [(1, 0.2), (2, 0.3)]
    assert epoch_history(epochs, ["val_loss"]) == {}
    epochs["val_loss"] = [1.0, 3.0, np.nan, np.nan]  # epoch 2 not validated
    both = epoch_history(epochs, ["f1_macro_skill", "val_loss"])
    assert [(e, tuple(round(x, 6) for x in v)) for e, v in both["t"]] == [(1, (0.2, 2.0))]


def test_asha_needs_objectives_measured_every_epoch(capsys) -> None:
    sched, asha = make_scheduler(StudyInfo.from_dict(INFO), 5)
    assert isinstance(sched, SeededASHA) and asha is sched
    multi = {
        **INFO,
        "objectives": [*INFO["objectives"], {"metric": "aromatic_corr", "mode": "max"}],
    }
    sched, asha = make_scheduler(StudyInfo.from_dict(multi), 5)
    assert isinstance(sched, FIFOScheduler) and asha is None
    assert "aromatic_corr is known only at the end" in capsys.readouterr().err
    both = {**INFO, "objectives": [*INFO["objectives"], {"metric": "val_loss", "mode": "min"}]}
    sched, asha = make_scheduler(StudyInfo.from_dict(both), 5)
    assert isinstance(sched, ParetoASHA) and asha is sched and asha.milestones() == (2,)


def _oracle_keeps(recorded: list[np.ndarray], value: np.ndarray, rf: float) -> bool:
    """The MO-ASHA rule computed with Optuna's own non-dominated sort and NSGA-II crowding
    distance (an implementation independent of revstudy's)."""
    from optuna.samplers.nsgaii._elite_population_selection_strategy import (
        _calc_crowding_distance,
    )
    from optuna.study._multi_objective import _fast_non_domination_rank

    if not recorded:
        return True
    points = np.vstack([*recorded, value])
    rank = _fast_non_domination_rank(-points)  # Optuna minimises
    front = [i for i in range(len(points)) if rank[i] == rank[-1]]
    trials = [
        optuna.trial.create_trial(values=list(points[i]), params={}, distributions={})
        for i in front
    ]
    for number, t in zip(front, trials, strict=True):
        t.number = number
    crowd = _calc_crowding_distance(trials)
    mine = crowd[len(points) - 1]
    ahead = int((rank < rank[-1]).sum()) + sum(crowd[i] > mine for i in front[:-1])
    return ahead < np.ceil(len(recorded) / rf)


@pytest.mark.parametrize("objectives", [1, 2, 3])
def test_a_rung_keeps_its_best_fronts_as_optuna_ranks_them(objectives: int) -> None:
    rng = np.random.default_rng(objectives)
    for _ in range(300):
        n = int(rng.integers(0, 40))  # past 12: rungs whose sort stops early (`top`)
        recorded = list(rng.normal(size=(n, objectives)))
        value = rng.normal(size=objectives)
        assert rung_keeps(recorded, value, 3) == _oracle_keeps(recorded, value, 3)


def test_crowding_distance_matches_optuna() -> None:
    from optuna.samplers.nsgaii._elite_population_selection_strategy import (
        _calc_crowding_distance,
    )

    points = np.random.default_rng(0).normal(size=(7, 2))
    trials = [
        optuna.trial.create_trial(values=list(p), params={}, distributions={}) for p in points
    ]
    for i, t in enumerate(trials):
        t.number = i
    theirs = _calc_crowding_distance(trials)
    assert crowding_distance(points) == pytest.approx([theirs[i] for i in range(7)])


def test_mo_asha_keeps_a_trial_the_first_objective_alone_would_stop() -> None:
    """Three trials at the first rung; a newcomer worst on the first objective but best on
    the second is on the Pareto front and continues (ASHA on the first objective stops it);
    one dominated by all stops; the protected baseline never stops; replayed rungs decide
    as the uninterrupted run did."""
    objectives = (Objective("f1_macro_skill", "max"), Objective("val_loss", "min"))

    def fresh(**kw) -> ParetoASHA:
        asha = ParetoASHA(
            objectives, time_attr="epoch", max_t=9, grace_period=1, reduction_factor=3, **kw
        )
        for tid, v in (("a", (0.9, 2.0)), ("b", (0.8, 2.5)), ("c", (0.7, 3.0))):
            asha.seed(tid, [(1, v)])
        return asha

    asha = fresh(protect=lambda config: config.get("lr") == 1e-3)
    cases = [
        (_trial("niche"), {"epoch": 1, "f1_macro_skill": 0.1, "val_loss": 1.0}, "CONTINUE"),
        (_trial("weak"), {"epoch": 1, "f1_macro_skill": 0.1, "val_loss": 5.0}, "STOP"),
        (_trial("base", lr=1e-3), {"epoch": 1, "f1_macro_skill": 0.0, "val_loss": 9.0}, "CONTINUE"),
    ]
    for trial, result, want in cases:
        asha.on_trial_add(None, trial)
        assert asha.on_trial_result(None, trial, result) == getattr(TrialScheduler, want)
    single = _asha()
    for tid, v in (("a", 0.9), ("b", 0.8), ("c", 0.7)):
        single.seed(tid, [(1, (v,))])
    niche = _trial("niche")
    single.on_trial_add(None, niche)
    assert single.on_trial_result(None, niche, {"epoch": 1, "m": 0.1}) == TrialScheduler.STOP
    live = fresh()
    replayed = ParetoASHA(
        objectives, time_attr="epoch", max_t=9, grace_period=1, reduction_factor=3
    )
    for tid, v in (("a", (0.9, 2.0)), ("b", (0.8, 2.5)), ("c", (0.7, 3.0))):
        trial = _trial(tid)
        replayed.on_trial_add(None, trial)
        result = {"epoch": 1, "f1_macro_skill": v[0], "val_loss": v[1]}
        replayed.on_trial_result(None, trial, result)
    for values, want in (((0.95, 2.2), "CONTINUE"), ((0.85, 2.2), "STOP")):  # beside a; behind
        for asha in (live, replayed):
            newcomer = _trial(f"n{values}")
            asha.on_trial_add(None, newcomer)
            result = {"epoch": 1, "f1_macro_skill": values[0], "val_loss": values[1]}
            assert asha.on_trial_result(None, newcomer, result) == want
    missing = _trial("m")
    live.on_trial_add(None, missing)
    assert live.on_trial_result(None, missing, {"epoch": 1, "f1_macro_skill": 0.2}) == "CONTINUE"


@pytest.mark.parametrize("objectives", [1, 2])
def test_a_replay_fills_the_rungs_as_rays_own_method_does(objectives: int) -> None:
    """`seed` records without deciding (the decisions made a replay quadratic): the rungs
    it fills equal those filled by Ray's `_Bracket.on_result` with the same results, epochs
    skipped (`val_every`) included."""
    rng = np.random.default_rng(objectives)
    specs = (Objective("f1_macro_skill", "max"), Objective("val_loss", "min"))[:objectives]

    def make() -> SeededASHA:
        settings = dict(time_attr="epoch", max_t=9, grace_period=1, reduction_factor=3)
        if objectives == 1:
            return SeededASHA(metric="f1_macro_skill", mode="max", **settings)
        return ParetoASHA(specs, **settings)

    seeded, by_ray = make(), make()
    for i in range(60):
        epochs = sorted(rng.choice(np.arange(1, 10), size=int(rng.integers(1, 8)), replace=False))
        values = [(int(e), tuple(rng.normal(size=objectives))) for e in epochs]
        seeded.seed(f"t{i}", values)
        for epoch, vector in values:
            reward = by_ray._reward(vector)
            by_ray._brackets[0].on_result(SimpleNamespace(trial_id=f"t{i}"), epoch, reward)
    rungs = [
        (m, {k: np.asarray(v).tolist() for k, v in r.items()})
        for m, r in seeded._brackets[0]._rungs
    ]
    want = [
        (m, {k: np.asarray(v).tolist() for k, v in r.items()})
        for m, r in by_ray._brackets[0]._rungs
    ]
    assert rungs == want and all(r for _, r in rungs)  # every rung was reached


def test_milestones_are_the_epochs_asha_compares_trials_at() -> None:
    """A trial validates at these epochs whatever its `val_every` (driver._milestones)."""
    assert _asha().milestones() == (1, 3, 9)
    for max_t, rungs in ((20, (2, 6, 18)), (5, (2,)), (6, (2, 6))):
        asha = make_scheduler(StudyInfo.from_dict(INFO), max_t)[1]
        assert asha is not None and asha.milestones() == rungs
