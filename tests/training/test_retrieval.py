"""Retrieval ranks: hand-checked ties, the random expectation, and agreement with
`revstudy.data.codes.code_match_many` (the score elucidation ranks by)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from revstudy.data.codes import code_match_many
from revstudy.data.dataset import read_dataset
from revstudy.training.config import TrialConfig
from revstudy.training.retrieval import _match_matrix, library_index, rank_stats, retrieval_metrics
from revstudy.training.splits import SplitTensors
from revstudy.training.trainer import Trainer, fit


def test_ties_count_as_every_rank_they_span() -> None:
    scores = np.array([[0.9, 0.5, 0.5], [0.1, 0.2, 0.3]])
    s = rank_stats(scores, np.array([1, 2]))
    # query 0: one better, tied with one → rank 2 or 3; query 1: rank 1
    assert s["retrieval_top1"] == pytest.approx(0.5)
    assert s["retrieval_top10"] == pytest.approx(1.0)
    assert s["retrieval_mrr"] == pytest.approx(((1 / 2 + 1 / 3) / 2 + 1) / 2)
    assert s["retrieval_library"] == 3


def test_an_uninformative_score_scores_the_random_expectation() -> None:
    n = 50
    s = rank_stats(np.zeros((7, n)), np.arange(7))
    assert s["retrieval_top1"] == pytest.approx(s["retrieval_top1_random"]) == pytest.approx(1 / n)
    assert s["retrieval_top10"] == pytest.approx(10 / n)
    assert s["retrieval_mrr"] == pytest.approx(s["retrieval_mrr_random"])


def test_match_matrix_is_code_match_row_by_row() -> None:
    rng = np.random.default_rng(0)
    pred = rng.random((30, 64)) < 0.08
    query = rng.random((5, 64)) < 0.08
    m = _match_matrix(pred, query)
    for i in range(5):
        assert m[i] == pytest.approx(code_match_many(pred, query[i], tolerance=1))


def test_library_index_dedupes_and_points_at_the_truth() -> None:
    a, b, c = (torch.full((1, 4, 16, 16), float(v)) for v in (0, 1, 2))
    lib, truth = library_index(torch.cat([a, b, b]), torch.cat([b, c]))
    assert len(lib) == 3  # a, b, c: the duplicate b once, c added as it was missing
    assert torch.equal(lib[truth[0]], b[0]) and torch.equal(lib[truth[1]], c[0])
    assert np.isnan(retrieval_metrics(torch.zeros(0, 8), truth, torch.zeros(0, 8))["retrieval_mrr"])


def test_trainer_reports_retrieval_each_epoch_and_at_the_end(synthetic_csv: Path) -> None:
    torch.set_num_threads(1)
    cfg = TrialConfig(blocks=(1, 1, 1, 1, 1), hidden_ratio=0.25, epochs=2, cd_draws=1)
    t = fit(Trainer(cfg, SplitTensors.build(read_dataset(synthetic_csv), cfg)))
    assert all(0 < h.val_retrieval_mrr <= 1 for h in t.history)
    m = t.evaluate("val").metrics
    assert 0 < m["retrieval_mrr"] <= 1 and 0 <= m["retrieval_top10"] <= 1
    assert m["retrieval_mrr"] == pytest.approx(t.history[-1].val_retrieval_mrr)
    assert m["retrieval_top1_random"] == pytest.approx(1 / m["retrieval_library"])


def test_equal_scores_through_different_fractions_are_ties() -> None:
    """Issue #22: F1 = 0.5 from P = 1/3, R = 1 and from P = R = 1/2 must tie exactly, and the
    score is the F1 an independent computation gives."""
    from revstudy.training.retrieval import _match_matrix

    rng = np.random.default_rng(0)
    pred = (rng.random((400, 32)) < 0.15).astype(np.float32)
    query = (rng.random((60, 32)) < 0.15).astype(np.float32)
    m = _match_matrix(pred, query)
    # independently, in exact fractions
    from fractions import Fraction

    from revstudy.data.codes import dilate_bits

    p, q = pred > 0.5, query > 0.5
    pd_, qd = dilate_bits(p, 1), dilate_bits(q, 1)
    exact: dict[Fraction, set[float]] = {}
    for i in range(len(q)):
        for j in range(len(p)):
            if not p[j].any() or not q[i].any():
                continue
            prec = Fraction(int((qd[i] & p[j]).sum()), int(p[j].sum()))
            rec = Fraction(int((q[i] & pd_[j]).sum()), int(q[i].sum()))
            f1 = 2 * prec * rec / (prec + rec) if prec + rec else Fraction(0)
            assert m[i, j] == pytest.approx(float(f1), abs=1e-12)
            exact.setdefault(f1, set()).add(float(m[i, j]))
    assert all(len(v) == 1 for v in exact.values())  # one float per exact value: ties tie
    assert len(exact) > 10
