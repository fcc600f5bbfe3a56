"""`revstudy train`: K seeded repeats of one config, aggregated and written to a run folder.

A run folder holds `metrics.json` ({"repeats": [...], "aggregate": {key: {mean, std, min,
max}}}), `model.pt` (state dict of repeat 0), `prior.pt` (repeat 0's learned prior, for
`revstudy evaluate/elucidate`), `config.yaml` and `arrays.npz` (repeat 0).
"""

from __future__ import annotations

import math
import platform
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from revstudy.data.dataset import Dataset
from revstudy.files import replaced_atomically, write_json_atomic
from revstudy.studyfolder import ARRAYS_FILE, REPEAT_ARRAYS
from revstudy.training.config import TrialConfig
from revstudy.training.fused import Repeats, Strategy
from revstudy.training.metrics import Evaluation
from revstudy.training.splits import SplitTensors
from revstudy.training.trainer import EpochRecord, Trainer
from revstudy.version import __version__


def data_for_config(config: str | Path | None, data: str | None) -> str | None:
    """The data file a run of `config` trains on: `data` when given, else the file the
    config records (`provenance.data` of an exported study config, checked by sha256, so
    retraining a study's winner never silently switches to another data set), else None
    (`resolve_data`'s default)."""
    from revstudy.data.fetch import recorded_data
    from revstudy.training.config import recorded_data as config_data

    if data is not None or config is None:
        return data
    recorded = config_data(config)
    if recorded is None:
        return None
    return str(recorded_data(str(config), *recorded))


def aggregate(rows: list[dict[str, float]]) -> dict[str, dict[str, float]]:
    """{key: {mean, std, min, max}} over repeats, ignoring NaN (all-NaN keys give NaN)."""
    out: dict[str, dict[str, float]] = {}
    for key in rows[0] if rows else []:
        vals = np.array([r.get(key, math.nan) for r in rows], dtype=float)
        ok = vals[np.isfinite(vals)]
        if len(ok) == 0:
            out[key] = {"mean": math.nan, "std": math.nan, "min": math.nan, "max": math.nan}
        else:
            out[key] = {
                "mean": float(ok.mean()),
                "std": float(ok.std()),
                "min": float(ok.min()),
                "max": float(ok.max()),
            }
    return out


@dataclass
class RunResult:
    config: TrialConfig
    repeats: list[dict[str, Any]] = field(default_factory=list)
    test: list[dict[str, float]] = field(default_factory=list)
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    model_state: dict[str, torch.Tensor] | None = None
    prior_state: dict[str, Any] | None = None  # repeat 0's Prior + decoder top-k (prior.pt)
    fallback: str | None = None  # why the vmapped ensemble gave way to one repeat at a time

    @property
    def aggregate(self) -> dict[str, dict[str, float]]:
        return aggregate([r["metrics"] for r in self.repeats])


def train_repeats(
    config: TrialConfig,
    dataset: Dataset,
    repeats: int = 1,
    device: str = "cpu",
    *,
    final: bool = False,
    evaluate_test: bool = False,
    on_epoch: Callable[[int, EpochRecord], None] | None = None,
    fuse: bool = True,
    strategy: Strategy | None = None,
) -> RunResult:
    """Train `repeats` seeded splits (seed + r) and evaluate each on its validation split.

    With `fuse` the repeats advance together (`revstudy.training.fused.Repeats`: one
    batched ensemble on a GPU, side by side in lanes on a CPU; `strategy` picks one);
    without, one after another, each freed before the next (same results up to rounding,
    less memory). `final` trains on train + validation (validation metrics are
    then optimistic and labelled so); `evaluate_test` also scores the held-out test split,
    reported separately.
    """
    result = RunResult(config)

    def build(r: int) -> Trainer:
        data = SplitTensors.build(dataset, config, repeat=r, device=device, final=final)
        return Trainer(config, data, device=device, seed=config.seed + r)

    def epochs(group: Repeats) -> None:
        while group.trainers[0].epoch < config.epochs:
            for r, rec in zip(group.indices, group.train_epoch(), strict=True):
                if on_epoch is not None:
                    on_epoch(r, rec)

    def evaluations(t: Trainer) -> tuple[Evaluation, Evaluation | None]:
        return t.evaluate("val"), t.evaluate("test") if evaluate_test else None

    if fuse and repeats > 1:
        trainers = [build(r) for r in range(repeats)]
        group = Repeats(trainers, strategy=strategy)
        epochs(group)
        result.fallback = group.fallback
        for r, (t, evals) in enumerate(zip(trainers, group.map(evaluations), strict=True)):
            _record(result, r, t, evals, final)
    else:
        for r in range(repeats):
            trainer = build(r)
            epochs(Repeats([trainer], indices=[r]))
            _record(result, r, trainer, evaluations(trainer), final)
    for key in REPEAT_ARRAYS:
        result.arrays[f"repeat_{key}"] = np.array(
            [r["metrics"].get(key, math.nan) for r in result.repeats]
        )
    return result


