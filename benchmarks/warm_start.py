"""Does `--warm-start` find good trials sooner? (issue #33, item 5)

    python benchmarks/warm_start.py --data FILE [--space quick] [--samples 16]
        [--seeds 0 1 2] [--out benchmarks/results/warm_start.json]

For each seed s: a cold study (`--seed s`) and a warm one (`--seed s --warm-start` the cold
study of the next seed). Warm and cold of one seed share their validation splits (the study
seed draws them), so they are compared on the same molecules; the warm study's history was
measured on another seed's splits, as a user's study of yesterday was. Every study: TPE, no
paper baseline, no early stopping (every trial runs its epochs), `--samples` trials.

Recorded per study: the best objective among its first 4, 8 and 16 trials (Optuna number
order, the order the sampler proposed them; ranked as `revstudy status` ranks), and for each
warm study the trials it needed to reach its cold twin's best of all `--samples` trials.
Issue #33's target: at most half the trials. The JSON is rewritten after every study. With
`--workdir` kept, a study already there is resumed (finished if it was interrupted, else
reused as it is), and the figures are read from it.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from revstudy.studyfolder import Objective, rank_finished  # noqa: E402
from revstudy.trialtable import load_trials  # noqa: E402

CHECKPOINTS = (4, 8, 16)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", required=True, help="the data CSV")
    p.add_argument("--space", default="quick")
    p.add_argument("--samples", type=int, default=16)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--timeout-s", type=float, default=3600, help="per study")
    p.add_argument("--out", default=str(REPO / "benchmarks/results/warm_start.json"))
    p.add_argument("--workdir", default=None, help="keep the studies here (default: a temp dir)")
    return p.parse_args(argv)


def best_after(table: pd.DataFrame, objectives: list[Objective], ks: tuple[int, ...]) -> dict:
    """{k: the best objective value among the first k trials by Optuna number (None when
    none of them can be ranked)}, ranked as `revstudy status` ranks (completed, feasible,
    not diverged)."""
    ordered = table.sort_values("number")
    out: dict[int, float | None] = {}
    for k in ks:
        ranked = rank_finished(ordered.head(k), objectives)
        out[k] = None if ranked.empty else float(ranked.iloc[0][objectives[0].metric])
    return out


def trials_to_reach(table: pd.DataFrame, objectives: list[Objective], target: float) -> int | None:
    """The fewest first trials (by number) whose best reaches `target`; None if never."""
    for k in range(1, len(table) + 1):
        best = best_after(table, objectives, (k,))[k]
        if best is not None and (best >= target if objectives[0].mode == "max" else best <= target):
            return k
    return None


def run_study(
    args: argparse.Namespace, storage: Path, name: str, seed: int, warm: str | None
) -> dict[str, Any]:
    """One study through the CLI: wall time, state counts, best after 4/8/16 trials."""
    cmd = [
        sys.executable, "-m", "revstudy.cli", "launch", "--space", args.space,
        "--data", args.data, "--storage", str(storage), "--name", name,
        "--num-samples", str(args.samples), "--seed", str(seed), "--sampler", "tpe",
        "--scheduler", "none", "--no-baseline",
    ]  # fmt: skip
    if warm:
        cmd += ["--warm-start", warm]
    resumed = (storage / name / "study.json").is_file()  # a kept --workdir: finish, reuse
    if resumed:
        cmd = [sys.executable, "-m", "revstudy.cli", "resume", name, "--storage", str(storage)]
    t0 = time.time()
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout_s, cwd=REPO)
    wall = time.time() - t0
    if res.returncode != 0:
        return {"name": name, "error": res.stderr.strip().splitlines()[-2:], "wall_s": wall}
    info = json.loads((storage / name / "study.json").read_text())
    objectives = [Objective(o["metric"], o["mode"]) for o in info["objectives"]]
    table = load_trials(storage / name)
    return {
        "name": name,
        "seed": seed,
        "warm_start": warm,
        "warm_trials": sum(w["used"] for w in info.get("warm_start", [])),
        "wall_s": round(wall, 1),
        "resumed": resumed,  # this run resumed (or reused) the study in --workdir
        "by_state": {str(k): int(v) for k, v in table["state"].value_counts().items()},
        "objective": objectives[0].metric,
        "best_after": best_after(table, objectives, CHECKPOINTS),
        "_table": table,
        "_objectives": objectives,
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    out = Path(args.out)
    doc: dict[str, Any] = {
        "conditions": {
            "space": args.space,
            "samples": args.samples,
            "seeds": args.seeds,
            "sampler": "tpe",
            "scheduler": "none",
            "machine": platform.processor() or platform.machine(),
            "cpus": os.cpu_count(),
            "data": str(args.data),
            "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
        },
        "cold": [],
        "warm": [],
    }

    def save() -> None:
        def public(r: dict) -> dict:
            return {k: v for k, v in r.items() if not k.startswith("_")}

        shown = {**doc, "cold": [public(r) for r in doc["cold"]]}
        shown["warm"] = [public(r) for r in doc["warm"]]
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(shown, indent=1) + "\n")

    with contextlib.ExitStack() as stack:
        work = Path(
            args.workdir or stack.enter_context(tempfile.TemporaryDirectory(prefix="warm-"))
        )
        for s in args.seeds:
            print(f"warm_start: cold study, seed {s} …", file=sys.stderr, flush=True)
            doc["cold"].append(run_study(args, work, f"cold-{s}", s, None))
            save()
        for i, s in enumerate(args.seeds):
            source = f"cold-{args.seeds[(i + 1) % len(args.seeds)]}"
            print(f"warm_start: warm study, seed {s}, from {source} …", file=sys.stderr, flush=True)
            run = run_study(args, work, f"warm-{s}", s, source)
            twin = doc["cold"][i]
            if "error" not in run and "error" not in twin:
                target = twin["best_after"][max(CHECKPOINTS)]
                run["cold_best"] = target
                run["trials_to_reach_cold_best"] = (
                    None if target is None else
                    trials_to_reach(run["_table"], run["_objectives"], target)
                )  # fmt: skip
            doc["warm"].append(run)
            save()
        doc["summary"] = summarise(doc)
        save()
    print(json.dumps(doc["summary"], indent=1))
    return 0 if all("error" not in r for r in doc["cold"] + doc["warm"]) else 1


def summarise(doc: dict[str, Any]) -> dict[str, Any]:
    """Means over seeds of the best after 4/8/16 trials, and the trials to reach the cold
    best (the target: at most half of `samples`)."""

    def mean(rows: list[dict], k: int) -> float | None:
        vals = [r["best_after"][k] for r in rows if "error" not in r]
        vals = [v for v in vals if v is not None and math.isfinite(v)]
        return round(sum(vals) / len(vals), 4) if vals else None

    reach = [r.get("trials_to_reach_cold_best") for r in doc["warm"]]
    half = doc["conditions"]["samples"] // 2
    cold = {k: mean(doc["cold"], k) for k in CHECKPOINTS}
    warm = {k: mean(doc["warm"], k) for k in CHECKPOINTS}
    final = cold[max(CHECKPOINTS)]
    return {
        "cold_best_after": cold,
        "warm_best_after": warm,
        "trials_to_reach_cold_best": reach,
        # each warm study against its cold twin (same seed, same validation splits)
        "target_met": all(r is not None and r <= half for r in reach),
        # the means over seeds: warm after half the trials against cold after all of them
        "target_met_on_means": final is not None
        and (at_half := warm[half]) is not None
        and at_half >= final,
    }


if __name__ == "__main__":
    sys.exit(main())
