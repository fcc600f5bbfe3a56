"""Experiment trackers (`revstudy launch --log mlflow|tensorboard`, issue #34): every trial
becomes a tracked run with its parameters, per-epoch metrics and final figures.

The driver logs, not the trials: it already sees every trial start, report and end (Ray's
callback, `revstudy.study.callbacks`), so a tracker needs no network from the workers and a
pack's members (issue #31) are logged as the separate trials they are.

- MLflow: one experiment per study, one parent run for the study, a nested run per trial
  (tag `mlflow.parentRunId`, MLflow's nesting convention), named by its folder id. The store
  is `MLFLOW_TRACKING_URI` when set, else `sqlite:///STUDY/mlflow.db`: MLflow 3 refuses its
  old file store by default and recommends SQLite for a local store, which needs no server.
- TensorBoard: event files under `STUDY/tensorboard/<trial id>/` written with tensorboardX
  (installed with Ray Tune), scalars at step = epoch, and the trial's parameters with its
  final objectives for TensorBoard's HParams view.

A resumed trial continues its run: the run ids and each trial's last logged epoch are kept
in `STUDY/tracking.json` (checked on read like every file of a study folder; a damaged one
starts new runs with a warning), so a re-reported epoch is not logged twice. A tracker that
fails (a store that went away) warns once and stops logging; the study goes on.
"""

from __future__ import annotations

import importlib.util
import logging
import math
import os
import re
import sys
import time
from pathlib import Path
from typing import Any

from revstudy.errors import RevstudyError
from revstudy.files import read_json, write_json_atomic
from revstudy.studyfolder import (
    FINAL_KEY,
    MLFLOW_DB,
    PER_EPOCH,
    TENSORBOARD_DIR,
    TRACKING_FILE,
    TRIAL_KEY,
)
from revstudy.studyinfo import StudyInfo

__all__ = ["EPOCH_KEYS", "TRACKERS", "StudyTrackers", "check_trackers"]

# tracker -> (module that must import, the extra that installs it)
TRACKERS = {"mlflow": ("mlflow", "mlflow"), "tensorboard": ("tensorboardX", "tensorboard")}
# what a trial reports every epoch (the rest of its figures exist only at the end)
EPOCH_KEYS = tuple(sorted({*PER_EPOCH.values(), "train_loss"}))
# Ray's bookkeeping in every result, not the trial's figures
_RAY_KEYS = frozenset(
    {
        "epoch",
        "timestamp",
        "training_iteration",
        "time_this_iter_s",
        "time_total_s",
        "time_since_restore",
        "iterations_since_restore",
        "pid",
        "done",
        FINAL_KEY,
    }
)
_RUN_ID = re.compile(r"[0-9a-f]{32}")
_MLFLOW_STATUS = {"COMPLETED": "FINISHED", "STOPPED_EARLY": "FINISHED", "DIVERGED": "FINISHED"}


def check_trackers(names: list[str] | tuple[str, ...]) -> None:
    """`--log` values: known trackers whose package is installed; else one line naming the
    extra that installs it."""
    for name in names:
        if name not in TRACKERS:
            raise RevstudyError(f"--log {name}: choose from {', '.join(TRACKERS)}")
        module, extra = TRACKERS[name]
        if importlib.util.find_spec(module) is None:
            raise RevstudyError(
                f"--log {name}: {module} is not installed; pip install 'revstudy[{extra}]'"
            )
    if len(set(names)) != len(names):
        raise RevstudyError("--log: a tracker is named twice")


def numbers(result: dict[str, Any], keys: tuple[str, ...] | None = None) -> dict[str, float]:
    """The finite numeric figures of a result (only `keys` when given), Ray's bookkeeping,
    revstudy's and config entries left out."""
    out = {}
    for k, v in result.items():
        if keys is not None and k not in keys:
            continue
        if k in _RAY_KEYS or k == TRIAL_KEY or "/" in k or k.startswith("config"):
            continue
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
            continue
        out[k] = float(v)
    return out


def flat_params(config: dict[str, Any]) -> dict[str, str | float | int | bool]:
    """A trial config as tracker parameters: scalars kept, lists and others as text."""
    out: dict[str, str | float | int | bool] = {}
    for k, v in sorted(config.items()):
        out[k] = v if isinstance(v, str | float | int | bool) else str(v)
    return out


