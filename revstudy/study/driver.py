"""Ray Tune + OptunaSearch wiring: launch, resume, lock, progress and tidy records.

The study directory (docs/study-dir.md) holds the Optuna study (`optuna.journal`; older
studies' `optuna.db`), per-trial folders, tidy tables and Ray's logs (`ray/`, never read
back). Optuna's sampler proposes configs through Ray Tune's `OptunaSearch`
(`revstudy.study.search.StudySearcher`); ASHA stops weak trials from per-epoch reports; each
trial checkpoints every epoch into its own folder. Launch and resume are the same driver run
(`_run`): continue the unfinished Optuna trials, then ask new ones, so an interrupted study
resumes without losing, repeating or unpickling anything."""

from __future__ import annotations

import contextlib
import fcntl
import importlib.metadata
import os
import shlex
import sys
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from revstudy.data.dataset import Dataset, read_dataset
from revstudy.errors import RevstudyError
from revstudy.files import write_json_atomic
from revstudy.optunafile import OPTUNA_FILES, OPTUNA_JOURNAL
from revstudy.outputs import storage_dir
from revstudy.study import stopping
from revstudy.study.budget import DriverClock, remaining_budget
from revstudy.study.devices import default_gpu_share
from revstudy.study.options import (
    LaunchOptions,
    check_address,
    check_constraint,
    check_objectives,
    parse_objectives,
    relaunch_changes,
)
from revstudy.study.optuna_store import (
    BASELINE_ATTR,
    check_covers_folders,
    counted_trials,
    discard_unstarted,
    open_optuna,
    reconcile_optuna,
    recorded_states,
    retries,
    succeeded,
    unfinished,
)
from revstudy.study.ray_runtime import check_resources, ray_init, trainable
from revstudy.study.records import drop_finished_checkpoints, refresh_tables, remove_stale_temps
from revstudy.study.spaces import SearchSpace, baseline_params, load_space
from revstudy.study.summary import summarise
from revstudy.study.tracking import StudyTrackers, check_trackers
from revstudy.study.trial_context import TrialContext
from revstudy.study.warm_start import WarmTrial, add_warm_trials, gather
from revstudy.studyfolder import (
    STUDY_FILE,
    Constraint,
    Objective,
    check_name,
    find_study,
    parse_constraint,
    public_params,
    storage_root,
)
from revstudy.studyinfo import DataRecord, StudyInfo, WarmSource, read_study
from revstudy.training.config import step_shape
from revstudy.trialtable import read_epochs
from revstudy.version import __version__


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


def _remove_refused_study(study: Path) -> None:
    """Remove a study folder that holds nothing but our lock and a fresh Optuna record
    (called while holding the lock, before study.json exists)."""
    ours = {".lock", *OPTUNA_FILES}
    if study.is_dir() and {p.name for p in study.iterdir()} <= ours:
        for name in ours:
            (study / name).unlink(missing_ok=True)
        study.rmdir()


def launch(opts: LaunchOptions, *, progress: bool = True) -> dict[str, Any]:
    """Start a new study, or continue it if `opts.name` already exists (its settings kept)."""
    from revstudy.data.fetch import resolve_data

    opts.validate()
    if opts.name:
        check_name(opts.name)
    root = storage_dir(storage_root(opts.storage))
    if opts.name and (root / opts.name / STUDY_FILE).is_file():
        return _relaunch(opts, root / opts.name, progress)
    space = load_space(opts.resolved("space"))
    objectives = parse_objectives(opts.objectives or list(space.objectives))
    bounds = [check_constraint(parse_constraint(c)) for c in opts.constraints or space.constraints]
    name = opts.name or f"{space.name}-{datetime.now().strftime('%Y%m%d-%H%M%S')}"
    study = root / name
    repeats = opts.repeats if opts.repeats is not None else space.repeats
    if repeats < 1:
        raise RevstudyError(f"{space.path}: repeats must be >= 1")
    dataset = read_dataset(resolve_data(opts.data))
    warm = _warm_start(opts, space, objectives, bounds, dataset)  # refused before any work
    with study_lock(study):
        if (study / STUDY_FILE).exists():  # another launch of this name won the race
            raise RevstudyError(
                f"study {name} was created by another launch meanwhile; "
                "the same `revstudy launch` again continues it"
            )
        try:
            ray_init(opts.address)  # first: it configures Ray before importing it
            import ray

            gpus = opts.gpus_per_trial
            if gpus is None:
                gpus = default_gpu_share(opts.address, ray.cluster_resources().get("GPU", 0))
            cpus = opts.resolved("cpus_per_trial")
            check_resources(opts.address, cpus, gpus)
            info = _new_info(opts, space, study, objectives, dataset, (repeats, cpus, gpus))
            info = info.replace(
                constraints=tuple(str(b) for b in bounds), warm_start=warm[1], log=tuple(opts.log)
            )
            ostudy = open_optuna(study, info, create=True)
            add_warm_trials(ostudy, info, warm[0])  # first: the study's own trials follow
            point = baseline_params(space) if info.baseline else None
            if point is not None:  # the first trial Optuna hands out
                ostudy.enqueue_trial(point, user_attrs={BASELINE_ATTR: True})
            write_json_atomic(study / STUDY_FILE, info.to_dict())  # last: the study exists now
        except BaseException:  # refused before it started: leave no empty study behind
            _remove_refused_study(study)
            raise
        return _run(study, info, space, dataset, progress=progress)


