"""The router process: RouterServer (listen, route-table sync, logs, heartbeat) and main().

`router.proxy` moves the bytes; this module wires it to a listening socket and to Redis.
Redis (routes in, log lines and a heartbeat out) is used off the hot path, in a thread for
the blocking client the `paas` modules expect, and may be down at any time: the router then
keeps serving the last table it had.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import signal
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import redis
import redis.asyncio as aioredis

from paas import keys, logs, routes
from paas.config import settings
from paas.routes import Backend
from router import core
from router.proxy import BackendPool, ClientConnection

log = logging.getLogger("router")
#: How often a miss for one host may send the router to Redis for a fresher route.
RECHECK_SECONDS = 0.5
T = TypeVar("T")

# Router lines waiting for Redis. A batch Redis refuses is dropped: an outage costs log
# lines, never the router's memory or its requests.
LOG_BACKLOG = 10_000


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
        resync_interval: float = 5.0,
        heartbeat_interval: float = 1.0,
    ) -> None:
        """`platform_addr` is where the platform's web process listens ("unix:/path" or
        "host:port"); `redis_url` None runs on an empty, static table (no Redis at all)."""
        self.domain = domain.lower().rstrip(".")
        self.platform_backend = Backend("web", platform_addr)
        self.redis_url = redis_url
        self.trusted_proxies = frozenset(trusted_proxies)
        self.first_byte_timeout = first_byte_timeout
        self.connect_timeout = connect_timeout
        self.idle_timeout = idle_timeout
        self.keepalive_timeout = keepalive_timeout
        self.resync_interval = resync_interval
        self.heartbeat_interval = heartbeat_interval
        self.table = core.RouteTable()
        self._rechecked: dict[str, float] = {}
        self.pool = BackendPool()
        self.connections: set[ClientConnection] = set()
        self.port = 0
        self.stopping = False
        self._server: asyncio.AbstractServer | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._log_lines: deque[tuple[str, str]] = deque(maxlen=LOG_BACKLOG)
        self._log_ready = asyncio.Event()
        self._redis: redis.Redis | None = None
        self._aredis: aioredis.Redis | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._redis_ok = True

    async def start(self, host: str = "0.0.0.0", port: int = 0) -> None:
        """Load the routes (briefly waiting for Redis), then listen on host:port (0: any)."""
        self.loop = asyncio.get_running_loop()
        tick = max(0.05, min(1.0, self.first_byte_timeout / 4))
        self._tasks.append(self.loop.create_task(self._sweep(tick)))
        if self.redis_url is not None:
            self._executor = ThreadPoolExecutor(2, thread_name_prefix="router-redis")
            self._redis = redis.Redis.from_url(
                self.redis_url, socket_timeout=5, socket_connect_timeout=2
            )
            self._aredis = aioredis.from_url(self.redis_url, socket_connect_timeout=2)
            loaded = asyncio.Event()
            self._tasks += [
                self.loop.create_task(self._follow_routes(loaded)),
                self.loop.create_task(self._heartbeat()),
                self.loop.create_task(self._ship_logs()),
            ]
            try:  # better to start a little late than to 404 every app at first
                await asyncio.wait_for(loaded.wait(), 3.0)
            except TimeoutError:
                log.warning("starting without routes: Redis did not answer in time")
        self._server = await self.loop.create_server(
            lambda: ClientConnection(self), host, port, reuse_address=True, backlog=1024
        )
        self.port = self._server.sockets[0].getsockname()[1]
        log.info("router listening on %s:%d for *.%s", host, self.port, self.domain)

    async def stop(self, drain: float = 5.0) -> None:
        """Stop accepting, let requests in flight finish for up to `drain` s, then close."""
        self.stopping = True
        if self._server is not None:
            self._server.close()
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
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        self.pool.close_all()
        if self._redis is not None:
            if self._log_lines:
                await self._try_redis("shipping log lines", self._ship, self._take_logs())
            await self._aredis.aclose()  # type: ignore[union-attr]
            self._redis.close()
            self._executor.shutdown(wait=True)  # type: ignore[union-attr]
        if self._server is not None:
            await self._server.wait_closed()

    # --- Redis: all of it off the hot path
    def ship_log(self, app: str, line: str) -> None:
        if self._redis is not None:
            self._log_lines.append((app, line))
            if not self._log_ready.is_set():
                self._log_ready.set()

    def _take_logs(self) -> list[tuple[str, str]]:
        batch = list(self._log_lines)
        self._log_lines.clear()
        return batch

    def _ship(self, batch: list[tuple[str, str]]) -> None:
        pipe = self._redis.pipeline(transaction=False)  # type: ignore[union-attr]
        for app, line in batch:
            logs.append(pipe, app, "router", "router", line)  # type: ignore[arg-type]
        pipe.execute()

    async def _try_redis(self, what: str, fn: Callable[..., T], *args: Any) -> T | None:
        """Run a blocking Redis call in a thread; a failure is logged once per outage."""
        try:
            result = await self.loop.run_in_executor(self._executor, fn, *args)
        except (redis.RedisError, OSError) as exc:
            if self._redis_ok:
                log.warning("Redis unavailable (%s): %s; serving the last route table", what, exc)
            self._redis_ok = False
            return None
        if not self._redis_ok:
            log.info("Redis is back")
        self._redis_ok = True
        return result

    async def _ship_logs(self) -> None:
        while True:
            await self._log_ready.wait()
            await asyncio.sleep(0.05)  # let a burst gather into one round trip
            self._log_ready.clear()
            await self._try_redis("shipping log lines", self._ship, self._take_logs())

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
                # a malformed entry must not end route updates for every other app
                log.error("unreadable route table entry (%r); keeping the last table", exc)
                loaded.set()
            finally:
                try:
                    await pubsub.aclose()
                except (redis.RedisError, OSError):
                    pass  # the connection is already gone, which is all aclose wanted
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 5.0)

    async def _reload_all(self) -> None:
        table = await self.loop.run_in_executor(self._executor, routes.load_all, self._redis)
        self.table.replace_all(table)
        self.pool.retain(self.may_pool)

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
        route = await self.loop.run_in_executor(self._executor, routes.load, self._redis, app)
        if route is None:
            self.table.remove(app)
        else:
            self.table.update(route)
        self.pool.retain(self.may_pool)

    async def _sweep(self, tick: float) -> None:
        while True:
            await asyncio.sleep(tick)
            now = self.loop.time()
            for conn in list(self.connections):
                conn.check_timeouts(now)
            self.pool.sweep(now)


async def serve(server: RouterServer, host: str, port: int) -> None:
    """Run `server` until SIGTERM or SIGINT, then stop it cleanly."""
    loop = asyncio.get_running_loop()
    done = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, done.set)
    try:
        await server.start(host, port)
    except OSError:
        await server.stop(drain=0)
        raise
    await done.wait()
    log.info("router stopping")
    await server.stop()


def main() -> int:
    """`python -m router`: serve the platform's domain on settings().http_port."""
    import uvloop

    logging.basicConfig(level=logging.INFO, format="%(asctime)s router %(levelname)s %(message)s")
    s = settings()
    server = RouterServer(
        domain=s.domain, platform_addr=f"unix:{s.web_socket}", redis_url=s.redis_url
    )
    host = os.environ.get("PAAS_ROUTER_HOST", "0.0.0.0")
    try:
        uvloop.run(serve(server, host, s.http_port))
    except OSError as exc:  # the port is taken, most likely: a line, not a traceback
        log.error("cannot listen on %s:%d: %s", host, s.http_port, exc)
        return 1
    return 0
