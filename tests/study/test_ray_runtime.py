"""Ray for a study (revstudy.study.ray_runtime): only revstudy's advice after an interruption
(issue #22), the trials' shared context and the resources each trial reserves."""

from __future__ import annotations

import dataclasses
import logging
import os
from pathlib import Path

import pytest

from revstudy.errors import RevstudyError
from revstudy.study.ray_runtime import silence_ray_advice, trainable
from revstudy.study.trial_context import TrialContext
from revstudy.studyfolder import Objective
from revstudy.studyinfo import StudyInfo


def test_rays_recovery_advice_is_dropped_other_warnings_kept(
    caplog: pytest.LogCaptureFixture,
) -> None:
    silence_ray_advice()
    silence_ray_advice()  # idempotent: one filter
    tune_log = logging.getLogger("ray.tune.tune")
    assert len(tune_log.filters) == 1
    tune_log.propagate, was = True, tune_log.propagate
    analysis_log = logging.getLogger("ray.tune.analysis.experiment_analysis")
    analysis_log.propagate, was_a = True, analysis_log.propagate
    try:
        with caplog.at_level(logging.WARNING):
            tune_log.warning(
                "Experiment has been interrupted, but the most recent state was saved.\n"
                'Resume experiment with: Tuner.restore(path="/x", trainable=...)'
            )
            analysis_log.warning("Failed to fetch metrics for 1 trial(s):\n- t: FileNotFound")
            tune_log.warning("a trial ran out of memory")
        with caplog.at_level(logging.INFO):  # the end-of-run notice, at its own level
            tune_log.info(
                "Wrote the latest version of all result files and experiment state to "
                "'/s/ray/run-1' in 0.04s."
            )
    finally:
        tune_log.propagate, analysis_log.propagate = was, was_a
    messages = [r.getMessage() for r in caplog.records]
    assert messages == ["a trial ran out of memory"]


def _context(tmp_path: Path, synthetic_csv: Path, gpus: float = 0.25) -> TrialContext:
    from revstudy.data.dataset import read_dataset
    from revstudy.study.spaces import load_space

    info = StudyInfo(
        "s", (Objective("f1_macro_skill"), Objective("inv_error_max", "min")), repeats=3,
        seed=7, cpus_per_trial=2.0, gpus_per_trial=gpus,
    )  # fmt: skip
    return TrialContext.of_study(tmp_path, info, load_space("quick"), read_dataset(synthetic_csv))


def test_the_trial_context_is_built_once_from_study_json(
    tmp_path: Path, synthetic_csv: Path
) -> None:
    c = _context(tmp_path, synthetic_csv)
    assert (c.repeats, c.seed, c.threads, c.gpu_share) == (3, 7, 2, 0.25)
    assert c.objectives == ("f1_macro_skill", "inv_error_max") and c.fuse
    assert c.driver == {"pid": os.getpid(), "host": os.uname().nodename}
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.repeats = 1  # type: ignore[misc]


def test_the_trainable_reserves_the_study_s_cpus_and_gpu_share(
    tmp_path: Path, synthetic_csv: Path
) -> None:
    fn = trainable(_context(tmp_path, synthetic_csv), cpus_per_trial=2.0)
    assert fn._resources.required_resources == {"CPU": 2.0, "GPU": 0.25}
    with pytest.raises(RevstudyError, match="gpus-per-trial 2"):
        trainable(_context(tmp_path, synthetic_csv, gpus=2.0), cpus_per_trial=1.0)
