"""Which file of a study folder holds its Optuna study, and how to open it.

A new study keeps its Optuna study in `optuna.journal`: Optuna's journal storage, one JSON
line per operation appended under a lock file (`JournalStorage` + `JournalFileBackend`).
A study launched before keeps its `optuna.db` (SQLite) and goes on with it. Why the
journal: in SQLite every suggestion, report and attribute is a SQLAlchemy transaction, so
one trial's ask, five reports and tell cost the driver 56 ms at 100 trials and 146 ms at
10⁴, against 8 ms and 99 ms in the journal (benchmarks/driver_bookkeeping.py), and at GPU
rates (10,000 trials an hour: 0.36 s a trial) the driver's share of the wall time is what
issue #31 bounds (benchmarks/driver_loop.py). Both keep what the study folder promises:
one study id (foreign records refused), resume from the folder alone, and nothing
unpickled (the journal is JSON; Optuna replays it into memory). A journal is opened as
`revstudy.journalstore.StudyJournalStorage`: the same file and operations, with trial lists
kept by state and a searcher call's operations written in one append.

Light (no Ray, no torch; Optuna is imported when a storage is opened): the analysis
package reads the study through it too.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Container, Mapping
from pathlib import Path
from typing import Any

from revstudy.errors import RevstudyError
from revstudy.files import regular_file

__all__ = [
    "OPTUNA_DB",
    "OPTUNA_FILES",
    "OPTUNA_JOURNAL",
    "mend_journal",
    "optuna_path",
    "optuna_storage",
    "record_gaps",
]

OPTUNA_JOURNAL = "optuna.journal"  # a new study's Optuna record (JSON lines)
OPTUNA_DB = "optuna.db"  # the SQLite record of a study launched before the journal
LOCK_SUFFIX = ".lock"  # Optuna's JournalFileSymlinkLock: a symbolic link while one appends
OPTUNA_FILES = (OPTUNA_JOURNAL, OPTUNA_DB, OPTUNA_JOURNAL + LOCK_SUFFIX)
TORN_LIMIT = 1 << 20  # a torn append is a few operations: a longer tail is not one
RECORD_LIMIT = 1 << 62  # no size bound: a study's record grows with its trials


def optuna_path(study: Path) -> Path:
    """The study's Optuna record: `optuna.db` where a study launched before the journal
    keeps it, else `optuna.journal` (also where a new study's goes)."""
    journal, db = study / OPTUNA_JOURNAL, study / OPTUNA_DB
    if not os.path.lexists(journal) and os.path.lexists(db):
        return db
    return journal


def mend_journal(path: Path) -> int:
    """What a driver killed mid-append left, mended before the next driver writes (call
    with the study locked: the driver is the journal's only writer). Its lock file goes
    (else the first append would wait out Optuna's 30 s grace period), and a torn last line
    is cut, with a warning, so the next append starts a line of its own instead of gluing
    onto half of one (Optuna's reader skips a torn last line, but not one that is followed
    by more). Only the tail of a journal is cut: a file with no whole line, or whose last
    whole line is not one JSON object, is left as found (reading it fails with the reason).
    Returns the bytes cut."""
    lock = path.with_name(path.name + LOCK_SUFFIX)
    if os.path.lexists(lock):
        os.unlink(lock)  # a link (Optuna's lock) or a file: removed, never followed
    fd = os.open(path, os.O_RDWR | os.O_NOFOLLOW)
    try:
        size = os.fstat(fd).st_size
        if size == 0 or os.pread(fd, 1, size - 1) == b"\n":
            return 0
        start = max(0, size - TORN_LIMIT)
        tail = os.pread(fd, size - start, start)
        end = tail.rfind(b"\n")
        if end < 0:  # no whole line in reach: not a torn append
            return 0
        last = tail[tail.rfind(b"\n", 0, end) + 1 : end]
        try:
            whole = isinstance(json.loads(last), dict)
        except ValueError:
            whole = False
        if not whole or not tail[end + 1 :].startswith(b"{"):
            return 0  # not a journal's torn append: reading it says what is wrong
        keep = start + end + 1
        os.ftruncate(fd, keep)
    finally:
        os.close(fd)
    warnings.warn(f"{path}: cut a torn last line ({size - keep} bytes)", stacklevel=2)
    return size - keep


def optuna_storage(study: Path, *, create: bool = False) -> Any:
    """The Optuna storage of the study's record (`optuna_path`), checked to be a plain file
    of the folder; `create` makes a new study's journal. One-line errors for a missing,
    linked or unreadable record."""
    import optuna

    from revstudy.journalstore import StudyJournalBackend, StudyJournalStorage

    path = optuna_path(study)
    if not os.path.lexists(path) and not create:
        raise RevstudyError(
            f"{path}: missing (and no {OPTUNA_DB} either); it holds the study's trials and "
            "sampler history, so the study cannot continue (restore the file, or launch a new "
            "study)"
        )
    if os.path.lexists(path):  # a link would carry the study's writes outside the folder
        regular_file(path, RECORD_LIMIT)
    if path.name == OPTUNA_DB:
        with path.open("rb") as f:
            if f.read(16) != b"SQLite format 3\x00":
                raise RevstudyError(
                    f"{path}: not an SQLite database (damaged or replaced); not opened"
                )
        return optuna.storages.RDBStorage(f"sqlite:///{path}")
    try:
        return StudyJournalStorage(StudyJournalBackend(str(path)))
    except (ValueError, KeyError, TypeError, AttributeError) as e:  # JSON or replay errors
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
        raise RevstudyError(f"{path}: not a readable Optuna journal ({first})") from None


def record_gaps(folders: Mapping[str, int], recorded: Container[int]) -> str | None:
    """Why a study's Optuna record does not cover its trial folders ({trial id: the Optuna
    number its trial.json names}; `recorded`: the numbers the record holds), or None.

    Every trial's ask is written, and fsynced, before its folder exists, so a folder whose
    trial the record lacks means the record was cut short or replaced: obeyed, a resume
    would count those trials as never run and run others in their place."""
    lost = sorted((n, tid) for tid, n in folders.items() if n not in recorded)
    if not lost:
        return None
    n, tid = lost[0]
    return (
        f"holds no record of {len(lost)} trial folder(s) (e.g. trials/{tid}, Optuna trial "
        f"{n}): cut short or replaced"
    )
