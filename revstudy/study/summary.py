"""What `revstudy status` and the API report about a study: counts by state, the best
trial under the study folder's ranking, problems and size on disk."""

from __future__ import annotations

import contextlib
import json
import math
import os
from pathlib import Path
from typing import Any

from revstudy.errors import RevstudyError
from revstudy.optunarecord import open_record, uncovered_folders
from revstudy.studyfolder import STUDY_FILE, find_study, rank_finished, storage_root
from revstudy.studyinfo import StudyInfo, read_study
from revstudy.trialtable import folder_numbers, load_trials


def study_summary(study: str, storage: str | None = None) -> dict[str, Any]:
    """`revstudy status`: a study (name or folder) summarised without starting Ray."""
    path = find_study(study, storage)
    info, table = read_study(path), load_trials(path)
    out = summarise(path, info, table)
    why = record_problem(path, info, table)
    if why is not None:
        out["problems"].append(why)
    return out


def record_problem(study: Path, info: StudyInfo, table: Any) -> str | None:
    """Why `resume` would refuse the study's Optuna record, or None: missing, unreadable,
    another study's, or lacking trials its folders hold. Said by `status` before a resume
    finds it; read only (a torn last line is mended by the next driver, not here)."""
    try:
        ostudy = open_record(study, info)
    except RevstudyError as e:
        return str(e)
    return uncovered_folders(study, ostudy, folder_numbers(table))


def list_studies(storage: str | None = None) -> list[dict[str, Any]]:
    """`revstudy list`: every study under the storage root, each with `folder` (what
    status and resume take; a copied folder keeps its recorded name); a damaged study is a
    row whose `damaged` says what is wrong."""
    rows = []
    for p in sorted(storage_root(storage).glob(f"*/{STUDY_FILE}")):
        try:
            row = study_summary(str(p.parent), storage)
        except RevstudyError as e:
            row = {"name": p.parent.name, "path": str(p.parent), "damaged": str(e)}
        rows.append({"folder": p.parent.name, **row})
    return rows


def summarise(
    study: Path, info: StudyInfo, table: Any, elapsed: float | None = None
) -> dict[str, Any]:
    """Counts by state and the best trial, for status output and `--json`."""
    by_state = {k: int(v) for k, v in table["state"].value_counts().items()} if len(table) else {}
    best = None
    ranked = rank_finished(table, list(info.objectives)).drop(columns=["front", "rank"])
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
        + [
            f"trial {r.trial_id}: {r.failure_reason}; shown as DIVERGED and never ranked"
            for r in table.itertuples()
            if getattr(r, "state", "") == "DIVERGED"
        ]
        if len(table)
        else []
    )
    out = {
        "name": info.name,
        "path": str(study),
        "size_bytes": folder_size(study),
        "problems": problems,
        "trials": len(table),
        "requested": info.num_samples,
        "by_state": by_state,
        "objectives": [{"metric": o.metric, "mode": o.mode} for o in info.objectives],
        "constraints": list(info.constraints),
        # finished trials that broke a constraint: never best, never exported
        "infeasible": _infeasible(table),
        # earlier studies' trials in the sampler's history: never counted, ranked or shown
        "warm_start": [
            {"study": w.study, "used": w.used, "left_out": w.n_left_out} for w in info.warm_start
        ],
        "best": best,
    }
    if elapsed is not None:
        out["elapsed_s"] = elapsed
    return out


def _infeasible(table: Any) -> list[str]:
    """Ids of the trials judged infeasible (`feasible` is False in the table)."""
    if not len(table) or "feasible" not in table:
        return []
    return [str(r.trial_id) for r in table.itertuples() if r.feasible is False or r.feasible == 0]


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
