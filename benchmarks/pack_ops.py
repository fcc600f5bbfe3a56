"""Operations per member-step of a pack: the CPU's honest proxy for a launch-bound GPU step.

    python benchmarks/pack_ops.py --data ../shared/data/reversibledata.csv   # ~3 min, 2 cores

A GPU step of this small network costs what its kernel launches cost (issue #31: ~70 ms on
an H200 for < 1 ms of arithmetic, 1,935 top-level ATen operations per step counted on the
CPU). A pack of K trials of one shape stepped as one vmapped ensemble
(`revstudy.training.fused.FusedRepeats`, each member with its own learning rate, weight
decay and loss weights) issues the operations of one step for all K, plus the few that draw
each member's random numbers from its own generator. This script counts, with
`torch.profiler` on the CPU, the top-level ATen operations (those not inside another ATen
operation; the backward's under autograd's events count) of one training step (batch 32,
after a warm-up step) for packs of K = 1, 2, 4, 8, 16 members of the paper's shape, and
divides by K; it also times the step on this CPU (arithmetic-bound here, so no speed-up is
expected: the count is the figure that carries to a GPU). K = 1 is a lone `Trainer` step.
Many top-level operations only make a view (reshape, permute, transpose, detach: new sizes
and strides, no kernel on a GPU), and vmap adds hundreds of them, so each row also counts
the *launching* operations: the top-level ones that are not views or bare allocations, and
the views that copy (a reshape of a permuted tensor), read from each operation's schema
(`launching_ops`; `is_view`, `launches`).
The same for one validation of every member (`count_validation`: the members' validation
libraries forwarded together, each member's own rows and figures after). Results:
results/pack_ops.json.
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from train_speed import machine_info  # noqa: E402  (one description of the machine)


def member_configs(k: int, base: Any = None) -> list[Any]:
    """K trials of `base`'s shape (default: the paper's) with their own learning settings
    and loss weights."""
    from revstudy.training.config import TrialConfig

    base = base or TrialConfig(epochs=1)
    return [
        base.replace(
            lr=1e-3 * (1 + i / k),
            weight_decay=1e-5 * i,
            lambda_density=5e-2 * (1 + i / k),
            seed=i,
        )
        for i in range(k)
    ]


def count_step(k: int, dataset: Any, threads: int, base: Any = None) -> dict[str, Any]:
    """One step of a pack of `k` members (k = 1: a lone Trainer): its top-level ATen
    operations and its time on this CPU."""
    import torch

    from revstudy.training.fused import FusedRepeats
    from revstudy.training.splits import SplitTensors
    from revstudy.training.trainer import Trainer

    torch.set_num_threads(threads)
    configs = member_configs(k, base)
    trainers = [Trainer(c, SplitTensors.build(dataset, c, 0), seed=c.seed) for c in configs]
    idx = [torch.arange(32) for _ in trainers]
    if k == 1:
        t = trainers[0]

        def step() -> None:
            xb, yb = t.data.x_train[idx[0]], t.data.y_train[idx[0]]
            losses = t._losses(xb, yb, 1)
            t.optimizer.zero_grad(set_to_none=True)
            losses[0].backward()
            t.optimizer.step()
    else:
        group = FusedRepeats(trainers)

        def step() -> None:
            losses = group._losses(idx, 1)
            group.optimizer.zero_grad(set_to_none=True)
            losses[:, 0].sum().backward()
            group.optimizer.step()

    step()  # warm-up: lazily created optimiser state, first-call paths
    ops = op_counts(step)
    start = time.perf_counter()
    for _ in range(3):
        step()
    return _counted(k, ops, (time.perf_counter() - start) / 3, "step_s")


def count_validation(k: int, dataset: Any, threads: int, base: Any = None) -> dict[str, Any]:
    """One validation of every member of a pack of `k` (k = 1: a lone Trainer's
    `validate`): its top-level ATen operations and its time on this CPU. A pack forwards
    its members' validation libraries (as numbered and renumbered) in one vmapped forward
    each (`FusedRepeats._validation_logits`) and, from `ROWS_TOGETHER_FROM` members, their
    validation rows in one vmapped forward and inverse a chunk
    (`FusedRepeats.validation_rows`); each member's loss terms and figures are its own."""
    import torch

    from revstudy.training.fused import FusedRepeats
    from revstudy.training.splits import SplitTensors
    from revstudy.training.trainer import Trainer

    torch.set_num_threads(threads)
    configs = member_configs(k, base)
    trainers = [Trainer(c, SplitTensors.build(dataset, c, 0), seed=c.seed) for c in configs]
    group = FusedRepeats(trainers) if k > 1 else None

    def validate() -> None:  # as FusedRepeats.train_epoch validates its members
        given = group._validation_logits(1) if group is not None else {}
        rows = group.validation_rows(1) if group is not None else {}
        for r, t in enumerate(trainers):
            t.given_logits, t.given_rows = given.get(r, {}), rows.get(r)
            t.validate(1)
            t.given_logits, t.given_rows = {}, None

    validate()  # warm-up: the libraries and renumbered libraries are built once
    ops = op_counts(validate)
    start = time.perf_counter()
    validate()
    return _counted(k, ops, time.perf_counter() - start, "validation_s")


