"""How many CPU threads `train` and `evaluate` use when the user does not say.

torch takes every physical core by default. On a machine busy with other work that
oversubscribes it: torch's OpenMP threads wait on each other for a core, and on a loaded
2-core machine two threads ran a paper-configuration epoch 3–5× slower than one (82–124 s
against 24–27 s, issue #30). So the default is the cores free now: the cores this process
may run on minus the 1-minute load average, at least 1 and at most torch's default. A study
needs none of this: each trial runs one thread (`--cpus-per-trial`), so a busy machine slows
its trials in proportion, not several-fold.
"""

from __future__ import annotations

import os

import torch

__all__ = ["auto_threads", "free_cores", "load_average", "set_threads", "usable_cores"]


def usable_cores() -> int:
    """Cores this process may run on (its affinity where the system has one)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0)) or 1
    return os.cpu_count() or 1


def load_average() -> float:
    """The machine's 1-minute load average (in a container, the host's); 0 where the
    system has none."""
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return 0.0


def free_cores(usable: int, load: float) -> int:
    """Cores not busy: `usable` minus `load`, rounded, at least 1, at most `usable`."""
    return max(1, min(usable, round(usable - load)))


def auto_threads() -> tuple[int, str]:
    """The default thread count (free cores, at most torch's default) and the line the
    commands print about it."""
    usable, load = usable_cores(), load_average()
    n = min(torch.get_num_threads(), free_cores(usable, load))
    return n, f"{n} of {usable} core(s) free (1-minute load {load:.1f}); --threads N to choose"


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
