"""The study's Optuna record (`optuna.db`): opened with checks, seeded samplers, and kept
in step with the trial folders (what earlier driver runs did, what a killed run left)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from revstudy.errors import RevstudyError
from revstudy.files import read_json
from revstudy.study.options import SAMPLERS
from revstudy.studyfolder import RESULT_FILE, STUDY_ID_ATTR, foreign_database, optuna_url, trial_dir


def make_sampler(name: str, seed: int, multi: bool) -> Any:
    """The Optuna sampler `--sampler` names, seeded."""
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
            created = optuna.create_study(
                study_name=info["name"],
                storage=storage,
                directions=[
                    "maximize" if o["mode"] == "max" else "minimize" for o in info["objectives"]
                ],
                sampler=make_sampler(info["sampler"], info["seed"], multi),
            )
            if info.get("study_id"):
                created.set_user_attr(STUDY_ID_ATTR, info["study_id"])
            return created
        s = optuna.load_study(study_name=info["name"], storage=storage)
        check_owner(db, s, info)
        waiting = (optuna.trial.TrialState.WAITING,)  # enqueued (the baseline), not yet asked
        done = len(s.get_trials(deepcopy=False)) - len(s.get_trials(deepcopy=False, states=waiting))
        s.sampler = make_sampler(info["sampler"], info["seed"] + done, multi)
        return s
    except (sqlalchemy.exc.SQLAlchemyError, KeyError, ValueError) as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
        raise RevstudyError(
            f"{db}: not a readable Optuna study {info['name']!r} ({first})"
        ) from None


def check_owner(db: Path, ostudy: Any, info: dict[str, Any]) -> None:
    """Refuse an optuna.db that is not this study's own (another study's database renamed
    into this folder: its trials would be ranked as this study's)."""
    why = foreign_database(ostudy, info)
    if why is not None:
        raise RevstudyError(f"{db}: {why}")


def _check_sqlite(db: Path) -> None:
    with db.open("rb") as f:
        head = f.read(16)
    if head != b"SQLite format 3\x00":
        raise RevstudyError(f"{db}: not an SQLite database (damaged or replaced); not opened")


def recorded_states(ostudy: Any, objectives: list[str]) -> dict[str, dict[str, Any]]:
    """Ray-style states of earlier driver runs' trials, from Optuna (this run's Ray knows
    only its own trials): PRUNED was stopped early at its last reported epoch, FAIL failed,
    RUNNING was interrupted (`resume` continues it)."""
    import optuna

    from revstudy.study.search import RAY_ID_ATTR, RETRIED_ATTR

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


def reconcile_optuna(study: Path, info: dict[str, Any], ostudy: Any = None) -> int:
    """After a driver run: an Optuna trial still RUNNING whose folder holds a result.json
    finished after its driver lost track of it (killed between the two writes): tell Optuna
    from the record. The other RUNNING trials were interrupted and `resume` continues them.
    Returns the number of trials told here."""
    from revstudy.study.search import tell, unfinished

    ostudy = ostudy if ostudy is not None else open_optuna(study, info)
    objectives = [(o["metric"], o["mode"]) for o in info["objectives"]]
    n = 0
    for c in unfinished(ostudy):
        try:  # the id comes from the database: checked like an id from a folder
            tdir = trial_dir(study, str(c.record_id))
        except RevstudyError:
            continue
        result = read_json(tdir / RESULT_FILE)
        if result is not None and isinstance(result.get("report"), dict):
            tell(ostudy, c.number, objectives, result["report"], error=False)
            n += 1
    return n
