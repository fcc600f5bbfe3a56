"""benchmarks/pareto_scale.py times sorting, ranking, MO-ASHA decisions and the rungs'
refill at up to 10⁴ trials: checked on small sizes that its "before" sort is the one it
replaced (the same fronts as today's) and that every figure is measured. Timings are the
benchmark's."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "benchmarks"))

import pareto_scale  # noqa: E402

from revstudy.study import scheduling  # noqa: E402
from revstudy.studyfolder import pareto_fronts  # noqa: E402


def test_the_before_sort_gives_todays_fronts() -> None:
    values = np.random.default_rng(0).integers(0, 5, size=(80, 2)).astype(float)
    assert pareto_scale.fronts_before(values).tolist() == pareto_fronts(values).tolist()


def test_every_figure_is_measured_and_the_sort_is_put_back() -> None:
    row = pareto_scale.measure(40, before_max=40, replay_before_max=40)
    assert row["fronts_2obj_identical"] and row["fronts_3obj_identical"]
    timed = [k for k in row if k.endswith("_s")]
    assert len(timed) == 10 and all(row[k] >= 0 for k in timed)
    assert scheduling.pareto_fronts is pareto_fronts  # the "before" replay's swap undone
    small = pareto_scale.measure(40, before_max=10, replay_before_max=10)
    assert "fronts_before_2obj_s" not in small and "replay_before_2obj_s" not in small
    assert "replay_before_1obj_s" in small  # one objective: timed at every size
