"""A study trial without Ray: per-epoch reports, its own checkpoint, and exact resume after a
SIGKILL (the kill a lost node, an OOM killer or `kill -9` of a driver gives)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
import torch

from revstudy.data.dataset import read_dataset
from revstudy.study.spaces import load_space
from revstudy.study.trial import TrialAbandoned, train_trial
from revstudy.study.trial_context import TrialContext
from revstudy.studyfolder import FINAL_KEY, STATE_FILE

SPACE = "fixed: {blocks: [1, 1, 1, 1, 1], hidden_ratio: 0.25, cd_draws: 1, epochs: 4}\n"
REPO = Path(__file__).resolve().parents[2]


def _run(study: Path, csv: Path, space: Path, reports: list[dict[str, Any]], **more: Any) -> None:
    torch.set_num_threads(1)
    train_trial({}, _context(study, csv, space, **more), "t1", report=reports.append)


def _context(study: Path, csv: Path, space: Path, **more: Any) -> TrialContext:
    """The context a study hands its trials: 2 repeats, seed 3, one thread."""
    return TrialContext(
        study=study, space=load_space(str(space)), dataset=read_dataset(csv), repeats=2,
        seed=3, objectives=("f1_macro_skill",), threads=1, **more,
    )  # fmt: skip


def _without(d: dict[str, Any], keys: set[str]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if k not in keys}


@pytest.fixture()
def space(tmp_path: Path) -> Path:
    p = tmp_path / "space.yaml"
    p.write_text(SPACE)
    return p


@pytest.mark.slow
def test_sigkill_mid_training_then_resume_equals_an_uninterrupted_run(
    tmp_path: Path, synthetic_csv: Path, space: Path
) -> None:
    straight: list[dict[str, Any]] = []
    _run(tmp_path / "a", synthetic_csv, space, straight)
    assert [r["epoch"] for r in straight] == [1, 2, 3, 4] and straight[-1][FINAL_KEY] == 1

    killed = tmp_path / "b"
    script = textwrap.dedent(
        f"""
        import sys, time, torch
        from pathlib import Path
        from revstudy.data.dataset import read_dataset
        from revstudy.study.spaces import load_space
        from revstudy.study.trial import TrialAbandoned, train_trial
        from revstudy.study.trial_context import TrialContext

        def report(m):
            if m["epoch"] == 2:  # its checkpoint is on disk: now die mid-training
                print("ready", flush=True)
                time.sleep(600)

        torch.set_num_threads(1)
        context = TrialContext(
            study=Path({str(killed)!r}), space=load_space({str(space)!r}),
            dataset=read_dataset({str(synthetic_csv)!r}), repeats=2, seed=3,
            objectives=("f1_macro_skill",), threads=1)
        train_trial({{}}, context, "t1", report=report)
        """
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, cwd=REPO
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert (killed / "trials" / "t1" / STATE_FILE).is_file()
    assert not (killed / "trials" / "t1" / "result.json").exists()

    resumed: list[dict[str, Any]] = []
    _run(killed, synthetic_csv, space, resumed)
    assert [r["epoch"] for r in resumed] == [3, 4]
    timing = {"train_seconds", "train_seconds_std"}
    assert _without(resumed[-1], timing) == _without(straight[-1], timing)  # bit for bit
    a = json.loads((tmp_path / "a" / "trials" / "t1" / "result.json").read_text())
    b = json.loads((killed / "trials" / "t1" / "result.json").read_text())
    assert b["history"]["resumed_after_epoch"] == [2] and a["history"]["resumed_after_epoch"] == []
    assert [_without(r, timing) for r in a["repeats"]] == [
        _without(r, timing) for r in b["repeats"]
    ]
    assert a["tf32"] is False
    epochs = [json.loads(line) for line in (killed / "trials" / "t1" / "epochs.jsonl").open()]
    assert [(e["repeat"], e["epoch"]) for e in epochs] == [
        (r, e) for e in (1, 2, 3, 4) for r in (0, 1)
    ]


def test_a_finished_trial_reports_its_record_again(
    tmp_path: Path, synthetic_csv: Path, space: Path
) -> None:
    first: list[dict[str, Any]] = []
    _run(tmp_path, synthetic_csv, space, first)
    again: list[dict[str, Any]] = []
    _run(tmp_path, synthetic_csv, space, again)  # e.g. resumed after the driver died
    assert again == [first[-1]]


def test_a_damaged_checkpoint_fails_the_trial_with_its_path(
    tmp_path: Path, synthetic_csv: Path, space: Path
) -> None:
    ck = tmp_path / "trials" / "t1" / STATE_FILE
    ck.parent.mkdir(parents=True)
    ck.write_bytes(b"PK\x03\x04 torn")
    with pytest.raises(Exception, match="damaged or untrusted checkpoint"):
        _run(tmp_path, synthetic_csv, space, [])
    failure = json.loads((ck.parent / "failure.json").read_text())
    assert str(ck) in failure["reason"] and "CheckpointError" in failure["reason"]


def test_a_killed_driver_counts_as_gone_even_before_it_is_reaped() -> None:
    """The trial guard's liveness check: a zombie (killed, not yet waited for) is dead."""
    import time

    from revstudy.study.trial import _pid_alive

    p = subprocess.Popen(["sleep", "30"])
    try:
        assert _pid_alive(p.pid)
        p.kill()
        time.sleep(0.3)
        assert not _pid_alive(p.pid)  # a zombie until p.wait()
    finally:
        p.wait()
    assert not _pid_alive(p.pid)


