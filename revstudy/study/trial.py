"""One study trial: train a config on R seeded splits in lockstep, report every epoch.

Repeats advance together, so each epoch's report is the mean over repeats and ASHA compares
trials on the same footing. Every epoch the trial saves all repeats' model, optimiser and RNG
state to its own `trials/<id>/state.pt` (atomically, loaded with `weights_only=True`), not to
Ray: a trial restarted by Ray (lost node, `max_failures`) or by `revstudy resume` continues
from that file, and a trial whose `result.json` exists re-reports it instead of training
again. The file is removed once the trial has finished (see `StudyCallback`).

`train_trial` takes the `report` function as an argument, so the whole loop, checkpoints and
resume included, runs and is tested without Ray.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
import traceback
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch

from revstudy.errors import RevstudyError
from revstudy.files import read_json, replaced_atomically, write_json_atomic
from revstudy.study.devices import (
    Device,
    cap_memory,
    check_assigned,
    oom_message,
    release_memory,
    trial_device,
)
from revstudy.study.records import append_epochs
from revstudy.study.trial_context import TrialContext
from revstudy.studyfolder import (
    ARRAYS_FILE,
    FAILURE_FILE,
    FINAL_KEY,
    PER_EPOCH,
    REPEAT_ARRAYS,
    RESULT_FILE,
    STATE_FILE,
    TRIAL_KEY,
    public_params,
    trial_dir,
)
from revstudy.training.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from revstudy.training.config import param_count
from revstudy.training.fused import EnsembleStepError, Repeats, Strategy
from revstudy.training.metrics import Evaluation
from revstudy.training.runs import aggregate
from revstudy.training.splits import SplitTensors
from revstudy.training.trainer import Trainer

Report = Callable[[dict[str, Any]], None]


def run_trial(params: dict[str, Any], context: TrialContext) -> None:
    """The Ray Tune function trainable (bound with `tune.with_parameters`).

    A trial continued by `revstudy resume` carries its original id in `params[TRIAL_KEY]`,
    so it finds its own folder and checkpoint under Ray's new trial id. It trains on the
    device it reserved (`revstudy.study.devices`), once Ray's assignment agrees.
    """
    import ray
    from ray import tune

    device = trial_device(context.gpu_share)
    check_assigned(device, ray.get_gpu_ids(), torch.cuda.is_available())
    trial_id = str(params.get(TRIAL_KEY) or tune.get_context().get_trial_id() or "local")
    train_trial(public_params(params), context, trial_id, report=tune.report, device=device)


def train_trial(
    params: dict[str, Any],
    context: TrialContext,
    trial_id: str,
    *,
    report: Report,
    device: Device = "cpu",
) -> None:
    """Train (or continue) one trial (its repeats together, `revstudy.training.fused.Repeats`,
    unless `context.fuse` is False) on `device`, capped at the context's share of a GPU's
    memory; a failure is written to failure.json, then re-raised.

    `context.driver` lets a trial notice that its driver was killed: Ray's worker processes
    can outlive a SIGKILLed driver for a while, and such a worker must not keep writing into
    a folder that `resume` hands to a new run."""
    c = context
    tdir = trial_dir(c.study, trial_id)
    guard = Guard(tdir, c.driver)  # first: a worker whose driver is gone touches nothing
    (tdir / FAILURE_FILE).unlink(missing_ok=True)  # a retry starts without the old verdict
    report = guarded(report, guard)
    with _failure_recorded(tdir), device_memory(device, c.gpu_share, c.repeats):
        started = time.time()
        if c.threads > 0:
            torch.set_num_threads(c.threads)
        done = read_json(tdir / RESULT_FILE)
        if done is not None and isinstance(done.get("report"), dict):
            report(done["report"])  # finished before the driver died: report again, train nothing
            return
        config = c.space.to_config(params).replace(seed=c.seed)
        trainers = [
            Trainer(
                config,
                SplitTensors.build(c.dataset, config, r, device),
                device,
                seed=c.seed + r,
            )
            for r in range(c.repeats)
        ]
        for t in trainers:
            t.validate_epochs = frozenset(c.validate_epochs)
        ckpt = tdir / STATE_FILE
        elapsed, history = restore(ckpt, trainers)
        # after the restore: it stacks the restored state
        group = Repeats(trainers, fuse=c.fuse, strategy=cast(Strategy | None, c.strategy))
        started -= elapsed
        history["nodes"].append(node_id())
        for epoch in range(trainers[0].epoch + 1, config.epochs + 1):
            recs = group.train_epoch()
            guard.check()  # before anything of this epoch is written
            node = history["nodes"][-1]
            rows = [{"repeat": r, "node": node, **vars(rec)} for r, rec in enumerate(recs)]
            append_epochs(c.study, trial_id, rows)
            metrics = epoch_report(epoch, recs, list(c.objectives))
            if epoch == config.epochs:
                run = {"started": started, "history": history}
                write_final(tdir, group, trainers, metrics, guard, run)
            else:
                save_checkpoint(
                    ckpt,
                    {
                        "trainers": group.states(),
                        "elapsed": time.time() - started,
                        "history": history,
                    },
                )
            report(metrics)


def write_final(
    tdir: Path,
    group: Repeats,
    trainers: list[Trainer],
    metrics: dict[str, Any],
    guard: Guard,
    run: dict[str, Any],
) -> None:
    """The last epoch of `trainers` (the trial's repeats, in `group`): every repeat's full
    evaluation into `metrics` (the final report) and the trial's result.json + arrays.npz;
    `run` holds its start time and node history (and its pack, if it trained in one)."""
    evals = group.map(lambda t: t.evaluate("val"), trainers)  # side by side where they train so
    metrics.update(_flatten(evals))
    metrics["params_millions"] = param_count(trainers[0].config) / 1e6  # constraints bound it
    metrics[FINAL_KEY] = 1  # tells the searcher this trial ran to the end
    guard.check()  # the evaluation took a while: still ours?
    config = trainers[0].config.to_dict()
    result = _result_doc(tdir.name, evals, trainers[0].device, config)
    result.update(wall_seconds=time.time() - run["started"], history=run["history"], report=metrics)
    if run.get("pack"):  # trained as one of a pack's members (revstudy.study.pack_trial)
        result["pack"] = run["pack"]
    if group.fallback:  # the vmapped ensemble could not run on this device
        result["repeat_fallback"] = group.fallback
    _write_result(tdir, evals, result)


def restore(ckpt: Path, trainers: list[Trainer]) -> tuple[float, dict[str, list[Any]]]:
    """Load the trial's checkpoint into `trainers` if one exists: (seconds already spent,
    history of the nodes it ran on and the epochs it resumed after)."""
    history: dict[str, list[Any]] = {"nodes": [], "resumed_after_epoch": []}
    if not ckpt.is_file():
        return 0.0, history
    state = load_checkpoint(ckpt)
    saved = state.get("trainers")
    if not isinstance(saved, list) or len(saved) != len(trainers):
        raise CheckpointError(f"{ckpt}: not a checkpoint of this trial's {len(trainers)} repeat(s)")
    for t, s in zip(trainers, saved, strict=True):
        try:
            t.load_state(s)
        except CheckpointError as e:
            raise CheckpointError(f"{ckpt}: {e}") from None
    history = state.get("history", history)
    history["resumed_after_epoch"].append(trainers[0].epoch)
    for r, t in enumerate(trainers):  # continued on another device type: a new random stream
        if t.generator_reseeded is not None:
            history.setdefault("generator_reseeded", []).append(
                {"repeat": r, **t.generator_reseeded}
            )
    return float(state.get("elapsed", 0.0)), history


EPOCH_REPORT_KEYS = (
    "val_f1_macro",
    "val_f1_skill",
    "val_retrieval_mrr",
    "val_f1_macro_relabelled",
    "val_f1_skill_relabelled",
    "val_retrieval_mrr_relabelled",
    "val_loss",
    "train_loss",
)


def epoch_report(epoch: int, recs: list[Any], objectives: list[str]) -> dict[str, Any]:
    """The per-epoch report: means over repeats, and every objective (NaN until known)."""
    metrics: dict[str, Any] = {"epoch": epoch}
    for key in EPOCH_REPORT_KEYS:
        metrics[key] = float(np.mean([getattr(r, key) for r in recs]))
    for key in objectives:
        metrics[key] = metrics[PER_EPOCH[key]] if key in PER_EPOCH else math.nan
    return metrics


@contextlib.contextmanager
def device_memory(device: Device, share: float, repeats: int) -> Iterator[None]:
    """The trial's GPU memory: capped at its share while it runs, an out-of-memory error
    turned into one line naming the share and the fix, the cache handed back at the end."""
    cap = cap_memory(device, share)
    try:
        yield
    except (torch.OutOfMemoryError, EnsembleStepError) as e:
        if isinstance(e, EnsembleStepError) and not isinstance(e.cause, torch.OutOfMemoryError):
            raise
        raise RevstudyError(oom_message(share, cap, repeats)) from e
    finally:
        release_memory(device)


@contextlib.contextmanager
def _failure_recorded(tdir: Path) -> Iterator[None]:
    """A failure is written to failure.json, then re-raised (Ray and Optuna mark it failed);
    an abandoned trial (driver gone, folder taken over) records nothing."""
    try:
        yield
    except TrialAbandoned:
        raise
    except Exception as e:
        record_failure(tdir, e)
        raise


def record_failure(tdir: Path, e: BaseException, **extra: Any) -> str:
    """Write `e` as the trial's failure.json (with `extra` keys); returns its one-line
    reason."""
    reason = f"{type(e).__name__}: {e}".splitlines()[0][:500]
    tb = "".join(traceback.format_exception(e, limit=8))
    write_json_atomic(tdir / FAILURE_FILE, {"reason": reason, "traceback": tb, **extra})
    return reason


class TrialAbandoned(Exception):
    """This trial's driver is gone or another run took its folder over: stop, write nothing."""