class StudyTrackers:
    """The trackers a study logs to, driven by `StudyCallback`: `started`, `epoch`,
    `ended` per trial, `close` at the end of a driver run."""

    def __init__(self, study: Path, info: StudyInfo, names: tuple[str, ...]):
        self.study = study
        self.info = info
        self.state = self._read_state()
        self.backends: list[Any] = []
        for name in names:
            backend = _MLflow(self) if name == "mlflow" else _TensorBoard(self)
            self.backends.append(backend)

    # -- the record of what was logged ----------------------------------------------------
    def _read_state(self) -> dict[str, Any]:
        path = self.study / TRACKING_FILE
        doc = read_json(path)
        if doc is None:
            if path.exists():
                _warn(f"{path}: unreadable; trials start new tracker runs")
            return {"mlflow": {}, "last_epoch": {}}
        last, ml = doc.get("last_epoch"), doc.get("mlflow")
        if not isinstance(last, dict) or not isinstance(ml, dict) or not _runs_ok(ml):
            _warn(f"{path}: damaged; trials start new tracker runs")
            return {"mlflow": {}, "last_epoch": {}}
        epochs = {
            str(k): v
            for k, v in last.items()
            if type(v) is int and v >= 0  # not a bool
        }
        return {"mlflow": ml, "last_epoch": epochs}

    def save(self) -> None:
        write_json_atomic(self.study / TRACKING_FILE, self.state)

    # -- events ---------------------------------------------------------------------------
    def started(self, rid: str, params: dict[str, Any], config: dict[str, Any], tags: dict) -> None:
        self._each("started", rid, params, config, tags)

    def epoch(self, rid: str, result: dict[str, Any]) -> None:
        """Log a per-epoch report once (a resumed trial re-reports its last epoch)."""
        epoch = result.get("epoch")
        if not isinstance(epoch, int) or epoch <= self.state["last_epoch"].get(rid, 0):
            return
        metrics = numbers(result, EPOCH_KEYS)
        if metrics:
            self._each("epoch", rid, epoch, metrics)
        self.state["last_epoch"][rid] = epoch
        self.save()

    def ended(self, rid: str, state: str, result: dict[str, Any]) -> None:
        """The trial's last epoch (if not logged yet), its final figures and its state."""
        self.epoch(rid, result)
        step = result.get("epoch") if isinstance(result.get("epoch"), int) else 0
        self._each("ended", rid, state, int(step or 0), numbers(result))

    def close(self) -> None:
        self._each("close")
        self.save()

    def _each(self, event: str, *args: Any) -> None:
        for backend in list(self.backends):
            try:
                getattr(backend, event)(*args)
            except Exception as e:  # a tracker must never stop a study
                first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
                _warn(f"--log {backend.name}: {first}; the study goes on without it")
                self.backends.remove(backend)


class _MLflow:
    """One MLflow experiment per study, a parent run, a nested run per trial."""

    name = "mlflow"

    def __init__(self, trackers: StudyTrackers):
        from mlflow import MlflowClient

        for name in ("mlflow", "alembic"):  # table creation notes: not the study's progress
            logging.getLogger(name).setLevel(logging.WARNING)
        self.trackers = trackers
        study, info = trackers.study, trackers.info
        self.uri = os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{study / MLFLOW_DB}"
        self.client = MlflowClient(tracking_uri=self.uri)
        kept = trackers.state["mlflow"]
        if kept.get("tracking_uri") != self.uri:  # another store: its runs are elsewhere
            kept = trackers.state["mlflow"] = {"tracking_uri": self.uri, "runs": {}}
        kept.setdefault("runs", {})
        experiment = self.client.get_experiment_by_name(info.name)
        if experiment is None:
            self.experiment_id = self.client.create_experiment(
                info.name, tags={"revstudy.study_id": info.study_id}
            )
        else:
            self.experiment_id = experiment.experiment_id
        parent = kept.get("parent")
        if not self._exists(parent):
            run = self.client.create_run(
                self.experiment_id,
                run_name=f"study {info.name}",
                tags={"revstudy.study": info.name, "revstudy.study_id": info.study_id},
            )
            parent = kept["parent"] = run.info.run_id
            settings = {
                "space": str(info.space.get("name", "")),
                "sampler": info.sampler,
                "scheduler": info.scheduler,
                "objectives": ",".join(f"{o.metric}:{o.mode}" for o in info.objectives),
                "num_samples": info.num_samples,
                "repeats": info.repeats,
                "seed": info.seed,
                "data_sha256": info.data_file.sha256 if info.data else "",
            }
            self._params(parent, settings)
        else:
            self.client.update_run(parent, status="RUNNING")
        self.parent = str(parent)
        trackers.save()

    def _exists(self, run_id: Any) -> bool:
        if not isinstance(run_id, str) or not _RUN_ID.fullmatch(run_id):
            return False
        try:
            run = self.client.get_run(run_id)
        except Exception:  # deleted, or another store's id
            return False
        return bool(run.info.experiment_id == self.experiment_id)

    def _params(self, run_id: str, params: dict[str, Any]) -> None:
        from mlflow.entities import Param

        items = [Param(k, str(v)[:6000]) for k, v in flat_params(params).items()]
        for i in range(0, len(items), 100):  # MLflow's batch limit
            self.client.log_batch(run_id, params=items[i : i + 100])

    def _metrics(self, run_id: str, metrics: dict[str, float], step: int) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        items = [Metric(k, v, now, step) for k, v in metrics.items()]
        for i in range(0, len(items), 1000):
            self.client.log_batch(run_id, metrics=items[i : i + 1000])

    def run_of(self, rid: str) -> str | None:
        return self.trackers.state["mlflow"]["runs"].get(rid)

    def started(self, rid: str, params: dict, config: dict, tags: dict) -> None:
        run_id = self.run_of(rid)
        if self._exists(run_id):
            self.client.update_run(str(run_id), status="RUNNING")  # resumed: same run
            return
        run = self.client.create_run(
            self.experiment_id,
            run_name=rid,
            tags={
                "mlflow.parentRunId": self.parent,
                "revstudy.trial_id": rid,
                **{f"revstudy.{k}": str(v) for k, v in tags.items()},
            },
        )
        self.trackers.state["mlflow"]["runs"][rid] = run.info.run_id
        self.trackers.state["last_epoch"].pop(rid, None)  # a new run has nothing logged yet
        self.trackers.save()
        self._params(run.info.run_id, config or params)

    def epoch(self, rid: str, epoch: int, metrics: dict[str, float]) -> None:
        run_id = self.run_of(rid)
        if run_id:
            self._metrics(run_id, metrics, epoch)

    def ended(self, rid: str, state: str, step: int, metrics: dict[str, float]) -> None:
        run_id = self.run_of(rid)
        if not run_id:
            return
        self._metrics(run_id, {k: v for k, v in metrics.items() if k not in EPOCH_KEYS}, step)
        self.client.set_tag(run_id, "revstudy.state", state)
        self.client.set_terminated(run_id, _MLFLOW_STATUS.get(state, "FAILED"))

    def close(self) -> None:
        runs = self.trackers.state["mlflow"]["runs"]
        for run_id in runs.values():  # cut off by this driver run's end: resume continues
            run = self.client.get_run(run_id)
            if run.info.status == "RUNNING":
                self.client.set_terminated(run_id, "KILLED")
        self.client.set_terminated(self.parent, "FINISHED")


