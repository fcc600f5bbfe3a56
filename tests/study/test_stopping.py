"""SIGTERM stops a driver run as Ctrl-C does (revstudy.study.stopping), only while it runs."""

from __future__ import annotations

import os
import signal

import pytest

from revstudy.study import stopping


def test_sigterm_asks_ray_tune_to_stop_and_the_old_handler_comes_back() -> None:
    seen: list[int] = []
    old_usr1 = signal.signal(signal.SIGUSR1, lambda s, f: seen.append(s))  # Tune's, in fit
    mine = signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        with stopping.on_sigterm():
            assert not stopping.requested()
            os.kill(os.getpid(), signal.SIGTERM)
            assert stopping.requested() and seen == [signal.SIGUSR1]
        assert signal.getsignal(signal.SIGTERM) == signal.SIG_IGN  # the program's own again
    finally:
        signal.signal(signal.SIGUSR1, old_usr1)
        signal.signal(signal.SIGTERM, mine)


def test_outside_ray_tune_sigterm_interrupts_like_ctrl_c() -> None:
    old_usr1 = signal.signal(signal.SIGUSR1, signal.SIG_DFL)
    try:
        with pytest.raises(KeyboardInterrupt), stopping.on_sigterm():
            os.kill(os.getpid(), signal.SIGTERM)
            signal.pthread_sigmask(signal.SIG_BLOCK, [])  # let the handler run here
    finally:
        signal.signal(signal.SIGUSR1, old_usr1)
    with stopping.on_sigterm():  # a new run starts without the old request
        assert not stopping.requested()
