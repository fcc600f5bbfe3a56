"""The reference-predictor row, with a stand-in predictor (CSP5 is an optional extra that CI
does not install): metrics, cache, and the one-line error without CSP5."""

from __future__ import annotations

import contextlib
import json
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from revstudy.cli.app import app
from revstudy.data.dataset import read_dataset
from revstudy.training.reference import reference_metrics, run_reference
from tests.conftest import synthetic_rows, write_csv

pytest.importorskip("rdkit.Chem")


@pytest.fixture()
def unique_csv(tmp_path: Path) -> Path:
    """Synthetic rows with one spectrum per structure (a perfect predictor is then exact)."""
    rows, seen = [], set()
    for r in synthetic_rows(120, seed=3):
        if r[2] not in seen:
            seen.add(r[2])
            rows.append(r)
    return write_csv(tmp_path / "unique.csv", rows)


def _perfect_shifts(csv: Path) -> dict[str, list[float] | None]:
    """Shifts that bin exactly to each row's own spectrum (the first row of a structure)."""
    ds = read_dataset(csv)
    out: dict[str, list[float] | None] = {}
    for s, bits in zip(ds.structures, ds.y(), strict=True):
        out.setdefault(s, [b / 5 + 0.1 for b in np.flatnonzero(bits)])
    return out


def test_a_perfect_predictor_scores_one(unique_csv: Path) -> None:
    ds = read_dataset(unique_csv)
    m = reference_metrics(ds, _perfect_shifts(unique_csv), y_dim=128)
    # macro F1 counts bins no spectrum sets as 0 (as the paper's does): micro and present = 1
    assert m["f1_micro"] == pytest.approx(1.0) and m["f1_macro_present"] == pytest.approx(1.0)
    assert m["f1_macro_skill"] > 0.5
    assert m["retrieval_top1"] > 3 * m["retrieval_top1_random"]
    assert m["rows"] == len(ds) and m["failed"] == 0


def test_failed_molecules_are_counted_not_scored(unique_csv: Path) -> None:
    ds = read_dataset(unique_csv)
    shifts = _perfect_shifts(unique_csv)
    gone = ds.structures[0]
    shifts[gone] = None
    m = reference_metrics(ds, shifts, y_dim=64)
    assert m["failed"] == 1 and m["rows"] == len(ds) - 1
    assert m["f1_micro"] == pytest.approx(1.0) and 0 <= m["f1_macro_128"] <= 1


def test_predictions_are_cached_per_data_file(unique_csv: Path, tmp_path: Path) -> None:
    ds = read_dataset(unique_csv)
    perfect = _perfect_shifts(unique_csv)
    calls: list[int] = []

    from revstudy.data.chem import structure_to_smiles
    from revstudy.errors import DataError

    by_smiles = {}
    for s in set(ds.structures):
        with contextlib.suppress(DataError):
            by_smiles[structure_to_smiles(s)] = s

    def predict(smiles):
        calls.append(len(smiles))
        return [perfect[by_smiles[s]] for s in smiles]

    first = run_reference(ds, 128, cache=tmp_path, predictor=(predict, "fake"))
    again = run_reference(ds, 64, cache=tmp_path, predictor=(predict, "fake"))
    assert len(calls) == 1 and first["metrics"]["f1_micro"] > 0.9  # SMILES-keyed stand-in
    assert again["y_dim"] == 64 and "held-out" in again["caveat"]
    cached = next(tmp_path.glob("csp5-fake-*.json"))
    cached.write_text("{damaged")
    run_reference(ds, 128, cache=tmp_path, predictor=(predict, "fake"))
    assert len(calls) == 2 and json.loads(cached.read_text())["sha256"] == ds.sha256


def test_without_csp5_the_command_says_how_to_install_it(
    synthetic_csv: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "csp5", None)  # import csp5 → ImportError
    res = CliRunner().invoke(app, ["reference", "--data", str(synthetic_csv)])
    assert res.exit_code == 2 and "pip install 'revstudy[reference]'" in res.stderr
