"""The Python API: importable without torch or ray, functions that mirror the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import revstudy
import revstudy.api
from revstudy.errors import RevstudyError
from revstudy.files import json_safe

runner = CliRunner()


def test_import_loads_neither_torch_nor_ray() -> None:
    code = (
        "import sys, revstudy; revstudy.launch; revstudy.status; revstudy.export; "
        "revstudy.evaluate; revstudy.predict; revstudy.elucidate; "
        "print('torch' in sys.modules, 'ray' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_api_refuses_bad_options_before_starting(tmp_path: Path, synthetic_csv: Path) -> None:
    with pytest.raises(RevstudyError, match="--num-samples 0"):
        revstudy.launch("quick", data=str(synthetic_csv), num_samples=0, storage=str(tmp_path))
    with pytest.raises(RevstudyError, match="study name"):
        revstudy.launch("quick", data=str(synthetic_csv), name="../x", storage=str(tmp_path))
    with pytest.raises(RevstudyError, match="unknown option"):
        revstudy.launch("quick", bogus_option=1)
    with pytest.raises(AttributeError):
        revstudy.nothing_here  # noqa: B018


def test_status_and_report_of_a_study_folder(tmp_path: Path) -> None:
    from analysis_synthetic import make_study

    folder = make_study(tmp_path, "single")
    s = revstudy.status(str(folder))
    assert s["trials"] == len(__import__("pandas").read_parquet(folder / "trials.parquet"))
    page = revstudy.report(str(folder), out=tmp_path / "r.html")
    assert page.is_file() and 'id="answer"' in page.read_text()
    (studies,) = revstudy.list_studies(storage=str(tmp_path))  # what `list --json` prints
    assert studies["folder"] == "single" and studies["trials"] == s["trials"]
    assert studies["best"] == s["best"]


def test_train_returns_a_run(tmp_path: Path, synthetic_csv: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("blocks: [1, 1, 1, 1, 1]\nhidden_ratio: 0.25\nepochs: 1\ncd_draws: 1\n")
    res = revstudy.train(cfg, data=str(synthetic_csv), device="cpu", out=tmp_path / "run")
    assert revstudy.train_config is revstudy.train  # the older name keeps working
    assert len(res.repeats) == 1 and (tmp_path / "run" / "metrics.json").is_file()


@pytest.mark.parametrize(
    ("call", "needle"),
    [
        (lambda: revstudy.api.launch(num_samples="2"), "--num-samples '2': expected an integer"),
        (
            lambda: revstudy.api.launch(cpus_per_trial="1"),
            "--cpus-per-trial '1': expected a number",
        ),
        (
            lambda: revstudy.api.launch(time_budget_s="1h"),
            "--time-budget-s '1h': expected a number",
        ),
        (lambda: revstudy.api.launch(space=123), "space 123: expected a name or path"),
        (lambda: revstudy.api.launch(name=5), "name 5: expected a name or path"),
        (lambda: revstudy.api.launch(data=5), "data 5: expected a name or path"),
        (lambda: revstudy.api.launch(bogus=1), "launch: unknown option(s) bogus"),
        (lambda: revstudy.api.launch(baseline="no"), "--baseline 'no': expected true or false"),
        (lambda: revstudy.api.report(None), "study None: expected a name or path"),
        (lambda: revstudy.api.report(5), "study 5"),
        (lambda: revstudy.api.status(None), "study None"),
        (lambda: revstudy.api.resume(None), "study None"),
        (lambda: revstudy.api.train(5), "config 5"),
        (lambda: revstudy.api.train(repeats=0), "repeats 0: expected an integer >= 1"),
        (lambda: revstudy.api.train(repeats="3"), "repeats '3'"),
    ],
)
def test_the_api_refuses_bad_arguments_as_the_cli_does(call: Any, needle: str) -> None:
    """Issue #24.10: RevstudyError with the CLI's kind of message, never a raw TypeError
    or a silently empty result, and nothing is started."""
    with pytest.raises(RevstudyError) as err:
        call()
    assert needle in str(err.value) and "\n" not in str(err.value)


# -- export, evaluate, predict, elucidate: the CLI's data, from one implementation ----------


@pytest.fixture
def run_dir(tiny_run: tuple[Path, Path]) -> tuple[Path, Path]:
    """The session's tiny model (tests/conftest.py) and its training CSV."""
    return tiny_run


