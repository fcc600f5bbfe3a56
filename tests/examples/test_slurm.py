"""examples/slurm/revstudy.sbatch without SLURM (issue #34): `srun` and `scontrol`
stand-ins start the head and one worker as separate local Ray nodes; a study runs through
the script, is stopped by SIGTERM mid-study (as `scancel` or a time limit does), leaves no
Ray process behind, and the same script resumes it to the end with nothing lost. Slow."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pandas as pd
import psutil
import pytest

from revstudy.optunafile import optuna_storage
from tests.conftest import synthetic_rows, write_csv

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "examples" / "slurm" / "revstudy.sbatch"
EPOCHS = 6

# `srun [options] COMMAND…`: run COMMAND here (every "node" is this machine)
SRUN = """#!/usr/bin/env bash
while [[ $# -gt 0 && "$1" == -* ]]; do
  case "$1" in -w|-N|-n|-c|--nodelist) shift 2 ;; *) shift ;; esac
done
echo "srun: $*" >> "$SRUN_LOG"
exec "$@"
"""
# `scontrol show hostnames LIST`: one name per line
SCONTROL = """#!/usr/bin/env bash
[[ "$1 $2" == "show hostnames" ]] || { echo "scontrol stand-in: $*" >&2; exit 1; }
tr ',' '\\n' <<< "$3"
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _ray_processes(port: int) -> list[psutil.Process]:
    """Processes of the Ray cluster on `port` (its GCS, and nodes joined to it)."""
    out = []
    for p in psutil.process_iter(["cmdline"]):
        cmd = " ".join(p.info["cmdline"] or [])
        if f"gcs_server_port={port}" in cmd or (f":{port}" in cmd and "ray" in cmd):
            out.append(p)
    return out


def _epochs_done(study: Path) -> dict[str, int]:
    out = {}
    for path in (study / "trials").glob("*/epochs.jsonl"):
        rows = [json.loads(x) for x in path.read_text().splitlines() if x.strip()]
        out[path.parent.name] = max((r["epoch"] for r in rows), default=0)
    return out


def test_a_study_on_a_slurm_allocation_stops_cleanly_and_resumes(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, text in (("srun", SRUN), ("scontrol", SCONTROL)):
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    data = write_csv(tmp_path / "syn.csv", synthetic_rows(80))
    space = tmp_path / "s.yaml"
    space.write_text(
        "fixed: {blocks: [1, 1, 1, 1, 1], hidden_ratio: 0.25, cd_draws: 1, "
        f"epochs: {EPOCHS}, batch_size: 8}}\n"
        "params:\n  lr: {type: float, low: 1.0e-4, high: 3.0e-3, log: true}\n"
    )
    storage = tmp_path / "shared"
    port = _free_port()
    (tmp_path / "home").mkdir()
    env = {
        **os.environ,
        "PATH": f"{bin_dir}:{Path(sys.executable).parent}:{os.environ['PATH']}",
        "HOME": str(tmp_path / "home"),  # Ray's auth token: made by the script, here
        "SLURM_JOB_ID": "4242",
        "SLURM_JOB_NODELIST": "node-a,node-b",
        "SLURM_CPUS_PER_TASK": "1",
        "REVSTUDY_STORAGE": str(storage),
        "STUDY": "sl",
        "RAY_PORT": str(port),
        "REVSTUDY_STOP_GRACE_S": "60",
        "SRUN_LOG": str(tmp_path / "srun.log"),
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("RAY_ADDRESS", None)
    args = ["--space", str(space), "--data", str(data), "--num-samples", "3",
            "--max-concurrent", "2", "--scheduler", "none", "--no-baseline"]  # fmt: skip
    log = (tmp_path / "job1.out").open("w")
    job = subprocess.Popen(
        ["bash", str(SCRIPT), *args], stdout=log, stderr=subprocess.STDOUT, env=env,
        start_new_session=True,
    )  # fmt: skip
    study = storage / "sl"
    try:
        deadline = time.time() + 400
        while time.time() < deadline and job.poll() is None:
            done = _epochs_done(study) if study.is_dir() else {}
            if any(1 <= e <= EPOCHS - 2 for e in done.values()):
                break  # a trial mid-training
            time.sleep(0.2)
        assert job.poll() is None, (tmp_path / "job1.out").read_text()[-3000:]
        before = _epochs_done(study)
        job.send_signal(signal.SIGTERM)  # scancel / the time limit, to the batch shell
        assert job.wait(timeout=180) == 143
    finally:
        if job.poll() is None:
            os.killpg(job.pid, signal.SIGKILL)
        log.close()
    out1 = (tmp_path / "job1.out").read_text()
    assert "2 of 2 Ray node(s) joined" in out1, out1[-3000:]
    assert "1 CPUs and 0 GPUs each" in out1
    srun = (tmp_path / "srun.log").read_text()
    assert "ray start --head --block" in srun and "ray start --block --address=" in srun
    time.sleep(3)
    assert _ray_processes(port) == [], "Ray processes left after the job ended"
    trials = pd.read_parquet(study / "trials.parquet")
    assert "FAILED" not in set(trials["state"]), trials[["trial_id", "state"]]
    unfinished = [t for t, e in before.items() if e < EPOCHS]
    assert unfinished, before
    ostudy = optuna.load_study(study_name="sl", storage=optuna_storage(study))
    assert not [t for t in ostudy.trials if t.state.name == "FAIL"]

    log = (tmp_path / "job2.out").open("w")
    again = subprocess.run(  # the next job: same script, no launch arguments needed
        ["bash", str(SCRIPT)], stdout=log, stderr=subprocess.STDOUT, env=env, timeout=600,
        start_new_session=True,
    )  # fmt: skip
    log.close()
    out2 = (tmp_path / "job2.out").read_text()
    assert again.returncode == 0, out2[-3000:]
    assert "study sl exists; resuming it" in out2
    final = pd.read_parquet(study / "trials.parquet")
    assert len(final) == 3 and set(final["state"]) == {"COMPLETED"}, final[["trial_id", "state"]]
    for tid in unfinished:  # continued from its checkpoint, not started over
        result = json.loads((study / "trials" / tid / "result.json").read_text())
        assert result["history"]["resumed_after_epoch"], result["history"]
    time.sleep(3)
    assert _ray_processes(port) == []
