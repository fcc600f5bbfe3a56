"""Spectrum codes compared with a tolerance: a set bit matches one within a few bins, so a
shift predicted one bin off still counts (used by retrieval ranking and elucidation)."""

from __future__ import annotations

import numpy as np

__all__ = ["code_match", "code_match_many", "dilate_bits"]


def code_match(predicted: np.ndarray, query: np.ndarray, tolerance: int = 1) -> float:
    """F1 between two bit codes where a set bit matches one within `tolerance` bins.

    Precision: share of predicted bits near a query bit; recall: share of query bits near a
    predicted bit. 1 for identical codes, 0 when nothing is close (or either code is empty).
    """
    p = np.flatnonzero(np.asarray(predicted) > 0.5)
    q = np.flatnonzero(np.asarray(query) > 0.5)
    if len(p) == 0 or len(q) == 0:
        return 0.0
    dist = np.abs(p[:, None] - q[None, :])
    precision = float((dist.min(axis=1) <= tolerance).mean())
    recall = float((dist.min(axis=0) <= tolerance).mean())
    if precision + recall == 0:
        return 0.0
    return 2 * precision * recall / (precision + recall)


def dilate_bits(bits: np.ndarray, tolerance: int) -> np.ndarray:
    """Set every bit within `tolerance` positions of a set bit (last axis)."""
    out = bits.copy()
    for shift in range(1, tolerance + 1):
        out[..., shift:] |= bits[..., :-shift]
        out[..., :-shift] |= bits[..., shift:]
    return out


def code_match_many(codes: np.ndarray, query: np.ndarray, tolerance: int = 1) -> np.ndarray:
    """`code_match` of each row of `codes` [n, d] against one query [d], vectorised."""
    c = np.asarray(codes) > 0.5
    q = np.asarray(query) > 0.5
    n_c, n_q = c.sum(axis=1), int(q.sum())
    if n_q == 0 or len(c) == 0:
        return np.zeros(len(c))
    precision = (c & dilate_bits(q, tolerance)).sum(axis=1) / np.maximum(n_c, 1)
    recall = (dilate_bits(c, tolerance) & q).sum(axis=1) / n_q
    total = precision + recall
    f1 = np.where(total > 0, 2 * precision * recall / np.where(total > 0, total, 1), 0.0)
    return np.where(n_c > 0, f1, 0.0)
