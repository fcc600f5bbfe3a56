"""F1 at the paper's 128-bit resolution, whatever code size a model predicts, so trials
with different `y_dim` compare on one scale."""

from __future__ import annotations

import math

import numpy as np
import torch

from revstudy.training.metrics import bin_prior_baseline_f1, f1_scores, f1_skill

__all__ = ["PAPER_Y_DIM", "map_to_resolution", "paper_resolution_f1", "perfect_code_f1_128"]

PAPER_Y_DIM = 128  # the paper's code size: F1 is also reported at this resolution


def map_to_resolution(bits: np.ndarray, y_dim: int) -> np.ndarray:
    """[N, d] 0/1 codes at another resolution: OR-pooled when d > y_dim, each bit repeated
    over the bins it covers when d < y_dim."""
    n, d = bits.shape
    if d == y_dim:
        return bits.astype(np.uint8)
    if d > y_dim:
        return bits.reshape(n, y_dim, d // y_dim).max(axis=2).astype(np.uint8)
    return np.repeat(bits, y_dim // d, axis=1).astype(np.uint8)


def paper_resolution_f1(
    logits: torch.Tensor, truth128: np.ndarray, train128: np.ndarray | None, seed: int
) -> dict[str, float]:
    """Macro F1 against the 128-bit codes, whatever `y_dim` the model predicts (a finer
    prediction OR-pooled, a coarser bit claiming every 128-bit bin it covers, so a coarse
    code pays for its lack of resolution), and its skill over the bin prior of `train128`
    (training codes or per-bin rates; NaN when unknown)."""
    pred = map_to_resolution((logits > 0).cpu().numpy(), PAPER_Y_DIM)
    f1 = f1_scores(truth128, pred)["f1_macro"]
    skill = math.nan
    if train128 is not None:
        skill = f1_skill(f1, bin_prior_baseline_f1(truth128, train128, seed))
    return {
        "f1_macro_128": f1,
        "f1_macro_skill_128": skill,
        "f1_macro_128_ceiling": perfect_code_f1_128(truth128, int(logits.shape[1])),
    }


def perfect_code_f1_128(truth128: np.ndarray, y_dim: int) -> float:
    """The macro F1 at 128 bits of a perfect `y_dim`-bit prediction: what the code size
    allows at best on these rows. A coarser code claims every 128-bit bin its bit covers;
    any code scores 0 on bins without a positive (macro F1 averages over all 128), so even
    a perfect 128-bit code stays below 1 (≈ 0.37 / 0.56 / 0.82 for 32 / 64 / 128 bits on
    the shared data's validation rows)."""
    perfect = truth128
    if y_dim < PAPER_Y_DIM:
        perfect = map_to_resolution(map_to_resolution(truth128, y_dim), PAPER_Y_DIM)
    return float(f1_scores(truth128, perfect)["f1_macro"])
