"""Training with an atom order and renumbering (issue #21): the canonical order makes a
model numbering-invariant by construction, `relabel` changes what a step sees, and every
run measures its skill on renumbered molecules."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from revstudy.data.dataset import Dataset, encode_structures, read_dataset
from revstudy.data.numbering import in_order
from revstudy.errors import RevstudyError
from revstudy.training.config import TrialConfig
from revstudy.training.splits import SplitTensors
from revstudy.training.trainer import Trainer, fit
from tests.conftest import molecule_rows, write_csv

TINY = TrialConfig(blocks=(1, 1, 1, 1, 1), hidden_ratio=0.25, epochs=2, cd_draws=1)
PER_EPOCH = ("val_f1_macro", "val_f1_skill", "val_retrieval_mrr")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Dataset:
    rows = molecule_rows(100, seed=5)
    assert len(rows) >= 60
    return read_dataset(write_csv(tmp_path_factory.mktemp("numbering") / "rows.csv", rows))


def test_canonical_inputs_are_the_canonical_structures(dataset: Dataset) -> None:
    cfg = TINY.replace(atom_order="canonical")
    data = SplitTensors.build(dataset, cfg)
    canon = encode_structures(in_order(dataset.structures, "canonical"))
    rows = np.sort(data.split.train)
    np.testing.assert_array_equal(data.x_train.numpy(), canon[rows])
    assert not np.array_equal(data.x_train.numpy(), dataset.x()[rows])
    # the split itself does not depend on the atom order: trials compare on the same rows
    src = SplitTensors.build(dataset, TINY)
    np.testing.assert_array_equal(src.split.val, data.split.val)


def test_a_canonical_model_scores_the_same_renumbered(dataset: Dataset) -> None:
    cfg = TINY.replace(atom_order="canonical")
    with pytest.raises(RevstudyError, match="atom order 'source'"):
        Trainer(cfg, SplitTensors.build(dataset, TINY))
    t = fit(Trainer(cfg, SplitTensors.build(dataset, cfg)))
    for rec in t.history:
        assert rec.val_f1_macro_relabelled == rec.val_f1_macro
        assert rec.val_retrieval_mrr_relabelled == rec.val_retrieval_mrr
    m = t.evaluate("val").metrics
    for key in ("f1_macro", "f1_macro_skill", "f1_macro_128", "retrieval_mrr"):
        assert m[f"{key}_relabelled"] == m[key]


def test_a_source_model_is_scored_on_other_numberings(dataset: Dataset) -> None:
    """The relabelled figures come from another forward pass: for a source model they
    differ from its own-numbering figures, and they are computed as an independent
    evaluation of the renumbered rows would compute them."""
    from revstudy.data.numbering import relabelled
    from revstudy.training.metrics import f1_scores, forward_all
    from revstudy.training.retrieval import library_index, retrieval_metrics

    cfg = TINY.replace(epochs=3, lr=1e-2, batch_size=16)  # enough to predict some bits
    t = fit(Trainer(cfg, SplitTensors.build(dataset, cfg)))
    rec = t.history[-1]
    assert rec.val_f1_macro > 0
    assert rec.val_f1_macro_relabelled != rec.val_f1_macro
    assert rec.val_retrieval_mrr_relabelled != rec.val_retrieval_mrr
    m = t.evaluate("val").metrics
    assert all(math.isfinite(m[f"{k}_relabelled"]) for k in ("f1_macro", "retrieval_mrr"))
    # independently: renumber the library, forward, score the validation rows
    known = torch.cat([t.data.x_train, t.data.x_val])
    library, truth = library_index(known, t.data.x_val)
    moved = torch.from_numpy(relabelled(library.numpy()))
    logits = forward_all(t.model, moved)[1]
    pred = (logits[torch.from_numpy(truth)] > 0).numpy()
    f1 = f1_scores(t.data.y_val.numpy(), pred)["f1_macro"]
    assert m["f1_macro_relabelled"] == pytest.approx(f1, abs=1e-12)
    assert rec.val_f1_macro_relabelled == pytest.approx(f1, abs=1e-12)
    mrr = retrieval_metrics(logits, truth, t.data.y_val)["retrieval_mrr"]
    assert m["retrieval_mrr_relabelled"] == pytest.approx(mrr, abs=1e-12)
    assert rec.val_retrieval_mrr_relabelled == pytest.approx(mrr, abs=1e-12)


def test_relabel_changes_the_steps_and_stays_reproducible(dataset: Dataset) -> None:
    data = SplitTensors.build(dataset, TINY)
    plain = fit(Trainer(TINY.replace(epochs=1), data))
    a = fit(Trainer(TINY.replace(epochs=1, relabel=True), data))
    b = fit(Trainer(TINY.replace(epochs=1, relabel=True), data))
    assert a.history[0].train_loss == b.history[0].train_loss
    assert a.history[0].train_loss != plain.history[0].train_loss


def test_relabel_feeds_renumbered_molecules_to_the_model(
    dataset: Dataset, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What a relabelled step hands the model: the same molecules, other numberings."""
    from revstudy.data.chem import grid_to_smiles
    from revstudy.data.dataset import channels_to_grid

    seen: list[torch.Tensor] = []
    t = Trainer(TINY.replace(epochs=1, relabel=True), SplitTensors.build(dataset, TINY))
    original = t._losses

    def spy(xb: torch.Tensor, yb: torch.Tensor, epoch: int) -> torch.Tensor:
        seen.append(xb.clone())
        return original(xb, yb, epoch)

    monkeypatch.setattr(t, "_losses", spy)
    t.train_epoch()
    drawn = torch.cat(seen).numpy()
    assert len(drawn) == len(t.data.x_train)
    given = {grid_to_smiles(g) for g in channels_to_grid(t.data.x_train.numpy())}
    got = {grid_to_smiles(g) for g in channels_to_grid(drawn)}
    assert got == given
    as_given = {g.tobytes() for g in t.data.x_train.numpy()}
    assert sum(g.tobytes() not in as_given for g in drawn) > len(drawn) // 2


def test_checkpoints_of_earlier_versions_resume_without_relabelled_fields(
    dataset: Dataset,
) -> None:
    t = fit(Trainer(TINY.replace(epochs=1), SplitTensors.build(dataset, TINY)))
    state = t.state()
    for h in state["history"]:
        for key in list(h):
            if key.endswith("_relabelled"):
                del h[key]
    u = Trainer(TINY, SplitTensors.build(dataset, TINY))
    u.load_state(state)
    assert math.isnan(u.history[0].val_f1_macro_relabelled)
