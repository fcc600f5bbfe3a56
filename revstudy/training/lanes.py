"""Repeats in parallel CPU lanes: R independent jobs on worker threads, each with its share
of the intra-op threads.

On a CPU the vmapped ensemble (`revstudy.training.fused`) gains little: the paper
configuration is compute bound, and one model's kernels use two cores only ~70 % as well as
one core each (measured in `benchmarks/train_speed.py`). Running the repeats side by side,
each on its own core(s), uses the cores fully instead. PyTorch releases the GIL inside its
kernels and runs a CPU backward on the calling thread, so Python threads are enough.

Results depend on the number of intra-op threads only through floating-point summation
order, exactly as a run on another machine would.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

import torch

T = TypeVar("T")


def lane_count(jobs: int, threads: int) -> int:
    """How many lanes `jobs` jobs get on `threads` intra-op threads (1: run them in turn)."""
    return max(1, min(jobs, threads))


def run_in_lanes(
    jobs: Sequence[Callable[[], T]],
    threads: int | None = None,
    describe: Callable[[int], str] | None = None,
) -> list[T]:
    """Run `jobs` in waves of `lane_count` side by side, each job with its wave's share of
    the `threads` intra-op threads (default: torch's current count), and return their
    results in job order. A last, smaller wave gets more threads a job: 3 jobs on 2 threads
    run as 2 side by side, then 1 on both threads, not as 2 and then 1 next to an idle core.

    Every job runs to its end even when another fails (a job cannot be stopped half way
    through a step); then the first failure in job order is raised, with `describe(i)` as a
    note. Torch's thread count is restored afterwards."""
    threads = torch.get_num_threads() if threads is None else threads
    lanes = lane_count(len(jobs), threads)
    if lanes == 1:
        return [_annotated(job, i, describe) for i, job in enumerate(jobs)]
    futures: list[Future[T]] = []
    try:
        for start in range(0, len(jobs), lanes):
            wave = jobs[start : start + lanes]
            share = max(1, threads // len(wave))
            with ThreadPoolExecutor(len(wave), thread_name_prefix="revstudy-lane") as pool:
                futures += [pool.submit(_with_threads, job, share) for job in wave]
    finally:
        # a worker's set_num_threads also changes the default new threads start from
        torch.set_num_threads(threads)
    return [_annotated(f.result, i, describe) for i, f in enumerate(futures)]


def _with_threads(job: Callable[[], T], threads: int) -> T:
    torch.set_num_threads(threads)  # this worker thread's intra-op threads
    return job()


def _annotated(job: Callable[[], T], i: int, describe: Callable[[int], str] | None) -> T:
    try:
        return job()
    except Exception as e:
        if describe is not None:
            e.add_note(describe(i))
        raise
