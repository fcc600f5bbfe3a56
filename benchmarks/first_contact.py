"""The timings a new user meets first, on an idle machine and on one with a core busy.

    python benchmarks/first_contact.py --data ../shared/data/reversibledata.csv   # ~12 min

Runs, as a user does (fresh processes, the README's commands), each under two conditions:

- `idle`: nothing else running (before each command the script waits until the cores are
  less than 0.2 busy over a second, as `revstudy.training.threads` measures it);
- `loaded`: `--busy` other processes spinning on a core each (default 1: on a 2-core
  machine, half the machine taken by other work).

Commands: the quick study (`revstudy launch --space quick --num-samples 8`), and a
paper-configuration training (`revstudy train`, `--epochs` epochs) with the default thread
count (the cores free now, `revstudy.training.threads`), with one thread, and with every
core (`--threads 2` on 2 cores: what the README advised before, 3–5× slower per epoch on a
busy 2-core machine in issue #30). Records wall seconds, exit code, the threads line
`train` printed and its per-epoch seconds (from metrics.json). Results:
results/first_contact.json.
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
sys.path.insert(0, str(REPO))

from train_speed import machine_info  # noqa: E402  (one description of the machine)

CLI = [sys.executable, "-m", "revstudy.cli"]


def wait_until_idle(limit: float = 300.0) -> float:
    """Wait (at most `limit` s) until the cores are < 0.2 busy over a second; return it."""
    from revstudy.training.threads import busy_cores

    start = time.time()
    busy = busy_cores(1.0)
    while busy >= 0.2 and time.time() - start < limit:
        busy = busy_cores(1.0)
    return round(busy, 2)


def timed(cmd: list[str], cwd: Path) -> dict[str, Any]:
    """One command in a fresh process: wall seconds, exit code, the stderr lines it printed."""
    start = time.perf_counter()
    res = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    wall = time.perf_counter() - start
    lines = [ln for ln in res.stderr.splitlines() if ln.startswith(("threads:", "error:"))]
    return {
        "command": " ".join(["revstudy", *cmd[len(CLI) :]]),
        "wall_s": round(wall, 1),
        "exit_code": res.returncode,
        "said": lines,
    }


def train_run(data: str, epochs: int, threads: int | None, work: Path, tag: str) -> dict:
    out = work / f"train-{tag}"
    cmd = [*CLI, "train", "--data", data, "--epochs", str(epochs), "--out", str(out)]
    if threads is not None:
        cmd += ["--threads", str(threads)]
    doc = timed(cmd, work)
    if doc["exit_code"] == 0:
        metrics = json.loads((out / "metrics.json").read_text())
        doc["threads"] = metrics.get("threads")
        doc["epoch_s"] = [round(h["seconds"], 1) for h in metrics["repeats"][0]["history"]]
    return doc


def quick_study(data: str, work: Path, tag: str) -> dict:
    cmd = [*CLI, "launch", "--space", "quick", "--num-samples", "8", "--data", data]
    cmd += ["--name", f"quick-{tag}", "--storage", str(work / "studies")]
    return timed(cmd, work)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--busy", type=int, default=1, help="cores kept busy in the loaded runs")
    p.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "first_contact.json"))
    args = p.parse_args(argv)
    data = str(Path(args.data).resolve())
    cores = os.cpu_count() or 1
    doc: dict[str, Any] = {"machine": machine_info(cores), "epochs": args.epochs, "busy": args.busy}
    with tempfile.TemporaryDirectory(prefix="first-contact-") as tmp:
        work = Path(tmp)
        idle: dict[str, Any] = {}
        for key, run in (
            ("quick_study", lambda: quick_study(data, work, "idle")),
            ("train_default_threads", lambda: train_run(data, args.epochs, None, work, "i")),
            ("train_one_thread", lambda: train_run(data, args.epochs, 1, work, "i1")),
            ("train_every_core", lambda: train_run(data, args.epochs, cores, work, "iall")),
        ):
            busy = wait_until_idle()
            idle[key] = {**run(), "busy_before": busy}
        doc["idle"] = idle
        spin = [sys.executable, "-c", "while True: pass"]
        burners = [subprocess.Popen(spin) for _ in range(args.busy)]
        try:
            time.sleep(2)
            doc["loaded"] = {
                "quick_study": quick_study(data, work, "loaded"),
                "train_default_threads": train_run(data, args.epochs, None, work, "l"),
                "train_every_core": train_run(data, args.epochs, cores, work, "lall"),
            }
        finally:
            for b in burners:
                b.kill()
    Path(args.out).write_text(json.dumps(doc, indent=1) + "\n")
    print(json.dumps(doc, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
