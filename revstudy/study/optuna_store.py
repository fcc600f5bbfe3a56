"""The study's Optuna record (`optuna.journal`; older studies' `optuna.db`): opened with
checks, seeded samplers, the queries and writes the driver makes (trials to continue, retry,
count or tell) and kept in step with the trial folders (what earlier driver runs did, what a
killed run left).

Ray's side of the search (`StudySearcher`) is in `revstudy.study.search`; everything that
reads or writes the database is here.
"""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import optuna

from revstudy.errors import RevstudyError
from revstudy.files import read_json
from revstudy.jsontypes import is_int
from revstudy.optunafile import (
    OPTUNA_JOURNAL,
    mend_journal,
    optuna_path,
    optuna_storage,
)
from revstudy.optunarecord import open_record, uncovered_folders
from revstudy.study.options import SAMPLERS
from revstudy.study.tpe import FitOnceTPESampler
from revstudy.studyfolder import (
    FINAL_KEY,
    RESULT_FILE,
    TRIAL_FILE,
    Constraint,
    Objective,
    numerical_problem,
    trial_dir,
    trial_entries,
)
from revstudy.studyinfo import STUDY_ID_ATTR, WARM_START_ATTR, StudyInfo, foreign_database

__all__ = [
    "BASELINE_ATTR",
    "COUNTED",
    "RAY_ID_ATTR",
    "RETRY_OF_ATTR",
    "Continuation",
    "check_covers_folders",
    "check_owner",
    "counted_trials",
    "discard_unstarted",
    "make_sampler",
    "new_running_trial",
    "open_optuna",
    "reconcile_optuna",
    "recorded_states",
    "retried_numbers",
    "retries",
    "tell",
    "unfinished",
]

RAY_ID_ATTR = "ray_trial_id"  # Optuna user attr: the trial's folder under trials/
# a FAIL trial run again gets a new Optuna number; the new trial names the one it retries
# (a finished trial cannot be marked: Optuna refuses to update it)
RETRY_OF_ATTR = "revstudy_retry_of"
BASELINE_ATTR = "revstudy_baseline"  # the enqueued paper baseline
UNSTARTED_ATTR = "revstudy_never_started"  # asked of Optuna, driver died before Ray had it
INFEASIBLE = 1e12  # the violation recorded for a bound not measured or a diverged trial
TS = optuna.trial.TrialState
COUNTED = (TS.COMPLETE, TS.PRUNED, TS.FAIL, TS.RUNNING)  # WAITING: enqueued, not started


@dataclass(frozen=True)
class Continuation:
    """An Optuna trial to run (again) under its old folder id, from its checkpoint if any."""

    number: int  # Optuna trial number
    record_id: str  # folder name under trials/
    params: dict[str, Any]


