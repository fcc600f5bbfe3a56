"""The Optuna side of a resumed study (revstudy.study.search): which trials count, which are
continued, and trials the killed driver asked for but never started."""

from __future__ import annotations

import optuna
import pytest

from revstudy.study.search import (
    RAY_ID_ATTR,
    UNSTARTED_ATTR,
    counted_trials,
    discard_unstarted,
    unfinished,
)

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
