"""The agent's watch over running dynos, between convergence passes: requests to stop
dynos (`paas ps:stop`), liveness and readiness checks, and memory samples.

A mixin of `Agent` (paas.agent.agent), which holds the dynos and the ways to start,
stop, route and publish them that these use.
"""

from __future__ import annotations

import json
import logging
import time
from typing import TYPE_CHECKING

from paas import events, keys, logs
from paas.agent import health
from paas.runtime import usage

if TYPE_CHECKING:
    from paas.agent.agent import Agent, Dyno

log = logging.getLogger(__name__)


class Watch:
    def _take_requests(self: Agent) -> None:
        """Dynos users asked to stop (`paas ps:stop web.2` or a whole type): each is drained
        and stopped; one the formation still wants is replaced, as on Heroku."""
        while (raw := self.r.lpop(keys.agent_requests())) is not None:
            try:
                request = json.loads(raw)
                app_name, target = str(request["app"]), str(request["dyno"])
            except (ValueError, KeyError, TypeError):
                log.warning("ignoring a malformed agent request: %r", raw)
                continue
            with self._lock:
                chosen = [d for d in self.dynos.get(app_name, []) if d.state != "stopping"
                          and target in (d.spec.name, d.spec.type)]
            for dyno in chosen:
                logs.append(self.r, app_name, "paas", dyno.spec.name,
                            f"Stopping {dyno.spec.name}, as asked")
                self._stop_in_background(app_name, dyno)

    def _sample_usage(self: Agent) -> None:
        """Resident memory per up dyno (its process tree), published with its state."""
        with self._lock:
            running = [(app, d) for app, ds in self.dynos.items() for d in ds
                       if d.state == "up" and d.run is not None]
        found = usage.memory(d.run.pid for _, d in running)  # type: ignore[union-attr]
        for _, dyno in running:
            dyno.memory_bytes = found.get(dyno.run.pid)  # type: ignore[union-attr]
        for app_name in {app for app, _ in running}:
            self._publish_state(app_name)

    def _check_health(self: Agent) -> None:
        """Start the liveness and readiness checks that are due, a thread per dyno."""
        now = time.monotonic()
        with self._lock:
            due = [(app, d) for app, ds in self.dynos.items() for d in ds
                   if d.state == "up" and d.periodic is not None and d.periodic.due_now(now)]
        for app_name, dyno in due:
            self._spawn(f"(health) {dyno.spec.id}", self._run_periodic, app_name, dyno)

    def _run_periodic(self: Agent, app_name: str, dyno: Dyno) -> None:
        periodic = dyno.periodic
        assert periodic is not None
        for i, check in periodic.due_now(time.monotonic()):
            if dyno.state != "up":
                return
            port = check.port or dyno.spec.port
            failure = health.probe(check, port, self._host(app_name)) if port else None
            reached = periodic.record(i, failure, time.monotonic())
            if failure:
                logs.append(self.r, app_name, "paas", dyno.spec.name,
                            f"{check.label} failed ({periodic.failures[i]} of "
                            f"{check.attempts}): {failure}")
            if check.type == "readiness":
                self._set_ready(app_name, dyno, not periodic.failing("readiness"), failure)
            elif reached:
                self._restart_unhealthy(app_name, dyno, f"failed its {check.label}: {failure}")
                return

    def _set_ready(self: Agent, app_name: str, dyno: Dyno, ready: bool,
                   failure: str | None) -> None:
        with self._lock:
            if dyno.ready == ready:
                return
            dyno.ready = ready
        self._publish_route(app_name, None)
        if ready:
            events.emit(self.r, app_name, events.DYNO_HEALTHY, proc=dyno.spec.name,
                        release=f"v{dyno.spec.release}")
        else:
            events.emit(self.r, app_name, events.DYNO_UNHEALTHY, proc=dyno.spec.name,
                        reason=json.dumps(f"out of the route: {failure}"))

    def _restart_unhealthy(self: Agent, app_name: str, dyno: Dyno, reason: str) -> None:
        """A liveness check gave up on the dyno: stop it and restart it like a crash."""
        with self._lock:
            dyno.state = "unhealthy"  # neither reaped nor routed while it stops
            was_routed, dyno.routed = dyno.routed, False
        if was_routed:
            self._publish_route(app_name, None)
        events.emit(self.r, app_name, events.DYNO_UNHEALTHY, proc=dyno.spec.name,
                    reason=json.dumps(f"restarting: {reason}"))
        code = self.driver.stop(dyno.run, dyno.grace) if dyno.run is not None else None
        self._mark_crashed(app_name, dyno, code)