def counted_trials(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    """Trials that count towards `num_samples` (a retried failure counts once, a trial that
    never started or came from an earlier study by `--warm-start` not at all)."""
    retried = retried_numbers(study)
    return [
        t
        for t in study.get_trials(deepcopy=False, states=COUNTED)
        if t.number not in retried
        and not t.user_attrs.get(UNSTARTED_ATTR)
        and not t.user_attrs.get(WARM_START_ATTR)
    ]


def succeeded(counted: list[optuna.trial.FrozenTrial]) -> int:
    """How many of the `counted_trials` trained to an outcome (COMPLETE, or PRUNED by the
    scheduler)."""
    return sum(t.state in (TS.COMPLETE, TS.PRUNED) for t in counted)


def retried_numbers(study: optuna.Study) -> set[int]:
    """Numbers of the FAIL trials that `resume --retry-failed` has run again."""
    out = set()
    for t in study.get_trials(deepcopy=False):
        number = t.user_attrs.get(RETRY_OF_ATTR)
        if is_int(number):
            out.add(number)
    return out


def discard_unstarted(study: optuna.Study) -> int:
    """RUNNING trials without a folder id: the driver died while Optuna was sampling them
    (between `ask` and the id), so no Ray trial and no folder ever existed. Each is marked
    failed and never started (not counted, so a new trial takes its place), and an enqueued
    one (the paper baseline) is enqueued again. Only a driver holding the study lock may call
    this. Returns how many were discarded."""
    n = 0
    for t in study.get_trials(deepcopy=False, states=(TS.RUNNING,)):
        if t.user_attrs.get(RAY_ID_ATTR):
            continue
        optuna.trial.Trial(study, t._trial_id).set_user_attr(UNSTARTED_ATTR, True)
        study.tell(t.number, state=TS.FAIL)
        fixed = t.system_attrs.get("fixed_params")
        if isinstance(fixed, dict) and fixed:
            study.enqueue_trial(fixed)
        n += 1
    return n


def unfinished(study: optuna.Study) -> list[Continuation]:
    """RUNNING trials: their driver died (or was interrupted) before they ended."""
    out = []
    for t in study.get_trials(deepcopy=False, states=(TS.RUNNING,)):
        rid = t.user_attrs.get(RAY_ID_ATTR)
        if isinstance(rid, str) and rid:
            out.append(Continuation(t.number, rid, dict(t.params)))
    return out


def retries(study: optuna.Study) -> list[Continuation]:
    """FAIL trials to run again (`resume --retry-failed`), each as a new RUNNING Optuna trial
    with the same parameters and folder (it continues from its last checkpoint there)."""
    out = []
    retried = retried_numbers(study)
    for t in study.get_trials(deepcopy=False, states=(TS.FAIL,)):
        rid = t.user_attrs.get(RAY_ID_ATTR)
        if t.number in retried or not isinstance(rid, str) or not rid:
            continue
        attrs = {**t.user_attrs, RETRY_OF_ATTR: t.number}
        number = new_running_trial(study, t.params, t.distributions, attrs)
        out.append(Continuation(number, rid, dict(t.params)))
    return out


def new_running_trial(
    study: optuna.Study,
    params: dict[str, Any],
    distributions: dict[str, Any],
    user_attrs: dict[str, Any],
) -> int:
    """A new RUNNING trial with these parameters (not asked of the sampler: a retry, a
    warm-start trial); returns its number, for `tell`."""
    template = optuna.trial.FrozenTrial(
        number=-1,
        state=TS.RUNNING,
        value=None,
        values=None,
        datetime_start=datetime.now(),
        datetime_complete=None,
        params=dict(params),
        distributions=dict(distributions),
        user_attrs=dict(user_attrs),
        system_attrs={},
        intermediate_values={},
        trial_id=-1,
    )
    new_id = study._storage.create_new_trial(study._study_id, template_trial=template)
    return int(study._storage.get_trial_number_from_id(new_id))


def tell(
    study: optuna.Study,
    number: int,
    objectives: Sequence[Objective],
    result: dict | None,
    error: bool,
    constraints: Sequence[Constraint] = (),
) -> TS:
    """Record a trial's outcome in Optuna; returns the state told. With `constraints`, a
    completed trial's violation of each goes with it (`Trial.set_constraint`, named by the
    constraint: <= 0 feasible, as Optuna defines it); a numerically broken (diverged) trial
    violates every one. A trial stopped early has none: its final figures were never
    measured, and Optuna counts it feasible."""
    result = result or {}
    values = [as_number(result.get(o.metric)) for o in objectives]
    if error:
        state = TS.FAIL
    elif result.get(FINAL_KEY):
        state = TS.COMPLETE if all(v is not None for v in values) else TS.FAIL
        if state == TS.FAIL:
            study._storage.set_trial_user_attr(  # why, for optuna-dashboard and status
                storage_id(study, number), "revstudy_reason", "final objective is NaN"
            )
    else:
        state = TS.PRUNED  # stopped before its final evaluation (scheduler, time budget)
    if state == TS.COMPLETE and constraints:
        broken = numerical_problem(result, tuple(o.metric for o in objectives)) is not None
        trial = optuna.trial.Trial(study, storage_id(study, number))
        for c in constraints:
            v = INFEASIBLE if broken else min(c.violation(result), INFEASIBLE)
            with contextlib.suppress(ValueError, RuntimeError):  # finished already: as it was
                trial.set_constraint(str(c), v)
    try:
        if state == TS.COMPLETE:
            study.tell(number, [v for v in values if v is not None])
        else:
            study.tell(number, state=state)
    except (ValueError, RuntimeError):  # already finished (told by an earlier driver)
        pass
    return state


def storage_id(study: optuna.Study, number: int) -> int:
    """The storage's id of trial `number` (numbers count per study, ids per database)."""
    return int(study._storage.get_trial_id_from_study_id_trial_number(study._study_id, number))


def as_number(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, int | float):
        return None
    return float(v) if math.isfinite(v) else None


def make_sampler(name: str, seed: int, multi: bool) -> Any:
    """The Optuna sampler `--sampler` names, seeded. TPE, GP and NSGA-II read the
    constraint values `tell` sets on each trial (Optuna 5's `Trial.set_constraint`; its
    `constraints_func` is deprecated) and prefer feasible trials; random and QMC do not
    learn. TPE is Optuna's, fitted once per set of finished trials (revstudy.study.tpe:
    the same suggestions, fewer fits when a pack's members are asked together)."""
    if name == "tpe":
        return FitOnceTPESampler(seed=seed)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "gp":
        return optuna.samplers.GPSampler(seed=seed)
    if name == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed)
    if name == "qmc":
        # its first suggestion imports scipy.stats (~1 s), inside the searcher call Ray times
        # and warns about ("Define-by-run function … took 1.3 seconds"): imported here, once
        import scipy.stats  # noqa: F401

        with warnings.catch_warnings():  # "experimental": Optuna is pinned, so is its interface
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.samplers.QMCSampler(seed=seed)
    raise RevstudyError(f"--sampler: choose from {', '.join(SAMPLERS)}, got {name!r}")


