"""Ray Tune's callback of a driver run (revstudy.study.callbacks), fed fake Ray trials: the
records it writes as trials start and end, the verdict it gives, the stopper's counts."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import optuna
import pytest

from revstudy.optunafile import optuna_storage
from revstudy.study.callbacks import StudyCallback, StudyStopper, record_id
from revstudy.study.optuna_store import RAY_ID_ATTR
from revstudy.study.spaces import load_space
from revstudy.studyfolder import (
    FINAL_KEY,
    RESULT_FILE,
    STATE_FILE,
    STOPPED_FILE,
    TRIAL_KEY,
    Objective,
)
from revstudy.studyinfo import StudyInfo

SPACE = "fixed: {epochs: 3}\nparams:\n  lr: {type: float, low: 1.0e-4, high: 1.0e-2, log: true}\n"


@pytest.fixture
def callback(tmp_path: Path) -> StudyCallback:
    (tmp_path / "space.yaml").write_text(SPACE)
    space = load_space(str(tmp_path / "space.yaml"))
    info = StudyInfo(
        "s1", (Objective("f1_macro_skill"),), space=space.to_dict(), num_samples=4,
        gpus_per_trial=0.0,
    )  # fmt: skip
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    ostudy = optuna.create_study(study_name="s1", storage=optuna_storage(tmp_path, create=True))
    for rid in ("r0", "r1"):
        ostudy.ask({"lr": optuna.distributions.FloatDistribution(1e-4, 1e-2, log=True)})
        ostudy.trials[-1]
        ostudy._storage.set_trial_user_attr(ostudy.trials[-1]._trial_id, RAY_ID_ATTR, rid)
    return StudyCallback(tmp_path, info, StudyStopper(2), live=False)


def _trial(trial_id: str, last: dict[str, Any] | None = None, **config: Any) -> Any:
    return SimpleNamespace(
        trial_id=trial_id, config={"lr": 1e-3, **config}, status="RUNNING", last_result=last
    )


def test_a_started_trial_gets_its_trial_json(callback: StudyCallback) -> None:
    callback.on_trial_start(0, [], _trial("r1"))
    doc = json.loads((callback.study / "trials" / "r1" / "trial.json").read_text())
    assert (doc["number"], doc["params"], doc["device"]) == (1, {"lr": 1e-3}, "cpu")
    assert doc["config"]["epochs"] == 3 and doc["config"]["lr"] == 1e-3
    assert doc["is_baseline"] is False


def test_a_continued_trial_keeps_its_folder_id() -> None:
    assert record_id(_trial("new-ray-id", **{TRIAL_KEY: "r0"})) == "r0"
    assert record_id(_trial("r5")) == "r5"


def test_a_trial_stopped_by_the_scheduler_is_recorded_and_its_checkpoint_removed(
    callback: StudyCallback,
) -> None:
    trial = _trial("r0", {"epoch": 1, "f1_macro_skill": 0.1})
    callback.on_trial_start(0, [], trial)
    folder = callback.study / "trials" / "r0"
    (folder / STATE_FILE).write_bytes(b"checkpoint")
    callback.on_trial_complete(0, [], trial)
    assert not (folder / STATE_FILE).exists()
    assert json.loads((folder / STOPPED_FILE).read_text()) == {"epoch": 1, "by": "scheduler"}
    assert callback.panel.counts["STOPPED_EARLY"] == 1 and callback.stopper.succeeded == 1
    assert (callback.study / "trials.parquet").is_file()  # tables refreshed at once


def test_a_finished_trial_with_broken_figures_is_diverged(callback: StudyCallback) -> None:
    last = {"epoch": 3, FINAL_KEY: 1, "f1_macro_skill": 0.2, "inv_error_max": 2382.0}
    trial = _trial("r1", last)
    callback.on_trial_start(0, [], trial)
    callback.on_trial_complete(0, [], trial)
    assert callback.panel.counts["DIVERGED"] == 1
    assert not (callback.study / "trials" / "r1" / STOPPED_FILE).exists()  # it ran to the end


def test_failures_count_towards_stopping_the_study(callback: StudyCallback) -> None:
    for rid in ("r0", "r1"):
        trial = _trial(rid)
        trial.status = "ERROR"
        callback.on_trial_start(0, [], trial)
        callback.on_trial_error(0, [], trial)
    assert callback.stopper.failed == 2 and callback.stopper.stop_all()
    states = callback.ray_states()
    assert states["r0"]["status"] == "ERROR" and states["r0"]["config"] == {"lr": 1e-3}


def test_a_trial_still_training_when_the_failures_arrive_can_keep_the_study_going(
    callback: StudyCallback,
) -> None:
    """The threshold of failures holds new trials back while one is still training; that
    one succeeding lets the study go on, and the study stops only once nothing runs."""
    stopper = callback.stopper  # threshold 2
    working = _trial("r0", {"epoch": 3, FINAL_KEY: 1, "f1_macro_skill": 0.2})
    callback.on_trial_start(0, [], working)
    for rid in ("r1", "r2"):
        failing = _trial(rid)
        failing.status = "ERROR"
        callback.on_trial_start(0, [], failing)
        callback.on_trial_error(0, [], failing)
    assert stopper.holding() and not stopper.stop_all()  # r0 still runs: wait for it
    callback.on_trial_complete(0, [], working)
    assert not stopper.holding() and not stopper.stop_all() and stopper.running == set()


def test_the_study_stops_once_the_last_running_trial_also_failed(
    callback: StudyCallback,
) -> None:
    stopper = callback.stopper
    trials = [_trial(rid) for rid in ("r0", "r1", "r2")]
    for t in trials:
        callback.on_trial_start(0, [], t)
    for t in trials[:2]:
        t.status = "ERROR"
        callback.on_trial_error(0, [], t)
    assert stopper.holding() and not stopper.stop_all()
    trials[2].status = "ERROR"
    callback.on_trial_error(0, [], trials[2])
    assert stopper.stop_all() and stopper.failed == 3


def test_earlier_successes_keep_a_resumed_study_from_stopping() -> None:
    """`resume --retry-failed` runs only failures again; the study worked before."""
    stopper = StudyStopper(2, succeeded=1)
    stopper.failed = 5
    assert not stopper.holding() and not stopper.stop_all()


def test_after_a_stop_request_a_trial_error_is_an_interruption(
    callback: StudyCallback, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SIGTERM reaches a cluster's workers too (scancel): a trial whose worker dies as the
    driver stops is not FAILED (which only `resume --retry-failed` reruns) but interrupted:
    no failed count, no Ray ERROR state in the tables, Optuna keeps it RUNNING."""
    from revstudy.study import stopping
    from revstudy.study.search import StudySearcher

    trial = _trial("r1")
    callback.on_trial_start(0, [], trial)
    trial.status = "ERROR"
    monkeypatch.setattr(stopping, "requested", lambda: True)
    callback.on_trial_error(0, [], trial)
    assert callback.stopper.failed == 0 and "r1" not in callback.ray_states()
    space = load_space(str(callback.study / "space.yaml"))
    ostudy = optuna.load_study(study_name="s1", storage=optuna_storage(callback.study))
    searcher = StudySearcher(ostudy, space, [Objective("f1_macro_skill")], continuations=[], new=1)
    searcher._ot_trials["r1"] = optuna.trial.Trial(ostudy, ostudy.trials[1]._trial_id)
    searcher.on_trial_complete("r1", None, error=True)
    assert ostudy.trials[1].state.name == "RUNNING"
    monkeypatch.setattr(stopping, "requested", lambda: False)
    searcher.on_trial_complete("r1", None, error=True)  # no stop asked: a real failure
    assert ostudy.trials[1].state.name == "FAIL"