class Guard:
    """Ownership of a trial folder: a token in `owner.json`, and the driver's liveness."""

    def __init__(self, tdir: Path, driver: dict[str, Any] | None):
        self.path = tdir / "owner.json"
        self.token = uuid.uuid4().hex
        self.driver = driver
        # a worker that starts only after its driver was killed (it was still importing
        # torch) must not take the folder over from the run that resumed the study
        self._check_driver()
        write_json_atomic(self.path, {"token": self.token, "pid": os.getpid(), "host": _host()})

    def check(self) -> None:
        owner = read_json(self.path) or {}
        if owner.get("token") != self.token:
            raise TrialAbandoned(f"{self.path.parent}: taken over by another run; stopping")
        self._check_driver()

    def _check_driver(self) -> None:
        d = self.driver
        if d and d.get("host") == _host() and not _pid_alive(int(d.get("pid", 0))):
            raise TrialAbandoned(f"driver pid {d.get('pid')} is gone; stopping this trial")


def guarded(report: Report, guard: Guard) -> Report:
    def checked(metrics: dict[str, Any]) -> None:
        guard.check()
        report(metrics)

    return checked


def _host() -> str:
    return os.uname().nodename


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return True  # unknown: assume alive
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a killed driver not yet reaped by its parent is a zombie: dead all the same
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def node_id() -> str:
    """The Ray node running this trial ("local" outside Ray)."""
    import sys

    ray = sys.modules.get("ray")  # only asked when Ray is running: asking would start it
    if ray is None or not ray.is_initialized():
        return "local"
    try:
        return str(ray.get_runtime_context().get_node_id())
    except Exception:  # not inside a Ray worker
        return "local"


