"""The driver's tables during a run (revstudy.study.records.LiveTables): the same tables a
rebuild from the trial folders gives, re-reading only trials that had an event, refreshes
spaced to stay a small share of the run."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from revstudy.study import records
from revstudy.study.records import LiveTables, append_epochs
from revstudy.studyfolder import EPOCHS_TABLE, STOPPED_FILE, TRIALS_TABLE
from revstudy.trialtable import build_trials_table, read_epochs


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _folder(study: Path, tid: str, epochs: int = 3, **files: Any) -> Path:
    d = study / "trials" / tid
    d.mkdir(parents=True, exist_ok=True)
    meta = {"config": {"epochs": epochs, "lr": 0.001}, "number": int(tid[-1])}
    (d / "trial.json").write_text(json.dumps({**meta, "params": {"lr": 0.001}}))
    for name, doc in files.items():
        (d / f"{name}.json").write_text(json.dumps(doc))
    return d


def _result(epoch: int, f1: float) -> dict[str, Any]:
    metrics = {"epoch": epoch, "f1_macro": f1, "inv_error_max": 1e-6, "revstudy_final": 1}
    return {"config": {"epochs": epoch, "lr": 0.001}, "metrics": metrics, "report": metrics}


def _rows(epoch: int, f1: float) -> list[dict[str, Any]]:
    return [{"repeat": 0, "node": "local", "epoch": epoch, "val_f1_macro": f1}]


def _rebuilt(study: Path, ray: dict[str, Any]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Both tables built from scratch, through parquet as the written ones."""
    out = []
    for i, df in enumerate((build_trials_table(study, ray), read_epochs(study))):
        path = study.parent / f"rebuilt-{i}.parquet"
        df.to_parquet(path, index=False)
        out.append(pd.read_parquet(path))
    return out[0], out[1]


def _written(study: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    return pd.read_parquet(study / TRIALS_TABLE), pd.read_parquet(study / EPOCHS_TABLE)


def _same(a: tuple[pd.DataFrame, pd.DataFrame], b: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    for x, y in zip(a, b, strict=True):
        pd.testing.assert_frame_equal(x, y)


@pytest.fixture
def study(tmp_path: Path) -> Path:
    """Trials of earlier runs (completed, failed, stopped early, interrupted) and refused
    entries under trials/ (a link, an odd name)."""
    tmp_path = tmp_path / "study"
    _folder(tmp_path, "old0", result=_result(3, 0.2))
    append_epochs(tmp_path, "old0", _rows(1, 0.1) + _rows(2, 0.15) + _rows(3, 0.2))
    _folder(tmp_path, "old1", failure={"reason": "CUDA out of memory"})
    d = _folder(tmp_path, "old2")
    (d / STOPPED_FILE).write_text(json.dumps({"epoch": 2, "by": "scheduler"}))
    append_epochs(tmp_path, "old2", _rows(1, 0.05) + _rows(2, 0.06))
    _folder(tmp_path, "old3")
    (d / "state.pt").write_bytes(b"ckpt")
    os.symlink(tmp_path / "trials" / "old0", tmp_path / "trials" / "linked")
    (tmp_path / "trials" / "odd name").mkdir()
    return tmp_path


def test_tables_kept_in_step_equal_a_rebuild_from_the_folders(study: Path) -> None:
    """Independent check: after each step of a run, the written tables are what
    build_trials_table and read_epochs give from the folders and Ray's states."""
    clock = FakeClock()
    tables = LiveTables(study, min_interval=0.0, clock=clock)
    ray: dict[str, Any] = {}
    assert tables.refresh(ray)
    _same(_written(study), _rebuilt(study, ray))

    # new0 starts and reports two epochs; old3 is continued and reports one
    _folder(study, "new0")
    ray["new0"] = {"status": "RUNNING", "config": {"lr": 0.001}, "error": "",
                   "last_result": {"epoch": 2, "val_f1_macro": 0.3}}  # fmt: skip
    append_epochs(study, "new0", _rows(1, 0.2) + _rows(2, 0.3))
    ray["old3"] = {"status": "RUNNING", "config": {}, "error": "", "last_result": {"epoch": 1}}
    append_epochs(study, "old3", _rows(1, 0.01))
    for tid in ("new0", "old3"):
        tables.touch(tid)
    clock.now += 1
    assert tables.refresh(ray)
    _same(_written(study), _rebuilt(study, ray))

    # new0 finishes (a resumed epoch 2 rewritten), old3 fails, new1 appears in Ray only
    append_epochs(study, "new0", _rows(2, 0.31) + _rows(3, 0.4))
    (study / "trials" / "new0" / "result.json").write_text(json.dumps(_result(3, 0.4)))
    ray["new0"]["status"] = "TERMINATED"
    (study / "trials" / "old3" / "failure.json").write_text(json.dumps({"reason": "boom"}))
    ray["old3"].update(status="ERROR", error="boom")
    ray["new1"] = {"status": "PENDING", "config": {"lr": 0.002}, "error": "", "last_result": {}}
    tables.touch("new0")
    tables.touch("old3")
    clock.now += 1
    assert tables.refresh(ray)
    _same(_written(study), _rebuilt(study, ray))
    states = _written(study)[0].set_index("trial_id")["state"].to_dict()
    assert (states["new0"], states["old3"], states["new1"]) == ("COMPLETED", "FAILED", "PENDING")
    assert states["linked"] == "DAMAGED" and states["old2"] == "STOPPED_EARLY"


def test_only_trials_that_had_an_event_are_read_again(
    study: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    read: list[str] = []
    original = records.trial_row
    monkeypatch.setattr(
        records, "trial_row", lambda s, tid, *a: read.append(tid) or original(s, tid, *a)
    )
    tables = LiveTables(study, min_interval=0.0, clock=FakeClock())
    tables.refresh({})
    assert sorted(read) == ["old0", "old1", "old2", "old3"]  # the first refresh: all
    read.clear()
    tables.touch("old2")
    tables.refresh({"new0": {"status": "RUNNING", "last_result": {}}}, force=True)
    assert sorted(read) == ["new0", "old2"]  # touched, and one Ray knows that is new
    read.clear()
    tables.refresh({"new0": {"status": "RUNNING", "last_result": {}}}, force=True)
    assert read == []


def test_refreshes_are_spaced_by_their_cost(study: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A refresh that took c seconds allows the next after max(min_interval, c / share):
    the tables take at most `share` of the run's time, however large the study grows. The
    run's first refresh reads every folder once and is not what the spacing follows."""
    clock = FakeClock()
    original = records.assemble_table

    def slow(*args: Any) -> pd.DataFrame:
        clock.now += 2.0  # a large study: assembling the table takes 2 s
        return original(*args)

    monkeypatch.setattr(records, "assemble_table", slow)
    tables = LiveTables(study, min_interval=5.0, share=0.05, clock=clock)
    assert tables.due() and tables.refresh({})  # the first
    clock.now += 5.0
    assert tables.due() and tables.refresh({})
    assert tables.last_cost == pytest.approx(2.0)
    clock.now += 39.0  # 2 s / 0.05 = 40 s until the next
    assert not tables.due() and not tables.refresh({})
    assert tables.refresh({}, force=True)  # the driver's own last refresh always runs
    clock.now += 40.0
    assert tables.due()
