"""Read a study directory (docs/study-dir.md) into plain pandas/numpy objects.

This is the only module that knows the file layout, so the statistics and the report
never touch paths. Nothing here imports ray or torch: a report must be possible on any
machine that has a copy of the folder.
"""

from __future__ import annotations

import json
import math
import os
import warnings
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from revstudy.errors import RevstudyError
from revstudy.files import (
    ARRAYS_LIMIT,
    UnsafeFileError,
    check_inflation,
    read_regular,
    regular_file,
)
from revstudy.optunafile import optuna_path, record_gaps
from revstudy.optunarecord import open_record
from revstudy.studyfolder import (
    ARRAYS_FILE,
    FINISHED_STATES,
    PENDING_STATES,
    STUDY_FILE,
    TRIALS_DIR,
    Objective,
    pareto_fronts,
    rank_finished,
    trial_dir,
)
from revstudy.studyinfo import StudyInfo
from revstudy.trialtable import folder_numbers, load_epochs, load_trials

__all__ = [
    "FINISHED_STATES",
    "PENDING_STATES",
    "NotAStudyError",
    "Study",
    "best_trials",
    "export_table",
    "load_study",
]

_TRIAL_BASE_COLUMNS = [
    "trial_id",
    "number",
    "state",
    "failure_reason",
    "is_baseline",
    "epochs_done",
    "wall_seconds",
    "device",
]
_EPOCH_COLUMNS = [
    "trial_id",
    "repeat",
    "epoch",
    "train_loss",
    "train_loss_y",
    "train_loss_x",
    "train_loss_latent",
    "val_loss",
    "val_loss_y",
    "val_f1_macro",
    "seconds",
]
_DEFAULT_OBJECTIVES = [{"metric": "f1_macro", "mode": "max"}]  # a study.json without any


class NotAStudyError(FileNotFoundError):
    """The folder is not a study directory (no study.json)."""


class DamagedFile(UserWarning):
    """A study file the report leaves out because it is torn, corrupt or refused: shown
    even where the report silences the libraries' numerical warnings."""


