"""The study's Optuna record (revstudy.optunafile): which file, a torn journal mended, a
link refused, and JSON only."""

from __future__ import annotations

import json
import os
from pathlib import Path

import optuna
import pytest

from revstudy.errors import RevstudyError
from revstudy.optunafile import mend_journal, optuna_path, optuna_storage

X = {"x": optuna.distributions.FloatDistribution(0.0, 1.0)}


def _study(folder: Path, trials: int) -> Path:
    s = optuna.create_study(study_name="s", storage=optuna_storage(folder, create=True))
    for _ in range(trials):
        s.tell(s.ask(X), 0.5)
    return folder / "optuna.journal"


def _trials(folder: Path) -> int:
    return len(optuna.load_study(study_name="s", storage=optuna_storage(folder)).trials)


def test_the_journal_unless_the_study_already_has_an_optuna_db(tmp_path: Path) -> None:
    assert optuna_path(tmp_path).name == "optuna.journal"  # a new study's
    (tmp_path / "optuna.db").write_bytes(b"")
    assert optuna_path(tmp_path).name == "optuna.db"  # a study launched before
    (tmp_path / "optuna.journal").write_bytes(b"")
    assert optuna_path(tmp_path).name == "optuna.journal"


def test_a_torn_last_line_is_cut_before_the_next_write(tmp_path: Path) -> None:
    """A driver killed mid-append leaves half a line; Optuna's reader skips it, but an
    append after it would glue onto it and the journal would no longer read."""
    journal = _study(tmp_path, 2)
    whole = journal.read_bytes()
    with journal.open("ab") as f:
        f.write(b'{"op_code": 4, "worker_id": "x", "tri')
    assert _trials(tmp_path) == 2  # readers see the whole lines
    with pytest.warns(UserWarning, match=r"optuna\.journal: cut a torn last line \(37 bytes\)"):
        assert mend_journal(journal) == 37
    assert journal.read_bytes() == whole
    assert mend_journal(journal) == 0  # nothing torn: nothing cut
    s = optuna.load_study(study_name="s", storage=optuna_storage(tmp_path))
    s.tell(s.ask(X), 0.25)
    assert _trials(tmp_path) == 3


def test_a_record_that_is_a_link_or_not_a_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "other").mkdir()
    elsewhere = _study(tmp_path / "other", 1)
    study = tmp_path / "study"
    study.mkdir()
    os.symlink(elsewhere, study / "optuna.journal")
    linked = r"optuna\.journal: a symbolic link, not a file of this folder"
    with pytest.raises(RevstudyError, match=linked):
        optuna_storage(study)
    os.unlink(study / "optuna.journal")
    os.mkfifo(study / "optuna.journal")
    with pytest.raises(RevstudyError, match=r"optuna\.journal: not a regular file"):
        optuna_storage(study)


def test_the_journal_is_json_lines_only(tmp_path: Path) -> None:
    """Nothing in the record is unpickled: every line is a JSON object."""
    journal = _study(tmp_path, 3)
    lines = journal.read_text().splitlines()
    assert lines and all(isinstance(json.loads(line), dict) for line in lines)


def test_a_lock_a_killed_driver_left_is_removed_before_the_next_write(tmp_path: Path) -> None:
    """Optuna's journal lock is a symbolic link that lives while one appends; a driver
    killed then leaves it, and the next append would wait 30 s for it to go stale."""
    journal = _study(tmp_path, 1)
    lock = tmp_path / "optuna.journal.lock"
    os.symlink(journal, lock)
    assert mend_journal(journal) == 0  # nothing torn
    assert not os.path.lexists(lock) and journal.is_file()  # the link went, not its target
    s = optuna.load_study(study_name="s", storage=optuna_storage(tmp_path))
    s.tell(s.ask(X), 0.25)
    assert _trials(tmp_path) == 2
