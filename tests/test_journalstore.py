"""revstudy.journalstore: the study journal answers what Optuna's stock journal answers
(trial lists by state, compared after every operation of a random history with two
studies, waiting, running, finished-out-of-order and failed trials, a second writer and
invalid operations), and a batch writes its operations once, when it ends."""

from __future__ import annotations

import os
import random
import warnings
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend

from revstudy.errors import RevstudyError
from revstudy.journalstore import StudyJournalBackend, StudyJournalStorage, batched

TS = optuna.trial.TrialState
STATE_SETS: list[Any] = [
    None,
    (TS.WAITING,),
    (TS.RUNNING,),
    [TS.COMPLETE],
    (TS.COMPLETE, TS.PRUNED),
    (TS.PRUNED, TS.COMPLETE),  # same set, other order: the same list
    {TS.FAIL},
    (TS.RUNNING, TS.WAITING),
    tuple(TS),
]


def stock(path: Path) -> JournalStorage:
    return JournalStorage(JournalFileBackend(str(path)))


def ours(path: Path) -> StudyJournalStorage:
    return StudyJournalStorage(StudyJournalBackend(str(path)))


def assert_same_lists(mine: StudyJournalStorage, path: Path) -> None:
    """Every state set's trial list of every study equals a fresh stock replay's."""
    truth = stock(path)
    for frozen in truth.get_all_studies():
        sid = frozen._study_id
        for states in STATE_SETS:
            expected = truth.get_all_trials(sid, deepcopy=False, states=states)
            got = mine.get_all_trials(sid, deepcopy=False, states=states)
            assert got == expected, (sid, states)
            assert [t.number for t in got] == [t.number for t in expected]


def random_history(storage: Any, other: Any, rng: random.Random, steps: int, check: Any) -> None:
    """`steps` random operations on two studies through `storage`, some through `other`
    (a second writer of the same file); `check()` after each."""
    studies = [
        optuna.create_study(storage=storage, study_name=f"s{i}", direction="maximize")
        for i in range(2)
    ]
    seconds = [optuna.load_study(study_name=f"s{i}", storage=other) for i in range(2)]
    open_trials: list[tuple[int, optuna.Trial]] = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for step in range(steps):
            k = rng.randrange(2)
            study = (seconds if rng.random() < 0.2 else studies)[k]
            op = rng.random()
            if op < 0.15:
                study.enqueue_trial({"x": rng.uniform(0, 1)})
            elif op < 0.5 or not open_trials:
                t = study.ask()
                t.suggest_float("x", 0, 1)
                if rng.random() < 0.5:
                    t.suggest_int("n", 1, 4)
                open_trials.append((k, t))
            else:
                i = rng.randrange(len(open_trials))
                k, t = open_trials[i]
                study = studies[k]
                what = rng.random()
                if what < 0.3:
                    t.report(rng.random(), step)
                    continue
                if what < 0.4:
                    t.set_user_attr("note", step)
                    continue
                open_trials.pop(i)  # finished in any order
                state = rng.choice([TS.COMPLETE, TS.COMPLETE, TS.PRUNED, TS.FAIL])
                study.tell(t, rng.random() if state == TS.COMPLETE else None, state=state)
                if rng.random() < 0.2:  # an invalid operation, written and then refused
                    with pytest.raises(optuna.exceptions.UpdateFinishedTrialError):
                        study._storage.set_trial_user_attr(t._trial_id, "late", step)
            check()
        for study in studies:  # left waiting at the end
            study.enqueue_trial({"x": 0.5})
            check()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_trial_lists_equal_the_stock_journal_s_after_every_operation(
    tmp_path: Path, seed: int
) -> None:
    path = tmp_path / "optuna.journal"
    mine = ours(path)
    for states in STATE_SETS:  # the views exist before the history (kept up to date)
        with pytest.raises(KeyError):
            mine.get_all_trials(0, states=states)
    rng = random.Random(seed)
    random_history(mine, stock(path), rng, 120, lambda: assert_same_lists(mine, path))
    seen = {t.state for sid in (0, 1) for t in mine.get_all_trials(sid, deepcopy=False)}
    assert seen == {TS.WAITING, TS.RUNNING, TS.COMPLETE, TS.PRUNED, TS.FAIL}


def test_batched_operations_equal_the_stock_journal_s(tmp_path: Path) -> None:
    """Operations held in batches of random length replay as the stock journal replays the
    file they leave."""
    path = tmp_path / "optuna.journal"
    mine = ours(path)
    rng = random.Random(5)
    held = [mine.batch()]
    held[0].__enter__()

    def check() -> None:
        if rng.random() < 0.3:  # end the batch: the file catches up; start another
            held[0].__exit__(None, None, None)
            assert_same_lists(mine, path)
            held[0] = mine.batch()
            held[0].__enter__()

    random_history(mine, mine, rng, 150, check)
    held[0].__exit__(None, None, None)
    assert_same_lists(mine, path)


