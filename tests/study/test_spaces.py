from __future__ import annotations

import json
from pathlib import Path

import pytest

from revstudy.errors import ConfigError
from revstudy.study.options import parse_duration, parse_objectives
from revstudy.study.spaces import SearchSpace, baseline_params, list_spaces, load_space
from revstudy.studyfolder import Objective


def test_builtin_spaces_load_and_contain_the_paper_baseline() -> None:
    assert {"default", "quick", "paper"} <= set(list_spaces())
    default = load_space("default")
    names = {p.name for p in default.params}
    assert {f"blocks_{i}" for i in range(5)} <= names
    assert {
        "hidden_ratio",
        "kernel_size",
        "y_dim",
        "lambda_x",
        "lambda_sparse",
        "lambda_density",
        "alpha",
        "logit_reg",
        "x_warmup_epochs",
        "lr",
        "batch_size",
        "epochs",
    } <= names
    point = baseline_params(default)
    assert point is not None and point["y_dim"] == 128 and "latent_weight" not in point
    cfg = default.to_config(point)
    assert cfg.blocks == (2, 2, 4, 6, 8) and cfg.lr == 1e-3 and cfg.epochs == 5


def test_space_suggest_respects_conditions() -> None:
    import optuna

    space = load_space("default")
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    seen = set()
    for _ in range(30):
        t = study.ask()
        params = space.suggest(t)
        seen.add(params["latent_loss"])
        assert ("latent_weight" in params) == (params["latent_loss"] != "none")
        space.to_config(params)  # always a valid config
        study.tell(t, 0.0)
    assert len(seen) == 3


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        (
            "params:\n  bogus: {type: float, low: 0, high: 1}\n",
            "parameter bogus: not a TrialConfig",
        ),
        ("params:\n  lr: {type: float, low: 1, high: 0.1}\n", "parameter lr: low (1) > high (0.1)"),
        (
            "params:\n  y_dim: {type: categorical, choices: [64, 100]}\n",
            "parameter y_dim: value 100",
        ),
        ("params:\n  lr: {type: number, low: 0, high: 1}\n", "parameter lr: type must be"),
        ("params:\n  lr: {type: float, low: 0, high: 1, log: true}\n", "log scale needs low > 0"),
        ("params:\n  epochs: {type: int, low: 1.5, high: 3}\n", "int needs integer"),
        ("fixed: {y_dim: 100}\n", "field y_dim"),
        (
            "fixed: {lr: 0.1}\nparams:\n  lr: {type: float, low: 0.1, high: 1}\n",
            "both fixed and searched",
        ),
        (
            "params:\n  latent_weight: {type: float, low: 0.1, high: 1,"
            " condition: {param: nope, in: [x]}}\n",
            "condition on unknown nope",
        ),
        ("foo: 1\n", "unknown top-level key"),
        ("repeats: 0\n", "repeats: expected a whole number >= 1"),
        ("repeats: two\n", "repeats: expected a whole number >= 1"),
        # read as {}, an empty file ran a study of the defaults
        ("", "empty, holds no search space"),
        ("# a comment alone\n", "empty, holds no search space"),
        (  # YAML keeps the last silently: only the second range was searched
            "params:\n  epochs: {type: int, low: 1, high: 2}\n"
            "  epochs: {type: int, low: 1, high: 9}\n",
            "not valid YAML: line 3: 'epochs' is given twice (first on line 2)",
        ),
    ],
)
def test_bad_spaces_name_file_parameter_and_reason(tmp_path: Path, body: str, needle: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(body)
    with pytest.raises(ConfigError) as e:
        load_space(str(path))
    assert needle in str(e.value) and str(path) in str(e.value)


def test_unknown_space_name_lists_the_builtins() -> None:
    with pytest.raises(ConfigError, match="quick"):
        load_space("nonexistent")


def test_objectives_and_durations() -> None:
    assert parse_objectives(["f1_macro:max", "bond_count_corr"]) == [
        Objective("f1_macro", "max"),
        Objective("bond_count_corr", "max"),
    ]
    with pytest.raises(Exception, match="unknown metric"):
        parse_objectives(["accuracy:max"])
    with pytest.raises(Exception, match="max or min"):
        parse_objectives(["f1_macro:up"])
    assert parse_duration("1h30m") == 5400 and parse_duration("90") == 90
    with pytest.raises(Exception, match="cannot read"):
        parse_duration("soon")


def test_installed_package_ships_the_spaces() -> None:
    from revstudy.study.spaces import builtin_dir

    assert (builtin_dir() / "quick.yaml").is_file()


def test_space_repeats_default_and_override(tmp_path: Path) -> None:
    assert load_space("quick").repeats == 1
    assert load_space("default").repeats == 3  # decisions on more than one split
    path = tmp_path / "r.yaml"
    path.write_text("repeats: 2\nparams:\n  lr: {type: float, low: 1.0e-4, high: 1.0e-3}\n")
    assert load_space(str(path)).repeats == 2
    assert load_space(str(path)).to_dict()["repeats"] == 2


@pytest.mark.parametrize("field", ["test_fraction", "test_seed"])
def test_the_held_out_split_cannot_be_searched(tmp_path: Path, field: str) -> None:
    """Every trial of a study shares one test split: a space may fix it, never search it."""
    from revstudy.errors import ConfigError

    path = tmp_path / "s.yaml"
    path.write_text(f"params:\n  {field}: {{type: categorical, choices: [0, 1]}}\n")
    with pytest.raises(ConfigError, match=f"parameter {field}: belongs to the study"):
        load_space(str(path))
    path.write_text(f"fixed:\n  {field}: 0\n")
    assert load_space(str(path)).to_config({}) is not None


def test_the_quick_space_trains_canonically_and_its_baseline_as_the_paper() -> None:
    """Issue #33: a quick study must not recommend the data file's numbering, which no
    user's molecule arrives in; the paper baseline keeps the paper's protocol."""
    space = load_space("quick")
    assert "atom_order" not in {p.name for p in space.params}
    point = baseline_params(space)
    assert point is not None and space.to_config(point).atom_order == "source"
    assert space.to_config({**point, "lr": 2e-3}).atom_order == "canonical"
    again = SearchSpace.from_info(json.loads(json.dumps(space.to_dict())))  # study.json
    assert again.to_config(point).atom_order == "source"


def test_a_baseline_may_not_set_the_studys_test_split(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(
        "baseline: {test_fraction: 0.2}\nparams:\n  lr: {type: float, low: 1.0e-4, high: 1.0e-2}\n"
    )
    with pytest.raises(ConfigError, match=r"baseline: .*test_fraction"):
        load_space(str(path))
