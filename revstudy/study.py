"""Ray Tune + OptunaSearch wiring: launch, resume, lock, progress and tidy records.

The study directory (docs/study-dir.md) holds Ray's experiment (`ray/`), the Optuna study
(`optuna.db`), per-trial records and tidy tables. Optuna's sampler proposes configs through
Ray Tune's `OptunaSearch`; ASHA stops weak trials from per-epoch reports; each trial
checkpoints every epoch, so an interrupted study resumes without losing or repeating work.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib.metadata
import json
import math
import os
import re
import sys
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from revstudy import __version__
from revstudy.config import TrialConfig
from revstudy.data import Dataset, read_dataset
from revstudy.errors import RevstudyError
from revstudy.records import refresh_tables, storage_root, write_json_atomic
from revstudy.spaces import BLOCK_PARAMS, SearchSpace, load_space

SAMPLERS = ("tpe", "random", "gp", "nsga2", "qmc")
SCHEDULERS = ("asha", "none")
KNOWN_METRICS = (
    "f1_macro",
    "f1_micro",
    "f1_samples",
    "f1_macro_present",
    "f1_macro_skill",
    "val_f1_skill",
    "val_loss",
    "val_f1_macro",
    "inv_error_max",
    "inv_error_mean",
    "z_free_mean_mean",
    "z_free_std_mean",
    "cond_variation_mean",
    "bond_count_corr",
    "aromatic_corr",
    "bond_count_corr_from_code",
    "aromatic_corr_from_code",
)
# objectives known every epoch (ASHA can use them) → the per-epoch report key holding them
PER_EPOCH = {
    "f1_macro": "val_f1_macro",
    "val_f1_macro": "val_f1_macro",
    "f1_macro_skill": "val_f1_skill",
    "val_f1_skill": "val_f1_skill",
    "val_loss": "val_loss",
}
PER_EPOCH_METRICS = tuple(PER_EPOCH)


class StudyFailed(RevstudyError):
    """Every trial of the study failed: nothing to optimise."""

    exit_code = 4


@dataclass
class LaunchOptions:
    """Everything `revstudy launch` takes; stored in study.json so resume needs no flags."""

    space: str = "default"
    data: str = ""
    name: str = ""
    num_samples: int = 20
    max_concurrent: int = 0  # 0: as many as the resources allow
    cpus_per_trial: float = 1.0
    gpus_per_trial: float | None = None  # None: 1 when the cluster has GPUs, else 0
    sampler: str = "tpe"
    scheduler: str = "asha"
    objectives: list[str] = field(default_factory=lambda: ["f1_macro:max"])
    repeats: int | None = None  # None: the space's `repeats` (default 1)
    time_budget_s: float | None = None
    address: str | None = None
    storage: str | None = None
    seed: int = 0
    baseline: bool = True
    max_failures: int = 1  # Ray retries of a trial after a (possibly transient) error


def parse_objectives(specs: list[str]) -> list[tuple[str, str]]:
    out = []
    for spec in specs:
        metric, _, mode = spec.partition(":")
        mode = mode or "max"
        if metric not in KNOWN_METRICS:
            raise RevstudyError(
                f"--objectives: unknown metric {metric!r}; choose from {', '.join(KNOWN_METRICS)}"
            )
        if mode not in ("max", "min"):
            raise RevstudyError(f"--objectives: mode of {metric} must be max or min, got {mode!r}")
        out.append((metric, mode))
    if len({m for m, _ in out}) != len(out):
        raise RevstudyError("--objectives: a metric is named twice")
    return out


def parse_duration(text: str) -> float:
    """'90s', '30m', '2h', '1h30m' or plain seconds → seconds."""
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return float(text)
    parts = re.findall(r"(\d+(?:\.\d+)?)([smhd])", text)
    if not parts or "".join(a + b for a, b in parts) != text:
        raise RevstudyError(f"--time-budget: cannot read {text!r} (e.g. 90s, 30m, 2h, 1h30m)")
    unit = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    return sum(float(a) * unit[b] for a, b in parts)


@contextlib.contextmanager
def study_lock(study: Path) -> Iterator[None]:
    """One driver per study: a second launch/resume is refused instead of corrupting it.

    An flock dies with its process, so a killed driver never leaves a stale lock.
    """
    study.mkdir(parents=True, exist_ok=True)
    fd = os.open(study / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = (study / ".lock").read_text().strip() or "another process"
            raise RevstudyError(
                f"study {study.name} is in use by {holder}; wait for it or stop it first"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()} on {os.uname().nodename}".encode())
        yield
    finally:
        os.close(fd)


def _discard_unstarted(study: Path) -> None:
    """Remove a study folder that holds nothing but our lock (called while holding it)."""
    if study.is_dir() and {p.name for p in study.iterdir()} <= {".lock"}:
        (study / ".lock").unlink(missing_ok=True)
        study.rmdir()


def baseline_params(space: SearchSpace) -> dict[str, Any] | None:
    """The paper configuration expressed in the space's parameters (None if it can't be)."""
    paper = TrialConfig(blocks=(2, 2, 4, 6, 8), y_dim=128, epochs=5)
    values = paper.to_dict()
    point: dict[str, Any] = {}
    for p in space.params:
        if p.condition and point.get(p.condition[0]) not in p.condition[1]:
            continue
        v = values["blocks"][int(p.name[-1])] if p.name in BLOCK_PARAMS else values[p.name]
        if p.type == "categorical" and v not in p.choices:
            return None
        point[p.name] = v  # numeric values outside the range are still enqueued as given
    return point


def _sampler(name: str, seed: int, multi: bool) -> Any:
    import optuna

    if name == "tpe":
        return optuna.samplers.TPESampler(seed=seed)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "gp":
        return optuna.samplers.GPSampler(seed=seed)
    if name == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed)
    if name == "qmc":
        return optuna.samplers.QMCSampler(seed=seed)
    raise RevstudyError(f"--sampler: choose from {', '.join(SAMPLERS)}, got {name!r}")


def optuna_url(study: Path) -> str:
    return f"sqlite:///{study / 'optuna.db'}"


def _ray_init(address: str | None) -> None:
    import ray

    if ray.is_initialized():
        return
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    if address:
        ray.init(address=address, log_to_driver=False)
    else:
        ray.init(
            include_dashboard=False, log_to_driver=False, object_store_memory=200 * 1024 * 1024
        )


def _searcher(study: Path, info: dict[str, Any], space: SearchSpace) -> Any:
    import optuna
    from ray.tune.search.optuna import OptunaSearch

    class StudySearch(OptunaSearch):
        """OptunaSearch that tells Optuna FAIL for errored trials (even after reports) and
        PRUNED for stopped trials without final objective values, so Optuna's record
        matches Ray's; the stock class would leave such trials RUNNING or COMPLETE."""

        def suggest(self, trial_id: str) -> Any:
            with warnings.catch_warnings():  # the paper baseline may lie outside the space
                warnings.filterwarnings("ignore", "Fixed parameter .* is out of range")
                out = super().suggest(trial_id)
            if trial_id in self._ot_trials:  # lets records map Ray's trial to Optuna's number
                self._ot_trials[trial_id].set_user_attr("ray_trial_id", trial_id)
            return out

        def on_trial_result(self, trial_id: str, result: dict) -> None:
            # a trial finished before a driver restart re-reports its last result
            with contextlib.suppress(optuna.exceptions.UpdateFinishedTrialError):
                super().on_trial_result(trial_id, result)

        def on_trial_complete(
            self, trial_id: str, result: dict | None = None, error: bool = False
        ) -> None:
            if trial_id in self._completed_trials or trial_id not in self._ot_trials:
                return
            metrics = self.metric if isinstance(self.metric, list) else [self.metric]
            vals = [None if not result else result.get(m) for m in metrics]
            ok = all(isinstance(v, int | float) and math.isfinite(v) for v in vals)
            ot = self._ot_trials[trial_id]
            try:
                if error or not ok:
                    state = (
                        optuna.trial.TrialState.FAIL if error else (optuna.trial.TrialState.PRUNED)
                    )
                    self._ot_study.tell(ot, None, state=state)  # type: ignore[attr-defined]
                else:
                    self._ot_study.tell(ot, vals if len(vals) > 1 else vals[0])  # type: ignore[attr-defined]
            except Exception:  # already told before a driver restart: keep the first record
                pass
            self._completed_trials.add(trial_id)

    objectives = [(o["metric"], o["mode"]) for o in info["objectives"]]
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # progress has its own display
    storage = optuna.storages.RDBStorage(optuna_url(study))
    point = baseline_params(space) if info["baseline"] else None
    return StudySearch(
        space=space.suggest,
        metric=[m for m, _ in objectives] if len(objectives) > 1 else objectives[0][0],
        mode=[d for _, d in objectives] if len(objectives) > 1 else objectives[0][1],
        points_to_evaluate=[point] if point is not None else None,
        sampler=_sampler(info["sampler"], info["seed"], len(objectives) > 1),
        study_name=info["name"],
        storage=storage,
    )


