"""The live panel: short lines that fit 80 columns, one per running trial, counts that
include the trials of earlier driver runs."""

from __future__ import annotations

import io
import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd
from rich.console import Console

from revstudy.study.live_panel import LivePanel
from revstudy.studyfolder import rank_finished
from revstudy.studyinfo import StudyInfo

INFO = {
    "name": "a-rather-long-study-name-for-the-panel",
    "num_samples": 20,
    "baseline": False,
    "objectives": [{"metric": "f1_macro_skill", "mode": "max"}],
    "space": {
        "name": "t", "path": "t.yaml", "fixed": {"epochs": 5}, "objectives": [],
        "params": [{"name": "lr", "type": "float", "low": 1e-4, "high": 1e-2, "log": True}],
    },
}  # fmt: skip


def test_panel_fits_80_columns_and_lists_running_trials(tmp_path: Path) -> None:
    panel = LivePanel(StudyInfo.from_dict(INFO), live=False, done_before=7)
    trials = {}
    for i in range(3):
        trials[f"t{i}"] = SimpleNamespace(
            status="RUNNING",
            config={"lr": 1e-3, "epochs": 5},
            last_result={"epoch": i + 1, "val_f1_skill": 0.1 * i},
        )
        panel.update(trials, f"t{i}")
    panel.seed(  # an earlier run's trial: counted in `done_before`, no duration yet
        [
            {
                "trial_id": "t0",
                "state": "COMPLETED",
                "f1_macro_skill": 0.1234,
                "params": json.dumps({f"param_{k}": 0.001 * k for k in range(10)}),
            }
        ]
    )
    console = Console(width=80, record=True, file=open(tmp_path / "out", "w"))  # noqa: SIM115
    console.print(panel.render(trials))
    lines = console.export_text().splitlines()
    assert all(len(line) <= 80 for line in lines)
    text = " ".join(line.strip() for line in lines)  # wrapped, not cut
    assert "7/20 done" in text and "3 running" in text and "ETA estimating" in text
    assert "▸ t2  epoch 3/5  f1_macro_skill 0.2" in text
    assert "best f1_macro_skill 0.1234 (t0)" in text


def test_best_so_far_ranks_completed_trials_before_early_stopped_ones() -> None:
    """The panel's best follows the study folder's ranking (revstudy.studyfolder)."""
    panel = LivePanel(StudyInfo.from_dict(INFO), live=False)
    panel.ended("STOPPED_EARLY", "s", {"f1_macro_skill": 0.9}, {"lr": 1})
    assert panel.best is not None and panel.best[1] == "s"  # nothing completed yet
    panel.ended("COMPLETED", "c", {"f1_macro_skill": 0.2}, {"lr": 2})
    panel.ended("STOPPED_EARLY", "s2", {"f1_macro_skill": 0.95}, {"lr": 3})
    panel.ended("COMPLETED", "c2", {"f1_macro_skill": 0.1}, {"lr": 4})
    panel.ended("FAILED", "f", {}, {})
    panel.ended("DIVERGED", "d", {"f1_macro_skill": 0.99}, {"lr": 5})  # never the best
    assert panel.best == ((0.2,), "c", {"lr": 2})
    assert panel.counts == {"COMPLETED": 2, "STOPPED_EARLY": 2, "DIVERGED": 1, "FAILED": 1}
    assert panel.done == 6


def test_an_epoch_without_validation_shows_the_last_validated_value(tmp_path: Path) -> None:
    """`val_every: 2`: epoch 3 reports NaN; the panel shows epoch 2's value, and says so."""
    panel = LivePanel(StudyInfo.from_dict(INFO), live=False)
    trial = SimpleNamespace(status="RUNNING", config={"epochs": 5}, last_result={})
    lines = []
    for epoch, value in ((1, 0.2), (2, 0.25), (3, float("nan"))):
        trial.last_result = {"epoch": epoch, "val_f1_skill": value}
        panel.update({"t": trial}, "t")  # each report, drawn or not
        if epoch == 1:
            continue  # the panel was not drawn after this one
        console = Console(width=80, record=True, file=open(tmp_path / "out", "w"))  # noqa: SIM115
        console.print(panel.render({"t": trial}))
        lines.append(console.export_text())
    assert "epoch 2/5  f1_macro_skill 0.25" in lines[0] and "(epoch" not in lines[0]
    assert "epoch 3/5  f1_macro_skill 0.25 (epoch 2)" in lines[1] and "nan" not in lines[1]


