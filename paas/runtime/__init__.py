"""The container core's seam: what the agent asks of a runtime, whatever runs the dynos.

A `Driver` prepares, starts, signals and stops dynos described by a
`DynoSpec`. The `process` driver runs each dyno as a host process group in its
own copy of the slug; the `runc` driver (containers) implements the same
protocol. The agent only ever talks to this protocol.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from paas.config import Settings

#: Lines a dyno writes go to this callback, without their line ending.
OutputSink = Callable[[str], None]


@dataclass(frozen=True)
class DynoSpec:
    id: str  # unique on this host, e.g. "hello.web.1.a3f9c2"
    app: str
    name: str  # "web.1"
    type: str  # "web"
    release: int
    restart_seq: int
    slug: Path
    command: str
    env: dict[str, str] = field(default_factory=dict)
    port: int | None = None


@dataclass
class RunningDyno:
    spec: DynoSpec
    pid: int
    started_at: float
    handle: object = None  # the driver's own bookkeeping (e.g. a Popen)


class Driver(Protocol):
    def start(self, spec: DynoSpec, output: OutputSink) -> RunningDyno:
        """Prepare the dyno's filesystem and start its command; output streams to `output`."""

    def poll(self, dyno: RunningDyno) -> int | None:
        """The exit code if the dyno's process has ended, else None."""

    def signal(self, dyno: RunningDyno, signum: int) -> None:
        """Send a signal to every process of the dyno."""

    def stop(self, dyno: RunningDyno, grace: float) -> int | None:
        """SIGTERM, then SIGKILL after `grace` seconds; frees the dyno's files. Returns its exit
        code."""

    def strays(self) -> list[RunningDyno]:
        """Dynos left running on this host by an earlier agent (found from their state files)."""


def driver_for(settings: Settings) -> Driver:
    if settings.runtime == "process":
        from paas.runtime.process import ProcessDriver

        return ProcessDriver(settings.dynos_dir)
    raise ValueError(
        f"PAAS_RUNTIME={settings.runtime!r} is not available yet; use PAAS_RUNTIME=process"
    )
