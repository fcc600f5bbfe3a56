"""Ray Tune + OptunaSearch wiring: launch, resume, lock, progress and tidy records.

The study directory (docs/study-dir.md) holds the Optuna study (`optuna.db`), per-trial
folders, tidy tables and Ray's logs (`ray/`, never read back). Optuna's sampler proposes
configs through Ray Tune's `OptunaSearch` (`revstudy.search.StudySearcher`); ASHA stops weak
trials from per-epoch reports; each trial checkpoints every epoch into its own folder. Launch
and resume are the same driver run (`_run`): continue the unfinished Optuna trials, then ask
new ones, so an interrupted study resumes without losing, repeating or unpickling anything.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib.metadata
import json
import logging
import math
import os
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from revstudy import __version__
from revstudy.data import Dataset, read_dataset
from revstudy.errors import RevstudyError
from revstudy.options import (
    GPU_SHARE,
    SAMPLERS,
    LaunchOptions,
    check_address,
    parse_objectives,
    relaunch_changes,
)
from revstudy.reaper import start_reaper
from revstudy.records import (
    RUN_KEYS,
    check_name,
    optuna_url,
    read_study_info,
    refresh_tables,
    storage_root,
    write_json_atomic,
)
from revstudy.spaces import SearchSpace, baseline_params, load_space
from revstudy.studyfolder import StudyInfo, public_params, rank_finished


class StudyFailed(RevstudyError):
    """Every trial of the study failed: nothing to optimise."""

    exit_code = 4


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
    """Remove a study folder that holds nothing but our lock and a fresh Optuna database
    (called while holding the lock, before study.json exists)."""
    if study.is_dir() and {p.name for p in study.iterdir()} <= {".lock", "optuna.db"}:
        (study / "optuna.db").unlink(missing_ok=True)
        (study / ".lock").unlink(missing_ok=True)
        study.rmdir()


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


def open_optuna(study: Path, info: dict[str, Any], *, create: bool = False) -> Any:
    """The study's Optuna study (created at launch); one-line errors for a missing or
    damaged optuna.db, which is never replaced by an empty one.

    The sampler is seeded with the study seed plus the trials already run, so a resumed
    study does not replay the first run's random suggestions."""
    import optuna
    import sqlalchemy.exc

    db = study / "optuna.db"
    if not create and not db.is_file():
        raise RevstudyError(
            f"{db}: missing; it holds the study's trials and sampler history, so the study "
            "cannot continue (restore the file, or launch a new study)"
        )
    if not create:
        _check_sqlite(db)
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # progress has its own display
    try:
        storage = optuna.storages.RDBStorage(optuna_url(study))
        multi = len(info["objectives"]) > 1
        if create:
            return optuna.create_study(
                study_name=info["name"],
                storage=storage,
                directions=[
                    "maximize" if o["mode"] == "max" else "minimize" for o in info["objectives"]
                ],
                sampler=_sampler(info["sampler"], info["seed"], multi),
            )
        s = optuna.load_study(study_name=info["name"], storage=storage)
        waiting = (optuna.trial.TrialState.WAITING,)  # enqueued (the baseline), not yet asked
        done = len(s.get_trials(deepcopy=False)) - len(s.get_trials(deepcopy=False, states=waiting))
        s.sampler = _sampler(info["sampler"], info["seed"] + done, multi)
        return s
    except (sqlalchemy.exc.SQLAlchemyError, KeyError, ValueError) as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
        raise RevstudyError(
            f"{db}: not a readable Optuna study {info['name']!r} ({first})"
        ) from None


def _check_sqlite(db: Path) -> None:
    with db.open("rb") as f:
        head = f.read(16)
    if head != b"SQLite format 3\x00":
        raise RevstudyError(f"{db}: not an SQLite database (damaged or replaced); not opened")


def _loopback_only() -> None:
    """Make an embedded Ray instance listen on 127.0.0.1 only.

    Ray resolves a loopback `_node_ip_address` to the machine's address, but on platforms
    where it does not support clusters (macOS, Windows) it runs every server on localhost;
    `RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0` asks for that behaviour on Linux too. Read when
    Ray is imported, so it is set before; the constant is also set if Ray was imported."""
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    constants = sys.modules.get("ray._private.ray_constants")
    if constants is not None and hasattr(constants, "ENABLE_RAY_CLUSTER"):
        setattr(constants, "ENABLE_RAY_CLUSTER", False)  # noqa: B010  (module of Ray's)


