"""`revstudy export` on a synthetic study directory (docs/study-dir.md) and the train round trip."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from revstudy.cli.app import app
from revstudy.errors import RevstudyError
from revstudy.study.export import export_study
from revstudy.studyfolder import pareto_fronts
from revstudy.training.config import TrialConfig

runner = CliRunner()
TINY = TrialConfig(blocks=(1, 1, 1, 1, 1), hidden_ratio=0.25, epochs=1, cd_draws=1)


def _row(tid: str, state: str, cfg: TrialConfig, f1: float, inv: float) -> dict:
    row: dict = {"trial_id": tid, "number": 0, "state": state, "failure_reason": ""}
    row.update(is_baseline=False, epochs_done=1, wall_seconds=1.0, device="cpu")
    for k, v in cfg.to_dict().items():
        row[f"config/{k}"] = json.dumps(v) if isinstance(v, list) else v
    row.update(f1_macro=f1, f1_macro_std=0.0, inv_error_max=inv, val_loss=1.0)
    return row


def make_study(
    root: Path, objectives: list[dict] | None = None, rows: list[dict] | None = None
) -> Path:
    study = root / "revstudy-results" / "demo"
    study.mkdir(parents=True)
    meta = {
        "name": "demo",
        "objectives": objectives or [{"metric": "f1_macro", "mode": "max"}],
        "data": {"path": "/data/x.csv", "sha256": "abc123", "rows": 60},
        "versions": {"revstudy": "0.1.0"},
    }
    (study / "study.json").write_text(json.dumps(meta))
    if rows is None:
        rows = [
            _row("t1", "COMPLETED", TINY.replace(lr=1e-3), 0.30, 1e-5),
            # the stopped trial's 0.50 comes from fewer epochs: ranked after completed ones
            _row("t2", "STOPPED_EARLY", TINY.replace(lr=2e-3), 0.50, 1e-3),
            _row(
                "t3", "COMPLETED", TINY.replace(lr=3e-3, blocks=(1, 1, 1, 1, 2), seed=3), 0.40, 1e-6
            ),
            _row("t4", "FAILED", TINY.replace(lr=9e-3), float("nan"), float("nan")),
            _row("t5", "RUNNING", TINY.replace(lr=8e-3), 0.99, 0.0),
        ]
    pd.DataFrame(rows).to_parquet(study / "trials.parquet")
    return study


def test_top1_round_trip_and_train_accepts_it(
    tmp_path: Path, synthetic_csv: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_study(tmp_path)
    monkeypatch.chdir(tmp_path)
    res = runner.invoke(app, ["export", "demo"])
    assert res.exit_code == 0, res.output
    best = tmp_path / "best.yaml"
    assert TrialConfig.load_yaml(best) == TINY.replace(lr=3e-3, blocks=(1, 1, 1, 1, 2), seed=3)
    prov = yaml.safe_load(best.read_text())["provenance"]
    assert prov["trial_id"] == "t3" and prov["study"] == "demo"
    assert prov["data"] == {"path": "/data/x.csv", "sha256": "abc123"}
    assert prov["metrics_at_search"]["f1_macro"] == 0.4
    assert prov["split"]["seed"] == 3 and prov["revstudy_export"]
    out = tmp_path / "run"
    args = ["train", "--config", str(best), "--data", str(synthetic_csv), "--out", str(out)]
    res = runner.invoke(app, [*args, "--device", "cpu", "--threads", "1"])
    assert res.exit_code == 0, res.output
    assert (out / "model.pt").is_file() and (out / "prior.pt").is_file()


def test_top2_folder_in_objective_order(tmp_path: Path) -> None:
    study = make_study(tmp_path)
    res = export_study(study, top=2, out=tmp_path / "best")
    assert [r.trial_id for r in res.ranked] == ["t3", "t1"]  # completed trials first
    assert [p.name for p in res.paths] == ["rank01-t3.yaml", "rank02-t1.yaml"]
    assert TrialConfig.load_yaml(res.paths[1]) == TINY.replace(lr=1e-3)
    everything = export_study(study, top=3, out=tmp_path / "all")
    assert [r.trial_id for r in everything.ranked] == ["t3", "t1", "t2"]


def test_top_k_refuses_a_yaml_file_name_for_its_folder(tmp_path: Path) -> None:
    """`--top 3 --out best.yaml` would make a folder called best.yaml: the user meant one
    file, or a folder. A folder that already exists under such a name is still used."""
    study = make_study(tmp_path)
    with pytest.raises(RevstudyError, match=r"--out .*best\.yaml: --top 3 writes one YAML"):
        export_study(study, top=3, out=tmp_path / "best.yaml")
    assert not (tmp_path / "best.yaml").exists()
    (tmp_path / "old.yml").mkdir()
    assert len(export_study(study, top=2, out=tmp_path / "old.yml").paths) == 2


def test_objective_override_and_storage_name(tmp_path: Path) -> None:
    make_study(tmp_path)
    storage = tmp_path / "revstudy-results"
    res = export_study("demo", objective="inv_error_max", storage=storage, out=tmp_path / "b.yaml")
    assert res.objectives[0].mode == "min" and res.ranked[0].trial_id == "t3"
    res = export_study("demo", objective="val_loss:max", storage=storage, out=tmp_path / "c.yaml")
    assert res.objectives[0].mode == "max"


def test_multi_objective_exports_pareto_set_first(tmp_path: Path) -> None:
    objs = [{"metric": "f1_macro", "mode": "max"}, {"metric": "inv_error_max", "mode": "min"}]
    study = make_study(tmp_path, objectives=objs)
    res = export_study(study, top=3, out=tmp_path / "best")
    fronts = {r.trial_id: r.front for r in res.ranked}
    assert fronts == {"t2": 0, "t3": 0, "t1": 1}
    assert pareto_fronts(np.array([[1.0, 1.0], [0.0, 0.0], [2.0, 0.0]])).tolist() == [0, 1, 0]


def test_partial_table_of_a_running_study(tmp_path: Path) -> None:
    rows = [
        _row("a", "RUNNING", TINY, 0.9, 0.0),
        _row("b", "COMPLETED", TINY.replace(lr=5e-4), 0.1, 0.0),
    ]
    study = make_study(tmp_path, rows=rows)
    res = export_study(study, top=5, out=tmp_path / "best")
    assert [r.trial_id for r in res.ranked] == ["b"]


def test_errors(tmp_path: Path) -> None:
    with pytest.raises(RevstudyError, match=r"no study .nope. under"):
        export_study("nope", storage=tmp_path)
    study = make_study(tmp_path, rows=[_row("a", "RUNNING", TINY, 0.9, 0.0)])
    with pytest.raises(RevstudyError, match="no finished trials"):
        export_study(study, out=tmp_path / "x.yaml")
    with pytest.raises(RevstudyError, match="unknown objective 'nope'"):
        export_study(study, objective="nope", out=tmp_path / "x.yaml")
    (study / "trials.parquet").unlink()
    with pytest.raises(RevstudyError, match="no finished trials"):
        export_study(study, out=tmp_path / "x.yaml")


def test_cli_errors_are_one_line_exit_2(tmp_path: Path) -> None:
    res = runner.invoke(app, ["export", "missing", "--storage", str(tmp_path)])
    assert res.exit_code == 2
    assert "error: no study 'missing' under" in res.output


def test_interrupted_trials_name_a_resume_command_that_pastes(tmp_path: Path) -> None:
    """The hint after an export names the study as the user gave it, --storage included,
    quoted for a shell: a storage root with a space still reaches the study."""
    import shlex

    rows = [
        _row("a", "INTERRUPTED", TINY, 0.9, 0.0),
        _row("b", "COMPLETED", TINY.replace(lr=5e-4), 0.1, 0.0),
    ]
    root = tmp_path / "Jane Doe's studies"
    make_study(root, rows=rows)
    storage = str(root / "revstudy-results")
    args = ["export", "demo", "--storage", storage, "--out", str(tmp_path / "b.yaml")]
    res = CliRunner().invoke(app, args, env={"COLUMNS": "60"})
    assert res.exit_code == 0, res.output
    hint = res.stderr.split("`")[1]  # the command between the backticks, never wrapped
    assert shlex.split(hint) == ["revstudy", "resume", "demo", "--storage", storage]


def test_only_the_exported_trials_are_read_into_configurations(tmp_path: Path) -> None:
    """`--top K` reads K rows into configurations (all of them took 16 s at 10⁴ trials):
    a trial ranked below them whose row no TrialConfig accepts (a field from another
    version) does not stop the export, and exporting it still says which trial it is."""
    rows = [
        _row("t1", "COMPLETED", TINY.replace(lr=1e-3), 0.30, 1e-5),
        _row("t3", "COMPLETED", TINY.replace(lr=3e-3), 0.40, 1e-6),
        {**_row("t9", "COMPLETED", TINY, 0.10, 1e-6), "config/not_a_field": 1.0},
    ]
    study = make_study(tmp_path, rows=rows)
    res = export_study(study, top=2, out=tmp_path / "best")
    assert [r.trial_id for r in res.ranked] == ["t3", "t1"]
    with pytest.raises(RevstudyError, match="trial t9"):
        export_study(study, top=3, out=tmp_path / "all")
