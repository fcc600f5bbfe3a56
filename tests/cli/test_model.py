"""`revstudy evaluate | predict | elucidate | benchmark` on a tiny model trained on synthetic
rows."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from revstudy.cli.app import app
from revstudy.data.dataset import read_dataset
from revstudy.errors import RevstudyError
from revstudy.training.config import TrialConfig
from tests.conftest import synthetic_rows, write_csv

pytest.importorskip("rdkit.Chem")

runner = CliRunner()
TINY = TrialConfig(blocks=(1, 1, 1, 1, 1), hidden_ratio=0.25, epochs=1, cd_draws=1)


@pytest.fixture
def run_dir(tiny_run: tuple[Path, Path]) -> tuple[Path, Path]:
    """The session's tiny model (tests/conftest.py) and its training CSV."""
    return tiny_run


def _ok(args: list[str]) -> str:
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    return res.stdout


def _fails(args: list[str], message: str) -> None:
    res = runner.invoke(app, args)
    assert res.exit_code == 2, res.output
    assert message in res.output


def test_evaluate_has_metrics_json_repeat_keys(run_dir: tuple[Path, Path], tmp_path: Path) -> None:
    run, csv = run_dir
    out = tmp_path / "eval.json"
    _ok(["evaluate", "--model", str(run), "--data", str(csv), "--out", str(out)])
    doc = json.loads(out.read_text())
    repeat = json.loads((run / "metrics.json").read_text())["repeats"][0]
    assert set(repeat) - {"history"} <= set(doc)
    assert doc["n_eval"] == 60 and doc["split"]["eval"] == 60


def test_predict_table_json_and_per_row_errors(run_dir: tuple[Path, Path], tmp_path: Path) -> None:
    run, csv = run_dir
    out = _ok(["predict", "--model", str(run), "--smiles", "CCC", "--json"])
    pred = json.loads(out)["predictions"][0]
    assert pred["smiles"] == "CCC"
    assert all(b["ppm_high"] - b["ppm_low"] == pytest.approx(1.6) for b in pred["bins"])
    _ok(["predict", "--model", str(run), "--structures", str(csv)])
    smi = tmp_path / "s.smi"
    smi.write_text("CCCC\nC1CC\nCCO\nC" + "C" * 17 + "\nc1ccccc1\n")
    res = runner.invoke(app, ["predict", "--model", str(run), "--structures", str(smi), "--json"])
    assert res.exit_code == 2
    rows = json.loads(res.stdout)["predictions"]
    assert [("error" in r) for r in rows] == [False, True, True, True, False]
    assert "not parsable" in rows[1]["error"] and "not a hydrocarbon" in rows[2]["error"]
    assert "18 carbons" in rows[3]["error"]
    # nothing readable: the errors alone (no empty table), an empty SMILES named as ''
    res = runner.invoke(app, ["predict", "--model", str(run), "--smiles", "", "--smiles", "O"])
    assert res.exit_code == 2 and res.stdout == ""
    assert [ln for ln in res.stderr.splitlines() if ln.startswith("error")] == [
        "error: '': no carbon atoms",
        "error: O: not a hydrocarbon (has element O)",
    ]


def test_elucidate_generation_and_library(run_dir: tuple[Path, Path]) -> None:
    run, csv = run_dir
    args = ["elucidate", "--model", str(run), "--spectrum", "14.1,22.8,31.9", "--samples", "8"]
    doc = json.loads(_ok([*args, "--library", str(csv), "--json", "--top", "3"]))
    assert doc["samples"] == 8 and len(doc["library"]) == 3
    assert all(0 <= c["score"] <= 1 for c in doc["candidates"])
    _ok(args)


def test_evaluate_defaults_to_the_file_the_model_was_trained_on(
    run_dir: tuple[Path, Path], tmp_path: Path, isolated_cache: Path
) -> None:
    """Issue #30: every command that reads data takes the same default; a model's own is
    the file it records (checked by sha256), so `--split test` finds its split."""
    import shutil

    run, csv = run_dir
    args = ["evaluate", "--model", str(run), "--split", "test", "--json"]
    res = runner.invoke(app, args, env={"COLUMNS": "40"})  # a narrow terminal
    assert res.exit_code == 0, res.output
    assert f"data: {csv} (the file {run} was trained on)" in res.stderr  # one line, whole
    given = runner.invoke(app, [*args, "--data", str(csv)])
    assert json.loads(res.stdout) == json.loads(given.stdout)
    # the recorded file gone: one line naming the model's record and the fix
    moved = tmp_path / "moved"
    shutil.copytree(run, moved)
    doc = json.loads((moved / "metrics.json").read_text())
    doc["data"]["path"] = str(tmp_path / "gone.csv")
    (moved / "metrics.json").write_text(json.dumps(doc))
    res = runner.invoke(app, ["evaluate", "--model", str(moved)])
    assert res.exit_code == 2
    assert res.stderr.strip().count("\n") == 0
    assert f"{moved / 'metrics.json'}: records data file" in res.stderr
    assert "gone.csv" in res.stderr and "--data FILE" in res.stderr


