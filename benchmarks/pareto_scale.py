"""Ranking several objectives, and ASHA's rungs, at 10⁴ trials: before and after.

    python benchmarks/pareto_scale.py [--sizes 300 1000 3000 10000] [--before-max 3000]
        [--replay-before-max 300] [--out benchmarks/results/pareto_scale.json]

Every reader of a multi-objective study ranks its trials by non-dominated sorting
(`revstudy.studyfolder.pareto_fronts`: `status`, `report`, `export`, the run's summary), and
MO-ASHA sorts a rung at each of its decisions (`revstudy.study.scheduling.rung_keeps`). On
resume, ASHA's rungs are refilled by replaying every earlier trial's epochs
(`SeededASHA.seed`). Timed for N trials, each with random values (the front count of random
points grows like √N, as a long study's does):

- `fronts`: `pareto_fronts` of N points, 2 and 3 objectives; `fronts_before` the pairwise
  peeling it replaced (kept here, identical answers checked), up to `--before-max` points.
- `rank_finished`: the study's ranking of an N-row trials table with two objectives.
- `decision`: one MO-ASHA decision at a rung that holds N results (2 objectives).
- `replay`: refilling the rungs of the quick space's scheduler (rungs at epoch 2, 5 epochs)
  from N trials with 5 epochs each, one and two objectives; `replay_before` by Ray's own
  `_Bracket.on_result`, which also computes each replayed result's decision, with the
  sort it used then for two objectives (up to `--replay-before-max` trials: each decision
  sorts the rung, so this grows with the cube of N).

The fastest of 5 calls for each of today's operations, one timing for each before-figure
and each replay; results are written after every size.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from driver_bookkeeping import record, start_record  # noqa: E402  (one record format)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[300, 1000, 3000, 10000])
    p.add_argument("--before-max", type=int, default=3000, help="largest N timed the old way")
    p.add_argument("--replay-before-max", type=int, default=300, help="… for MO replays")
    p.add_argument("--out", default=str(REPO / "benchmarks/results/pareto_scale.json"))
    return p.parse_args(argv)


def fronts_before(values: np.ndarray, top: int | None = None) -> np.ndarray:
    """The sort `pareto_fronts` used until 2026-12-07: each remaining point checked against
    every other, front by front, every front sorted (`top` did not exist)."""
    front = np.full(len(values), -1)
    level = 0
    while (front < 0).any():
        left = np.flatnonzero(front < 0)
        others = values[left]
        for i in left:
            if not ((others >= values[i]).all(1) & (others > values[i]).any(1)).any():
                front[i] = level
        level += 1
    return front


def timed(fn: Any, *args: Any, repeat: int = 5) -> tuple[float, Any]:
    """(the fastest of `repeat` calls' seconds, the answer)."""
    best, out = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        out = fn(*args)
        best = min(best, time.perf_counter() - start)
    return best, out


def replay_seconds(n: int, objectives: int, by_ray: bool, rng: np.random.Generator) -> float:
    """Refill the quick space's rungs from `n` trials of 5 epochs; `by_ray`: the way
    before, Ray's method with its decisions (MO-ASHA's with the sort of then)."""
    from revstudy.study import scheduling
    from revstudy.study.scheduling import make_scheduler
    from revstudy.studyinfo import StudyInfo

    metrics = ["f1_macro_skill_relabelled", "retrieval_mrr_relabelled"][:objectives]
    info = StudyInfo.from_dict(
        {
            "name": "s",
            "scheduler": "asha",
            "objectives": [{"metric": m, "mode": "max"} for m in metrics],
        }
    )
    asha = make_scheduler(info, 5)[1]
    assert asha is not None
    history = {
        f"t{i}": [(e, tuple(rng.normal(size=objectives))) for e in range(1, 6)] for i in range(n)
    }
    sort = scheduling.pareto_fronts
    scheduling.pareto_fronts = fronts_before if by_ray else sort
    start = time.perf_counter()
    for tid, values in history.items():
        if by_ray:
            for epoch, vector in values:
                trial: Any = SimpleNamespace(trial_id=tid)  # _Bracket reads trial_id only
                asha._brackets[0].on_result(trial, epoch, asha._reward(vector))
        else:
            asha.seed(tid, values)
    seconds = time.perf_counter() - start
    scheduling.pareto_fronts = sort
    return seconds


def measure(n: int, before_max: int, replay_before_max: int) -> dict[str, Any]:
    from revstudy.study.scheduling import rung_keeps
    from revstudy.studyfolder import Objective, pareto_fronts, rank_finished

    rng = np.random.default_rng(n)
    row: dict[str, Any] = {"trials": n}
    for k in (2, 3):
        values = rng.normal(size=(n, k))
        seconds, fronts = timed(pareto_fronts, values)
        row[f"fronts_{k}obj_s"] = round(seconds, 4)
        row[f"fronts_{k}obj_count"] = int(fronts.max()) + 1
        if n <= before_max:
            seconds, old = timed(fronts_before, values, repeat=1)
            row[f"fronts_before_{k}obj_s"] = round(seconds, 3)
            row[f"fronts_{k}obj_identical"] = bool((old == fronts).all())
    table = pd.DataFrame(
        {
            "trial_id": [f"t{i}" for i in range(n)],
            "state": rng.choice(["COMPLETED", "STOPPED_EARLY"], size=n, p=[0.3, 0.7]),
            "f1": rng.normal(size=n),
            "inv": rng.lognormal(size=n),
        }
    )
    objectives = [Objective("f1", "max"), Objective("inv", "min")]
    row["rank_finished_2obj_s"] = round(timed(rank_finished, table, objectives)[0], 4)
    recorded = list(rng.normal(size=(n, 2)))
    row["decision_2obj_s"] = round(timed(rung_keeps, recorded, rng.normal(size=2), 3)[0], 4)
    for k in (1, 2):
        row[f"replay_{k}obj_s"] = round(replay_seconds(n, k, False, rng), 3)
        if k == 1 or n <= replay_before_max:
            row[f"replay_before_{k}obj_s"] = round(replay_seconds(n, k, True, rng), 3)
    return row


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    doc = start_record(values="standard normal, seeded by N", rungs="quick space: epoch 2")
    for n in args.sizes:
        record(doc, measure(n, args.before_max, args.replay_before_max), Path(args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
