"""A pack of trials trained as one ensemble, without Ray (issue #31): each member ends where
it ends trained alone, leaves when done, stopped or failed, and resumes from its own
checkpoint bit for bit."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
import torch

from revstudy.data.dataset import read_dataset
from revstudy.study.pack_trial import train_pack
from revstudy.study.spaces import load_space
from revstudy.study.trial import train_trial
from revstudy.study.trial_context import TrialContext
from revstudy.studyfolder import (
    FAILED_KEY,
    FINAL_KEY,
    PACK_KEY,
    RESULT_FILE,
    STATE_FILE,
    STOPPED_FILE,
    TRIAL_KEY,
)
from revstudy.training.splits import SplitTensors
from tests.training.float64 import TOLERANCE, as_float64, default_float64

SPACE = "fixed: {blocks: [1, 1, 1, 1, 1], hidden_ratio: 0.25, cd_draws: 1, epochs: 3}\n"
# three trials of one shape that differ in what a pack lets its members differ in
MEMBERS = [
    {"lr": 1e-3, "epochs": 3},
    {"lr": 3e-3, "epochs": 2, "lambda_density": 0.05, "relabel": True},
    {"lr": 5e-4, "epochs": 3, "weight_decay": 1e-4, "grad_clip": 0.5},
]
TIMING = {"train_seconds", "train_seconds_std"}


@pytest.fixture()
def space(tmp_path: Path) -> Path:
    p = tmp_path / "space.yaml"
    p.write_text(SPACE)
    return p


def _context(study: Path, csv: Path, space: Path, **more: Any) -> TrialContext:
    return TrialContext(
        study=study, space=load_space(str(space)), dataset=read_dataset(csv), repeats=2,
        seed=3, objectives=("f1_macro_skill",), threads=1, **more,
    )  # fmt: skip


def _pack(members: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{**m, TRIAL_KEY: f"p-{j}"} for j, m in enumerate(members)]


def _final(study: Path, tid: str) -> dict[str, Any]:
    doc = json.loads((study / "trials" / tid / RESULT_FILE).read_text())
    return {k: v for k, v in doc["report"].items() if k not in TIMING}


def _rows(reports: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for r in reports:
        for row in r[PACK_KEY]:
            out.setdefault(row[TRIAL_KEY], []).append(row)
    return out


def _close(a: dict[str, Any], b: dict[str, Any]) -> None:
    assert a.keys() == b.keys()
    for key, x in a.items():
        y = b[key]
        if isinstance(x, float) and isinstance(y, float) and not (math.isnan(x) and math.isnan(y)):
            assert abs(x - y) <= TOLERANCE * max(1.0, abs(y)), key
        elif not isinstance(x, float):
            assert x == y, key


@pytest.mark.slow
def test_members_follow_lone_trials_exactly_when_they_train_in_turn(
    tmp_path: Path, synthetic_csv: Path, space: Path
) -> None:
    """Strategy "sequential": the pack's bookkeeping (rows, epochs, leaving, checkpoints,
    results) around the very arithmetic of a lone trial, so every figure is equal."""
    reports: list[dict[str, Any]] = []
    context = _context(tmp_path / "pack", synthetic_csv, space, strategy="sequential")
    train_pack(_pack(MEMBERS), context, "p", report=reports.append)
    rows = _rows(reports)
    assert [r["epoch"] for r in reports] == [1, 2, 3]
    assert [len(r[PACK_KEY]) for r in reports] == [3, 3, 2]  # p-1 left after its 2 epochs
    for j, params in enumerate(MEMBERS):
        lone: list[dict[str, Any]] = []
        train_trial(params, _context(tmp_path / "lone", synthetic_csv, space), f"t{j}",
                    report=lone.append)  # fmt: skip
        mine = rows[f"p-{j}"]
        assert [r["epoch"] for r in mine] == list(range(1, params["epochs"] + 1))
        assert mine[-1][FINAL_KEY] == 1
        strip = TIMING | {TRIAL_KEY}
        assert [{k: v for k, v in r.items() if k not in strip} for r in mine] == [
            {k: v for k, v in r.items() if k not in TIMING} for r in lone
        ]
        assert _final(tmp_path / "pack", f"p-{j}") == _final(tmp_path / "lone", f"t{j}")
        doc = json.loads((tmp_path / "pack" / "trials" / f"p-{j}" / RESULT_FILE).read_text())
        assert doc["pack"] == "p"


@pytest.mark.slow
def test_members_stepped_as_one_ensemble_follow_lone_trials(
    tmp_path: Path, synthetic_csv: Path, space: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Strategy "vmap" (the GPU's): one vmapped step for all members; in float64 each
    member's final figures equal its lone trial's up to `TOLERANCE` (tests/training/float64.py)."""
    build = SplitTensors.build
    monkeypatch.setattr(SplitTensors, "build", lambda *a, **k: as_float64(build(*a, **k)))
    with default_float64():
        context = _context(tmp_path / "pack", synthetic_csv, space, strategy="vmap")
        train_pack(_pack(MEMBERS), context, "p", report=lambda m: None)
        for j, params in enumerate(MEMBERS):
            lone = _context(tmp_path / "lone", synthetic_csv, space, strategy="sequential")
            train_trial(params, lone, f"t{j}", report=lambda m: None)
            _close(_final(tmp_path / "pack", f"p-{j}"), _final(tmp_path / "lone", f"t{j}"))


class Killed(BaseException):
    """Stands for a SIGKILL between two epochs: nothing after it runs, nothing is recorded."""