def _run_trial(params: dict[str, Any], **kwargs: Any) -> None:
    """`revstudy.trial.run_trial`, imported in the worker: the driver never loads torch."""
    from revstudy.trial import run_trial

    run_trial(params, **kwargs)


def _trainable(study: Path, info: dict[str, Any], space: SearchSpace, dataset: Dataset) -> Any:
    from ray import tune

    fn = tune.with_parameters(
        _run_trial,
        space=space,
        dataset=dataset,
        study=str(study),
        repeats=info["repeats"],
        seed=info["seed"],
        objectives=[o["metric"] for o in info["objectives"]],
        threads=max(1, int(info["cpus_per_trial"])),
    )
    return tune.with_resources(fn, {"cpu": info["cpus_per_trial"], "gpu": info["gpus_per_trial"]})


def check_resources(address: str | None, cpus: float, gpus: float) -> None:
    """Refuse trials that the embedded local Ray can never place (they would wait forever);
    a cluster (`--address`) may still grow through its autoscaler, so there it is a note."""
    import ray

    have = ray.cluster_resources()
    n_gpu, n_cpu = have.get("GPU", 0.0), have.get("CPU", 0.0)
    if address:
        if gpus > n_gpu:
            print(
                f"note: the cluster has {n_gpu:g} GPU(s) now; trials asking for {gpus:g} "
                "wait until the autoscaler adds GPU workers",
                file=sys.stderr,
            )
        return
    if gpus > n_gpu:
        raise RevstudyError(
            f"--gpus-per-trial {gpus:g}: this machine has {n_gpu:g} GPU(s) that Ray can use; "
            "leave the option out (GPUs are used when present) or use --address for a cluster"
        )
    if cpus > n_cpu:
        raise RevstudyError(f"--cpus-per-trial {cpus:g}: this machine has {n_cpu:g} CPU(s)")


