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
    monkeypatch.setattr(threads_mod, "load_average", lambda: 1.3)  # one core busy elsewhere
    line = set_threads(None)
    assert torch.get_num_threads() == 1
    assert line == "threads: 1 of 2 core(s) free (1-minute load 1.3); --threads N to choose"
    monkeypatch.setattr(threads_mod, "usable_cores", lambda: 8)
    monkeypatch.setattr(threads_mod, "load_average", lambda: 0.0)
    torch.set_num_threads(2)  # torch's own default caps it (physical cores, not logical)
    set_threads(None)
    assert torch.get_num_threads() == 2


def test_explicit_threads_are_obeyed() -> None:
    assert set_threads(1) is None and torch.get_num_threads() == 1
    assert set_threads(0) is None and torch.get_num_threads() == 1  # 0: left as torch has it
