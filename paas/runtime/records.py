"""The record each driver keeps beside a dyno's folder, so a later agent can find it.

`state.json` holds the dyno's spec, its pid and the kernel's start time of that pid
(a pid alone may have been reused by another process since).
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from paas.runtime import DynoSpec

STATE_FILE = "state.json"


def process_start_time(pid: int) -> str | None:
    """The kernel's start time of `pid`; None if it is gone or has ended (a zombie)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    return None if fields[0] in ("Z", "X") else fields[19]


@dataclass(frozen=True)
class Record:
    folder: Path
    spec: DynoSpec
    pid: int
    start_time: str | None
    started_at: float

    @property
    def alive(self) -> bool:
        return self.start_time is not None and process_start_time(self.pid) == self.start_time


def write(folder: Path, spec: DynoSpec, pid: int, runtime: str) -> Record:
    record = Record(folder, spec, pid, process_start_time(pid), time.time())
    (folder / STATE_FILE).write_text(json.dumps({
        "spec": spec.to_json(), "pid": pid, "start_time": record.start_time,
        "started_at": record.started_at, "runtime": runtime,
    }))
    return record


def read_all(root: Path) -> list[Record]:
    """Every dyno recorded under root (`<app>/<dyno id>/state.json`); a record that cannot
    be read is removed with its folder, as nothing could ever use it."""
    found = []
    for state_file in sorted(root.glob(f"*/*/{STATE_FILE}")):
        try:
            state = json.loads(state_file.read_text())
            found.append(Record(state_file.parent, DynoSpec.from_json(state["spec"]),
                                state["pid"], state.get("start_time"),
                                state.get("started_at", 0.0)))
        except (OSError, ValueError, TypeError, KeyError):
            shutil.rmtree(state_file.parent, ignore_errors=True)
    return found