def _warm_start(
    opts: LaunchOptions,
    space: SearchSpace,
    objectives: list[Objective],
    bounds: list[Constraint],
    dataset: Dataset,
) -> tuple[list[WarmTrial], tuple[WarmSource, ...]]:
    """The trials `--warm-start` brings (checked against what the new study will be) and
    what study.json records of them; warnings and a one-line note on stderr."""
    if not opts.warm_start:
        return [], ()
    probe = StudyInfo(  # what the checks compare against: data, objectives, seed, bounds
        name=opts.name or space.name,
        objectives=tuple(objectives),
        seed=opts.resolved("seed"),
        constraints=tuple(str(b) for b in bounds),
        data=DataRecord(str(dataset.path), dataset.sha256, len(dataset)),
    )
    trials, sources, warnings = gather(
        opts.warm_start, probe, space, opts.storage, allow_any=bool(opts.warm_start_any)
    )
    for w in warnings:
        print(f"warning: {w}", file=sys.stderr)
    for s in sources:
        why = f" ({s.left_out_text()})" if s.n_left_out else ""
        print(
            f"note: warm start: {s.used} finished trial(s) of {s.study}, "
            f"{s.n_left_out} left out{why}",
            file=sys.stderr,
        )
    return trials, tuple(sources)


def _relaunch(opts: LaunchOptions, study: Path, progress: bool) -> dict[str, Any]:
    """`launch --name EXISTING`: continue that study with its own settings; flags that
    contradict them are refused, `--num-samples` may grow it."""
    from revstudy.data.fetch import resolve_data

    existing = read_study(study, for_run=True)
    sha = read_dataset(resolve_data(opts.data)).sha256 if opts.data else None
    grow = relaunch_changes(opts, existing, sha)
    kept = ", ".join(
        f"{k} {getattr(existing, k)}" for k in ("sampler", "scheduler", "repeats", "seed")
    )
    print(
        f"note: study {study.name} exists; continuing it with its settings ({kept})",
        file=sys.stderr,
    )
    return resume(
        study.name, storage=opts.storage, address=opts.address, progress=progress, num_samples=grow
    )


