"""Comparing two ways of training the same repeats without measuring the CPU's kernels.

Training amplifies round-off: in float32 the fused ensemble and the one-by-one repeats end
two epochs 2e-4 apart (relative L2 of the weights) on one CPU and 1e-3 on another, because
Adam turns a gradient that is pure round-off into a ±lr step whichever way the round-off
falls. So a float32 tolerance after several steps measures the CPU, not the code.

In float64 the same arithmetic rounds at 1e-16: after the same two epochs the two ways
agree to ~1e-15 (measured: 1.5e-16 to 5.5e-16 on an Intel Xeon with AVX-512), while a
change of one part in a million of the learning rate moves the weights 1.2e-7. `TOLERANCE`
sits between the two, six orders above the measured agreement, so it holds on any CPU and
still fails for any difference in what the two ways compute. What must be exact is compared
exactly: every repeat's random generator (batch order, noise, renumbering, MMD draws) ends
in the same state.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch

from revstudy.training.splits import SplitTensors
from revstudy.training.trainer import Trainer

TOLERANCE = 1e-9  # float64: measured agreement ~1e-15; a 1e-6 change of lr moves 1e-7
_TENSORS = ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test")


@contextmanager
def default_float64() -> Iterator[None]:
    """Models, noise and losses built inside are float64 (torch's default dtype)."""
    before = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        yield
    finally:
        torch.set_default_dtype(before)


def as_float64(data: SplitTensors) -> SplitTensors:
    """The split with float64 structures and codes (0/1 values: exact in both)."""
    fields = {name: getattr(data, name).double() for name in _TENSORS}
    y128 = {k: v.double() for k, v in data.y128.items()}
    return dataclasses.replace(data, **fields, y128=y128)


def weight_gap(a: Sequence[Trainer], b: Sequence[Trainer]) -> float:
    """‖a − b‖ / ‖b‖ over every weight of every repeat."""
    num = den = 0.0
    for ta, tb in zip(a, b, strict=True):
        for p, q in zip(ta.model.parameters(), tb.model.parameters(), strict=True):
            num += float(((p.detach() - q.detach()) ** 2).sum())
            den += float((q.detach() ** 2).sum())
    return (num / den) ** 0.5


def assert_same_runs(a: Sequence[Trainer], b: Sequence[Trainer]) -> None:
    """Two float64 runs of the same repeats: same generator states, same per-epoch losses
    and weights up to `TOLERANCE`."""
    for ta, tb in zip(a, b, strict=True):
        assert next(ta.model.parameters()).dtype == torch.float64, "compare float64 runs"
        assert torch.equal(ta.gen.get_state(), tb.gen.get_state()), "generator streams differ"
        assert len(ta.history) == len(tb.history)
        for ra, rb in zip(ta.history, tb.history, strict=True):
            for key in ("train_loss", "train_loss_y", "train_loss_x", "train_loss_latent"):
                assert abs(getattr(ra, key) - getattr(rb, key)) <= TOLERANCE, key
            for key in ("val_loss", "val_f1_macro", "val_retrieval_mrr",
                        "val_f1_macro_relabelled", "val_retrieval_mrr_relabelled"):  # fmt: skip
                va, vb = getattr(ra, key), getattr(rb, key)
                skipped = math.isnan(va) and math.isnan(vb)  # an epoch `val_every` skips
                assert skipped or abs(va - vb) <= TOLERANCE, key
    gap = weight_gap(a, b)
    assert gap <= TOLERANCE, f"weights {gap:.3g} apart (relative L2)"
