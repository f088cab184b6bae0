"""The bytes-moving half of the router: client and backend protocols and the backend pool.

asyncio Protocols with httptools parsers on both sides, so bytes go from one transport to
the other without a coroutine per chunk; each transport's pause/resume is coupled to the
reading of the other side so a fast peer can't fill memory. Every decision (where a host
goes, which backend, which headers, which error) is asked of `router.core`.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

import httptools

from paas.routes import Backend
from router import core

if TYPE_CHECKING:
    from router.server import RouterServer

log = logging.getLogger("router")

MAX_HEAD = 64 * 1024  # request line + headers; llhttp itself sets no limit
REPLAY_LIMIT = 64 * 1024  # request body kept to retry a request on a stale pooled connection

CHUNKED, UNTIL_CLOSE = core.Framing.CHUNKED, core.Framing.UNTIL_CLOSE
_LAST_CHUNK = b"0\r\n\r\n"


class Exchange:
    """One request/response on a client connection; plain state, the logic is in
    ClientConnection."""

    __slots__ = (
        "method", "url", "headers", "info", "keep_alive", "http10", "upgrade", "is_head",
        "request_done", "response_done", "close_after", "pending", "replay", "replay_size",
        "app", "backend", "conn", "connecting", "attempts", "retried", "reused", "status",
        "mode", "bytes_out", "error", "t_start", "t_connected", "t_sent",
    )

    def __init__(self) -> None:
        self.url = b""
        self.headers: core.Headers = []
        self.info: core.RequestInfo | None = None
        self.request_done = self.response_done = self.close_after = False
        self.pending: list[bytes] = []  # body pieces not yet written to a backend
        self.replay: list[bytes] | None = []
        self.replay_size = 0
        self.app: str | None = None
        self.backend: Backend | None = None
        self.conn: BackendConnection | None = None
        self.connecting: asyncio.Task[None] | None = None
        self.attempts = 0
        self.retried = self.reused = False
        self.status = 0
        self.mode = core.Framing.NONE
        self.bytes_out = 0
        self.error: core.RouterError | None = None
        self.t_connected = 0.0
        self.t_sent: float | None = None  # set while waiting for the first response byte


class BackendConnection(asyncio.Protocol):
    """A connection to one backend address; pooled between requests."""

    def __init__(self, addr: str) -> None:
        self.addr = addr
        self.transport: asyncio.Transport = None  # type: ignore[assignment]
        self.parser = httptools.HttpResponseParser(self)
        self.client: ClientConnection | None = None
        self.tunnel_to: asyncio.Transport | None = None
        self.closed = False
        self.idle_since = 0.0
        self.reset(False)

    def reset(self, is_head: bool) -> None:
        """Ready for the next response; `is_head` because a HEAD answer has no body."""
        self.is_head = is_head
        self.got_bytes = self.finished = self.broken = False
        self.final = False  # the final (non-1xx) response head has been seen
        self.keep_alive = False
        self.reason = b""
        self.headers: core.Headers = []

    # --- transport events
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        client = self.client
        if self.tunnel_to is not None:
            self.tunnel_to.write(data)
            if client is not None:
                client.last_activity = client.loop.time()
            return
        if client is None or self.finished:
            self.transport.close()  # unasked-for bytes: this connection can't be trusted
            return
        if not self.got_bytes:
            self.got_bytes = True
            client.first_byte()
        client.last_activity = client.loop.time()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade as exc:
            client.start_tunnel(self, data[exc.args[0]:])
            return
        except httptools.HttpParserError:
            self.broken = True
        if self.finished:  # even if junk followed: the answer itself is whole
            if self.is_head:  # llhttp would wait for the body a HEAD answer doesn't have
                self.parser = httptools.HttpResponseParser(self)
            client.response_complete(self)
        elif self.broken:
            client.backend_failed(self, core.BAD_RESPONSE)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.client is not None:
            self.client.backend_lost(self)

    def pause_writing(self) -> None:
        if self.client is not None:
            self.client.set_backend_full(True)

    def resume_writing(self) -> None:
        if self.client is not None:
            self.client.set_backend_full(False)

    # --- httptools callbacks
    def on_message_begin(self) -> None:
        if self.final:
            self.broken = True  # a second response to one request

    def on_status(self, reason: bytes) -> None:
        self.reason = reason

    def on_header(self, name: bytes, value: bytes) -> None:
        if not self.final:  # later ones are chunked trailers, which are dropped
            self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        if self.broken or self.client is None:
            return
        status = self.parser.get_status_code()
        headers, self.headers = self.headers, []
        if status < 200 and status != 101:
            self.client.interim_response(status, self.reason, headers)
            return
        self.final = True
        self.keep_alive = self.parser.should_keep_alive()
        self.client.response_head(self, status, self.reason, headers)
        if self.is_head:
            self.finished = True

    def on_body(self, body: bytes) -> None:
        if self.final and not self.finished and self.client is not None:
            self.client.response_body(body)

    def on_message_complete(self) -> None:
        if self.final:
            self.finished = True


class BackendPool:
    """Idle keep-alive connections per backend address, most recently used first."""

    def __init__(self, max_idle: int = 128, idle_timeout: float = 30.0) -> None:
        self.idle: dict[str, list[BackendConnection]] = {}
        self.max_idle = max_idle
        self.idle_timeout = idle_timeout

    def acquire(self, addr: str) -> BackendConnection | None:
        conns = self.idle.get(addr)
        while conns:
            conn = conns.pop()
            if not conn.closed and not conn.transport.is_closing():
                return conn
        return None

    async def open(self, addr: str) -> BackendConnection:
        loop = asyncio.get_running_loop()
        factory = functools.partial(BackendConnection, addr)
        if addr.startswith("unix:"):
            _, conn = await loop.create_unix_connection(factory, addr[5:])
        else:
            host, _, port = addr.rpartition(":")
            _, conn = await loop.create_connection(factory, host.strip("[]"), int(port))
        return conn

    def release(self, conn: BackendConnection, now: float) -> None:
        conn.client = None
        if conn.closed or conn.transport.is_closing():
            return
        conn.transport.resume_reading()  # so an idle connection still notices a close
        conn.idle_since = now
        conns = self.idle.setdefault(conn.addr, [])
        conns.append(conn)
        if len(conns) > self.max_idle:
            conns.pop(0).transport.close()

    def sweep(self, now: float) -> None:
        for addr, conns in list(self.idle.items()):
            keep = [c for c in conns if not c.closed and now - c.idle_since < self.idle_timeout]
            for conn in conns:
                if conn not in keep:
                    conn.transport.close()
            if keep:
                self.idle[addr] = keep
            else:
                del self.idle[addr]

    def retain(self, keep: Callable[[str], bool]) -> None:
        """Close the idle connections to every address `keep` refuses."""
        for addr in [a for a in self.idle if not keep(a)]:
            for conn in self.idle.pop(addr):
                conn.transport.close()

    def close_all(self) -> None:
        for conns in self.idle.values():
            for conn in conns:
                conn.transport.close()
        self.idle.clear()


class ClientConnection(asyncio.Protocol):
    """One client connection: parses requests, proxies them in order, answers errors."""

    def __init__(self, server: RouterServer) -> None:
        self.server = server
        self.loop = server.loop
        self.transport: asyncio.Transport = None  # type: ignore[assignment]
        self.peer = ""
        self.parser = httptools.HttpRequestParser(self)
        self.incoming: Exchange | None = None  # being parsed
        self.queue: deque[Exchange] = deque()  # queue[0] is being proxied; more = pipelined
        self.head_size = 0
        self.closed = False
        self.reading = True
        self.backend_full = self.client_full = False
        self.tunnel: BackendConnection | None = None
        self.upgrade_rest = b""  # bytes after an upgrade request, for the tunnel
        self.last_activity = self.loop.time()

    # --- client transport events
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        peer = transport.get_extra_info("peername")
        self.peer = peer[0] if isinstance(peer, tuple) else ""
        self.server.connections.add(self)

    def data_received(self, data: bytes) -> None:
        self.last_activity = self.loop.time()
        if self.tunnel is not None:
            self.tunnel.transport.write(data)
            return
        if self.closed:
            return
        if self.upgrade_rest or (self.queue and self.queue[-1].upgrade):
            self.upgrade_rest += data  # held until the backend agrees to switch protocols
            self._pause()
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade as exc:
            self.upgrade_rest = data[exc.args[0]:]
        except httptools.HttpParserError as exc:
            log.debug("bad request from %s: %r", self.peer, exc)
            if not self.queue:
                err = core.HEADERS_TOO_LARGE if self.head_size > MAX_HEAD else core.BAD_REQUEST
                self.transport.write(core.error_response(err, "", close=True))
                self._close()
            elif self.queue[-1].request_done:
                # answers to the good requests before it are owed; then hang up
                self.queue[-1].keep_alive = False
                self._pause()
            else:
                self._close()  # half a request went to a backend: nothing to salvage

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.server.connections.discard(self)
        if self.tunnel is not None:
            self.tunnel.client = None
            self.tunnel.transport.close()
        ex = self.queue[0] if self.queue else None
        if ex is None:
            return
        if ex.connecting is not None:
            ex.connecting.cancel()
        if ex.conn is not None:
            self._detach(ex).transport.close()  # mid-exchange: its state is unknowable
        if not ex.response_done and self.tunnel is None:
            ex.error, ex.status = core.CLIENT_INTERRUPTED, core.CLIENT_INTERRUPTED.status
            self._log(ex)

    def pause_writing(self) -> None:
        self.client_full = True
        conn = self.queue[0].conn if self.queue else self.tunnel
        if conn is not None:
            conn.transport.pause_reading()

    def resume_writing(self) -> None:
        self.client_full = False
        conn = self.queue[0].conn if self.queue else self.tunnel
        if conn is not None:
            conn.transport.resume_reading()

    # --- request parser callbacks
    def on_message_begin(self) -> None:
        self.incoming = Exchange()
        self.head_size = 0

    def on_url(self, url: bytes) -> None:
        ex = self.incoming
        ex.url += url  # type: ignore[union-attr]
        self.head_size += len(url)
        if self.head_size > MAX_HEAD:
            raise ValueError("request head too large")

    def on_header(self, name: bytes, value: bytes) -> None:
        ex = self.incoming
        if ex is None or ex.info is not None:
            return  # chunked trailers are not forwarded
        ex.headers.append((name, value))
        self.head_size += len(name) + len(value)
        if self.head_size > MAX_HEAD:
            raise ValueError("request head too large")

    def on_headers_complete(self) -> None:
        ex = self.incoming
        if ex is None or self.closed:
            return
        p = self.parser
        ex.t_start = self.loop.time()
        ex.method = p.get_method()
        ex.is_head = ex.method == b"HEAD"
        ex.keep_alive = p.should_keep_alive()
        ex.http10 = p.get_http_version() == "1.0"
        ex.upgrade = p.should_upgrade()
        srv = self.server
        ex.info = core.prepare_request(
            ex.headers, peer=self.peer, listen_port=srv.port, now=time.time(),
            trusted_proxies=srv.trusted_proxies, upgrade=ex.upgrade,
        )
        ex.headers = []
        self.queue.append(ex)
        if len(self.queue) == 1:
            self._start(ex)
        else:
            self._update_reading()

    def on_body(self, body: bytes) -> None:
        ex = self.incoming
        if ex is not None and not self.closed:
            self._send_body(ex, b"%x\r\n%s\r\n" % (len(body), body) if ex.info.chunked else body)

    def on_message_complete(self) -> None:
        ex, self.incoming = self.incoming, None
        if ex is None or self.closed:
            return
        if ex.info.chunked:
            self._send_body(ex, _LAST_CHUNK)
        ex.request_done = True
        if ex.conn is not None:
            ex.t_sent = self.loop.time()
        self._maybe_finish(ex)

    # --- proxying
    def _start(self, ex: Exchange, rechecked: bool = False) -> None:
        srv = self.server
        target = core.lookup(ex.info.host, srv.domain, srv.table)
        backend = srv.table.pick(target.app) if target.kind is core.Kind.APP else None
        if target.kind is not core.Kind.PLATFORM and backend is None and not rechecked:
            # The table may lag the route an instant (a deploy that just finished): ask
            # Redis once before answering 404 or 503. Rate-limited per name in the server.
            app = core.app_name(ex.info.host, srv.domain)
            if app is not None and srv.may_recheck(app):
                task = self.loop.create_task(srv.reload_app(app))
                task.add_done_callback(lambda _t: self._start(ex, rechecked=True))
                return
        if target.kind is core.Kind.UNKNOWN:
            self._local_error(ex, core.UNKNOWN_HOST)
            return
        if target.kind is core.Kind.APP:
            ex.app = target.app
            ex.backend = backend
            if ex.backend is None:
                self._local_error(ex, core.NO_WEB_DYNOS)
                return
        else:
            ex.backend = srv.platform_backend
        self._connect(ex)

    def _connect(self, ex: Exchange, fresh: bool = False) -> None:
        conn = None if fresh else self.server.pool.acquire(ex.backend.addr)  # type: ignore
        ex.reused = conn is not None
        if conn is not None:
            self._attach(ex, conn)
        else:
            ex.connecting = self.loop.create_task(self._open(ex))

    async def _open(self, ex: Exchange) -> None:
        srv = self.server
        error = None
        try:
            conn = await asyncio.wait_for(srv.pool.open(ex.backend.addr), srv.connect_timeout)
        except TimeoutError:
            error = core.CONNECT_TIMEOUT
        except (OSError, ValueError):
            error = core.CONNECT_FAILED
        ex.connecting = None
        if error is None:
            if self.closed or not self.queue or self.queue[0] is not ex:
                srv.pool.release(conn, self.loop.time())
            else:
                self._attach(ex, conn)
            return
        if self.closed:
            return
        ex.attempts += 1
        route = srv.table.get(ex.app) if ex.app else None
        if route is not None and ex.attempts < min(3, len(route.backends)):
            # another dyno may well be up: that beats an error page
            ex.backend = srv.table.pick(ex.app)  # type: ignore[arg-type]
            if ex.backend is not None:
                self._connect(ex)
                return
        self._local_error(ex, error)

    def _attach(self, ex: Exchange, conn: BackendConnection) -> None:
        ex.conn = conn
        conn.client = self
        conn.reset(ex.is_head)
        ex.t_connected = self.loop.time()
        head = core.request_head(ex.method, ex.url, ex.info.headers)
        if not ex.reused:
            ex.replay = None  # only a pooled connection can be stale and worth a retry
        pending, ex.pending = ex.pending, []
        if pending:
            conn.transport.writelines([head, *pending])
            for piece in pending:
                self._remember(ex, piece)
        else:
            conn.transport.write(head)
        if ex.request_done:
            ex.t_sent = self.loop.time()
        if self.client_full:
            conn.transport.pause_reading()
        self._update_reading()

    def _send_body(self, ex: Exchange, piece: bytes) -> None:
        if ex.response_done or ex.error is not None:
            return  # answered already; the rest of the body is discarded
        if ex.conn is not None:
            ex.conn.transport.write(piece)
            self._remember(ex, piece)
        else:
            ex.pending.append(piece)
            self._update_reading()

    def _remember(self, ex: Exchange, piece: bytes) -> None:
        if ex.replay is not None:
            ex.replay_size += len(piece)
            if ex.replay_size > REPLAY_LIMIT:
                ex.replay = None
            else:
                ex.replay.append(piece)

    def _detach(self, ex: Exchange) -> BackendConnection:
        conn, ex.conn = ex.conn, None
        conn.client = None  # type: ignore[union-attr]
        self.backend_full = False
        return conn  # type: ignore[return-value]

    def first_byte(self) -> None:
        self.queue[0].t_sent = None
        self.last_activity = self.loop.time()

    def interim_response(self, status: int, reason: bytes, headers: core.Headers) -> None:
        """A 1xx (100 Continue …) goes to the client as it is; the real answer follows."""
        if not self.queue[0].http10:
            info = core.prepare_response(headers)
            self.transport.write(core.response_head(status, reason, info.headers))

    def response_head(
        self, conn: BackendConnection, status: int, reason: bytes, headers: core.Headers
    ) -> None:
        ex = self.queue[0]
        if status == 101 and not ex.upgrade:
            conn.broken = True
            return
        ex.status = status
        if status == 101:
            info = core.prepare_response(headers, upgrade=True)
            self._write(ex, core.response_head(status, reason, info.headers))
            return
        info = core.prepare_response(
            headers, status=status, is_head=ex.is_head, http10=ex.http10
        )
        ex.mode = info.framing
        close = (
            ex.mode >= UNTIL_CLOSE or not ex.keep_alive or not ex.request_done or ex.upgrade
            or self.server.stopping
        )
        ex.close_after = close
        if close:
            extra = b"Connection: close\r\n"
        else:
            extra = b"Connection: keep-alive\r\n" if ex.http10 else b""
        self._write(ex, core.response_head(status, reason, info.headers, extra))

    def response_body(self, body: bytes) -> None:
        ex = self.queue[0]
        if ex.mode == CHUNKED:
            size = b"%x\r\n" % len(body)
            self.transport.writelines((size, body, b"\r\n"))
            ex.bytes_out += len(size) + len(body) + 2
        else:
            self.transport.write(body)
            ex.bytes_out += len(body)

    def response_complete(self, conn: BackendConnection) -> None:
        ex = self.queue[0]
        if ex.mode == CHUNKED:
            self._write(ex, _LAST_CHUNK)
        self._detach(ex)
        reusable = conn.keep_alive and ex.request_done and not conn.broken
        if reusable and self.server.may_pool(conn.addr):
            self.server.pool.release(conn, self.loop.time())
        else:
            conn.transport.close()
        ex.response_done = True
        self._maybe_finish(ex)

    def start_tunnel(self, conn: BackendConnection, rest: bytes) -> None:
        """After a 101, both sides speak another protocol: copy bytes both ways."""
        ex = self.queue[0]
        if ex.status != 101:
            self.backend_failed(conn, core.BAD_RESPONSE)
            return
        self.tunnel, conn.tunnel_to = conn, self.transport
        ex.response_done = True
        self._log(ex)
        if rest:
            self.transport.write(rest)
        if self.upgrade_rest:
            conn.transport.write(self.upgrade_rest)
            self.upgrade_rest = b""
        self._update_reading()

    def backend_failed(self, conn: BackendConnection, error: core.RouterError) -> None:
        ex = self.queue[0]
        self._detach(ex).transport.close()
        if ex.status:  # part of the answer is out: all we can do is cut it short
            ex.error = error
            self._log(ex)
            self._close()
        else:
            self._local_error(ex, error)

    def backend_lost(self, conn: BackendConnection) -> None:
        if self.tunnel is conn:
            self._close()
            return
        ex = self.queue[0]
        self._detach(ex)
        if ex.status and ex.mode == UNTIL_CLOSE:
            ex.response_done = True  # the close is the end of this body
            self._maybe_finish(ex)
        elif ex.status:
            ex.error = core.NO_RESPONSE
            self._log(ex)
            self._close()
        elif not conn.got_bytes and ex.reused and not ex.retried and ex.replay is not None:
            # a pooled connection the backend had already given up on: try a fresh one
            ex.retried = True
            ex.pending, ex.replay, ex.replay_size = ex.replay + ex.pending, [], 0
            ex.t_sent = None
            self._connect(ex, fresh=True)
        else:
            self._local_error(ex, core.NO_RESPONSE)

    def timed_out(self, ex: Exchange) -> None:
        self._detach(ex).transport.close()
        self._local_error(ex, core.REQUEST_TIMEOUT)

    def set_backend_full(self, full: bool) -> None:
        self.backend_full = full
        self._update_reading()

    # --- endings
    def _local_error(self, ex: Exchange, error: core.RouterError) -> None:
        close = (
            not ex.keep_alive or ex.upgrade or self.server.stopping
            or (ex.info.has_body and not ex.request_done)
        )
        ex.error, ex.status, ex.pending = error, error.status, []
        if ex.app is None and error.status >= 500 and ex.url.split(b"?")[0] == core.HEALTH_PATH:
            self._write(ex, core.web_down_health_response(
                close=close, request_id=ex.info.request_id
            ))
        else:
            self._write(ex, core.error_response(
                error, ex.info.host, close=close, request_id=ex.info.request_id
            ))
        ex.response_done = True
        ex.close_after = close
        self._maybe_finish(ex)

    def _maybe_finish(self, ex: Exchange) -> None:
        if not ex.response_done or not (ex.request_done or ex.close_after):
            return
        if self.queue and self.queue[0] is ex:
            self.queue.popleft()
        self._log(ex)
        if ex.close_after or not ex.keep_alive or self.closed:
            self._close()
            return
        self.last_activity = self.loop.time()
        if self.queue:
            self._start(self.queue[0])
        self._update_reading()

    def _write(self, ex: Exchange, data: bytes) -> None:
        self.transport.write(data)
        ex.bytes_out += len(data)

    def _log(self, ex: Exchange) -> None:
        if ex.app is None:
            return  # only app hosts have a log stream
        now = self.loop.time()
        started = ex.t_connected or ex.t_start
        self.server.ship_log(ex.app, core.log_line(
            method=ex.method.decode("latin-1"), path=ex.url.decode("latin-1"),
            host=ex.info.host, request_id=ex.info.request_id, fwd=ex.info.forwarded_for,
            dyno=ex.backend.dyno if ex.backend is not None else "",
            connect_ms=int((ex.t_connected - ex.t_start) * 1000) if ex.t_connected else 0,
            service_ms=int((now - started) * 1000), status=ex.status,
            bytes_sent=ex.bytes_out, error=ex.error,
        ))

    def close_if_idle(self) -> None:
        """Close unless a request is under way (the server is shutting down)."""
        if not self.queue and self.incoming is None and self.tunnel is None:
            self._close()

    def _close(self) -> None:
        if not self.closed:
            self.closed = True
            self.transport.close()

    def _pause(self) -> None:
        if self.reading:
            self.reading = False
            self.transport.pause_reading()

    def _update_reading(self) -> None:
        # Read only while the bytes have somewhere to go: not while the backend's buffer is
        # full, a body waits for its connection, or a pipelined request waits its turn.
        blocked = (
            self.backend_full or len(self.queue) > 1 or bool(self.queue and self.queue[-1].pending)
            or (bool(self.upgrade_rest) and self.tunnel is None)
        )
        if blocked:
            self._pause()
        elif not self.reading and not self.closed:
            self.reading = True
            self.transport.resume_reading()

    def check_timeouts(self, now: float) -> None:
        """Called periodically by the server: first-byte, idle and keep-alive timeouts."""
        srv = self.server
        ex = self.queue[0] if self.queue else None
        if ex is not None and ex.t_sent is not None and ex.conn is not None:
            if now - ex.t_sent > srv.first_byte_timeout:
                self.timed_out(ex)
        elif ex is None and self.incoming is None and self.tunnel is None:
            if now - self.last_activity > srv.keepalive_timeout or srv.stopping:
                self._close()
        elif ex is None or ex.connecting is None:
            if now - self.last_activity > srv.idle_timeout:
                if ex is not None and ex.conn is not None:
                    self._detach(ex).transport.close()
                self._close()
