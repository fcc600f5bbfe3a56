"""One Ray Tune trial: train a config on R seeded splits in lockstep, report every epoch.

Repeats advance together, so each epoch's report is the mean over repeats and ASHA compares
trials on the same footing. Every epoch checkpoints all repeats' model, optimiser and RNG
state; a resumed trial continues mid-training, and a trial that had already finished
re-reports its final result instead of training again.
"""

from __future__ import annotations

import math
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

import numpy as np
import torch

from revstudy.data import Dataset
from revstudy.records import append_epochs, trial_dir, write_json_atomic
from revstudy.runs import aggregate
from revstudy.spaces import SearchSpace
from revstudy.study import PER_EPOCH
from revstudy.train import SplitTensors, Trainer


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
) -> None:
    """The Ray Tune function trainable (bound with `tune.with_parameters`)."""
    from ray import tune

    trial_id = tune.get_context().get_trial_id() or "local"
    tdir = trial_dir(Path(study), trial_id)
    try:
        _train(params, space, dataset, Path(study), trial_id, repeats, seed, objectives, threads)
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
) -> None:
    from ray import tune

    started = time.time()
    if threads > 0:
        torch.set_num_threads(threads)
    config = space.to_config(params).replace(seed=seed)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    trainers = [
        Trainer(config, SplitTensors.build(dataset, config, r, device), device, seed=seed + r)
        for r in range(repeats)
    ]
    final: dict[str, Any] | None = None
    # where this trial ran and the epochs it resumed after: shows retries on lost workers
    history: dict[str, list[Any]] = {"nodes": [], "resumed_after_epoch": []}
    ckpt = tune.get_checkpoint()
    if ckpt is not None:
        with ckpt.as_directory() as d:
            state = torch.load(Path(d) / "state.pt", weights_only=False, map_location=device)
        for t, s in zip(trainers, state["trainers"], strict=True):
            t.load_state(s)
        final = state.get("final")
        started -= float(state.get("elapsed", 0.0))
        history = state.get("history", history)
        history["resumed_after_epoch"].append(trainers[0].epoch)
    history["nodes"].append(_node_id())
    if final is not None:  # finished before the driver died: report again, train nothing
        tune.report(final)
        return
    for epoch in range(trainers[0].epoch + 1, config.epochs + 1):
        recs = [t.train_epoch() for t in trainers]
        node = history["nodes"][-1]
        rows = [{"repeat": r, "node": node, **vars(rec)} for r, rec in enumerate(recs)]
        append_epochs(study, trial_id, rows)
        metrics: dict[str, Any] = {
            "epoch": epoch,
            "val_f1_macro": float(np.mean([r.val_f1_macro for r in recs])),
            "val_f1_skill": float(np.mean([r.val_f1_skill for r in recs])),
            "val_loss": float(np.mean([r.val_loss for r in recs])),
            "train_loss": float(np.mean([r.train_loss for r in recs])),
        }
        for key in objectives:  # every report names every objective (NaN until known)
            metrics[key] = metrics[PER_EPOCH[key]] if key in PER_EPOCH else math.nan
        done = epoch == config.epochs
        if done:
            metrics.update(
                _final_metrics(study, trial_id, trainers, config.to_dict(), started, history)
            )
            final = metrics
        with tempfile.TemporaryDirectory() as d:
            torch.save(
                {
                    "trainers": [t.state() for t in trainers],
                    "final": final,
                    "elapsed": time.time() - started,
                    "history": history,
                },
                Path(d) / "state.pt",
            )
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(d))


def _node_id() -> str:
    """The Ray node running this trial ("local" outside Ray)."""
    try:
        import ray

        return str(ray.get_runtime_context().get_node_id())
    except Exception:  # not inside a Ray worker
        return "local"


def _final_metrics(
    study: Path,
    trial_id: str,
    trainers: list[Trainer],
    config: dict[str, Any],
    started: float,
    history: dict[str, list[Any]],
) -> dict[str, float]:
    """Full evaluation of every repeat; writes result.json and arrays.npz (the record)."""
    evals = [t.evaluate("val") for t in trainers]
    agg = aggregate([e.metrics for e in evals])
    flat: dict[str, float] = {}
    for key, a in agg.items():
        flat[key] = a["mean"]
        flat[f"{key}_std"] = a["std"]
    arrays = dict(evals[0].arrays)
    for key in ("f1_macro", "bond_count_corr", "aromatic_corr", "inv_error_max"):
        arrays[f"repeat_{key}"] = np.array([e.metrics[key] for e in evals])
    tdir = trial_dir(study, trial_id)
    tdir.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(tdir / "arrays.npz", **arrays)  # type: ignore[arg-type]
    wall = time.time() - started
    write_json_atomic(
        tdir / "result.json",
        {
            "trial_id": trial_id,
            "config": config,
            "metrics": {**flat, "epoch": config["epochs"]},
            "repeats": [e.metrics for e in evals],
            "wall_seconds": wall,
            "device": str(trainers[0].device),
            "history": history,
        },
    )
    return flat