def test_benchmark(run_dir: tuple[Path, Path]) -> None:
    from revstudy.elucidation.benchmark import elucidation_benchmark

    run, csv = run_dir
    doc = elucidation_benchmark(run, csv, "val", samples=3, limit=4)
    for side in ("generation", "retrieval", "retrieval_train"):
        assert {"valid_fraction", "top1", "top10", "tanimoto_top1"} <= set(doc[side])
    assert doc["retrieval"]["top10"] >= doc["retrieval"]["top1"]
    # the chance floor, recomputed from the file: a random ranking of its distinct
    # structures, with the Tanimoto from fingerprint bits counted in numpy
    library = _distinct_smiles(csv)
    chance = doc["chance"]
    assert chance["library"] == doc["retrieval"]["library"] == len(library)
    assert chance["top1"] == 1 / len(library) and chance["top10"] == 10 / len(library)
    truths = _split_smiles(run, csv, "val", limit=4)
    bits = _morgan_bits(library)
    expected = np.mean([_tanimoto_to_all(_morgan_bits([t])[0], bits).mean() for t in truths])
    assert chance["tanimoto_top1"] == pytest.approx(expected, rel=1e-12)
    assert 0 < chance["tanimoto_top1"] < 1
    out = _ok(["benchmark", "--model", str(run), "--data", str(csv), "--limit", "2"])
    assert json.loads(out)["spectra"] == 2 and json.loads(out)["samples"] == 100
    args = ["--model", str(run), "--data", str(csv), "--limit", "1", "--samples", "2"]
    assert json.loads(_ok(["benchmark", *args, "--seed", "3"]))["seed"] == 3
    _fails(["benchmark", *args, "--split", "train"], "--split train: expected val or test")
    res = runner.invoke(app, ["benchmark", "--model", str(run), "--limit", "1", "--samples", "2"])
    assert res.exit_code == 0, res.output  # without --data: the file the model records
    assert f"data: {csv} (the file {run} was trained on)" in res.stderr
    _fails(["elucidate", "--benchmark", *args], "No such option: --benchmark")


def test_spectrum_errors(run_dir: tuple[Path, Path], tmp_path: Path) -> None:
    run, _ = run_dir
    base = ["elucidate", "--model", str(run), "--spectrum"]
    _fails([*base, "12.0,204.9"], "outside 0–204.8 ppm")
    _fails([*base, "-1"], "outside 0–204.8 ppm")
    _fails([*base, "12,abc"], "'abc' is not a ppm value")
    f = tmp_path / "peaks.txt"
    f.write_text("10\n300\n")
    _fails([*base, str(f)], "shift 300 ppm")


def test_model_dir_errors(run_dir: tuple[Path, Path], tmp_path: Path) -> None:
    run, csv = run_dir
    _fails(["evaluate", "--model", str(tmp_path / "none"), "--data", str(csv)], "not found")
    partial = tmp_path / "partial"
    partial.mkdir()
    (partial / "config.yaml").write_text((run / "config.yaml").read_text())
    _fails(["predict", "--model", str(partial), "--smiles", "CC"], "missing model.pt, prior.pt")
    other = tmp_path / "other"
    other.mkdir()
    for name in ("config.yaml", "model.pt", "prior.pt"):
        (other / name).write_bytes((run / name).read_bytes())
    TINY.replace(blocks=(1, 1, 1, 1, 2)).save_yaml(other / "config.yaml")
    _fails(["predict", "--model", str(other), "--smiles", "CC"], "does not match config.yaml")
    prior = torch.load(run / "prior.pt", weights_only=True)
    torch.save({**prior, "format": 99}, other / "prior.pt")
    _fails(["predict", "--model", str(other), "--smiles", "CC"], "format 99")
    (other / "config.yaml").write_text("config:\n  new_field_of_v2: 1\n")
    _fails(["predict", "--model", str(other), "--smiles", "CC"], "another revstudy version")


