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
The same for one validation of every member (`count_validation`: the members' validation
libraries forwarded together, each member's own rows and figures after). Results:
results/pack_ops.json.
"""

from __future__ import annotations

import argparse
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
    ops = top_level_ops(step)
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
    ops = top_level_ops(validate)
    start = time.perf_counter()
    validate()
    return _counted(k, ops, time.perf_counter() - start, "validation_s")


def _counted(k: int, ops: int, seconds: float, timed: str) -> dict[str, Any]:
    """A pack of `k`'s record: its operations and seconds (`timed`), whole and per member."""
    return {
        "members": k,
        "top_level_aten_ops": ops,
        "ops_per_member": round(ops / k, 1),
        timed: round(seconds, 3),
        f"{timed}_per_member": round(seconds / k, 3),
    }


def top_level_ops(fn: Callable[[], None]) -> int:
    """The top-level ATen operations one call of `fn` issues (torch.profiler, CPU)."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fn()
    return sum(1 for e in prof.events() if e.name.startswith("aten::") and not _under_aten(e))


def _under_aten(event: Any) -> bool:
    """Whether an ATen operation runs inside another (then it is not a top-level one):
    backward operations sit under autograd's own events, which do not count."""
    parent = event.cpu_parent
    while parent is not None:
        if parent.name.startswith("aten::"):
            return True
        parent = parent.cpu_parent
    return False


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
    doc = {"machine": machine_info(args.threads), "batch_size": 32, "packs": rows}
    for r in rows:
        print(
            f"K={r['members']:>2}: {r['top_level_aten_ops']:>5} ops a step, "
            f"{r['ops_per_member']:>7} per member, {r['step_s_per_member']:.3f} s per member"
        )
    doc["validation"] = [count_validation(k, dataset, args.threads) for k in sizes]
    Path(args.out).write_text(json.dumps(doc, indent=1) + "\n")
    for r in doc["validation"]:
        print(
            f"K={r['members']:>2}: {r['top_level_aten_ops']:>5} ops a validation, "
            f"{r['ops_per_member']:>7} per member, {r['validation_s_per_member']:.3f} s per member"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