@dataclass
class Study:
    """Everything the report needs from one study directory, already parsed.

    `trials` and `epochs` always have the contract's base columns, even when the files
    are missing, so callers can filter without existence checks.
    """

    path: Path
    info: dict[str, Any]
    trials: pd.DataFrame
    epochs: pd.DataFrame
    optuna_file: Path | None = None  # optuna.journal (optuna.db in older studies), if any
    _arrays: dict[str, dict[str, np.ndarray] | None] = field(default_factory=dict, repr=False)
    #: damaged files the report leaves out or draws only in part: path in the study folder
    #: -> why (a trial's torn arrays.npz, an Optuna record cut short)
    damaged: dict[str, str] = field(default_factory=dict, repr=False)

    @property
    def name(self) -> str:
        return str(self.info.get("name") or self.path.name)

    @property
    def optuna_study_name(self) -> str:
        return self.study_info.optuna_name

    @cached_property
    def study_info(self) -> StudyInfo:
        """study.json typed and checked (`revstudy.studyinfo`); a study that names no
        objectives is read with the default one."""
        doc = {**self.info, "name": self.name}
        doc["objectives"] = self.info.get("objectives") or _DEFAULT_OBJECTIVES
        return StudyInfo.from_dict(doc, self.path / STUDY_FILE)

    @property
    def objectives(self) -> list[Objective]:
        return list(self.study_info.objectives)

    @property
    def is_multi_objective(self) -> bool:
        return len(self.objectives) > 1

    @property
    def partial(self) -> bool:
        """True while any trial is still running or waiting: numbers may change."""
        return bool(self.trials["state"].isin(PENDING_STATES).any())

    @property
    def finished(self) -> pd.DataFrame:
        """Trials with meaningful final metrics (completed or stopped early by ASHA)."""
        return self.trials[self.trials["state"].isin(FINISHED_STATES)]

    @property
    def state_counts(self) -> pd.Series:
        return self.trials["state"].value_counts()

    @property
    def fixed(self) -> dict[str, Any]:
        """The space's fixed settings (every searched trial runs with them)."""
        fixed = self.study_info.space.get("fixed")
        return dict(fixed) if isinstance(fixed, dict) else {}

    @property
    def baseline_settings(self) -> dict[str, Any]:
        """The space's `baseline:` block: settings the paper baseline runs with instead of
        the fixed ones (quick: the data file's atom order, the paper's protocol)."""
        own = self.study_info.space.get("baseline")
        return dict(own) if isinstance(own, dict) else {}

    @staticmethod
    def trial_params(row: pd.Series) -> dict[str, Any]:
        """A trial row's searched parameters (its `params` JSON; {} when unreadable)."""
        raw = row.get("params")
        if not isinstance(raw, str):
            return {}
        try:
            value = json.loads(raw)
        except ValueError:
            return {}
        return value if isinstance(value, dict) else {}

    def setting(self, row: pd.Series, key: str, default: Any) -> Any:
        """The value of config field `key` a trial ran with: as its record states it (the
        `config/<key>` column of the trials table), else searched, else fixed by the space
        (for the paper baseline, its `baseline:` block first), else `default`
        (TrialConfig's)."""
        recorded = row.get(f"config/{key}")
        if recorded is not None and not (isinstance(recorded, float) and math.isnan(recorded)):
            return recorded.item() if isinstance(recorded, np.generic) else recorded
        unsearched = self.fixed
        if bool(row.get("is_baseline", False)):
            unsearched = {**unsearched, **self.baseline_settings}
        return self.trial_params(row).get(key, unsearched.get(key, default))

    def arrays(self, trial_id: str) -> dict[str, np.ndarray] | None:
        """The trial's arrays.npz as a dict, or None when the trial wrote none or it is
        damaged (then `damaged` says why, with a `DamagedFile` warning).

        Loaded lazily and cached: a study can have hundreds of trials but the report
        only needs arrays for a few of the best.
        """
        if trial_id not in self._arrays:
            data: dict[str, np.ndarray] | None = None
            name = f"{TRIALS_DIR}/{trial_id}/{ARRAYS_FILE}"
            f = self.path / name  # named in a warning
            try:  # ids come from tables a hostile copy may have edited: plain names only
                f = trial_dir(self.path, str(trial_id)) / ARRAYS_FILE
                regular_file(f, ARRAYS_LIMIT)  # no link out of the folder, no FIFO or device
                check_inflation(f, ARRAYS_LIMIT, "a trial's arrays")
                with np.load(f, allow_pickle=False) as npz:
                    data = {k: np.asarray(npz[k]) for k in npz.files}
            except FileNotFoundError:
                pass  # a trial that has not finished, or failed, wrote none
            except Exception as exc:
                # torn, corrupt, linked, a bomb or not ours: said, and never drawn from. A
                # damaged npz raises BadZipFile, zlib.error, EOFError, ValueError, or
                # tokenize.TokenError from a mangled array header
                why = str(exc).removeprefix(f"{f}: ")  # ours name the file; it is named below
                kind = "" if isinstance(exc, RevstudyError) else f"{type(exc).__name__}: "
                self._damage(
                    name,
                    f"left out ({kind}{why}); the figures drawn from a trial's arrays show "
                    "the best trial whose arrays are intact",
                )
            self._arrays[trial_id] = data
        return self._arrays[trial_id]

    def load_optuna(self) -> Any:
        """The persisted optuna.Study, or None when the folder has no Optuna record;
        ValueError (one line) for a damaged or foreign one.

        Imported lazily so that loading a study stays cheap for the CSV export.
        """
        if self.optuna_file is None:
            return None
        import optuna

        from ._own_trials import OwnTrials

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        # warm-start trials (launch --warm-start) are sampler history, not this study's:
        # every figure and importance drawn from the record leaves them out
        try:  # missing, linked, damaged or another study's: said, never drawn from
            ostudy = open_record(self.path, self.study_info, OwnTrials)
        except RevstudyError as e:
            raise ValueError(str(e)) from None
        why = record_gaps(
            folder_numbers(self.trials), {t.number for t in ostudy.get_trials(deepcopy=False)}
        )
        if why is not None:
            self._damage(self.optuna_file.name, f"{why}; the Optuna figures leave them out")
        return ostudy

    def _damage(self, name: str, why: str) -> None:
        """Record a damaged file (`name` in the study folder) and warn once naming it."""
        if name not in self.damaged:
            self.damaged[name] = why
            warnings.warn(f"{self.path / name}: {why}", DamagedFile, 3)


