"""The trials and epochs tables, built from the trial folders: the one reader of trial state.

`revstudy status`, `list`, `export`, the driver's tables and the report all read trial
states from here, so a study whose `trials.parquet` is missing or damaged shows the same
states everywhere (status once called a trial PENDING that the report, finding no table,
called not finished). Light (no Ray, no torch): `analysis` uses it too.
"""

from __future__ import annotations

import json
import math
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from revstudy.errors import RevstudyError
from revstudy.files import UnsafeFileError, read_json, read_regular
from revstudy.jsontypes import is_number
from revstudy.studyfolder import (
    EPOCHS_FILE,
    EPOCHS_TABLE,
    FAILURE_FILE,
    RESULT_FILE,
    STATE_FILE,
    STOPPED_FILE,
    TRIAL_FILE,
    TRIALS_DIR,
    TRIALS_TABLE,
    Constraint,
    numerical_problem,
    read_table,
    trial_dir,
    trial_entries,
    worst_violation,
)
from revstudy.studyinfo import read_study

__all__ = [
    "TableRules",
    "assemble_table",
    "build_trials_table",
    "epochs_table",
    "folder_numbers",
    "load_epochs",
    "load_trials",
    "read_epochs",
    "read_jsonl",
    "trial_epochs",
    "trial_row",
]


def build_trials_table(study: Path, ray_states: dict[str, dict[str, Any]]) -> pd.DataFrame:
    """One row per trial from the per-trial files, with Ray's view for unfinished trials.

    `ray_states[trial_id]` holds `status` (Ray's), `config` (params), `error` (one line) and
    `last_result`. Per-trial files win where they exist: they are written by the trial itself.
    A finished trial whose figures are numerically broken is DIVERGED, with the reason.
    """
    rules = TableRules.of(study)
    own, refused = trial_entries(study)
    ids = (set(ray_states) - set(refused)) | set(own)
    rows = {tid: trial_row(study, tid, ray_states.get(tid, {}), rules) for tid in ids}
    return assemble_table(refused, rows)


def damaged_rows(refused: dict[str, str]) -> list[dict[str, Any]]:
    """Rows of the entries under trials/ that are refused (reported, never followed)."""
    return [
        {"trial_id": name, "state": "DAMAGED", "failure_reason": reason}
        for name, reason in refused.items()
    ]


def assemble_table(refused: dict[str, str], rows: dict[str, dict[str, Any]]) -> pd.DataFrame:
    """The table of the refused entries, then one row per trial id in sorted order."""
    df = pd.DataFrame(damaged_rows(refused) + [rows[tid] for tid in sorted(rows)])
    if df.empty:
        df = pd.DataFrame(columns=["trial_id", "number", "state", "failure_reason"])
    return df


@dataclass(frozen=True)
class TableRules:
    """What judging a trial's row needs from study.json: the objectives (a finished trial
    whose objective is not a number is DAMAGED) and the constraints (its violation)."""

    objectives: tuple[str, ...] = ()
    constraints: tuple[Constraint, ...] = ()

    @classmethod
    def of(cls, study: Path) -> TableRules:
        return cls(*_objective_metrics(study))


