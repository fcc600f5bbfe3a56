"""Repeats in parallel CPU lanes: R independent jobs on worker threads, one intra-op
thread each.

On a CPU the vmapped ensemble (`revstudy.training.fused`) gains little: the paper
configuration is compute bound, and one model's kernels use two cores only ~70 % as well as
one core each (measured in `benchmarks/train_speed.py`). Running the repeats side by side,
each on a core of its own, uses the cores fully instead. PyTorch releases the GIL inside its
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
    """Run `jobs` in waves of `lane_count` side by side, one intra-op thread each, and
    return their results in job order. A job left alone in the last wave runs on the calling
    thread with all `threads` (default: torch's current count): 3 jobs on 2 threads run as 2
    side by side, then 1 on both threads.

    One thread a lane, because OpenMP teams started from worker threads barely spin while
    they wait (libgomp throttles spinning once it manages more threads than there are CPUs,
    and the calling thread's idle team counts): one repeat on 2 threads of a worker thread
    took 5.2 s an epoch here against 3.35 s on the calling thread and 3.96 s on 1 thread.

    Every job runs to its end even when another fails (a job cannot be stopped half way
    through a step); then the first failure in job order is raised, with `describe(i)` as a
    note. Torch's thread count is restored afterwards."""
    threads = torch.get_num_threads() if threads is None else threads
    lanes = lane_count(len(jobs), threads)
    if lanes == 1:
        return [_annotated(job, i, describe) for i, job in enumerate(jobs)]
    outcomes: list[Future[T]] = []
    try:
        for start in range(0, len(jobs), lanes):
            wave = jobs[start : start + lanes]
            if len(wave) == 1:  # alone: the calling thread, whose OpenMP team spins
                torch.set_num_threads(threads)
                outcomes.append(_run_here(wave[0]))
                continue
            with ThreadPoolExecutor(len(wave), thread_name_prefix="revstudy-lane") as pool:
                outcomes += [pool.submit(_on_one_thread, job) for job in wave]
    finally:
        # a worker's set_num_threads also changes the default new threads start from
        torch.set_num_threads(threads)
    return [_annotated(f.result, i, describe) for i, f in enumerate(outcomes)]


def _on_one_thread(job: Callable[[], T]) -> T:
    torch.set_num_threads(1)  # this worker thread's intra-op threads
    return job()


def _run_here(job: Callable[[], T]) -> Future[T]:
    """`job()` on the calling thread, its value or exception kept like a worker's."""
    done: Future[T] = Future()
    try:
        done.set_result(job())
    except Exception as e:
        done.set_exception(e)
    return done


def _annotated(job: Callable[[], T], i: int, describe: Callable[[int], str] | None) -> T:
    try:
        return job()
    except Exception as e:
        if describe is not None:
            e.add_note(describe(i))
        raise
