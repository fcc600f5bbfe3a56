"""Experiment trackers (issue #34): trials logged to MLflow and TensorBoard, read back
through MLflow's own client and TensorBoard's own event reader."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from revstudy.errors import RevstudyError
from revstudy.study.tracking import StudyTrackers, check_trackers
from revstudy.studyfolder import FINAL_KEY, Objective
from revstudy.studyinfo import DataRecord, StudyInfo
from tests.study.test_driver import TINY_FIXED, _cli, _launch_args

pytest.importorskip("mlflow")
pytest.importorskip("tensorboard")

INFO = StudyInfo(
    name="tracked",
    objectives=(Objective("f1_macro", "max"),),
    space={"name": "tiny"},
    sampler="tpe",
    scheduler="asha",
    num_samples=2,
    data=DataRecord("/d.csv", "c" * 64, 80),
    study_id="f" * 32,
)
EPOCH_1 = {"epoch": 1, "val_loss": 2.0, "train_loss": 3.0, "val_f1_macro": 0.1, "pid": 7}
EPOCH_2 = {"epoch": 2, "val_loss": 1.5, "train_loss": 2.5, "val_f1_macro": 0.2}
FINAL = {**EPOCH_2, "f1_macro": 0.25, "inv_error_max": 1e-6, FINAL_KEY: 1, "time_total_s": 9.0}


def _client(study: Path):
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=f"sqlite:///{study / 'mlflow.db'}")


def _scalars(folder: Path) -> dict[str, list[tuple[int, float]]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(folder))
    acc.Reload()
    return {k: [(e.step, e.value) for e in acc.Scalars(k)] for k in acc.Tags()["scalars"]}


def test_trials_are_nested_runs_and_a_resumed_trial_continues_its_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    trackers = StudyTrackers(tmp_path, INFO, ("mlflow", "tensorboard"))
    trackers.started("t1", {"lr": 1e-3}, {"lr": 1e-3, "blocks": [1, 2]}, {"number": 0})
    trackers.epoch("t1", EPOCH_1)
    trackers.close()  # the driver is stopped after epoch 1

    again = StudyTrackers(tmp_path, INFO, ("mlflow", "tensorboard"))  # resume
    again.started("t1", {"lr": 1e-3}, {"lr": 1e-3, "blocks": [1, 2]}, {"number": 0})
    again.epoch("t1", EPOCH_1)  # a continued trial re-reports its last epoch
    again.epoch("t1", EPOCH_2)
    again.ended("t1", "COMPLETED", FINAL)
    again.started("t2", {"lr": 5e-3}, {}, {"number": 1})
    again.ended("t2", "FAILED", {})
    again.close()

    client = _client(tmp_path)
    (experiment,) = [e for e in client.search_experiments() if e.name == "tracked"]
    runs = {r.info.run_name: r for r in client.search_runs([experiment.experiment_id])}
    assert set(runs) == {"study tracked", "t1", "t2"}
    parent = runs["study tracked"].info.run_id
    assert runs["study tracked"].data.params["objectives"] == "f1_macro:max"
    t1 = runs["t1"]
    assert (
        t1.data.tags["mlflow.parentRunId"] == parent == runs["t2"].data.tags["mlflow.parentRunId"]
    )
    assert t1.data.params == {"lr": "0.001", "blocks": "[1, 2]"}
    history = client.get_metric_history(t1.info.run_id, "val_loss")
    assert [(m.step, m.value) for m in history] == [(1, 2.0), (2, 1.5)]  # no duplicate
    assert t1.data.metrics["f1_macro"] == 0.25 and "pid" not in t1.data.metrics
    assert "time_total_s" not in t1.data.metrics
    assert t1.info.status == "FINISHED" and t1.data.tags["revstudy.state"] == "COMPLETED"
    assert runs["t2"].info.status == "FAILED"
    kept = json.loads((tmp_path / "tracking.json").read_text())
    assert kept["mlflow"]["runs"]["t1"] == t1.info.run_id and kept["last_epoch"]["t1"] == 2

    scalars = _scalars(tmp_path / "tensorboard" / "t1")
    assert scalars["val_loss"] == [(1, 2.0), (2, 1.5)]
    assert scalars["final/f1_macro"] == [(2, 0.25)]
    assert (tmp_path / "tensorboard" / "t1" / "hparams").is_dir()  # the HParams view


def test_a_damaged_record_starts_new_runs_with_a_warning(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    (tmp_path / "tracking.json").write_text(json.dumps({"mlflow": {"runs": {"t1": "../x"}}}))
    trackers = StudyTrackers(tmp_path, INFO, ("mlflow",))
    assert "tracking.json: damaged; trials start new tracker runs" in capsys.readouterr().err
    trackers.started("t1", {}, {"lr": 1}, {})
    assert json.loads((tmp_path / "tracking.json").read_text())["mlflow"]["runs"]["t1"] != "../x"


def test_a_failing_tracker_warns_once_and_the_study_goes_on(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    trackers = StudyTrackers(tmp_path, INFO, ("mlflow",))
    trackers.started("t1", {}, {"lr": 1}, {})

    def broken(*args, **kw):
        raise OSError("database is locked\nmore")

    monkeypatch.setattr(trackers.backends[0].client, "log_batch", broken)
    trackers.epoch("t1", EPOCH_1)
    trackers.epoch("t1", EPOCH_2)
    err = capsys.readouterr().err
    assert err.count("warning: --log mlflow: database is locked; the study goes on") == 1
    assert trackers.backends == []


@pytest.mark.parametrize(
    ("names", "needle"),
    [
        (["wandb"], "--log wandb: choose from mlflow, tensorboard"),
        (["mlflow", "mlflow"], "named twice"),
    ],
)
def test_unknown_or_repeated_trackers_are_one_line(names: list[str], needle: str) -> None:
    with pytest.raises(RevstudyError, match=needle):
        check_trackers(names)


def test_a_missing_package_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda n, *a: None if n == "mlflow" else real(n, *a)
    )
    with pytest.raises(RevstudyError, match=r"pip install 'revstudy\[mlflow\]'"):
        check_trackers(["mlflow"])


@pytest.mark.slow
def test_a_study_logged_to_both_trackers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """End to end through the CLI: every trial (the baseline included) a nested MLflow run
    with per-epoch and final metrics, and a TensorBoard folder; growing the study adds runs
    under the same parent and leaves the others as they were."""
    from tests.conftest import synthetic_rows, write_csv

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    data = write_csv(tmp_path / "syn.csv", synthetic_rows(80))
    space = tmp_path / "t.yaml"
    space.write_text(
        f"fixed: {TINY_FIXED.replace('test_fraction: 0.1', 'epochs: 2')}\n"
        "params:\n  lr: {type: float, low: 1.0e-4, high: 1.0e-2, log: true}\n"
    )
    storage = tmp_path / "st"
    args = [*_launch_args(space, data, storage, "t"), "--scheduler", "none"]
    res = _cli(*args, "--num-samples", "2", "--log", "mlflow", "--log", "tensorboard")
    assert res.returncode == 0, res.stderr[-3000:]
    study = storage / "t"
    assert json.loads((study / "study.json").read_text())["log"] == ["mlflow", "tensorboard"]
    client = _client(study)
    (experiment,) = [e for e in client.search_experiments() if e.name == "t"]
    runs = {r.info.run_name: r for r in client.search_runs([experiment.experiment_id])}
    trials = {p.name for p in (study / "trials").iterdir()}
    assert set(runs) == {"study t"} | trials and len(trials) == 2
    for tid in trials:
        run = runs[tid]
        assert run.info.status == "FINISHED"
        history = client.get_metric_history(run.info.run_id, "train_loss")
        assert [m.step for m in history] == [1, 2]
        assert "f1_macro" in run.data.metrics and "lr" in run.data.params
        assert sorted(_scalars(study / "tensorboard" / tid)["val_loss"])[-1][0] == 2
    grown = _cli(*_launch_args(space, data, storage, "t"), "--num-samples", "3")
    assert grown.returncode == 0, grown.stderr[-3000:]
    after = {r.info.run_name: r for r in client.search_runs([experiment.experiment_id])}
    assert len(after) == 4 and set(runs) < set(after)
    parent = runs["study t"].info.run_id
    assert all(
        r.data.tags.get("mlflow.parentRunId") == parent for n, r in after.items() if n != "study t"
    )
    relaunch = _cli(*_launch_args(space, data, storage, "t"), "--log", "tensorboard")
    assert (
        relaunch.returncode == 2
        and "--log tensorboard (study has mlflow,tensorboard)" in relaunch.stderr
    )
