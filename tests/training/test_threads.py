"""The default thread count: the cores free now (issue #30: two threads on a busy 2-core
machine ran 3–5× slower than one)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch

from revstudy.training import threads as threads_mod
from revstudy.training.threads import free_cores, set_threads


@pytest.fixture(autouse=True)
def _restore_threads() -> Iterator[None]:
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize(
    ("usable", "load", "want"),
    [(2, 0.0, 2), (2, 0.4, 2), (2, 0.6, 1), (2, 1.3, 1), (2, 7.5, 1), (16, 3.2, 13), (4, -1, 4)],
)
def test_free_cores_are_the_usable_ones_not_busy(usable: int, load: float, want: int) -> None:
    assert free_cores(usable, load) == want


def test_the_default_takes_the_free_cores_and_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    torch.set_num_threads(2)
    monkeypatch.setattr(threads_mod, "usable_cores", lambda: 2)
    monkeypatch.setattr(threads_mod, "busy_cores", lambda: 1.3)  # one core busy elsewhere
    line = set_threads(None)
    assert torch.get_num_threads() == 1
    assert line == "threads: 1 of 2 core(s) free (1.3 busy); --threads N to choose"
    monkeypatch.setattr(threads_mod, "usable_cores", lambda: 8)
    monkeypatch.setattr(threads_mod, "busy_cores", lambda: 0.0)
    torch.set_num_threads(2)  # torch's own default caps it (physical cores, not logical)
    set_threads(None)
    assert torch.get_num_threads() == 2


def test_busy_cores_sees_a_spinning_process() -> None:
    """An independent measurement: a process spinning on one core shows as about one busy
    core (psutil's per-CPU shares over the window), and an idle window as little."""
    import subprocess
    import sys
    import time

    spin = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.3)  # past the interpreter's start
        busy = threads_mod.busy_cores(0.5)
    finally:
        spin.kill()
        spin.wait()
    assert busy >= 0.8  # the spinner alone is 1.0; other work only adds


def test_explicit_threads_are_obeyed() -> None:
    assert set_threads(1) is None and torch.get_num_threads() == 1
    assert set_threads(0) is None and torch.get_num_threads() == 1  # 0: left as torch has it