def launch(opts: LaunchOptions, *, progress: bool = True) -> dict[str, Any]:
    """Start a new study, or continue it if `opts.name` already exists."""
    root = storage_root(opts.storage)
    space = load_space(opts.space)
    objectives = parse_objectives(opts.objectives or list(space.objectives))
    name = opts.name or f"{space.name}-{datetime.now().strftime('%Y%m%d-%H%M%S')}"
    study = root / name
    if (study / "study.json").is_file():
        return resume(name, storage=opts.storage, address=opts.address, progress=progress)
    if opts.sampler not in SAMPLERS:
        raise RevstudyError(f"--sampler: choose from {', '.join(SAMPLERS)}, got {opts.sampler!r}")
    if opts.scheduler not in SCHEDULERS:
        raise RevstudyError(f"--scheduler: choose asha or none, got {opts.scheduler!r}")
    repeats = opts.repeats if opts.repeats is not None else space.repeats
    if opts.num_samples < 1 or repeats < 1:
        raise RevstudyError("--num-samples and --repeats must be >= 1")
    dataset = read_dataset(opts.data)
    with study_lock(study):
        try:
            import optuna
            import ray

            _ray_init(opts.address)
            gpus = opts.gpus_per_trial
            if gpus is None:
                gpus = 1.0 if ray.cluster_resources().get("GPU", 0) > 0 else 0.0
            check_resources(opts.address, opts.cpus_per_trial, gpus)

            info: dict[str, Any] = {
                "name": name,
                "space": space.to_dict(),
                "sampler": opts.sampler,
                "scheduler": opts.scheduler,
                "seed": opts.seed,
                "objectives": [{"metric": m, "mode": d} for m, d in objectives],
                "num_samples": opts.num_samples,
                "repeats": repeats,
                "max_concurrent": opts.max_concurrent,
                "cpus_per_trial": opts.cpus_per_trial,
                "gpus_per_trial": gpus,
                "time_budget_s": opts.time_budget_s,
                "test_fraction": space.to_config({}).test_fraction,
                "baseline": opts.baseline,
                "max_failures": opts.max_failures,
                "data": {
                    "path": str(Path(dataset.path).resolve()),
                    "sha256": dataset.sha256,
                    "rows": len(dataset),
                },
                "optuna_study_name": name,
                "optuna_storage": optuna_url(study),
                "created": datetime.now(UTC).isoformat(timespec="seconds"),
                "versions": {
                    "revstudy": __version__,
                    "ray": ray.__version__,
                    "optuna": optuna.__version__,
                    "torch": importlib.metadata.version("torch"),  # not imported by the driver
                },
            }
            write_json_atomic(study / "study.json", info)
        except BaseException:  # refused before it started: leave no empty study behind
            _discard_unstarted(study)
            raise
        return _run(study, info, space, dataset, restore=False, progress=progress)


