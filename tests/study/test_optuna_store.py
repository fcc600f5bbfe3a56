"""The Optuna database of a study (revstudy.study.optuna_store): which trials count, which are
continued or retried, what Ray outcomes become, trials the killed driver asked for but never
started, and a database that is not this study's."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest

from revstudy.errors import RevstudyError
from revstudy.study.optuna_store import (
    RAY_ID_ATTR,
    UNSTARTED_ATTR,
    counted_trials,
    discard_unstarted,
    make_sampler,
    open_optuna,
    recorded_states,
    retries,
    tell,
    unfinished,
)
from revstudy.studyfolder import FINAL_KEY, Objective
from revstudy.studyinfo import STUDY_ID_ATTR, StudyInfo

TS = optuna.trial.TrialState
X = {"lr": optuna.distributions.FloatDistribution(1e-4, 1e-2, log=True)}


@pytest.fixture
def study() -> optuna.Study:
    """0 finished, 1 interrupted mid-training, 2 the enqueued baseline and 3 a sampled trial,
    both asked of Optuna as the driver was killed (no folder id yet)."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    s = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    done = s.ask(X)
    done.set_user_attr(RAY_ID_ATTR, "aaaa0000")
    s.tell(done, 0.5)
    running = s.ask(X)
    running.set_user_attr(RAY_ID_ATTR, "bbbb1111")
    s.enqueue_trial({"lr": 1e-3})
    s.ask(X)  # the baseline, sampled from the queue
    s.ask(X)
    return s


def test_unstarted_trials_are_discarded_and_the_baseline_enqueued_again(
    study: optuna.Study,
) -> None:
    assert len(counted_trials(study)) == 4  # before: the lost two would count
    assert discard_unstarted(study) == 2
    assert [t.number for t in counted_trials(study)] == [0, 1]
    assert [(c.number, c.record_id) for c in unfinished(study)] == [(1, "bbbb1111")]
    lost = [t for t in study.get_trials() if t.user_attrs.get(UNSTARTED_ATTR)]
    assert [(t.number, t.state) for t in lost] == [(2, TS.FAIL), (3, TS.FAIL)]
    (waiting,) = study.get_trials(states=(TS.WAITING,))
    assert waiting.system_attrs["fixed_params"] == {"lr": 1e-3}  # the baseline still runs
    assert discard_unstarted(study) == 0  # nothing left to discard


def _final(value: float) -> dict[str, float]:
    return {"f1_macro_skill": value, FINAL_KEY: 1}


def test_tell_maps_ray_outcomes_to_optuna_states(study: optuna.Study) -> None:
    objectives = (Objective("f1_macro_skill"),)
    fresh = [study.ask(X).number for _ in range(4)]
    assert tell(study, fresh[0], objectives, _final(0.25), error=False) == TS.COMPLETE
    assert tell(study, fresh[1], objectives, {"f1_macro_skill": 0.1}, error=False) == TS.PRUNED
    assert tell(study, fresh[2], objectives, None, error=True) == TS.FAIL
    assert tell(study, fresh[3], objectives, _final(float("nan")), error=False) == TS.FAIL
    trials = {t.number: t for t in study.get_trials()}
    assert trials[fresh[0]].value == 0.25
    assert trials[fresh[3]].user_attrs["revstudy_reason"] == "final objective is NaN"
    # told again by a later driver (already finished): no error, nothing changes
    assert tell(study, fresh[0], objectives, _final(0.9), error=False) == TS.COMPLETE
    assert study.get_trials()[fresh[0]].value == 0.25


def test_a_retried_failure_runs_again_under_its_folder_and_counts_once() -> None:
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    failed = study.ask(X)
    failed.set_user_attr(RAY_ID_ATTR, "cccc2222")
    study.tell(failed, state=TS.FAIL)
    before = len(counted_trials(study))
    (again,) = retries(study)
    assert again.record_id == "cccc2222" and again.params == failed.params
    assert again.number != failed.number
    assert len(counted_trials(study)) == before  # the retry replaces the failure
    assert retries(study) == []  # a failure is retried once
    states = {c.record_id: c for c in unfinished(study)}
    assert states["cccc2222"].number == again.number  # resume continues the retry


