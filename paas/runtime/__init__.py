"""The container core's seam: what the agent asks of a runtime, whatever runs the dynos.

A `Driver` prepares, starts, signals and stops dynos described by a
`DynoSpec`. The `process` driver runs each dyno as a host process group in its
own copy of the slug; the `runc` driver (containers) implements the same
protocol. The agent only ever talks to this protocol.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

from paas.config import Settings
from paas.runtime.ocispec import Limits

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
    layers: tuple[Path, ...]  # the image's layer trees, bottom first; they become /app
    command: str
    env: dict[str, str] = field(default_factory=dict)
    port: int | None = None
    uid: int | None = None  # the app's own uid (containers)
    limits: Limits = field(default_factory=Limits)
    stack: str = "host"  # the base OS under /app (containers; see paas.runtime.stacks)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["layers"] = [str(p) for p in self.layers]
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> DynoSpec:
        return cls(**{
            **data,
            "layers": tuple(Path(p) for p in data["layers"]),
            "limits": Limits(**data.get("limits", {})),
        })


#: A new release's dynos import their code while the old ones still serve: their boot
#: should use the CPU the traffic leaves, not delay the requests in flight. So a dyno
#: boots in an idle cgroup (cgroups.make_idle), which the scheduler preempts the moment a
#: serving process wakes; a weight alone does not, it lets a booting process keep the core
#: for the rest of its time slice. A web dyno's stop (the app's own shutdown, after its
#: drain) starts idle too.
#: PAAS_BOOT_IDLE=0 turns that off.
BOOT_IDLE = os.environ.get("PAAS_BOOT_IDLE", "1") != "0"
#: How long a dyno may boot idle: after that (every core busy with traffic all along) it
#: boots on at BOOT_CPU_SHARES, so a saturated app can still deploy its fix.
BOOT_IDLE_SECONDS = float(os.environ.get("PAAS_BOOT_IDLE_SECONDS", "10"))
#: The CPU weight a dyno boots at, against a running dyno's 1024, where it cannot boot
#: idle or has booted idle for BOOT_IDLE_SECONDS. 0 boots at the dyno's own weight.
BOOT_CPU_SHARES = int(os.environ.get("PAAS_BOOT_CPU_SHARES", "128"))


@dataclass
class RunningDyno:
    spec: DynoSpec
    pid: int
    started_at: float
    handle: object = None  # the driver's own bookkeeping (e.g. a Popen)


class Driver(Protocol):
    #: Whether a new agent can take over dynos an earlier one started (else they are stopped).
    adopts_strays: bool

    def start(self, spec: DynoSpec, output: OutputSink) -> RunningDyno:
        """Prepare the dyno's filesystem and start its command; output streams to `output`.
        The dyno boots idle, or at BOOT_CPU_SHARES, where the runtime can weigh CPU
        (see `booted`)."""

    def booted(self, dyno: RunningDyno) -> None:
        """The dyno is healthy: from now on it weighs on the CPU as its size says."""

    def poll(self, dyno: RunningDyno) -> int | None:
        """The exit code if the dyno's process has ended, else None."""

    def signal(self, dyno: RunningDyno, signum: int) -> None:
        """Send a signal to every process of the dyno."""

    def attach(self, dyno: RunningDyno, output: OutputSink) -> None:
        """Follow the output of a dyno adopted from an earlier agent."""

    def exit_reason(self, dyno: RunningDyno) -> str | None:
        """Why an ended dyno ended, when the runtime knows more than its exit code ("oom")."""

    def stop(self, dyno: RunningDyno, grace: float) -> int | None:
        """SIGTERM, then SIGKILL after `grace` seconds; frees the dyno's files. Returns its exit
        code."""

    def strays(self) -> list[RunningDyno]:
        """Dynos left running on this host by an earlier agent (found from their state files)."""


def driver_for(settings: Settings) -> Driver:
    if settings.runtime == "process":
        from paas.runtime.process import ProcessDriver

        return ProcessDriver(settings.dynos_dir)
    if settings.runtime == "runc":
        from paas.runtime.runc import RuncDriver

        return RuncDriver(settings.home)
    raise ValueError(f"PAAS_RUNTIME={settings.runtime!r} is unknown; use runc or process")