def trial_row(study: Path, tid: str, ray: dict[str, Any], rules: TableRules) -> dict[str, Any]:
    """One trial's row, from its folder's files and Ray's view of it (`ray`: see
    `build_trials_table`; empty when this run's Ray does not know the trial)."""
    objectives, constraints = rules.objectives, rules.constraints
    try:
        tdir = trial_dir(study, tid)
    except RevstudyError as e:  # an id Ray holds that the folder cannot be trusted for
        return {"trial_id": tid, "state": "DAMAGED", "failure_reason": str(e)}
    result = read_json(tdir / RESULT_FILE)
    failure = read_json(tdir / FAILURE_FILE)
    meta = read_json(tdir / TRIAL_FILE)
    # a torn or edited trial.json would drop the trial's number, params and baseline flag:
    # the paper baseline could then be ranked as a winner
    bad_meta = _bad_trial_file(meta) if meta is not None or (tdir / TRIAL_FILE).exists() else None
    meta = meta or {}
    row: dict[str, Any] = {"trial_id": tid, "number": meta.get("number")}
    row["is_baseline"] = bool(meta.get("is_baseline", False))
    config = (result or {}).get("config") or meta.get("config") or {}
    last = (result or {}).get("metrics") or ray.get("last_result") or {}
    status = ray.get("status")
    epochs_target = int(config.get("epochs", 0) or 0)
    epochs_done = int(last.get("epoch", 0) or 0)
    damaged = result is None and (tdir / RESULT_FILE).exists()
    wrong = _not_a_number(last, objectives) if result is not None else None
    if damaged or wrong or bad_meta:  # reported, never silently demoted or re-ranked
        state = "DAMAGED"
    elif result is not None:
        state = "COMPLETED"
    elif status in ("RUNNING", "PAUSED"):  # also a retry after a recorded failure
        state = "RUNNING"
    elif failure is not None or status == "ERROR":
        state = "FAILED"
    elif status == "TERMINATED" and epochs_done >= epochs_target > 0:
        state = "COMPLETED"
    elif (tdir / STOPPED_FILE).is_file():  # the scheduler's own record of its decision
        state = "STOPPED_EARLY"
    elif status == "TERMINATED":
        state = _cut_off(tdir, epochs_done)
    else:
        state = "PENDING"
    if state in ("COMPLETED", "STOPPED_EARLY") and not tdir.is_dir():
        # a finished trial always wrote its folder: this one exists only in the Optuna record
        state = "DAMAGED"
        failure = {"reason": f"{tdir}: missing; the trial is known only to the Optuna record"}
    problem = None
    if state in ("COMPLETED", "STOPPED_EARLY"):
        problem = numerical_problem(last, objectives)
        if problem is not None:  # ran, but its figures are not a model's: never ranked
            state = "DIVERGED"
    row["state"] = state
    row["failure_reason"] = problem or (
        (failure or {}).get("reason") or (ray.get("error") if state == "FAILED" else "") or ""
    )
    if damaged:
        row["failure_reason"] = f"{tdir / 'result.json'}: damaged (not a JSON object)"
    elif bad_meta:
        row["failure_reason"] = f"{tdir / TRIAL_FILE}: {bad_meta}"
    elif wrong:
        row["failure_reason"] = f"{tdir / 'result.json'}: {wrong}"
    if constraints:  # judged on its final figures; diverged or unmeasured: infeasible
        judged = state in ("COMPLETED", "DIVERGED") and result is not None
        row["violation"] = worst_violation(last, constraints) if judged else math.nan
        row["feasible"] = (row["violation"] <= 0 and state != "DIVERGED") if judged else None
    row["epochs_done"] = epochs_done
    row["wall_seconds"] = (result or {}).get("wall_seconds", last.get("time_total_s"))
    row["device"] = (result or {}).get("device") or meta.get("device", "")  # actual, if known
    row["tf32"] = bool((result or {}).get("tf32", False))  # reduced-precision CUDA kernels
    row["repeat_fallback"] = str((result or {}).get("repeat_fallback") or "")
    # the Ray trial it trained in with other trials of its shape (`launch --pack`); "" alone
    row["pack"] = str((result or {}).get("pack") or (failure or {}).get("pack") or "")
    history = (result or {}).get("history") or {}
    row["resumes"] = len(history.get("resumed_after_epoch", []))
    # resumed on another device type: its random draws continued from a reseed
    row["generator_reseeded"] = len(history.get("generator_reseeded", []))
    row["params"] = json.dumps(meta.get("params", ray.get("config", {})))
    for k, v in config.items():
        row[f"config/{k}"] = json.dumps(v) if isinstance(v, list) else v
    for k, v in last.items():
        if is_number(v) and k not in row:
            row[k] = v
    return row


def _bad_trial_file(meta: dict[str, Any] | None) -> str | None:
    """Why a trial folder's trial.json cannot be trusted (None: it can): damaged, or its
    Optuna number or baseline flag of the wrong type."""
    if meta is None:
        return "damaged (not a JSON object)"
    number, baseline = meta.get("number"), meta.get("is_baseline", False)
    if number is not None and (isinstance(number, bool) or not isinstance(number, int)):
        return f"number is {str(number)[:40]!r}, not an integer"
    if not isinstance(baseline, bool):
        return f"is_baseline is {str(baseline)[:40]!r}, not true or false"
    return None


def _not_a_number(metrics: dict[str, Any], objectives: tuple[str, ...]) -> str | None:
    """Why a finished trial's objective cannot be ranked: recorded, but not a number (an
    edited or foreign result.json); None when every objective is a number or absent."""
    for key in objectives:
        value = metrics.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
            return f"objective {key} is {str(value)[:40]!r}, not a number"
    return None