def _with_columns(df: pd.DataFrame, columns: list[str], missing: object) -> pd.DataFrame:
    """A study table with at least `columns` (absent ones filled with `missing`)."""
    for col in columns:
        if col not in df.columns:
            df[col] = missing
    df["trial_id"] = df["trial_id"].astype(str)
    return df


def _read_trials(path: Path) -> pd.DataFrame:
    # the engine's own reader: a missing or damaged trials.parquet is rebuilt from the trial
    # folders (with a warning), so the report and `revstudy status` show the same states
    table = load_trials(path)
    df = _with_columns(table, _TRIAL_BASE_COLUMNS, pd.NA)
    df["state"] = df["state"].astype(str).str.upper()
    df["failure_reason"] = df["failure_reason"].fillna("").astype(str)
    df["is_baseline"] = df["is_baseline"].fillna(False).astype(bool)
    df["number"] = pd.to_numeric(df["number"], errors="coerce").astype("Int64")
    return df.reset_index(drop=True)


def _read_epochs(path: Path) -> pd.DataFrame:
    # as the trials: a missing or damaged epochs.parquet is rebuilt from the trial folders
    table = load_epochs(path)
    df = _with_columns(table, _EPOCH_COLUMNS, np.nan)
    return df.sort_values(["trial_id", "repeat", "epoch"]).reset_index(drop=True)


def load_study(path: str | Path) -> Study:
    """Parse a study directory; raise NotAStudyError (naming the path) if it is not one."""
    p = Path(path).expanduser()
    if not p.is_dir():
        raise NotAStudyError(f"{p} is not a study directory: no such folder")
    info_file = p / STUDY_FILE
    if not info_file.is_file():
        raise NotAStudyError(
            f"{p} is not a study directory: it has no study.json "
            "(expected the folder `revstudy run` writes, see docs/study-dir.md)"
        )
    try:
        info = json.loads(read_regular(info_file))
    except UnsafeFileError as exc:
        raise NotAStudyError(f"{p} is not a study directory: {exc}") from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise NotAStudyError(
            f"{p} is not a study directory: study.json is not JSON ({exc})"
        ) from exc
    if not isinstance(info, dict):
        raise NotAStudyError(
            f"{p} is not a study directory: study.json holds a {type(info).__name__}, "
            "not the object revstudy writes"
        )
    record = optuna_path(p)
    found = record if os.path.lexists(record) else None
    return Study(p, info, _read_trials(p), _read_epochs(p), found)


def pareto_mask(values: np.ndarray) -> np.ndarray:
    """Non-dominated rows of `values`, where every column is to be maximised."""
    return np.asarray(pareto_fronts(values) == 0, dtype=bool)


def best_trials(study: Study, k: int = 5) -> pd.DataFrame:
    """The k best finished trials by the study folder's one ranking
    (`revstudy.studyfolder.rank_finished`: completed trials first, then the Pareto front,
    then the first objective); `pareto` marks the Pareto set.

    Trials without a value for every objective cannot be ranked and are left out.
    """
    ranked = rank_finished(study.finished, study.objectives)
    return ranked.assign(pareto=ranked["front"] == 0).head(k)


def export_table(
    study: Study | str | Path,
    dest: str | Path,
    *,
    fmt: Literal["csv", "parquet"] | None = None,
    epochs: bool = False,
) -> Path:
    """Write the per-trial (or, with `epochs`, per-epoch) table for use outside the report.

    The format follows `fmt`, else the file suffix (.parquet/.pq → Parquet, else CSV).
    """
    s = study if isinstance(study, Study) else load_study(study)
    table = s.epochs if epochs else s.trials
    out = Path(dest)
    out.parent.mkdir(parents=True, exist_ok=True)
    kind = fmt or ("parquet" if out.suffix.lower() in (".parquet", ".pq") else "csv")
    if kind == "parquet":
        table.to_parquet(out, index=False)
    else:
        table.to_csv(out, index=False)
    return out
