"""A study's own Optuna record, opened as it stands and checked to be this study's.

A module of its own beside `optunafile` (which file holds the record, how to open it): the
checks need study.json's id (`studyinfo`), and `studyinfo` already imports `optunafile`
through `studyfolder`. Light (no Ray, no torch): the driver, `revstudy status` and the
report open the record through it.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from revstudy.errors import RevstudyError
from revstudy.optunafile import optuna_path, optuna_storage, record_gaps
from revstudy.studyinfo import StudyInfo, foreign_database

__all__ = ["open_record", "uncovered_folders"]


def open_record(study: Path, info: StudyInfo, study_class: Any = None) -> Any:
    """The study's Optuna study as its record stands (never mended, nothing written), as
    `study_class` (default `optuna.Study`). A one-line error naming the file where the
    record is missing, linked or unreadable (`optuna_storage`), holds no study of the
    recorded name, or is another study's (`foreign_database`): its trials must never be
    read as this study's."""
    import optuna
    import sqlalchemy.exc

    path = optuna_path(study)
    storage = optuna_storage(study)
    try:
        ostudy = (study_class or optuna.Study)(study_name=info.optuna_name, storage=storage)
    except KeyError:  # Optuna's "Record does not exist."
        raise RevstudyError(
            f"{path}: holds no study {info.optuna_name!r}: damaged, or not this study's record"
        ) from None
    except (sqlalchemy.exc.SQLAlchemyError, ValueError) as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
        raise RevstudyError(
            f"{path}: not a readable Optuna study {info.optuna_name!r} ({first})"
        ) from None
    why = foreign_database(ostudy, info)
    if why is not None:
        raise RevstudyError(f"{path}: {why}")
    return ostudy


def uncovered_folders(study: Path, ostudy: Any, folders: Mapping[str, int]) -> str | None:
    """Why `resume` must refuse the study's record (`ostudy`, opened by `open_record`): it
    lacks trials the study's folders hold ({trial id: its trial.json's Optuna number};
    `optunafile.record_gaps`), or None. The one wording the driver and `status` give."""
    why = record_gaps(folders, {t.number for t in ostudy.get_trials(deepcopy=False)})
    if why is None:
        return None
    return (
        f"{optuna_path(study)}: {why}; restore it from a copy (revstudy only appends to it), "
        "or launch a new study: the trial folders and `revstudy report` are intact"
    )
