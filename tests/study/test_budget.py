"""--time-budget across driver runs (revstudy.study.budget): a killed run still counts."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from revstudy.study.budget import DriverClock, remaining_budget, spent_seconds
from revstudy.studyfolder import DRIVER_FILE
from revstudy.studyinfo import StudyInfo

REPO = Path(__file__).resolve().parents[2]


def recorded(study: Path) -> dict[str, float]:
    doc: dict[str, float] = json.loads((study / DRIVER_FILE).read_text())
    return doc


def test_runs_add_up_and_the_count_moves_during_a_run(tmp_path: Path) -> None:
    with DriverClock(tmp_path, interval=0.02) as clock:
        assert recorded(tmp_path)["runs"] == 1  # counted from its start
        time.sleep(0.3)
        mid = recorded(tmp_path)["elapsed_s"]
        assert 0.1 < mid <= clock.elapsed  # ticks while the run goes on
    first = recorded(tmp_path)["elapsed_s"]
    assert first >= 0.3
    with pytest.raises(RuntimeError), DriverClock(tmp_path, interval=10):
        time.sleep(0.1)
        raise RuntimeError("the tuner failed")
    doc = recorded(tmp_path)
    assert doc["runs"] == 2 and doc["elapsed_s"] >= first + 0.1  # a failed run counts too
    assert spent_seconds(tmp_path) == (doc["elapsed_s"], 2)


def test_a_killed_driver_loses_at_most_one_interval(tmp_path: Path) -> None:
    code = (
        "import sys, time; from pathlib import Path\n"
        "from revstudy.study.budget import DriverClock\n"
        "with DriverClock(Path(sys.argv[1]), interval=0.1):\n"
        "    print('running', flush=True); time.sleep(60)\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code, str(tmp_path)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "running"
    time.sleep(1.0)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert recorded(tmp_path)["elapsed_s"] >= 0.8


def test_remaining_budget(tmp_path: Path) -> None:
    assert remaining_budget(tmp_path, StudyInfo("s", ())) is None
    assert remaining_budget(tmp_path, StudyInfo("s", (), time_budget_s=60.0)) == 60.0  # no run yet
    (tmp_path / DRIVER_FILE).write_text(json.dumps({"elapsed_s": 45.5, "runs": 2}))
    assert remaining_budget(tmp_path, StudyInfo("s", (), time_budget_s=60.0)) == pytest.approx(14.5)


@pytest.mark.parametrize(
    "text", ['{"elapsed_s": 1', "[1, 2]", '{"elapsed_s": -5, "runs": 1}', '{"elapsed_s": 3}']
)
def test_a_damaged_record_is_reported_not_trusted(
    tmp_path: Path, text: str, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / DRIVER_FILE).write_text(text)
    assert spent_seconds(tmp_path) == (0.0, 0)
    assert f"{tmp_path / DRIVER_FILE} is damaged" in capsys.readouterr().err
