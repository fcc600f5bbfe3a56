"""Warm start (issue #33): earlier studies' finished trials seed a new study's sampler,
never counted, ranked, exported or drawn as its own."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import optuna
import pandas as pd
import pytest

from revstudy.errors import RevstudyError
from revstudy.optunafile import optuna_storage
from revstudy.study.optuna_store import (
    BASELINE_ATTR,
    RAY_ID_ATTR,
    counted_trials,
    make_sampler,
)
from revstudy.study.spaces import SearchSpace, load_space
from revstudy.study.warm_start import add_warm_trials, gather
from revstudy.studyfolder import Objective
from revstudy.studyinfo import STUDY_ID_ATTR, WARM_START_ATTR, DataRecord, StudyInfo, read_study
from tests.study.test_driver import TINY_FIXED, _cli, _launch_args

OBJ = (Objective("f1_macro", "max"),)
SHA = "a" * 64


def _space(tmp_path: Path, text: str, name: str = "space") -> SearchSpace:
    path = tmp_path / f"{name}.yaml"
    path.write_text(text)
    return load_space(str(path))


SOURCE_SPACE = """\
fixed: {epochs: 3, atom_order: canonical}
params:
  lr: {type: float, low: 1.0e-4, high: 1.0e-2, log: true}
  y_dim: {type: categorical, choices: [64, 128, 256]}
"""


def _source(
    tmp_path: Path,
    trials: list[tuple[dict[str, Any], dict[str, Any], dict[str, Any]]],
    *,
    name: str = "src",
    space_text: str = SOURCE_SPACE,
    sha: str = SHA,
    objectives: tuple[Objective, ...] = OBJ,
) -> Path:
    """A finished source study on disk: study.json, optuna.journal (COMPLETE trials with folder
    ids and the given user attributes) and each trial's result.json with its report."""
    folder = tmp_path / "storage" / name
    (folder / "trials").mkdir(parents=True)
    space = _space(tmp_path, space_text, f"{name}-space")
    info = StudyInfo(
        name=name,
        objectives=objectives,
        space=space.to_dict(),
        sampler="tpe",
        scheduler="none",
        seed=0,
        num_samples=len(trials),
        repeats=1,
        cpus_per_trial=1.0,
        gpus_per_trial=0.0,
        baseline=False,
        data=DataRecord("/data.csv", sha, 80),
        study_id=f"id-{name}",
    )
    (folder / "study.json").write_text(json.dumps(info.to_dict()))
    ostudy = optuna.create_study(
        study_name=name,
        storage=optuna_storage(folder, create=True),
        directions=["maximize" if o.mode == "max" else "minimize" for o in objectives],
    )
    ostudy.set_user_attr(STUDY_ID_ATTR, info.study_id)
    dists = {
        "lr": optuna.distributions.FloatDistribution(1e-5, 1.0, log=True),
        "y_dim": optuna.distributions.CategoricalDistribution([64, 128, 256, 512]),
        "epochs": optuna.distributions.IntDistribution(1, 10),
    }
    for i, (params, report, attrs) in enumerate(trials):
        rid = f"t{i}"
        tdir = folder / "trials" / rid
        tdir.mkdir()
        (tdir / "result.json").write_text(json.dumps({"trial_id": rid, "report": report}))
        ostudy.add_trial(
            optuna.trial.create_trial(
                params=params,
                distributions={k: dists[k] for k in params},
                values=[report.get(o.metric, 0.0) for o in objectives],
                user_attrs={RAY_ID_ATTR: rid, **attrs},
            )
        )
    return folder


def _new(space: SearchSpace, sha: str = SHA, objectives=OBJ, constraints=()) -> StudyInfo:
    return StudyInfo(
        name="new",
        objectives=objectives,
        seed=3,
        constraints=constraints,
        data=DataRecord("/data.csv", sha, 80),
    )


