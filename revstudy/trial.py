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

import math
import os
import time
import traceback
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from revstudy.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from revstudy.data import Dataset
from revstudy.metrics import Evaluation
from revstudy.records import append_epochs, read_json, trial_dir, write_json_atomic
from revstudy.runs import aggregate
from revstudy.spaces import SearchSpace
from revstudy.study_keys import FINAL_KEY, PER_EPOCH, STATE_FILE, TRIAL_KEY, public_params
from revstudy.train import SplitTensors, Trainer

Report = Callable[[dict[str, Any]], None]


def run_trial(
    params: dict[str, Any],
    *,
    space: SearchSpace,
    dataset: Dataset,
    study: str,
    repeats: int,
    seed: int,
    objectives: list[str],
    threads: int = 1,
    driver: dict[str, Any] | None = None,
) -> None:
    """The Ray Tune function trainable (bound with `tune.with_parameters`).

    A trial continued by `revstudy resume` carries its original id in `params[TRIAL_KEY]`,
    so it finds its own folder and checkpoint under Ray's new trial id.
    """
    from ray import tune

    trial_id = str(params.get(TRIAL_KEY) or tune.get_context().get_trial_id() or "local")
    train_trial(
        public_params(params),
        space=space,
        dataset=dataset,
        study=Path(study),
        trial_id=trial_id,
        repeats=repeats,
        seed=seed,
        objectives=objectives,
        threads=threads,
        report=tune.report,
        driver=driver,
    )


def train_trial(
    params: dict[str, Any],
    *,
    space: SearchSpace,
    dataset: Dataset,
    study: Path,
    trial_id: str,
    repeats: int,
    seed: int,
    objectives: list[str],
    report: Report,
    threads: int = 1,
    driver: dict[str, Any] | None = None,
) -> None:
    """Train (or continue) one trial; a failure is written to failure.json, then re-raised.

    `driver` (`{"pid", "host"}` of the study driver) lets a trial notice that its driver was
    killed: Ray's worker processes can outlive a SIGKILLed driver for a while, and such a
    worker must not keep writing into a folder that `resume` hands to a new run."""
    tdir = trial_dir(study, trial_id)
    (tdir / "failure.json").unlink(missing_ok=True)  # a retry starts without the old verdict
    guard = _Guard(tdir, driver)
    try:
        _train(
            params,
            space,
            dataset,
            study,
            trial_id,
            repeats,
            seed,
            objectives,
            threads,
            _guarded(report, guard),
            guard,
        )
    except TrialAbandoned:
        raise  # not a failure of the configuration: nothing recorded
    except Exception as e:  # recorded, then re-raised so Ray and Optuna mark the trial failed
        reason = f"{type(e).__name__}: {e}".splitlines()[0][:500]
        write_json_atomic(
            tdir / "failure.json", {"reason": reason, "traceback": traceback.format_exc(limit=8)}
        )
        raise