def test_a_batch_writes_once_when_it_ends(tmp_path: Path, monkeypatch: Any) -> None:
    path = tmp_path / "optuna.journal"
    storage = ours(path)
    study = optuna.create_study(storage=storage, study_name="s", direction="maximize")
    fsyncs: list[int] = []
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (fsyncs.append(fd), real(fd))[1])
    size = path.stat().st_size
    with storage.batch():
        with batched(storage):  # nested: written when the outer one ends
            for _ in range(3):
                t = study.ask()
                t.suggest_float("x", 0, 1)
                t.report(0.1, 1)
        # read back from memory while the file has none of it
        assert [t.state for t in study.get_trials()] == [TS.RUNNING] * 3
        assert path.stat().st_size == size and fsyncs == []
    assert len(fsyncs) == 1
    assert stock(path).get_all_trials(0) == storage.get_all_trials(0)
    # outside a batch: Optuna's own append per operation
    t = study.ask()
    assert len(fsyncs) >= 2


def test_a_write_of_reports_alone_is_synced_with_the_next_write(
    tmp_path: Path, monkeypatch: Any
) -> None:
    """Per-epoch reports are written at once (a killed driver keeps them) but fsync'ed only
    with the next write that holds anything else, which syncs the whole file."""
    path = tmp_path / "optuna.journal"
    storage = ours(path)
    study = optuna.create_study(storage=storage, study_name="s", direction="maximize")
    with storage.batch():
        t = study.ask()
        t.suggest_float("x", 0, 1)
    fsyncs: list[int] = []
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (fsyncs.append(fd), real(fd))[1])
    for epoch in (1, 2):
        with storage.batch():
            t.report(0.1 * epoch, epoch)
        assert fsyncs == []
        assert stock(path).get_all_trials(0)[0].intermediate_values == {
            e: 0.1 * e for e in range(1, epoch + 1)
        }  # in the file already
    with storage.batch():
        t.report(0.3, 3)
        study.tell(t, 0.3)
    assert len(fsyncs) == 1
    assert stock(path).get_all_trials(0) == storage.get_all_trials(0)


def test_a_failed_call_s_operations_are_written_too(tmp_path: Path) -> None:
    path = tmp_path / "optuna.journal"
    storage = ours(path)
    study = optuna.create_study(storage=storage, study_name="s")
    with pytest.raises(ZeroDivisionError), storage.batch():
        study.ask().suggest_int("n", 1, 3)
        _ = 1 / 0
    assert len(stock(path).get_all_trials(0)) == 1


def test_a_second_writer_during_a_batch_is_refused_not_misnumbered(tmp_path: Path) -> None:
    path = tmp_path / "optuna.journal"
    storage = ours(path)
    study = optuna.create_study(storage=storage, study_name="s")
    other = optuna.load_study(study_name="s", storage=stock(path))
    refused = pytest.raises(RevstudyError, match=r"optuna\.journal: changed by another process")
    with refused, storage.batch():
        study.ask()
        other.set_user_attr("k", 1)  # appended straight to the file
    replay = stock(path)
    assert replay.get_all_trials(0) == []  # the held ask was not written after it
    assert replay.get_study_user_attrs(0) == {"k": 1}


def test_other_storages_are_not_batched(tmp_path: Path) -> None:
    storage = optuna.storages.InMemoryStorage()
    with batched(storage):
        optuna.create_study(storage=storage).ask()
    assert len(storage.get_all_trials(0)) == 1


def test_reading_from_before_a_batch_gives_the_file_then_the_held_operations(
    tmp_path: Path,
) -> None:
    """What the backend returns from log 0 inside a batch: the file's operations, then the
    held ones; refused once another process has appended (they would be misnumbered)."""
    path = tmp_path / "optuna.journal"
    storage = ours(path)
    study = optuna.create_study(storage=storage, study_name="s")
    backend = storage._backend
    assert isinstance(backend, StudyJournalBackend)
    in_file = list(JournalFileBackend(str(path)).read_logs(0))
    with storage.batch():
        study.ask()
        held = backend._held
        assert held and backend.read_logs(0) == in_file + held
        optuna.load_study(study_name="s", storage=stock(path)).set_user_attr("k", 1)
        with pytest.raises(RevstudyError, match="changed by another process"):
            backend.read_logs(0)
        backend._held = []  # leave the file as the other process left it


def test_a_copy_keeps_no_trials_and_replays_the_file(tmp_path: Path) -> None:
    """Ray pickles the searcher (tuner.pkl): the copy carries the file's name, not a study's
    trials, and reads them back from the file."""
    import pickle

    path = tmp_path / "optuna.journal"
    storage = ours(path)
    study = optuna.create_study(storage=storage, study_name="s")
    study.ask()
    storage.get_all_trials(0, states=(TS.RUNNING,))  # a view exists
    blob = pickle.dumps(storage)
    assert b"FrozenTrial" not in blob
    copy = pickle.loads(blob)
    assert copy.get_all_trials(0) == storage.get_all_trials(0)
    assert copy.get_all_trials(0, states=(TS.RUNNING,)) == storage.get_all_trials(0)
    with storage.batch(), pytest.raises(RuntimeError, match="held in a batch"):
        study.ask()
        pickle.dumps(storage)