def test_trials_in_the_new_space_are_used_the_others_counted_by_reason(tmp_path: Path) -> None:
    _source(
        tmp_path,
        [
            ({"lr": 1e-3, "y_dim": 128}, {"f1_macro": 0.2}, {}),
            ({"lr": 2e-3, "y_dim": 64}, {"f1_macro": 0.3}, {}),
            ({"lr": 5e-2, "y_dim": 128}, {"f1_macro": 0.1}, {}),  # lr outside the new range
            ({"lr": 1e-3, "y_dim": 512}, {"f1_macro": 0.1}, {}),  # y_dim not a new choice
            ({"lr": 1e-3}, {"f1_macro": 0.1}, {}),  # lacks y_dim
            ({"lr": 1e-3, "y_dim": 128}, {"f1_macro": 0.4}, {BASELINE_ATTR: True}),
            ({"lr": 1e-3, "y_dim": 128}, {"f1_macro": 0.4}, {WARM_START_ATTR: "older#0"}),
            ({"lr": 1e-3, "y_dim": 128}, {}, {}),  # no value for the objective
        ],
    )
    new_space = _space(
        tmp_path,
        SOURCE_SPACE.replace("choices: [64, 128, 256]", "choices: [64, 128]"),
        "new",
    )
    trials, sources, notes = gather(["src"], _new(new_space), new_space, str(tmp_path / "storage"))
    assert [w.source for w in trials] == ["src#0", "src#1"]
    assert trials[1].params == {"lr": 2e-3, "y_dim": 64}
    assert notes == []
    (src,) = sources
    assert (src.study, src.used, src.study_id) == ("src", 2, "id-src")
    assert src.left_out == {
        "lacks parameter y_dim of this space": 1,
        "lr outside this space": 1,
        "no finite f1_macro": 1,
        "paper baseline (this study runs its own)": 1,
        "warm-start trials of that study (name their own study)": 1,
        "y_dim outside this space": 1,
    }
    assert src.n_left_out == 6
    assert src.left_out_text().startswith("1 lacks parameter y_dim of this space; 1 lr outside")
    lr_space = _space(tmp_path, SOURCE_SPACE.replace("1.0e-2", "1.5e-3"), "narrow")
    trials, sources, _ = gather(["src"], _new(lr_space), lr_space, str(tmp_path / "storage"))
    assert [w.source for w in trials] == ["src#0"]
    assert sources[0].left_out["lr outside this space"] == 2


def test_a_conditional_parameter_counts_only_where_it_applies(tmp_path: Path) -> None:
    text = (
        SOURCE_SPACE
        + "  epochs: {type: int, low: 1, high: 9, condition: {param: y_dim, in: [64]}}\n"
    )
    text = text.replace(
        "fixed: {epochs: 3, atom_order: canonical}", "fixed: {atom_order: canonical}"
    )
    _source(
        tmp_path,
        [
            ({"lr": 1e-3, "y_dim": 64, "epochs": 4}, {"f1_macro": 0.2}, {}),
            ({"lr": 1e-3, "y_dim": 128}, {"f1_macro": 0.3}, {}),  # epochs does not apply
            ({"lr": 1e-3, "y_dim": 64}, {"f1_macro": 0.3}, {}),  # epochs applies, missing
        ],
        space_text=text,
    )
    space = _space(tmp_path, text, "same")
    trials, sources, _ = gather(["src"], _new(space), space, str(tmp_path / "storage"))
    assert [w.params for w in trials] == [
        {"lr": 1e-3, "y_dim": 64, "epochs": 4},
        {"lr": 1e-3, "y_dim": 128},
    ]
    assert sources[0].left_out == {"lacks parameter epochs of this space": 1}


