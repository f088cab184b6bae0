"""The router process: RouterServer (listen, route-table sync, logs, heartbeat) and main().

`router.proxy` moves the bytes; this module wires it to a listening socket and to Redis.
Redis (routes in, log lines and a heartbeat out) is used off the hot path: route loads and
the heartbeat in a thread, for the blocking client the `paas` modules expect; log lines and
route announcements on the event loop. Redis may be down at any time: the router then keeps
serving the last table it had.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import signal
import ssl
from collections import Counter, deque
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import redis
import redis.asyncio as aioredis

from paas import keys, logs, routes
from paas.agent import state as dyno_state
from paas.config import router_settings, settings
from paas.errors import PaasError
from paas.routes import Backend, Certificate
from router import core, tls
from router.backend import BackendPool
from router.proxy import ClientConnection

log = logging.getLogger("router")
#: How often a miss for one host may send the router to Redis for a fresher route.
RECHECK_SECONDS = 0.5
T = TypeVar("T")

# Router lines waiting for Redis. A batch Redis refuses is dropped: an outage costs log
# lines, never the router's memory or its requests.
LOG_BACKLOG = 10_000
#: Seconds a batch of log lines may take to reach Redis before it is given up.
LOG_SHIP_TIMEOUT = 5.0
#: Seconds a stop waits for its own tasks (log shipping, route updates) once cancelled.
STOP_TASKS_TIMEOUT = 2.0
#: How long the router trusts what it learnt of an app's crashed dynos (H10 or H14).
CRASH_CHECK_SECONDS = 1.0


class RouterServer:
    """The router: listens for clients and proxies them; `start`/`stop` for in-process use."""

    def __init__(
        self,
        *,
        domain: str = "localhost",
        platform_addr: str,
        redis_url: str | None = None,
        trusted_proxies: Iterable[str] = (),
        first_byte_timeout: float = 30.0,
        connect_timeout: float = 5.0,
        idle_timeout: float = 55.0,
        keepalive_timeout: float = 75.0,
        header_timeout: float = 10.0,
        max_conns_per_ip: int = 512,
        max_body: int | None = None,
        resync_interval: float = 5.0,
        heartbeat_interval: float = 1.0,
        tls_cert: str | os.PathLike[str] | None = None,
        tls_key: str | os.PathLike[str] | None = None,
        reuse_port: bool = False,
        public_https_port: int | None = None,
    ) -> None:
        """`platform_addr` is where the platform's web process listens ("unix:/path" or
        "host:port"); `redis_url` None runs on an empty, static table (no Redis at all).

        `idle_timeout`: a request (body or answer) that moves no byte for this long ends
        (H28); `keepalive_timeout`: an idle client connection between requests;
        `header_timeout`: to receive a whole request head, and a new connection's first
        one; `max_conns_per_ip`: open connections per client address, per process (429
        past it); `max_body`: bytes of request body (413 past it; None: no limit).
        `tls_cert`/`tls_key`: the platform certificate, for HTTPS (`start(https_port=)`);
        `reuse_port`: SO_REUSEPORT, so several router processes share the ports.
        `public_https_port`: the HTTPS port clients reach, for redirects to HTTPS, when
        something in front (a port forward, a load balancer) maps it onto ours."""
        self.domain = domain.lower().rstrip(".")
        self.platform_backend = Backend("web", platform_addr)
        self.redis_url = redis_url
        self.trusted_proxies = core.TrustedProxies(trusted_proxies)
        self.first_byte_timeout = first_byte_timeout
        self.connect_timeout = connect_timeout
        self.idle_timeout = idle_timeout
        self.keepalive_timeout = keepalive_timeout
        self.header_timeout = header_timeout
        self.max_conns_per_ip = max_conns_per_ip
        self.max_body = max_body
        self.tls_cert, self.tls_key = tls_cert, tls_key
        self.reuse_port = reuse_port
        self.public_https_port = public_https_port
        self.resync_interval = resync_interval
        self.heartbeat_interval = heartbeat_interval
        self.table = core.RouteTable()
        self._applied: dict[str, routes.RawEntry] = {}  # the entries the table was made of
        self._rechecked: dict[str, float] = {}
        self.pool = BackendPool()
        self.connections: set[ClientConnection] = set()
        self.port = 0
        self.https_port = 0  # 0: no HTTPS listener
        self.stopping = False
        self._per_ip: Counter[str] = Counter()
        self._crashed: dict[str, tuple[float, bool]] = {}
        self._certs: dict[str, tuple[Certificate, ssl.SSLContext | None]] = {}
        self._server: asyncio.AbstractServer | None = None
        self._tls_server: asyncio.AbstractServer | None = None
        self._serve_tls = False
        self._tasks: list[asyncio.Task[None]] = []
        self._log_lines: deque[logs.Entry] = deque(maxlen=LOG_BACKLOG)
        self._log_ready = asyncio.Event()
        self._redis: redis.Redis | None = None
        self._aredis: aioredis.Redis | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._redis_ok = True

    async def start(self, host: str = "0.0.0.0", port: int = 0,
                    https_port: int | None = None) -> None:
        """Load the routes (briefly waiting for Redis), then listen on host:port (0: any)
        and, given `https_port` and a certificate, for HTTPS on host:https_port."""
        self.loop = asyncio.get_running_loop()
        self._serve_tls = https_port is not None and bool(self.tls_cert and self.tls_key)
        shortest = min(self.first_byte_timeout, self.header_timeout, self.idle_timeout)
        tick = max(0.05, min(1.0, shortest / 4))
        self._tasks.append(self.loop.create_task(self._sweep(tick)))
        if self.redis_url is not None:
            self._executor = ThreadPoolExecutor(2, thread_name_prefix="router-redis")
            self._redis = redis.Redis.from_url(
                self.redis_url, socket_timeout=5, socket_connect_timeout=2
            )
            self._aredis = aioredis.from_url(self.redis_url, socket_connect_timeout=2)
            self._append_logs = logs.appender(self._aredis)
            loaded = asyncio.Event()
            self._tasks += [
                self.loop.create_task(self._follow_routes(loaded)),
                self.loop.create_task(self._heartbeat()),
                self.loop.create_task(self._ship_logs()),
            ]
            try:  # better to start a little late than to 404 every app at first
                async with asyncio.timeout(3.0):
                    await loaded.wait()
            except TimeoutError:
                log.warning("starting without routes: Redis did not answer in time")
        self._server = await self.loop.create_server(
            lambda: ClientConnection(self), host, port, reuse_address=True, backlog=1024,
            reuse_port=self.reuse_port or None,
        )
        self.port = self._server.sockets[0].getsockname()[1]
        log.info("router listening on %s:%d for *.%s", host, self.port, self.domain)
        if self._serve_tls:
            await self._start_tls(host, https_port)  # type: ignore[arg-type]

    async def _start_tls(self, host: str, port: int) -> None:
        try:
            ctx = tls.server_context(self.tls_cert, self.tls_key)  # type: ignore[arg-type]
        except (OSError, ssl.SSLError) as exc:
            log.error("no HTTPS: cannot load the platform certificate %s: %s", self.tls_cert, exc)
            return
        ctx.sni_callback = tls.sni_callback(self.context_for)
        try:
            self._tls_server = await self.loop.create_server(
                lambda: ClientConnection(self, tls=True), host, port, ssl=ctx,
                reuse_address=True, backlog=1024, reuse_port=self.reuse_port or None,
                ssl_handshake_timeout=self.header_timeout,
            )
        except OSError as exc:  # HTTP still works; say why HTTPS does not
            log.error("no HTTPS: cannot listen on %s:%d: %s", host, port, exc)
            return
        self.https_port = self._tls_server.sockets[0].getsockname()[1]
        log.info("router listening for HTTPS on %s:%d", host, self.https_port)

    def context_for(self, server_name: str) -> ssl.SSLContext | None:
        """The TLS context for a name a client asked for: its app's certificate, if it has
        one; None keeps the platform's."""
        if not self._certs:
            return None
        target = core.lookup(server_name, self.domain, self.table)
        entry = self._certs.get(target.app) if target.app else None
        return entry[1] if entry else None

    def _take_certificates(self, certs: dict[str, Certificate], only: str | None = None) -> None:
        """Make contexts for new or changed certificates (of app `only`, or of all)."""
        names = [only] if only is not None else list(set(certs) | set(self._certs))
        for app in names:
            cert = certs.get(app)
            known = self._certs.get(app)
            if cert is None:
                self._certs.pop(app, None)
            elif known is None or known[0] != cert:
                try:
                    self._certs[app] = (cert, tls.context_from_pem(cert))
                except (OSError, ssl.SSLError) as exc:
                    log.error("the certificate of %s is unusable: %s", app, exc)
                    self._certs[app] = (cert, None)

    def admit(self, peer: str) -> bool:
        """Count a new connection from `peer`; False when it has too many open."""
        if self._per_ip[peer] >= self.max_conns_per_ip:
            return False
        self._per_ip[peer] += 1
        return True

    def release_peer(self, peer: str) -> None:
        left = self._per_ip[peer] - 1
        if left > 0:
            self._per_ip[peer] = left
        else:
            self._per_ip.pop(peer, None)

    async def app_crashed(self, app: str) -> bool:
        """Whether the app's web dynos have crashed (H10) rather than not run (H14), from
        the dyno states the agent publishes; remembered a moment so a flood of requests
        to a down app costs one Redis read a second."""
        now = self.loop.time()
        known = self._crashed.get(app)
        if known is not None and now - known[0] < CRASH_CHECK_SECONDS:
            return known[1]
        if self._redis is None:
            return False
        dynos = await self._try_redis("reading dyno states", dyno_state.read, self._redis, app)
        crashed = any(
            d.get("type") == "web" and d.get("state") == "crashed" for d in dynos or ()
        )
        if len(self._crashed) > 10_000:
            self._crashed.clear()
        self._crashed[app] = (now, crashed)
        return crashed

    async def stop(self, drain: float = 5.0) -> None:
        """Stop accepting, let requests in flight finish for up to `drain` s, then close."""
        self.stopping = True
        if self._server is not None:
            self._server.close()
        if self._tls_server is not None:
            self._tls_server.close()
        deadline = self.loop.time() + drain
        while self.connections and self.loop.time() < deadline:
            for conn in list(self.connections):
                conn.close_if_idle()
            await asyncio.sleep(0.02)
        for conn in list(self.connections):
            conn.transport.abort()
        await asyncio.sleep(0)  # let the aborted connections' connection_lost run
        for task in self._tasks:
            task.cancel()
        # bounded: a task that took its cancel for something else must not hold the stop
        going_on: set[asyncio.Task[None]] = set()
        if self._tasks:
            _, going_on = await asyncio.wait(self._tasks, timeout=STOP_TASKS_TIMEOUT)
        for task in going_on:
            log.error("the router's task %s went on after its cancel; stopping without it",
                      task.get_coro())
        self._tasks.clear()
        self.pool.close_all()
        if self._redis is not None:
            if self._log_lines:
                await self._ship_batch()
            await self._aredis.aclose()  # type: ignore[union-attr]
            self._redis.close()
            self._executor.shutdown(wait=True)  # type: ignore[union-attr]
        if self._server is not None:
            await self._server.wait_closed()
        if self._tls_server is not None:
            await self._tls_server.wait_closed()

    # --- Redis: all of it off the hot path
    def ship_log(self, app: str, line: str) -> None:
        if self._redis is not None:
            self._log_lines.append((app, "router", "router", line))
            if not self._log_ready.is_set():
                self._log_ready.set()

    async def _ship_logs(self) -> None:
        while True:
            await self._log_ready.wait()
            await asyncio.sleep(0.05)  # let a burst gather into one round trip
            self._log_ready.clear()
            await self._ship_batch()

    async def _ship_batch(self) -> None:
        """Send the lines waiting, in one command (logs.appender) on the event loop: a
        thread would cost every request its share of GIL hand-overs."""
        batch = list(self._log_lines)
        self._log_lines.clear()
        if not batch:
            return
        try:
            async with asyncio.timeout(LOG_SHIP_TIMEOUT):
                await self._append_logs(batch)  # type: ignore[misc]
        except (redis.RedisError, OSError, TimeoutError) as exc:
            self._redis_failed("shipping log lines", exc)
        else:
            self._redis_fine()

    async def _try_redis(self, what: str, fn: Callable[..., T], *args: Any) -> T | None:
        """Run a blocking Redis call in a thread; a failure is logged once per outage."""
        try:
            result = await self.loop.run_in_executor(self._executor, fn, *args)
        except (redis.RedisError, OSError) as exc:
            self._redis_failed(what, exc)
            return None
        self._redis_fine()
        return result

    def _redis_failed(self, what: str, exc: Exception) -> None:
        if self._redis_ok:
            log.warning("Redis unavailable (%s): %s; serving the last route table", what, exc)
        self._redis_ok = False

    def _redis_fine(self) -> None:
        if not self._redis_ok:
            log.info("Redis is back")
        self._redis_ok = True

    async def _heartbeat(self) -> None:
        beat = functools.partial(self._redis.set, keys.heartbeat("router"), "up", ex=5)  # type: ignore[union-attr]
        while True:
            await self._try_redis("heartbeat", beat)
            await asyncio.sleep(self.heartbeat_interval)

    async def _follow_routes(self, loaded: asyncio.Event) -> None:
        """Subscribe, load everything, apply each change as announced, resync every
        `resync_interval` s; on any Redis trouble keep the table and start over."""
        backoff = 0.5
        while True:
            pubsub = self._aredis.pubsub()  # type: ignore[union-attr]
            try:
                # subscribe before loading, so no change falls between the two
                await pubsub.subscribe(keys.routes_channel())
                await self._reload_all()
                loaded.set()
                backoff = 0.5
                resync_at = self.loop.time() + self.resync_interval
                while True:
                    wait = max(0.0, resync_at - self.loop.time())
                    msg = await pubsub.get_message(ignore_subscribe_messages=True, timeout=wait)
                    if msg is not None and msg["type"] == "message":
                        await self._reload_app(msg["data"].decode())
                    if self.loop.time() >= resync_at:
                        await self._reload_all()
                        resync_at = self.loop.time() + self.resync_interval
            except (redis.RedisError, OSError) as exc:
                if self._redis_ok:
                    log.warning("route updates interrupted: %s; retrying", exc)
                self._redis_ok = False
                loaded.set()
            except (ValueError, KeyError, TypeError) as exc:
                # route entries are checked one by one (_apply); this is a certificate
                # entry, which must not end route updates for every app
                log.error("unreadable certificate entry (%r); keeping the last table", exc)
                loaded.set()
            finally:
                try:
                    await pubsub.aclose()
                except (redis.RedisError, OSError):
                    pass  # the connection is already gone, which is all aclose wanted
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 5.0)

    async def _reload_all(self) -> None:
        """Bring the table in line with Redis. Only entries that differ from the copy
        this router last applied are parsed and applied: with thousands of routes a full
        rebuild stalled the loop for tens of milliseconds every resync."""
        fresh = await self.loop.run_in_executor(
            self._executor, routes.load_all_raw, self._redis
        )
        applied = self._applied
        changed = sorted(app for app, entry in fresh.items() if applied.get(app) != entry)
        gone = applied.keys() - fresh.keys()
        for app in gone:
            self.table.remove(app)
            del applied[app]
            self._crashed.pop(app, None)
        for app in changed:  # sorted: two apps claiming one domain resolve alike everywhere
            self._apply(app, fresh[app])
        if changed or gone:
            self.pool.retain(self.may_pool)
        if self._serve_tls:
            certs = await self.loop.run_in_executor(
                self._executor, routes.load_certificates, self._redis
            )
            self._take_certificates(certs)

    def _apply(self, app: str, entry: routes.RawEntry) -> None:
        """Put `app`'s raw entries in the table, and remember them as applied."""
        try:
            route = routes.parse(app, entry)
        except (ValueError, KeyError, TypeError) as exc:
            # one malformed entry must not hold up every other app's; said once per value
            log.error("unreadable route of %s (%r); keeping what the router had", app, exc)
        else:
            if route is None:
                self.table.remove(app)
            else:
                self.table.update(route)
        if entry == (None, None):
            self._applied.pop(app, None)
        else:
            self._applied[app] = entry

    def may_pool(self, addr: str) -> bool:
        """Whether a connection to `addr` may be kept for later requests: only while a
        route names it. A dyno taken out of its route keeps only the connections of the
        requests still in flight, which the agent waits for before stopping it."""
        return addr == self.platform_backend.addr or self.table.routes_to(addr)

    def may_recheck(self, app: str) -> bool:
        """Whether a miss for `app` may ask Redis now: at most once per RECHECK_SECONDS per
        name, so a flood of requests for unknown hosts cannot flood Redis."""
        now = self.loop.time()
        if now - self._rechecked.get(app, -RECHECK_SECONDS) < RECHECK_SECONDS:
            return False
        if len(self._rechecked) > 10_000:
            self._rechecked.clear()
        self._rechecked[app] = now
        return True

    async def reload_app(self, app: str) -> None:
        try:
            await self._reload_app(app)
        except (redis.RedisError, OSError) as exc:
            log.warning("could not reload the route of %s: %s", app, exc)

    async def _reload_app(self, app: str) -> None:
        entry = await self.loop.run_in_executor(
            self._executor, routes.load_raw, self._redis, app
        )
        self._apply(app, entry)
        self.pool.retain(self.may_pool)
        self._crashed.pop(app, None)
        if self._serve_tls:
            cert = await self.loop.run_in_executor(
                self._executor, routes.load_certificate, self._redis, app
            )
            self._take_certificates({app: cert} if cert else {}, only=app)

    async def _sweep(self, tick: float) -> None:
        while True:
            await asyncio.sleep(tick)
            now = self.loop.time()
            for conn in list(self.connections):
                conn.check_timeouts(now)
            self.pool.sweep(now)


