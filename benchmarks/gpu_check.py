"""GPU check: what CI (no GPU) cannot test, in one run on a machine with a CUDA GPU.

    python benchmarks/gpu_check.py --data ../shared/data/reversibledata.csv [--budget-s 480]

Runs `revstudy` as a user does, in fresh processes, and writes one JSON file
(default `benchmarks/results/gpu_check.json`), rewritten after every phase and every run
inside a phase, so a timeout or a failing phase loses nothing already measured:

0. `packs` (first: issue #31's figures): `pack_throughput.py` on this GPU, one GPU per Ray
   trial, `--pack-samples` trials of each `--pack-spaces` space at each `--pack-sizes` K
   (default quick, K = 1, 4, 16; the issue also asks for 64 and the default space where the
   budget allows): trials/hour, states, best objective; GPU use per run in `gpu_util`.
   Check: every packed study finished without failures. `--pack-compile MODE` runs them
   all again with `compile_step: MODE` (a pack's vmapped step compiled; off by default: each
   pack compiles its own graph, ~2 min a compile for `reduce-overhead` on the paper shape).
1. `paper`: the paper configuration trained on `cuda` (5 epochs, 1 repeat) in full fp32, and
   again with `allow_tf32: true` (each run on its own: one failing keeps the other): inversion
   error, train seconds, macro F1. Check: the fp32 `inv_error_max` is at most 1e-5 (TF32 gave
   2e-4 on an H200).
2. `paper_r10` (skip with `--no-repeats10`): the same with `--repeats 10`, fused (one batched
   ensemble, the default) and one repeat after another (`--no-fuse`): training seconds of
   each and their ratio to R = 1 (target: fused R = 10 ≤ 2× R = 1).
3. `deterministic`: the paper configuration with `deterministic: true`, twice, and the fp32
   run once more: whether each pair is identical, and what determinism costs in time.
   Check: the deterministic pair is identical.
4. `devices`: `cross_device.py` (a checkpoint continued on the other device type, both ways;
   bit-for-bit resume on CUDA with and without `deterministic`), and a study launched with
   `--gpus-per-trial 0` on this GPU machine. Checks: both resumes finish and record the
   reseed; the deterministic resume equals the uninterrupted run; every trial of the
   CPU-only study ran on the CPU (Ray 2.60 leaves the GPU visible to such workers).
5. `fractional`: a quick study at `--gpus-per-trial 0.25`, 4 trials at a time: trials/hour,
   states. Check: no trial failed.
6. `sigkill`: a study of 6-8 epoch trials killed with SIGKILL while trials are mid-training
   (a checkpoint on disk, no result yet), then `revstudy resume`. Checks: every trial ends,
   none failed, and every interrupted trial continued from its checkpoint.
7. `compile` (last, the slowest): `compile_step.py --device cuda` for `--compile-modes`
   (default eager and reduce-overhead = CUDA graphs): steady epoch seconds, compile seconds,
   loss and inversion-error agreement; its own JSON is written after every mode.
8. `gpu_util`: SM utilisation and memory of this process's GPU (`nvidia-smi -i`), sampled
   every 0.5 s, per phase.

`--budget-s` bounds the whole run: a phase starts only while time is left, and its commands
get at most the time that is left. On a machine without CUDA it refuses (exit 2). The exit
status is 1 when a check fails, so a CI job on a GPU runner can use it.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
PHASES = [
    "packs",
    "paper",
    "paper_r10",
    "deterministic",
    "devices",
    "fractional",
    "sigkill",
    "compile",
]
INV_ERROR_BOUND = 1e-5
KILL_SPACE = """\
description: gpu_check sigkill study (trials long enough to be killed mid-training)
fixed: {hidden_ratio: 0.25, cd_draws: 1, test_fraction: 0.1}
params:
  lr: {type: float, low: 5.0e-4, high: 3.0e-3, log: true}
  epochs: {type: int, low: 6, high: 8}
