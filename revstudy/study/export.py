"""`revstudy export`: a study's best configurations as YAML files `revstudy train` accepts.

Reads only the study directory (study.json + trials.parquet, see docs/study-dir.md) with
pandas, so it works on any machine that has the folder, and on a study that is still running
(the table is rewritten atomically as trials report; unfinished trials are simply skipped).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from revstudy.errors import ConfigError, RevstudyError
from revstudy.outputs import output_dir, output_file
from revstudy.studyfolder import (
    Objective,
    find_study,
    parse_objective,
    rank_finished,
)
from revstudy.studyinfo import StudyInfo, read_study
from revstudy.training.config import TrialConfig
from revstudy.trialtable import load_trials
from revstudy.version import __version__

__all__ = [
    "ExportResult",
    "Ranked",
    "config_from_row",
    "export_study",
    "objectives_of",
    "rank_trials",
]
# Columns of trials.parquet that are bookkeeping, not metrics (docs/study-dir.md).
NOT_METRICS = {"trial_id", "number", "state", "failure_reason", "is_baseline", "device"}
# Metrics where smaller is better, for --objective on a metric the study did not optimise.
MINIMISED_PREFIXES = ("inv_error", "val_loss", "train_seconds", "cd_", "rcd_", "wall_seconds")


@dataclass
class Ranked:
    """One exported trial: its config, rank, Pareto front and search-time metrics."""

    trial_id: str
    config: TrialConfig
    rank: int
    front: int
    metrics: dict[str, float] = field(default_factory=dict)


def objectives_of(info: StudyInfo, trials: pd.DataFrame, objective: str | None) -> list[Objective]:
    """The study's objectives, or the one `--objective NAME[:max|min]` picks."""
    declared = list(info.objectives)
    if objective is None:
        if not declared:
            raise RevstudyError("study.json names no objectives; pick one with --objective")
        return declared
    asked = parse_objective(objective, "--objective")
    name, mode = asked.metric, objective.partition(":")[2]  # mode "": the metric's usual one
    known = {o.metric: o for o in declared}
    if name in known:
        return [Objective(name, asked.mode if mode else known[name].mode)]
    metrics = sorted(
        c for c in trials.columns if not c.startswith("config/") and c not in NOT_METRICS
    )
    if name not in metrics:
        listed = ", ".join(sorted(known) or metrics[:12]) or "none yet"
        raise RevstudyError(f"unknown objective {name!r} (study objectives/metrics: {listed})")
    if not mode:
        return [Objective(name, "min" if name.startswith(MINIMISED_PREFIXES) else "max")]
    return [asked]


def config_from_row(row: pd.Series, source: str) -> TrialConfig:
    """The TrialConfig of a trials.parquet row (`config/<field>` columns, lists as JSON)."""
    data: dict[str, Any] = {}
    for col, value in row.items():
        name = str(col)
        if not name.startswith("config/"):
            continue
        key = name.removeprefix("config/")
        if value is None or (isinstance(value, float) and math.isnan(value)):
            continue  # a conditional parameter this trial did not use: keep the default
        if isinstance(value, str) and value[:1] == "[":
            value = json.loads(value)
        if isinstance(value, np.generic):
            value = value.item()
        data[key] = value  # an unknown field fails in from_dict, named
    try:
        return TrialConfig.from_dict(data, source=source)
    except ConfigError as e:
        raise RevstudyError(f"{e} (study written by another revstudy version?)") from None


def rank_trials(
    trials: pd.DataFrame, objectives: list[Objective], study: str = "study", top: int | None = None
) -> list[Ranked]:
    """Finished trials with a value for every objective, best first (Pareto fronts first);
    the first `top` only, if given. Only those rows are read into configurations: reading
    all of them took 16 s of `export --top 20` at 10⁴ trials."""
    if trials.empty or "state" not in trials.columns:
        raise RevstudyError(f"{study}: no finished trials yet (trials.parquet is missing/empty)")
    done = rank_finished(trials, objectives)
    if done.empty:
        raise RevstudyError(
            f"{study}: no finished trials (COMPLETED or STOPPED_EARLY with "
            f"{', '.join(o.metric for o in objectives)}) yet"
        )
    metric_cols = [
        c
        for c in done.columns
        if not c.startswith("config/")
        and c not in NOT_METRICS
        and c not in ("front", "rank")  # rank_finished's columns
        and not c.endswith("_std")
    ]
    out = []
    for _, row in (done if top is None else done.head(top)).iterrows():
        tid = str(row["trial_id"])
        metrics = {
            c: float(row[c])
            for c in metric_cols
            if isinstance(row[c], int | float | np.number)
            and not isinstance(row[c], bool | np.bool_)
            and math.isfinite(float(row[c]))
        }
        config = config_from_row(row, f"{study}: trial {tid}")
        out.append(Ranked(tid, config, int(row["rank"]), int(row["front"]), metrics))
    return out


def provenance(
    info: StudyInfo, r: Ranked, objectives: list[Objective], study_dir: Path
) -> dict[str, Any]:
    """Where an exported config came from, written under `provenance:` in the YAML."""
    return {
        "study": info.name,
        "study_dir": str(study_dir),
        "trial_id": r.trial_id,
        "rank": r.rank,
        "pareto_front": r.front,
        "objectives": [{"metric": o.metric, "mode": o.mode} for o in objectives],
        "metrics_at_search": r.metrics,
        "data": {
            "path": info.data.path if info.data else None,
            "sha256": info.data.sha256 if info.data else None,
        },
        "split": {"seed": r.config.seed, "test_seed": r.config.test_seed},
        "revstudy_study": info.versions.get("revstudy"),
        "revstudy_export": __version__,
    }


@dataclass
class ExportResult:
    paths: list[Path]
    ranked: list[Ranked]
    objectives: list[Objective]
    unfinished: int = 0  # trials cut off before their last epoch (INTERRUPTED), not ranked


def export_study(
    study: str | Path,
    top: int = 1,
    objective: str | None = None,
    out: str | Path | None = None,
    storage: str | Path | None = None,
) -> ExportResult:
    """Write the `top` best configs: one file (top=1, default best.yaml) or a folder."""
    if top < 1:
        raise RevstudyError(f"--top {top}: must be >= 1")
    if top == 1:
        target = output_file(out if out is not None else "best.yaml", example="best.yaml")
    else:
        folder = output_dir(out if out is not None else "best")
        if folder.suffix.lower() in (".yaml", ".yml") and not folder.is_dir():
            raise RevstudyError(
                f"--out {folder}: --top {top} writes one YAML file per configuration into a "
                "folder; name a folder (e.g. best), or give --top 1 for one file"
            )
    study_dir = find_study(str(study), None if storage is None else str(storage))
    info, trials = read_study(study_dir), load_trials(study_dir)
    objs = objectives_of(info, trials, objective)
    ranked = rank_trials(trials, objs, info.name, top)
    paths: list[Path] = []
    if top == 1:
        target.parent.mkdir(parents=True, exist_ok=True)
        ranked[0].config.save_yaml(target, header=provenance(info, ranked[0], objs, study_dir))
        paths.append(target)
    else:
        folder.mkdir(parents=True, exist_ok=True)
        for r in ranked:
            target = folder / f"rank{r.rank:02d}-{_safe(r.trial_id)}.yaml"
            r.config.save_yaml(target, header=provenance(info, r, objs, study_dir))
            paths.append(target)
    unfinished = int((trials["state"] == "INTERRUPTED").sum()) if "state" in trials else 0
    return ExportResult(paths, ranked, objs, unfinished)


def _safe(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name)
