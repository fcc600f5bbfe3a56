"""What `revstudy status` and `list` say about a study (revstudy.study.summary): counts by
state, the best trial by the one ranking, problems, a damaged study as a row."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
from analysis_synthetic import cut_journal_short, journal_study

from revstudy.errors import RevstudyError
from revstudy.study.summary import list_studies, study_summary, summarise
from revstudy.studyfolder import Objective
from revstudy.studyinfo import StudyInfo

INFO = StudyInfo(
    "s", (Objective("f1_macro_skill"), Objective("inv_error_max", "min")), num_samples=6
)


def _table() -> pd.DataFrame:
    """Six trials: the best by the first objective stopped early; one completed trial
    dominates the other completed one; a DAMAGED and a DIVERGED one are never best."""
    return pd.DataFrame(
        {
            "trial_id": ["stop", "good", "worse", "dmg", "div", "run"],
            "number": [0, 1, 2, 3, 4, 5],
            "state": ["STOPPED_EARLY", "COMPLETED", "COMPLETED", "DAMAGED", "DIVERGED", "RUNNING"],
            "failure_reason": ["", "", "", "result.json damaged", "inv_error_max = 2.4e+03", ""],
            "f1_macro_skill": [0.9, 0.3, 0.2, 0.95, 0.99, float("nan")],
            "inv_error_max": [1e-6, 1e-6, 2e-6, 1e-6, 2382.0, float("nan")],
            "config/lr": [1e-3, 2e-3, 3e-3, 4e-3, 5e-3, 6e-3],
        }
    )


def test_summary_counts_states_and_names_the_best_completed_trial(tmp_path: Path) -> None:
    s = summarise(tmp_path, INFO, _table(), elapsed=12.5)
    assert s["by_state"] == {
        "STOPPED_EARLY": 1, "COMPLETED": 2, "DAMAGED": 1, "DIVERGED": 1, "RUNNING": 1,
    }  # fmt: skip
    assert (s["trials"], s["requested"], s["elapsed_s"]) == (6, 6, 12.5)
    best = s["best"]
    assert best["trial_id"] == "good"  # completed before stopped early; Pareto-best
    assert best["config"] == {"lr": 2e-3} and best["metrics"]["f1_macro_skill"] == 0.3
    assert s["objectives"] == [
        {"metric": "f1_macro_skill", "mode": "max"},
        {"metric": "inv_error_max", "mode": "min"},
    ]
    assert len(s["problems"]) == 2 and "trial dmg: result.json damaged" in s["problems"][0]
    json.dumps(s)  # what `status --json` prints


def test_an_empty_study_has_no_best(tmp_path: Path) -> None:
    empty = pd.DataFrame(columns=["trial_id", "number", "state", "failure_reason"])
    s = summarise(tmp_path, INFO, empty)
    assert (s["best"], s["by_state"], s["problems"], s["trials"]) == (None, {}, [], 0)


def test_status_and_list_find_studies_and_report_a_damaged_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("REVSTUDY_STORAGE", raising=False)
    for name, doc in (("ok", {"name": "ok", "objectives": [{"metric": "f1_macro_skill"}]}),
                      ("copied", {"name": "original", "objectives": [{"metric": "f1_macro"}]}),
                      ("broken", {"name": "broken"})):  # fmt: skip
        (tmp_path / name).mkdir()
        (tmp_path / name / "study.json").write_text(json.dumps(doc))
    assert study_summary("ok", str(tmp_path))["trials"] == 0
    rows = {r["folder"]: r for r in list_studies(str(tmp_path))}
    assert sorted(rows) == ["broken", "copied", "ok"]
    assert rows["copied"]["name"] == "original"  # the folder is what status/resume take
    assert "lacks objectives" in rows["broken"]["damaged"]
    with pytest.raises(RevstudyError, match="lacks objectives"):
        study_summary("broken", str(tmp_path))
    with pytest.raises(RevstudyError, match="no study 'nope'"):
        study_summary("nope", str(tmp_path))


def _foreign(journal: Path) -> None:
    """Make the record another study's: its id differs from study.json's."""
    import optuna

    from revstudy.optunafile import optuna_storage
    from revstudy.studyinfo import STUDY_ID_ATTR

    info = json.loads((journal.parent / "study.json").read_text())
    (journal.parent / "study.json").write_text(json.dumps({**info, "study_id": "f" * 32}))
    study = optuna.load_study(study_name=None, storage=optuna_storage(journal.parent))
    study.set_user_attr(STUDY_ID_ATTR, "e" * 32)


@pytest.mark.parametrize(
    ("damage", "said"),
    [
        (cut_journal_short, r": holds no record of \d+ trial folder\(s\) \(e\.g\. trials/"),
        (lambda j: j.write_bytes(b"garbage"), ": holds no study 'synthetic-single'"),
        (_foreign, ": belongs to another study"),
        (lambda j: j.unlink(), ": missing"),
    ],
)
def test_status_names_an_optuna_record_resume_would_refuse_and_leaves_it_as_found(
    tmp_path: Path, damage: Callable[[Path], object], said: str
) -> None:
    """Before, `status` read only the trial folders and called such a study healthy; the
    first to say otherwise was `resume`, refusing it."""
    folder = journal_study(tmp_path)
    journal = folder / "optuna.journal"
    assert not [p for p in study_summary(str(folder))["problems"] if "optuna.journal" in p]
    damage(journal)
    before = journal.read_bytes() if journal.exists() else None
    problems = [p for p in study_summary(str(folder))["problems"] if "optuna.journal" in p]
    assert len(problems) == 1
    assert re.match(re.escape(str(journal)) + said, problems[0]), problems[0]
    assert (journal.read_bytes() if journal.exists() else None) == before  # read only
