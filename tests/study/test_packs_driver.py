"""Studies of packs end to end (issue #31): `launch --pack K` on Ray in a subprocess; every
member is a trial of its own to Optuna, ASHA, the tables and resume. Slow: run in CI."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pandas as pd
import pytest

from revstudy.optunafile import optuna_storage
from revstudy.study.optuna_store import UNSTARTED_ATTR
from revstudy.studyinfo import read_study
from tests.study.test_driver import TINY_FIXED, _cli, _launch_args

pytestmark = pytest.mark.slow


@pytest.fixture()
def data(tmp_path: Path) -> Path:
    from tests.conftest import synthetic_rows, write_csv

    return write_csv(tmp_path / "syn.csv", synthetic_rows(80))


def _optuna(storage: Path, name: str) -> optuna.Study:
    return optuna.load_study(study_name=name, storage=optuna_storage(storage / name))


def test_a_study_of_packs_prunes_each_member_as_a_trial_of_its_own(
    tmp_path: Path, data: Path
) -> None:
    space = tmp_path / "a.yaml"
    space.write_text(
        f"fixed: {TINY_FIXED}\nparams:\n"
        "  lr: {type: float, low: 1.0e-6, high: 3.0e-3, log: true}\n"
        "  epochs: {type: int, low: 3, high: 4}\n"
        "  blocks_4: {type: int, low: 1, high: 2}\n"  # a shape parameter: one per pack
    )
    storage = tmp_path / "st"
    res = _cli(
        *_launch_args(space, data, storage, "p"),
        "--num-samples", "10", "--pack", "3", "--sampler", "random",
        "--objectives", "retrieval_mrr:max",
    )  # fmt: skip
    assert res.returncode == 0, res.stderr[-3000:]
    assert "invalid value" not in res.stderr  # no Ray logger chokes on a pack's rows
    assert read_study(storage / "p").pack == 3
    study = _optuna(storage, "p")
    trials = pd.read_parquet(storage / "p" / "trials.parquet").set_index("trial_id")
    assert len(study.trials) == len(trials) == 10
    packs: dict[str, list[optuna.trial.FrozenTrial]] = {}
    for t in study.trials:
        tid = t.user_attrs["ray_trial_id"]
        row = trials.loc[tid]
        packs.setdefault(tid.rsplit("-", 1)[0], []).append(t)
        meta = json.loads((storage / "p" / "trials" / tid / "trial.json").read_text())
        assert meta["number"] == t.number and meta["params"] == t.params
        assert max(t.intermediate_values) == row.epochs_done
        if row.state == "STOPPED_EARLY":
            assert t.state.name == "PRUNED"
            assert t.value == pytest.approx(t.intermediate_values[row.epochs_done])
        else:
            assert row.state == "COMPLETED" and t.state.name == "COMPLETE"
            assert t.value == pytest.approx(row.retrieval_mrr)
    assert (trials.state == "STOPPED_EARLY").any()
    sizes = sorted(len(members) for members in packs.values())
    assert sizes == [1, 3, 3, 3]  # the paper baseline alone, then packs of 3
    for members in packs.values():  # the shape is drawn once per pack, the rest per member
        assert len({m.params["blocks_4"] for m in members}) == 1
        assert len(members) == 1 or len({m.params["lr"] for m in members}) == len(members)
    base = trials[trials.is_baseline]
    assert len(base) == 1 and base.state.iloc[0] == "COMPLETED"
    assert not list((storage / "p" / "trials").glob("*/state.pt"))
    relaunch = _cli(*_launch_args(space, data, storage, "p"), "--pack", "2")
    assert relaunch.returncode == 2 and "--pack 2 (study has 3)" in relaunch.stderr


def test_a_killed_study_of_packs_resumes_every_member_from_its_checkpoint(
    tmp_path: Path, data: Path
) -> None:
    space = tmp_path / "s.yaml"
    space.write_text(
        f"fixed: {TINY_FIXED}\nparams:\n"
        "  lr: {type: float, low: 1.0e-4, high: 3.0e-3, log: true}\n"
        "  epochs: {type: int, low: 12, high: 24}\n"  # members leave at different epochs
    )
    storage = tmp_path / "st"
    args = [*_launch_args(space, data, storage, "k"), "--num-samples", "7", "--pack", "3",
            "--scheduler", "none", "--max-concurrent", "1"]  # fmt: skip
    proc = subprocess.Popen(
        [sys.executable, "-m", "revstudy.cli", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    results = storage / "k" / "trials"

    def mid_training() -> set[str]:
        return {
            p.parent.name
            for p in results.glob("*/state.pt")
            if not (p.parent / "result.json").exists()
        }

    deadline = time.time() + 300
    while time.time() < deadline and not (
        len(list(results.glob("*/result.json"))) >= 2 and mid_training()
    ):
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    time.sleep(2)  # a worker that outlived its driver stops at its next write (its guard)
    interrupted = mid_training()
    finished_before = {p.parent.name: p.stat().st_mtime_ns for p in results.glob("*/result.json")}
    assert interrupted and len(finished_before) >= 2, "study did not progress"
    res = _cli("resume", "k", "--storage", str(storage))
    assert res.returncode == 0, res.stderr[-3000:]
    trials = pd.read_parquet(storage / "k" / "trials.parquet")
    assert (trials.state == "COMPLETED").sum() == 7, res.stderr[-3000:]
    assert trials.trial_id.is_unique
    for tid, mtime in finished_before.items():  # finished members were not trained again
        assert (results / tid / "result.json").stat().st_mtime_ns == mtime
    for tid in interrupted:  # every interrupted member went on from its own checkpoint
        doc = json.loads((results / tid / "result.json").read_text())
        assert doc["history"]["resumed_after_epoch"], tid
        epochs = [json.loads(line)["epoch"] for line in (results / tid / "epochs.jsonl").open()]
        assert sorted(set(epochs)) == list(range(1, doc["config"]["epochs"] + 1))
    study = _optuna(storage, "k")
    complete = [t for t in study.trials if t.state.name == "COMPLETE"]
    assert len(complete) == 7
    others = [t for t in study.trials if t.state.name != "COMPLETE"]
    assert all(t.state.name == "FAIL" and t.user_attrs.get(UNSTARTED_ATTR) for t in others)
    assert {t.user_attrs["ray_trial_id"] for t in complete} == set(trials.trial_id)
    assert not list(results.glob("*/state.pt"))