def _new_info(
    opts: LaunchOptions,
    space: SearchSpace,
    study: Path,
    objectives: list[Objective],
    dataset: Dataset,
    resources: tuple[int, float, float],
) -> StudyInfo:
    """study.json of a new study, built once: every setting resolved (`resources`:
    repeats, CPUs and GPUs per trial), data and versions recorded."""
    import optuna
    import ray

    name = study.name
    repeats, cpus, gpus = resources

    return StudyInfo(
        name=name,
        objectives=tuple(objectives),
        space=space.to_dict(),
        sampler=opts.resolved("sampler"),
        scheduler=opts.resolved("scheduler"),
        seed=opts.resolved("seed"),
        num_samples=opts.resolved("num_samples"),
        repeats=repeats,
        max_concurrent=opts.resolved("max_concurrent"),
        pack=opts.resolved("pack"),
        cpus_per_trial=float(cpus),
        gpus_per_trial=float(gpus),
        time_budget_s=opts.time_budget_s,
        test_fraction=space.to_config({}).test_fraction,
        baseline=opts.resolved("baseline"),
        max_failures=opts.resolved("max_failures"),
        data=DataRecord(str(Path(dataset.path).resolve()), dataset.sha256, len(dataset)),
        optuna_study_name=name,
        optuna_storage=str(study / OPTUNA_JOURNAL),
        # written in the Optuna record too: another study's record is recognised and refused
        study_id=uuid.uuid4().hex,
        created=datetime.now(UTC).isoformat(timespec="seconds"),
        versions={
            "revstudy": __version__,
            "ray": ray.__version__,
            "optuna": optuna.__version__,
            "torch": importlib.metadata.version("torch"),  # not imported by the driver
        },
    )


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
    if address is not None:
        check_address(address)
    study = find_study(name, storage)
    info = read_study(study, for_run=True)  # every field typed, before anything starts
    check_objectives(list(info.objectives), f"{study / STUDY_FILE}")
    check_trackers(info.log)  # the study logs to them: their packages must be here
    space = SearchSpace.from_info(info.space)
    dataset = read_dataset(info.data_file.path)
    if dataset.sha256 != info.data_file.sha256:
        raise RevstudyError(
            f"{dataset.path}: data file changed since the study started "
            "(sha256 differs); restore it to resume"
        )
    with study_lock(study):
        removed = remove_stale_temps(study)  # left by a run killed mid-write (or disk full)
        if removed:
            print(
                f"note: removed {removed} temporary file(s) of an interrupted run", file=sys.stderr
            )
        # a missing, damaged or cut-short Optuna record stops here, before Ray
        ostudy = open_optuna(study, info, mend=True)  # the study is locked: mend a torn journal
        check_covers_folders(study, ostudy)
        if num_samples is not None and num_samples > info.num_samples:
            print(
                f"note: study {info.name} grows from {info.num_samples} to {num_samples} trials",
                file=sys.stderr,
            )
            info = info.replace(num_samples=num_samples)
            write_json_atomic(study / STUDY_FILE, info.to_dict())
        ray_init(address)
        check_resources(address, info.cpus_per_trial, info.gpus_per_trial)
        return _run(
            study, info, space, dataset, ostudy, retry_failed=retry_failed, progress=progress
        )


def _run(
    study: Path,
    info: StudyInfo,
    space: SearchSpace,
    dataset: Dataset,
    ostudy: Any = None,
    *,
    retry_failed: bool = False,
    progress: bool = True,
) -> dict[str, Any]:
    """One driver run: continue unfinished Optuna trials, then ask new ones up to num_samples.

    Launch and resume are the same run: nothing of an earlier driver's Ray state is read
    (no `Tuner.restore`, no unpickling); the Optuna database and the trial folders are the
    whole state of a study (docs/study-dir.md). `ostudy`: the record as resume opened and
    checked it (replaying a journal of 10⁴ trials takes ~1 s); None opens it here."""
    # these import Ray, which `ray_init` configures before Ray is first imported
    from revstudy.study.callbacks import StudyCallback, StudyStopper
    from revstudy.study.packs import PackCallback

    if ostudy is None:  # the study is locked: mend a torn journal
        ostudy = open_optuna(study, info, mend=True)
    drop_finished_checkpoints(study)  # left by a driver killed as a trial ended
    lost = discard_unstarted(ostudy)  # asked of Optuna as the last driver was killed
    if lost:
        note = f"note: {lost} trial(s) the last run never started will be asked anew"
        print(note, file=sys.stderr)
    counted = counted_trials(ostudy)  # before this run
    stopper = StudyStopper(min(info.num_samples, 4), succeeded=succeeded(counted))
    searcher, scheduler, book = _search(
        study, info, space, ostudy, retry_failed, stopper.holding, counted=len(counted)
    )
    budget = remaining_budget(study, info)
    ended = len(counted) - len(searcher.continuations)
    callback = (
        StudyCallback(study, info, stopper, live=progress, done_before=max(0, ended))
        if book is None
        else PackCallback(study, info, stopper, live=progress, done_before=max(0, ended), book=book)
    )
    callback.number_of = searcher.number_of  # trial.json's Optuna number without a lookup
    callback.trackers = StudyTrackers(study, info, info.log) if info.log else None
    # SIGTERM (scancel, a time limit) stops the run as Ctrl-C does
    with stopping.on_sigterm(), DriverClock(study) as clock:  # the clock counts a killed run
        try:
            if searcher.total > 0 and (budget is None or budget > 0):
                tuner = _tuner(
                    study, info, space, dataset, (searcher, scheduler, stopper, callback, budget)
                )
                with callback.display():
                    tuner.fit()
            elif budget is not None and budget <= 0:
                print("note: the study's time budget is spent; nothing new to run", file=sys.stderr)
        finally:
            if callback.trackers is not None:
                callback.trackers.close()
    gave_up = stopper.failed if stopper.stop_all() else 0
    return _summarise_run(study, info, ostudy, callback.ray_states(), clock.elapsed, gave_up)


