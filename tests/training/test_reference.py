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


class _FakeResult:
    def __init__(self, predictions: object) -> None:
        self.predictions = predictions


def _fake_csp5(monkeypatch: pytest.MonkeyPatch, cannot_embed: set[str]) -> None:
    """A stand-in `csp5` module that numbers `molecule_id` over the molecules it could embed,
    as CSP5 does, and predicts shift 10·(carbon index + 1) for each carbon."""
    import types

    import pandas as pd
    from rdkit import Chem

    def predict_smiles(smiles: list[str], nucleus: str, random_seed: int) -> _FakeResult:
        rows, mid = [], 0
        for s in smiles:
            if s in cannot_embed:
                continue  # dropped: every later molecule_id shifts by one
            n = Chem.MolFromSmiles(s).GetNumAtoms()
            rows += [(mid, s, i, 10.0 * (i + 1)) for i in range(n)]
            mid += 1
        cols = ["molecule_id", "smiles", "atom_index", "shift_ppm"]
        return _FakeResult(pd.DataFrame(rows, columns=cols))

    fake = types.ModuleType("csp5")
    fake.predict_smiles = predict_smiles  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "csp5", fake)
    monkeypatch.setattr("importlib.metadata.version", lambda name: "0.0-fake")


def test_predictions_are_mapped_by_smiles_not_by_position(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Issue #22: a molecule CSP5 cannot embed must not shift the others' predictions."""
    from revstudy.training.reference import csp5_predictor

    smiles = ["CCC", "C1CCCC#CCC1", "CCCCC", "c1ccccc1"]
    _fake_csp5(monkeypatch, cannot_embed={"C1CCCC#CCC1"})
    predict, version = csp5_predictor()
    got = predict(smiles)
    assert got[1] is None and version == "0.0-fake"
    assert got[0] == [10.0, 20.0, 30.0]
    assert got[2] == [10.0, 20.0, 30.0, 40.0, 50.0]
    assert got[3] is not None and len(got[3]) == 6


def test_the_failed_molecule_is_the_one_reported_and_counts_are_checked(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from revstudy.data.chem import smiles_to_structure, structure_to_smiles
    from revstudy.errors import RevstudyError

    names = ["CCC", "C1CCCC#CCC1", "CCCCC", "CC(C)C", "C=CC=C"]
    rows = [(i, i, smiles_to_structure(s), "0" * 1023 + "1") for i, s in enumerate(names)]
    ds = read_dataset(write_csv(tmp_path / "r.csv", rows))
    _fake_csp5(monkeypatch, cannot_embed={structure_to_smiles(smiles_to_structure(names[1]))})
    seen: list[tuple[int, int]] = []
    doc = run_reference(
        ds, 128, cache=tmp_path / "cache", progress=lambda d, t: seen.append((d, t))
    )
    assert doc["metrics"]["failed"] == 1 and doc["metrics"]["rows"] == 4
    assert doc["failed"] == [structure_to_smiles(smiles_to_structure(names[1]))]
    assert seen and seen[-1] == (5, 5)  # the progress reached every molecule
    cached = next((tmp_path / "cache").glob("csp5-0.0-fake-v2-*.json"))
    shifts = json.loads(cached.read_text())["shifts"]
    assert shifts[smiles_to_structure(names[1])] is None
    assert len(shifts[smiles_to_structure("CCCCC")]) == 5
    # predictions attached to the wrong molecule (wrong count) are refused, not scored
    from revstudy.training.reference import predicted_spectra

    def shifted(smiles):
        return [[1.0, 2.0]] * len(smiles)

    with pytest.raises(RevstudyError, match=r"2 predicted shifts .* 3 carbons"):
        predicted_spectra(ds, shifted, "wrong", None)
    # an earlier (v1) cache file is never read
    old = tmp_path / "cache" / f"csp5-0.0-fake-{ds.sha256[:16]}.json"
    old.write_text(json.dumps({"sha256": ds.sha256, "shifts": {s: [1.0] for s in ds.structures}}))
    again = run_reference(ds, 128, cache=tmp_path / "cache")
    assert again["metrics"] == doc["metrics"]


@pytest.mark.slow
def test_real_csp5_on_molecules_it_can_and_cannot_embed(tmp_path: Path) -> None:
    pytest.importorskip("csp5", reason="CSP5 not installed (pip install 'revstudy[reference]')")
    from revstudy.training.reference import csp5_predictor

    predict, _ = csp5_predictor()
    smiles = ["CCCC", "C1CCCC#CCC1", "Cc1ccccc1", "C=CCC"]
    got = predict(smiles)
    counts = [None if g is None else len(g) for g in got]
    assert counts[0] == 4 and counts[2] == 7 and counts[3] == 4
    assert counts[1] in (None, 8)  # CSP5 could not embed cyclooctyne when this was written
    butane = sorted(got[0] or [])
    assert 10 < butane[0] < 16 and 20 < butane[-1] < 28  # CH3 ≈ 13, CH2 ≈ 25 ppm