def test_a_worker_starting_after_its_driver_died_leaves_the_folder_alone(
    tmp_path: Path, synthetic_csv: Path, space: Path
) -> None:
    """A Ray worker still importing torch when its driver was SIGKILLed starts the trial
    late, maybe after `resume` gave the folder to a new run: it must not take it over."""
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()  # a pid that is gone
    tdir = tmp_path / "trials" / "t1"
    tdir.mkdir(parents=True)
    owner = {"token": "the-resumed-run", "pid": os.getpid(), "host": os.uname().nodename}
    (tdir / "owner.json").write_text(json.dumps(owner))
    (tdir / "failure.json").write_text('{"reason": "kept"}')
    reports: list[dict[str, Any]] = []
    driver = {"pid": dead.pid, "host": os.uname().nodename}
    with pytest.raises(TrialAbandoned, match=f"driver pid {dead.pid} is gone"):
        _run(tmp_path, synthetic_csv, space, reports, driver=driver)
    assert json.loads((tdir / "owner.json").read_text()) == owner
    assert (tdir / "failure.json").read_text() == '{"reason": "kept"}'
    assert sorted(p.name for p in tdir.iterdir()) == ["failure.json", "owner.json"]
    assert reports == []


class _StopAfter:
    """A report that stops the trial after `epochs` epochs (a checkpoint stays behind)."""

    def __init__(self, epochs: int):
        self.epochs = epochs

    def __call__(self, metrics: dict[str, Any]) -> None:
        if metrics["epoch"] >= self.epochs:
            raise KeyboardInterrupt


def test_a_checkpoint_from_a_gpu_node_resumes_on_a_cpu_node_and_says_so(
    tmp_path: Path, synthetic_csv: Path, space: Path
) -> None:
    from revstudy.training.checkpoint import load_checkpoint, save_checkpoint

    study = tmp_path / "s"
    with pytest.raises(KeyboardInterrupt):
        train_trial({}, _context(study, synthetic_csv, space), "t1", report=_StopAfter(2))
    ckpt = study / "trials" / "t1" / STATE_FILE
    state = load_checkpoint(ckpt)
    for s in state["trainers"]:  # as a CUDA trainer writes it (issue #23.2)
        s["generator"], s["generator_device"] = torch.arange(16, dtype=torch.uint8), "cuda"
    save_checkpoint(ckpt, state)
    reports: list[dict[str, Any]] = []
    _run(study, synthetic_csv, space, reports)
    assert [r["epoch"] for r in reports] == [3, 4] and reports[-1][FINAL_KEY] == 1
    result = json.loads((study / "trials" / "t1" / "result.json").read_text())
    assert result["history"]["generator_reseeded"] == [
        {"repeat": r, "epoch": 2, "from": "cuda", "to": "cpu"} for r in range(2)
    ]