def _counted(k: int, ops: tuple[int, int], seconds: float, timed: str) -> dict[str, Any]:
    """A pack of `k`'s record: its operations (top-level, launching) and seconds (`timed`),
    whole and per member."""
    top, launching = ops
    return {
        "members": k,
        "top_level_aten_ops": top,
        "ops_per_member": round(top / k, 1),
        "launching_ops": launching,
        "launching_per_member": round(launching / k, 1),
        timed: round(seconds, 3),
        f"{timed}_per_member": round(seconds / k, 3),
    }


def op_counts(fn: Callable[[], None]) -> tuple[int, int]:
    """The top-level ATen operations one call of `fn` issues and how many of them launch
    work (`launches`), from one torch.profiler trace on the CPU."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fn()
    top: list[Any] = []
    children: dict[int, list[Any]] = {}
    for e in prof.events():
        if e.name.startswith("aten::"):
            parent = _aten_parent(e)
            if parent is None:
                top.append(e)
            else:
                children.setdefault(id(parent), []).append(e)
    return len(top), sum(1 for e in top if launches(e, children))


# operations that allocate memory or answer from metadata, launching no kernel on a GPU
NO_KERNEL = frozenset(
    {
        "aten::empty",
        "aten::empty_like",
        "aten::empty_strided",
        "aten::new_empty",
        "aten::new_empty_strided",
        "aten::resize_",
        "aten::result_type",
        "aten::_unsafe_view",  # a view its schema does not mark as one (reshape's inner step)
    }
)


def launches(event: Any, children: dict[int, list[Any]]) -> bool:
    """Whether an ATen operation launches work on a GPU: not a bare allocation, and not a
    view unless one of the operations inside it does (a reshape that has to copy)."""
    if event.name in NO_KERNEL:
        return False
    if not is_view(event.name):
        return True
    return any(launches(c, children) for c in children.get(id(event), ()))


@functools.cache
def is_view(name: str) -> bool:
    """Whether ATen operation `name` ("aten::reshape") returns views of its inputs: every
    overload that returns tensors returns aliases (`Tensor(a)`, not written), by its schema.
    Overloads that return no tensor (`aten::slice.str`) do not count."""
    import torch

    packet = getattr(torch.ops.aten, name.removeprefix("aten::"), None)
    if packet is None:
        return False
    aliased = []
    for overload in packet.overloads():
        returns = getattr(packet, overload)._schema.returns
        tensors = [r for r in returns if "Tensor" in str(r.type)]
        if tensors:
            aliased.append(
                all(r.alias_info is not None and not r.alias_info.is_write for r in tensors)
            )
    return bool(aliased) and all(aliased)


def _aten_parent(event: Any) -> Any:
    """The ATen operation an event runs inside (None for a top-level one): backward
    operations sit under autograd's own events, which do not count."""
    parent = event.cpu_parent
    while parent is not None:
        if parent.name.startswith("aten::"):
            return parent
        parent = parent.cpu_parent
    return None


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True)
    p.add_argument("--members", default="1,2,4,8,16")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "pack_ops.json"))
    args = p.parse_args(argv)
    from revstudy.data.dataset import read_dataset

    dataset = read_dataset(args.data)
    sizes = [int(k) for k in args.members.split(",")]
    rows = [count_step(k, dataset, args.threads) for k in sizes]
    doc: dict[str, Any] = {"machine": machine_info(args.threads), "batch_size": 32, "packs": rows}
    for r in rows:
        print(
            f"K={r['members']:>2}: {r['top_level_aten_ops']:>5} ops a step "
            f"({r['launching_ops']} launching), {r['ops_per_member']:>7} per member "
            f"({r['launching_per_member']}), {r['step_s_per_member']:.3f} s per member"
        )
    doc["validation"] = [count_validation(k, dataset, args.threads) for k in sizes]
    Path(args.out).write_text(json.dumps(doc, indent=1) + "\n")
    for r in doc["validation"]:
        print(
            f"K={r['members']:>2}: {r['top_level_aten_ops']:>5} ops a validation "
            f"({r['launching_ops']} launching), {r['ops_per_member']:>7} per member "
            f"({r['launching_per_member']}), {r['validation_s_per_member']:.3f} s per member"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
