"""benchmarks/driver_start.py times a resume's start steps and `status` on a built study
(issue #31 item 6): checked on a small study that every step ran on the study it built (the
record covers the folders, the searcher holds no trial to continue) and that the share is
the start's seconds over the study's paced wall time. Timings are the benchmark's."""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import optuna

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "benchmarks"))

import driver_start  # noqa: E402


def test_every_start_step_is_timed_on_the_built_study() -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        row = driver_start.measure(12, rate=3600.0)  # one trial a second: 12 s of study
    assert row["trials"] == 12
    assert list(row["resume_parts_s"]) == [
        "remove_stale_temps", "open_record", "check_covers_folders",
        "drop_finished_checkpoints", "discard_unstarted", "counted_trials",
        "searcher_and_scheduler",
    ]  # fmt: skip
    assert all(v >= 0 for v in row["resume_parts_s"].values())
    share = sum(row["resume_parts_s"].values()) / 12.0  # parts rounded to 1 ms each
    assert abs(row["start_share_at_rate"] - share) < 1e-3
    assert list(row["status_parts_s"]) == ["load_trials", "record_problem", "folder_size"]
    assert row["status_s"] > 0
    # the healthy study's path: all 12 counted, none continued, the record covers them
    assert (row["counted_trials"], row["continuations"], row["record_problem"]) == (12, 0, None)