def test_other_fixed_settings_are_left_out_and_any_allows_them_with_a_warning(
    tmp_path: Path,
) -> None:
    """A setting the new space fixes differently (epochs 3 → 5) makes every source trial a
    measurement of another objective function: none fits, the source is refused."""
    _source(tmp_path, [({"lr": 1e-3, "y_dim": 128}, {"f1_macro": 0.2}, {})])
    longer = _space(tmp_path, SOURCE_SPACE.replace("epochs: 3", "epochs: 5"), "longer")
    storage = str(tmp_path / "storage")
    with pytest.raises(RevstudyError, match=r"none of its finished trials fits this study \(1 "
                       r"trained with other epochs\)"):  # fmt: skip
        gather(["src"], _new(longer), longer, storage)
    trials, sources, notes = gather(["src"], _new(longer), longer, storage, allow_any=True)
    assert len(trials) == 1 and sources[0].differs == ("epochs differs",)
    assert notes == ["--warm-start src: used despite epochs differs (--warm-start-any)"]
    source_order = _space(
        tmp_path, SOURCE_SPACE.replace("atom_order: canonical", "atom_order: source"), "order"
    )
    with pytest.raises(RevstudyError, match="trained with other atom_order"):
        gather(["src"], _new(source_order), source_order, storage)


@pytest.mark.parametrize(
    ("new_info", "needle"),
    [
        (dict(sha="b" * 64), r"trained on another data file \(sha256 aaaaaaaaaaaa…"),
        (
            dict(objectives=(Objective("f1_macro", "max"), Objective("inv_error_max", "min"))),
            "ranked by f1_macro:max, this study by f1_macro:max,inv_error_max:min",
        ),
    ],
)
def test_another_data_file_or_objectives_is_refused_unless_any(
    tmp_path: Path, new_info: dict, needle: str
) -> None:
    _source(tmp_path, [({"lr": 1e-3, "y_dim": 128}, {"f1_macro": 0.2, "inv_error_max": 1e-6}, {})])
    space = _space(tmp_path, SOURCE_SPACE, "same")
    storage = str(tmp_path / "storage")
    with pytest.raises(RevstudyError, match=needle) as e:
        gather(["src"], _new(space, **new_info), space, storage)
    assert "\n" not in str(e.value) and "--warm-start-any" in str(e.value)
    trials, sources, notes = gather(
        ["src"], _new(space, **new_info), space, storage, allow_any=True
    )
    assert len(trials) == 1 and len(notes) == 1 and sources[0].differs


def test_a_source_named_twice_or_missing_is_one_line(tmp_path: Path) -> None:
    _source(tmp_path, [({"lr": 1e-3, "y_dim": 128}, {"f1_macro": 0.2}, {})])
    space = _space(tmp_path, SOURCE_SPACE, "same")
    storage = str(tmp_path / "storage")
    folder = str(tmp_path / "storage" / "src")
    with pytest.raises(RevstudyError, match=r"--warm-start .*: named twice"):
        gather(["src", folder], _new(space), space, storage)
    with pytest.raises(RevstudyError, match="no study 'nope'"):
        gather(["nope"], _new(space), space, storage)


def test_warm_trials_are_history_for_the_sampler_and_never_counted(tmp_path: Path) -> None:
    """Added as COMPLETE trials marked WARM_START_ATTR, values and constraint violations
    told as the study's own would be; `counted_trials` skips them; TPE (10 startup trials)
    models from them at once: its first suggestion differs from a cold study's."""
    good = [({"lr": 1e-4 * 1.5**i, "y_dim": 128}, {"f1_macro": 0.01 * i}, {}) for i in range(12)]
    _source(tmp_path, good)
    space = _space(tmp_path, SOURCE_SPACE, "same")
    from revstudy.studyfolder import parse_constraint

    info = _new(space, constraints=("f1_macro>=0.05",))
    trials, _, _ = gather(["src"], info, space, str(tmp_path / "storage"))
    warm = optuna.create_study(direction="maximize", sampler=make_sampler("tpe", 5, False))
    add_warm_trials(warm, info, trials)
    got = warm.get_trials()
    assert [t.state.name for t in got] == ["COMPLETE"] * 12
    assert [t.value for t in got] == [pytest.approx(0.01 * i) for i in range(12)]
    assert got[0].user_attrs == {WARM_START_ATTR: "src#0"}
    assert got[0].constraints == {"f1_macro>=0.05": pytest.approx(0.05)}
    assert got[11].constraints["f1_macro>=0.05"] < 0
    assert info.bounds == (parse_constraint("f1_macro>=0.05"),)
    assert counted_trials(warm) == []
    cold = optuna.create_study(direction="maximize", sampler=make_sampler("tpe", 5, False))
    firsts = []
    for s in (warm, cold):
        t = s.ask()
        firsts.append(space.suggest(t))
    assert firsts[0] != firsts[1]


