"""Training and evaluation speed: the reference code's way vs the project's fast path.

    python benchmarks/train_speed.py --data ../shared/data/reversibledata.csv

(a) `reference`: the paper's exact parameterisation (k×k convolutions on the 1×1 maps too,
    79.2 M parameters) trained as the reference code (RevMolSpec04.py) does it: plain
    `torch.optim.Adam` with default settings, the distance weights of the spectrum loss from a
    per-sample Python loop, and a full evaluation that walks the validation set sample by
    sample (invertibility, Z_free statistics, conditional variation with 6 draws per Y); F1
    batched, as the reference does.
(b) `fast`: the project's default `TrialConfig` (linear 1×1 stage, foreach Adam, vectorised
    loss) through `Trainer.train_epoch` and the batched `Trainer.evaluate()`.

Both train the same objective (the project's default loss settings) on the same split. The
variants run interleaved (a, b, b, a, a, b, ...) and each run in a fresh process, so that
machine-load drift hits both and peak RSS is per variant. Results go to a JSON file; the last
printed line is `speedup: N.Nx` (median seconds per training epoch, (a) / (b)).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import multiprocessing
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
VARIANTS = {
    "reference": "(a) paper parameterisation, reference training and per-sample evaluation",
    "fast": "(b) project fast path: Trainer + batched Trainer.evaluate()",
    "fast-before": "(b) as of --before-src (e.g. the commit before an optimisation)",
}


# ------------------------------------------------------------------ reference re-implementation
def reference_distance_weights(targets: Any) -> Any:
    """The reference's per-sample loop: for each sample with positives, d_i = min |i − pos|
    over its positive positions and weight 1 / (1 + d_i).

    A sample without positives keeps distance 1 (weight 1/2), as `revstudy.training.losses`
    does; the real data have none, so this choice never matters there.
    """
    import torch

    b, length = targets.shape
    weights = torch.full_like(targets, 0.5)
    idx = torch.arange(length, dtype=targets.dtype)
    for s in range(b):
        pos = torch.nonzero(targets[s] > 0).flatten().to(targets.dtype)
        if len(pos) == 0:
            continue
        d = (idx[:, None] - pos[None, :]).abs().min(dim=1).values
        weights[s] = 1.0 / (1.0 + d)
    return weights


def reference_spectrum_loss(logits: Any, targets: Any, logit_reg: float) -> Any:
    import torch.nn.functional as F

    weights = reference_distance_weights(targets)
    bce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    return (bce * weights).mean() + logit_reg * logits.pow(2).mean()


class ReferenceRun:
    """Model, plain Adam and RNG for the reference-style training of one config."""

    def __init__(self, config: Any, data: Any, seed: int):
        import torch

        from revstudy.training.model import InvertibleNet

        self.config, self.data, self.seed = config, data, seed
        torch.manual_seed(seed)
        self.model = InvertibleNet.from_config(config)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=config.lr)
        self.gen = torch.Generator().manual_seed(seed)
        self.epoch = 0

    def _loss(self, xb: Any, yb: Any, epoch: int) -> Any:
        import torch

        from revstudy.training.losses import structure_terms, x_weight

        c = self.config
        z_free, y_latent = self.model(xb)
        loss_y = reference_spectrum_loss(y_latent, yb, c.logit_reg)
        z_sampled = torch.randn(z_free.shape, generator=self.gen)
        y_in = y_latent.detach() if c.detach_y_in_inverse else y_latent
        x_gen = self.model.inverse(z_sampled, y_in)
        loss_x = structure_terms(x_gen, xb, c).total
        return loss_y, loss_y + x_weight(epoch, c.x_warmup_epochs) * loss_x

    def train_epoch(self) -> float:
        """One epoch and its validation pass; returns the validation macro F1."""
        import torch

        c, epoch = self.config, self.epoch + 1
        self.model.train()
        n = len(self.data.x_train)
        perm = torch.randperm(n, generator=self.gen)
        total_sum = 0.0
        for i in range(0, n, c.batch_size):
            idx = perm[i : i + c.batch_size]
            _, total = self._loss(self.data.x_train[idx], self.data.y_train[idx], epoch)
            self.optimizer.zero_grad()
            total.backward()
            self.optimizer.step()
            total_sum += total.item() * len(idx)
        self.epoch = epoch
        return self.validate(epoch)

    def validate(self, epoch: int) -> float:
        """Validation loss and macro F1 in mini-batches (one forward pass per batch)."""
        import torch

        from revstudy.training.losses import structure_terms, x_weight
        from revstudy.training.metrics import f1_scores

        self.model.eval()
        x, y = self.data.x_val, self.data.y_val
        bs = self.config.batch_size
        pred, loss = [], 0.0
        vgen = torch.Generator().manual_seed(self.seed + 7919 * epoch)
        with torch.no_grad():
            for i in range(0, len(x), bs):
                xb, yb = x[i : i + bs], y[i : i + bs]
                z_free, y_latent = self.model(xb)
                loss_y = reference_spectrum_loss(y_latent, yb, self.config.logit_reg)
                x_gen = self.model.inverse(torch.randn(z_free.shape, generator=vgen), y_latent)
                loss_x = structure_terms(x_gen, xb, self.config).total
                loss += (loss_y + x_weight(epoch, self.config.x_warmup_epochs) * loss_x).item()
                pred.append(y_latent > 0)
        return f1_scores(y.numpy(), torch.cat(pred).numpy())["f1_macro"]


def reference_evaluate(run: ReferenceRun, draws: int = 6) -> dict[str, float]:
    """Full evaluation the reference's way: F1 batched, the rest one sample at a time."""
    import numpy as np
    import torch

    from revstudy.training.metrics import f1_scores

    model, x, code = run.model, run.data.x_val, run.data.y_val
    model.eval()
    gen = torch.Generator().manual_seed(run.seed)
    out: dict[str, float] = {}
    with torch.no_grad():
        preds = [model(x[i : i + 32])[1] > 0 for i in range(0, len(x), 32)]
        out.update(f1_scores(code.numpy(), torch.cat(preds).numpy()))
        inv_err, z_mean, z_std, cond_var = [], [], [], []
        for i in range(len(x)):
            xi = x[i : i + 1]
            z, y = model(xi)
            inv_err.append((model.inverse(z, y) - xi).abs().max().item())
            z_mean.append(z.mean().item())
            z_std.append(z.std().item())
            # conditional variation at this Y: Z_free from N(0, 1), as the reference samples it
            x_var = model.inverse(
                torch.randn(draws, z.shape[1], generator=gen), y.expand(draws, -1)
            ).reshape(draws, -1)
            cond_var.append((x_var[1:] - x_var[:-1]).abs().mean(dim=1).mean().item())
    out["inv_error_max"] = float(np.max(inv_err))
    out["inv_error_mean"] = float(np.mean(inv_err))
    out["z_free_mean_mean"], out["z_free_std_mean"] = float(np.mean(z_mean)), float(np.mean(z_std))
    out["cond_variation_mean"] = float(np.mean(cond_var))
    return out


