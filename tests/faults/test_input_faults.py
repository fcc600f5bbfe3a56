"""Issue 11, cases 10-13: spaces that used to pass validation and crash later, a 1024-bit
spectrum on the command line, damaged model folders, and `report --out DIR`."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from revstudy.data.dataset import read_dataset
from revstudy.elucidation.elucidate import parse_query_spectrum
from revstudy.errors import ConfigError
from revstudy.study.spaces import load_space
from revstudy.training.config import TrialConfig
from revstudy.training.runs import train_repeats, write_run
from tests.conftest import synthetic_rows, write_csv
from tests.faults.conftest import one_line_error, run, synthetic_study

TINY = TrialConfig(blocks=(1, 1, 1, 1, 1), hidden_ratio=0.25, epochs=1, cd_draws=1)


# -- 10: spaces -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("params", "needle"),
    [
        (
            "  latent_loss: {type: categorical, choices: [moments]}\n"
            "  latent_weight: {type: float, low: 0.1, high: 1, condition: {param: latent_loss, in: []}}\n",  # noqa: E501
            "`in` needs at least one value",
        ),
        (
            "  lr: {type: float, low: 1.0e-4, high: 1.0e-2, log: true, step: 1.0e-4}\n",
            "step and log",
        ),
        ("  lr: {type: float, low: 1.0e-4, high: .inf}\n", "must be finite"),
        ("  lr: {type: float, low: .nan, high: 1}\n", "must be finite"),
        ("  epochs: {type: int, low: 1, high: 5, step: 0}\n", "step must be a number > 0"),
        ("  epochs: {type: int, low: 1, high: 5, step: 1.5}\n", "whole step"),
        (
            "  lr: {type: float, low: 1.0e-4, high: 1.0e-2, log: 'yes'}\n",
            "log must be true or false",
        ),
    ],
)
def test_space_values_that_used_to_crash_after_ray_started(
    tmp_path: Path, params: str, needle: str
) -> None:
    path = tmp_path / "s.yaml"
    path.write_text("params:\n" + params)
    with pytest.raises(ConfigError, match="parameter") as e:
        load_space(str(path))
    assert needle in str(e.value) and str(path) in str(e.value)


def test_malformed_yaml_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text("fixed:\n  epochs: 3\nparams:\n  lr: {type: float, low: 1\n  y: 2\n")
    with pytest.raises(ConfigError, match=r"not valid YAML: line \d+, column \d+") as e:
        load_space(str(path))
    assert "\n" not in str(e.value)
    cfg = tmp_path / "c.yaml"
    cfg.write_text("lr: [1,\n")
    with pytest.raises(ConfigError, match=r"line \d+, column \d+"):
        TrialConfig.load_yaml(cfg)


# -- 11: a 1024-bit spectrum as --spectrum ---------------------------------------------------
def test_spectrum_given_as_the_data_formats_bit_string() -> None:
    bits = ["0"] * 1024
    for i in (60, 300, 701):
        bits[i] = "1"
    out = parse_query_spectrum("".join(bits))  # a file name that long raised ENAMETOOLONG
    assert out.shape == (1024,) and set(np.flatnonzero(out)) == {60, 300, 701}


# -- 12: damaged model folders -------------------------------------------------------------
@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("model")
    ds = read_dataset(write_csv(root / "d.csv", synthetic_rows(40)))
    torch.set_num_threads(1)
    write_run(root / "run", train_repeats(TINY, ds), ds, "cpu")
    return root / "run"


@pytest.fixture()
def damaged(model_dir: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "run"
    shutil.copytree(model_dir, copy)
    return copy


def _predict(model: Path):
    pytest.importorskip("rdkit.Chem")
    return run("predict", "--model", str(model), "--smiles", "CCC")


def test_intact_model_predicts(model_dir: Path) -> None:
    res = _predict(model_dir)
    assert res.exit_code == 0, res.output


def test_garbage_metrics_json(damaged: Path) -> None:
    (damaged / "metrics.json").write_text("{not json")
    one_line_error(_predict(damaged), "metrics.json is damaged")


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        (lambda p: p.pop("code_means"), "prior.pt lacks code_means"),
        (lambda p: p.update(mean=torch.zeros(7)), "mean has shape (7,)"),
        (lambda p: p.update(code_rate=torch.zeros(3, 3)), "code_rate has shape (3, 3)"),
        (lambda p: p.update(std=torch.full((896,), float("nan"))), "std holds NaN"),
        (lambda p: p.update(topk=0), "topk must be a positive integer"),
    ],
)
def test_damaged_prior(damaged: Path, change, needle: str) -> None:
    prior = torch.load(damaged / "prior.pt", weights_only=True)
    change(prior)
    torch.save(prior, damaged / "prior.pt")
    one_line_error(_predict(damaged), needle)


def test_state_dict_mismatch_says_which_keys(damaged: Path) -> None:
    state = torch.load(damaged / "model.pt", weights_only=True)
    state.pop(next(iter(state)))
    state["bogus.weight"] = torch.zeros(1)
    torch.save(state, damaged / "model.pt")
    err = one_line_error(_predict(damaged), "model.pt does not match config.yaml")
    assert "Missing key" in err or "Unexpected key" in err


# -- 13: report --out DIR ----------------------------------------------------------------------
def test_report_out_directory_is_refused_and_leaves_nothing(tmp_path: Path) -> None:
    folder = synthetic_study(tmp_path / "st")
    out = tmp_path / "reports"
    out.mkdir()
    res = run("report", str(folder), "--out", str(out))
    one_line_error(res, f"--out {out}: is a directory", "report.html")
    assert list(out.iterdir()) == [] and not list(tmp_path.glob("*.tmp"))
    res = run("report", str(folder), "--out", str(out / "r.html"))
    assert res.exit_code == 0 and [p.name for p in out.iterdir()] == ["r.html"]
    assert json.loads((folder / "study.json").read_text())["name"]
