"""Where a command may write: every output path a user gives is checked here, before any
work, so that no command writes through a symbolic link, onto a device or FIFO, or over a
file of a study or run folder that revstudy owns (issue #32).

A study folder is recognised by its study.json, a run (model) folder by its metrics.json
beside config.yaml. Inside a study a command may add files of its own beside the study's
(the report's default is `STUDY/report.html`), never replace the study's records nor write
under `trials/` or `ray/`; inside a run folder it may not replace the run's files. Writers
then replace files atomically (`revstudy.files.replaced_atomically`), so a link planted
after the check is replaced, never followed.
"""

from __future__ import annotations

import os
from pathlib import Path

from revstudy.errors import RevstudyError
from revstudy.optunafile import OPTUNA_FILES
from revstudy.studyfolder import (
    DRIVER_FILE,
    EPOCHS_TABLE,
    REFERENCE_FILE,
    STUDY_FILE,
    TRIALS_TABLE,
)

__all__ = ["RUN_FILES", "STUDY_RECORDS", "output_dir", "output_file", "storage_dir"]

# a study's own records: never the target of another command's output
STUDY_RECORDS = frozenset(
    {STUDY_FILE, *OPTUNA_FILES, TRIALS_TABLE, EPOCHS_TABLE, DRIVER_FILE, REFERENCE_FILE, ".lock"}
)
# what `revstudy train` writes into a run (model) folder
RUN_FILES = frozenset(
    {"config.yaml", "metrics.json", "model.pt", "prior.pt", "arrays.npz", REFERENCE_FILE}
)


class OutputRefused(RevstudyError):
    """An output path a command must not write."""


def output_file(path: Path | str, flag: str = "--out", example: str = "out.json") -> Path:
    """`path` as a file a command may create or replace; `OutputRefused` (one line naming
    `flag`) when it is a link, a folder, a device or FIFO, sits under a file, or is a
    record of a study or run folder (`example`: a file name the message may suggest)."""
    p = Path(path).expanduser()
    _not_a_link(p, flag)
    if p.is_dir():
        raise OutputRefused(f"{flag} {p}: is a directory; give a file path (e.g. {p / example})")
    if p.exists() and not p.is_file():
        raise OutputRefused(
            f"{flag} {p}: not a regular file (a device, FIFO or socket); give a file path"
        )
    _parent_is_a_folder(p, flag)
    owner = _owner(p.parent.resolve())
    if owner is not None:
        kind, root = owner
        inside = p.parent.resolve() != root
        own = STUDY_RECORDS if kind == "study" else RUN_FILES
        if inside or p.name in own or p.name.startswith("."):
            raise OutputRefused(
                f"{flag} {p}: a file of the {kind} folder {root}, which revstudy keeps; "
                "write elsewhere"
            )
    return p


def output_dir(path: Path | str, flag: str = "--out", *, run: bool = False) -> Path:
    """`path` as a folder a command may create or write into; `OutputRefused` when it is a
    link, a file, a device, or lies in a study folder. `run`: the folder becomes a run
    folder (`revstudy train`): an existing run folder may be written again, any other
    folder of revstudy's may not."""
    p = Path(path).expanduser()
    _not_a_link(p, flag)
    if p.exists() and not p.is_dir():
        raise OutputRefused(f"{flag} {p}: exists and is not a folder; give a folder path")
    _parent_is_a_folder(p, flag)
    owner = _owner(p.resolve())
    if owner is not None:
        kind, root = owner
        if not (run and kind == "run" and root == p.resolve()):  # a run written again is fine
            where = "the" if root == p.resolve() else "inside the"
            raise OutputRefused(
                f"{flag} {p}: {where} {kind} folder {root}, which revstudy keeps; write elsewhere"
            )
    return p


def storage_dir(path: Path, flag: str = "--storage") -> Path:
    """The studies root: a folder (created when absent), never a file or device."""
    if path.exists() and not path.is_dir():
        raise OutputRefused(f"{flag} {path}: exists and is not a folder; give a folder path")
    _parent_is_a_folder(path, flag)
    return path


def _not_a_link(p: Path, flag: str) -> None:
    if "\x00" in str(p):
        raise OutputRefused(f"{flag} {str(p)!r}: a path cannot hold a NUL character")
    if p.is_symlink():
        raise OutputRefused(f"{flag} {p}: a symbolic link; give the real path")


def _parent_is_a_folder(p: Path, flag: str) -> None:
    """The first existing ancestor of `p` is a folder (not a file `mkdir` would trip on)."""
    for parent in p.parents:
        if os.path.lexists(parent):
            if not parent.is_dir():
                raise OutputRefused(f"{flag} {p}: {parent} is not a folder")
            return


def _owner(folder: Path) -> tuple[str, Path] | None:
    """("study" | "run", its root) when `folder` is, or lies in, a study or run folder."""
    for candidate in (folder, *folder.parents):
        try:
            if (candidate / STUDY_FILE).is_file():
                return "study", candidate
            if (candidate / "metrics.json").is_file() and (candidate / "config.yaml").is_file():
                return "run", candidate
        except OSError:
            return None
    return None
