"""Study overhead: wall time of a whole study vs the time its trials spend training.

    python benchmarks/study_overhead.py --data ../shared/data/reversibledata.csv

Each scenario runs `revstudy launch` as a user does (a fresh process: imports, embedded Ray
start, OptunaSearch, progress display, per-trial records, Ray shutdown) with
`--scheduler none` so every trial runs to the end. A trial's own time is the
`wall_seconds` it records (from entering the trainable to its final record: building the
split, training, the full evaluation). With K trials at a time, a study with no overhead
would take sum(trial seconds) / K, so

    overhead = (study wall - sum(trial seconds) / K) / study wall

is everything Ray, Optuna and revstudy add: process and Ray start-up, trial actor start,
scheduling gaps, result and checkpoint handling, table refreshes, shutdown.

Scenarios: `quick` (the quick search space, the target: overhead < 10 %) and `trivial`
(one-epoch trials of a one-block network: the fixed cost per trial). Results go to a JSON
file, with trials per hour; the last printed line is `overhead: N.N%` for the quick space.

On a GPU machine, fractional GPUs (four trials share one card):

    python benchmarks/study_overhead.py --data FILE --scenarios quick --num-samples 16 \
        --max-concurrent 4 --gpus-per-trial 0.25 --out benchmarks/results/gpu_quick_study.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

from train_speed import machine_info  # noqa: E402  (one description of the machine)

TRIVIAL_SPACE = """\
description: one-epoch trials of a one-block network (fixed cost per trial)
fixed: {blocks: [1, 1, 1, 1, 1], hidden_ratio: 0.25, cd_draws: 1, epochs: 1}
params:
  lr: {type: float, low: 1.0e-4, high: 3.0e-3, log: true}
"""


def run_study(
    space: str, data: str, samples: int, concurrent: int, workdir: Path, cpus: float, gpus: float
) -> dict:
    """One `revstudy launch` in a fresh process; study wall time and per-trial times."""
    import pandas as pd

    name = Path(space).stem
    cmd = [
        sys.executable,
        "-m",
        "revstudy.cli",
        "launch",
        "--space",
        space,
        "--data",
        data,
        "--storage",
        str(workdir),
        "--name",
        name,
        "--num-samples",
        str(samples),
        "--max-concurrent",
        str(concurrent),
        "--cpus-per-trial",
        str(cpus),
        "--gpus-per-trial",
        str(gpus),
        "--scheduler",
        "none",
        "--no-baseline",
    ]
    start = time.perf_counter()
    res = subprocess.run(cmd, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    if res.returncode != 0:
        raise SystemExit(f"study {name} failed ({res.returncode}):\n{res.stderr[-3000:]}")
    trials = pd.read_parquet(workdir / name / "trials.parquet")
    seconds = [float(s) for s in trials["wall_seconds"]]
    ideal = sum(seconds) / concurrent
    return {
        "space": space,
        "trials": len(trials),
        "completed": int((trials["state"] == "COMPLETED").sum()),
        "max_concurrent": concurrent,
        "cpus_per_trial": cpus,
        "gpus_per_trial": gpus,
        "devices": sorted(set(trials["device"].astype(str))),
        "trials_per_hour": 3600 * len(trials) / wall,
        "study_wall_seconds": wall,
        "trial_seconds": seconds,
        "trial_seconds_sum": sum(seconds),
        "ideal_wall_seconds": ideal,
        "overhead_seconds": wall - ideal,
        "overhead_fraction": (wall - ideal) / wall,
        "overhead_seconds_per_trial": (wall - ideal) / (len(trials) / concurrent),
    }


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, help="CSV in the paper's format")
    ap.add_argument("--num-samples", type=int, default=8, help="trials per study")
    ap.add_argument("--max-concurrent", type=int, default=2, help="trials at a time")
    ap.add_argument("--scenarios", default="trivial,quick", help="comma-separated")
    ap.add_argument("--cpus-per-trial", type=float, default=1.0)
    ap.add_argument("--gpus-per-trial", type=float, default=0.0, help="e.g. 0.25 on a GPU")
    ap.add_argument("--out", default=str(REPO / "benchmarks/results/study_overhead.json"))
    args = ap.parse_args(argv)

    machine = machine_info(threads=1)
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        spaces = {"quick": "quick", "trivial": str(Path(tmp) / "trivial.yaml")}
        Path(spaces["trivial"]).write_text(TRIVIAL_SPACE)
        for scenario in args.scenarios.split(","):
            r = run_study(
                spaces[scenario],
                args.data,
                args.num_samples,
                args.max_concurrent,
                Path(tmp),
                args.cpus_per_trial,
                args.gpus_per_trial,
            )
            r["space"] = scenario
            results[scenario] = r
            print(
                f"{scenario:8s} {r['trials']} trials, {r['max_concurrent']} at a time: "
                f"study {r['study_wall_seconds']:.1f} s, trials {r['trial_seconds_sum']:.1f} s "
                f"(ideal {r['ideal_wall_seconds']:.1f} s), overhead "
                f"{r['overhead_seconds']:.1f} s = {100 * r['overhead_fraction']:.1f} % "
                f"({r['overhead_seconds_per_trial']:.2f} s per trial slot); "
                f"{r['trials_per_hour']:.0f} trials/hour on {', '.join(r['devices'])}"
            )
    machine["loadavg_end"] = list(os.getloadavg())
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "command": "python benchmarks/study_overhead.py " + " ".join(argv or sys.argv[1:]),
        "machine": machine,
        "settings": vars(args),
        "results": results,
    }
    out.write_text(json.dumps(payload, indent=1))
    print(f"wrote {out}")
    if "quick" in results:
        print(f"overhead: {100 * results['quick']['overhead_fraction']:.1f}%")


if __name__ == "__main__":
    main()