def test_evaluate_splits_and_the_training_overlap(
    run_dir: tuple[Path, Path], tmp_path: Path
) -> None:
    run, csv = run_dir
    res = runner.invoke(app, ["evaluate", "--model", str(run), "--data", str(csv), "--json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert "rows were in the model's training split" in doc["split"]["note"]
    assert "optimistic" in res.stderr
    sizes = {}
    for split in ("train", "val", "test"):
        res = runner.invoke(
            app, ["evaluate", "--model", str(run), "--data", str(csv), "--split", split, "--json"]
        )
        assert res.exit_code == 0, res.output
        sizes[split] = json.loads(res.stdout)["n_eval"]
    repeat = json.loads((run / "metrics.json").read_text())["repeats"][0]["split"]
    assert sizes == {k: repeat[k] for k in ("train", "val", "test")}
    other = write_csv(tmp_path / "other.csv", synthetic_rows(30, seed=9))
    _fails(["evaluate", "--model", str(run), "--data", str(other), "--split", "test"],
           "is not the file this model was trained on")  # fmt: skip
    res = runner.invoke(app, ["evaluate", "--model", str(run), "--data", str(csv)])
    assert (res.exit_code == 0 and "macro F1" in res.stdout) or "F1" in res.stdout  # a table


def test_evaluate_retrieval_queries_the_observed_spectra(run_dir: tuple[Path, Path]) -> None:
    """The queries are the rows' measured codes, not the model's own predictions."""
    from revstudy.training.retrieval import library_index, retrieval_metrics
    from revstudy.training.saved import load_model, tensors

    run, csv = run_dir
    res = runner.invoke(app, ["evaluate", "--model", str(run), "--data", str(csv), "--json"])
    doc = json.loads(res.stdout)
    saved = load_model(run)
    x, code = tensors(saved, read_dataset(csv))
    library, truth = library_index(x, x)
    want = retrieval_metrics(saved.model(library)[1].detach(), truth, code)["retrieval_mrr"]
    assert doc["retrieval_mrr"] == pytest.approx(want)


def test_evaluate_says_which_repeat_it_scores_and_shows_no_spread_of_one(
    run_dir: tuple[Path, Path],
) -> None:
    """Issue #22.8: a model folder holds repeat 0; a table of one model has no "± 0"."""
    run, csv = run_dir
    res = runner.invoke(app, ["evaluate", "--model", str(run), "--data", str(csv)])
    assert res.exit_code == 0, res.output
    assert "its only repeat" in res.output and "± 0" not in res.stdout
    assert "ours min–max" not in res.stdout and "ours" in res.stdout


def test_predict_streams_many_structures_in_batches(
    run_dir: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue #24.11: batches bound memory and the output streams; the JSON is one document,
    the same as unbatched; many structures list as tab-separated lines, not a table."""
    from revstudy.cli import model as model_cli
    from revstudy.elucidation import prediction

    run, _ = run_dir
    smi = tmp_path / "many.txt"
    names = ["CCC", "CC=C", "C1CCCCC1", "c1ccccc1", "CC#C", "not-a-smiles", "CCCC", "CC(C)C"]
    smi.write_text("\n".join(names) + "\n")
    args = ["predict", "--model", str(run), "--structures", str(smi), "--json"]
    whole = runner.invoke(app, args)
    monkeypatch.setattr(prediction, "PREDICT_BATCH", 3)
    batched = runner.invoke(app, args)
    assert whole.exit_code == batched.exit_code == 2  # one bad SMILES, named on stderr
    assert "not-a-smiles" in batched.stderr
    a, b = json.loads(whole.stdout), json.loads(batched.stdout)
    assert a == b and len(b["predictions"]) == len(names)
    monkeypatch.setattr(model_cli, "TABLE_ROWS", 4)
    lines = runner.invoke(app, args[:-1]).stdout.splitlines()
    assert lines[0] == "input\tSMILES\tset bins (ppm)" and len(lines) == 1 + len(names) - 1
    assert lines[1].split("\t")[:2] == ["CCC", "CCC"]


def _smiles(grid: str) -> str | None:
    """The structure's canonical SMILES, or None where RDKit accepts no single molecule."""
    from revstudy.data.chem import grid_to_smiles
    from revstudy.data.dataset import structure_digits

    try:
        return grid_to_smiles(structure_digits(grid))
    except RevstudyError:
        return None


def _distinct_smiles(csv: Path) -> list[str]:
    found = {_smiles(grid) for grid in read_dataset(csv).structures}
    return sorted(s for s in found if s is not None)


def _split_smiles(run: Path, csv: Path, split: str, limit: int) -> list[str]:
    from revstudy.training.saved import load_model

    saved, data = load_model(run), read_dataset(csv)
    parts = saved.split(data.structures)
    rows = (parts.val if split == "val" else parts.test)[:limit]
    return [s for s in (_smiles(data.structures[i]) for i in rows) if s is not None]


def _morgan_bits(smiles: list[str]) -> np.ndarray:
    from rdkit import Chem
    from rdkit.Chem import rdFingerprintGenerator

    gen = rdFingerprintGenerator.GetMorganGenerator(radius=2, fpSize=2048)
    return np.stack([gen.GetFingerprintAsNumPy(Chem.MolFromSmiles(s)) > 0 for s in smiles])


def _tanimoto_to_all(a: np.ndarray, library: np.ndarray) -> np.ndarray:
    both = (library & a).sum(axis=1)
    return both / ((library | a).sum(axis=1))
