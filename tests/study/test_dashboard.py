"""`revstudy dashboard` (issue #34): optuna-dashboard served against a running study,
fetched through its own HTTP API: live trials with revstudy's states, nothing writable."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import optuna
import pytest

from revstudy.optunafile import optuna_storage
from tests.study.test_driver import TINY_FIXED, _cli, _launch_args

pytest.importorskip("optuna_dashboard")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.loads(r.read())


def _attrs(trial: dict) -> dict[str, Any]:
    return {a["key"]: a["value"] for a in trial["user_attrs"]}


@pytest.mark.slow
def test_the_dashboard_shows_a_running_study_live_and_changes_nothing(tmp_path: Path) -> None:
    from tests.conftest import synthetic_rows, write_csv

    data = write_csv(tmp_path / "syn.csv", synthetic_rows(80))
    space = tmp_path / "d.yaml"
    space.write_text(
        f"fixed: {TINY_FIXED.replace('test_fraction: 0.1', 'epochs: 2')}\n"
        "params:\n  lr: {type: float, low: 1.0e-4, high: 1.0e-2, log: true}\n"
    )
    storage = tmp_path / "st"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    study_run = subprocess.Popen(
        [sys.executable, "-m", "revstudy.cli", *_launch_args(space, data, storage, "live"),
         "--num-samples", "4", "--max-concurrent", "1", "--scheduler", "none"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    dash = None
    try:
        deadline = time.time() + 120
        while not (storage / "live" / "study.json").is_file():
            assert time.time() < deadline and study_run.poll() is None, study_run.stderr
            time.sleep(0.5)
        port = _free_port()
        dash = subprocess.Popen(
            [sys.executable, "-m", "revstudy.cli", "dashboard", "live",
             "--storage", str(storage), "--port", str(port)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        )  # fmt: skip
        base = f"http://127.0.0.1:{port}"
        studies = None
        while studies is None:
            assert time.time() < deadline and dash.poll() is None, dash.communicate()
            try:
                studies = _get(f"{base}/api/studies")["study_summaries"]
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.5)
        (summary,) = studies
        assert summary["study_name"] == "live"
        sid = summary["study_id"]
        seen_while_running: set[str] = set()
        while study_run.poll() is None:  # live: trials appear and change while it runs
            for t in _get(f"{base}/api/studies/{sid}?after=0")["trials"]:
                seen_while_running.add(_attrs(t).get("revstudy_state", ""))
            time.sleep(1)
        assert study_run.returncode == 0, (
            study_run.stderr.read()[-3000:] if study_run.stderr else ""
        )
        assert seen_while_running & {"RUNNING", "COMPLETED"}, seen_while_running
        time.sleep(2.5)  # the dashboard's trial cache and our records: at most ~2 s old
        trials = _get(f"{base}/api/studies/{sid}?after=0")["trials"]
        assert len(trials) == 4 and {t["state"] for t in trials} == {"Complete"}
        attrs = [_attrs(t) for t in trials]
        assert {a["revstudy_state"] for a in attrs} == {"COMPLETED"}
        assert [a["revstudy_epochs_done"] for a in attrs] == ["2"] * 4, attrs
        assert all("revstudy_f1_macro" in a for a in attrs), attrs
        request = urllib.request.Request(f"{base}/api/studies/{sid}", method="DELETE")
        with pytest.raises(urllib.error.HTTPError):
            urllib.request.urlopen(request, timeout=10)
        note = urllib.request.Request(
            f"{base}/api/studies/{sid}/note",
            data=json.dumps({"version": 1, "body": "x"}).encode(),
            method="PUT",
            headers={"Content-Type": "application/json"},
        )
        with pytest.raises(urllib.error.HTTPError):
            urllib.request.urlopen(note, timeout=10)
        kept = optuna.load_study(study_name="live", storage=optuna_storage(storage / "live"))
        assert len(kept.trials) == 4 and kept._storage.get_study_system_attrs(kept._study_id) == {}
    finally:
        for p in (study_run, dash):
            if p is not None and p.poll() is None:
                p.terminate()
                p.wait(timeout=30)


def test_a_busy_port_or_a_missing_study_is_one_line(tmp_path: Path) -> None:
    res = _cli("dashboard", "nope", "--storage", str(tmp_path))
    assert res.returncode != 0 and "no study 'nope'" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1