def resume(
    name: str,
    *,
    storage: str | None = None,
    address: str | None = None,
    retry_failed: bool = False,
    progress: bool = True,
) -> dict[str, Any]:
    """Continue an interrupted study: finished trials kept, unfinished ones from checkpoints."""
    from revstudy.records import study_dir

    study = study_dir(name, storage)
    info_path = study / "study.json"
    if not info_path.is_file():
        raise RevstudyError(f"no study {name!r} under {study.parent} (see `revstudy list`)")
    info = json.loads(info_path.read_text())
    space = SearchSpace(**{**_space_from_info(info["space"])})
    dataset = read_dataset(info["data"]["path"])
    if dataset.sha256 != info["data"]["sha256"]:
        raise RevstudyError(
            f"{dataset.path}: data file changed since the study started "
            "(sha256 differs); restore it to resume"
        )
    with study_lock(study):
        _ray_init(address)
        check_resources(address, info["cpus_per_trial"], info["gpus_per_trial"])
        return _run(
            study, info, space, dataset, restore=True, retry_failed=retry_failed, progress=progress
        )


def _space_from_info(d: dict[str, Any]) -> dict[str, Any]:
    from revstudy.spaces import Param

    params = []
    for p in d["params"]:
        cond = p.get("condition")
        params.append(
            Param(
                name=p["name"],
                type=p["type"],
                low=p.get("low"),
                high=p.get("high"),
                log=p.get("log", False),
                step=p.get("step"),
                choices=tuple(p.get("choices", ())),
                condition=(cond[0], tuple(cond[1])) if cond else None,
            )
        )
    return {
        "name": d["name"],
        "path": d["path"],
        "fixed": d["fixed"],
        "params": tuple(params),
        "objectives": tuple(d["objectives"]),
        "description": d.get("description", ""),
        "repeats": int(d.get("repeats", 1)),
    }


def _run(
    study: Path,
    info: dict[str, Any],
    space: SearchSpace,
    dataset: Dataset,
    *,
    restore: bool,
    retry_failed: bool = False,
    progress: bool = True,
) -> dict[str, Any]:
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler
    from ray.tune.search import ConcurrencyLimiter

    from revstudy.progress import StudyCallback, StudyStopper

    objectives = [(o["metric"], o["mode"]) for o in info["objectives"]]
    trainable = _trainable(study, info, space, dataset)
    stopper = StudyStopper(min(info["num_samples"], 4))
    callback = StudyCallback(study, info, stopper, live=progress)
    ray_dir = study / "ray"
    if restore and tune.Tuner.can_restore(str(ray_dir)):
        tuner = tune.Tuner.restore(
            str(ray_dir),
            trainable,
            resume_unfinished=True,
            resume_errored=False,
            restart_errored=retry_failed,
        )
        # restore unpickles run config but not callbacks/stoppers: attach fresh ones
        rc = tuner._local_tuner._run_config  # type: ignore[union-attr]
        rc.callbacks = [callback]
        rc.stop = stopper
    else:
        first, mode = objectives[0]
        max_t = _max_epochs(space, info["baseline"])
        single = len(objectives) == 1
        if info["scheduler"] == "asha" and single and first in PER_EPOCH_METRICS and max_t > 1:
            scheduler: Any = ASHAScheduler(
                metric=first,
                mode=mode,
                time_attr="training_iteration",
                max_t=max_t,
                grace_period=min(2, max_t),
                reduction_factor=3,
            )
        else:
            if info["scheduler"] == "asha" and not single:
                print(
                    "note: ASHA ranks trials on one objective and would stop them before the "
                    "others are measured; a multi-objective study runs trials to completion",
                    file=sys.stderr,
                )
            elif info["scheduler"] == "asha":
                print(
                    f"note: ASHA needs a per-epoch first objective ({', '.join(PER_EPOCH_METRICS)})"
                    f"; {first} is known only at the end, so trials run to completion",
                    file=sys.stderr,
                )
            scheduler = FIFOScheduler()
        searcher: Any = _searcher(study, info, space)
        if info["max_concurrent"]:
            searcher = ConcurrencyLimiter(searcher, max_concurrent=info["max_concurrent"])
        tuner = tune.Tuner(
            trainable,
            tune_config=tune.TuneConfig(
                search_alg=searcher,
                scheduler=scheduler,
                num_samples=info["num_samples"],
                time_budget_s=info["time_budget_s"],
                # a finished trial's worker process takes the next trial: no new process,
                # no second torch import (all trials ask for the same resources)
                reuse_actors=True,
            ),
            run_config=tune.RunConfig(
                name="ray",
                storage_path=str(study),
                verbose=0,
                stop=stopper,
                callbacks=[callback],
                failure_config=tune.FailureConfig(max_failures=info["max_failures"]),
                checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
            ),
        )
    started = time.time()
    with callback.display():
        tuner.fit()
    table = refresh_tables(study, callback.ray_states())
    reconcile_optuna(study, info)
    summary = summarise(study, table, time.time() - started)
    if summary["by_state"].get("FAILED", 0) == len(table) and len(table) > 0:
        reasons = sorted(set(table["failure_reason"].astype(str)))[:3]
        raise StudyFailed(
            f"all {len(table)} trials failed, e.g. {'; '.join(reasons)} "
            f"(details: revstudy status {info['name']})"
        )
    return summary