def _cli_json(*args: str, code: int = 0) -> Any:
    from revstudy.cli.app import app

    res = runner.invoke(app, list(args))
    assert res.exit_code == code, res.output
    return json.loads(res.stdout)


def test_export_writes_what_the_cli_writes(tmp_path: Path) -> None:
    from tests.study.test_export import make_study

    study = make_study(tmp_path)
    storage = tmp_path / "revstudy-results"
    res = revstudy.export("demo", top=2, storage=storage, out=tmp_path / "api")
    from revstudy.cli.app import app

    cli = runner.invoke(
        app,
        ["export", "demo", "--top", "2", "--storage", str(storage), "--out", str(tmp_path / "cli")],
    )
    assert cli.exit_code == 0, cli.output
    assert [r.trial_id for r in res.ranked] == ["t3", "t1"]
    assert [p.name for p in res.paths] == sorted(p.name for p in (tmp_path / "cli").iterdir())
    for p in res.paths:  # the same configurations (the headers hold the export time)
        body = [ln for ln in p.read_text().splitlines() if not ln.startswith("#")]
        theirs = (tmp_path / "cli" / p.name).read_text().splitlines()
        assert body == [ln for ln in theirs if not ln.startswith("#")]
    one = revstudy.export(study, out=tmp_path / "b.yaml")  # the study by its folder; one file
    assert one.paths == [tmp_path / "b.yaml"] and one.ranked[0].trial_id == "t3"


@pytest.mark.parametrize("split", ["all", "val"])
def test_evaluate_returns_the_clis_json(run_dir: tuple[Path, Path], split: str) -> None:
    run, csv = run_dir
    doc = revstudy.evaluate(run, csv, split=split)
    assert doc["split"]["name"] == split and doc["split"]["note"]
    cli = _cli_json("evaluate", "--model", str(run), "--data", str(csv), "--split", split, "--json")
    assert json_safe(doc) == cli
    assert revstudy.evaluate(str(run), str(csv), split=split)["f1_macro"] == doc["f1_macro"]


def test_predict_returns_the_clis_rows_errors_included(run_dir: tuple[Path, Path]) -> None:
    run, _ = run_dir
    names = ["CCC", "C1CC", "CCO", "c1ccccc1C", "CC.CC"]
    with pytest.warns(UserWarning, match="atom_order: canonical"):  # a source-order model
        rows = revstudy.predict(run, names)
    args = ["predict", "--model", str(run), "--json"]
    for name in names:
        args += ["--smiles", name]
    cli = _cli_json(*args, code=2)  # bad rows: exit code 2, the others predicted
    assert rows == cli["predictions"]
    assert [("error" in r) for r in rows] == [False, True, True, False, True]
    assert rows[3]["smiles"] == "Cc1ccccc1" and rows[3]["input"] == "c1ccccc1C"
    assert "2 fragments" in rows[4]["error"]
    with pytest.warns(UserWarning):
        assert revstudy.predict(str(run), "CCC") == rows[:1]  # one SMILES as a string


