"""Study folder records (revstudy.study.records): checkpoints of finished trials."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from revstudy.study.records import drop_finished_checkpoints
from revstudy.studyfolder import STATE_FILE, STOPPED_FILE
from revstudy.trialtable import build_trials_table


def test_a_finished_trials_checkpoint_is_dropped_an_unfinished_one_kept(tmp_path: Path) -> None:
    trials = tmp_path / "trials"
    for tid, result in [
        ("done", {"report": {"epoch": 4}}),  # the driver died before removing its checkpoint
        ("running", None),  # interrupted mid-training: resume needs the checkpoint
        ("damaged", "{not json"),  # reported elsewhere; its checkpoint is kept
    ]:
        (trials / tid).mkdir(parents=True)
        (trials / tid / STATE_FILE).write_bytes(b"ckpt")
        if isinstance(result, dict):
            (trials / tid / "result.json").write_text(json.dumps(result))
        elif result is not None:
            (trials / tid / "result.json").write_text(result)
    assert drop_finished_checkpoints(tmp_path) == 1
    assert sorted(p.parent.name for p in trials.glob(f"*/{STATE_FILE}")) == ["damaged", "running"]
    assert drop_finished_checkpoints(tmp_path) == 0
    assert drop_finished_checkpoints(tmp_path / "empty") == 0  # no trials folder yet


def _trial(trials: Path, tid: str, epochs: int, *, stopped: bool, checkpoint: bool) -> None:
    d = trials / tid
    d.mkdir(parents=True)
    (d / "trial.json").write_text(json.dumps({"config": {"epochs": epochs}, "number": 0}))
    if stopped:
        (d / STOPPED_FILE).write_text(json.dumps({"epoch": 2, "by": "scheduler"}))
    if checkpoint:
        (d / STATE_FILE).write_bytes(b"ckpt")


def test_unfinished_trials_the_scheduler_did_not_stop_are_interrupted(tmp_path: Path) -> None:
    """Issue #22: Ray marks a trial cut off by Ctrl-C or the time budget TERMINATED, as it
    does one ASHA stopped; only the scheduler's own record makes it STOPPED_EARLY."""
    trials = tmp_path / "trials"
    _trial(trials, "asha", 5, stopped=True, checkpoint=False)
    _trial(trials, "ctrl-c", 5, stopped=False, checkpoint=True)
    _trial(trials, "first-epoch", 5, stopped=False, checkpoint=False)
    _trial(trials, "legacy", 5, stopped=False, checkpoint=False)  # a study from before
    ray = {
        tid: {"status": "TERMINATED", "last_result": {"epoch": e}}
        for tid, e in (("asha", 2), ("ctrl-c", 1), ("first-epoch", 0), ("legacy", 2))
    }
    table = build_trials_table(tmp_path, ray).set_index("trial_id")["state"].to_dict()
    assert table == {
        "asha": "STOPPED_EARLY",
        "ctrl-c": "INTERRUPTED",
        "first-epoch": "INTERRUPTED",
        "legacy": "STOPPED_EARLY",
    }
    # without Ray's view (tables rebuilt from the folders): the scheduler's record still counts
    offline = build_trials_table(tmp_path, {}).set_index("trial_id")["state"].to_dict()
    assert offline["asha"] == "STOPPED_EARLY"


def test_interrupted_trials_are_never_ranked_nor_exported(tmp_path: Path) -> None:
    import pandas as pd

    from revstudy.studyfolder import Objective, rank_finished

    table = pd.DataFrame(
        {
            "trial_id": ["a", "b", "c"],
            "state": ["COMPLETED", "INTERRUPTED", "STOPPED_EARLY"],
            "f1_macro": [0.1, 0.9, 0.2],
        }
    )
    ranked = rank_finished(table, [Objective("f1_macro")])
    assert "b" not in set(ranked["trial_id"])


