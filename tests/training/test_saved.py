"""`revstudy.training.saved` on run folders written by hand (an untrained tiny network: no
training, so every test here is fast): loading and its refusals, the model's atom order,
the rows `evaluate` scores, and the evaluation document."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from revstudy.data.dataset import digits_to_string, grid_to_channels, read_dataset
from revstudy.errors import RevstudyError
from revstudy.training.config import TrialConfig
from revstudy.training.model import InvertibleNet
from revstudy.training.saved import (
    SavedModel,
    _state_dict_error,
    evaluate_file,
    evaluate_split,
    load_model,
    select_rows,
    tensors,
)
from tests.conftest import synthetic_rows, write_csv

TINY = TrialConfig(blocks=(1, 1, 1, 1, 1), hidden_ratio=0.25, epochs=1, cd_draws=1)


def _prior(cfg: TrialConfig, **changes: object) -> dict[str, object]:
    """prior.pt as a run folder holds it (format 1), with `changes` applied."""
    gen = torch.Generator().manual_seed(1)
    prior: dict[str, object] = {
        "format": 1,
        "mean": torch.zeros(cfg.z_dim),
        "std": torch.ones(cfg.z_dim),
        "code_means": torch.randn(2, cfg.y_dim, generator=gen),
        "standard": False,
        "topk": 3,
        "code_rate": torch.full((cfg.y_dim,), 0.05),
    }
    prior.update(changes)
    return prior


def write_folder(
    path: Path,
    cfg: TrialConfig = TINY,
    prior: dict[str, object] | None = None,
    metrics: dict[str, object] | None = None,
) -> Path:
    """A run folder: config.yaml, model.pt (a seeded untrained network), prior.pt."""
    path.mkdir(parents=True, exist_ok=True)
    cfg.save_yaml(path / "config.yaml")
    torch.manual_seed(0)
    torch.save(InvertibleNet.from_config(cfg).state_dict(), path / "model.pt")
    torch.save(_prior(cfg) if prior is None else prior, path / "prior.pt")
    if metrics is not None:
        (path / "metrics.json").write_text(json.dumps(metrics))
    return path


@pytest.fixture(scope="module")
def data_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_csv(tmp_path_factory.mktemp("saved") / "data.csv", synthetic_rows(40))


def _trained_on(path: Path, csv: Path, cfg: TrialConfig = TINY, final: bool = False) -> Path:
    """A folder whose metrics.json says it was trained on `csv` (as `revstudy train` writes)."""
    ds = read_dataset(csv)
    metrics = {
        "data": {"path": ds.path, "sha256": ds.sha256, "rows": len(ds)},
        "repeats": [{"split": {"final": final}, "epochs": 1, "n_train": 1, "val_loss": 0.5}],
    }
    return write_folder(path, cfg, metrics=metrics)


# -- loading -----------------------------------------------------------------------------
def test_a_hand_written_folder_loads_as_written(tmp_path: Path) -> None:
    folder = write_folder(tmp_path / "run")
    saved = load_model(folder)
    assert saved.path == folder and saved.config == TINY
    assert saved.topk == 3 and saved.run == {}
    want = _prior(TINY)
    torch.testing.assert_close(saved.prior.code_means, want["code_means"])
    torch.testing.assert_close(saved.code_rate, want["code_rate"])
    assert not saved.model.training  # ready for inference
    (folder / "metrics.json").write_text('{"repeats": [{"seed": 4}]}')
    assert load_model(str(folder)).run == {"repeats": [{"seed": 4}]}


def _garbage(name: str):
    def damage(folder: Path) -> None:
        (folder / name).write_bytes(b"not a torch archive")

    return damage


def _prior_with(**changes: object):
    def damage(folder: Path) -> None:
        torch.save(_prior(TINY, **changes), folder / "prior.pt")

    return damage


def _without(key: str):
    def damage(folder: Path) -> None:
        prior = _prior(TINY)
        del prior[key]
        torch.save(prior, folder / "prior.pt")

    return damage


def _other_network(folder: Path) -> None:
    torch.save(InvertibleNet.from_config(TINY.replace(hidden_ratio=0.5)).state_dict(),
               folder / "model.pt")  # fmt: skip


def _lr_edited(folder: Path) -> None:
    text = (folder / "config.yaml").read_text()
    (folder / "config.yaml").write_text(re.sub(r"(?m)^(\s*)lr: .*$", r"\1lr: -1", text))


@pytest.mark.parametrize(
    ("damage", "needle"),
    [
        (lambda f: (f / "prior.pt").unlink(), "missing prior.pt (write one with"),
        (
            lambda f: (f / "config.yaml").write_text("nonsense_field: 1\n"),
            "config.yaml: unknown field(s) nonsense_field (written by another revstudy version? ",
        ),
        (
            lambda f: (f / "config.yaml").write_text(""),
            "config.yaml: empty, holds no configuration; restore it or retrain",
        ),
        (_lr_edited, "config.yaml: field lr: -1.0 is outside (0, 10]; restore it or retrain"),
        (_garbage("model.pt"), ": model.pt unreadable ("),
        (_garbage("prior.pt"), ": prior.pt unreadable ("),
        (lambda f: torch.save(torch.zeros(3), f / "prior.pt"), "prior.pt has format None"),
        (_prior_with(format=2), "prior.pt has format 2, this revstudy reads format 1"),
        (_without("topk"), "prior.pt lacks topk"),
        (_prior_with(code_means=torch.zeros(2, 64)), "code_means has shape (2, 64), config"),
        (_prior_with(mean=[0.0]), "mean has shape list"),
        (_prior_with(std=torch.full((TINY.z_dim,), float("nan"))), "std holds NaN or inf"),
        (_prior_with(topk=0), "topk must be a positive integer, got 0"),
        (_prior_with(topk=2.5), "topk must be a positive integer, got 2.5"),
        (_other_network, "model.pt does not match config.yaml"),
        (lambda f: (f / "metrics.json").write_text("{truncated"), "metrics.json is damaged"),
        (lambda f: (f / "metrics.json").write_text("[1, 2]"), "metrics.json is not a JSON obj"),
    ],
)
def test_a_damaged_folder_is_one_line_naming_it(tmp_path: Path, damage, needle: str) -> None:
    folder = write_folder(tmp_path / "run")
    damage(folder)
    with pytest.raises(RevstudyError) as e:
        load_model(folder)
    text = str(e.value)
    assert text.startswith(str(folder)) and needle in text and "\n" not in text
    # only a field this version does not know suggests another version wrote the folder
    assert ("another revstudy version" in text) == ("unknown field" in text)


def test_no_folder_is_named_too(tmp_path: Path) -> None:
    with pytest.raises(RevstudyError, match="none: model directory not found"):
        load_model(tmp_path / "none")
    (tmp_path / "file").write_text("x")
    with pytest.raises(RevstudyError, match="model directory not found"):
        load_model(tmp_path / "file")


def test_state_dict_errors_keep_their_informative_lines() -> None:
    e = RuntimeError(
        'Error(s) in loading state_dict for InvertibleNet:\n\tMissing key(s) in state_dict: "a".'
        '\n\tUnexpected key(s) in state_dict: "b".\n\tsize mismatch for c.'
    )
    assert _state_dict_error(e) == (
        'Missing key(s) in state_dict: "a".; Unexpected key(s) in state_dict: "b".'
    )
    assert _state_dict_error(TypeError("")) == "TypeError"
    assert len(_state_dict_error(RuntimeError("x" * 1000))) == 300


# -- the model's inputs and predictions --------------------------------------------------
def _spellings() -> np.ndarray:
    """2-methylpentane numbered two ways (carbons in SMILES order), as X [2, 4, 16, 16]."""
    from revstudy.data.chem import smiles_to_grid

    pytest.importorskip("rdkit.Chem")
    return grid_to_channels(np.stack([smiles_to_grid("CCCC(C)C"), smiles_to_grid("CC(C)CCC")]))


def _saved(tmp_path: Path, cfg: TrialConfig = TINY) -> SavedModel:
    return load_model(write_folder(tmp_path / "run", cfg))


def test_inputs_apply_the_models_atom_order(tmp_path: Path) -> None:
    x = _spellings()
    assert not np.array_equal(x[0], x[1])
    source = _saved(tmp_path / "s")
    np.testing.assert_array_equal(source.inputs(x).numpy(), x)  # as given
    np.testing.assert_array_equal(source.inputs(torch.from_numpy(x)).numpy(), x)
    canonical = _saved(tmp_path / "c", TINY.replace(atom_order="canonical"))
    ordered = canonical.inputs(x).numpy()
    np.testing.assert_array_equal(ordered[0], ordered[1])  # one molecule, one input
    assert ordered[0].sum() == x[0].sum()  # the same bonds, renumbered


def test_predicted_codes_are_the_positive_logits(tmp_path: Path) -> None:
    saved = _saved(tmp_path)
    x = _spellings()
    logits = saved.predict_logits(x)
    codes = saved.predict_codes(x)
    assert codes.shape == (2, TINY.y_dim) and codes.dtype == np.uint8
    np.testing.assert_array_equal(codes, (logits > 0).numpy())


def test_averaging_needs_a_relabel_model(tmp_path: Path) -> None:
    saved = _saved(tmp_path)
    with pytest.raises(RevstudyError, match="averaging over numberings needs a model trained"):
        saved.predict_logits(_spellings(), average=2)
    relabel = _saved(tmp_path / "r", TINY.replace(relabel=True))
    assert relabel.predict_logits(_spellings(), average=3).shape == (2, TINY.y_dim)


def test_the_numbering_warning_only_for_source_models(tmp_path: Path) -> None:
    warning = _saved(tmp_path / "s").numbering_warning()
    assert warning is not None and str(tmp_path / "s" / "run") in warning
    assert "atom_order: canonical" in warning and "\n" not in warning
    assert _saved(tmp_path / "c", TINY.replace(atom_order="canonical")).numbering_warning() is None
    assert _saved(tmp_path / "r", TINY.replace(relabel=True)).numbering_warning() is None


def test_tensors_are_the_rows_grids_and_coarsened_codes(tmp_path: Path) -> None:
    """Fine bins 70 (14.1 ppm) and 159 (31.9 ppm): at 128 bits (8 fine bins a bit) bits 8
    and 19."""
    grid = np.zeros((16, 16), dtype=int)
    grid[0, 0] = grid[1, 1] = 1  # propane: bonds 0-1, 1-2
    bits = ["0"] * 1024
    bits[70] = bits[159] = "1"
    csv = write_csv(tmp_path / "d.csv", [(1, 1, digits_to_string(grid), "".join(bits))])
    x, code = tensors(_saved(tmp_path), read_dataset(csv))
    assert x.shape == (1, 4, 16, 16) and code.shape == (1, 128)
    assert x[0, 0, 0, 0] == x[0, 0, 1, 1] == 1 and x.sum() == 2
    assert np.flatnonzero(code[0].numpy()).tolist() == [8, 19]


# -- the rows evaluate scores ------------------------------------------------------------
def test_an_unknown_split_is_refused(tmp_path: Path, data_csv: Path) -> None:
    with pytest.raises(RevstudyError, match="--split: choose from all, train, val, test, got 'x'"):
        select_rows(_saved(tmp_path), read_dataset(data_csv), "x")


def test_the_models_own_split_partitions_its_training_file(tmp_path: Path, data_csv: Path) -> None:
    saved = load_model(_trained_on(tmp_path / "run", data_csv))
    ds = read_dataset(data_csv)
    parts = {}
    for split in ("train", "val", "test"):
        rows, note = select_rows(saved, ds, split)
        assert note == f"{split} split of the model's training run"
        assert np.all(np.diff(rows) > 0)  # sorted, no repeats
        parts[split] = set(rows.tolist())
    assert parts["train"] | parts["val"] | parts["test"] == set(range(len(ds)))
    assert not (parts["train"] & parts["val"] or parts["train"] & parts["test"])
    # no molecule on both sides of the line
    train_structures = {ds.structures[i] for i in parts["train"]}
    assert not train_structures & {ds.structures[i] for i in parts["val"] | parts["test"]}
    rows, note = select_rows(saved, ds, "all")
    assert rows.tolist() == list(range(len(ds)))
    assert note.startswith(f"{len(parts['train'])} of {len(ds)} rows were in the model's")


def test_a_final_run_trained_on_validation_too(tmp_path: Path, data_csv: Path) -> None:
    ds = read_dataset(data_csv)
    plain = load_model(_trained_on(tmp_path / "plain", data_csv))
    final = load_model(_trained_on(tmp_path / "final", data_csv, final=True))
    train, _ = select_rows(final, ds, "train")
    val, note = select_rows(final, ds, "val")
    assert "optimistic" in note
    assert set(train.tolist()) == set(select_rows(plain, ds, "train")[0].tolist()) | set(
        val.tolist()
    )


def test_another_file_all_rows_only_with_the_overlap_counted(tmp_path: Path) -> None:
    data_csv = write_csv(tmp_path / "data.csv", synthetic_rows(40))
    ds = read_dataset(data_csv)
    saved = load_model(_trained_on(tmp_path / "run", data_csv))
    train = {ds.structures[i] for i in select_rows(saved, ds, "train")[0]}
    rows = synthetic_rows(40)[:12]  # the training file's first 12 rows, in a file of its own
    other = read_dataset(write_csv(tmp_path / "other.csv", rows))
    with pytest.raises(RevstudyError, match="is not the file this model was trained on"):
        select_rows(saved, other, "test")
    got, note = select_rows(saved, other, "all")
    expected = sum(r[2] in train for r in rows)
    assert got.tolist() == list(range(12))
    if expected:
        assert note.startswith(f"{expected} of 12 rows were in the model's training split")
    else:
        assert note == "no row was in the model's training split"
    data_csv.unlink()  # the training file gone: nothing to compare with
    assert select_rows(saved, other, "all")[1] == "overlap with the training split unknown"


def test_a_model_without_a_test_split(tmp_path: Path, data_csv: Path) -> None:
    saved = load_model(_trained_on(tmp_path / "run", data_csv, TINY.replace(test_fraction=0.0)))
    with pytest.raises(RevstudyError, match="--split test: the model's split has no such rows"):
        select_rows(saved, read_dataset(data_csv), "test")


# -- the evaluation document ---------------------------------------------------------------
def test_evaluate_split_scores_the_rows_it_names(tmp_path: Path, data_csv: Path) -> None:
    saved = load_model(_trained_on(tmp_path / "run", data_csv))
    ds = read_dataset(data_csv)
    val, note = select_rows(saved, ds, "val")
    doc = evaluate_split(saved, ds, "val")
    assert doc["split"] == {
        "eval": len(val),
        "data": ds.path,
        "sha256": ds.sha256,
        "name": "val",
        "note": note,
    }
    assert doc["n_eval"] == len(val) and doc["repeat"] == 0 and doc["seed"] == TINY.seed
    assert doc["epochs"] == 1 and doc["val_loss"] == 0.5  # from metrics.json's repeat 0
    for key in ("f1_macro", "f1_macro_skill", "retrieval_mrr", "f1_macro_relabelled"):
        assert key in doc
    assert 0.0 <= doc["f1_macro"] <= 1.0


def test_evaluate_file_needs_two_rows_and_takes_a_seed(tmp_path: Path, data_csv: Path) -> None:
    saved = _saved(tmp_path)
    ds = read_dataset(data_csv)
    with pytest.raises(RevstudyError, match="evaluation needs at least 2 rows"):
        evaluate_file(saved, ds, rows=np.array([3]))
    doc = evaluate_file(saved, ds, seed=5, rows=np.array([0, 1, 2]))
    assert doc["seed"] == 5 and doc["n_eval"] == 3.0 and doc["split"]["eval"] == 3
    assert np.isnan(doc["train_seconds"])  # no metrics.json: unknown, not made up
