"""Does `torch.compile` speed up a training step? Eager vs compiled, side by side.

    python benchmarks/compile_step.py --data ../shared/data/reversibledata.csv           # CPU
    python benchmarks/compile_step.py --data FILE --device cuda   # + CUDA graphs (reduce-overhead)

Trains the paper configuration (`TrialConfig()` defaults) for `--epochs` epochs through
`Trainer.train_epoch` with the model's forward and inverse left eager or wrapped in
`torch.compile(mode=...)` (static shapes), each mode in a fresh process. Records every
epoch's seconds (the first includes compilation), the steady epoch (median of the others),
the speed-up over eager, and how far the compiled run's losses and inversion error are from
eager's. revstudy keeps a mode only where these figures say it pays (issue #14): see
benchmarks/README.md. Results go to one JSON file (default results/compile_step.json).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import multiprocessing
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
MODES = ("eager", "default", "max-autotune-no-cudagraphs", "reduce-overhead")


def run_mode(
    data: str, mode: str, device: str, epochs: int, threads: int, cache: str | None
) -> dict[str, Any]:
    """One mode's training run; runs in a fresh process. `cache`: the compile cache folder
    (None: a new empty one, so the first epoch shows a cold compilation)."""
    cold = cache is None
    cache = cache or tempfile.mkdtemp(prefix="compile_step-")
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = cache  # before torch is imported
    os.environ["TRITON_CACHE_DIR"] = str(Path(cache) / "triton")
    sys.path.insert(0, str(REPO))
    import torch

    torch.set_num_threads(threads)
    from revstudy.data.dataset import read_dataset
    from revstudy.training.config import TrialConfig
    from revstudy.training.splits import SplitTensors
    from revstudy.training.trainer import Trainer

    config = TrialConfig(epochs=epochs)
    dataset = read_dataset(data)
    trainer = Trainer(config, SplitTensors.build(dataset, config, 0, device), device, seed=0)
    model = trainer.model
    if mode != "eager":
        from revstudy.training.compiled import training_only

        # the instance attributes shadow the methods: the Trainer calls these
        model.forward = training_only(model.forward, mode, step_begins=True)  # type: ignore[method-assign]
        model.inverse = training_only(model.inverse, mode, step_begins=False)  # type: ignore[method-assign]
    seconds, losses = [], []
    for _ in range(epochs):
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        rec = trainer.train_epoch()
        if device == "cuda":
            torch.cuda.synchronize()
        seconds.append(time.perf_counter() - start)
        losses.append(rec.train_loss)
    with torch.no_grad():
        model.eval()
        x = trainer.data.x_val
        z, y = model(x)
        inv_error = float((model.inverse(z, y) - x).abs().max())
    if cold:
        shutil.rmtree(cache, ignore_errors=True)
    return {
        "mode": mode,
        "cold_cache": cold,
        "epoch_seconds": seconds,
        "first_epoch_seconds": seconds[0],
        "steady_epoch_seconds": statistics.median(seconds[1:]) if epochs > 1 else seconds[0],
        "train_loss": losses,
        "inv_error_max": inv_error,
    }


def isolated(*args: Any) -> dict[str, Any]:
    ctx = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(1, mp_context=ctx) as ex:
        return ex.submit(run_mode, *args).result()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True, help="CSV in the paper's format")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--modes", default=None, help=f"comma-separated subset of {', '.join(MODES)}")
    p.add_argument("--epochs", type=int, default=3, help="epochs per mode (≥ 2: one steady)")
    p.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    p.add_argument("--out", default=str(REPO / "benchmarks/results/compile_step.json"))
    p.add_argument(
        "--cache",
        help="compile cache folder to use and keep (default: a new empty one per mode, "
        "so the first epoch shows what a first compilation costs)",
    )
    args = p.parse_args(argv)
    if args.modes is None:  # CUDA graphs only exist on CUDA
        args.modes = ",".join(
            m for m in MODES if args.device == "cuda" or m in ("eager", "default")
        )
    modes = args.modes.split(",")
    unknown = set(modes) - set(MODES)
    if unknown:
        p.error(f"--modes: unknown {sorted(unknown)}; choose from {', '.join(MODES)}")
    if "eager" not in modes:
        p.error("--modes: include eager (the speed-ups are over it)")
    if args.epochs < 2:
        p.error("--epochs must be >= 2 (the first epoch includes compilation)")
    if not Path(args.data).is_file():
        p.error(f"--data {args.data}: file not found")
    if args.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            p.error("--device cuda: no CUDA device here")
    return args


def compare(runs: list[dict[str, Any]]) -> None:
    """Speed-up, compile time and loss agreement of each mode against eager (when both ran)."""
    eager = next((r for r in runs if r["mode"] == "eager"), None)
    for r in runs:
        if eager is None or "error" in r or "error" in eager:
            continue
        r["speedup_steady"] = eager["steady_epoch_seconds"] / r["steady_epoch_seconds"]
        r["compile_seconds"] = r["first_epoch_seconds"] - r["steady_epoch_seconds"]
        r["train_loss_max_rel_diff"] = max(
            abs(a - b) / abs(b) for a, b in zip(r["train_loss"], eager["train_loss"], strict=True)
        )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    data = str(Path(args.data).resolve())
    import torch

    runs: list[dict[str, Any]] = []
    doc = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "device": args.device,
        "device_name": torch.cuda.get_device_name() if args.device == "cuda" else "cpu",
        "torch": torch.__version__,
        "threads": args.threads,
        "cpu_count": os.cpu_count(),
        "epochs": args.epochs,
        "runs": runs,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    for mode in args.modes.split(","):
        try:
            res = isolated(data, mode, args.device, args.epochs, args.threads, args.cache)
        except Exception as e:  # a mode that does not compile here is a result too
            res = {"mode": mode, "error": f"{type(e).__name__}: {str(e).splitlines()[0][:300]}"}
        runs.append(res)
        compare(runs)
        out.write_text(json.dumps(doc, indent=1) + "\n")  # every finished mode is kept
        shown = {k: v for k, v in res.items() if k in ("first_epoch_seconds", "error")}
        print(f"{mode:28s} {shown} steady {res.get('steady_epoch_seconds')}", flush=True)
    for r in runs:
        if "speedup_steady" in r:
            print(
                f"{r['mode']:28s} steady epoch {r['steady_epoch_seconds']:6.2f}s "
                f"(× {r['speedup_steady']:.2f} eager), compile ≈ {r['compile_seconds']:.0f}s"
            )
    print(f"results: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