def batched_subset_evaluate(model: Any, x: Any, code: Any, seed: int, draws: int = 6) -> float:
    """The same metrics as `reference_evaluate`, batched with `revstudy.training.metrics` helpers:
    a like-for-like timing of batching alone (`Trainer.evaluate()` computes much more)."""
    import torch

    from revstudy.training.metrics import f1_scores, forward_all, inverse_all

    model.eval()
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        z, y = forward_all(model, x)
        f1 = f1_scores(code.numpy(), (y > 0).numpy())["f1_macro"]
        _ = (inverse_all(model, z, y) - x).abs().reshape(len(x), -1).amax(dim=1)
        _ = z.mean(dim=1), z.std(dim=1)
        z_var = torch.randn(len(x) * draws, z.shape[1], generator=gen)
        x_var = inverse_all(model, z_var, y.repeat_interleave(draws, dim=0))
        x_var = x_var.reshape(len(x), draws, -1)
        _ = (x_var[:, 1:] - x_var[:, :-1]).abs().mean(dim=2).mean(dim=1)
    return f1


# -------------------------------------------------------------------------------- one run
def run_variant(
    variant: str, data_path: str, epochs: int, threads: int, src: str, seed: int
) -> dict:
    """Train `epochs` epochs of one variant, then evaluate fully; runs in a fresh process.

    The split is always that of `TrialConfig().seed`; `seed` seeds the training only.
    """
    sys.path.insert(0, src)
    import torch

    torch.set_num_threads(threads)
    from revstudy.data.dataset import read_dataset
    from revstudy.training.config import TrialConfig
    from revstudy.training.losses import nearest_positive_distance
    from revstudy.training.model import count_parameters
    from revstudy.training.splits import SplitTensors
    from revstudy.training.trainer import Trainer

    config = TrialConfig(paper_parameterisation=variant == "reference")
    fast = variant != "reference"
    data = SplitTensors.build(read_dataset(data_path), config)
    yb = data.y_train[:256]
    want = 1.0 / (1.0 + nearest_positive_distance(yb))
    assert torch.equal(reference_distance_weights(yb), want), "reference loop ≠ vectorised"

    trainer: Any = Trainer(config, data, seed=seed) if fast else ReferenceRun(config, data, seed)
    stamps: list[float] = []
    trainer.optimizer.register_step_post_hook(lambda *_: stamps.append(time.perf_counter()))
    epoch_s, step_s, val_s, f1 = [], [], [], []
    for _ in range(epochs):
        stamps.clear()
        start = time.perf_counter()
        res = trainer.train_epoch()
        end = time.perf_counter()
        f1.append(res.val_f1_macro if fast else float(res))
        epoch_s.append(end - start)
        step_s += [b - a for a, b in zip([start, *stamps[:-1]], stamps, strict=True)]
        val_s.append(end - stamps[-1])
    start = time.perf_counter()
    metrics = trainer.evaluate().metrics if fast else reference_evaluate(trainer)
    eval_s = time.perf_counter() - start
    start = time.perf_counter()
    if fast:
        batched_subset_evaluate(trainer.model, data.x_val, data.y_val, seed)
    subset_s = time.perf_counter() - start if fast else eval_s
    return {
        "variant": variant,
        "src": src,
        "seed": seed,
        "parameters": count_parameters(trainer.model),
        "n_train": len(data.x_train),
        "n_val": len(data.x_val),
        "steps_per_epoch": len(step_s) // epochs,
        "epoch_seconds": epoch_s,
        "step_seconds": step_s,
        "validation_seconds": val_s,
        "eval_seconds": eval_s,
        "eval_subset_seconds": subset_s,
        "val_f1_macro_per_epoch": f1,
        "eval_f1_macro": metrics["f1_macro"],
        "eval_inv_error_max": metrics["inv_error_max"],
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


REPEAT_MODES = {
    "lanes": "side by side on worker threads (the CPU default)",
    "vmap": "one vmapped ensemble (the GPU default)",
    "one-by-one": "one repeat after another, each freed before the next (--no-fuse)",
}


def run_repeats_case(data_path: str, repeats: int, mode: str, epochs: int, threads: int) -> dict:
    """`revstudy train --repeats R` of the paper configuration (its training and its
    evaluation) in one of `REPEAT_MODES`; runs in a fresh process."""
    sys.path.insert(0, str(REPO))
    import torch

    torch.set_num_threads(threads)
    from revstudy.data.dataset import read_dataset
    from revstudy.study.spaces import load_fixed_config
    from revstudy.training.runs import train_repeats

    config = load_fixed_config("paper").replace(epochs=epochs)
    dataset = read_dataset(data_path)
    start = time.perf_counter()
    if mode == "one-by-one":
        result = train_repeats(config, dataset, repeats, fuse=False)
    else:
        result = train_repeats(config, dataset, repeats, strategy=mode)  # type: ignore[arg-type]
    total = time.perf_counter() - start
    # the repeats' epoch seconds add up to the training loop's wall time in every mode
    training = sum(h["seconds"] for r in result.repeats for h in r["history"])
    return {
        "repeats": repeats,
        "mode": mode if repeats > 1 else "single",
        "epochs": epochs,
        "training_seconds": training,
        "evaluation_seconds": total - training,
        "total_seconds": total,
        "val_f1_macro": [r["metrics"]["f1_macro"] for r in result.repeats],
        "inv_error_max": max(r["metrics"]["inv_error_max"] for r in result.repeats),
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def run_isolated(*args: Any, fn: Any = run_variant) -> dict:
    """`fn` (default `run_variant`) in a fresh spawned process (own imports, own peak RSS)."""
    ctx = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(1, mp_context=ctx) as ex:
        return ex.submit(fn, *args).result()


def repeats_main(args: argparse.Namespace, data: str) -> None:
    """Every repeat mode side by side: per round, R = 1 and then each mode for each other R
    (the order reversed every other round), each run in a fresh process; medians over
    rounds, ratios over the R = 1 median."""
    counts = [int(v) for v in args.repeats.split(",")]
    modes = args.modes.split(",")
    info = machine_info(args.threads)
    runs = []
    for rnd in range(args.rounds):
        cases = [(r, m) for r in counts for m in (modes if r > 1 else ["lanes"])]
        for r, mode in cases if rnd % 2 == 0 else cases[::-1]:
            res = run_isolated(data, r, mode, args.epochs_timed, args.threads, fn=run_repeats_case)
            res["round"] = rnd
            runs.append(res)
            print(
                f"round {rnd} R={r:<3d} {res['mode']:10s} training "
                f"{res['training_seconds']:7.1f}s  evaluation {res['evaluation_seconds']:6.1f}s  "
                f"rss {res['peak_rss_mib']:6.0f} MiB",
                flush=True,
            )
    info["loadavg_end"] = list(os.getloadavg())
    summary = []
    for key in dict.fromkeys((x["repeats"], x["mode"]) for x in runs):
        same = [x for x in runs if (x["repeats"], x["mode"]) == key]
        summary.append(
            {
                "repeats": key[0],
                "mode": key[1],
                "rounds": len(same),
                "training_seconds": median([x["training_seconds"] for x in same]),
                "total_seconds": median([x["total_seconds"] for x in same]),
                "peak_rss_mib": max(x["peak_rss_mib"] for x in same),
            }
        )
    one = next(x for x in summary if x["repeats"] == 1)
    for x in summary:
        x["training_over_r1"] = x["training_seconds"] / one["training_seconds"]
        x["total_over_r1"] = x["total_seconds"] / one["total_seconds"]
    doc = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": info,
        "settings": {
            "epochs": args.epochs_timed,
            "threads": args.threads,
            "rounds": args.rounds,
            "data": data,
            "modes": {m: REPEAT_MODES[m] for m in modes},
        },
        "summary": summary,
        "runs": runs,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=1) + "\n")
    print("R   mode        training s  × R=1   total s  × R=1   (medians)")
    for x in summary:
        print(
            f"{x['repeats']:<3d} {x['mode']:10s} {x['training_seconds']:10.1f} "
            f"{x['training_over_r1']:6.2f} {x['total_seconds']:8.1f} {x['total_over_r1']:6.2f}"
        )
    print(f"results: {out}")


