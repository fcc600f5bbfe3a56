"""benchmarks/pack_ops.py: a pack's step issues one step's operations for all its members
(issue #31: operation counts are the CPU's proxy for a launch-bound GPU step)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from revstudy.data.dataset import read_dataset
from revstudy.training.config import TrialConfig
from tests.conftest import synthetic_rows, write_csv

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


@pytest.fixture(scope="module")
def step_counts(tmp_path_factory: pytest.TempPathFactory) -> dict[int, dict[str, Any]]:
    """`pack_ops.count_step` for packs of 1, 2 and 4 tiny members, counted once for the
    tests below."""
    csv = write_csv(tmp_path_factory.mktemp("pack_ops") / "synthetic.csv", synthetic_rows(60))
    return _counts(pack_ops.count_step, csv)


def test_a_packs_step_costs_the_operations_of_one_step(
    step_counts: dict[int, dict[str, Any]],
) -> None:
    """Counted, not timed: the count is deterministic for one torch version. Doubling the
    members adds only their own random draws; per member the count halves."""
    counts = step_counts
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


def test_views_are_told_from_operations_that_launch_work() -> None:
    """Independent facts about ATen: these return views of their input (new sizes and
    strides over the same storage), those compute or copy."""
    for name in ("aten::reshape", "aten::permute", "aten::t", "aten::detach", "aten::narrow"):
        assert pack_ops.is_view(name), name
    for name in ("aten::add", "aten::add_", "aten::conv2d", "aten::copy_", "aten::cat"):
        assert not pack_ops.is_view(name), name
    assert pack_ops.is_view("aten::slice")  # its `slice.str` overload returns no tensor


def test_launching_operations_count_copies_not_views() -> None:
    """A reshape of a contiguous tensor only views it; of a permuted one it copies, as
    `data_ptr` confirms independently of the profiler."""
    x = torch.randn(4, 6)
    views = x.reshape(6, 4)
    copied = x.t().reshape(24)
    assert views.data_ptr() == x.data_ptr() and copied.data_ptr() != x.data_ptr()

    def only_views() -> None:
        x.reshape(6, 4).t().detach()

    def copies() -> None:
        x.t().reshape(24).add(1)

    assert pack_ops.op_counts(only_views) == (3, 0)
    assert pack_ops.op_counts(copies) == (3, 2)  # the copying reshape and the add


def test_a_packs_extra_operations_are_mostly_views(step_counts: dict[int, dict[str, Any]]) -> None:
    """vmap reshapes and permutes around every layer; those launch nothing, so a pack's
    step launches only a little more than a lone step does."""
    counts = step_counts
    for c in counts.values():
        assert 0 < c["launching_ops"] < c["top_level_aten_ops"], c
    launching = {k: c["launching_ops"] for k, c in counts.items()}
    top = {k: c["top_level_aten_ops"] for k, c in counts.items()}
    assert launching[4] - launching[1] < (top[4] - top[1]) / 2, (launching, top)
    assert counts[4]["launching_per_member"] == round(launching[4] / 4, 1)
