"""Study folder records (revstudy.study.records): checkpoints of finished trials."""

from __future__ import annotations

import json
from pathlib import Path

from revstudy.study.records import drop_finished_checkpoints
from revstudy.studyfolder import STATE_FILE


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
