"""Constraints (issue #33): bounds a recommended trial must meet, told to Optuna's sampler
(feasible first, as Optuna defines it), never ranked, exported or reported as best."""

from __future__ import annotations

import json
import math
from pathlib import Path

import optuna
import pandas as pd
import pytest

from revstudy.errors import RevstudyError
from revstudy.optunafile import optuna_storage
from revstudy.study.export import export_study
from revstudy.study.options import LaunchOptions
from revstudy.study.optuna_store import INFEASIBLE, make_sampler, tell
from revstudy.studyfolder import (
    FINAL_KEY,
    Objective,
    parse_constraint,
    rank_finished,
    worst_violation,
)
from revstudy.studyinfo import StudyInfo
from revstudy.trialtable import build_trials_table
from tests.study.test_driver import TINY_FIXED, _cli, _launch_args


@pytest.mark.parametrize(
    ("spec", "metrics", "violation"),
    [
        ("inv_error_max<=1e-5", {"inv_error_max": 3e-5}, 2e-5),
        ("inv_error_max<=1e-5", {"inv_error_max": 1e-6}, -9e-6),
        ("f1_macro >= 0.2", {"f1_macro": 0.15}, 0.05),
        ("f1_macro>=0.2", {}, math.inf),  # not measured: not feasible
        ("f1_macro>=0.2", {"f1_macro": float("nan")}, math.inf),
    ],
)
def test_a_violation_is_how_far_outside_the_bound(
    spec: str, metrics: dict, violation: float
) -> None:
    got = parse_constraint(spec).violation(metrics)
    assert got == pytest.approx(violation) if math.isfinite(violation) else got == math.inf


def test_the_worst_violation_decides_and_none_means_feasible() -> None:
    both = (parse_constraint("a<=1"), parse_constraint("b>=2"))
    assert worst_violation({"a": 0.5, "b": 1.0}, both) == pytest.approx(1.0)
    assert worst_violation({"a": 0.5}, ()) < 0


@pytest.mark.parametrize(
    ("constraints", "needle"),
    [
        (["inv_error_max<1e-5"], "expected METRIC<=VALUE or METRIC>=VALUE"),
        (["inv_error_max<=abc"], "with a finite number"),
        (["speed<=3"], "unknown metric 'speed'"),
    ],
)
def test_a_bad_constraint_is_one_line_before_anything(constraints: list[str], needle: str) -> None:
    with pytest.raises(RevstudyError, match=needle):
        LaunchOptions(constraints=constraints).validate()


def test_the_sampler_learns_which_trials_were_feasible() -> None:
    """`tell` sets each completed trial's violation of every constraint (Optuna 5's
    `Trial.set_constraint`), which TPE, GP and NSGA-II read: feasible first."""
    objectives = [Objective("f1_macro", "max")]
    bound = (parse_constraint("inv_error_max<=1e-5"),)
    study = optuna.create_study(direction="maximize", sampler=make_sampler("tpe", 0, False))
    outcomes = [{"f1_macro": 0.2, "inv_error_max": 3e-5}, {"f1_macro": 0.1, "inv_error_max": 1e-6}]
    for result in outcomes:
        trial = study.ask()
        trial.suggest_float("lr", 1e-4, 1e-2)
        tell(study, trial.number, objectives, {**result, FINAL_KEY: 1}, False, bound)
    first, second = study.trials
    assert first.constraints == {"inv_error_max<=1e-05": pytest.approx(2e-5)}
    assert second.constraints["inv_error_max<=1e-05"] < 0
    from optuna.study._constrained_optimization import _get_feasible_trials

    assert [t.number for t in _get_feasible_trials(study.trials)] == [1]  # Optuna's own view
    diverged = {"f1_macro": 0.3, "inv_error_max": 5.0, FINAL_KEY: 1}  # numerically broken
    trial = study.ask()
    trial.suggest_float("lr", 1e-4, 1e-2)
    tell(study, trial.number, objectives, diverged, False, (parse_constraint("f1_macro>=0"),))
    assert study.trials[-1].constraints == {"f1_macro>=0": INFEASIBLE}
    pruned = study.ask()
    pruned.suggest_float("lr", 1e-4, 1e-2)
    tell(study, pruned.number, objectives, {"epoch": 2}, False, bound)  # stopped early
    assert study.trials[-1].state.name == "PRUNED" and study.trials[-1].constraints == {}


