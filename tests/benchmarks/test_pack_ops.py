"""benchmarks/pack_ops.py: a pack's step issues one step's operations for all its members
(issue #31: operation counts are the CPU's proxy for a launch-bound GPU step)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from revstudy.data.dataset import read_dataset
from revstudy.training.config import TrialConfig

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "benchmarks"))

import pack_ops  # noqa: E402

TINY = TrialConfig(blocks=(1, 1, 1, 1, 1), hidden_ratio=0.25, epochs=1, cd_draws=1)


def _counts(count: Callable[..., dict[str, Any]], csv: Path) -> dict[int, dict[str, Any]]:
    """`count` (a pack_ops counter) for packs of 1, 2 and 4 tiny members, on one thread
    (the torch thread count is put back after)."""
    ds = read_dataset(csv)
    threads = torch.get_num_threads()
    try:
        return {k: count(k, ds, 1, TINY) for k in (1, 2, 4)}
    finally:
        torch.set_num_threads(threads)


def test_a_packs_step_costs_the_operations_of_one_step(synthetic_csv: Path) -> None:
    """Counted, not timed: the count is deterministic for one torch version. Doubling the
    members adds only their own random draws; per member the count halves."""
    counts = _counts(pack_ops.count_step, synthetic_csv)
    ops = {k: c["top_level_aten_ops"] for k, c in counts.items()}
    assert ops[4] - ops[2] <= 8, ops  # measured: +2 (two more members' noise draws)
    assert ops[4] < 2 * ops[1], ops  # four trials for less than two lone steps
    assert counts[4]["ops_per_member"] == round(ops[4] / 4, 1)


def test_a_packs_validation_forwards_the_libraries_once_for_all_members(
    synthetic_csv: Path,
) -> None:
    """The library forwards are shared, and from `ROWS_TOGETHER_FROM` (4) members their
    validation rows' forwards and inverses too; each member's loss terms and figures are
    its own: per member a pack's validation issues fewer operations the more members it
    has, and every added member costs less than a lone validation."""
    counts = _counts(pack_ops.count_validation, synthetic_csv)
    ops = {k: c["top_level_aten_ops"] for k, c in counts.items()}
    assert ops[4] / 4 < ops[2] / 2 < ops[1], ops  # measured: 371, 345, 273 per member
    assert ops[4] - ops[2] < 2 * ops[1], ops
    assert counts[4]["ops_per_member"] == round(ops[4] / 4, 1)
