"""Write synthetic study directories that follow docs/study-dir.md, with known numbers.

Used by the analysis tests and, run as a script, to make the docs/report.png screenshot:
    python tests/analysis/analysis_synthetic.py OUT_DIR [single|multi|failed|running]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import optuna
import pandas as pd

RADII = [0.01, 0.05, 0.1, 0.2, 0.5, 1.0]
KINDS = ("single", "multi", "failed", "running", "minimal")


def _params(rng: np.random.Generator, i: int) -> dict:
    if i == 0:  # the paper configuration
        return {"lr": 1e-3, "hidden": 256, "dropout": 0.0, "coupling": "affine"}
    return {
        "lr": float(10 ** rng.uniform(-4, -2)),
        "hidden": int(rng.integers(64, 513)),
        "dropout": float(rng.uniform(0, 0.5)),
        "coupling": str(rng.choice(["affine", "additive"])),
    }


def _distributions() -> dict:
    d = optuna.distributions
    return {
        "lr": d.FloatDistribution(1e-4, 1e-2, log=True),
        "hidden": d.IntDistribution(64, 512),
        "dropout": d.FloatDistribution(0.0, 0.5),
        "coupling": d.CategoricalDistribution(["affine", "additive"]),
    }


def _state(kind: str, i: int, n: int) -> str:
    if kind == "failed":
        return "FAILED"
    if kind == "running" and i >= n - 3:
        return "RUNNING" if i < n - 1 else "PENDING"
    if i in (3, 7):
        return "STOPPED_EARLY"
    if i == 5:
        return "FAILED"
    return "COMPLETED"


def make_study(root: Path, kind: str = "single", n_trials: int = 14, seed: int = 0) -> Path:
    """Create root/<kind> as a study directory and return its path.

    kind: single (one objective), multi (f1_macro max + inv_error_max min), failed (every
    trial failed), running (last three running/pending), minimal (no epochs, no arrays).
    """
    assert kind in KINDS, kind
    rng = np.random.default_rng(seed)
    path = root / kind
    path.mkdir(parents=True)
    name = f"synthetic-{kind}"
    objectives = [{"metric": "f1_macro", "mode": "max"}]
    if kind == "multi":
        objectives.append({"metric": "inv_error_max", "mode": "min"})
    info = {
        "name": name,
        "space": {"name": "synthetic", "path": "-", "params": {
            "lr": {"type": "loguniform", "low": 1e-4, "high": 1e-2},
            "hidden": {"type": "randint", "low": 64, "high": 512},
            "dropout": {"type": "uniform", "low": 0.0, "high": 0.5},
            "coupling": {"type": "choice", "values": ["affine", "additive"]}}},
        "sampler": "tpe", "scheduler": "asha", "seed": seed, "objectives": objectives,
        "num_samples": n_trials, "repeats": 3, "test_fraction": 0.2,
        "data": {"path": "synthetic.csv", "sha256": "0" * 64, "rows": 1267},
        "optuna_study_name": name, "baseline": True,
        "created": "2026-11-27T17:00:00+00:00", "versions": {"revstudy": "0.1.0"},
    }  # fmt: skip
    (path / "study.json").write_text(json.dumps(info, indent=2))

    storage = f"sqlite:///{path / 'optuna.db'}"
    directions = ["maximize"] + (["minimize"] if kind == "multi" else [])
    ostudy = optuna.create_study(study_name=name, storage=storage, directions=directions)
    rows, epochs = [], []
    for i in range(n_trials):
        tid = f"t{i:03d}"
        p = _params(rng, i)
        state = _state(kind, i, n_trials)
        # F1 rises with log lr, so lr is the important parameter; baseline ≈ paper 0.1695.
        f1 = 0.1695 + 0.01 * (np.log10(p["lr"]) + 3) + rng.normal(0, 0.002)
        inv = float(10 ** rng.uniform(-4.1, -3.8))
        n_ep = 2 if state == "STOPPED_EARLY" else 5
        finished = state in ("COMPLETED", "STOPPED_EARLY")
        metrics = {
            "f1_macro": f1, "f1_micro": f1 + 0.01, "f1_samples": f1 - 0.01,
            "f1_macro_present": f1 + 0.02, "f1_random_baseline": 0.0643 + rng.normal(0, 1e-3),
            "f1_bin_prior_baseline": 0.07, "inv_error_max": inv, "inv_error_mean": inv / 2,
            "inv_error_p95": inv / 1.5, "z_free_mean_mean": 0.08, "z_free_mean_std": 0.03,
            "z_free_std_mean": 0.59, "z_free_std_std": 0.08, "cond_variation_mean": 3.46,
            "cond_variation_std": 0.83, "bond_count_corr": 0.19, "bond_count_pvalue": 0.01,
            "aromatic_corr": 0.18, "aromatic_pvalue": 0.02, "bond_count_corr_true_z": 0.3,
            "aromatic_corr_true_z": 0.25, "val_loss": 0.11, "train_seconds": 30.0,
            "epochs": n_ep,
            # the baseline (source numbering) loses its skill renumbered; the others keep it
            "f1_macro_skill": (f1 - 0.07) / 0.93,
            "f1_macro_skill_relabelled": (f1 - 0.07) / 0.93 * (0.1 if i == 0 else 1.0),
        }  # fmt: skip
        for r in RADII:
            for m in ("cd_local", "rcd_local", "cd_prior", "rcd_prior"):
                metrics[f"{m}_r{r}"] = 38.0 * r if m.startswith("cd") else 0.6
        if not finished:
            metrics = dict.fromkeys(metrics, np.nan)
        row = {
            "trial_id": tid, "number": i, "state": state,
            "failure_reason": "RuntimeError: CUDA out of memory" if state == "FAILED" else "",
            "is_baseline": i == 0, "epochs_done": n_ep if finished else 0,
            "wall_seconds": 42.0, "device": "cuda" if i == 2 else "cpu", "tf32": i == 2,
            "generator_reseeded": int(i == 3),
            **{f"config/{k}": v for k, v in p.items()}, "config/epochs": 5,
            "config/hidden_sizes": json.dumps([p["hidden"], p["hidden"]]),
            **metrics, **{f"{k}_std": 0.0 for k in metrics},
        }  # fmt: skip
        rows.append(row)
        if finished and kind != "minimal":
            for rep in range(3):
                for ep in range(1, n_ep + 1):
                    epochs.append({
                        "trial_id": tid, "repeat": rep, "epoch": ep,
                        "train_loss": 0.2 / ep, "train_loss_y": 0.1 / ep,
                        "train_loss_x": 0.0015, "train_loss_latent": 0.01,
                        "val_loss": 0.1 + 0.002 * ep, "val_loss_y": 0.1,
                        "val_f1_macro": f1 * (1 - np.exp(-ep)), "seconds": 6.0,
                    })  # fmt: skip
            _write_arrays(path / "trials" / tid, rng, f1, i == 0, from_code=kind != "multi")
        ostate = {"COMPLETED": "COMPLETE", "STOPPED_EARLY": "PRUNED", "FAILED": "FAIL",
                  "RUNNING": "RUNNING", "PENDING": "WAITING"}[state]  # fmt: skip
        values = [f1] + ([inv] if kind == "multi" else [])
        ostudy.add_trial(
            optuna.trial.create_trial(
                params=p if state != "PENDING" else {},
                distributions=_distributions() if state != "PENDING" else {},
                values=values if ostate == "COMPLETE" else None,
                intermediate_values={1: f1 / 2} if ostate == "PRUNED" else None,
                state=getattr(optuna.trial.TrialState, ostate),
            )
        )
    pd.DataFrame(rows).to_parquet(path / "trials.parquet", index=False)
    if epochs:
        pd.DataFrame(epochs).to_parquet(path / "epochs.parquet", index=False)
    return path


def _write_arrays(
    d: Path, rng: np.random.Generator, f1: float, baseline: bool, from_code: bool
) -> None:
    """from_code=False writes a trial as revstudy recorded it before it kept the counts
    generated from the code alone (the multi study stands for such an older study)."""
    d.mkdir(parents=True)
    n_val = 250
    real = rng.poisson(20, n_val).astype(float)
    arom = rng.poisson(6, n_val).astype(float)
    extra = {}
    if from_code:  # its own generator: the other arrays and the trials' params stay as they were
        code_rng = np.random.default_rng(int(real.sum()))
        extra = {
            "bond_count_generated_from_code": 0.1 * real + code_rng.normal(0, 3, n_val),
            "aromatic_generated_from_code": code_rng.poisson(5, n_val).astype(float),
        }
    np.savez(
        d / "arrays.npz",
        **extra,
        z_free_sample=rng.normal(0.0858, 0.5861, 3000),  # Table 3: std clearly below 1
        z_free_sample_means=rng.normal(0.0858, 0.0334, n_val),
        z_free_sample_stds=rng.normal(0.5861, 0.0795, n_val),
        cd_radii=np.array(RADII),
        cd_local=38.0 * np.array(RADII), rcd_local=np.full(6, 0.6),
        cd_prior=30.0 * np.array(RADII), rcd_prior=np.full(6, 0.5),
        bond_count_real=real, bond_count_generated=0.5 * real + rng.normal(0, 3, n_val),
        aromatic_real=arom, aromatic_generated=0.5 * arom + rng.normal(0, 2, n_val),
        repeat_f1_macro=(np.array([0.1548, 0.1695, 0.1839]) if baseline
                         else f1 + np.array([0.2, 0.21, 0.22])),
        repeat_bond_count_corr=np.array([0.18, 0.19, 0.2]),
        repeat_aromatic_corr=np.array([0.17, 0.18, 0.19]),
        repeat_inv_error_max=np.array([1e-4, 1.1e-4, 1.2e-4]),
    )  # fmt: skip


if __name__ == "__main__":
    out = Path(sys.argv[1])
    kind = sys.argv[2] if len(sys.argv) > 2 else "single"
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    print(make_study(out, kind))


def journal_study(root: Path) -> Path:
    """The synthetic single study (root/single) with its Optuna record as a journal, as
    launch writes it."""
    from revstudy.optunafile import optuna_storage

    folder = make_study(root, "single")
    name = json.loads((folder / "study.json").read_text())["name"]
    db = (folder / "optuna.db").rename(root / "old.db")
    optuna.copy_study(
        from_study_name=name,
        from_storage=f"sqlite:///{db}",
        to_storage=optuna_storage(folder, create=True),
    )
    return folder


def cut_journal_short(journal: Path) -> None:
    """Cut an Optuna journal a few trials in, as a copy taken mid-write leaves it: the
    first trials survive, the trial folders of the later ones are not in it."""
    lines = journal.read_bytes().splitlines(keepends=True)
    first_trial = next(i for i, line in enumerate(lines) if b'"op_code":4,' in line)
    journal.write_bytes(b"".join(lines[: first_trial + 8]))
