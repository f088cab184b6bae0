"""Formation convergence: start, check, route, restart and stop dynos until they match the store.

The agent compares what should run (each app's release for deploy, its
formation and restart sequence, read from the store) with what runs (its own
records of dynos) and closes the gap, one app at a time per thread:

- a new release or restart replaces dynos by rolling: start the new ones, wait
  until each web dyno accepts connections on `$PORT`, switch the route table,
  then stop the old ones (SIGTERM, SIGKILL after the grace period);
- a scale change starts or stops only the difference;
- a crashed dyno is restarted with exponential backoff.

A release is marked `succeeded` once its dynos serve, or `failed` with the
reason (and the dyno's last lines) while the old dynos keep serving.
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

from paas import events, keys, logs, routes
from paas import sizes as dyno_sizes
from paas.agent import state
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
        })


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def accepts_connections(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.25):
            return True
    except OSError:
        return False


class Agent:
    def __init__(
        self,
        store: Store,
        r: redis.Redis,
        driver: Driver,
        boot_timeout: float = 60.0,
        stop_grace: float = 30.0,
        images: ImageStore | None = None,
    ) -> None:
        self.store = store
        self.images = images
        self.r = r
        self.driver = driver
        self.boot_timeout = boot_timeout
        self.stop_grace = stop_grace
        self.dynos: dict[str, list[Dyno]] = {}
        self._lock = threading.RLock()  # guards self.dynos and self._busy
        self._busy: set[str] = set()
        self._failed_gen: dict[str, Generation] = {}
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._next_gc = time.monotonic() + 60

    # --- the loop -------------------------------------------------------------
    def run(self) -> None:
        self._take_over_strays()
        threading.Thread(target=self._listen_for_wake, name="wake", daemon=True).start()
        while not self._stopping.is_set():
            try:
                self._heartbeat()
                self._reap()
                self.converge_all()
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
        wanted = {app.name: app for app in self.store.apps()}
        with self._lock:
            gone = [name for name in self.dynos if name not in wanted]
        for name in gone:
            self._spawn(name, self._teardown, name)
        for app in wanted.values():
            self._spawn(app.name, self.converge_app, app)

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
    def converge_app(self, app: App) -> None:
        release = self.store.release_for_deploy(app)
        if release is None:
            return
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
            return
        self._scale(app, release, gen, wanted, current, sizes)

    def _roll(
        self,
        app: App,
        release: Release,
        gen: Generation,
        wanted: dict[str, int],
        stale: list[Dyno],
        sizes: dict[str, str],
    ) -> None:
        events.emit(self.r, app.name, events.DEPLOY_STARTED, proc="agent",
                    release=f"v{release.version}")
        new = [
            self._start(app, release, gen, ptype, index, _limits(sizes, ptype))
            for ptype, qty in sorted(wanted.items())
            for index in range(1, qty + 1)
        ]
        failure = self._await_ready(app, new)
        if failure:
            for dyno in new:
                self._stop(app.name, dyno, grace=5.0)
            self._failed_gen[app.name] = gen
            if release.status == "pending":
                self.store.set_release_status(release, "failed", failure)
            events.emit(self.r, app.name, events.DEPLOY_FAILED, proc="agent",
                        release=f"v{release.version}", reason=json.dumps(failure))
            return
        with self._lock:
            for dyno in new:
                dyno.routed = dyno.spec.type == "web"
            for dyno in stale:
                dyno.routed = False
        self._publish_route(app.name, release.version)
        events.emit(self.r, app.name, events.DEPLOY_SWITCHED, proc="agent",
                    release=f"v{release.version}", dynos=len(new))
        if release.status == "pending":
            self.store.set_release_status(release, "succeeded")
        self._failed_gen.pop(app.name, None)
        for dyno in stale:
            self._stop_in_background(app.name, dyno)
        events.emit(self.r, app.name, events.DEPLOY_FINISHED, proc="agent",
                    release=f"v{release.version}")

    def _scale(
        self,
        app: App,
        release: Release,
        gen: Generation,
        wanted: dict[str, int],
        current: list[Dyno],
        sizes: dict[str, str],
    ) -> None:
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
            return
        for dyno in started:
            failure = self._await_ready(app, [dyno])
            if failure:
                self._mark_crashed(app.name, dyno, dyno.exit_code)
                continue
            with self._lock:
                dyno.routed = dyno.spec.type == "web"
        self._publish_route(app.name, release.version)

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
        dyno = Dyno(spec=spec)
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
            logs.append(self.r, app.name, "app", name, line)

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

    def _await_ready(self, app: App, dynos: list[Dyno]) -> str | None:
        """Wait until every web dyno accepts connections; the failure reason otherwise."""
        deadline = time.monotonic() + self.boot_timeout
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
                logs.append(self.r, app.name, "paas", dyno.spec.name,
                            "Error R10 (Boot timeout) -> Web process failed to bind to $PORT "
                            f"within {self.boot_timeout:g} seconds of launch")
                return self._failure(
                    dyno, f"did not listen on $PORT within {self.boot_timeout:g} s (R10)"
                )
            if waiting:
                time.sleep(0.05)
        self._publish_state(app.name)
        return None

    @staticmethod
    def _failure(dyno: Dyno, what: str) -> str:
        reason = f"{dyno.spec.name} {what}"
        if dyno.tail:
            reason += "; its last lines:\n" + "\n".join(dyno.tail)
        return reason

    def _stop(self, app_name: str, dyno: Dyno, grace: float) -> None:
        with self._lock:
            dyno.state = "stopping"
            was_routed, dyno.routed = dyno.routed, False
        if was_routed:
            self._publish_route(app_name, None)
        self._publish_state(app_name)
        if dyno.run is not None:
            code = self.driver.stop(dyno.run, grace)
            events.emit(self.r, app_name, events.DYNO_STOPPED, proc=dyno.spec.name,
                        status=code)
        with self._lock:
            dynos = self.dynos.get(app_name, [])
            if dyno in dynos:
                dynos.remove(dyno)
        self._publish_state(app_name)

    def _stop_in_background(self, app_name: str, dyno: Dyno) -> None:
        with self._lock:
            dyno.state = "stopping"
        threading.Thread(
            target=self._stop, args=(app_name, dyno, self.stop_grace),
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
        if reason == "oom":
            logs.append(self.r, app_name, "paas", dyno.spec.name,
                        f"Error R15 (Memory quota vastly exceeded) -> the dyno used more than "
                        f"its {dyno.spec.limits.memory_mb} MB and was killed")
        logs.append(self.r, app_name, "paas", dyno.spec.name,
                    f"Process exited with status {code}; State changed from up to crashed")
        events.emit(self.r, app_name, events.DYNO_CRASHED, proc=dyno.spec.name,
                    status=code, restart_in=f"{delay:g}s")
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
            dynos = [d for d in self.dynos.get(app_name, []) if d.routed and d.state == "up"]
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
                    up_since=run.started_at or time.time())

        def output(line: str) -> None:
            dyno.tail.append(line)
            logs.append(self.r, app.name, "app", spec.name, line)

        self.driver.attach(run, output)
        with self._lock:
            self.dynos.setdefault(app.name, []).append(dyno)
        log.info("adopted %s of %s (v%d)", spec.name, app.name, spec.release)
        return True

    def _stop_all(self, dynos: list[tuple[str, Dyno]]) -> None:
        """Stop dynos in parallel, so N dynos take one grace period, not N."""
        threads = [
            threading.Thread(target=self._stop, args=(app, d, self.stop_grace))
            for app, d in dynos
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    def _shutdown(self) -> None:
        with self._lock:
            everything = [(app, d) for app, ds in self.dynos.items() for d in ds]
        self._stop_all(everything)
        for app_name in {app for app, _ in everything}:
            try:
                routes.remove(self.r, app_name)
                state.forget(self.r, app_name)
            except redis.RedisError:
                pass  # Redis may already be gone; it only held what we are removing


def _limits(sizes: dict[str, str], ptype: str) -> Limits:
    return dyno_sizes.limits(sizes.get(ptype, dyno_sizes.DEFAULT_SIZE))
