"""Retrieval: does the forward model identify a molecule from its spectrum?

For each evaluation spectrum, every distinct structure of a library (the split's training
and validation structures) is ranked by how well its *forward-predicted* code matches the
spectrum's observed code; the metric is where the true structure lands. This is what users
run these studies for, and unlike F1 it means the same at every `y_dim`: a coarse code
predicts its bits easily but separates fewer molecules.

Match score: F1 between the predicted and observed code with a one-bin tolerance (as
`revstudy.data.codes.code_match`). Ties are broken at random in expectation: a true
structure tied with t others at score s, below g better ones, counts as each rank
g+1 … g+t+1 with equal probability, so ties never flatter a model.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from revstudy.data.codes import dilate_bits, tolerant_f1

__all__ = ["RETRIEVAL_KS", "library_index", "rank_stats", "retrieval_metrics"]

RETRIEVAL_KS = (1, 10)


def library_index(x_library: torch.Tensor, x_eval: torch.Tensor) -> tuple[torch.Tensor, np.ndarray]:
    """(distinct library structures, index of each evaluation structure among them).

    The evaluation structures are added to the library when missing, so the answer is
    always in it (retrieval is then an upper bound of what a real library gives)."""
    both = torch.cat([x_library, x_eval]).reshape(len(x_library) + len(x_eval), -1)
    uniq, inverse = torch.unique(both, dim=0, return_inverse=True)
    lib = uniq.reshape(len(uniq), *x_library.shape[1:])
    return lib, inverse[len(x_library) :].cpu().numpy()


def _match_matrix(pred: np.ndarray, query: np.ndarray, tolerance: int = 1) -> np.ndarray:
    """F1 with tolerance of every predicted code [L, d] against every query code [Q, d] →
    [Q, L]."""
    p = pred > 0.5
    q = query > 0.5
    p_dil, q_dil = dilate_bits(p, tolerance), dilate_bits(q, tolerance)
    n_p = p.sum(axis=1).astype(np.int64)  # [L]
    n_q = q.sum(axis=1).astype(np.int64)  # [Q]
    # counts, exact in float32 up to 2^24 bits, then integers for `tolerant_f1`
    hit_p = (q_dil.astype(np.float32) @ p.T.astype(np.float32)).astype(np.int64)  # near a peak
    hit_q = (q.astype(np.float32) @ p_dil.T.astype(np.float32)).astype(np.int64)  # peaks found
    return tolerant_f1(hit_p, hit_q, n_p[None, :], n_q[:, None])


def rank_stats(scores: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """Expected top-k hit rates and mean reciprocal rank of the true columns of `scores`
    [Q, L] under random tie-breaking, and the same for a random ranking."""
    q, n_lib = scores.shape
    true_score = scores[np.arange(q), truth][:, None]
    better = (scores > true_score).sum(axis=1)  # g
    tied = (scores == true_score).sum(axis=1)  # t + 1 (the truth itself included)
    out: dict[str, float] = {}
    for k in RETRIEVAL_KS:
        hit = np.clip((k - better) / tied, 0.0, 1.0)
        out[f"retrieval_top{k}"] = float(hit.mean())
        out[f"retrieval_top{k}_random"] = min(1.0, k / n_lib)
    harmonic = np.concatenate([[0.0], np.cumsum(1.0 / np.arange(1, n_lib + 1))])
    rr = (harmonic[better + tied] - harmonic[better]) / tied  # mean of 1/r over tied ranks
    out["retrieval_mrr"] = float(rr.mean())
    out["retrieval_mrr_random"] = float(harmonic[n_lib] / n_lib)
    out["retrieval_library"] = float(n_lib)
    return out


def retrieval_metrics(
    predict_codes: torch.Tensor, library_truth: np.ndarray, query_codes: torch.Tensor
) -> dict[str, float]:
    """Rank statistics from the library's predicted codes [L, d] (as 0/1 or logits > 0),
    the library index of each query's structure, and the queries' observed codes [Q, d]."""
    if len(query_codes) == 0 or len(predict_codes) == 0:
        return {"retrieval_mrr": math.nan}
    pred = (predict_codes > 0).cpu().numpy()
    query = (query_codes > 0.5).cpu().numpy()
    return rank_stats(_match_matrix(pred, query), library_truth)