def test_the_searcher_starts_nothing_while_the_stopper_holds(callback: StudyCallback) -> None:
    """Ray reads None as "nothing now, ask again": the held trial is asked later, not lost."""
    from revstudy.study.search import StudySearcher

    space = load_space(str(callback.study / "space.yaml"))
    ostudy = optuna.load_study(study_name="s1", storage=optuna_storage(callback.study))
    held = [True]
    searcher = StudySearcher(
        ostudy, space, [Objective("f1_macro_skill")], continuations=[], new=1,
        hold=lambda: held[0],
    )  # fmt: skip
    trials_before = len(ostudy.trials)
    assert searcher.suggest("r9") is None and len(ostudy.trials) == trials_before
    held[0] = False
    params = searcher.suggest("r9")
    assert params is not None and "lr" in params and len(ostudy.trials) == trials_before + 1


def test_an_ended_trial_is_announced_with_every_objective(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A two-objective study ranks on both, so the line that announces a trial names both."""
    (tmp_path / "space.yaml").write_text(SPACE)
    space = load_space(str(tmp_path / "space.yaml"))
    objectives = (Objective("f1_macro_skill"), Objective("inv_error_max", "min"))
    info = StudyInfo("s1", objectives, space=space.to_dict(), num_samples=4, gpus_per_trial=0.0)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = optuna_storage(tmp_path, create=True)
    ostudy = optuna.create_study(
        study_name="s1", storage=storage, directions=["maximize", "minimize"]
    )
    ostudy.ask({"lr": optuna.distributions.FloatDistribution(1e-4, 1e-2, log=True)})
    ostudy._storage.set_trial_user_attr(ostudy.trials[-1]._trial_id, RAY_ID_ATTR, "r0")
    callback = StudyCallback(tmp_path, info, StudyStopper(2), live=False)
    last = {"epoch": 3, FINAL_KEY: 1, "f1_macro_skill": 0.25, "inv_error_max": 2e-6}
    trial = _trial("r0", last)
    callback.on_trial_start(0, [], trial)
    callback.on_trial_complete(0, [], trial)
    said = capsys.readouterr().err
    assert "trial r0 completed: f1_macro_skill=0.25, inv_error_max=2e-06 [1/4]" in said


def test_a_resumed_runs_panel_ranks_the_earlier_runs_trials(callback: StudyCallback) -> None:
    """The first table refresh reads every trial folder: a trial that finished in an earlier
    driver run is the panel's best until a trial of this run beats it."""
    earlier = _trial("r0")
    callback.on_trial_start(0, [], earlier)
    result = {"metrics": {"epoch": 3, FINAL_KEY: 1, "f1_macro_skill": 0.3}, "config": {"epochs": 3}}
    (callback.study / "trials" / "r0" / RESULT_FILE).write_text(json.dumps(result))
    info, stopper = callback.info, StudyStopper(2)
    resumed = StudyCallback(callback.study, info, stopper, live=False, done_before=1)
    resumed.on_trial_start(0, [], _trial("r1"))
    assert resumed.panel.best == ((0.3,), "r0", {"lr": 1e-3})
    last = {"epoch": 3, FINAL_KEY: 1, "f1_macro_skill": 0.2}
    resumed.on_trial_complete(0, [], _trial("r1", last))
    assert resumed.panel.best is not None and resumed.panel.best[1] == "r0"
