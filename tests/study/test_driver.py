"""The driver (revstudy.study.driver) end to end: studies on Ray in subprocesses, as a user
runs them (launch, resume, relaunch, failures). Slow: run in CI."""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pandas as pd
import pytest
import yaml

from revstudy.optunafile import optuna_storage
from revstudy.study.optuna_store import UNSTARTED_ATTR
from tests.conftest import synthetic_rows, write_csv

pytestmark = pytest.mark.slow
TINY_FIXED = "{blocks: [1, 1, 1, 1, 1], hidden_ratio: 0.25, cd_draws: 1, test_fraction: 0.1}"


def _cli(*args: str, timeout: int = 600, **kw) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.run(
        [sys.executable, "-m", "revstudy.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        **kw,
    )


def _launch_args(space: Path, data: Path, storage: Path, name: str) -> list[str]:
    """`revstudy launch` arguments for a study of `space` named `name` under `storage`."""
    return [
        "launch",
        "--space",
        str(space),
        "--data",
        str(data),
        "--storage",
        str(storage),
        "--name",
        name,
    ]


@pytest.fixture()
def data(tmp_path: Path) -> Path:
    return write_csv(tmp_path / "syn.csv", synthetic_rows(80))


def _status(storage: Path, name: str) -> dict:
    res = _cli("status", name, "--storage", str(storage), "--json")
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)


def test_failed_trials_are_recorded_and_the_study_completes(tmp_path: Path, data: Path) -> None:
    space = tmp_path / "faulty.yaml"
    space.write_text(
        f"fixed: {TINY_FIXED.replace('test_fraction: 0.1', 'epochs: 1')}\n"
        "params:\n"
        "  val_fraction: {type: categorical, choices: [0.2, 0.999]}\n"  # 0.999: no train rows
        "  lr: {type: categorical, choices: [1.0e-3, 10.0]}\n"  # 10 (the most allowed): NaN loss
    )
    res = _cli(
        *_launch_args(space, data, tmp_path / "st", "faulty"),
        "--num-samples",
        "6",
        "--sampler",
        "random",
        "--no-baseline",
        "--max-failures",
        "0",
    )
    assert res.returncode == 0, res.stderr[-3000:]
    trials = pd.read_parquet(tmp_path / "st" / "faulty" / "trials.parquet")
    assert len(trials) == 6
    failed = trials[trials.state == "FAILED"]
    reasons = " ".join(failed.failure_reason)
    assert "NonFiniteLossError" in reasons and "no training or no validation rows" in reasons
    assert (trials.state == "COMPLETED").sum() >= 1
    s = _status(tmp_path / "st", "faulty")
    assert s["trials"] == 6 and s["by_state"]["FAILED"] == len(failed)
    storage = optuna_storage(tmp_path / "st" / "faulty")
    states = [t.state.name for t in optuna.load_study(study_name="faulty", storage=storage).trials]
    assert states.count("FAIL") == len(failed) and "RUNNING" not in states

    # --retry-failed runs each failure again in its own folder (Optuna refuses to update a
    # finished trial: the retry names the trial it retries); they fail the same way, and the
    # study still counts six trials
    res = _cli("resume", "faulty", "--storage", str(tmp_path / "st"), "--retry-failed")
    assert res.returncode == 0, res.stderr[-3000:]
    again = pd.read_parquet(tmp_path / "st" / "faulty" / "trials.parquet")
    assert sorted(again.trial_id) == sorted(trials.trial_id)
    assert (again.state == "FAILED").sum() == len(failed)
    trials_db = optuna.load_study(study_name="faulty", storage=storage).trials
    retried = [t.user_attrs.get("revstudy_retry_of") for t in trials_db[6:]]
    assert sorted(retried) == sorted(int(n) for n in failed.number)
    assert _status(tmp_path / "st", "faulty")["trials"] == 6


def test_all_failed_study_stops_with_a_summary(tmp_path: Path, data: Path) -> None:
    space = tmp_path / "nan.yaml"
    space.write_text(f"fixed: {TINY_FIXED}\nparams:\n  lr: {{type: float, low: 5.0, high: 10.0}}\n")
    res = _cli(
        *_launch_args(space, data, tmp_path / "st", "bad"),
        "--num-samples",
        "20",
        "--no-baseline",
        "--max-failures",
        "0",
        "--max-concurrent",
        "2",
    )
    assert res.returncode == 4
    assert "trials failed" in res.stderr and "NonFiniteLossError" in res.stderr
    assert f"(details: revstudy status {tmp_path / 'st' / 'bad'})" in res.stderr  # any storage
    assert _status(tmp_path / "st", "bad")["trials"] < 20  # stopped instead of spinning


