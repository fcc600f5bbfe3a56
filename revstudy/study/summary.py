"""What `revstudy status` and the API report about a study: counts by state, the best
trial under the study folder's ranking, problems and size on disk."""

from __future__ import annotations

import contextlib
import json
import math
import os
from pathlib import Path
from typing import Any

from revstudy.studyfolder import STUDY_FILE, StudyInfo, rank_finished, read_study_info


def summarise(study: Path, table: Any, elapsed: float | None = None) -> dict[str, Any]:
    """Counts by state and the best trial, for status output and `--json`."""
    info = read_study_info(study)
    by_state = {k: int(v) for k, v in table["state"].value_counts().items()} if len(table) else {}
    best = None
    objectives = StudyInfo.from_dict(info, str(study / STUDY_FILE)).objectives
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
        + [
            f"trial {r.trial_id}: {r.failure_reason}; shown as DIVERGED and never ranked"
            for r in table.itertuples()
            if getattr(r, "state", "") == "DIVERGED"
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
