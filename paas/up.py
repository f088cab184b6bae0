"""`paas up`: start the platform's processes in the foreground and look after them.

Starts redis-server (on a unix socket under $PAAS_HOME, unless REDIS_URL is
set), the web process (gunicorn), one build worker, the agent, the router and
the git SSH server (unless PAAS_SSH_PORT is off);
restarts a child that dies, with its exit logged; on Ctrl-C or SIGTERM stops
them in order (the agent stops every dyno) and leaves no process behind.
"""

from __future__ import annotations

import ctypes
import fcntl
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import redis
import requests

from paas import keys, routing
from paas.config import Settings, redis_client, router_settings, settings
from paas.errors import PaasError
from paas.runtime import cgroups, driver_for, oneoff
from paas.store import Store

log = logging.getLogger("paas.up")

RESTART_BACKOFF_CAP = 30.0
#: A child that ran this long before dying is restarted without delay.
HEALTHY_RUN = 60.0
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """In the child: get SIGTERM if `paas up` itself is killed, so nothing is orphaned."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


@dataclass
class Child:
    name: str
    argv: list[str]
    stop_timeout: float = 15.0
    #: The component name whose heartbeat `up` writes while the child lives (else its own).
    heartbeat: str | None = None
    #: The cgroup the child runs in (paas.runtime.cgroups); None: `up`'s own.
    cgroup: Path | None = None
    proc: subprocess.Popen[bytes] | None = None
    started: float = 0.0
    failures: int = 0
    next_start: float = field(default=0.0)

    def start(self, env: dict[str, str]) -> None:
        # A neutral working directory: Python puts it on sys.path, so a stray `web/` or
        # `router/` folder wherever `paas up` was started must not shadow ours.
        group = self.cgroup

        def prepare() -> None:
            _die_with_parent()
            if group is not None:
                cgroups.join(group)

        self.proc = subprocess.Popen(
            self.argv, env=env, cwd=env["PAAS_HOME"], start_new_session=True,
            preexec_fn=prepare,
        )
        self.started = time.monotonic()
        log.info("started %s (pid %d)", self.name, self.proc.pid)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            _killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(self.stop_timeout)
            except subprocess.TimeoutExpired:
                log.warning("%s did not stop in %gs; killing it", self.name, self.stop_timeout)
        # Whatever the child started in its session goes too.
        _killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        log.info("stopped %s", self.name)


def _killpg(pgid: int, signum: int) -> None:
    try:
        os.killpg(pgid, signum)
    except ProcessLookupError:
        pass


class Platform:
    def __init__(self, s: Settings) -> None:
        self.s = s
        self.stopping = False
        self.redis_child: Child | None = None
        self.children: list[Child] = []
        self.platform_idle: cgroups.IdleUnlessStarved | None = None
        self._lock_file = None

    # --- setup ----------------------------------------------------------------------
    def prepare(self) -> None:
        s = self.s
        router_settings(s)  # a malformed router setting stops `paas up` here, with its name
        s.home.mkdir(parents=True, exist_ok=True)
        s.home.chmod(0o700)
        for d in (s.run_dir, s.repos_dir, s.slugs_dir, s.cache_dir, s.builds_dir, s.dynos_dir):
            d.mkdir(parents=True, exist_ok=True)
        self._lock_file = open(s.run_dir / "up.lock", "a+")  # held for the life of `paas up`
        try:
            fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise PaasError(
                f"`paas up` is already running with PAAS_HOME={s.home}; stop it first "
                "or set another PAAS_HOME"
            ) from None
        # Builds interrupted by an earlier stop leave scratch space behind.
        for leftover in s.builds_dir.iterdir():
            shutil.rmtree(leftover, ignore_errors=True)

    def child_env(self) -> dict[str, str]:
        s = self.s
        env = dict(os.environ)
        env.update({
            "PAAS_HOME": str(s.home),
            "PAAS_DOMAIN": s.domain,
            "PAAS_HTTP_PORT": str(s.http_port),
            "PAAS_RUNTIME": s.runtime,
            "PAAS_SSH_PORT": str(s.ssh_port or "off"),
            "REDIS_URL": s.redis_url,
            "PYTHONUNBUFFERED": "1",
        })
        return env

    def start_redis(self) -> None:
        if self.s.redis_url_override:
            return
        server = shutil.which("redis-server")
        if server is None:
            raise PaasError("redis-server is not installed; run `make install` (or set REDIS_URL)")
        data = self.s.home / "redis"
        data.mkdir(exist_ok=True)
        self.s.redis_socket.unlink(missing_ok=True)
        # Redis holds only what can be rebuilt from SQLite, so it keeps nothing on disk.
        self.redis_child = Child("redis", [
            server, "--port", "0", "--unixsocket", str(self.s.redis_socket),
            "--unixsocketperm", "700", "--save", "", "--appendonly", "no",
            "--dir", str(data), "--loglevel", "warning",
        ])
        self.redis_child.start(self.child_env())
        self._wait_for_redis()

    def _wait_for_redis(self) -> None:
        r = redis_client(self.s)
        deadline = time.monotonic() + 15
        while True:
            try:
                r.ping()
                return
            except (redis.RedisError, OSError):
                if time.monotonic() > deadline:
                    raise PaasError(f"redis at {self.s.redis_url} did not answer") from None
                time.sleep(0.05)

    def bootstrap(self) -> None:
        """Schema, and on first start the admin account with its token in admin.token."""
        store = Store(self.s.db_path)
        store.migrate()
        admin = store.user_by_name("admin") or store.create_user("admin", is_admin=True)
        if not self.s.admin_token_path.exists():
            token = store.create_token(admin.id, "admin token written by paas up")
            fd = os.open(self.s.admin_token_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(token + "\n")
        store.close()
        self.publish_routing()

    def publish_routing(self) -> None:
        """Copy domains, maintenance and certificates from SQLite to Redis, which keeps
        nothing on disk: at start, and after Redis itself was restarted."""
        store = Store(self.s.db_path)
        try:
            routing.sync_all(store, redis_client(self.s))
        except (redis.RedisError, OSError) as exc:
            log.error("could not publish the apps' domains and certificates: %s", exc)
        finally:
            store.close()

    def define_children(self) -> None:
        py = sys.executable
        agent_grace = float(os.environ.get("PAAS_STOP_GRACE", "30"))
        # What deploys rather than serves weighs less on the CPU than the traffic does
        # (paas/runtime/cgroups.py); the router stays with `up`. On runc only: with the
        # process runtime the agent's dynos are its children and would join it too.
        control = cgroups.platform_cgroup() if self.s.runtime == "runc" else None
        if control is not None:
            log.info("web, worker, agent and ssh run in cgroup %s", control)
        # Idle while it finds spare CPU, at its weight while it does not.
        self.platform_idle = cgroups.platform_idle(control)
        self.children = [
            Child("web", [
                py, "-m", "gunicorn", "--worker-class", "gthread", "--workers", "2",
                "--threads", "16", "--bind", f"unix:{self.s.web_socket}",
                "--chdir", str(self.s.home),
                "--timeout", "120", "--graceful-timeout", "10", "--log-level", "warning",
                "web:create_app()",
            ], cgroup=control),
            Child("worker", [py, "-m", "paas.build.worker"], heartbeat="worker",
                  cgroup=control),
            Child("agent", [py, "-m", "paas.agent"], stop_timeout=agent_grace + 15,
                  cgroup=control),
            Child("router", [py, "-m", "router"]),
        ]
        if self.s.ssh_port:
            self.children.append(Child("ssh", [py, "-m", "paas.git.ssh"], cgroup=control))

    # --- running ------------------------------------------------------------------------
    def supervise(self) -> None:
        env = self.child_env()
        for child in self.children:
            child.start(env)
        r = redis_client(self.s)
        announce_by = time.monotonic() + 30
        announced = False
        while not self.stopping:
            now = time.monotonic()
            if not announced and (self._healthy() or now > announce_by):
                announced = True
                self._announce(healthy=now <= announce_by)
            for child in self.children:
                if child.alive():
                    if child.heartbeat:
                        self._beat(r, child.heartbeat)
                    continue
                if child.proc is not None and child.next_start == 0.0:
                    self._child_died(r, child, now)
                if now >= child.next_start and not self.stopping:
                    child.next_start = 0.0
                    child.start(env)
            if self.redis_child is not None and not self.redis_child.alive():
                log.error("redis exited with code %s; restarting it",
                          self.redis_child.proc.returncode if self.redis_child.proc else None)
                self.redis_child.start(env)
                self._wait_for_redis()
                self.publish_routing()
            if self.platform_idle is not None:
                self.platform_idle.tick()
            time.sleep(0.5)

    def _child_died(self, r: redis.Redis, child: Child, now: float) -> None:
        assert child.proc is not None
        ran = now - child.started
        child.failures = 0 if ran > HEALTHY_RUN else child.failures + 1
        delay = min(2.0 ** (child.failures - 1), RESTART_BACKOFF_CAP) if child.failures else 0.0
        log.error("%s (pid %d) exited with code %s after %.1fs; restarting in %gs",
                  child.name, child.proc.pid, child.proc.returncode, ran, delay)
        try:
            r.delete(keys.heartbeat(child.heartbeat or child.name))
        except (redis.RedisError, OSError):
            pass
        child.next_start = now + delay

    @staticmethod
    def _beat(r: redis.Redis, component: str) -> None:
        try:
            r.set(keys.heartbeat(component), "up", ex=3)
        except (redis.RedisError, OSError):
            pass

    def _healthy(self) -> bool:
        try:
            response = requests.get(f"http://127.0.0.1:{self.s.http_port}/api/health",
                                    headers={"Host": self.s.domain}, timeout=0.5)
            return response.status_code == 200
        except requests.RequestException:
            return False

    def _announce(self, healthy: bool) -> None:
        s = self.s
        url = s.platform_url()
        if not healthy:
            log.warning("the platform is not healthy yet; see %s/api/health", url)
        ssh_remote = (f"               {s.ssh_git_url('APP', s.domain)}  (`paas keys:add`, "
                      "then `paas git:remote --ssh -a APP`)\n") if s.ssh_port else ""
        print(
            f"\npaas is up (PAAS_HOME={s.home})\n"
            f"  Dashboard:   {url}/\n"
            f"  Apps answer: http://APP.{s.domain}:{s.http_port}/\n"
            f"  Git remote:  {url}/git/APP.git  (`paas git:remote -a APP` adds it)\n"
            f"{ssh_remote}"
            f"  CLI:         export PATH=\"$PWD/.venv/bin:$PATH\"   # in this checkout\n"
            f"               paas apps:create hello    # on this machine the CLI reads "
            f"{s.admin_token_path}\n"
            f"               paas login --url {url}   # elsewhere; the token is in "
            f"{s.admin_token_path}\n"
            "Press Ctrl-C to stop.\n",
            flush=True,
        )

    def shutdown(self) -> None:
        self.stopping = True
        by_name = {c.name: c for c in self.children}
        # The router stops taking requests first; the agent, which stops every dyno, needs
        # Redis, so Redis goes last.
        for name in ("router", "ssh", "web", "worker", "agent"):
            child = by_name.get(name)
            if child is not None:
                child.stop()
        self._sweep_dynos()
        if self.redis_child is not None:
            self.redis_child.stop()
            self.s.redis_socket.unlink(missing_ok=True)
        self.s.web_socket.unlink(missing_ok=True)

    def _sweep_dynos(self) -> None:
        """Stop any dyno the agent could not (e.g. it was killed): nothing is left behind."""
        try:
            driver = driver_for(self.s)
        except ValueError:
            return
        for dyno in driver.strays():
            log.warning("stopping %s of %s left running", dyno.spec.name, dyno.spec.app)
            driver.stop(dyno, grace=5.0)
        for swept in oneoff.sweep_one_offs(self.s):
            log.warning("removed one-off dyno %s left running", swept)


def run_up() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s up %(levelname)s %(message)s")
    platform = Platform(settings())

    def on_signal(signum: int, _frame: object) -> None:
        if not platform.stopping:
            log.info("got %s; stopping the platform", signal.Signals(signum).name)
        platform.stopping = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        platform.prepare()
        platform.start_redis()
        platform.bootstrap()
        platform.define_children()
        platform.supervise()
    except PaasError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        platform.shutdown()
        return 1
    platform.shutdown()
    log.info("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(run_up())