"""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True, help="CSV in the paper's format")
    p.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "gpu_check.json"))
    p.add_argument("--workdir", default=None, help="scratch folder (default: a temp dir)")
    p.add_argument("--samples", type=int, default=8, help="trials of the fractional study")
    p.add_argument("--gpus-per-trial", type=float, default=0.25)
    p.add_argument("--no-repeats10", action="store_true", help="skip the R=10 paper run")
    p.add_argument(
        "--only", nargs="*", default=None, choices=PHASES, help="phases to run (default: all)"
    )
    p.add_argument("--budget-s", type=float, default=None, help="seconds for the whole run")
    p.add_argument("--compile-modes", default="eager,reduce-overhead", help="compile_step modes")
    p.add_argument("--pack-sizes", type=int, nargs="+", default=[1, 4, 16])
    p.add_argument("--pack-spaces", nargs="+", default=["quick"])
    p.add_argument(
        "--pack-compile",
        default="off",
        help="also run the packs with this compile_step (e.g. reduce-overhead)",
    )
    p.add_argument("--pack-samples", type=int, default=32, help="trials of each packs study")
    args = p.parse_args(argv)
    if not 0 < args.gpus_per_trial <= 1:
        p.error("--gpus-per-trial must be in (0, 1]")
    if args.samples < 1:
        p.error("--samples must be >= 1")
    if args.budget_s is not None and args.budget_s <= 0:
        p.error("--budget-s must be > 0")
    if not Path(args.data).is_file():
        p.error(f"--data {args.data}: file not found")
    return args


def require_cuda() -> dict[str, Any]:
    """Device facts; exits with a clear message where no CUDA device is usable."""
    import torch

    if not torch.cuda.is_available():
        print(
            "gpu_check: no CUDA device (torch.cuda.is_available() is False); run it on a GPU "
            "machine (recipe: ../shared/device/README.md). CPU behaviour is covered by the "
            "test suite.",
            file=sys.stderr,
        )
        raise SystemExit(2)
    return {
        "gpu": torch.cuda.get_device_name(0),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "gpus": torch.cuda.device_count(),
    }


class GpuSampler:
    """`nvidia-smi` in the background: SM utilisation (%) and memory (MiB) every 0.5 s."""

    QUERY = "--query-gpu=utilization.gpu,memory.used"

    def __init__(self) -> None:
        self.samples: list[tuple[float, float, float]] = []
        self._proc: subprocess.Popen[str] | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if shutil.which("nvidia-smi") is None:
            return
        self._proc = subprocess.Popen(
            [
                "nvidia-smi",
                "-i",
                smi_index(),
                self.QUERY,
                "--format=csv,noheader,nounits",
                "-lms",
                "500",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        for line in self._proc.stdout:
            sample = parse_smi_line(line)
            if sample is not None:
                self.samples.append((time.time(), *sample))

    def stop(self) -> None:
        if self._proc is not None:
            self._proc.terminate()
            self._proc.wait(timeout=10)

    def window(self, start: float, end: float) -> dict[str, Any]:
        return summarise_util([s for s in self.samples if start <= s[0] <= end])


def smi_index(visible: str | None = None) -> str:
    """The GPU this process computes on, as `nvidia-smi -i` names it: the first entry of
    `CUDA_VISIBLE_DEVICES` (an index or a UUID), else 0. Without `-i` nvidia-smi prints
    every GPU of the host, and idle ones would dilute the figures."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES") if visible is None else visible
    first = (visible or "").split(",")[0].strip()
    return first or "0"


def parse_smi_line(line: str) -> tuple[float, float] | None:
    """'87, 1234' → (87.0, 1234.0); None for anything else (headers, '[N/A]')."""
    parts = [p.strip() for p in line.split(",")]
    if len(parts) != 2:
        return None
    try:
        return float(parts[0]), float(parts[1])
    except ValueError:
        return None


def summarise_util(samples: list[tuple[float, float, float]]) -> dict[str, Any]:
    if not samples:
        return {"samples": 0}
    util = [s[1] for s in samples]
    mem = [s[2] for s in samples]
    return {
        "samples": len(samples),
        "sm_util_mean": sum(util) / len(util),
        "sm_util_max": max(util),
        "mem_mib_max": max(mem),
    }


class Deadline:
    """The run's time budget: how long a command may still take (`--budget-s`)."""

    def __init__(self, budget_s: float | None):
        self.end = None if budget_s is None else time.time() + budget_s

    def left(self) -> float:
        return float("inf") if self.end is None else self.end - time.time()

    def timeout(self, cap: float) -> float:
        """At most `cap` seconds, and never past the deadline (at least one second)."""
        return max(1.0, min(cap, self.left()))


