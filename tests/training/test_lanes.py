"""Repeats side by side in CPU lanes (revstudy.training.lanes) and the strategy choice."""

from __future__ import annotations

import functools
import threading
import time

import pytest
import torch

from revstudy.data.dataset import Dataset, read_dataset
from revstudy.training.config import TrialConfig
from revstudy.training.fused import Repeats, repeat_strategy
from revstudy.training.lanes import lane_count, run_in_lanes
from revstudy.training.splits import SplitTensors
from revstudy.training.trainer import Trainer
from tests.conftest import synthetic_rows, write_csv
from tests.training.float64 import as_float64, assert_same_runs, default_float64

TINY = TrialConfig(blocks=(1, 1, 1, 1, 1), hidden_ratio=0.25, epochs=2, cd_draws=1, batch_size=64)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Dataset:
    path = tmp_path_factory.mktemp("lanes") / "rows.csv"
    return read_dataset(write_csv(path, synthetic_rows(90)))


@pytest.fixture
def two_threads() -> object:
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


def trainers(ds: Dataset, repeats: int = 3, *, float64: bool = False) -> list[Trainer]:
    """Fresh repeats; `float64` (inside `default_float64`) to compare training paths over
    several steps (tests/training/float64.py says why)."""
    out = []
    for r in range(repeats):
        data = SplitTensors.build(ds, TINY, r)
        out.append(Trainer(TINY, as_float64(data) if float64 else data, seed=r))
    return out


def test_lane_count() -> None:
    assert lane_count(4, 2) == 2
    assert lane_count(3, 16) == 3
    assert lane_count(1, 8) == 1
    assert lane_count(5, 1) == 1
    assert lane_count(0, 4) == 1


def test_jobs_run_side_by_side_on_one_thread_each(two_threads: object) -> None:
    barrier = threading.Barrier(2, timeout=10)  # passes only if two jobs run at once

    def job(i: int) -> tuple[int, int, str]:
        barrier.wait()
        return i, torch.get_num_threads(), threading.current_thread().name

    got = run_in_lanes([functools.partial(job, i) for i in range(2)])
    assert [g[0] for g in got] == [0, 1]  # job order
    assert [g[1] for g in got] == [1, 1]
    assert len({g[2] for g in got}) == 2
    assert torch.get_num_threads() == 2  # restored


def test_a_job_alone_in_the_last_wave_runs_here_on_all_threads() -> None:
    barrier = threading.Barrier(2, timeout=10)
    here = threading.current_thread().name

    def job(i: int) -> tuple[int, bool]:
        if i < 2:
            barrier.wait()  # the first two side by side
        return torch.get_num_threads(), threading.current_thread().name == here

    got = run_in_lanes([functools.partial(job, i) for i in range(3)], threads=2)
    assert got == [(1, False), (1, False), (2, True)]
    got = run_in_lanes([functools.partial(job, i) for i in range(5)], threads=4)
    assert got == [(1, False)] * 4 + [(4, True)]


def test_one_lane_runs_in_turn_on_the_calling_thread() -> None:
    here = threading.current_thread().name
    got = run_in_lanes([lambda: threading.current_thread().name] * 3, threads=1)
    assert got == [here] * 3


def test_a_failure_lets_the_other_jobs_finish_and_names_the_first(two_threads: object) -> None:
    done: list[int] = []

    def job(i: int) -> int:
        if i in (1, 2):
            raise ValueError(f"job {i} broke")
        time.sleep(0.05)
        done.append(i)
        return i

    with pytest.raises(ValueError, match="job 1 broke") as info:
        jobs = [functools.partial(job, i) for i in range(4)]
        run_in_lanes(jobs, describe=lambda i: f"repeat {i}")
    assert sorted(done) == [0, 3]
    assert info.value.__notes__ == ["repeat 1"]
    assert torch.get_num_threads() == 2


def test_strategy_per_device() -> None:
    cpu, gpu_like = torch.device("cpu"), torch.device("meta")  # meta stands in for a GPU
    assert repeat_strategy(cpu, 4, threads=2) == "lanes"
    assert repeat_strategy(cpu, 2, threads=2) == "lanes"
    assert repeat_strategy(cpu, 3, threads=8) == "vmap"  # lanes would leave 5 cores idle
    assert repeat_strategy(cpu, 4, threads=1) == "sequential"
    assert repeat_strategy(cpu, 1, threads=8) == "sequential"
    assert repeat_strategy(gpu_like, 4, threads=1) == "vmap"
    assert repeat_strategy(gpu_like, 1) == "sequential"


def test_lanes_follow_the_sequential_repeats(dataset: Dataset, two_threads: object) -> None:
    """Lanes (one thread each) against one by one (two threads each): the same arithmetic
    summed in another order, so compared in float64 (float64.py)."""
    with default_float64():
        seq = trainers(dataset, float64=True)
        for _ in range(TINY.epochs):
            for t in seq:
                t.train_epoch()
        side = trainers(dataset, float64=True)
        group = Repeats(side)
        assert group.strategy == "lanes" and not group.fused
        for _ in range(TINY.epochs):
            start = time.perf_counter()
            recs = group.train_epoch()
            wall = time.perf_counter() - start
            assert [r.epoch for r in recs] == [group.trainers[0].epoch] * 3
            # the repeats share the wall time: their seconds add up to it
            assert sum(r.seconds for r in recs) == pytest.approx(wall, rel=0.05)
        evals = group.map(lambda t: t.evaluate("val").metrics["f1_macro"])
        want = [t.evaluate("val").metrics["f1_macro"] for t in seq]
    assert_same_runs(seq, side)
    for ta, tb in zip(seq, side, strict=True):
        assert [r.val_f1_macro for r in ta.history] == [r.val_f1_macro for r in tb.history]
        assert tb.train_seconds == pytest.approx(sum(h.seconds for h in tb.history))
    assert evals == want


def test_no_fuse_and_unknown_strategies(dataset: Dataset) -> None:
    ts = trainers(dataset, 2)
    assert Repeats(ts, fuse=False, strategy="lanes").strategy == "sequential"
    with pytest.raises(ValueError, match="unknown repeat strategy 'threads'"):
        Repeats(ts, strategy="threads")  # type: ignore[arg-type]
