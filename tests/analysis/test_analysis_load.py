"""Loading study directories and exporting their tables."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import analysis


def test_load_single(study_dir) -> None:
    s = analysis.load_study(study_dir("single"))
    assert s.name == "synthetic-single"
    assert [o.metric for o in s.objectives] == ["f1_macro"]
    assert not s.partial
    assert s.optuna_file is not None and s.optuna_file.name == "optuna.db"  # an older study
    assert s.state_counts.to_dict() == {"COMPLETED": 11, "STOPPED_EARLY": 2, "FAILED": 1}
    assert s.trials["is_baseline"].sum() == 1
    arr = s.arrays("t000")
    assert arr is not None and arr["cd_radii"].shape == (6,)
    assert s.arrays("t005") is None  # the failed trial wrote no arrays
    assert set(s.epochs["repeat"]) == {0, 1, 2}
    assert len(s.load_optuna().trials) == 14


def test_partial_when_running(study_dir) -> None:
    assert analysis.load_study(study_dir("running")).partial


def test_minimal_without_epochs_and_arrays(study_dir) -> None:
    s = analysis.load_study(study_dir("minimal"))
    assert s.epochs.empty and "val_f1_macro" in s.epochs.columns
    assert s.arrays("t001") is None


def test_not_a_study(tmp_path: Path) -> None:
    with pytest.raises(analysis.NotAStudyError, match=str(tmp_path)):
        analysis.load_study(tmp_path)
    missing = tmp_path / "nope"
    with pytest.raises(analysis.NotAStudyError, match="nope"):
        analysis.load_study(missing)


def test_empty_study(tmp_path: Path) -> None:
    (tmp_path / "study.json").write_text(json.dumps({"name": "empty"}))
    s = analysis.load_study(tmp_path)
    assert s.trials.empty and not s.partial and s.optuna_file is None
    assert analysis.best_trials(s).empty
    out = analysis.write_report(tmp_path)
    assert "no trials yet" in out.read_text()


def test_best_trials_single(study_dir) -> None:
    s = analysis.load_study(study_dir("single"))
    best = analysis.best_trials(s, k=3)
    f1 = s.finished["f1_macro"].sort_values(ascending=False)
    assert list(best["f1_macro"]) == list(f1.head(3))


def test_best_trials_multi_pareto_first(study_dir) -> None:
    s = analysis.load_study(study_dir("multi"))
    best = analysis.best_trials(s, k=20)
    flags = best["pareto"].tolist()
    assert flags[0] and flags == sorted(flags, reverse=True)


def test_pareto_mask() -> None:
    v = np.array([[1.0, 1.0], [2.0, 0.0], [0.5, 0.5], [0.0, 2.0]])
    assert analysis.pareto_mask(v).tolist() == [True, True, False, True]


def test_export_tables(study_dir, tmp_path: Path) -> None:
    path = study_dir("single")
    assert analysis.cli_report(path, csv=tmp_path / "t.csv", parquet=tmp_path / "t.pq") is None
    csv = pd.read_csv(tmp_path / "t.csv")
    assert csv["trial_id"].tolist()[:2] == ["t000", "t001"] and len(csv) == 14
    assert len(pd.read_parquet(tmp_path / "t.pq")) == 14
    ep = analysis.export_table(path, tmp_path / "e.parquet", epochs=True)
    assert {"trial_id", "repeat", "epoch"} <= set(pd.read_parquet(ep).columns)