def _train(
    params: dict[str, Any],
    space: SearchSpace,
    dataset: Dataset,
    study: Path,
    trial_id: str,
    repeats: int,
    seed: int,
    objectives: list[str],
    threads: int,
    report: Report,
    guard: _Guard,
) -> None:
    started = time.time()
    if threads > 0:
        torch.set_num_threads(threads)
    tdir = trial_dir(study, trial_id)
    done = read_json(tdir / "result.json")
    if done is not None and isinstance(done.get("report"), dict):
        report(done["report"])  # finished before the driver died: report again, train nothing
        return
    config = space.to_config(params).replace(seed=seed)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    trainers = [
        Trainer(config, SplitTensors.build(dataset, config, r, device), device, seed=seed + r)
        for r in range(repeats)
    ]
    # where this trial ran and the epochs it resumed after: shows retries on lost workers
    history: dict[str, list[Any]] = {"nodes": [], "resumed_after_epoch": []}
    ckpt = tdir / STATE_FILE
    if ckpt.is_file():
        state = load_checkpoint(ckpt)
        saved = state.get("trainers")
        if not isinstance(saved, list) or len(saved) != repeats:
            raise CheckpointError(f"{ckpt}: not a checkpoint of this trial's {repeats} repeat(s)")
        for t, s in zip(trainers, saved, strict=True):
            try:
                t.load_state(s)
            except CheckpointError as e:
                raise CheckpointError(f"{ckpt}: {e}") from None
        started -= float(state.get("elapsed", 0.0))
        history = state.get("history", history)
        history["resumed_after_epoch"].append(trainers[0].epoch)
    history["nodes"].append(_node_id())
    for epoch in range(trainers[0].epoch + 1, config.epochs + 1):
        recs = [t.train_epoch() for t in trainers]
        guard.check()  # before anything of this epoch is written
        node = history["nodes"][-1]
        rows = [{"repeat": r, "node": node, **vars(rec)} for r, rec in enumerate(recs)]
        append_epochs(study, trial_id, rows)
        metrics: dict[str, Any] = {
            "epoch": epoch,
            "val_f1_macro": float(np.mean([r.val_f1_macro for r in recs])),
            "val_f1_skill": float(np.mean([r.val_f1_skill for r in recs])),
            "val_retrieval_mrr": float(np.mean([r.val_retrieval_mrr for r in recs])),
            "val_loss": float(np.mean([r.val_loss for r in recs])),
            "train_loss": float(np.mean([r.train_loss for r in recs])),
        }
        for key in objectives:  # every report names every objective (NaN until known)
            metrics[key] = metrics[PER_EPOCH[key]] if key in PER_EPOCH else math.nan
        if epoch == config.epochs:
            evals = [t.evaluate("val") for t in trainers]
            metrics.update(_flatten(evals))
            metrics[FINAL_KEY] = 1  # tells the searcher this trial ran to the end
            guard.check()  # the evaluation took a while: still ours?
            _write_result(
                study,
                trial_id,
                evals,
                trainers[0].device,
                config.to_dict(),
                started,
                history,
                metrics,
            )
        else:
            save_checkpoint(
                ckpt,
                {
                    "trainers": [t.state() for t in trainers],
                    "elapsed": time.time() - started,
                    "history": history,
                },
            )
        report(metrics)


class TrialAbandoned(Exception):
    """This trial's driver is gone or another run took its folder over: stop, write nothing."""


class _Guard:
    """Ownership of a trial folder: a token in `owner.json`, and the driver's liveness."""

    def __init__(self, tdir: Path, driver: dict[str, Any] | None):
        self.path = tdir / "owner.json"
        self.token = uuid.uuid4().hex
        self.driver = driver
        write_json_atomic(self.path, {"token": self.token, "pid": os.getpid(), "host": _host()})

    def check(self) -> None:
        owner = read_json(self.path) or {}
        if owner.get("token") != self.token:
            raise TrialAbandoned(f"{self.path.parent}: taken over by another run; stopping")
        d = self.driver
        if d and d.get("host") == _host() and not _pid_alive(int(d.get("pid", 0))):
            raise TrialAbandoned(f"driver pid {d.get('pid')} is gone; stopping this trial")


def _guarded(report: Report, guard: _Guard) -> Report:
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
    return True


def _node_id() -> str:
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


def _write_result(
    study: Path,
    trial_id: str,
    evals: list[Evaluation],
    device: torch.device,
    config: dict[str, Any],
    started: float,
    history: dict[str, list[Any]],
    report: dict[str, Any],
) -> None:
    """arrays.npz, then result.json (the record that the trial finished), atomically."""
    arrays = dict(evals[0].arrays)
    for key in ("f1_macro", "bond_count_corr", "aromatic_corr", "inv_error_max"):
        arrays[f"repeat_{key}"] = np.array([e.metrics[key] for e in evals])
    tdir = trial_dir(study, trial_id)
    tdir.mkdir(parents=True, exist_ok=True)
    tmp = tdir / ".arrays.tmp.npz"
    np.savez_compressed(tmp, **arrays)  # type: ignore[arg-type]
    tmp.replace(tdir / "arrays.npz")
    write_json_atomic(
        tdir / "result.json",
        {
            "trial_id": trial_id,
            "config": config,
            "metrics": {k: v for k, v in report.items() if k != FINAL_KEY},
            "repeats": [e.metrics for e in evals],
            "wall_seconds": time.time() - started,
            "device": str(device),
            # TF32 trades inversion accuracy for speed on CUDA; say so beside the figures
            "tf32": bool(config.get("allow_tf32")) and device.type == "cuda",
            "history": history,
            "report": report,
        },
    )