def test_the_panel_is_drawn_at_its_rate_not_at_every_event() -> None:
    """A drawing looks at every trial of the run; events come ~7 a trial at GPU rates: 200
    events draw the panel a few times (its 2 Hz refresh, the first and the last state)."""
    panel = LivePanel(StudyInfo.from_dict(INFO), live=False)
    panel.console = Console(file=io.StringIO(), force_terminal=True, width=80)
    panel.enabled = True
    draws: list[int] = []
    render = panel.render
    panel.render = lambda trials: (draws.append(len(trials)), render(trials))[1]  # type: ignore[method-assign]
    trials: dict[str, Any] = {}
    with panel.display(trials):
        for i in range(200):
            trials[f"t{i}"] = SimpleNamespace(
                status="RUNNING", config={"epochs": 5}, last_result={"epoch": 1}
            )
            panel.say(f"trial t{i} started", trials)
            panel.update(trials, f"t{i}")
    assert 1 <= len(draws) <= 10 and draws[-1] == 200  # the last drawing: the last state
    assert "200 running" in panel.console.file.getvalue()


MO = {
    **INFO,
    "objectives": [
        {"metric": "f1_macro_skill", "mode": "max"},
        {"metric": "inv_error_max", "mode": "min"},
    ],
    "constraints": ["inv_error_max<=0.01"],
}


def _rank_finished_best(rows: list[tuple[str, str, float, float]]) -> tuple[str, int]:
    """The study folder's own ranking of the same trials: its best and its front's size."""
    table = pd.DataFrame(rows, columns=["trial_id", "state", "f1_macro_skill", "inv_error_max"])
    info = StudyInfo.from_dict(MO)
    broke = (table["inv_error_max"] > 0.01) & (table["state"] == "COMPLETED")
    table["feasible"] = np.where(table["state"] == "COMPLETED", ~broke, None)
    ranked = rank_finished(table, list(info.objectives))
    return str(ranked.iloc[0]["trial_id"]), int((ranked["front"] == 0).sum())


def test_several_objectives_the_best_and_front_are_the_study_folders(tmp_path: Path) -> None:
    """Random trials, stopped early, dominated, breaking the constraint, lacking a value:
    after each one the panel's best and Pareto front equal `rank_finished`'s, and the panel
    shows every objective of the best."""
    rng = np.random.default_rng(0)
    panel = LivePanel(StudyInfo.from_dict(MO), live=False)
    panel._next_sort = float("-inf")
    rows: list[tuple[str, str, float, float]] = []
    for i in range(40):
        state = str(rng.choice(["COMPLETED", "STOPPED_EARLY", "DIVERGED"], p=[0.4, 0.5, 0.1]))
        f1, inv = round(float(rng.random()), 2), float(rng.choice([1e-6, 1e-4, 1e-3, 0.05]))
        result = {"f1_macro_skill": f1, "inv_error_max": inv}
        if i == 7:
            result.pop("inv_error_max")  # never ranked
        panel.ended(state, f"t{i}", result, {"lr": i})
        panel._next_sort = float("-inf")  # sorted at every ask here
        if state != "DIVERGED" and i != 7:
            rows.append((f"t{i}", state, f1, inv))
        if rows:
            best, front = _rank_finished_best(rows)
            assert panel.best is not None and (panel.best[1], panel.front_size) == (best, front)
    console = Console(width=80, record=True, file=open(tmp_path / "out", "w"))  # noqa: SIM115
    console.print(panel.render({}))
    text = " ".join(line.strip() for line in console.export_text().splitlines())
    values, tid, _ = panel.best
    assert f"best f1_macro_skill {values[0]:.4f}, inv_error_max {values[1]:.3g} ({tid}; " in text
    assert f"; {panel.front_size} on the Pareto front)" in text


def test_a_resumed_studys_best_includes_the_earlier_runs_trials() -> None:
    """Rows of the trials table (earlier driver runs) are ranked as ended trials are; a row
    that broke a constraint (`feasible` False) or is not finished never is."""
    panel = LivePanel(StudyInfo.from_dict({**INFO, "constraints": ["f1_macro_skill<=0.95"]}))
    panel.seed(
        [
            {"trial_id": "old", "state": "COMPLETED", "f1_macro_skill": 0.5, "params": '{"lr": 1}'},
            {"trial_id": "broke", "state": "COMPLETED", "f1_macro_skill": 0.99, "feasible": False},
            {"trial_id": "run", "state": "RUNNING", "f1_macro_skill": 0.9},
            {"trial_id": "bad", "state": "COMPLETED", "f1_macro_skill": 0.9, "params": "[1"},
        ]
    )
    assert panel.best == ((0.9,), "bad", {})
    panel.ended("COMPLETED", "new", {"f1_macro_skill": 0.97}, {"lr": 3})  # breaks it
    panel.ended("COMPLETED", "new2", {"f1_macro_skill": 0.6}, {"lr": 2})
    assert panel.best == ((0.9,), "bad", {}) and panel.done == 2