DEADLINE = Deadline(None)


def cli(*args: str, timeout: float = 600, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.run(
        [sys.executable, "-m", "revstudy.cli", *args],
        capture_output=True,
        text=True,
        timeout=DEADLINE.timeout(timeout),
        env=env,
        cwd=cwd,
    )


def _ok(res: subprocess.CompletedProcess, what: str) -> None:
    if res.returncode != 0:
        raise RuntimeError(f"{what} exited {res.returncode}: {res.stderr[-1500:]}")


def paper_config(path: Path, **overrides: Any) -> Path:
    """The paper configuration with `overrides`, written as YAML by a child process that
    imports revstudy the way the CLI does (this script never imports it: it may run from a
    checkout where only the installed copy is importable)."""
    code = (
        "import sys, json, yaml\n"
        "from revstudy.study.spaces import load_fixed_config\n"
        "doc = load_fixed_config('paper').replace(**json.loads(sys.argv[2])).to_dict()\n"
        "open(sys.argv[1], 'w').write(yaml.safe_dump(doc))\n"
    )
    res = subprocess.run(
        [sys.executable, "-c", code, str(path), json.dumps(overrides)],
        capture_output=True,
        text=True,
        timeout=DEADLINE.timeout(120),
    )
    _ok(res, "writing the paper configuration")
    return path


def paper_run(
    data: str, work: Path, repeats: int, fuse: bool = True, tag: str = "", **overrides: Any
) -> dict[str, Any]:
    """`revstudy train --device cuda` of the paper configuration (with `overrides`)."""
    name = f"paper-r{repeats}{'' if fuse else '-one-by-one'}{tag}"
    out = work / name
    args = ["train", "--device", "cuda", "--data", data, "--repeats", str(repeats)]
    args += ["--fuse" if fuse else "--no-fuse", "--out", str(out)]
    if overrides:
        args += ["--config", str(paper_config(work / f"{name}.yaml", **overrides))]
    t0 = time.time()
    res = cli(*args)
    _ok(res, "train")
    metrics = json.loads((out / "metrics.json").read_text())
    agg = metrics["aggregate"]
    return {
        "repeats": repeats,
        "fused": fuse,
        **overrides,
        "wall_s": time.time() - t0,
        "train_seconds_total": sum(r["train_seconds"] for r in metrics["repeats"]),
        "train_seconds_per_repeat": agg["train_seconds"]["mean"],
        "inv_error_max": agg["inv_error_max"]["max"],
        "f1_macro": agg["f1_macro"]["mean"],
        "f1_macro_skill": agg.get("f1_macro_skill", {}).get("mean"),
        "figures": _run_figures(metrics),
    }


def _run_figures(metrics: dict[str, Any]) -> list[dict[str, Any]]:
    """Every repeat's figures but the timings: two runs that compute the same agree on all."""
    return [
        {k: v for k, v in sorted(r.items()) if "seconds" not in k and isinstance(v, float | int)}
        for r in metrics["repeats"]
    ]


def attempt(runs: dict[str, Any], name: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
    """`runs[name] = fn(...)`, or the error it raised: one run failing keeps the others."""
    try:
        runs[name] = fn(*args, **kwargs)
    except Exception as e:
        runs[name] = {"error": f"{type(e).__name__}: {str(e)[-1500:]}"}
    return runs[name]


def identical(a: dict[str, Any], b: dict[str, Any]) -> bool | None:
    """Whether two runs gave the same figures to the last bit (None: one of them failed)."""
    if "figures" not in a or "figures" not in b:
        return None
    return bool(a["figures"] == b["figures"])


def deterministic_phase(data: str, work: Path, doc: dict[str, Any]) -> dict[str, Any]:
    runs: dict[str, Any] = {}
    first = attempt(runs, "det_1", paper_run, data, work, 1, tag="-det1", deterministic=True)
    second = attempt(runs, "det_2", paper_run, data, work, 1, tag="-det2", deterministic=True)
    again = attempt(runs, "fp32_again", paper_run, data, work, 1, tag="-again")
    fp32 = doc.get("paper", {}).get("fp32", {})
    runs["deterministic_identical"] = identical(first, second)
    runs["default_identical"] = identical(fp32, again)
    if "train_seconds_total" in first and "train_seconds_total" in fp32:
        runs["deterministic_time_ratio"] = (
            first["train_seconds_total"] / fp32["train_seconds_total"]
        )
    return runs


def devices_phase(data: str, work: Path) -> dict[str, Any]:
    """cross_device.py, then a study with --gpus-per-trial 0: every trial on the CPU."""
    out: dict[str, Any] = {}
    path = work / "cross_device.json"
    try:
        res = subprocess.run(
            [sys.executable, str(REPO / "benchmarks" / "cross_device.py"), "--data", data,
             "--out", str(path)],
            capture_output=True, text=True, timeout=DEADLINE.timeout(300),
        )  # fmt: skip
        out["cross_device_exit"] = res.returncode
        if res.returncode not in (0, 1):
            out["cross_device_stderr"] = res.stderr[-1500:]
    except subprocess.TimeoutExpired:
        out["cross_device_exit"] = "timeout"
    if path.is_file():
        out["cross_device"] = json.loads(path.read_text())
    attempt(out, "cpu_study", cpu_only_study, data, work)
    return out


CPU_SPACE = """\
description: gpu_check CPU-only trials on a GPU machine
fixed: {blocks: [1, 1, 1, 1, 1], hidden_ratio: 0.25, cd_draws: 1, epochs: 1}
params:
  lr: {type: float, low: 5.0e-4, high: 3.0e-3, log: true}
"""


def cpu_only_study(data: str, work: Path) -> dict[str, Any]:
    storage = work / "studies"
    space = work / "cpu.yaml"
    space.write_text(CPU_SPACE)
    res = cli(
        "launch", "--space", str(space), "--data", data, "--storage", str(storage), "--name",
        "cpu-only", "--num-samples", "2", "--gpus-per-trial", "0", "--cpus-per-trial", "2",
        "--scheduler", "none", "--no-baseline", "--repeats", "1", timeout=300,
    )  # fmt: skip
    _ok(res, "launch (--gpus-per-trial 0)")
    devices = [
        json.loads(p.read_text()).get("device")
        for p in (storage / "cpu-only" / "trials").glob("*/result.json")
    ]
    return {"devices": devices, "ok": len(devices) == 2 and set(devices) == {"cpu"}}


def compile_phase(data: str, work: Path, modes: str) -> dict[str, Any]:
    """`compile_step.py --device cuda`: eager vs `torch.compile` modes (CUDA graphs among
    them) for the paper configuration's training step; its JSON (written after every mode,
    so a timeout keeps the modes that finished)."""
    out = work / "compile_step.json"
    script = REPO / "benchmarks" / "compile_step.py"
    threads = str(min(8, os.cpu_count() or 1))
    args = ["--data", data, "--device", "cuda", "--threads", threads, "--out", str(out)]
    args += ["--modes", modes]
    timed_out = False
    try:
        res = subprocess.run(
            [sys.executable, str(script), *args],
            capture_output=True,
            text=True,
            timeout=DEADLINE.timeout(1200),
        )
    except subprocess.TimeoutExpired:
        timed_out = True
    doc: dict[str, Any] = json.loads(out.read_text()) if out.is_file() else {}
    if timed_out:
        doc["timed_out"] = True
    elif res.returncode != 0:
        doc["error"] = f"compile_step.py exited {res.returncode}: {res.stderr[-1500:]}"
    return doc


def packs_phase(
    args: argparse.Namespace, work: Path, save: Any, doc: dict[str, Any]
) -> dict[str, list[dict[str, Any]]]:
    """`pack_throughput.study_run` for every space and pack size, one GPU per Ray trial."""
    sys.path.insert(0, str(REPO / "benchmarks"))
    from pack_throughput import study_run

    got: dict[str, list[dict[str, Any]]] = {}
    doc["packs"] = got
    modes = ["off"] + ([args.pack_compile] if args.pack_compile != "off" else [])
    for mode in modes:
        for space in args.pack_spaces:
            for k in args.pack_sizes:
                if DEADLINE.left() < 60:
                    skipped = {"space": space, "pack": k, "compile_step": mode}
                    got.setdefault("skipped_for_time", []).append(skipped)
                    continue
                run = study_run(
                    args.data, work / "packs", space, k, max(k, args.pack_samples), 1.0,
                    timeout=DEADLINE.timeout(1800), compile_step=mode,
                )  # fmt: skip
                got.setdefault(space, []).append(run)
                save()
    return got


def status(storage: Path, name: str) -> dict[str, Any]:
    res = cli("status", name, "--storage", str(storage), "--json")
    _ok(res, "status")
    return json.loads(res.stdout)


def fractional_study(data: str, work: Path, samples: int, gpus: float) -> dict[str, Any]:
    storage = work / "studies"
    t0 = time.time()
    res = cli(
        "launch", "--space", "quick", "--data", data, "--storage", str(storage), "--name",
        "fractional", "--num-samples", str(samples), "--max-concurrent", str(round(1 / gpus)),
        "--gpus-per-trial", str(gpus),
    )  # fmt: skip
    _ok(res, "launch (fractional)")
    wall = time.time() - t0
    s = status(storage, "fractional")
    trial_s = _trial_seconds(storage / "fractional")
    k = round(1 / gpus)
    return {
        "samples": samples,
        "gpus_per_trial": gpus,
        "wall_s": wall,
        "trials_per_hour": 3600 * s["trials"] / wall,
        "by_state": s["by_state"],
        "sum_trial_s": sum(trial_s),
        "overhead": max(0.0, (wall - sum(trial_s) / k) / wall),
        "best": (s.get("best") or {}).get("metrics", {}).get("f1_macro_skill"),
        "ok": s["by_state"].get("FAILED", 0) == 0 and s["trials"] == samples,
    }


def _trial_seconds(study: Path) -> list[float]:
    out = []
    for p in (study / "trials").glob("*/result.json"):
        out.append(float(json.loads(p.read_text()).get("wall_seconds") or 0.0))
    return out


def sigkill_study(data: str, work: Path, gpus: float) -> dict[str, Any]:
    """Kill a study's driver while trials are mid-training, resume, check every trial."""
    storage = work / "studies"
    space = work / "kill.yaml"
    space.write_text(KILL_SPACE)
    k = round(1 / gpus)
    args = [
        "launch", "--space", str(space), "--data", data, "--storage", str(storage), "--name",
        "killed", "--num-samples", str(2 * k), "--max-concurrent", str(k), "--gpus-per-trial",
        str(gpus), "--scheduler", "none", "--no-baseline",
    ]  # fmt: skip
    proc = subprocess.Popen(
        [sys.executable, "-m", "revstudy.cli", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    trials = storage / "killed" / "trials"
    deadline = time.time() + 240
    while time.time() < deadline and len(mid_training(trials)) < max(1, k // 2):
        if proc.poll() is not None:
            raise RuntimeError("the study ended before it could be killed mid-training")
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    time.sleep(3)  # a worker that outlived its driver stops at its next write (trial guard)
    interrupted = sorted(mid_training(trials))
    finished_before = sorted(p.parent.name for p in trials.glob("*/result.json"))
    t0 = time.time()
    res = cli("resume", "killed", "--storage", str(storage))
    _ok(res, "resume")
    s = status(storage, "killed")
    resumed = {}
    for tid in interrupted:
        doc = json.loads((trials / tid / "result.json").read_text())
        resumed[tid] = doc["history"]["resumed_after_epoch"]
    return {
        "trials": s["trials"],
        "by_state": s["by_state"],
        "interrupted": interrupted,
        "finished_before_kill": finished_before,
        "resumed_after_epoch": resumed,
        "resume_wall_s": time.time() - t0,
        "ok": (
            bool(interrupted)
            and all(resumed.values())
            and s["by_state"].get("FAILED", 0) == 0
            and s["by_state"].get("COMPLETED", 0) == s["trials"] == 2 * k
        ),
    }


def mid_training(trials: Path) -> set[str]:
    """Trials with a checkpoint on disk and no result yet."""
    return {
        p.parent.name for p in trials.glob("*/state.pt") if not (p.parent / "result.json").exists()
    }


def write_json_atomic(path: Path, doc: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(doc, indent=1))
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    global DEADLINE
    args = parse_args(argv)
    device = require_cuda()
    DEADLINE = Deadline(args.budget_s)
    phases = list(args.only or PHASES)
    if args.no_repeats10 and "paper_r10" in phases:
        phases.remove("paper_r10")
    work = Path(args.workdir or tempfile.mkdtemp(prefix="gpu_check-"))
    sampler = GpuSampler()
    sampler.start()
    doc: dict[str, Any] = {"device": device, "started": time.strftime("%Y-%m-%dT%H:%M:%S")}
    checks: dict[str, bool] = {}
    util: dict[str, Any] = {}

    def save() -> None:
        write_json_atomic(Path(args.out), {**doc, "gpu_util": util, "checks": checks})

    try:
        for phase in phases:
            if DEADLINE.left() < 20:
                doc.setdefault("skipped_for_time", []).append(phase)
                continue
            t0 = time.time()
            print(f"gpu_check: {phase} …", file=sys.stderr, flush=True)
            try:
                run_phase(phase, args, work, doc, checks, save)
            except Exception as e:  # recorded, and the next phase still runs
                doc[phase] = {**doc.get(phase, {}), "error": f"{type(e).__name__}: {e}"}
                checks[phase] = False
            util[phase] = {**sampler.window(t0, time.time()), "seconds": time.time() - t0}
            save()
    finally:
        sampler.stop()
    doc.update(gpu_util=util, checks=checks, passed=all(checks.values()))
    write_json_atomic(Path(args.out), doc)
    for name, ok in checks.items():
        print(f"{'PASS' if ok else 'FAIL'} {name}")
    print(f"wrote {args.out}")
    return 0 if doc["passed"] else 1


def run_phase(
    phase: str,
    args: argparse.Namespace,
    work: Path,
    doc: dict[str, Any],
    checks: dict[str, bool],
    save: Any,
) -> None:
    """One phase into `doc` (saved after each of its runs) and its checks into `checks`."""
    if phase == "packs":
        doc["packs"] = packs_phase(args, work, save, doc)
        pack_runs = [r for space in doc["packs"].values() for r in space]
        checks["packs_no_failures"] = bool(pack_runs) and all(
            "error" not in r and not r.get("by_state", {}).get("FAILED") for r in pack_runs
        )
    elif phase == "paper":
        runs = doc["paper"] = {}
        fp32 = attempt(runs, "fp32", paper_run, args.data, work, 1)
        save()
        attempt(runs, "tf32", paper_run, args.data, work, 1, tag="-tf32", allow_tf32=True)
        checks["paper_inv_error_max_le_1e-5"] = fp32.get("inv_error_max", 1.0) <= INV_ERROR_BOUND
    elif phase == "paper_r10":
        runs = doc["paper_r10"] = {}
        attempt(runs, "fused", paper_run, args.data, work, 10)
        save()
        attempt(runs, "one_by_one", paper_run, args.data, work, 10, fuse=False)
        r1 = doc.get("paper", {}).get("fp32", {}).get("train_seconds_total")
        for run in runs.values():
            if r1 and "train_seconds_total" in run:
                run["train_seconds_over_r1"] = run["train_seconds_total"] / r1
        checks["paper_r10_ran"] = all("error" not in r for r in runs.values())
    elif phase == "deterministic":
        doc["deterministic"] = deterministic_phase(args.data, work, doc)
        checks["deterministic_runs_identical"] = bool(
            doc["deterministic"]["deterministic_identical"]
        )
    elif phase == "devices":
        got = doc["devices"] = devices_phase(args.data, work)
        cross = got.get("cross_device", {})
        checks["resume_across_device_types"] = bool(
            cross.get("cuda_to_cpu", {}).get("ok") and cross.get("cpu_to_cuda", {}).get("ok")
        )
        checks["deterministic_resume_identical"] = bool(
            cross.get("cuda_resume_deterministic", {}).get("identical")
        )
        checks["cpu_trials_stay_on_cpu"] = bool(got.get("cpu_study", {}).get("ok"))
    elif phase == "fractional":
        doc["fractional"] = fractional_study(args.data, work, args.samples, args.gpus_per_trial)
        checks["fractional_no_failures"] = doc["fractional"]["ok"]
    elif phase == "sigkill":
        doc["sigkill"] = sigkill_study(args.data, work, args.gpus_per_trial)
        checks["sigkill_resume_complete"] = doc["sigkill"]["ok"]
    elif phase == "compile":
        doc["compile"] = compile_phase(args.data, work, args.compile_modes)
    else:
        raise RuntimeError(f"unknown phase {phase!r}")


if __name__ == "__main__":
    sys.exit(main())
