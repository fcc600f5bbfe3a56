"""benchmarks/pack_throughput.py on the CPU: a packed study's figures, counted as a user's."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import pack_throughput

pytestmark = pytest.mark.slow


def test_a_packed_study_is_measured_trial_by_trial(tmp_path: Path, synthetic_csv: Path) -> None:
    space = tmp_path / "tiny.yaml"
    space.write_text(
        "fixed: {blocks: [1, 1, 1, 1, 1], hidden_ratio: 0.25, cd_draws: 1, test_fraction: 0.1}\n"
        "params:\n  lr: {type: float, low: 1.0e-4, high: 3.0e-3, log: true}\n"
        "  epochs: {type: int, low: 2, high: 3}\n"
    )
    run = pack_throughput.study_run(str(synthetic_csv), tmp_path / "st", str(space), 2, 3, 0.0)
    assert "error" not in run, run
    assert run["by_state"] == {"COMPLETED": 3} and run["pack"] == 2
    assert 6 <= run["trial_epochs"] <= 9 and run["trials_per_hour"] > 0


def test_a_compiled_run_fixes_compile_step_in_a_copy_of_the_space(tmp_path: Path) -> None:
    from revstudy.study.spaces import load_space

    path = pack_throughput.compiled_space("quick", "reduce-overhead", tmp_path / "st")
    space, quick = load_space(path), load_space("quick")
    assert Path(path).parent == tmp_path / "st"
    assert space.fixed == {**quick.fixed, "compile_step": "reduce-overhead"}
    assert [p.name for p in space.params] == [p.name for p in quick.params]
