"""Checks a launch makes before any trial runs (no Ray cluster needed)."""

import pytest

from revstudy.errors import RevstudyError
from revstudy.study.driver import check_resources
from revstudy.study.options import KNOWN_METRICS
from revstudy.studyfolder import PER_EPOCH
from revstudy.training.trainer import EpochRecord


def test_per_epoch_objectives_are_reported_every_epoch() -> None:
    assert set(PER_EPOCH) <= set(KNOWN_METRICS)
    fields = set(EpochRecord.__dataclass_fields__)
    assert set(PER_EPOCH.values()) <= fields  # the trial averages these over repeats


@pytest.fixture()
def two_cpus_no_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    import ray

    monkeypatch.setattr(ray, "cluster_resources", lambda: {"CPU": 2.0})


def test_local_ray_refuses_trials_it_can_never_place(two_cpus_no_gpu: None) -> None:
    with pytest.raises(RevstudyError, match=r"--gpus-per-trial 0.25: this machine has 0 GPU"):
        check_resources(None, 1, 0.25)
    with pytest.raises(RevstudyError, match=r"--cpus-per-trial 4: this machine has 2 CPU"):
        check_resources(None, 4, 0)
    check_resources(None, 2, 0)  # fits


def test_a_cluster_may_still_grow_so_it_only_notes(
    two_cpus_no_gpu: None, capsys: pytest.CaptureFixture[str]
) -> None:
    check_resources("auto", 1, 0.25)
    assert "wait until the autoscaler adds GPU workers" in capsys.readouterr().err


def test_a_refused_launch_leaves_no_empty_study(tmp_path) -> None:
    from revstudy.study.driver import _remove_refused_study, study_lock

    with study_lock(tmp_path / "new"):
        _remove_refused_study(tmp_path / "new")
    assert not (tmp_path / "new").exists()
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "study.json").write_text("{}")
    with study_lock(tmp_path / "old"):
        _remove_refused_study(tmp_path / "old")  # a real study is never removed
    assert (tmp_path / "old" / "study.json").is_file()
