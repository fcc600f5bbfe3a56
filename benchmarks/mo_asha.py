"""MO-ASHA against running every trial to the end (issue #33, item 5).

    python benchmarks/mo_asha.py --data FILE [--space quick] [--samples 16] [--seeds 0 1 2]
        [--objectives f1_macro_skill_relabelled:max,retrieval_mrr_relabelled:max]
        [--out benchmarks/results/mo_asha.json]

For each seed: one two-objective study with `--scheduler asha` (MO-ASHA) and one with
`--scheduler none` (every trial to its last epoch), TPE, no paper baseline, `--samples`
trials each. Recorded: trial-epochs trained (epochs_done summed over trials) and the
hypervolume of the Pareto front of the completed trials' final values, against the
reference point (0, 0): chance skill and a reciprocal rank of 0, so the volume counts only
what beats chance. Issue #33's target: MO-ASHA reaches >= 95 % of the full runs'
hypervolume for <= 60 % of their epochs (means over seeds). The JSON is rewritten after
every study.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from revstudy.studyfolder import Objective, parse_objective, rank_finished  # noqa: E402
from revstudy.trialtable import load_trials  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", required=True, help="the data CSV")
    p.add_argument("--space", default="quick")
    p.add_argument("--samples", type=int, default=16)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument(
        "--objectives", default="f1_macro_skill_relabelled:max,retrieval_mrr_relabelled:max"
    )
    p.add_argument("--timeout-s", type=float, default=3600, help="per study")
    p.add_argument("--out", default=str(REPO / "benchmarks/results/mo_asha.json"))
    p.add_argument("--workdir", default=None, help="keep the studies here (default: a temp dir)")
    return p.parse_args(argv)


def hypervolume_2d(points: np.ndarray, reference: tuple[float, float]) -> float:
    """Area dominated by `points` (two objectives, both maximised) above `reference`;
    points not better than the reference in both add nothing."""
    ref = np.asarray(reference, dtype=float)
    pts = np.asarray(points, dtype=float).reshape(-1, 2)
    pts = pts[(pts > ref).all(axis=1)]
    if not len(pts):
        return 0.0
    pts = pts[np.argsort(-pts[:, 0], kind="stable")]  # by the first objective, best first
    area, best_y = 0.0, ref[1]
    for x, y in pts:
        if y > best_y:
            area += (x - ref[0]) * (y - best_y)
            best_y = y
    return float(area)


def front_values(table: pd.DataFrame, objectives: list[Objective]) -> np.ndarray:
    """The final values (signed to maximise) of the ranked trials' Pareto front."""
    ranked = rank_finished(table, objectives)
    front = ranked[ranked["front"] == 0]
    return np.column_stack([front[o.metric].to_numpy(float) * o.sign for o in objectives])


def run_study(
    args: argparse.Namespace, storage: Path, name: str, seed: int, scheduler: str
) -> dict[str, Any]:
    cmd = [
        sys.executable, "-m", "revstudy.cli", "launch", "--space", args.space,
        "--data", args.data, "--storage", str(storage), "--name", name,
        "--num-samples", str(args.samples), "--seed", str(seed), "--sampler", "tpe",
        "--scheduler", scheduler, "--no-baseline", "--objectives", args.objectives,
    ]  # fmt: skip
    t0 = time.time()
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout_s, cwd=REPO)
    wall = time.time() - t0
    if res.returncode != 0:
        return {"name": name, "error": res.stderr.strip().splitlines()[-2:], "wall_s": wall}
    objectives = [parse_objective(o) for o in args.objectives.split(",")]
    table = load_trials(storage / name)
    front = front_values(table, objectives)
    return {
        "name": name,
        "seed": seed,
        "scheduler": scheduler,
        "wall_s": round(wall, 1),
        "by_state": {str(k): int(v) for k, v in table["state"].value_counts().items()},
        "trial_epochs": int(pd.to_numeric(table["epochs_done"]).sum()),
        "front": front.tolist(),
        "hypervolume": hypervolume_2d(front, (0.0, 0.0)),
    }


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Per seed and on average: MO-ASHA's hypervolume and epochs as shares of the full
    runs', and whether issue #33's target (>= 95 % for <= 60 %) is met on average."""
    by = {(r["seed"], r["scheduler"]): r for r in runs if "error" not in r}
    pairs = []
    for seed in sorted({s for s, _ in by}):
        asha, full = by.get((seed, "asha")), by.get((seed, "none"))
        if asha and full and full["hypervolume"] > 0 and full["trial_epochs"] > 0:
            pairs.append(
                {
                    "seed": seed,
                    "hypervolume_share": round(asha["hypervolume"] / full["hypervolume"], 4),
                    "epoch_share": round(asha["trial_epochs"] / full["trial_epochs"], 4),
                }
            )
    if not pairs:
        return {"pairs": []}
    hv = float(np.mean([p["hypervolume_share"] for p in pairs]))
    ep = float(np.mean([p["epoch_share"] for p in pairs]))
    return {
        "pairs": pairs,
        "mean_hypervolume_share": round(hv, 4),
        "mean_epoch_share": round(ep, 4),
        "target_met": hv >= 0.95 and ep <= 0.60,
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    out = Path(args.out)
    doc: dict[str, Any] = {
        "conditions": {
            "space": args.space,
            "samples": args.samples,
            "seeds": args.seeds,
            "objectives": args.objectives,
            "sampler": "tpe",
            "reference_point": [0.0, 0.0],
            "machine": platform.processor() or platform.machine(),
            "cpus": os.cpu_count(),
            "data": str(args.data),
            "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
        },
        "runs": [],
    }
    with contextlib.ExitStack() as stack:
        work = Path(args.workdir or stack.enter_context(tempfile.TemporaryDirectory(prefix="mo-")))
        for seed in args.seeds:
            for scheduler in ("asha", "none"):
                print(f"mo_asha: seed {seed}, scheduler {scheduler} …", file=sys.stderr, flush=True)
                doc["runs"].append(run_study(args, work, f"{scheduler}-{seed}", seed, scheduler))
                doc["summary"] = summarise(doc["runs"])
                out.parent.mkdir(parents=True, exist_ok=True)
                out.write_text(json.dumps(doc, indent=1) + "\n")
    print(json.dumps(doc["summary"], indent=1))
    return 0 if all("error" not in r for r in doc["runs"]) else 1


if __name__ == "__main__":
    sys.exit(main())