def _search(
    study: Path,
    info: StudyInfo,
    space: SearchSpace,
    ostudy: Any,
    retry_failed: bool,
    hold: Callable[[], bool],
    *,
    counted: int,
) -> tuple[Any, Any, Any]:
    """The searcher (Optuna's trials to continue, then new ones up to `num_samples` beyond
    the `counted` trials, which the caller has read; none while `hold` says so), the
    scheduler (ASHA, its rungs seeded with the continued trials' epochs so far)
    and, for a study of packs, the `PackBook` they share with the callback (None for lone
    trials)."""
    # these import Ray, which `ray_init` configures before Ray is first imported
    from revstudy.study.packs import PackBook, PackScheduler, PackSearcher
    from revstudy.study.scheduling import epoch_history, make_scheduler
    from revstudy.study.search import StudySearcher

    continuations = unfinished(ostudy) + (retries(ostudy) if retry_failed else [])
    new = max(0, info.num_samples - counted)
    history = epoch_history(read_epochs(study), info.metrics)
    packed = info.pack > 1
    # a lone continued trial runs under a new Ray id, a pack member under its folder id
    continued = {} if packed else {c.record_id: history.pop(c.record_id, []) for c in continuations}
    baseline = baseline_params(space) if info.baseline else None
    scheduler, asha = make_scheduler(
        info,
        _max_epochs(space, info.baseline),
        history,
        protect=None if baseline is None else lambda c: public_params(c) == baseline,
    )
    if packed:
        book = PackBook()
        packs = PackSearcher(
            ostudy,
            space,
            info.objectives,
            continuations=continuations,
            new=new,
            pack=info.pack,
            book=book,
            shape=lambda params: step_shape(space.to_config(params)),
            shape_params=space.shape_params(),
            constraints=info.bounds,
            hold=hold,
        )
        return packs, PackScheduler(book, asha), book

    def on_continue(ray_id: str, record_id: str) -> None:
        if asha is not None:  # a continued trial keeps its place in ASHA's rungs
            asha.seed(ray_id, continued.get(record_id, []))

    searcher = StudySearcher(
        ostudy,
        space,
        info.objectives,
        continuations=continuations,
        new=new,
        on_continue=on_continue,
        constraints=info.bounds,
        hold=hold,
    )
    return searcher, scheduler, None


def _tuner(study: Path, info: StudyInfo, space: SearchSpace, dataset: Dataset, parts: tuple) -> Any:
    """A fresh Ray Tune run of this driver (`parts`: searcher, scheduler, stopper, callback,
    the time budget left)."""
    from ray import tune
    from ray.tune.search import ConcurrencyLimiter

    searcher, scheduler, stopper, callback, budget = parts
    search_alg: Any = searcher
    if info.max_concurrent:
        search_alg = ConcurrencyLimiter(searcher, max_concurrent=info.max_concurrent)
    return tune.Tuner(
        trainable(
            TrialContext.of_study(
                study, info, space, dataset, validate_epochs=_milestones(scheduler)
            ),
            info.cpus_per_trial,
            packs=info.pack > 1,
        ),
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
            failure_config=tune.FailureConfig(max_failures=info.max_failures),
        ),
    )


def _summarise_run(
    study: Path,
    info: StudyInfo,
    ostudy: Any,
    ray_states: dict[str, Any],
    elapsed: float,
    gave_up: int = 0,
) -> dict[str, Any]:
    """After a run: tables from the trial folders and every trial's state, Optuna brought in
    step with them, the summary; `StudyFailed` when every trial failed, or when the run
    stopped after `gave_up` failures and no success (`StudyStopper`)."""
    recorded = recorded_states(ostudy, info.metrics)  # Optuna's storage is read afresh
    table = refresh_tables(study, {**recorded, **ray_states})
    reconcile_optuna(study, info, ostudy)
    summary = summarise(study, info, table, elapsed)
    failed = table[table["state"] == "FAILED"] if len(table) else table
    if len(failed) and (gave_up or len(failed) == len(table)):
        reasons = "; ".join(sorted(set(failed["failure_reason"].astype(str)))[:3])
        what = (
            f"{gave_up} trials failed and none succeeded, so the study stopped"
            if gave_up
            else f"all {len(table)} trials failed"
        )
        details = f"revstudy status {shlex.quote(str(study))}"
        raise StudyFailed(f"{what}, e.g. {reasons} (details: {details})")
    return summary


def _milestones(scheduler: Any) -> tuple[int, ...]:
    """The epochs the scheduler compares trials at (ASHA's rungs; none for run-to-end)."""
    milestones = getattr(scheduler, "milestones", None)
    return tuple(milestones()) if callable(milestones) else ()


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