def _objective_metrics(study: Path) -> tuple[tuple[str, ...], tuple[Constraint, ...]]:
    """The study's objective metric names and constraints (empty when study.json cannot
    tell: the table is still built, and status or resume report the damaged study.json)."""
    try:
        info = read_study(study)
        return tuple(info.metrics), info.bounds
    except RevstudyError:
        return (), ()


def _cut_off(tdir: Path, epochs_done: int) -> str:
    """Ray ended an unfinished trial that its scheduler did not stop: INTERRUPTED (Ctrl-C,
    the time budget, a lost driver; `resume` finishes it). A study from before STOPPED_FILE
    existed has no record either way: a trial whose checkpoint was removed as it ended and
    that had reported was stopped early by the scheduler there."""
    if (tdir / STATE_FILE).is_file() or epochs_done == 0:
        return "INTERRUPTED"
    return "STOPPED_EARLY"


# epochs.jsonl: one line per repeat and epoch (~2 KB); far beyond any real trial
JSONL_LIMIT = 256 * 2**20


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Rows of a JSON-lines file; a damaged line (a torn last line after a kill) is skipped
    with a warning that names the file and line, never silently. A file that is not a
    regular one of bounded size (a link, FIFO, /dev/zero) gives no rows and a warning."""
    rows: list[dict[str, Any]] = []
    try:
        text = read_regular(path, JSONL_LIMIT).decode(errors="replace")
    except (OSError, UnsafeFileError) as e:
        warnings.warn(f"{path}: not read ({e})", stacklevel=2)
        return rows
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError:
            row = None
        if not isinstance(row, dict):
            warnings.warn(f"{path}:{n}: skipped a damaged line", stacklevel=2)
            continue
        rows.append(row)
    return rows


def read_epochs(study: Path) -> pd.DataFrame:
    """All trials' epoch rows; a resumed trial's repeated epochs keep their last record."""
    ids, _ = trial_entries(study)
    return epochs_table({tid: trial_epochs(study, tid) for tid in ids})


def trial_epochs(study: Path, tid: str) -> list[dict[str, Any]]:
    """A trial folder's epoch rows (none when it has no epochs.jsonl yet)."""
    path = study / TRIALS_DIR / tid / EPOCHS_FILE
    return read_jsonl(path) if path.exists() else []


def epochs_table(rows: dict[str, list[dict[str, Any]]]) -> pd.DataFrame:
    """The epochs table of {trial id: its epoch rows}: the trial id first, a repeated
    (repeat, epoch) keeping its last row, sorted by trial, repeat and epoch."""
    records = [
        {"trial_id": tid, **{k: v for k, v in row.items() if k != "trial_id"}}
        for tid in sorted(rows)
        for row in rows[tid]
    ]
    if not records:
        return pd.DataFrame(columns=["trial_id", "repeat", "epoch"])
    df = pd.DataFrame(records)
    df = df.drop_duplicates(["trial_id", "repeat", "epoch"], keep="last")
    return df.sort_values(["trial_id", "repeat", "epoch"]).reset_index(drop=True)


def load_epochs(study: Path) -> pd.DataFrame:
    """The epochs table, rebuilt from the trial folders' epochs.jsonl when no parquet exists
    yet or the one there is damaged (a cache of those files, as trials.parquet is)."""
    try:
        table = read_table(study / EPOCHS_TABLE)
    except RevstudyError as e:
        warnings.warn(f"{e}; rebuilt from the trial folders", stacklevel=2)
        table = None
    return read_epochs(study) if table is None else table


def folder_numbers(table: pd.DataFrame) -> dict[str, int]:
    """{trial id: the Optuna number its trial.json names} of a trials table, trials without
    one left out: what `optunafile.record_gaps` checks the Optuna record against."""
    numbered = table.dropna(subset=["number"]) if len(table) else table
    return dict(zip(numbered["trial_id"], numbered["number"].astype(int), strict=True))


def load_trials(study: Path) -> pd.DataFrame:
    """The tidy table, rebuilt from the per-trial files when no parquet exists yet or the
    one there is damaged (it is a cache of those files; the damage is warned about)."""
    try:
        table = read_table(study / TRIALS_TABLE)
    except RevstudyError as e:
        warnings.warn(f"{e}; rebuilt from the trial folders", stacklevel=2)
        table = None
    return build_trials_table(study, {}) if table is None else table