def open_optuna(study: Path, info: StudyInfo, *, create: bool = False, mend: bool = False) -> Any:
    """The study's Optuna study (created at launch, in `optuna.journal`; a study launched
    before the journal keeps its `optuna.db`: revstudy.optunafile); one-line errors for a
    missing or damaged record, which is never replaced by an empty one. `mend` (the driver,
    with the study locked) first cuts a torn last line a killed driver left in the journal.

    The sampler is seeded with the study seed plus the trials already run, so a resumed
    study does not replay the first run's random suggestions."""
    import sqlalchemy.exc

    path = optuna_path(study)
    if mend and not create and path.name == OPTUNA_JOURNAL and path.is_file():
        mend_journal(path)
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # progress has its own display
    multi = len(info.objectives) > 1
    try:
        if not create:
            s = open_record(study, info)  # one-line errors; another study's record refused
            waiting = (optuna.trial.TrialState.WAITING,)  # enqueued (the baseline), not asked
            done = len(s.get_trials(deepcopy=False))
            done -= len(s.get_trials(deepcopy=False, states=waiting))
            s.sampler = make_sampler(info.sampler, info.seed + done, multi)
            return s
        created = optuna.create_study(
            study_name=info.optuna_name,
            storage=optuna_storage(study, create=True),
            directions=["maximize" if o.mode == "max" else "minimize" for o in info.objectives],
            sampler=make_sampler(info.sampler, info.seed, multi),
        )
        if info.study_id:
            created.set_user_attr(STUDY_ID_ATTR, info.study_id)
        return created
    except (sqlalchemy.exc.SQLAlchemyError, KeyError, ValueError) as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
        raise RevstudyError(
            f"{path}: not a readable Optuna study {info.optuna_name!r} ({first})"
        ) from None


def check_covers_folders(study: Path, ostudy: Any) -> None:
    """Refuse, before anything runs, an Optuna record that lacks trials the study's folders
    hold (`optunarecord.uncovered_folders`): cut short (a copy taken mid-write, a full
    disk) or replaced by an older copy."""
    ids, _ = trial_entries(study)
    folders = {}
    for tid in ids:
        number = (read_json(trial_dir(study, tid) / TRIAL_FILE) or {}).get("number")
        if is_int(number):
            folders[tid] = number
    why = uncovered_folders(study, ostudy, folders)
    if why is not None:
        raise RevstudyError(why)


def check_owner(record: Path, ostudy: Any, info: StudyInfo) -> None:
    """Refuse an Optuna record that is not this study's own (another study's, renamed into
    this folder: its trials would be ranked as this study's)."""
    why = foreign_database(ostudy, info)
    if why is not None:
        raise RevstudyError(f"{record}: {why}")


def recorded_states(ostudy: Any, objectives: list[str]) -> dict[str, dict[str, Any]]:
    """Ray-style states of earlier driver runs' trials, from Optuna (this run's Ray knows
    only its own trials): PRUNED was stopped early at its last reported epoch, FAIL failed,
    RUNNING was interrupted (`resume` continues it)."""
    ts = optuna.trial.TrialState
    status = {ts.PRUNED: "TERMINATED", ts.FAIL: "ERROR", ts.COMPLETE: "TERMINATED"}
    out: dict[str, dict[str, Any]] = {}
    retried = retried_numbers(ostudy)
    for t in ostudy.get_trials(deepcopy=False):
        rid = t.user_attrs.get(RAY_ID_ATTR)
        if not isinstance(rid, str) or t.state not in status or t.number in retried:
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


def reconcile_optuna(study: Path, info: StudyInfo, ostudy: Any = None) -> int:
    """After a driver run: an Optuna trial still RUNNING whose folder holds a result.json
    finished after its driver lost track of it (killed between the two writes): tell Optuna
    from the record. The other RUNNING trials were interrupted and `resume` continues them.
    Returns the number of trials told here."""
    ostudy = ostudy if ostudy is not None else open_optuna(study, info)
    n = 0
    for c in unfinished(ostudy):
        try:  # the id comes from the database: checked like an id from a folder
            tdir = trial_dir(study, str(c.record_id))
        except RevstudyError:
            continue
        result = read_json(tdir / RESULT_FILE)
        if result is not None and isinstance(result.get("report"), dict):
            tell(ostudy, c.number, info.objectives, result["report"], False, info.bounds)
            n += 1
    return n