def _ray_init(address: str | None) -> None:
    if not address:
        _loopback_only()
    import ray

    if ray.is_initialized():
        return
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    if address:
        ray.init(address=address, log_to_driver=False)
        have = ray.cluster_resources()
        print(
            f"joined the Ray cluster at {ray.get_runtime_context().gcs_address}: "
            f"{len(ray.nodes())} node(s), {have.get('CPU', 0):g} CPUs, {have.get('GPU', 0):g} GPUs",
            file=sys.stderr,
        )
    else:
        # an embedded instance gets Ray's token authentication by default; its notice about
        # that is for cluster operators, not for a user running a study on a laptop
        logging.getLogger("ray._private.authentication.authentication_token_setup").setLevel(
            logging.ERROR
        )
        start_reaper()  # stops this Ray instance if the driver is killed (revstudy.reaper)
        ray.init(  # "local": always a new instance, never some Ray already on the machine
            address="local",
            include_dashboard=False,
            log_to_driver=False,
            object_store_memory=200 * 1024 * 1024,
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
        driver={"pid": os.getpid(), "host": os.uname().nodename},
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
    """Start a new study, or continue it if `opts.name` already exists (its settings kept)."""
    from revstudy.fetch import resolve_data

    opts.validate()
    if opts.name:
        check_name(opts.name)
    root = storage_root(opts.storage)
    if opts.name and (root / opts.name / "study.json").is_file():
        study = root / opts.name
        existing = read_study_info(study, RUN_KEYS)
        sha = read_dataset(resolve_data(opts.data)).sha256 if opts.data else None
        grow = relaunch_changes(opts, existing, sha)
        kept = ", ".join(
            f"{k} {existing.get(k)}" for k in ("sampler", "scheduler", "repeats", "seed")
        )
        print(
            f"note: study {opts.name} exists; continuing it with its settings ({kept})",
            file=sys.stderr,
        )
        return resume(
            opts.name,
            storage=opts.storage,
            address=opts.address,
            progress=progress,
            num_samples=grow,
        )
    space = load_space(opts.resolved("space"))
    objectives = parse_objectives(opts.objectives or list(space.objectives))
    name = opts.name or f"{space.name}-{datetime.now().strftime('%Y%m%d-%H%M%S')}"
    study = root / name
    repeats = opts.repeats if opts.repeats is not None else space.repeats
    if repeats < 1:
        raise RevstudyError(f"{space.path}: repeats must be >= 1")
    dataset = read_dataset(resolve_data(opts.data))
    with study_lock(study):
        try:
            _ray_init(opts.address)  # first: it configures Ray before importing it
            import optuna
            import ray

            gpus = opts.gpus_per_trial
            if gpus is None:
                gpus = GPU_SHARE if ray.cluster_resources().get("GPU", 0) > 0 else 0.0
            cpus = opts.resolved("cpus_per_trial")
            check_resources(opts.address, cpus, gpus)

            info: dict[str, Any] = {
                "name": name,
                "space": space.to_dict(),
                "sampler": opts.resolved("sampler"),
                "scheduler": opts.resolved("scheduler"),
                "seed": opts.resolved("seed"),
                "objectives": [{"metric": m, "mode": d} for m, d in objectives],
                "num_samples": opts.resolved("num_samples"),
                "repeats": repeats,
                "max_concurrent": opts.resolved("max_concurrent"),
                "cpus_per_trial": cpus,
                "gpus_per_trial": gpus,
                "time_budget_s": opts.time_budget_s,
                "test_fraction": space.to_config({}).test_fraction,
                "baseline": opts.resolved("baseline"),
                "max_failures": opts.resolved("max_failures"),
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
            ostudy = open_optuna(study, info, create=True)
            point = baseline_params(space) if info["baseline"] else None
            if point is not None:  # the first trial Optuna hands out
                ostudy.enqueue_trial(point, user_attrs={"revstudy_baseline": True})
            write_json_atomic(study / "study.json", info)  # last: the study exists from here
        except BaseException:  # refused before it started: leave no empty study behind
            _discard_unstarted(study)
            raise
        return _run(study, info, space, dataset, progress=progress)


def resume(
    name: str,
    *,
    storage: str | None = None,
    address: str | None = None,
    retry_failed: bool = False,
    progress: bool = True,
    num_samples: int | None = None,
) -> dict[str, Any]:
    """Continue an interrupted study: finished trials kept, unfinished ones from their
    checkpoints; `num_samples` (>= the study's) lets it grow."""
    from revstudy.records import study_dir

    if address is not None:
        check_address(address)
    study = study_dir(name, storage)
    info = read_study_info(study, RUN_KEYS)
    space = SearchSpace.from_info(info["space"])
    dataset = read_dataset(info["data"]["path"])
    if dataset.sha256 != info["data"]["sha256"]:
        raise RevstudyError(
            f"{dataset.path}: data file changed since the study started "
            "(sha256 differs); restore it to resume"
        )
    with study_lock(study):
        open_optuna(study, info)  # a missing or damaged optuna.db stops here, before Ray
        if num_samples is not None and num_samples > int(info["num_samples"]):
            print(
                f"note: study {info['name']} grows from {info['num_samples']} to "
                f"{num_samples} trials",
                file=sys.stderr,
            )
            info["num_samples"] = num_samples
            write_json_atomic(study / "study.json", info)
        _ray_init(address)
        check_resources(address, info["cpus_per_trial"], info["gpus_per_trial"])
        return _run(study, info, space, dataset, retry_failed=retry_failed, progress=progress)


def _run(
    study: Path,
    info: dict[str, Any],
    space: SearchSpace,
    dataset: Dataset,
    *,
    retry_failed: bool = False,
    progress: bool = True,
) -> dict[str, Any]:
    """One driver run: continue unfinished Optuna trials, then ask new ones up to num_samples.

    Launch and resume are the same run: nothing of an earlier driver's Ray state is read
    (no `Tuner.restore`, no unpickling); the Optuna database and the trial folders are the
    whole state of a study (docs/study-dir.md)."""
    from ray import tune
    from ray.tune.search import ConcurrencyLimiter

    from revstudy.progress import StudyCallback, StudyStopper
    from revstudy.records import read_epochs
    from revstudy.scheduling import epoch_history, make_scheduler
    from revstudy.search import StudySearcher, counted_trials, retries, unfinished

    objectives = [(o["metric"], o["mode"]) for o in info["objectives"]]
    ostudy = open_optuna(study, info)
    continuations = unfinished(ostudy) + (retries(ostudy) if retry_failed else [])
    new = max(0, int(info["num_samples"]) - len(counted_trials(ostudy)))
    history = epoch_history(read_epochs(study), objectives[0][0])
    continued = {c.record_id: history.pop(c.record_id, []) for c in continuations}
    baseline = baseline_params(space) if info["baseline"] else None
    scheduler, asha = make_scheduler(
        info,
        _max_epochs(space, info["baseline"]),
        history,
        protect=None if baseline is None else lambda c: public_params(c) == baseline,
    )

    def on_continue(ray_id: str, record_id: str) -> None:
        if asha is not None:  # a continued trial keeps its place in ASHA's rungs
            asha.seed(ray_id, continued.get(record_id, []))

    searcher = StudySearcher(
        ostudy, space, objectives, continuations=continuations, new=new, on_continue=on_continue
    )
    budget = _remaining_budget(study, info)
    stopper = StudyStopper(min(info["num_samples"], 4))
    ended = len(counted_trials(ostudy)) - len(continuations)  # before this run
    callback = StudyCallback(study, info, stopper, live=progress, done_before=max(0, ended))
    started = time.time()
    if searcher.total > 0 and (budget is None or budget > 0):
        search_alg: Any = searcher
        if info["max_concurrent"]:
            search_alg = ConcurrencyLimiter(searcher, max_concurrent=info["max_concurrent"])
        tuner = tune.Tuner(
            _trainable(study, info, space, dataset),
            tune_config=tune.TuneConfig(
                search_alg=search_alg,
                scheduler=scheduler,
                num_samples=searcher.total,
                time_budget_s=budget,
                # a finished trial's worker process takes the next trial: no new process,
                # no second torch import (all trials ask for the same resources)
                reuse_actors=True,
            ),
            run_config=tune.RunConfig(
                # one folder per driver run: Ray's logs only, never read back by revstudy
                name=f"run-{datetime.now().strftime('%Y%m%d-%H%M%S-%f')}",
                storage_path=str(study / "ray"),
                verbose=0,
                stop=stopper,
                callbacks=[callback],
                failure_config=tune.FailureConfig(max_failures=info["max_failures"]),
            ),
        )
        with callback.display():
            tuner.fit()
    elif budget is not None and budget <= 0:
        print("note: the study's time budget is spent; nothing new to run", file=sys.stderr)
    _add_elapsed(study, time.time() - started)
    metrics = [o["metric"] for o in info["objectives"]]
    recorded = recorded_states(ostudy, metrics)  # Optuna's storage is read afresh
    states = {**recorded, **callback.ray_states()}
    table = refresh_tables(study, states)
    reconcile_optuna(study, info, ostudy)
    summary = summarise(study, table, time.time() - started)
    if summary["by_state"].get("FAILED", 0) == len(table) and len(table) > 0:
        reasons = sorted(set(table["failure_reason"].astype(str)))[:3]
        raise StudyFailed(
            f"all {len(table)} trials failed, e.g. {'; '.join(reasons)} "
            f"(details: revstudy status {info['name']})"
        )
    return summary


def recorded_states(ostudy: Any, objectives: list[str]) -> dict[str, dict[str, Any]]:
    """Ray-style states of earlier driver runs' trials, from Optuna (this run's Ray knows
    only its own trials): PRUNED was stopped early at its last reported epoch, FAIL failed,
    RUNNING was interrupted (`resume` continues it)."""
    import optuna

    from revstudy.search import RAY_ID_ATTR, RETRIED_ATTR

    ts = optuna.trial.TrialState
    status = {ts.PRUNED: "TERMINATED", ts.FAIL: "ERROR", ts.COMPLETE: "TERMINATED"}
    out: dict[str, dict[str, Any]] = {}
    for t in ostudy.get_trials(deepcopy=False):
        rid = t.user_attrs.get(RAY_ID_ATTR)
        if not isinstance(rid, str) or t.state not in status or t.user_attrs.get(RETRIED_ATTR):
            continue
        last: dict[str, Any] = {}
        if t.intermediate_values:
            last["epoch"] = max(t.intermediate_values)
        if len(objectives) == 1 and t.value is not None:  # the value it stopped on
            last[objectives[0]] = t.value
        error = t.user_attrs.get("revstudy_reason", "failed (see its failure.json)")
        out[rid] = {
            "status": status[t.state],
            "config": dict(t.params),
            "error": error if t.state == ts.FAIL else "",
            "last_result": last,
        }
    return out


def _remaining_budget(study: Path, info: dict[str, Any]) -> float | None:
    """Seconds left of `--time-budget` after earlier driver runs (None: no budget)."""
    if info.get("time_budget_s") is None:
        return None
    from revstudy.records import read_json

    spent = (read_json(study / "driver.json") or {}).get("elapsed_s", 0.0)
    return float(info["time_budget_s"]) - (spent if isinstance(spent, int | float) else 0.0)


def _add_elapsed(study: Path, seconds: float) -> None:
    """driver.json: the wall time of every driver run so far (for the time budget)."""
    from revstudy.records import read_json

    doc = read_json(study / "driver.json") or {}
    elapsed = doc.get("elapsed_s", 0.0)
    runs = doc.get("runs", 0)
    write_json_atomic(
        study / "driver.json",
        {
            "elapsed_s": (elapsed if isinstance(elapsed, int | float) else 0.0) + seconds,
            "runs": (runs if isinstance(runs, int) else 0) + 1,
        },
    )


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


def reconcile_optuna(study: Path, info: dict[str, Any], ostudy: Any = None) -> int:
    """After a driver run: an Optuna trial still RUNNING whose folder holds a result.json
    finished after its driver lost track of it (killed between the two writes): tell Optuna
    from the record. The other RUNNING trials were interrupted and `resume` continues them.
    Returns the number of trials told here."""
    from revstudy.records import read_json
    from revstudy.search import tell, unfinished

    ostudy = ostudy if ostudy is not None else open_optuna(study, info)
    objectives = [(o["metric"], o["mode"]) for o in info["objectives"]]
    n = 0
    for c in unfinished(ostudy):
        result = read_json(study / "trials" / c.record_id / "result.json")
        if result is not None and isinstance(result.get("report"), dict):
            tell(ostudy, c.number, objectives, result["report"], error=False)
            n += 1
    return n


def summarise(study: Path, table: Any, elapsed: float | None = None) -> dict[str, Any]:
    """Counts by state and the best trial, for status output and `--json`."""
    info = read_study_info(study)
    by_state = {k: int(v) for k, v in table["state"].value_counts().items()} if len(table) else {}
    best = None
    objectives = StudyInfo.from_dict(info, str(study / "study.json")).objectives
    ranked = rank_finished(table, list(objectives)).drop(columns=["front", "rank"])
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
    problems = (
        [
            f"trial {r.trial_id}: {r.failure_reason}; shown as DAMAGED and not ranked "
            "(Optuna keeps its record; resume does not re-run it)"
            for r in table.itertuples()
            if getattr(r, "state", "") == "DAMAGED"
        ]
        if len(table)
        else []
    )
    out = {
        "name": info["name"],
        "path": str(study),
        "size_bytes": folder_size(study),
        "problems": problems,
        "trials": len(table),
        "requested": info["num_samples"],
        "by_state": by_state,
        "objectives": info["objectives"],
        "best": best,
    }
    if elapsed is not None:
        out["elapsed_s"] = elapsed
    return out


def folder_size(path: Path) -> int:
    """Bytes under `path` (what a study costs on disk; shown by `status`)."""
    total = 0
    for root, _, files in os.walk(path):
        for f in files:
            with contextlib.suppress(OSError):  # a file replaced while we walk
                total += os.lstat(os.path.join(root, f)).st_size
    return total


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
