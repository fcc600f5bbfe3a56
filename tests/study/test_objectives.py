"""Objectives known every epoch: the study's list and the trial's report keys agree."""

from revstudy.study import KNOWN_METRICS, PER_EPOCH_METRICS
from revstudy.train import EpochRecord
from revstudy.trial import PER_EPOCH


def test_per_epoch_objectives_are_reported_every_epoch() -> None:
    assert set(PER_EPOCH) == set(PER_EPOCH_METRICS)
    assert set(PER_EPOCH_METRICS) <= set(KNOWN_METRICS)
    fields = set(EpochRecord.__dataclass_fields__)
    assert set(PER_EPOCH.values()) <= fields  # the trial averages these over repeats
