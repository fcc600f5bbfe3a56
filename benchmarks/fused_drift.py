"""Why fused (vmapped) repeats end a few 1e-3 away from sequential ones: round-off, amplified.

    python benchmarks/fused_drift.py --data ../shared/data/reversibledata.csv   # ~3 min, 2 cores

The paper configuration, two repeats, trained three ways from the same seeds: one after
another (the reference), as one vmapped ensemble, and one after another again with every
initial weight moved by one part in 10⁷ (a round-off-sized change, nothing else). Records
how far the ensemble's weights are from the sequential ones after one epoch (the arithmetic
itself: summation order in grouped convolutions and batched matmuls) and how far each run's
final figures are from the reference. If the ensemble's final gap is of the size the 1e-7
perturbation produces, the gap is training amplifying round-off, not a difference in what
the ensemble computes. Results: results/fused_drift.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
FIGURES = ("f1_macro", "f1_macro_skill", "val_loss", "retrieval_mrr", "inv_error_max")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True)
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "fused_drift.json"))
    args = p.parse_args(argv)
    sys.path.insert(0, str(REPO))
    import torch

    from revstudy.data.dataset import read_dataset
    from revstudy.training.config import TrialConfig
    from revstudy.training.fused import FusedRepeats
    from revstudy.training.splits import SplitTensors
    from revstudy.training.trainer import Trainer, fit

    torch.set_num_threads(args.threads)
    config = TrialConfig(epochs=args.epochs)
    dataset = read_dataset(args.data)

    def trainers() -> list[Trainer]:
        return [
            Trainer(config, SplitTensors.build(dataset, config, r), seed=config.seed + r)
            for r in range(2)
        ]

    def figures(ts: list[Trainer]) -> list[dict[str, float]]:
        return [{k: float(t.evaluate("val").metrics[k]) for k in FIGURES} for t in ts]

    doc: dict[str, Any] = {"config": "paper (TrialConfig defaults)", "epochs": args.epochs}
    t0 = time.time()
    # one step: the arithmetic of the ensemble against sequential steps
    seq, fused = trainers(), trainers()
    for t in seq:
        t.train_epoch()
    group = FusedRepeats(fused)
    group.train_epoch()
    doc["after_one_epoch_max_rel_weight_diff"] = max(
        float(((a - b).abs().max() / b.abs().max()).item())
        for ta, tb in zip(fused, seq, strict=True)
        for a, b in zip(ta.model.parameters(), tb.model.parameters(), strict=True)
    )
    for _ in range(args.epochs - 1):
        for t in seq:
            t.train_epoch()
        group.train_epoch()
    reference, ensemble = figures(seq), figures(fused)
    # the same sequential run, every initial weight moved by one part in 10^7
    nudged = trainers()
    gen = torch.Generator().manual_seed(123)
    with torch.no_grad():
        for t in nudged:
            for w in t.model.parameters():
                sign = torch.randint(0, 2, w.shape, generator=gen).to(w.dtype) * 2 - 1
                w.mul_(1 + 1e-7 * sign)
    for t in nudged:
        fit(t)
    perturbed = figures(nudged)

    def gaps(run: list[dict[str, float]]) -> dict[str, float]:
        return {
            k: max(abs(a[k] - b[k]) / abs(b[k]) for a, b in zip(run, reference, strict=True))
            for k in FIGURES
            if k != "inv_error_max"
        }

    doc.update(
        sequential=reference,
        fused=ensemble,
        sequential_nudged_1e7=perturbed,
        fused_rel_gap=gaps(ensemble),
        nudged_rel_gap=gaps(perturbed),
        seconds=time.time() - t0,
        threads=args.threads,
        torch=torch.__version__,
    )
    Path(args.out).write_text(json.dumps(doc, indent=1) + "\n")
    print(json.dumps({k: doc[k] for k in doc if "gap" in k or "one_epoch" in k}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