def test_predict_streams_in_batches(
    run_dir: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The API gets every batch the library yields, in input order."""
    from revstudy.elucidation import prediction

    run, _ = run_dir
    names = ["CCC", "CC=C", "nope", "CCCC", "CC(C)C"]
    with pytest.warns(UserWarning):
        whole = revstudy.predict(run, names)
    monkeypatch.setattr(prediction, "PREDICT_BATCH", 2)
    with pytest.warns(UserWarning):
        assert revstudy.predict(run, names) == whole
    assert [r["input"] for r in whole] == names


def test_elucidate_returns_the_clis_json(run_dir: tuple[Path, Path]) -> None:
    run, csv = run_dir
    with pytest.warns(UserWarning):
        doc = revstudy.elucidate(run, "14.1,22.8,31.9", samples=6, top=3, seed=1, library=csv)
    cli = _cli_json(
        "elucidate", "--model", str(run), "--spectrum", "14.1,22.8,31.9", "--samples", "6",
        "--top", "3", "--seed", "1", "--library", str(csv), "--json",
    )  # fmt: skip
    assert json_safe(doc) == cli
    assert doc["samples"] == 6 and len(doc["library"]) == 3 and len(doc["candidates"]) <= 3
    with pytest.warns(UserWarning):  # ppm values as numbers: the same query
        again = revstudy.elucidate(run, [14.1, 22.8, 31.9], samples=6, top=3, seed=1)
    assert again["candidates"] == doc["candidates"] and "library" not in again


@pytest.mark.parametrize(
    ("call", "needle"),
    [
        (lambda m: revstudy.api.export(5), "study 5: expected a name or path"),
        (lambda m: revstudy.api.export("s", top=0), "top 0: expected an integer >= 1 (as --top)"),
        (lambda m: revstudy.api.export("s", top="2"), "top '2'"),
        (lambda m: revstudy.api.export("s", objective=1), "objective 1"),
        (lambda m: revstudy.api.export("s", out=3), "out 3"),
        (lambda m: revstudy.api.evaluate(None, "d.csv"), "model None: expected a name or path"),
        (lambda m: revstudy.api.evaluate(m, 7), "data 7"),
        (lambda m: revstudy.api.evaluate(m, "x.csv", split=1), "split 1"),
        (lambda m: revstudy.api.predict(m, 5), "smiles 5: expected a SMILES string or a list"),
        (lambda m: revstudy.api.predict(m, []), "smiles []"),
        (lambda m: revstudy.api.predict(m, ["CC", 3]), "smiles ['CC', 3]"),
        (
            lambda m: revstudy.api.predict(m, "CC", average=0),
            "average 0: expected an integer from 1 to 64",
        ),
        (lambda m: revstudy.api.predict(m, "CC", average=True), "average True"),
        (lambda m: revstudy.api.predict(3, "CC"), "model 3"),
        (lambda m: revstudy.api.elucidate(m, {"a": 1}), "spectrum {'a': 1}: expected ppm values"),
        (lambda m: revstudy.api.elucidate(m, [12.0, "x"]), "spectrum [12.0, 'x']"),
        (
            lambda m: revstudy.api.elucidate(m, "12", samples=0),
            "samples 0: expected an integer from 1",
        ),
        (lambda m: revstudy.api.elucidate(m, "12", samples=10**9), "samples 1000000000"),
        (lambda m: revstudy.api.elucidate(m, "12", top=0), "top 0"),
        (lambda m: revstudy.api.elucidate(m, "12", seed="1"), "seed '1': expected an integer"),
        (lambda m: revstudy.api.elucidate(m, "12", library=2), "library 2"),
        (lambda m: revstudy.api.elucidate(m, "12,abc"), "spectrum: 'abc' is not a ppm value"),
        (lambda m: revstudy.api.elucidate(m, [250.0]), "shift 250.0 ppm is outside"),
        (lambda m: revstudy.api.elucidate(m, []), "spectrum: no peaks given"),
        (lambda m: revstudy.api.elucidate(m, ""), "spectrum: no peaks given"),
        (lambda m: revstudy.api.predict(m, ["C"] * 10**5 + [1]), "smiles ['C', 'C', "),
    ],
)
def test_the_model_api_refuses_bad_arguments_in_one_line(
    tmp_path: Path, call: Any, needle: str
) -> None:
    """Bad arguments are refused before any model is loaded (the folder here has none)."""
    with pytest.raises(RevstudyError) as err:
        call(tmp_path)
    text = str(err.value)
    assert needle in text and "\n" not in text and len(text) < 200


def test_the_model_api_names_a_missing_model(tmp_path: Path, synthetic_csv: Path) -> None:
    for call in (
        lambda: revstudy.evaluate(tmp_path / "none", synthetic_csv),
        lambda: revstudy.predict(tmp_path / "none", "CC"),
        lambda: revstudy.elucidate(tmp_path / "none", "12.5"),
    ):
        with pytest.raises(RevstudyError, match="model directory not found"):
            call()
