"""Fault injection: study folders, names, flags and files as a careless or hostile user
leaves them. Each test names the case of issue 11 it pins down. Fast: no Ray is started
(refusals happen before it), except where a test says so."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from revstudy.cli.app import app
from revstudy.data.dataset import read_dataset
from tests.conftest import synthetic_rows, write_csv

runner = CliRunner()


class Payload:
    """Unpickling this runs `touch MARKER` (harmless): what a crafted pickle could do."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"touch {self.marker}",))


def plant(path: Path, marker: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(Payload(marker), protocol=2))


def run(*args: str) -> Any:
    """`revstudy ARGS` in-process; stdout and stderr apart."""
    return runner.invoke(app, list(args))


def one_line_error(res: Any, *needles: str) -> str:
    """Exit 2 with a single `error: …` line (no traceback) containing every needle."""
    assert res.exit_code == 2, (res.exit_code, res.output, res.exception)
    err = res.stderr.strip()
    assert err.startswith("error: ") and "\n" not in err, err
    assert "Traceback" not in res.output
    for n in needles:
        assert n in err, (n, err)
    return err


@pytest.fixture()
def csv(tmp_path: Path) -> Path:
    return write_csv(tmp_path / "syn.csv", synthetic_rows(40))


@pytest.fixture()
def study(tmp_path: Path, csv: Path) -> Path:
    """A study folder as `launch` leaves it before any trial (study.json + optuna.journal)."""
    import optuna

    from revstudy.optunafile import optuna_storage

    root = tmp_path / "st"
    folder = root / "s1"
    folder.mkdir(parents=True)
    info = {
        "name": "s1",
        "space": {
            "name": "t",
            "path": str(tmp_path / "t.yaml"),
            "fixed": {"blocks": [1, 1, 1, 1, 1], "hidden_ratio": 0.25, "epochs": 1},
            "params": [{"name": "lr", "type": "float", "low": 1e-4, "high": 1e-3, "log": True}],
            "objectives": ["f1_macro_skill:max"],
            "description": "",
            "repeats": 1,
        },
        "sampler": "random",
        "scheduler": "none",
        "seed": 0,
        "objectives": [{"metric": "f1_macro_skill", "mode": "max"}],
        "num_samples": 2,
        "repeats": 1,
        "max_concurrent": 0,
        "cpus_per_trial": 1.0,
        "gpus_per_trial": 0.0,
        "time_budget_s": None,
        "baseline": False,
        "max_failures": 0,
        "data": {"path": str(csv), "sha256": read_dataset(csv).sha256, "rows": 40},
    }
    (folder / "study.json").write_text(json.dumps(info))
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    optuna.create_study(study_name="s1", storage=optuna_storage(folder, create=True))
    return folder


def synthetic_study(root: Path, kind: str = "single") -> Path:
    """A finished study folder with known numbers (tests/analysis/analysis_synthetic.py)."""
    from analysis_synthetic import make_study

    return make_study(root, kind)
