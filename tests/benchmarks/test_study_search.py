"""The figures of benchmarks/warm_start.py and benchmarks/mo_asha.py, checked against
independent calculations (Optuna's hypervolume; a hand-ranked table)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import mo_asha
import warm_start

from revstudy.studyfolder import Objective


@pytest.mark.parametrize("seed", range(5))
def test_hypervolume_matches_optuna(seed: int) -> None:
    from optuna._hypervolume import compute_hypervolume

    rng = np.random.default_rng(seed)
    points = rng.uniform(-0.2, 1.0, size=(int(rng.integers(1, 12)), 2))
    ours = mo_asha.hypervolume_2d(points, (0.0, 0.0))
    inside = points[(points > 0).all(axis=1)]
    # Optuna minimises: negate, reference point (0, 0) negated is itself
    theirs = compute_hypervolume(-inside, np.zeros(2)) if len(inside) else 0.0
    assert ours == pytest.approx(theirs)


def test_hypervolume_of_a_known_front() -> None:
    # (0.5, 0.1) and (0.2, 0.4): 0.5*0.1 + 0.2*(0.4-0.1) = 0.11; (0.1, 0.05) is dominated
    front = np.array([[0.5, 0.1], [0.2, 0.4], [0.1, 0.05]])
    assert mo_asha.hypervolume_2d(front, (0.0, 0.0)) == pytest.approx(0.11)


def test_best_after_k_trials_and_trials_to_reach_a_target() -> None:
    """Trials in Optuna-number order (not table order); a diverged or stopped-early trial
    is never the best, as `revstudy status` ranks."""
    table = pd.DataFrame(
        {
            "trial_id": list("abcdef"),
            "number": [5, 0, 1, 2, 3, 4],
            "state": [
                "COMPLETED",
                "COMPLETED",
                "DIVERGED",
                "COMPLETED",
                "STOPPED_EARLY",
                "COMPLETED",
            ],
            "f1": [0.9, 0.1, 0.99, 0.3, 0.8, 0.2],
        }
    )
    objectives = [Objective("f1", "max")]
    got = warm_start.best_after(table, objectives, (1, 2, 4, 6))
    assert got == {1: 0.1, 2: 0.1, 4: 0.3, 6: 0.9}
    assert warm_start.trials_to_reach(table, objectives, 0.3) == 3
    assert warm_start.trials_to_reach(table, objectives, 0.95) is None


def test_mo_summary_is_shares_of_the_full_runs() -> None:
    runs = [
        {"seed": 0, "scheduler": "asha", "hypervolume": 0.19, "trial_epochs": 30},
        {"seed": 0, "scheduler": "none", "hypervolume": 0.2, "trial_epochs": 60},
        {"seed": 1, "scheduler": "asha", "hypervolume": 0.1, "trial_epochs": 40},
        {"seed": 1, "scheduler": "none", "hypervolume": 0.1, "trial_epochs": 50},
    ]
    s = mo_asha.summarise(runs)
    assert s["mean_hypervolume_share"] == pytest.approx(0.975)
    assert s["mean_epoch_share"] == pytest.approx(0.65)
    assert s["target_met"] is False


def test_warm_summary_compares_pairs_and_means() -> None:
    doc = {
        "conditions": {"samples": 16},
        "cold": [
            {"best_after": {4: 0.1, 8: 0.1, 16: 0.2}},
            {"best_after": {4: 0.1, 8: 0.1, 16: 0.1}},
        ],
        "warm": [
            {"best_after": {4: 0.1, 8: 0.18, 16: 0.2}, "trials_to_reach_cold_best": 9},
            {"best_after": {4: 0.12, 8: 0.12, 16: 0.2}, "trials_to_reach_cold_best": 3},
        ],
    }
    s = warm_start.summarise(doc)
    assert s["cold_best_after"][16] == pytest.approx(0.15)
    assert s["warm_best_after"][8] == pytest.approx(0.15)
    assert s["target_met"] is False  # the first pair needed 9 > 8 trials
    assert s["target_met_on_means"] is True  # 0.15 after 8 >= 0.15 after 16