@pytest.mark.slow
def test_an_interrupted_pack_resumes_every_member_bit_for_bit(
    tmp_path: Path, synthetic_csv: Path, space: Path
) -> None:
    straight = tmp_path / "a"
    train_pack(_pack(MEMBERS), _context(straight, synthetic_csv, space, strategy="vmap"), "p",
               report=lambda m: None)  # fmt: skip

    killed = tmp_path / "b"

    def die_after_epoch_1(metrics: dict[str, Any]) -> None:
        if metrics["epoch"] == 1:
            raise Killed

    context = _context(killed, synthetic_csv, space, strategy="vmap")
    with pytest.raises(Killed):
        train_pack(_pack(MEMBERS), context, "p", report=die_after_epoch_1)
    for j in range(3):
        assert (killed / "trials" / f"p-{j}" / STATE_FILE).is_file()
        assert not (killed / "trials" / f"p-{j}" / "failure.json").exists()
    resumed: list[dict[str, Any]] = []
    train_pack(_pack(MEMBERS), context, "p2", report=resumed.append)
    assert [r["epoch"] for r in resumed] == [2, 3]
    for j in range(3):
        assert _final(killed, f"p-{j}") == _final(straight, f"p-{j}")
        doc = json.loads((killed / "trials" / f"p-{j}" / RESULT_FILE).read_text())
        assert doc["history"]["resumed_after_epoch"] == [1]


def test_a_member_the_scheduler_stops_leaves_and_the_others_train_on(
    tmp_path: Path, synthetic_csv: Path, space: Path
) -> None:
    study = tmp_path / "s"

    def stop_first_after_epoch_1(metrics: dict[str, Any]) -> None:
        if metrics["epoch"] == 1:  # what the driver's PackCallback writes for ASHA
            (study / "trials" / "p-0" / STOPPED_FILE).write_text('{"epoch": 1}')

    reports: list[dict[str, Any]] = []

    def report(metrics: dict[str, Any]) -> None:
        reports.append(metrics)
        stop_first_after_epoch_1(metrics)

    context = _context(study, synthetic_csv, space, strategy="sequential")
    train_pack(_pack(MEMBERS), context, "p", report=report)
    rows = _rows(reports)
    assert [r["epoch"] for r in rows["p-0"]] == [1]
    assert not (study / "trials" / "p-0" / RESULT_FILE).exists()
    assert [r["epoch"] for r in rows["p-2"]] == [1, 2, 3]
    train_trial(MEMBERS[2], _context(tmp_path / "lone", synthetic_csv, space), "t2",
                report=lambda m: None)  # fmt: skip
    assert _final(study, "p-2") == _final(tmp_path / "lone", "t2")
    again: list[dict[str, Any]] = []  # restarted (Ray's retry): the stopped one stays out
    train_pack(_pack(MEMBERS), context, "p", report=again.append)
    assert sorted(row[TRIAL_KEY] for row in again[0][PACK_KEY]) == ["p-1", "p-2"]
    assert all(row.get(FINAL_KEY) == 1 for row in again[0][PACK_KEY])


def test_a_member_that_fails_leaves_alone_and_is_not_trained_again(
    tmp_path: Path, synthetic_csv: Path, space: Path
) -> None:
    members = [dict(MEMBERS[0]), {"lr": 1e-3, "batch_size": 0}, dict(MEMBERS[2])]
    reports: list[dict[str, Any]] = []
    context = _context(tmp_path, synthetic_csv, space, strategy="vmap")
    train_pack(_pack(members), context, "p", report=reports.append)
    first = {row[TRIAL_KEY]: row for row in reports[0][PACK_KEY]}
    assert "batch_size" in first["p-1"][FAILED_KEY]
    assert [sorted(row[TRIAL_KEY] for row in r[PACK_KEY]) for r in reports[1:]] == [
        ["p-0", "p-2"],
        ["p-0", "p-2"],
    ]
    failure = json.loads((tmp_path / "trials" / "p-1" / "failure.json").read_text())
    assert failure["pack"] == "p" and "batch_size" in failure["reason"]
    again: list[dict[str, Any]] = []  # the same pack restarted by Ray: reported, not retrained
    train_pack(_pack(members), context, "p", report=again.append)
    assert len(again) == 1
    assert {row[TRIAL_KEY]: FAILED_KEY in row for row in again[0][PACK_KEY]} == {
        "p-0": False, "p-1": True, "p-2": False,
    }  # fmt: skip


def test_a_non_finite_loss_fails_its_member_only(
    tmp_path: Path, synthetic_csv: Path, space: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from revstudy.training import trainer as trainer_mod

    real = trainer_mod.Trainer.finish_epoch

    def nan_for_high_lr(self: Any, epoch: int, sums: dict[str, float], seconds: float) -> Any:
        if self.config.lr > 2e-3:
            sums = {**sums, "total": math.nan}
        return real(self, epoch, sums, seconds)

    monkeypatch.setattr(trainer_mod.Trainer, "finish_epoch", nan_for_high_lr)
    reports: list[dict[str, Any]] = []
    context = _context(tmp_path, synthetic_csv, space, strategy="vmap")
    train_pack(_pack(MEMBERS), context, "p", report=reports.append)
    first = {row[TRIAL_KEY]: row for row in reports[0][PACK_KEY]}
    assert "non-finite training loss" in first["p-1"][FAILED_KEY]
    assert (tmp_path / "trials" / "p-0" / RESULT_FILE).is_file()
    assert (tmp_path / "trials" / "p-2" / RESULT_FILE).is_file()
    assert torch.get_default_dtype() == torch.float32
