"""Spectrum codes compared with a tolerance: a set bit matches one within a few bins, so a
shift predicted one bin off still counts (used by retrieval ranking and elucidation)."""

from __future__ import annotations

import numpy as np

__all__ = ["code_match", "code_match_many", "dilate_bits", "tolerant_f1"]


def tolerant_f1(
    hit_p: np.ndarray, hit_q: np.ndarray, n_p: np.ndarray, n_q: np.ndarray
) -> np.ndarray:
    """F1 from integer counts: predicted bits near a query bit (`hit_p`) of `n_p`, query
    bits near a predicted bit (`hit_q`) of `n_q`; 0 where either code is empty.

    F1 = 2PR / (P + R) with P = hit_p / n_p and R = hit_q / n_q is computed as one ratio of
    integers, 2·hit_p·hit_q / (hit_p·n_q + hit_q·n_p), so equal scores reached through
    different fractions (P = 1/3, R = 1 against P = R = 1/2) are the same float and rank as
    ties; a quotient of floating-point fractions differed by round-off."""
    hp, hq = np.asarray(hit_p, np.int64), np.asarray(hit_q, np.int64)
    np_, nq = np.asarray(n_p, np.int64), np.asarray(n_q, np.int64)
    num = 2 * hp * hq
    den = hp * nq + hq * np_
    f1 = np.where(den > 0, num / np.where(den > 0, den, 1), 0.0)
    return np.where((np_ > 0) & (nq > 0), f1, 0.0)


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
    hit_p = int((dist.min(axis=1) <= tolerance).sum())
    hit_q = int((dist.min(axis=0) <= tolerance).sum())
    return float(tolerant_f1(np.array(hit_p), np.array(hit_q), np.array(len(p)), np.array(len(q))))


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
    hit_p = (c & dilate_bits(q, tolerance)).sum(axis=1)
    hit_q = (dilate_bits(c, tolerance) & q).sum(axis=1)
    return tolerant_f1(hit_p, hit_q, n_c, np.full(len(c), n_q))