async def serve(server: RouterServer, host: str, port: int,
                https_port: int | None = None) -> None:
    """Run `server` until SIGTERM or SIGINT, then stop it cleanly."""
    loop = asyncio.get_running_loop()
    done = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, done.set)
    try:
        await server.start(host, port, https_port)
    except OSError:
        await server.stop(drain=0)
        raise
    await done.wait()
    log.info("router stopping")
    await server.stop()


def main() -> int:
    """`python -m router`: serve the platform's domain on settings().http_port, with the
    rest of paas.config.router_settings() (HTTPS on 8443 unless set; one process per
    core unless set)."""
    import uvloop

    from router.workers import run_workers, worker_count

    logging.basicConfig(level=logging.INFO, format="%(asctime)s router %(levelname)s %(message)s")
    s = settings()
    try:
        rs = router_settings(s)
    except PaasError as exc:
        log.error("%s", exc.message)
        return 1
    host, https_port = rs.host, rs.https_port
    if https_port and tls.ensure_platform_certificate(rs.tls_cert, rs.tls_key, s.domain):
        log.info("made a self-signed certificate for %s and *.%s in %s", s.domain, s.domain,
                 rs.tls_cert)
    workers = worker_count(rs.workers)

    def work() -> int:
        server = RouterServer(
            domain=s.domain, platform_addr=f"unix:{s.web_socket}", redis_url=s.redis_url,
            trusted_proxies=rs.trusted_proxies, tls_cert=rs.tls_cert, tls_key=rs.tls_key,
            reuse_port=workers > 1, max_conns_per_ip=rs.max_conns_per_ip,
            public_https_port=rs.public_https_port,
        )
        try:
            uvloop.run(serve(server, host, s.http_port, https_port))
        except OSError as exc:  # the port is taken, most likely: a line, not a traceback
            log.error("cannot listen on %s:%d: %s", host, s.http_port, exc)
            return 1
        return 0

    return work() if workers == 1 else run_workers(workers, work)
