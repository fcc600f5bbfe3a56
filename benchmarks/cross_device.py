"""Resume across device types and bit-for-bit resume on a real GPU (issue #23.2, #23.5).

    python benchmarks/cross_device.py --data FILE --out cross_device.json

A small trial is stopped after its first epoch (its checkpoint on disk, as a lost node leaves
it) and continued by `revstudy.study.trial.train_trial` on the other device type: CUDA → CPU
and CPU → CUDA. Checks: it finishes, its history records the reseeded generator. Then the
same trial is stopped and resumed on CUDA, with and without `deterministic: true`, and
compared with an uninterrupted CUDA run: with it, the final figures must be identical; without
it, the difference is recorded (what the README's "Reproducibility" states). Needs CUDA;
imports revstudy (run it where `python -m revstudy.cli` works).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

SPACE = "fixed: {{blocks: [1, 1, 1, 1, 1], hidden_ratio: 0.25, cd_draws: 1, epochs: 3{more}}}\n"
COMPARED = ("f1_macro", "inv_error_max", "val_loss", "z_free_std_mean", "retrieval_mrr")


class Stop(Exception):
    """Raised by the report after the first epoch: the trial stops with a checkpoint."""


def _trial(study: Path, data: str, device: str, deterministic: bool, stop: bool) -> dict[str, Any]:
    from revstudy.data.dataset import read_dataset
    from revstudy.study.spaces import load_space
    from revstudy.study.trial import train_trial
    from revstudy.study.trial_context import TrialContext

    space = study / "space.yaml"
    space.parent.mkdir(parents=True, exist_ok=True)
    space.write_text(SPACE.format(more=", deterministic: true" if deterministic else ""))

    def report(metrics: dict[str, Any]) -> None:
        if stop and metrics["epoch"] == 1:
            raise Stop

    try:
        context = TrialContext(
            study=study,
            space=load_space(str(space)),
            dataset=read_dataset(data),
            repeats=2,
            seed=7,
            objectives=("f1_macro_skill",),
        )
        train_trial({}, context, "t1", report=report, device=device)  # type: ignore[arg-type]
    except Stop:
        return {}
    doc: dict[str, Any] = json.loads((study / "trials" / "t1" / "result.json").read_text())
    return doc


def _figures(result: dict[str, Any]) -> list[dict[str, float]]:
    return [{k: r.get(k) for k in COMPARED} for r in result["repeats"]]


def across(data: str, work: Path, first: str, then: str) -> dict[str, Any]:
    study = work / f"{first}-to-{then}"
    _trial(study, data, first, False, stop=True)
    result = _trial(study, data, then, False, stop=False)
    reseeded = result["history"].get("generator_reseeded", [])
    return {
        "device": result["device"],
        "generator_reseeded": reseeded,
        "ok": result["device"].startswith(then)
        and len(reseeded) == 2
        and all(r["from"] == first and r["to"] == then for r in reseeded),
    }


def same_device(data: str, work: Path, deterministic: bool) -> dict[str, Any]:
    tag = "det" if deterministic else "nondet"
    straight = _trial(work / f"straight-{tag}", data, "cuda", deterministic, stop=False)
    _trial(work / f"resumed-{tag}", data, "cuda", deterministic, stop=True)
    resumed = _trial(work / f"resumed-{tag}", data, "cuda", deterministic, stop=False)
    a, b = _figures(straight), _figures(resumed)
    diff = max(abs(float(x[k]) - float(y[k])) for x, y in zip(a, b, strict=True) for k in COMPARED)
    return {
        "deterministic": deterministic,
        "identical": a == b,
        "max_abs_diff": diff,
        "straight": a,
        "resumed": b,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True)
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)
    import torch

    if not torch.cuda.is_available():
        print("cross_device: no CUDA device", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="cross_device-"))
    doc: dict[str, Any] = {}
    out = Path(args.out)
    cases = [
        ("cuda_to_cpu", lambda: across(args.data, work, "cuda", "cpu")),
        ("cpu_to_cuda", lambda: across(args.data, work, "cpu", "cuda")),
        ("cuda_resume_deterministic", lambda: same_device(args.data, work, True)),
        ("cuda_resume_default", lambda: same_device(args.data, work, False)),
    ]
    for name, case in cases:
        try:
            doc[name] = case()
        except Exception as e:  # recorded; the next case still runs
            doc[name] = {"error": f"{type(e).__name__}: {str(e).splitlines()[0][:400]}"}
        out.write_text(json.dumps(doc, indent=1))  # each case kept, whatever the next does
        print(name, json.dumps(doc[name])[:300], flush=True)
    ok = (
        doc["cuda_to_cpu"].get("ok")
        and doc["cpu_to_cuda"].get("ok")
        and doc["cuda_resume_deterministic"].get("identical")
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