def _record(
    result: RunResult,
    r: int,
    trainer: Trainer,
    evals: tuple[Evaluation, Evaluation | None],
    final: bool,
) -> None:
    """Add repeat `r` with its validation (and test) evaluation `evals` to `result` (repeat 0
    also gives the arrays, the weights and the prior a run folder keeps)."""
    data = trainer.data
    ev, test_ev = evals
    result.repeats.append(
        {
            "repeat": r,
            "seed": trainer.seed,
            "split": {
                "train": len(data.x_train),
                "val": len(data.x_val),
                "test": len(data.x_test),
                "final": final,
            },
            "metrics": ev.metrics,
            "history": [asdict(h) for h in trainer.history],
        }
    )
    if test_ev is not None:
        result.test.append(test_ev.metrics)
    if r == 0:
        result.arrays = ev.arrays
        result.model_state = {k: v.detach().cpu() for k, v in trainer.model.state_dict().items()}
        result.prior_state = prior_state(trainer)


def prior_state(trainer: Trainer) -> dict[str, Any]:
    """What a saved model needs besides its weights to generate: the learned Z_free prior,
    the code→Y_latent map (both fit on training latents), the decoder's top-k and the
    training code's per-bin rates (the F1 baselines of `revstudy evaluate`)."""
    p = trainer.prior()
    topk = max(1, round(trainer.data.x_train.sum(dim=(1, 2, 3)).mean().item()))
    return {
        "mean": p.mean.detach().cpu(),
        "std": p.std.detach().cpu(),
        "code_means": p.code_means.detach().cpu(),
        "standard": p.standard,
        "topk": topk,
        "code_rate": trainer.data.y_train.float().mean(0).detach().cpu(),  # for F1 baselines
        "format": 1,
        "revstudy": __version__,
    }


def run_metadata(dataset: Dataset, device: str) -> dict[str, Any]:
    """Where and how a run ran (versions, device, CPU threads, data), for metrics.json: the
    conditions its seconds were measured under."""
    return {
        "revstudy": __version__,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "device": device,
        "threads": torch.get_num_threads(),
        "data": {"path": dataset.path, "sha256": dataset.sha256, "rows": len(dataset)},
    }


def write_run(
    out: Path,
    result: RunResult,
    dataset: Dataset,
    device: str,
    provenance: dict[str, Any] | None = None,
) -> None:
    """Write metrics.json, model.pt, prior.pt, config.yaml and arrays.npz into `out`."""
    out.mkdir(parents=True, exist_ok=True)
    doc: dict[str, Any] = {
        **run_metadata(dataset, device),
        "config": result.config.to_dict(),
        "repeats": [{**r, **r["metrics"]} for r in result.repeats],
        "aggregate": result.aggregate,
    }
    for r in doc["repeats"]:
        del r["metrics"]
    if result.test:
        doc["test"] = {"repeats": result.test, "aggregate": aggregate(result.test)}
    if provenance:
        doc["provenance"] = provenance
    if result.fallback:
        doc["repeat_fallback"] = result.fallback
    # every file replaced atomically: a link planted in `out` is replaced, never written through
    result.config.save_yaml(out / "config.yaml", header=provenance)
    for name, state in (("model.pt", result.model_state), ("prior.pt", result.prior_state)):
        if state is not None:
            with replaced_atomically(out / name) as tmp, tmp.open("wb") as f:
                torch.save(state, f)
    with replaced_atomically(out / ARRAYS_FILE) as tmp, tmp.open("wb") as f:
        np.savez_compressed(f, **result.arrays)  # type: ignore[arg-type]
    write_json_atomic(out / "metrics.json", doc, indent=2)