@pytest.mark.slow
def test_a_study_warm_started_through_the_cli(tmp_path: Path) -> None:
    """End to end: a source study, then one launched with --warm-start: study.json and
    optuna.db record the warm trials, the tables, status, report and dashboard hold only the
    study's own trials, the report says where the history came from, a relaunch cannot add
    one (resume counts without them: `counted_trials`, tested above)."""
    from analysis import load_study
    from analysis._report import write_report
    from tests.conftest import synthetic_rows, write_csv

    data = write_csv(tmp_path / "syn.csv", synthetic_rows(80))
    space = tmp_path / "w.yaml"
    space.write_text(
        f"fixed: {TINY_FIXED.replace('test_fraction: 0.1', 'epochs: 1')}\n"
        "params:\n  lr: {type: float, low: 1.0e-4, high: 1.0e-2, log: true}\n"
    )
    storage = tmp_path / "st"
    common = ["--sampler", "tpe", "--scheduler", "none", "--objectives", "f1_macro:max"]
    src = _cli(*_launch_args(space, data, storage, "src"), "--num-samples", "3", *common)
    assert src.returncode == 0, src.stderr[-3000:]  # the baseline + 2 searched trials
    res = _cli(
        *_launch_args(space, data, storage, "warm"), "--num-samples", "2", *common,
        "--warm-start", "src", "--no-baseline",
    )  # fmt: skip
    assert res.returncode == 0, res.stderr[-3000:]
    assert "note: warm start: 2 finished trial(s) of src, 1 left out" in res.stderr
    info = read_study(storage / "warm")
    (w,) = info.warm_start
    assert (w.study, w.used, w.left_out) == (
        "src",
        2,
        {"paper baseline (this study runs its own)": 1},
    )
    ostudy = optuna.load_study(study_name="warm", storage=optuna_storage(storage / "warm"))
    marks = [t.user_attrs.get(WARM_START_ATTR) for t in ostudy.trials]
    assert marks[:2] == ["src#1", "src#2"] and marks[2:] == [None, None]
    src_values = {
        t.number: t.value
        for t in optuna.load_study(study_name="src", storage=optuna_storage(storage / "src")).trials
    }
    assert [t.value for t in ostudy.trials[:2]] == [src_values[1], src_values[2]]
    own = pd.read_parquet(storage / "warm" / "trials.parquet")
    assert len(own) == 2 and sorted(own["number"]) == [2, 3]
    status = json.loads(_cli("status", "warm", "--storage", str(storage), "--json").stdout)
    assert status["trials"] == 2 and status["warm_start"] == [
        {"study": "src", "used": 2, "left_out": 1}
    ]
    assert status["best"]["trial_id"] in set(own["trial_id"])
    printed = _cli("status", "warm", "--storage", str(storage))  # wrapped at any width
    assert "warm start: 2 of src finished trial(s) in the sampler's history" in " ".join(
        (printed.stdout + printed.stderr).split()
    )
    shown = load_study(storage / "warm").load_optuna()
    assert [t.number for t in shown.trials] == [2, 3]  # the figures' trials: its own
    from revstudy.study.dashboard import StudyView

    live = StudyView(storage / "warm")  # `revstudy dashboard`: its own trials too
    assert [t.number for t in live.get_all_trials(ostudy._study_id)] == [2, 3]
    html = write_report(storage / "warm", out=tmp_path / "r.html").read_text()
    assert "Warm start: the sampler began with 2 finished trial(s) of study src" in html
    relaunch = _cli(*_launch_args(space, data, storage, "warm"), "--warm-start", "src")
    assert relaunch.returncode == 2 and "--warm-start (only a new study" in relaunch.stderr
