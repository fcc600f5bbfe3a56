"""Saved models and their atom order (issue #21): one molecule, one prediction, however it
is written, for a canonical model; a warning, and a refused `--average`, for a source one."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from revstudy.cli.app import app
from revstudy.data.dataset import read_dataset
from revstudy.data.numbering import relabelled
from revstudy.training.config import TrialConfig
from revstudy.training.runs import train_repeats, write_run
from revstudy.training.saved import load_model
from tests.conftest import molecule_rows, write_csv

runner = CliRunner()
TINY = TrialConfig(blocks=(1, 1, 1, 1, 1), hidden_ratio=0.25, epochs=1, cd_draws=1)
SPELLINGS = ["CCCCC(C)C", "CC(C)CCCC", "C(CCC(C)C)C"]
XYLENE = ["Cc1ccccc1C", "C1=CC=C(C)C(C)=C1", "c1ccc(C)c(C)c1"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Run folders trained once: source, canonical, relabel (source order)."""
    root = tmp_path_factory.mktemp("numbering-models")
    rows = molecule_rows(90, seed=2)
    csv = write_csv(root / "data.csv", rows)
    ds = read_dataset(csv)
    torch.set_num_threads(1)
    out = {"csv": csv}
    for name, cfg in {
        "source": TINY,
        "canonical": TINY.replace(atom_order="canonical"),
        "relabel": TINY.replace(relabel=True, lr=5e-3),
    }.items():
        write_run(root / name, train_repeats(cfg, ds), ds, "cpu")
        out[name] = root / name
    return out


def _predict(run: Path, smiles: list[str], *extra: str) -> tuple[list[list[int]], str]:
    args = ["predict", "--model", str(run), "--json", *extra]
    for s in smiles:
        args += ["--smiles", s]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    return [[b["bin"] for b in p["bins"]] for p in doc["predictions"]], res.stderr


@pytest.mark.parametrize("spellings", [SPELLINGS, XYLENE])
def test_a_canonical_model_predicts_one_spectrum_per_molecule(
    runs: dict[str, Path], spellings: list[str]
) -> None:
    bins, err = _predict(runs["canonical"], spellings)
    assert all(b == bins[0] for b in bins)
    assert "warning" not in err
    saved = load_model(runs["canonical"])
    assert saved.config.atom_order == "canonical"
    # the same for grids renumbered at random, through the Python API
    x = read_dataset(runs["csv"]).x()[:20]
    np.testing.assert_array_equal(saved.predict_codes(x), saved.predict_codes(relabelled(x)))


def test_a_source_model_warns_that_other_numberings_are_near_chance(
    runs: dict[str, Path],
) -> None:
    _, err = _predict(runs["source"], ["CCCC"])
    assert "warning" in err and "atom_order: canonical" in err
    res = runner.invoke(app, ["predict", "--model", str(runs["source"]), "--smiles", "CC"])
    assert res.exit_code == 0
    res = runner.invoke(
        app, ["predict", "--model", str(runs["source"]), "--smiles", "CC", "--average", "4"]
    )
    assert res.exit_code == 2 and "relabel: true" in res.output


def test_averaging_over_numberings_is_seeded_and_uses_them(runs: dict[str, Path]) -> None:
    saved = load_model(runs["relabel"])
    x = read_dataset(runs["csv"]).x()[:30]
    a = saved.predict_logits(x, average=6)
    np.testing.assert_array_equal(a.numpy(), saved.predict_logits(x, average=6).numpy())
    one = saved.predict_logits(x)
    assert not torch.allclose(a, one)
    # independently: the mean probability over the model's numbering and 5 random ones
    from revstudy.data.numbering import relabel
    from revstudy.training.metrics import forward_all

    gen = torch.Generator().manual_seed(saved.config.seed)
    xt = torch.from_numpy(x)
    probs = [torch.sigmoid(forward_all(saved.model, xt)[1])]
    probs += [torch.sigmoid(forward_all(saved.model, relabel(xt, gen))[1]) for _ in range(5)]
    torch.testing.assert_close(torch.sigmoid(a), torch.stack(probs).mean(0), rtol=0, atol=1e-5)
    bins, err = _predict(runs["relabel"], SPELLINGS, "--average", "8")
    assert len(bins) == 3 and "warning" not in err


def test_evaluate_scores_renumbered_rows_too(runs: dict[str, Path]) -> None:
    for name in ("source", "canonical"):
        res = runner.invoke(
            app, ["evaluate", "--model", str(runs[name]), "--data", str(runs["csv"]), "--json"]
        )
        assert res.exit_code == 0, res.output
        doc = json.loads(res.stdout)
        for key in ("f1_macro", "f1_macro_skill", "f1_macro_128", "retrieval_mrr"):
            assert f"{key}_relabelled" in doc
        if name == "canonical":
            assert doc["f1_macro_relabelled"] == doc["f1_macro"]
            assert doc["retrieval_mrr_relabelled"] == doc["retrieval_mrr"]