def _max_epochs(space: SearchSpace, baseline: bool) -> int:
    """ASHA's max_t: the most epochs any trial (the paper baseline included) can run."""
    most = int(space.to_config({}).epochs)
    for p in space.params:
        if p.name == "epochs":
            most = int(max(p.choices) if p.type == "categorical" else p.high or 1)
    point = baseline_params(space) if baseline else None
    if point is not None:
        most = max(most, int(space.to_config(point).epochs))
    return most


def reconcile_optuna(study: Path, info: dict[str, Any]) -> int:
    """After all Ray trials ended, an Optuna trial still RUNNING was orphaned by a killed
    driver (suggested after Ray's last snapshot): mark it FAIL so the records agree."""
    import optuna

    s = optuna.load_study(study_name=info["name"], storage=optuna_url(study))
    storage = s._storage
    n = 0
    for t in s.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        storage.set_trial_user_attr(t._trial_id, "revstudy_orphaned", True)
        storage.set_trial_state_values(t._trial_id, optuna.trial.TrialState.FAIL)
        n += 1
    return n


def summarise(study: Path, table: Any, elapsed: float | None = None) -> dict[str, Any]:
    """Counts by state and the best trial, for status output and `--json`."""
    import json as _json

    info = _json.loads((study / "study.json").read_text())
    metric, mode = info["objectives"][0]["metric"], info["objectives"][0]["mode"]
    by_state = {k: int(v) for k, v in table["state"].value_counts().items()} if len(table) else {}
    best = None
    done = table[table["state"].isin(["COMPLETED", "STOPPED_EARLY"])] if len(table) else table
    if len(done) and metric in done:
        ranked = done.dropna(subset=[metric]).sort_values(metric, ascending=mode == "min")
        if len(ranked):
            row = ranked.iloc[0]
            best = {
                "trial_id": row["trial_id"],
                "config": {k[7:]: _plain(row[k]) for k in row.index if k.startswith("config/")},
                "metrics": {  # NaN columns are other trials' keys (e.g. Ray's for running ones)
                    k: _plain(row[k])
                    for k in row.index
                    if not k.startswith("config/")
                    and isinstance(row[k], int | float)
                    and not math.isnan(row[k])
                    and k not in ("number",)
                },
            }
    out = {
        "name": info["name"],
        "path": str(study),
        "trials": len(table),
        "requested": info["num_samples"],
        "by_state": by_state,
        "objectives": info["objectives"],
        "best": best,
    }
    if elapsed is not None:
        out["elapsed_s"] = elapsed
    return out


def _plain(v: Any) -> Any:
    if isinstance(v, str) and v.startswith("["):
        try:
            return json.loads(v)
        except ValueError:
            return v
    if hasattr(v, "item"):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v
