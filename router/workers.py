"""Several router processes on the same ports (SO_REUSEPORT): the kernel spreads new
connections across them, so the router uses every core while each process stays a plain
single-threaded event loop. The parent only forks, restarts and stops them."""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import time
from collections.abc import Callable

log = logging.getLogger("router")
_PR_SET_PDEATHSIG = 1


def worker_count(configured: int | None) -> int:
    """PAAS_ROUTER_WORKERS as router_settings() read it: a number, or None for one per
    core."""
    if configured:
        return configured
    return len(os.sched_getaffinity(0)) or 1


def run_workers(count: int, work: Callable[[], int]) -> int:
    """Fork `count` processes running `work`; restart one that dies (after a second, so
    a worker failing at start doesn't spin); on SIGTERM/SIGINT stop them all."""
    children: dict[int, float] = {}
    stopping = False

    def spawn() -> None:
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                signal.signal(signal.SIGINT, signal.SIG_DFL)
                # a worker never outlives the parent that would restart or stop it
                ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
                code = work()
            finally:
                os._exit(code)
        children[pid] = time.monotonic()

    def on_signal(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True
        for pid in list(children):
            try:
                os.kill(pid, signum)
            except ProcessLookupError:
                pass

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    for _ in range(count):
        spawn()
    log.info("router running %d worker processes", count)
    status = 0
    while children:
        try:
            pid, wait_status = os.wait()
        except ChildProcessError:
            break
        except InterruptedError:
            continue
        started = children.pop(pid, None)
        if started is None:
            continue
        code = os.waitstatus_to_exitcode(wait_status)
        if stopping:
            continue
        log.error("router worker %d exited with %s; starting another", pid, code)
        status = 1
        if time.monotonic() - started < 1.0:
            time.sleep(1.0)
        if not stopping:
            spawn()
    return 0 if stopping else status