def _study_with_results(tmp_path: Path, constraints: list[str]) -> Path:
    folder = tmp_path / "s"
    info = StudyInfo(
        name="s",
        objectives=(Objective("f1_macro", "max"),),
        num_samples=3,
        constraints=tuple(constraints),
    )
    (folder / "trials").mkdir(parents=True)
    (folder / "study.json").write_text(json.dumps(info.to_dict()))
    for tid, f1, err in (("best_but_inexact", 0.3, 1e-3), ("good", 0.2, 1e-6), ("ok", 0.1, 2e-6)):
        tdir = folder / "trials" / tid
        tdir.mkdir()
        metrics = {"epoch": 1, "f1_macro": f1, "inv_error_max": err}
        doc = {"trial_id": tid, "config": {"epochs": 1, "lr": f1}, "metrics": metrics}
        (tdir / "result.json").write_text(json.dumps(doc))
    return folder


def test_an_infeasible_trial_is_never_ranked_or_exported(tmp_path: Path) -> None:
    study = _study_with_results(tmp_path, ["inv_error_max<=1e-5"])
    table = build_trials_table(study, {})
    by_id = table.set_index("trial_id")
    assert (
        by_id.loc["best_but_inexact", "feasible"] is False
        or not by_id.loc["best_but_inexact", "feasible"]
    )
    assert bool(by_id.loc["good", "feasible"]) and by_id.loc["good", "violation"] < 0
    ranked = rank_finished(table, [Objective("f1_macro", "max")])
    assert ranked.trial_id.tolist() == ["good", "ok"]
    table.to_parquet(study / "trials.parquet")
    res = export_study(str(study), out=tmp_path / "best.yaml")
    assert [r.trial_id for r in res.ranked] == ["good"]
    unconstrained = _study_with_results(tmp_path / "u", [])
    plain = build_trials_table(unconstrained, {})
    assert "feasible" not in plain
    assert (
        rank_finished(plain, [Objective("f1_macro", "max")]).trial_id.iloc[0] == "best_but_inexact"
    )


@pytest.mark.slow
def test_a_study_with_a_constraint_records_and_honours_it(tmp_path: Path) -> None:
    """End to end: `--constraint params_millions<=0.7` on a space whose last stage has 1-4
    blocks (0.42, 0.68, 0.95, 1.21 M parameters): study.json keeps it, Optuna has every
    finished trial's violation, the table marks the bigger networks infeasible, and status
    never recommends one."""
    from tests.conftest import synthetic_rows, write_csv

    data = write_csv(tmp_path / "syn.csv", synthetic_rows(80))
    space = tmp_path / "c.yaml"
    space.write_text(
        f"fixed: {TINY_FIXED.replace('test_fraction: 0.1', 'epochs: 1')}\n"
        "params:\n  blocks_4: {type: int, low: 1, high: 4}\n"
    )
    storage = tmp_path / "st"
    res = _cli(
        *_launch_args(space, data, storage, "c"),
        "--num-samples", "6", "--sampler", "random", "--no-baseline", "--scheduler", "none",
        "--constraint", "params_millions<=0.7", "--objectives", "f1_macro:max",
    )  # fmt: skip
    assert res.returncode == 0, res.stderr[-3000:]
    assert json.loads((storage / "c" / "study.json").read_text())["constraints"] == [
        "params_millions<=0.7"
    ]
    trials = pd.read_parquet(storage / "c" / "trials.parquet")
    big = trials["config/blocks"].map(lambda b: json.loads(b)[4] >= 3)
    assert (trials.loc[big, "feasible"] == False).all()  # noqa: E712
    assert (trials.loc[~big, "feasible"] == True).all()  # noqa: E712
    assert big.any() and (~big).any(), trials["config/blocks"].tolist()
    study = optuna.load_study(study_name="c", storage=optuna_storage(storage / "c"))
    assert all(set(t.constraints) == {"params_millions<=0.7"} for t in study.trials)
    status = json.loads(_cli("status", "c", "--storage", str(storage), "--json").stdout)
    assert status["best"]["trial_id"] in set(trials.loc[~big, "trial_id"])
    assert sorted(status["infeasible"]) == sorted(trials.loc[big, "trial_id"])
    relaunch = _cli(*_launch_args(space, data, storage, "c"), "--constraint", "f1_macro>=0.5")
    assert relaunch.returncode == 2 and "--constraint f1_macro>=0.5" in relaunch.stderr
