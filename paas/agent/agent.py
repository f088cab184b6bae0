"""Formation convergence: start, check, route, restart and stop dynos until they match the store.

The agent compares what should run (each app's release for deploy, its
formation and restart sequence, read from the store) with what runs (its own
records of dynos) and closes the gap, one app at a time per thread:

- a new release first runs its release phase (app.json's predeploy, the
  Procfile's `release:`) as one-off dynos; then it, a config change or a restart
  replaces dynos by rolling: start the new ones, wait until each web dyno accepts
  connections on `$PORT` (the app's boot timeout, R10 after) and passes its
  startup checks (by default: it answers HTTP), switch the route table, run
  postdeploy, then take the old ones out: wait for their requests in flight to
  finish (drain), SIGTERM, and SIGKILL after the app's stop timeout;
- a scale change starts or stops only the difference, the same way;
- a crashed dyno is restarted with exponential backoff; liveness checks restart a
  dyno that stops answering, readiness checks take it out of the route meanwhile.

A release is marked `succeeded` once its dynos serve, or `failed` with the
reason (the failing step or check and the dyno's last lines) while the old
dynos keep serving.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import redis

from paas import appjson, events, keys, logs, releases, routes
from paas import sizes as dyno_sizes
from paas.agent import health, phases, state
from paas.agent.watch import Watch
from paas.image import ImageStore, gc
from paas.runtime import Driver, DynoSpec, RunningDyno
from paas.runtime.ocispec import Limits
from paas.runtime.stacks import DEFAULT_STACK
from paas.store import App, Release, Store

log = logging.getLogger(__name__)

#: Process types that never run as long-lived dynos.
ONE_OFF_TYPES = frozenset({"release"})
BACKOFF_CAP = 300.0
GC_INTERVAL = float(os.environ.get("PAAS_GC_INTERVAL", "600"))
#: Apps found converged are skipped while nothing about them changes; all are looked at
#: again this often anyway, so nothing missed can stay missed.
FULL_PASS = 30.0
#: How often each dyno's memory is sampled for `paas ps` and the dashboard's metrics.
USAGE_INTERVAL = 10.0
#: A dyno up this long before crashing starts its backoff afresh.
BACKOFF_RESET_AFTER = 600.0
TAIL_LINES = 20

Generation = tuple[int, int]  # (release version, restart sequence)


@dataclass
class Dyno:
    spec: DynoSpec
    run: RunningDyno | None = None
    state: str = "starting"  # starting, up, crashed, stopping
    routed: bool = False
    exit_code: int | None = None
    crashes: int = 0
    restart_at: float | None = None
    up_since: float | None = None
    tail: deque[str] = field(default_factory=lambda: deque(maxlen=TAIL_LINES))
    grace: float = 30.0  # the app's stop timeout when the dyno started
    ready: bool = True  # False while a readiness check fails: out of the route
    periodic: health.Periodic | None = None  # liveness and readiness checks, once up
    memory_bytes: int | None = None  # resident memory of its processes, sampled

    @property
    def gen(self) -> Generation:
        return (self.spec.release, self.spec.restart_seq)

    @property
    def index(self) -> int:
        return int(self.spec.name.rsplit(".", 1)[1])

    def to_json(self) -> str:
        return json.dumps({
            "name": self.spec.name,
            "type": self.spec.type,
            "state": self.state,
            "release": self.spec.release,
            "command": self.spec.command,
            "started_at": self.run.started_at if self.run else None,
            "exit_code": self.exit_code,
            "port": self.spec.port,
            "ready": self.ready,
            "memory_bytes": self.memory_bytes,
        })


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


accepts_connections = health.accepts_connections


class Agent(Watch):
    def __init__(
        self,
        store: Store,
        r: redis.Redis,
        driver: Driver,
        boot_timeout: float = 60.0,
        stop_grace: float = 30.0,
        images: ImageStore | None = None,
        domain: str = "localhost",
        release_timeout: float = releases.RELEASE_PHASE_TIMEOUT,
    ) -> None:
        """`boot_timeout` and `stop_grace` are the defaults for apps that set none."""
        self.store = store
        self.images = images
        self.r = r
        self.app_logs = logs.Shipper(r)  # dyno output, batched
        self.driver = driver
        self.boot_timeout = boot_timeout
        self.stop_grace = stop_grace
        self.domain = domain
        self.release_timeout = release_timeout
        self.dynos: dict[str, list[Dyno]] = {}
        self._lock = threading.RLock()  # guards self.dynos and self._busy
        self._busy: set[str] = set()
        self._failed_gen: dict[str, Generation] = {}
        self._converged: dict[str, str | None] = {}  # app -> fingerprint when last settled
        self._next_full_pass = 0.0
        self._next_usage = 0.0
        self._wake = threading.Event()
        self._stopping = threading.Event()
        # The first collection waits a whole interval too: with PAAS_GC_GRACE=0 (the
        # tests) a collection could otherwise remove a layer a build is about to use.
        self._next_gc = time.monotonic() + min(GC_INTERVAL, 3600.0)

    # --- the loop -------------------------------------------------------------
    def run(self) -> None:
        self._take_over_strays()
        threading.Thread(target=self._listen_for_wake, name="wake", daemon=True).start()
        while not self._stopping.is_set():
            try:
                self._heartbeat()
                self._reap()
                self._take_requests()
                self.converge_all()
                self._check_health()
                if time.monotonic() >= self._next_usage:
                    self._next_usage = time.monotonic() + USAGE_INTERVAL
                    self._sample_usage()
                if time.monotonic() >= self._next_gc:
                    self._next_gc = time.monotonic() + GC_INTERVAL
                    self._spawn("(image gc)", self.collect_garbage)
            except (redis.RedisError, OSError) as exc:
                log.warning("converge pass failed: %s", exc)
            self._wake.wait(1.0)
            self._wake.clear()
        self._shutdown()

    def request_stop(self) -> None:
        self._stopping.set()
        self._wake.set()

    def _heartbeat(self) -> None:
        self.r.set(keys.heartbeat("agent"), "up", ex=5)

    def _listen_for_wake(self) -> None:
        while not self._stopping.is_set():
            try:
                pubsub = self.r.pubsub(ignore_subscribe_messages=True)
                pubsub.subscribe(keys.agent_wake_channel())
                for message in pubsub.listen():
                    if message and message.get("type") == "message":
                        self._wake.set()
            except (redis.RedisError, OSError) as exc:
                log.warning("wake listener: %s; retrying", exc)
                time.sleep(1)

    def converge_all(self) -> None:
        """Work on each app whose wanted state changed, or whose dynos need attention,
        since it was last found converged; every app at least every FULL_PASS seconds."""
        wanted = {app.name: app for app in self.store.apps()}
        prints = self.store.deploy_fingerprints()
        if time.monotonic() >= self._next_full_pass:
            self._next_full_pass = time.monotonic() + FULL_PASS
            self._converged.clear()
        with self._lock:
            gone = [name for name in self.dynos if name not in wanted]
        for name in gone:
            self._spawn(name, self._teardown, name)
        for app in wanted.values():
            fingerprint = prints.get(app.name)
            if self._converged.get(app.name) != fingerprint or fingerprint is None:
                self._spawn(app.name, self._converge, app, fingerprint)

    def _converge(self, app: App, fingerprint: str | None) -> None:
        self._converged.pop(app.name, None)
        if self.converge_app(app):
            self._converged[app.name] = fingerprint

    def _unsettle(self, app_name: str) -> None:
        """Something happened to a dyno of the app: look at it on the next pass."""
        self._converged.pop(app_name, None)

    def _spawn(self, name: str, target: Callable[..., None], *args: object) -> None:
        """Run `target` in a thread unless that app is already being worked on."""
        with self._lock:
            if name in self._busy:
                return
            self._busy.add(name)

        def work() -> None:
            try:
                target(*args)
            except Exception:
                log.exception("converging %s failed", name)
            finally:
                with self._lock:
                    self._busy.discard(name)

        threading.Thread(target=work, name=f"converge-{name}", daemon=True).start()

    # --- convergence of one app ---------------------------------------------------
    def converge_app(self, app: App) -> bool:
        """Close the gap between what should run and what runs for `app`; True when there
        was none left to close (the app is settled until something changes)."""
        release = self.store.release_for_deploy(app)
        if release is None:
            return True
        gen: Generation = (release.version, app.restart_seq)
        formation = self.store.formation(app)
        sizes = self.store.formation_sizes(app)
        wanted = {
            ptype: qty
            for ptype, qty in formation.items()
            if qty > 0 and ptype in release.process_types and ptype not in ONE_OFF_TYPES
        }
        with self._lock:
            current = [d for d in self.dynos.get(app.name, []) if d.state != "stopping"]
        stale = [d for d in current
                 if d.gen != gen or d.spec.limits != _limits(sizes, d.spec.type)]
        if stale or release.status == "pending":
            if self._failed_gen.get(app.name) != gen:
                self._roll(app, release, gen, wanted, stale, sizes)
                return False
            return not stale  # a failed release is retried only once something changes
        return self._scale(app, release, gen, wanted, current, sizes)

    def _roll(
        self,
        app: App,
        release: Release,
        gen: Generation,
        wanted: dict[str, int],
        stale: list[Dyno],
        sizes: dict[str, str],
    ) -> None:
        version = f"v{release.version}"
        events.emit(self.r, app.name, events.DEPLOY_STARTED, proc="agent", release=version)
        first = release.status == "pending"  # restarts and resizes skip the deploy scripts
        if first:
            failure = self._run_scripts(app, release, sizes, phases.release_phase(release))
            if failure:
                self._fail(app, release, gen, failure)
                return
        new = [
            self._start(app, release, gen, ptype, index, _limits(sizes, ptype))
            for ptype, qty in sorted(wanted.items())
            for index in range(1, qty + 1)
        ]
        failure = self._await_ready(app, release, new)
        if failure:
            self._discard(app, new)
            self._fail(app, release, gen, failure)
            return
        self._switch(app, routed=new, unrouted=stale)
        events.emit(self.r, app.name, events.DEPLOY_SWITCHED, proc="agent",
                    release=version, dynos=len(new))
        if first and phases.postdeploy(release):
            failure = self._run_scripts(app, release, sizes, phases.postdeploy(release))
            if failure:  # back to the dynos that served before; they never stopped
                self._switch(app, routed=[d for d in stale if d.state == "up"],
                             unrouted=new)
                self._discard(app, new)
                self._fail(app, release, gen, failure)
                return
        if first:
            self.store.set_release_status(release, "succeeded")
            releases.settled(self.r, app.name, release.version)
            superseded = self.store.supersede_pending(app, release.version)
            if superseded:
                events.emit(self.r, app.name, events.RELEASE_SUPERSEDED, proc="agent",
                            by=version, releases=",".join(f"v{v}" for v in superseded))
        self._failed_gen.pop(app.name, None)
        for dyno in stale:
            self._stop_in_background(app.name, dyno)
        events.emit(self.r, app.name, events.DEPLOY_FINISHED, proc="agent", release=version)

    def _switch(self, app: App, routed: list[Dyno], unrouted: list[Dyno]) -> None:
        with self._lock:
            for dyno in routed:
                dyno.routed = dyno.spec.type == "web"
            for dyno in unrouted:
                dyno.routed = False
        self._publish_route(app.name, None)  # the route names the release its dynos run

    def _discard(self, app: App, dynos: list[Dyno]) -> None:
        """Stop dynos that never served (a failed deploy), in parallel."""
        self._stop_all([(app.name, d) for d in dynos], grace=5.0)

    def _fail(self, app: App, release: Release, gen: Generation, failure: str) -> None:
        self._failed_gen[app.name] = gen
        if release.status == "pending":
            self.store.set_release_status(release, "failed", failure)
            releases.settled(self.r, app.name, release.version)
        events.emit(self.r, app.name, events.DEPLOY_FAILED, proc="agent",
                    release=f"v{release.version}", reason=json.dumps(failure))

    def _run_scripts(self, app: App, release: Release, sizes: dict[str, str],
                     scripts: list[phases.Script]) -> str | None:
        """Run deploy scripts as one-off dynos; the failure, or None."""
        if not scripts:
            return None
        layers, stack = self._image_parts(release)
        runner = phases.ScriptRunner(
            self.driver, self.r, app, release, layers, stack,
            _limits(sizes, scripts[0].name), self.release_timeout, self._stopping,
        )
        kind = "postdeploy" if scripts[0].name == "postdeploy" else "release phase"
        events.emit(self.r, app.name, events.RELEASE_STARTED, proc="agent",
                    release=f"v{release.version}", step=kind.replace(" ", "-"))
        failure = runner.run(scripts)
        earlier = self.store.release(app, release.version).output if kind == "postdeploy" else None
        self.store.set_release_output(release, "\n".join(filter(None, [earlier, runner.text()])))
        events.emit(self.r, app.name,
                    events.RELEASE_FAILED if failure else events.RELEASE_SUCCEEDED,
                    proc="agent", release=f"v{release.version}", step=kind.replace(" ", "-"))
        return failure

    def _scale(
        self,
        app: App,
        release: Release,
        gen: Generation,
        wanted: dict[str, int],
        current: list[Dyno],
        sizes: dict[str, str],
    ) -> bool:
        """Start missing dynos, restart crashed ones when due, stop extra ones; True when
        there was nothing to do and every dyno is up."""
        now = time.time()
        started: list[Dyno] = []
        for dyno in current:
            qty = wanted.get(dyno.spec.type, 0)
            if dyno.index > qty:
                self._stop_in_background(app.name, dyno)
            elif dyno.state == "crashed" and dyno.restart_at is not None and dyno.restart_at <= now:
                replacement = self._start(app, release, gen, dyno.spec.type, dyno.index,
                                          _limits(sizes, dyno.spec.type), replaces=dyno)
                started.append(replacement)
        present = {(d.spec.type, d.index) for d in current}
        for ptype, qty in sorted(wanted.items()):
            for index in range(1, qty + 1):
                if (ptype, index) not in present:
                    started.append(self._start(app, release, gen, ptype, index,
                                               _limits(sizes, ptype)))
        if not started:
            return all(d.state == "up" for d in current)
        for dyno in started:
            failure = self._await_ready(app, release, [dyno])
            if failure:
                self._mark_crashed(app.name, dyno, dyno.exit_code)
                continue
            with self._lock:
                dyno.routed = dyno.spec.type == "web"
        self._publish_route(app.name, release.version)
        return False  # settled only once the next pass finds nothing to do

    def _teardown(self, app_name: str) -> None:
        """The app was destroyed: stop all its dynos and forget its route."""
        with self._lock:
            dynos = list(self.dynos.get(app_name, []))
        self._stop_all([(app_name, d) for d in dynos])
        try:
            routes.remove(self.r, app_name)
        except redis.RedisError as exc:
            log.warning("could not remove the route of %s: %s", app_name, exc)
        with self._lock:
            if not self.dynos.get(app_name):
                self.dynos.pop(app_name, None)
        state.forget(self.r, app_name)

    # --- single dynos ---------------------------------------------------------------
    def _start(
        self,
        app: App,
        release: Release,
        gen: Generation,
        ptype: str,
        index: int,
        limits: Limits,
        replaces: Dyno | None = None,
    ) -> Dyno:
        name = f"{ptype}.{index}"
        layers, stack = self._image_parts(release)
        spec = DynoSpec(
            id=f"{app.name}.{name}.{secrets.token_hex(3)}",
            app=app.name,
            name=name,
            type=ptype,
            release=release.version,
            restart_seq=gen[1],
            layers=layers,
            stack=stack,
            command=release.process_types[ptype],
            env=dict(release.config),
            port=free_port() if ptype == "web" else None,
            uid=app.uid,
            limits=limits,
        )
        dyno = Dyno(spec=spec, grace=float(app.stop_timeout or self.stop_grace))
        if replaces is not None:
            dyno.crashes = replaces.crashes
        with self._lock:
            dynos = self.dynos.setdefault(app.name, [])
            if replaces is not None and replaces in dynos:
                dynos.remove(replaces)
            dynos.append(dyno)
        events.emit(self.r, app.name, events.DYNO_STARTING, proc=name,
                    release=f"v{release.version}", command=json.dumps(spec.command))

        def output(line: str) -> None:
            dyno.tail.append(line)
            self.app_logs.put(app.name, "app", name, line)

        try:
            dyno.run = self.driver.start(spec, output)
        except Exception as exc:  # the dyno never ran; report it like a crash at boot
            log.exception("starting %s of %s failed", name, app.name)
            dyno.tail.append(f"could not start: {exc}")
            dyno.state = "crashed"
            dyno.exit_code = -1
        self._publish_state(app.name)
        return dyno

    def _image_parts(self, release: Release) -> tuple[tuple[Path, ...], str]:
        """The unpacked layer trees of the release's image (bottom first) and its stack."""
        if not release.slug:
            raise ValueError(f"release v{release.version} has nothing to run")
        if release.slug.startswith("sha256:") and self.images is not None:
            image = self.images.image(release.slug)
            layers = tuple(self.images.layer_path(digest) for digest in image.layers)
            return layers, image.config.labels.get("paas.stack", DEFAULT_STACK)
        # A plain directory: tests and releases made before images.
        return (Path(release.slug),), DEFAULT_STACK

    def _await_ready(self, app: App, release: Release, dynos: list[Dyno]) -> str | None:
        """Wait until every web dyno accepts connections within the app's boot timeout,
        then run each dyno's startup checks; the failure reason otherwise."""
        boot_timeout = float(app.boot_timeout or self.boot_timeout)
        deadline = time.monotonic() + boot_timeout
        waiting = list(dynos)
        while waiting:
            for dyno in list(waiting):
                code = self.driver.poll(dyno.run) if dyno.run else dyno.exit_code
                if code is not None:
                    dyno.exit_code = code
                    return self._failure(dyno, f"exited with status {code} while booting")
                if dyno.spec.port is None or accepts_connections(dyno.spec.port):
                    with self._lock:
                        dyno.state = "up"
                        dyno.up_since = time.time()
                    events.emit(self.r, app.name, events.DYNO_UP, proc=dyno.spec.name,
                                release=f"v{dyno.spec.release}")
                    waiting.remove(dyno)
            if waiting and time.monotonic() > deadline:
                dyno = waiting[0]
                self.app_logs.flush()
                logs.append(self.r, app.name, "paas", dyno.spec.name,
                            "Error R10 (Boot timeout) -> Web process failed to bind to $PORT "
                            f"within {boot_timeout:g} seconds of launch")
                return self._failure(
                    dyno, f"did not listen on $PORT within {boot_timeout:g} s (R10)"
                )
            if waiting:
                time.sleep(0.01)  # a connect to a local port costs microseconds; a push waits
        manifest = appjson.load(release.app_json)
        for dyno in dynos:
            failure = self._startup_checks(app, manifest, dyno)
            if failure:
                events.emit(self.r, app.name, events.DYNO_UNHEALTHY, proc=dyno.spec.name,
                            release=f"v{dyno.spec.release}", reason=json.dumps(failure))
                return self._failure(dyno, failure)
            periodic = (manifest.checks(dyno.spec.type, "liveness")
                        + manifest.checks(dyno.spec.type, "readiness"))
            with self._lock:
                if periodic:
                    dyno.periodic = health.Periodic(periodic, started=time.monotonic())
            if dyno.run is not None:
                self.driver.booted(dyno.run)
            events.emit(self.r, app.name, events.DYNO_HEALTHY, proc=dyno.spec.name,
                        release=f"v{dyno.spec.release}")
        self._publish_state(app.name)
        return None

    def _startup_checks(self, app: App, manifest: appjson.AppJson, dyno: Dyno) -> str | None:
        checks = [c for c in manifest.checks(dyno.spec.type, "startup")
                  if c.port or dyno.spec.port]  # a check needs a port to knock on

        def note(line: str) -> None:
            logs.append(self.r, app.name, "paas", dyno.spec.name, line)

        def alive() -> bool:
            return (dyno.run is not None and self.driver.poll(dyno.run) is None
                    and not self._stopping.is_set())

        if not checks:
            if dyno.spec.type != "web" or dyno.spec.port is None:
                return None
            # A listening socket is not yet an app that answers: a server like gunicorn
            # binds before its workers have imported the app, and requests routed to it
            # meanwhile would wait. Route a web dyno once it answers HTTP (any status).
            deadline = (dyno.up_since or time.time()) + float(app.boot_timeout or
                                                              self.boot_timeout)
            if health.first_answer(dyno.spec.port, self._host(app.name), deadline, alive):
                return None
            return ("did not answer an HTTP request on $PORT within the boot timeout "
                    "(it accepts connections, but sends nothing back)")

        return health.run_startup(checks, dyno.spec.port or 0, self._host(app.name),
                                  dyno.up_since or time.time(), alive=alive, note=note)

    def _host(self, app_name: str) -> str:
        return f"{app_name}.{self.domain}"

    @staticmethod
    def _failure(dyno: Dyno, what: str) -> str:
        reason = f"{dyno.spec.name} {what}"
        if dyno.tail:
            reason += "; its last lines:\n" + "\n".join(dyno.tail)
        return reason

    def _stop(self, app_name: str, dyno: Dyno, grace: float | None = None) -> None:
        """Out of the route, drained of its requests in flight, then SIGTERM, and SIGKILL
        after `grace` seconds (default: the app's stop timeout)."""
        grace = dyno.grace if grace is None else grace
        with self._lock:
            dyno.state = "stopping"
            was_routed, dyno.routed = dyno.routed, False
        if was_routed:
            self._publish_route(app_name, None)
        self._publish_state(app_name)
        if dyno.run is not None:
            if dyno.spec.port is not None and self.driver.poll(dyno.run) is None:
                if health.drain(dyno.spec.port, time.monotonic() + grace):
                    events.emit(self.r, app_name, events.DYNO_DRAINED, proc=dyno.spec.name)
            code = self.driver.stop(dyno.run, grace)
            events.emit(self.r, app_name, events.DYNO_STOPPED, proc=dyno.spec.name,
                        status=code)
        with self._lock:
            dynos = self.dynos.get(app_name, [])
            if dyno in dynos:
                dynos.remove(dyno)
        self._unsettle(app_name)
        self._publish_state(app_name)
        self._wake.set()

    def _stop_in_background(self, app_name: str, dyno: Dyno) -> None:
        with self._lock:
            dyno.state = "stopping"
        threading.Thread(
            target=self._stop, args=(app_name, dyno),
            name=f"stop-{dyno.spec.id}", daemon=True,
        ).start()

    def _reap(self) -> None:
        """Notice dynos whose process ended on its own."""
        with self._lock:
            candidates = [
                (app, d) for app, ds in self.dynos.items() for d in ds
                if d.state == "up" and d.run is not None
            ]
        for app_name, dyno in candidates:
            code = self.driver.poll(dyno.run)
            if code is not None:
                self._mark_crashed(app_name, dyno, code)

    def _mark_crashed(self, app_name: str, dyno: Dyno, code: int | None) -> None:
        now = time.time()
        with self._lock:
            if dyno.state == "stopping":
                return
            if dyno.up_since and now - dyno.up_since > BACKOFF_RESET_AFTER:
                dyno.crashes = 0
            dyno.crashes += 1
            was_routed, dyno.routed = dyno.routed, False
            dyno.state, dyno.exit_code = "crashed", code
            delay = min(2 ** (dyno.crashes - 1), BACKOFF_CAP)
            dyno.restart_at = now + delay
        reason = None
        if dyno.run is not None:
            reason = self.driver.exit_reason(dyno.run)
            self.driver.stop(dyno.run, grace=0)  # frees its files; the process has ended
        if was_routed:
            self._publish_route(app_name, None)
        self.app_logs.flush()  # the dyno's last words come before the news of its end
        if reason == "oom":
            logs.append(self.r, app_name, "paas", dyno.spec.name,
                        f"Error R15 (Memory quota vastly exceeded) -> the dyno used more than "
                        f"its {dyno.spec.limits.memory_mb} MB and was killed")
        logs.append(self.r, app_name, "paas", dyno.spec.name,
                    f"Process exited with status {code}; State changed from up to crashed")
        events.emit(self.r, app_name, events.DYNO_CRASHED, proc=dyno.spec.name,
                    status=code, restart_in=f"{delay:g}s")
        self._unsettle(app_name)
        self._publish_state(app_name)
        self._wake.set()

    def collect_garbage(self) -> None:
        """Remove images and layers nothing needs any more (see paas.image.gc)."""
        if self.images is None:
            return
        layers_root = self.images.root / "layers"
        with self._lock:
            running = {
                f"sha256:{path.name}"
                for dynos in self.dynos.values() for d in dynos for path in d.spec.layers
                if path.parent == layers_root
            }
        result = gc.collect(self.store, self.images, running_layers=running)
        if result.removed_images or result.removed_layers:
            log.info("image gc: removed %d images and %d layers, freed %d bytes",
                     len(result.removed_images), len(result.removed_layers), result.freed_bytes)

    # --- what others see -------------------------------------------------------------
    def _publish_route(self, app_name: str, release: int | None) -> None:
        with self._lock:
            dynos = [d for d in self.dynos.get(app_name, [])
                     if d.routed and d.ready and d.state == "up"]
            backends = tuple(
                routes.Backend(d.spec.name, f"127.0.0.1:{d.spec.port}")
                for d in sorted(dynos, key=lambda d: d.spec.name)
            )
            if release is None and dynos:
                release = max(d.spec.release for d in dynos)
        routes.publish(self.r, routes.Route(app=app_name, backends=backends, release=release))

    def _publish_state(self, app_name: str) -> None:
        with self._lock:
            dynos = list(self.dynos.get(app_name, []))
        try:
            state.publish(self.r, app_name, {d.spec.id: d.to_json() for d in dynos})
        except redis.RedisError as exc:
            log.warning("could not publish the dynos of %s: %s", app_name, exc)

    # --- start and end of the agent --------------------------------------------------
    def _take_over_strays(self) -> None:
        """Dynos an earlier agent left running: adopt those that match what should run (no
        restart, their route untouched), stop the rest."""
        adopted: set[str] = set()
        for run in self.driver.strays():
            if self.driver.adopts_strays and self._adopt(run):
                adopted.add(run.spec.app)
                continue
            log.info("stopping %s of %s, left by an earlier agent", run.spec.name, run.spec.app)
            self.driver.stop(run, grace=5.0)
        for app_name in adopted:
            self._publish_route(app_name, None)
            self._publish_state(app_name)

    def _adopt(self, run: RunningDyno) -> bool:
        spec = run.spec
        app = self.store.find_app(spec.app)
        release = self.store.release_for_deploy(app) if app else None
        if app is None or release is None or release.status != "succeeded":
            return False
        wanted = self.store.formation(app).get(spec.type, 0)
        index = int(spec.name.rsplit(".", 1)[1])
        with self._lock:
            taken = {d.spec.name for d in self.dynos.get(app.name, [])}
        if ((spec.release, spec.restart_seq) != (release.version, app.restart_seq)
                or spec.type not in release.process_types or index > wanted
                or spec.name in taken):
            return False
        if spec.port is not None and not accepts_connections(spec.port):
            return False
        dyno = Dyno(spec=spec, run=run, state="up", routed=spec.type == "web",
                    up_since=run.started_at or time.time(),
                    grace=float(app.stop_timeout or self.stop_grace))
        manifest = appjson.load(release.app_json)
        periodic = manifest.checks(spec.type, "liveness") + manifest.checks(spec.type, "readiness")
        if periodic:
            dyno.periodic = health.Periodic(periodic, started=time.monotonic())

        def output(line: str) -> None:
            dyno.tail.append(line)
            self.app_logs.put(app.name, "app", spec.name, line)

        self.driver.attach(run, output)
        self.driver.booted(run)  # in case the agent before died while it booted
        with self._lock:
            self.dynos.setdefault(app.name, []).append(dyno)
        log.info("adopted %s of %s (v%d)", spec.name, app.name, spec.release)
        return True

    def _stop_all(self, dynos: list[tuple[str, Dyno]], grace: float | None = None) -> None:
        """Stop dynos in parallel, so N dynos take one grace period, not N."""
        threads = [
            threading.Thread(target=self._stop, args=(app, d, grace)) for app, d in dynos
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    def _shutdown(self) -> None:
        with self._lock:
            everything = [(app, d) for app, ds in self.dynos.items() for d in ds]
        self._stop_all(everything)
        self.app_logs.flush()
        for app_name in {app for app, _ in everything}:
            try:
                routes.remove(self.r, app_name)
                state.forget(self.r, app_name)
            except redis.RedisError:
                pass  # Redis may already be gone; it only held what we are removing


def _limits(sizes: dict[str, str], ptype: str) -> Limits:
    return dyno_sizes.limits(sizes.get(ptype, dyno_sizes.DEFAULT_SIZE))