class _Payload:
    """Unpickling this runs `touch MARKER`: what a crafted pickle in a shared folder could do."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _plant_pickles(study: Path, marker: Path) -> list[Path]:
    """Replace every pickle Ray wrote (and plant the ones Tuner.restore would read)."""
    ray_dir = study / "ray"
    paths = [*ray_dir.rglob("*.pkl"), ray_dir / "tuner.pkl", ray_dir / "run-x" / "tuner.pkl"]
    for p in paths:
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(pickle.dumps(_Payload(marker)))
    return paths


def test_sigkill_mid_training_then_resume(tmp_path: Path, data: Path) -> None:
    """Kill the driver while trials are mid-training; plant pickle payloads and delete
    nothing else: resume continues every interrupted trial from its own checkpoint, keeps
    the finished ones, runs no planted code, and status/list/report/export never unpickle."""
    space = tmp_path / "s.yaml"
    space.write_text(
        f"fixed: {TINY_FIXED}\nparams:\n"
        "  lr: {type: float, low: 1.0e-4, high: 3.0e-3, log: true}\n"
        "  epochs: {type: int, low: 20, high: 24}\n"  # long enough to be killed mid-training
    )
    storage = tmp_path / "st"
    args = [
        *_launch_args(space, data, storage, "k"),
        "--num-samples",
        "6",
        "--max-concurrent",
        "2",
        "--scheduler",
        "none",
    ]
    proc = subprocess.Popen(
        [sys.executable, "-m", "revstudy.cli", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.time() + 300
    results = storage / "k" / "trials"

    def mid_training() -> set[str]:
        return {
            p.parent.name
            for p in results.glob("*/state.pt")
            if not (p.parent / "result.json").exists()
        }

    while time.time() < deadline and not (list(results.glob("*/result.json")) and mid_training()):
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    time.sleep(2)  # a Ray worker that outlived its driver stops at its next write (its guard)
    interrupted = mid_training()
    finished_before = {p.parent.name: p.stat().st_mtime_ns for p in results.glob("*/result.json")}
    assert finished_before and interrupted, "study did not progress"
    marker = tmp_path / "pwned"
    _plant_pickles(storage / "k", marker)
    # the lock is free again: flock died with the process
    res = _cli("resume", "k", "--storage", str(storage))
    assert res.returncode == 0, res.stderr[-3000:]
    assert not marker.exists(), "resume unpickled a planted payload"
    trials = pd.read_parquet(storage / "k" / "trials.parquet")
    finished = trials[trials.state.isin(["COMPLETED", "STOPPED_EARLY"])]
    assert len(finished) == 6 and trials.trial_id.is_unique, (
        trials[["trial_id", "number", "state"]].to_string()
        + "\n"
        + res.stderr[-3000:]
        + "\n".join(f"{p}: {p.read_text()[:500]}" for p in results.glob("*/failure.json"))
        + str(sorted(p.name for p in results.iterdir()))
    )
    for tid, mtime in finished_before.items():  # finished trials were not run again
        assert (results / tid / "result.json").stat().st_mtime_ns == mtime
    resumed = {
        tid
        for tid in interrupted
        if json.loads((results / tid / "result.json").read_text())["history"]["resumed_after_epoch"]
    }
    assert resumed == interrupted
    assert not list(results.glob("*/state.pt"))  # checkpoints of ended trials are removed
    study = optuna.load_study(study_name="k", storage=optuna_storage(storage / "k"))
    complete = [t for t in study.trials if t.state.name == "COMPLETE"]
    # a kill between Optuna's ask and the trial's folder id leaves one more Optuna trial,
    # which resume marks failed and never started (revstudy.study.optuna_store.discard_unstarted)
    others = [t for t in study.trials if t.state.name != "COMPLETE"]
    assert len(complete) == 6, [(t.number, t.state.name) for t in study.trials]
    assert all(t.state.name == "FAIL" and t.user_attrs.get(UNSTARTED_ATTR) for t in others), [
        (t.number, t.state.name, t.user_attrs) for t in others
    ]
    ray_ids = {t.user_attrs.get("ray_trial_id") for t in complete}
    assert ray_ids == set(finished.trial_id)  # Optuna's record matches the folders

    _plant_pickles(storage / "k", marker)
    for cmd in (
        ["status", "k"],
        ["list"],
        ["report", "k", "--out", str(tmp_path / "r.html")],
        ["export", "k", "--out", str(tmp_path / "x")],
    ):
        res = _cli(*cmd, "--storage", str(storage))
        assert res.returncode == 0, (cmd, res.stderr[-2000:])
        assert not marker.exists(), f"{cmd[0]} unpickled a planted payload"
    # Ray's folder holds logs only: without it, resume has nothing left to do
    shutil.rmtree(storage / "k" / "ray")
    res = _cli("resume", "k", "--storage", str(storage))
    assert res.returncode == 0, res.stderr[-3000:]
    assert _status(storage, "k")["trials"] == 6


def test_second_launch_of_a_running_study_is_refused(tmp_path: Path) -> None:
    from revstudy.errors import RevstudyError
    from revstudy.study.driver import study_lock

    with (
        study_lock(tmp_path / "s"),
        pytest.raises(RevstudyError, match="in use by pid"),
        study_lock(tmp_path / "s"),
    ):
        pass


def test_multi_objective_study_is_multi_objective_in_optuna(tmp_path: Path, data: Path) -> None:
    space = tmp_path / "mo.yaml"
    space.write_text(
        f"fixed: {TINY_FIXED}\nparams:\n"
        "  lr: {type: float, low: 1.0e-4, high: 3.0e-3, log: true}\n"
        "  epochs: {type: int, low: 2, high: 3}\n"
    )
    storage = tmp_path / "st"
    res = _cli(
        *_launch_args(space, data, storage, "mo"),
        "--num-samples",
        "4",
        "--no-baseline",
        "--objectives",
        "f1_macro_skill:max,bond_count_corr:max",
    )
    assert res.returncode == 0, res.stderr[-3000:]
    assert "bond_count_corr is known only at the end" in res.stderr  # ASHA default: to the end
    study = optuna.load_study(study_name="mo", storage=optuna_storage(storage / "mo"))
    assert [d.name for d in study.directions] == ["MAXIMIZE", "MAXIMIZE"]
    complete = [t for t in study.trials if t.state.name == "COMPLETE"]
    assert len(complete) == 4 and all(len(t.values) == 2 for t in complete)
    out = tmp_path / "x"
    res = _cli("export", "mo", "--storage", str(storage), "--top", "4", "--out", str(out))
    assert res.returncode == 0, res.stderr[-3000:]
    docs = [yaml.safe_load(f.read_text()) for f in sorted(out.glob("*.yaml"))]
    assert len(docs) == 4
    front0 = {d["provenance"]["trial_id"] for d in docs if d["provenance"]["pareto_front"] == 0}
    assert front0 == {t.user_attrs["ray_trial_id"] for t in study.best_trials}  # Pareto set


def test_asha_study_prunes_in_optuna_keeps_the_baseline_and_stays_lean(
    tmp_path: Path, data: Path
) -> None:
    """ASHA-stopped trials are PRUNED in Optuna with their last value; the paper baseline
    always runs to its end; the folder keeps no checkpoints of ended trials."""
    space = tmp_path / "a.yaml"
    space.write_text(
        f"fixed: {TINY_FIXED}\nparams:\n"
        "  lr: {type: float, low: 1.0e-6, high: 3.0e-3, log: true}\n"
        "  epochs: {type: int, low: 3, high: 4}\n"
    )
    storage = tmp_path / "st"
    res = _cli(
        *_launch_args(space, data, storage, "asha"),
        "--num-samples", "8", "--max-concurrent", "2", "--sampler", "random",
        "--objectives", "retrieval_mrr:max",  # per epoch too: ASHA ranks by it
    )  # fmt: skip
    assert res.returncode == 0, res.stderr[-3000:]
    study = optuna.load_study(study_name="asha", storage=optuna_storage(storage / "asha"))
    trials = pd.read_parquet(storage / "asha" / "trials.parquet")
    by_id = {t.user_attrs["ray_trial_id"]: t for t in study.trials}
    for row in trials.itertuples():
        t = by_id[row.trial_id]
        if row.state == "STOPPED_EARLY":
            assert t.state.name == "PRUNED" and t.value is not None
            assert max(t.intermediate_values) == row.epochs_done  # the value it stopped on
        else:
            assert row.state == "COMPLETED" and t.state.name == "COMPLETE"
    assert (trials.state == "STOPPED_EARLY").any()  # 8 trials, rungs at epoch 2: ASHA acts
    base = trials[trials.is_baseline]
    assert len(base) == 1 and base.state.iloc[0] == "COMPLETED" and base.epochs_done.iloc[0] == 5
    assert not list((storage / "asha" / "trials").glob("*/state.pt"))
    s = _status(storage, "asha")
    assert s["size_bytes"] < 20e6 and s["trials"] == 8
    done = trials[trials.state == "COMPLETED"]
    assert done["retrieval_mrr"].between(0, 1).all() and "retrieval_top10" in done
    for row in done.itertuples():  # Optuna's objective is the trial's final retrieval MRR
        assert by_id[row.trial_id].value == pytest.approx(row.retrieval_mrr)
    # a later driver run (nothing left to do) keeps every state: stopped stays stopped
    res = _cli("resume", "asha", "--storage", str(storage))
    assert res.returncode == 0, res.stderr[-3000:]
    again = pd.read_parquet(storage / "asha" / "trials.parquet").set_index("trial_id")
    assert again.loc[trials.trial_id, "state"].tolist() == trials.state.tolist()


def test_mo_asha_study_prunes_on_the_pareto_fronts(tmp_path: Path, data: Path) -> None:
    """Two objectives measured every epoch: MO-ASHA stops trials outside a rung's best
    fronts; they are PRUNED in Optuna like single-objective ones, the others COMPLETE with
    both values, the paper baseline runs to its end (rungs replayed on resume:
    tests/study/test_scheduling.py)."""
    space = tmp_path / "mo.yaml"
    space.write_text(
        f"fixed: {TINY_FIXED}\nparams:\n"
        "  lr: {type: float, low: 1.0e-7, high: 3.0e-3, log: true}\n"
        "  epochs: {type: int, low: 3, high: 4}\n"
    )
    storage = tmp_path / "st"
    res = _cli(
        *_launch_args(space, data, storage, "mo"),
        "--num-samples", "5", "--max-concurrent", "1", "--sampler", "random",
        "--objectives", "f1_macro_skill:max,val_loss:min",
    )  # fmt: skip
    assert res.returncode == 0, res.stderr[-3000:]
    assert "known only at the end" not in res.stderr
    study = optuna.load_study(study_name="mo", storage=optuna_storage(storage / "mo"))
    trials = pd.read_parquet(storage / "mo" / "trials.parquet")
    by_id = {t.user_attrs["ray_trial_id"]: t for t in study.trials}
    for row in trials.itertuples():
        t = by_id[row.trial_id]
        if row.state == "STOPPED_EARLY":
            assert t.state.name == "PRUNED" and row.epochs_done == 2  # the rung at epoch 2
        else:
            assert row.state == "COMPLETED" and t.state.name == "COMPLETE" and len(t.values) == 2
    assert (trials.state == "STOPPED_EARLY").any(), trials[["state", "epochs_done"]]
    base = trials[trials.is_baseline]
    assert len(base) == 1 and base.state.iloc[0] == "COMPLETED"


def test_a_killed_driver_leaves_no_ray_process_behind(tmp_path: Path, data: Path) -> None:
    """An embedded study's Ray listens on loopback only; SIGKILL of the driver alone (not
    its group): the watchdog stops every process of its embedded Ray instance (agents
    included, which Ray itself can leave running)."""
    import psutil

    space = tmp_path / "long.yaml"
    space.write_text(
        f"fixed: {TINY_FIXED}\nparams:\n  epochs: {{type: int, low: 200, high: 300}}\n"
    )
    storage = tmp_path / "st"
    proc = subprocess.Popen(
        [sys.executable, "-m", "revstudy.cli",
         *_launch_args(space, data, storage, "long"), "--num-samples", "2", "--no-baseline"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.time() + 240
    while time.time() < deadline and not list((storage / "long" / "trials").glob("*/state.pt")):
        time.sleep(0.5)
    assert list((storage / "long" / "trials").glob("*/state.pt")), "no trial started"
    ray_procs = [
        p for p in psutil.Process(proc.pid).children(recursive=True) if "python" not in p.name()
        or "ray" in " ".join(p.cmdline())
    ]  # fmt: skip
    assert ray_procs
    listening = set()
    for p in ray_procs:
        with contextlib.suppress(psutil.Error):
            listening |= {c.laddr.ip for c in p.net_connections("inet") if c.status == "LISTEN"}
    assert listening and listening <= {"127.0.0.1", "::ffff:127.0.0.1", "::1"}, listening
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()

    def alive(p: psutil.Process) -> bool:
        try:
            return p.is_running() and p.status() != psutil.STATUS_ZOMBIE
        except psutil.Error:
            return False

    deadline = time.time() + 30
    while time.time() < deadline and any(alive(p) for p in ray_procs):
        time.sleep(0.5)
    left = [(p.pid, p.name()) for p in ray_procs if alive(p)]
    assert not left, f"still running after the driver was killed: {left}"
