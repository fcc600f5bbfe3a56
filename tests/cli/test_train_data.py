"""`revstudy train --config` of an exported study config trains on the study's data file
(issue #22 point 3): the recorded path, checked by sha256, never the cached public file."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from typer.testing import CliRunner

from revstudy.cli.app import app
from revstudy.data.dataset import file_sha256
from revstudy.training.config import TrialConfig
from tests.conftest import synthetic_rows, write_csv

runner = CliRunner()
TINY = TrialConfig(blocks=(1, 1, 1, 1, 1), hidden_ratio=0.25, epochs=1, cd_draws=1)


def _exported(tmp_path: Path, data: Path, sha: str | None = None) -> Path:
    """A config as `revstudy export` writes it: the study's data under provenance."""
    cfg = tmp_path / "best.yaml"
    TINY.save_yaml(
        cfg,
        header={"study": "s", "data": {"path": str(data), "sha256": sha or file_sha256(data)}},
    )
    return cfg


def test_an_exported_config_trains_on_the_data_it_records(
    tmp_path: Path, isolated_cache: Path, monkeypatch
) -> None:
    monkeypatch.setenv("REVSTUDY_OFFLINE", "1")  # the public file is neither cached nor fetched
    csv = write_csv(tmp_path / "study-data.csv", synthetic_rows(60))
    cfg = _exported(tmp_path, csv)
    out = tmp_path / "run"
    res = runner.invoke(app, ["train", "--config", str(cfg), "--threads", "1", "--out", str(out)])
    assert res.exit_code == 0, res.output
    doc = json.loads((out / "metrics.json").read_text())
    assert doc["data"]["path"] == str(csv) and doc["data"]["sha256"] == file_sha256(csv)
    assert "the file" in res.stderr and str(csv) in res.stderr


def test_a_missing_or_changed_recorded_file_is_one_line_naming_both(tmp_path: Path) -> None:
    csv = write_csv(tmp_path / "study-data.csv", synthetic_rows(40))
    cfg = _exported(tmp_path, tmp_path / "gone.csv", sha="ab" * 32)
    res = runner.invoke(app, ["train", "--config", str(cfg), "--out", str(tmp_path / "r")])
    assert res.exit_code == 2
    assert str(cfg) in res.stderr and "gone.csv" in res.stderr and "--data" in res.stderr
    cfg = _exported(tmp_path, csv, sha="cd" * 32)
    res = runner.invoke(app, ["train", "--config", str(cfg), "--out", str(tmp_path / "r")])
    assert res.exit_code == 2
    assert "cdcdcdcdcdcd" in res.stderr and file_sha256(csv)[:12] in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1


def test_an_explicit_data_flag_wins(tmp_path: Path) -> None:
    csv = write_csv(tmp_path / "other.csv", synthetic_rows(60, seed=4))
    cfg = _exported(tmp_path, tmp_path / "gone.csv", sha="ab" * 32)
    out = tmp_path / "run"
    args = ["train", "--config", str(cfg), "--data", str(csv), "--threads", "1"]
    res = runner.invoke(app, [*args, "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert json.loads((out / "metrics.json").read_text())["data"]["path"] == str(csv)
    assert yaml.safe_load(cfg.read_text())["provenance"]["data"]["path"].endswith("gone.csv")
