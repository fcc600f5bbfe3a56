"""The study folder's contract (revstudy.studyfolder): one ranking, one lookup, checked
names and objectives."""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from revstudy.errors import RevstudyError
from revstudy.studyfolder import (
    Objective,
    check_name,
    find_study,
    pareto_fronts,
    parse_objective,
    rank_finished,
    rank_key,
    storage_root,
    trial_dir,
)

TRIALS = pd.DataFrame(
    {
        "trial_id": ["a", "b", "c", "d", "e", "f"],
        "state": ["COMPLETED", "STOPPED_EARLY", "COMPLETED", "FAILED", "COMPLETED", "RUNNING"],
        "f1": [0.20, 0.90, 0.25, 0.99, np.nan, 0.95],
        "inv": [1e-6, 1e-6, 5e-6, 0.0, 1e-7, 0.0],
    }
)


def test_one_objective_ranks_completed_trials_first_then_the_value() -> None:
    ranked = rank_finished(TRIALS, [Objective("f1", "max")])
    # FAILED/RUNNING never ranked, NaN left out, the early-stopped trial after completed ones
    assert ranked["trial_id"].tolist() == ["c", "a", "b"]
    assert ranked["rank"].tolist() == [1, 2, 3]
    assert (ranked["front"] == 0).all()


def test_several_objectives_rank_by_pareto_front_then_the_first_objective() -> None:
    ranked = rank_finished(TRIALS, [Objective("f1", "max"), Objective("inv", "min")])
    # the early-stopped b (0.90, 1e-6) dominates a and c, yet ranks last: completed first
    assert ranked["trial_id"].tolist() == ["c", "a", "b"]
    assert ranked.set_index("trial_id")["front"].to_dict() == {"c": 1, "a": 1, "b": 0}
    three = pd.DataFrame(
        {"trial_id": ["x", "y", "z"], "state": ["COMPLETED"] * 3, "f1": [0.3, 0.2, 0.1],
         "inv": [2.0, 1.0, 3.0]}
    )  # fmt: skip
    ranked = rank_finished(three, [Objective("f1", "max"), Objective("inv", "min")])
    assert ranked["trial_id"].tolist() == ["x", "y", "z"]  # z is dominated by both
    assert ranked["front"].tolist() == [0, 0, 1]


def test_ranking_of_nothing_is_empty_not_an_error() -> None:
    assert rank_finished(pd.DataFrame(), [Objective("f1")]).empty
    assert rank_finished(TRIALS, [Objective("missing")]).empty


def test_the_live_key_agrees_with_the_table_ranking() -> None:
    o = Objective("f1", "max")
    rows = [("COMPLETED", 0.2), ("STOPPED_EARLY", 0.9), ("COMPLETED", 0.25)]
    best = min(rows, key=lambda r: rank_key(r[0], r[1], o))
    assert best == ("COMPLETED", 0.25)
    assert rank_key("COMPLETED", 1.0, Objective("inv", "min")) > rank_key(
        "COMPLETED", 0.5, Objective("inv", "min")
    )


def test_pareto_fronts() -> None:
    assert pareto_fronts(np.array([[1.0, 1.0], [0.0, 0.0], [2.0, 0.0]])).tolist() == [0, 1, 0]
    assert pareto_fronts(np.zeros((0, 2))).tolist() == []


def _fronts_by_definition(values: np.ndarray) -> list[int]:
    """Non-dominated sorting as defined: peel the points no remaining point dominates."""
    values = np.where(np.isnan(values), -np.inf, values)
    front, left, level = [-1] * len(values), set(range(len(values))), 0

    def dominates(j: int, i: int) -> bool:
        return bool((values[j] >= values[i]).all() and (values[j] > values[i]).any())

    while left:
        top = {i for i in left if not any(dominates(j, i) for j in left)}
        for i in top:
            front[i] = level
        left -= top
        level += 1
    return front


@pytest.mark.parametrize("k", [1, 2, 3, 4])
def test_pareto_fronts_agree_with_the_definition(k: int) -> None:
    """Optuna's fast sort, against dominance checked pair by pair: ties (coarse values,
    repeated rows), -inf and NaN (unmeasured: the worst value)."""
    rng = np.random.default_rng(k)
    for n in (1, 2, 7, 60, 200):
        values = rng.integers(0, 6, size=(n, k)).astype(float)  # many ties
        values[rng.random((n, k)) < 0.05] = -np.inf
        values[rng.random((n, k)) < 0.05] = np.nan
        if n > 3:
            values[1] = values[0]
        assert pareto_fronts(values).tolist() == _fronts_by_definition(values), (n, k)


def test_objectives_parse_with_one_line_errors() -> None:
    assert parse_objective("f1_macro") == Objective("f1_macro", "max")
    assert parse_objective(" inv_error_max:min ") == Objective("inv_error_max", "min")
    with pytest.raises(RevstudyError, match="--objective: mode of f1 must be max or min"):
        parse_objective("f1:up", "--objective")
    with pytest.raises(RevstudyError, match="expected METRIC"):
        parse_objective(":max")


def test_storage_root_honours_flag_env_and_file_uri(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REVSTUDY_STORAGE", f"file://{tmp_path}/env")
    assert storage_root(None) == (tmp_path / "env").resolve()
    assert storage_root(str(tmp_path / "flag")) == (tmp_path / "flag").resolve()
    with pytest.raises(RevstudyError, match="only directories"):
        storage_root("s3://bucket/x")
    with pytest.raises(
        RevstudyError, match=r"no study 'first' under .*env \(see `revstudy list`\)"
    ):
        find_study("first")
    (tmp_path / "env" / "first").mkdir(parents=True)
    (tmp_path / "env" / "first" / "study.json").write_text("{}")
    assert find_study("first") == (tmp_path / "env" / "first").resolve()
    assert find_study(str(tmp_path / "env" / "first")) == (tmp_path / "env" / "first").resolve()


def test_a_path_that_is_no_study_folder_is_told_as_such(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(RevstudyError, match=r"empty': not a study folder \(it has no study.json;"):
        find_study(str(tmp_path / "empty"))
    with pytest.raises(RevstudyError, match=r"gone': not a study folder \(no such folder;"):
        find_study(str(tmp_path / "gone"))
    with pytest.raises(RevstudyError, match="a study name is 1-128"):  # one part: a name
        find_study("bad name")


@pytest.mark.parametrize("bad", ["../up", "a/b", ".hidden", "", "-x", "x" * 129])
def test_no_name_escapes_the_storage_root(bad: str, tmp_path: Path) -> None:
    with pytest.raises(RevstudyError):
        check_name(bad)
    with pytest.raises(RevstudyError):
        trial_dir(tmp_path, bad)


def test_every_public_name_of_revstudy_resolves_from_its_module() -> None:
    import revstudy

    missing = [n for n in revstudy.__all__ if not hasattr(revstudy, n)]
    assert not missing, missing
    assert revstudy.TrialConfig.__module__ == "revstudy.training.config"


@pytest.mark.parametrize("package", ["data", "training", "study", "elucidation"])
def test_subpackages_re_export_nothing(package: str) -> None:
    # "go to definition" lands where a name is defined: no façade (issue #25.2)
    mod = importlib.import_module(f"revstudy.{package}")
    assert not hasattr(mod, "__all__") and not hasattr(mod, "__getattr__")


def test_contract_cli_and_analysis_import_without_torch_or_ray() -> None:
    code = (
        "import sys, revstudy.studyfolder, revstudy.cli, revstudy.study, revstudy.training, "
        "revstudy.study.spaces, analysis; "
        "print(sorted(m for m in ('torch', 'ray') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