def _flatten(evals: list[Evaluation]) -> dict[str, float]:
    """Every repeat's full evaluation as `{key: mean over repeats, key_std: std}`."""
    agg = aggregate([e.metrics for e in evals])
    flat: dict[str, float] = {}
    for key, a in agg.items():
        flat[key] = a["mean"]
        flat[f"{key}_std"] = a["std"]
    return flat


def _result_doc(
    trial_id: str, evals: list[Evaluation], device: torch.device, config: dict[str, Any]
) -> dict[str, Any]:
    return {
        "trial_id": trial_id,
        "config": config,
        "repeats": [e.metrics for e in evals],
        "device": str(device),
        # TF32 trades inversion accuracy for speed on CUDA; say so beside the figures
        "tf32": bool(config.get("allow_tf32")) and device.type == "cuda",
        "deterministic": bool(config.get("deterministic")),
    }


def _write_result(tdir: Path, evals: list[Evaluation], result: dict[str, Any]) -> None:
    """arrays.npz, then result.json (the record that the trial finished), atomically."""
    arrays = dict(evals[0].arrays)
    for key in REPEAT_ARRAYS:
        arrays[f"repeat_{key}"] = np.array([e.metrics.get(key, math.nan) for e in evals])
    tdir.mkdir(parents=True, exist_ok=True)
    # a file object: numpy adds no ".npz" to the temp file's name
    with replaced_atomically(tdir / ARRAYS_FILE) as tmp, tmp.open("wb") as f:
        np.savez_compressed(f, **arrays)  # type: ignore[arg-type]
    report = result["report"]
    result["metrics"] = {k: v for k, v in report.items() if k != FINAL_KEY}
    write_json_atomic(tdir / RESULT_FILE, result)