class _TensorBoard:
    """tensorboardX event files, one folder per trial."""

    name = "tensorboard"

    def __init__(self, trackers: StudyTrackers):
        self.trackers = trackers
        self.root = trackers.study / TENSORBOARD_DIR
        self.writers: dict[str, Any] = {}
        self.params: dict[str, dict[str, Any]] = {}

    def _writer(self, rid: str) -> Any:
        from tensorboardX import SummaryWriter

        if rid not in self.writers:
            # its own event file per writer: tensorboardX names files by the second, and a
            # second writer in the same second would truncate the first one's file; the
            # nanoseconds keep the files in the order they were written (readers sort names)
            suffix = f".{time.time_ns()}.{os.getpid()}"
            self.writers[rid] = SummaryWriter(
                logdir=str(self.root / rid), flush_secs=10, filename_suffix=suffix
            )
        return self.writers[rid]

    def started(self, rid: str, params: dict, config: dict, tags: dict) -> None:
        self.params[rid] = flat_params(params)
        w = self._writer(rid)
        if rid not in self.trackers.state["last_epoch"]:  # not a resumed trial
            lines = "\n".join(f"    {k}: {v}" for k, v in flat_params(config or params).items())
            w.add_text("config", lines, 0)

    def epoch(self, rid: str, epoch: int, metrics: dict[str, float]) -> None:
        w = self._writer(rid)
        for k, v in metrics.items():
            w.add_scalar(k, v, epoch)
        w.flush()

    def ended(self, rid: str, state: str, step: int, metrics: dict[str, float]) -> None:
        w = self._writer(rid)
        finals = {k: v for k, v in metrics.items() if k not in EPOCH_KEYS}
        for k, v in finals.items():
            w.add_scalar(f"final/{k}", v, step)
        objectives = {
            f"hparam/{o.metric}": finals[o.metric]
            for o in self.trackers.info.objectives
            if o.metric in finals
        }
        if objectives:
            w.add_hparams(self.params.get(rid, {}), objectives, name="hparams")
        w.close()
        self.writers.pop(rid, None)

    def close(self) -> None:
        for w in self.writers.values():
            w.close()
        self.writers.clear()


def _runs_ok(ml: dict[str, Any]) -> bool:
    """tracking.json's MLflow part as written: a URI and run ids of MLflow's form."""
    runs = ml.get("runs", {})
    ids = [ml.get("parent", "0" * 32), *(runs.values() if isinstance(runs, dict) else [None])]
    return isinstance(ml.get("tracking_uri", ""), str) and all(
        isinstance(i, str) and _RUN_ID.fullmatch(i) for i in ids
    )


def _warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)