# ------------------------------------------------------------------------------ reporting
def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo ("" where there is none): timings on an
    Intel and an AMD machine are not comparable, so every benchmark records it."""
    cpuinfo = Path("/proc/cpuinfo")
    if not cpuinfo.is_file():
        return ""
    names = [
        ln.split(":", 1)[1].strip()
        for ln in cpuinfo.read_text().splitlines()
        if ln.startswith("model name")
    ]
    return names[0] if names else ""


def machine_info(threads: int) -> dict[str, Any]:
    import torch

    model = cpu_model()
    try:
        git = ["git", "-C", str(REPO)]
        commit = subprocess.run(
            [*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
        ).stdout.strip()
        changed = subprocess.run(
            [*git, "status", "--porcelain", "--untracked-files=no", "revstudy", "benchmarks"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
        commit += "+uncommitted changes" if commit and changed else ""  # what really ran
    except OSError:
        commit = ""
    return {
        "cpu_model": model,
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "torch": torch.__version__,
        "torch_threads": threads,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "git_commit": commit,
        "loadavg_start": list(os.getloadavg()),
    }


# ratio name → summary field it divides
RATIO_KEYS = {
    "epoch": "epoch_seconds_median",
    "step": "step_seconds_median",
    "eval": "eval_seconds_median",
    "eval_same_metrics": "eval_subset_seconds_median",
    "peak_rss": "peak_rss_mib_max",
}


def _ratios(a: dict[str, Any], b: dict[str, Any], keys: dict[str, str]) -> dict[str, float]:
    """a / b for each summary field named in `keys`."""
    return {name: a[field] / b[field] for name, field in keys.items()}


def median(xs: list[float]) -> float:
    return float(statistics.median(xs))


def summarise(runs: list[dict]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for v in dict.fromkeys(r["variant"] for r in runs):
        rs = [r for r in runs if r["variant"] == v]
        out[v] = {
            "runs": len(rs),
            "parameters": rs[0]["parameters"],
            "steps_per_epoch": rs[0]["steps_per_epoch"],
            "epoch_seconds_median": median([s for r in rs for s in r["epoch_seconds"]]),
            "step_seconds_median": median([s for r in rs for s in r["step_seconds"]]),
            "validation_seconds_median": median([s for r in rs for s in r["validation_seconds"]]),
            "eval_seconds_median": median([r["eval_seconds"] for r in rs]),
            "eval_subset_seconds_median": median([r["eval_subset_seconds"] for r in rs]),
            "peak_rss_mib_max": max(r["peak_rss_mib"] for r in rs),
            "val_f1_macro_last_epoch": [r["val_f1_macro_per_epoch"][-1] for r in rs],
            "inv_error_max": max(r["eval_inv_error_max"] for r in rs),
        }
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True, help="CSV in the paper's format")
    p.add_argument("--out", default=str(REPO / "benchmarks/results/train_speed.json"))
    p.add_argument("--epochs-timed", type=int, default=1, help="epochs per run (all timed)")
    p.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    p.add_argument("--rounds", type=int, default=2, help="runs per variant, interleaved")
    p.add_argument("--variants", default="reference,fast", help="comma-separated subset")
    p.add_argument(
        "--before-src",
        help="another checkout (e.g. `git worktree add /tmp/old COMMIT`): adds variant "
        "fast-before, the fast path imported from there, for before/after comparisons",
    )
    p.add_argument(
        "--repeats",
        help="instead of the variants: `revstudy train --repeats R` for each R of this list "
        "(e.g. 1,3,4,10) in every --modes (default --out results/train_repeats.json)",
    )
    p.add_argument(
        "--modes",
        default=",".join(REPEAT_MODES),
        help=f"with --repeats: comma-separated subset of {', '.join(REPEAT_MODES)}",
    )
    args = p.parse_args(argv)
    if args.repeats:
        data = str(Path(args.data).resolve())
        if args.out == p.get_default("out"):
            args.out = str(REPO / "benchmarks/results/train_repeats.json")
        if "1" not in args.repeats.split(","):
            p.error("--repeats: include 1 (the ratios are over R = 1)")
        unknown_modes = set(args.modes.split(",")) - set(REPEAT_MODES)
        if unknown_modes:
            p.error(f"--modes: unknown {sorted(unknown_modes)}; choose from {list(REPEAT_MODES)}")
        return repeats_main(args, data)
    variants = args.variants.split(",")
    if args.before_src and "fast-before" not in variants:
        variants.append("fast-before")
    if "fast-before" in variants and not args.before_src:
        p.error("--variants fast-before needs --before-src")
    unknown = set(variants) - set(VARIANTS)
    if unknown:
        p.error(f"--variants: unknown {sorted(unknown)}; choose from {sorted(VARIANTS)}")
    data = str(Path(args.data).resolve())
    if not Path(data).is_file():
        p.error(f"--data: {data} not found")

    info = machine_info(args.threads)
    runs: list[dict] = []
    for r in range(args.rounds):
        order = variants if r % 2 == 0 else variants[::-1]  # a b | b a | a b ...
        for v in order:
            src = args.before_src if v == "fast-before" else str(REPO)
            res = run_isolated(v, data, args.epochs_timed, args.threads, src, r)
            res["round"] = r
            runs.append(res)
            print(
                f"round {r} {v:9s} epoch {median(res['epoch_seconds']):7.2f}s  "
                f"step {median(res['step_seconds']):6.3f}s  eval {res['eval_seconds']:7.2f}s  "
                f"rss {res['peak_rss_mib']:6.0f} MiB  F1 {res['val_f1_macro_per_epoch'][-1]:.4f}",
                flush=True,
            )
    info["loadavg_end"] = list(os.getloadavg())
    summary = summarise(runs)
    doc: dict[str, Any] = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": info,
        "settings": {
            "epochs_timed": args.epochs_timed,
            "rounds": args.rounds,
            "training_seed_of_round": "round r trains with seed r (split: seed 0)",
            "threads": args.threads,
            "data": data,
            "variants": {v: VARIANTS[v] for v in variants},
        },
        "summary": summary,
        "runs": runs,
    }
    lines = [
        f"{'':10s} {'epoch s':>8s} {'step s':>7s} {'eval s':>8s} {'same-metric eval s':>18s} "
        f"{'RSS MiB':>8s}  F1 (last epoch, per run)"
    ]
    for v, s in summary.items():
        f1s = ", ".join(f"{f:.4f}" for f in s["val_f1_macro_last_epoch"])
        lines.append(
            f"{v:10s} {s['epoch_seconds_median']:8.2f} {s['step_seconds_median']:7.3f} "
            f"{s['eval_seconds_median']:8.2f} {s['eval_subset_seconds_median']:18.2f} "
            f"{s['peak_rss_mib_max']:8.0f}  {f1s}"
        )
    speedup = None
    if {"reference", "fast"} <= summary.keys():
        ratios = _ratios(summary["reference"], summary["fast"], RATIO_KEYS)
        doc["ratios_reference_over_fast"] = ratios
        lines.append(
            "ratios (a)/(b): "
            + ", ".join(f"{k} {v:.1f}x" for k, v in ratios.items())
            + f"  (load avg {info['loadavg_start'][0]:.1f} → {info['loadavg_end'][0]:.1f})"
        )
        speedup = ratios["epoch"]
    if {"fast-before", "fast"} <= summary.keys():
        keys = {k: RATIO_KEYS[k] for k in ("epoch", "step", "eval")}
        before_after = _ratios(summary["fast-before"], summary["fast"], keys)
        doc["ratios_fast_before_over_fast"] = before_after
        lines.append(
            "ratios fast-before/fast: "
            + ", ".join(f"{k} {v:.2f}x" for k, v in before_after.items())
        )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=1) + "\n")
    print("\n".join(lines))
    print(f"results: {out}")
    if speedup is not None:
        print(f"speedup: {speedup:.1f}x")


if __name__ == "__main__":
    main()
