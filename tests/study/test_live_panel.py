"""The live panel: short lines that fit 80 columns, one per running trial, counts that
include the trials of earlier driver runs."""

from __future__ import annotations

import io
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from rich.console import Console

from revstudy.study.live_panel import LivePanel
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
    panel.best = (0.1234, "t0", {f"param_{k}": 0.001 * k for k in range(10)})
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
    assert panel.best == (0.2, "c", {"lr": 2})
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
