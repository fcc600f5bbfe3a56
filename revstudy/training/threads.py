"""How many CPU threads `train` and `evaluate` use when the user does not say.

torch takes every physical core by default. On a machine busy with other work that
oversubscribes it: torch's OpenMP threads wait on each other for a core, and on a 2-core
machine with one core busy two threads ran a paper-configuration epoch 2.3× slower than one
(benchmarks/first_contact.py; 3–5× in issue #30). So the default is the cores free now: the
cores this process may run on minus the CPU time other processes used on them over a short
window, at least 1 and at most torch's default. Measured, not the load average: that lags a
minute behind, so a command started right after a study ended would see the study's load.
A study needs none of this: each trial runs one thread (`--cpus-per-trial`), so a busy
machine slows its trials in proportion, not several-fold.
"""

from __future__ import annotations

import os

import torch

__all__ = ["auto_threads", "busy_cores", "free_cores", "set_threads", "usable_cores"]

WINDOW_S = 0.3  # how long the default looks at the other processes' CPU use


def usable_cores() -> int:
    """Cores this process may run on (its affinity where the system has one)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0)) or 1
    return os.cpu_count() or 1


def busy_cores(window_s: float = WINDOW_S) -> float:
    """Cores' worth of CPU time used over the next `window_s` seconds on the cores this
    process may run on (psutil's per-CPU busy shares; in a container, the host's use)."""
    import psutil

    shares = psutil.cpu_percent(interval=window_s, percpu=True)
    mine = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else range(len(shares))
    return sum(shares[i] for i in mine if i < len(shares)) / 100


def free_cores(usable: int, busy: float) -> int:
    """Cores not busy: `usable` minus `busy`, rounded, at least 1, at most `usable`."""
    return max(1, min(usable, round(usable - busy)))


def auto_threads() -> tuple[int, str]:
    """The default thread count (free cores, at most torch's default) and the line the
    commands print about it."""
    usable, busy = usable_cores(), busy_cores()
    n = min(torch.get_num_threads(), free_cores(usable, busy))
    return n, f"{n} of {usable} core(s) free ({busy:.1f} busy); --threads N to choose"


def set_threads(threads: int | None) -> str | None:
    """Apply `--threads`: None → `auto_threads` (returns the line to print), 0 → torch's
    default (every physical core), N → N."""
    if threads is None:
        n, why = auto_threads()
        torch.set_num_threads(n)
        return f"threads: {why}"
    if threads > 0:
        torch.set_num_threads(threads)
    return None
