from __future__ import annotations

import subprocess
import sys

from paas.runtime import usage

# A parent holding ~64 MiB (written, so resident) with a child of its own.
TREE = ("import subprocess, sys, time; x = b'x' * (64 << 20); "
        "c = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(30)']); "
        "print(c.pid, flush=True); time.sleep(30)")


def test_memory_counts_a_whole_process_tree() -> None:
    with subprocess.Popen([sys.executable, "-c", TREE], stdout=subprocess.PIPE,
                          text=True) as parent:
        try:
            assert parent.stdout is not None
            child = int(parent.stdout.readline())
            found = usage.memory([parent.pid, child])
            assert found[child] > 0
            assert found[parent.pid] > (64 << 20) + found[child] - (1 << 20)
        finally:
            subprocess.run(["pkill", "-KILL", "-P", str(parent.pid)], check=False)
            parent.kill()


def test_a_process_that_is_gone_counts_nothing() -> None:
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    pid = int(gone.stdout)
    assert usage.memory([pid]) == {pid: 0}
