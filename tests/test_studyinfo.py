"""study.json as one typed document (revstudy.studyinfo): every field checked on read, a run
needs every setting, a reader only the name and objectives, unknown keys kept."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from revstudy.errors import RevstudyError
from revstudy.studyfolder import Objective
from revstudy.studyinfo import RUN_FIELDS, DataRecord, StudyInfo, foreign_database, read_study

# what `revstudy launch` wrote for a study before this module existed (a real study.json's
# keys and types), so a study launched by an earlier version still reads
LAUNCHED: dict[str, Any] = {
    "name": "s1",
    "space": {"name": "quick", "path": "quick", "fixed": {"epochs": 2}, "params": []},
    "sampler": "random",
    "scheduler": "asha",
    "seed": 0,
    "objectives": [{"metric": "f1_macro_skill", "mode": "max"}],
    "num_samples": 4,
    "repeats": 2,
    "max_concurrent": 0,
    "pack": 1,
    "constraints": [],
    "warm_start": [
        {
            "study": "s0",
            "path": "/x/s0",
            "study_id": "e" * 32,
            "used": 14,
            "left_out": {"lr outside this space": 2},
            "differs": [],
        }
    ],
    "log": ["mlflow"],
    "cpus_per_trial": 1.0,
    "gpus_per_trial": 0,
    "time_budget_s": None,
    "test_fraction": 0.1,
    "baseline": True,
    "max_failures": 1,
    "data": {"path": "/data/r.csv", "sha256": "ab" * 32, "rows": 1267},
    "optuna_study_name": "s1",
    "optuna_storage": "sqlite:////x/s1/optuna.db",
    "study_id": "f" * 32,
    "created": "2026-12-01T10:00:00+00:00",
    "versions": {"revstudy": "0.1.0", "ray": "2.60.0", "optuna": "5.0.0", "torch": "2.13.0"},
}


def test_a_launched_study_reads_typed_and_writes_back_the_same_document() -> None:
    info = StudyInfo.from_dict(LAUNCHED, for_run=True)
    assert info.objectives == (Objective("f1_macro_skill", "max"),)
    assert info.data == DataRecord("/data/r.csv", "ab" * 32, 1267)
    assert (info.num_samples, info.repeats, info.gpus_per_trial) == (4, 2, 0.0)
    assert isinstance(info.gpus_per_trial, float) and info.metrics == ["f1_macro_skill"]
    assert json.loads(json.dumps(info.to_dict())) == LAUNCHED


def test_unknown_keys_are_kept_and_a_change_is_a_copy() -> None:
    info = StudyInfo.from_dict({**LAUNCHED, "added_later": {"x": 1}})
    grown = info.replace(num_samples=9)
    assert grown.to_dict()["added_later"] == {"x": 1} and grown.num_samples == 9
    assert info.num_samples == 4  # frozen: the one read stays as read
    with pytest.raises(AttributeError):
        info.num_samples = 5  # type: ignore[misc]


@pytest.mark.parametrize("field", RUN_FIELDS)
def test_a_run_refuses_a_study_lacking_a_setting(field: str) -> None:
    doc = {k: v for k, v in LAUNCHED.items() if k != field}
    with pytest.raises(RevstudyError, match=rf"^x/study.json: damaged or foreign, lacks {field}$"):
        StudyInfo.from_dict(doc, "x/study.json", for_run=True)


def test_a_run_needs_each_objective_s_direction() -> None:
    doc = {**LAUNCHED, "objectives": [{"metric": "f1_macro_skill"}]}
    assert StudyInfo.from_dict(doc).objectives == (Objective("f1_macro_skill", "max"),)
    with pytest.raises(RevstudyError, match=r"objectives is .*, expected entries like"):
        StudyInfo.from_dict(doc, for_run=True)


def test_a_reader_needs_only_the_name_and_objectives() -> None:
    info = StudyInfo.from_dict({"name": "old", "objectives": [{"metric": "f1_macro"}]})
    assert info.num_samples == 0 and info.data is None and info.optuna_name == "old"
    with pytest.raises(RevstudyError, match="records no data file"):
        info.data_file  # noqa: B018
    with pytest.raises(RevstudyError, match="lacks objectives"):
        StudyInfo.from_dict({"name": "old"})


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("num_samples", "8", 'num_samples is "8", expected an integer >= 1'),
        ("num_samples", 0, "num_samples is 0, expected an integer >= 1"),
        ("repeats", True, "repeats is true, expected an integer >= 1"),
        ("gpus_per_trial", 2, r"gpus_per_trial is 2, expected a number in \[0, 1\]"),
        ("cpus_per_trial", float("nan"), "cpus_per_trial is nan, expected a number"),
        ("baseline", "yes", 'baseline is "yes", expected true or false'),
        ("space", [], "space is \\[\\], expected a mapping"),
        ("data", {"path": "x"}, "data is .*, expected a mapping with path and sha256"),
        ("objectives", [], "objectives is \\[\\], expected a non-empty list"),
        ("objectives", [{"metric": "f1", "mode": "up"}], "objectives is .*, expected entries like"),
        ("name", 3, "name is 3, expected a string"),
        ("warm_start", [{"study": "s0"}], "warm_start is .*, expected a list of {study, path"),
        ("warm_start", {"study": "s0"}, "warm_start is .*, expected a list of {study, path"),
    ],
)
def test_a_damaged_field_is_named(field: str, value: Any, message: str) -> None:
    with pytest.raises(RevstudyError, match=f"^s/study.json: {message}"):
        StudyInfo.from_dict({**LAUNCHED, field: value}, "s/study.json")


def test_read_study_reports_missing_truncated_and_linked_files(tmp_path: Path) -> None:
    with pytest.raises(RevstudyError, match="no study at"):
        read_study(tmp_path)
    (tmp_path / "study.json").write_text(json.dumps(LAUNCHED)[:40])
    with pytest.raises(RevstudyError, match=r"study\.json: damaged, not valid JSON"):
        read_study(tmp_path)
    (tmp_path / "study.json").write_text("[1, 2]")
    with pytest.raises(RevstudyError, match="not a JSON object"):
        read_study(tmp_path)
    (tmp_path / "elsewhere.json").write_text(json.dumps(LAUNCHED))
    (tmp_path / "study.json").unlink()
    (tmp_path / "study.json").symlink_to(tmp_path / "elsewhere.json")
    with pytest.raises(RevstudyError, match="plain file"):
        read_study(tmp_path)


class _Optuna:
    def __init__(self, attrs: dict[str, Any]):
        self.user_attrs = attrs


def test_a_database_of_another_study_is_recognised() -> None:
    info = StudyInfo.from_dict(LAUNCHED)
    assert foreign_database(_Optuna({"revstudy_study_id": "f" * 32}), info) is None
    why = foreign_database(_Optuna({"revstudy_study_id": "e" * 32}), info)
    assert why is not None and why.startswith("belongs to another study")
    assert foreign_database(_Optuna({}), info.replace(study_id="")) is None  # older study