def test_numerically_broken_trials_are_diverged_and_never_ranked(tmp_path: Path) -> None:
    """Issue #22: a trial that ended with inversion error 2382 and Z_free std 84.8 is not
    a completed trial to recommend."""
    import pandas as pd

    from revstudy.studyfolder import Objective, numerical_problem, rank_finished

    (tmp_path / "study.json").write_text(
        json.dumps({"name": "s", "objectives": [{"metric": "f1_macro_skill", "mode": "max"}]})
    )
    good = {"f1_macro_skill": 0.1, "inv_error_max": 1.2e-6, "z_free_std_mean": 0.8, "epoch": 5}
    cases = {
        "good": good,
        "diverged": {**good, "f1_macro_skill": 0.3, "inv_error_max": 2382.0},
        "runaway": {**good, "z_free_std_mean": 84.8},
        "inf": {**good, "f1_macro_skill": float("inf")},
    }
    for tid, metrics in cases.items():
        d = tmp_path / "trials" / tid
        d.mkdir(parents=True)
        (d / "trial.json").write_text(json.dumps({"config": {"epochs": 5}, "number": 0}))
        (d / "result.json").write_text(json.dumps({"metrics": metrics, "config": {"epochs": 5}}))
    table = build_trials_table(tmp_path, {}).set_index("trial_id")
    assert table.loc["good", "state"] == "COMPLETED"
    for tid in ("diverged", "runaway", "inf"):
        assert table.loc[tid, "state"] == "DIVERGED", tid
        assert "numerically broken" in table.loc[tid, "failure_reason"]
    assert "inv_error_max = 2.38e+03" in table.loc["diverged", "failure_reason"]
    ranked = rank_finished(table.reset_index(), [Objective("f1_macro_skill")])
    assert list(ranked["trial_id"]) == ["good"]
    # the limits leave every healthy figure alone (TF32's 2e-4, the paper's Z_free)
    assert numerical_problem({"inv_error_max": 2e-4, "z_free_std_mean": 0.586}) is None
    # and ranking never takes an infinite objective, whatever the state says
    inf = pd.DataFrame({"trial_id": ["a", "b"], "state": ["COMPLETED"] * 2, "m": [1.0, np.inf]})
    assert list(rank_finished(inf, [Objective("m")])["trial_id"]) == ["a"]


def test_a_trials_ensemble_fallback_reaches_the_table(tmp_path: Path) -> None:
    d = tmp_path / "trials" / "t"
    d.mkdir(parents=True)
    (d / "trial.json").write_text(json.dumps({"config": {"epochs": 1}, "number": 0}))
    reason = "the vmapped ensemble failed on cuda (OutOfMemoryError: ...)"
    (d / "result.json").write_text(
        json.dumps({"metrics": {"epoch": 1}, "config": {"epochs": 1}, "repeat_fallback": reason})
    )
    table = build_trials_table(tmp_path, {})
    assert table.loc[0, "repeat_fallback"] == reason and table.loc[0, "state"] == "COMPLETED"


def test_a_resume_on_another_device_type_reaches_the_table(tmp_path: Path) -> None:
    d = tmp_path / "trials" / "t"
    d.mkdir(parents=True)
    (d / "trial.json").write_text(json.dumps({"config": {"epochs": 1}, "number": 0}))
    history = {"resumed_after_epoch": [2], "generator_reseeded": [{"repeat": 0, "epoch": 2}]}
    (d / "result.json").write_text(
        json.dumps({"metrics": {"epoch": 1}, "config": {"epochs": 1}, "history": history})
    )
    table = build_trials_table(tmp_path, {})
    assert table.loc[0, "resumes"] == 1 and table.loc[0, "generator_reseeded"] == 1


def test_the_pack_a_trial_trained_in_reaches_the_table(tmp_path: Path) -> None:
    """A pack member's result.json (or failure.json) names its pack; a lone trial has none."""
    for tid, name, doc in [
        ("member", "result.json", {"metrics": {"epoch": 1}, "config": {"epochs": 1}, "pack": "p1"}),
        ("failed", "failure.json", {"reason": "non-finite loss", "pack": "p1"}),
        ("lone", "result.json", {"metrics": {"epoch": 1}, "config": {"epochs": 1}}),
    ]:
        d = tmp_path / "trials" / tid
        d.mkdir(parents=True)
        (d / "trial.json").write_text(json.dumps({"config": {"epochs": 1}, "number": 0}))
        (d / name).write_text(json.dumps(doc))
    table = build_trials_table(tmp_path, {}).set_index("trial_id")
    assert table["pack"].to_dict() == {"failed": "p1", "lone": "", "member": "p1"}
    assert table.loc["failed", "state"] == "FAILED"
