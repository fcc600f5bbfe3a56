"""benchmarks/driver_loop.py runs new trials through the driver's own objects, lone and in
packs (issue #31 item 6): checked on a small study that every new trial reached Optuna as
its own finished trial and that TPE split the finished trials once per pack and search
space, not once per member. Timings are the benchmark's, not asserted here."""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import optuna
import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "benchmarks"))

import driver_loop  # noqa: E402


@pytest.mark.parametrize("pack", [1, 4])
def test_the_loop_finishes_every_new_trial(pack: int, tmp_path: Path) -> None:
    out = tmp_path / "loop.json"
    args = driver_loop.parse_args(
        ["--sizes", "12", "--rounds", "8", "--rate", "1e9", "--samplers", "tpe",
         "--storages", "journal", "--packs", str(pack), "--out", str(out)]
    )  # fmt: skip
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        row = driver_loop.measure(12, "tpe", "journal", pack, args)
    assert row["pack"] == pack and row["rounds"] == 8
    assert row["finished_new"] == 8  # every new trial told to Optuna, each its own trial
    # one split per finished set and search space: lone trials one per ask, a pack two
    # (its first member's whole space, the others' with the shape fixed)
    assert row["tpe_fits"] == (8 if pack == 1 else 2 * 8 // pack)
    assert 0 < row["share_of_wall"] < 1 and row["driver_s_mean"] > 0


def test_the_synthetic_results_are_a_working_model_s() -> None:
    """The records the loop writes must take the callback's path for a completed trial:
    figures that `numerical_problem` calls broken would make every new trial DIVERGED (its
    inversion error was once drawn around 0.1, ten times the limit)."""
    import numpy as np

    from revstudy.studyfolder import numerical_problem

    rng = np.random.default_rng(0)
    for _ in range(200):
        metrics = driver_loop._metrics(rng, 5)
        assert numerical_problem(metrics, ("f1_macro_skill_relabelled",)) is None
