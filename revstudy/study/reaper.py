"""A watchdog that stops an embedded Ray instance when its study driver dies.

`ray.init()` starts GCS, raylet, agents and workers as the driver's descendants. A driver
killed with SIGKILL cannot shut them down: workers exit within seconds, but Ray's dashboard
and runtime-env agents can live on (one listening on the machine's address), notably in
containers whose init does not reap the dead raylet. The watchdog is a tiny separate
process (its own session, so a kill of the driver's process group spares it) that records
the driver's descendants while the driver lives and, once the driver is gone, kills those
still running. Processes are matched by pid *and* start time, so a reused pid is never hit.
A driver that shuts Ray down normally leaves nothing for it to do. Clusters (`--address`)
are not the study's to stop and get no watchdog.
"""

from __future__ import annotations

import os
import subprocess
import sys

__all__ = ["start_reaper"]

_WATCH = r"""
import os, sys, time
import psutil

driver = int(sys.argv[1])
seen = {}
try:
    root = psutil.Process(driver)
    while root.is_running() and root.status() != psutil.STATUS_ZOMBIE:
        for p in root.children(recursive=True):
            if p.pid == os.getpid():
                continue
            try:
                seen[p.pid] = p.create_time()
            except psutil.Error:
                pass
        time.sleep(0.5)
except psutil.Error:
    pass
time.sleep(1.0)  # a normal shutdown is already over; a killed driver's children remain
for pid, created in seen.items():
    try:
        p = psutil.Process(pid)
        if p.create_time() == created and p.status() != psutil.STATUS_ZOMBIE:
            p.kill()
    except psutil.Error:
        pass
"""


def start_reaper(driver_pid: int | None = None) -> subprocess.Popen[bytes]:
    """Start the watchdog for `driver_pid` (default: this process); returns its handle."""
    pid = os.getpid() if driver_pid is None else driver_pid
    return subprocess.Popen(
        [sys.executable, "-c", _WATCH, str(pid)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # survives a kill of the driver's process group
        close_fds=True,
    )