def test_recorded_states_tell_ray_what_earlier_runs_did(study: optuna.Study) -> None:
    states = recorded_states(study, ["f1_macro_skill"])
    assert states == {
        "aaaa0000": {
            "status": "TERMINATED",
            "config": study.get_trials()[0].params,
            "error": "",
            "last_result": {"f1_macro_skill": 0.5},
        }
    }  # RUNNING and folder-less trials are not Ray's to know


def _info(study_id: str = "a" * 32) -> StudyInfo:
    return StudyInfo("s1", (Objective("f1_macro_skill"),), sampler="random", study_id=study_id)


def test_open_optuna_creates_then_reopens_and_refuses_what_is_not_this_study(
    tmp_path: Path,
) -> None:
    created = open_optuna(tmp_path, _info(), create=True)
    assert (tmp_path / "optuna.journal").is_file() and not (tmp_path / "optuna.db").exists()
    assert created.user_attrs[STUDY_ID_ATTR] == "a" * 32
    created.ask(X)
    again = open_optuna(tmp_path, _info())
    assert isinstance(again.sampler, optuna.samplers.RandomSampler)
    assert len(again.get_trials()) == 1
    with pytest.raises(RevstudyError, match=r"optuna\.journal: belongs to another study"):
        open_optuna(tmp_path, _info(study_id="b" * 32))
    (tmp_path / "optuna.journal").write_bytes(b"not a journal\n" * 4)
    with pytest.raises(RevstudyError, match=r"optuna\.journal: not a readable Optuna journal"):
        open_optuna(tmp_path, _info())
    (tmp_path / "optuna.journal").unlink()
    with pytest.raises(RevstudyError, match=r"optuna\.journal: missing \(and no optuna\.db"):
        open_optuna(tmp_path, _info())
    assert not (tmp_path / "optuna.journal").exists()  # never replaced by an empty one


def test_a_study_launched_before_the_journal_goes_on_with_its_optuna_db(tmp_path: Path) -> None:
    old = optuna.create_study(study_name="s1", storage=f"sqlite:///{tmp_path / 'optuna.db'}")
    old.set_user_attr(STUDY_ID_ATTR, "a" * 32)
    old.ask(X)
    again = open_optuna(tmp_path, _info(), mend=True)
    again.ask(X)
    assert not (tmp_path / "optuna.journal").exists()
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    assert len(optuna.load_study(study_name="s1", storage=url).trials) == 2
    (tmp_path / "optuna.db").write_bytes(b"not a database" * 4)
    with pytest.raises(RevstudyError, match=r"optuna\.db: not an SQLite database"):
        open_optuna(tmp_path, _info())


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("tpe", optuna.samplers.TPESampler),
        ("random", optuna.samplers.RandomSampler),
        ("gp", optuna.samplers.GPSampler),
        ("nsga2", optuna.samplers.NSGAIISampler),
        ("qmc", optuna.samplers.QMCSampler),
    ],
)
def test_make_sampler_names_optuna_s_samplers(name: str, kind: type) -> None:
    assert isinstance(make_sampler(name, 0, multi=False), kind)


def test_make_sampler_refuses_an_unknown_name() -> None:
    with pytest.raises(RevstudyError, match="--sampler: choose from tpe, random"):
        make_sampler("cmaes", 0, multi=False)


def test_qmc_is_quiet_and_ready_before_the_first_suggestion() -> None:
    """`--sampler qmc` printed Optuna's "experimental" notice (Optuna is pinned: nothing for
    a user to act on), and its first suggestion imported scipy.stats inside the searcher
    call Ray times, which Ray reported as a slow define-by-run space."""
    import sys
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error", optuna.exceptions.ExperimentalWarning)
        sampler = make_sampler("qmc", 0, multi=False)
        assert "scipy.stats" in sys.modules
        s = optuna.create_study(sampler=sampler)
        for _ in range(3):
            s.tell(s.ask(X), 0.5)
