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

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
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
    """Run `jobs` on `lane_count` worker threads, each with `threads // lanes` intra-op
    threads (default: torch's current count), and return their results in job order.

    Every job runs to its end even when another fails (a job cannot be stopped half way
    through a step); then the first failure in job order is raised, with `describe(i)` as a
    note. Torch's thread count is restored afterwards."""
    threads = torch.get_num_threads() if threads is None else threads
    lanes = lane_count(len(jobs), threads)
    if lanes == 1:
        return [_annotated(job, i, describe) for i, job in enumerate(jobs)]
    per_lane = max(1, threads // lanes)
    ready = threading.local()

    def run(i: int) -> T:
        if not getattr(ready, "set", False):  # once per worker thread
            torch.set_num_threads(per_lane)
            ready.set = True
        return jobs[i]()

    try:
        with ThreadPoolExecutor(lanes, thread_name_prefix="revstudy-lane") as pool:
            futures = [pool.submit(run, i) for i in range(len(jobs))]
            for f in futures:
                f.exception()  # wait for every job
    finally:
        # a worker's set_num_threads also changes the default new threads start from
        torch.set_num_threads(threads)
    return [_annotated(f.result, i, describe) for i, f in enumerate(futures)]


def _annotated(job: Callable[[], T], i: int, describe: Callable[[int], str] | None) -> T:
    try:
        return job()
    except Exception as e:
        if describe is not None:
            e.add_note(describe(i))
        raise
