"""The Ray runtime's output: only revstudy's advice after an interruption (issue #22)."""

from __future__ import annotations

import logging

import pytest

from revstudy.study.ray_runtime import silence_ray_advice


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
    finally:
        tune_log.propagate, analysis_log.propagate = was, was_a
    messages = [r.getMessage() for r in caplog.records]
    assert messages == ["a trial ran out of memory"]
