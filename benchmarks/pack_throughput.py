"""Trials per hour of a study at several pack sizes (issue #31), as a user runs it.

    python benchmarks/pack_throughput.py --data FILE [--space quick] [--packs 1 4]
        [--samples 8] [--gpus-per-trial 0] [--compile-step off]
        [--out benchmarks/results/pack_throughput.json]

For each pack size K, one `revstudy launch --pack K` of `--samples` trials in a fresh process
(paper baseline off, ASHA off: every trial runs its epochs, so the sizes compare like with
like), on the CPU or, with `--gpus-per-trial`, on this machine's GPU. Records wall seconds,
trials/hour, states, the best objective, and the trial-epochs trained. The JSON is rewritten
after every run, so a timeout loses nothing already measured. `benchmarks/gpu_check.py`
runs it as its `packs` phase (K = 1, 4, 16, 64 on the quick and default spaces).
`--compile-step MODE` runs the space with `compile_step: MODE` fixed (a copy of its YAML in
the work folder): every pack compiles its vmapped step (`reduce-overhead`: CUDA graphs).
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

REPO = Path(__file__).resolve().parents[1]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", required=True, help="the data CSV")
    p.add_argument("--space", default="quick")
    p.add_argument("--packs", type=int, nargs="+", default=[1, 4])
    p.add_argument("--samples", type=int, default=8)
    p.add_argument("--gpus-per-trial", type=float, default=0.0)
    p.add_argument("--cpus-per-trial", type=float, default=1.0)
    p.add_argument("--compile-step", default="off", help="compile_step fixed in the space")
    p.add_argument("--timeout-s", type=float, default=1800, help="per study")
    p.add_argument("--out", default=str(REPO / "benchmarks/results/pack_throughput.json"))
    p.add_argument("--workdir", default=None, help="keep the studies here (default: a temp dir)")
    return p.parse_args(argv)


def study_run(
    data: str,
    storage: Path,
    space: str,
    pack: int,
    samples: int,
    gpus: float,
    cpus: float = 1.0,
    timeout: float = 1800,
    compile_step: str = "off",
) -> dict[str, Any]:
    """One study of `samples` trials in packs of `pack`: its figures (`compile_step`: fixed
    in a copy of the space written beside the studies)."""
    name = f"{Path(space).stem}-k{pack}"
    if compile_step != "off":
        space = compiled_space(space, compile_step, storage)
        name = f"{name}-{compile_step}"
    cmd = [
        sys.executable, "-m", "revstudy.cli", "launch", "--space", space, "--data", data,
        "--storage", str(storage), "--name", name, "--num-samples", str(samples),
        "--pack", str(pack), "--scheduler", "none", "--no-baseline", "--seed", "0",
        "--gpus-per-trial", str(gpus), "--cpus-per-trial", str(cpus),
    ]  # fmt: skip
    t0 = time.time()
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=REPO)
    wall = time.time() - t0
    if res.returncode != 0:
        return {"pack": pack, "error": res.stderr.strip().splitlines()[-1:], "wall_s": wall}
    st = subprocess.run(
        [sys.executable, "-m", "revstudy.cli", "status", name, "--storage", str(storage), "--json"],
        capture_output=True, text=True, cwd=REPO, check=True,
    )  # fmt: skip
    status = json.loads(st.stdout)
    best = status.get("best") or {}
    epochs = 0
    for p in (storage / name / "trials").glob("*/result.json"):
        epochs += int(json.loads(p.read_text())["config"]["epochs"])
    return {
        "pack": pack,
        "compile_step": compile_step,
        "samples": samples,
        "wall_s": round(wall, 1),
        "trials_per_hour": round(3600 * status["trials"] / wall, 1),
        "trial_epochs": epochs,
        "by_state": status["by_state"],
        "best": {"trial_id": best.get("trial_id"), "objective": _objective(status)},
    }


def compiled_space(space: str, mode: str, folder: Path) -> str:
    """A copy of `space` (built-in name or path) with `compile_step: mode` fixed, in
    `folder`; its path."""
    import yaml

    from revstudy.study.spaces import resolve_space_path

    doc = yaml.safe_load(resolve_space_path(space).read_text()) or {}
    doc["fixed"] = {**(doc.get("fixed") or {}), "compile_step": mode}
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{Path(space).stem}-{mode}.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return str(path)


def _objective(status: dict[str, Any]) -> dict[str, Any]:
    """The best trial's objective values (`status --json` lists every metric of it)."""
    metrics = (status.get("best") or {}).get("metrics") or {}
    return {o["metric"]: metrics.get(o["metric"]) for o in status.get("objectives", [])}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    out = Path(args.out)
    doc: dict[str, Any] = {
        "conditions": {
            "space": args.space,
            "samples": args.samples,
            "gpus_per_trial": args.gpus_per_trial,
            "cpus_per_trial": args.cpus_per_trial,
            "compile_step": args.compile_step,
            "machine": platform.processor() or platform.machine(),
            "cpus": os.cpu_count(),
            "data": str(args.data),
            "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
        },
        "runs": [],
    }
    with contextlib.ExitStack() as stack:
        work = args.workdir or stack.enter_context(
            tempfile.TemporaryDirectory(prefix="pack_throughput-")
        )
        for pack in args.packs:
            print(f"pack_throughput: K = {pack} …", file=sys.stderr, flush=True)
            run = study_run(
                args.data, Path(work), args.space, pack, args.samples,
                args.gpus_per_trial, args.cpus_per_trial, args.timeout_s, args.compile_step,
            )  # fmt: skip
            doc["runs"].append(run)
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(json.dumps(doc, indent=1) + "\n")
    print(json.dumps(doc["runs"], indent=1))
    return 0 if all("error" not in r for r in doc["runs"]) else 1


if __name__ == "__main__":
    sys.exit(main())
