"""The client half of the router: parse requests, proxy them in order, answer errors.

asyncio Protocols with httptools parsers on both sides (the backend side is in
router.backend), so bytes go from one transport to the other without a coroutine per
chunk; the common exchange, a bodiless request and a whole Content-Length answer each in
one read, skips the parsers (router.fastpath). Each transport's pause/resume is coupled
to the reading of the other side so a fast peer can't fill memory. Every decision (where
a host goes, which backend, which headers, which error) is asked of `router.core`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from typing import TYPE_CHECKING

import httptools

from paas.routes import Backend
from router import core, fastpath
from router.backend import BackendConnection

if TYPE_CHECKING:
    from router.server import RouterServer

log = logging.getLogger("router")

MAX_LINE = 8 * 1024  # the request target; nginx's large_client_header_buffers default
MAX_HEAD = 64 * 1024  # request line + headers; llhttp itself sets no limit
MAX_HEADERS = 100
REPLAY_LIMIT = 64 * 1024  # request body kept to retry a request on a stale pooled connection

CHUNKED, UNTIL_CLOSE = core.Framing.CHUNKED, core.Framing.UNTIL_CLOSE
_LAST_CHUNK = b"0\r\n\r\n"


class _Limit(Exception):
    """Raised from a parser callback to stop parsing a request past a limit."""


class Exchange:
    """One request/response on a client connection; plain state, the logic is in
    ClientConnection."""

    __slots__ = (
        "method", "url", "headers", "info", "keep_alive", "http10", "upgrade", "is_head",
        "request_done", "response_done", "close_after", "pending", "replay", "replay_size",
        "app", "backend", "conn", "connecting", "attempts", "retried", "reused", "status",
        "mode", "bytes_out", "error", "t_start", "t_connected", "t_sent", "counted",
        "body_in", "rejected", "head",
    )

    def __init__(self) -> None:
        self.method = b""
        self.url = b""
        self.headers: core.Headers = []
        self.info: core.RequestInfo | None = None
        self.keep_alive = True
        self.http10 = self.upgrade = self.is_head = False
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
        self.t_start = 0.0
        self.t_connected = 0.0
        self.t_sent: float | None = None  # set while waiting for the first response byte
        self.counted: str | None = None  # the address whose outstanding count has this
        self.body_in = 0
        self.rejected: core.RouterError | None = None  # answered locally, never forwarded
        self.head = b""  # the head for the backend, when router.fastpath made it


class ClientConnection(asyncio.Protocol):
    """One client connection: parses requests, proxies them in order, answers errors."""

    # slots: a thousand idle keep-alive connections are a thousand of these
    __slots__ = (
        "server", "loop", "tls", "proto", "transport", "peer", "counted_peer", "parser",
        "incoming", "queue", "head_size", "header_count", "limit", "closed", "reading",
        "rejecting", "backend_full", "client_full", "tunnel", "upgrade_rest", "served",
        "batch", "last_activity", "head_started",
    )

    def __init__(self, server: RouterServer, tls: bool = False) -> None:
        self.server = server
        self.loop = server.loop
        self.tls = tls
        self.proto = b"https" if tls else b"http"
        self.transport: asyncio.Transport = None  # type: ignore[assignment]
        self.peer = ""
        self.counted_peer = False
        self.parser = httptools.HttpRequestParser(self)
        self.incoming: Exchange | None = None  # being parsed
        self.queue: deque[Exchange] = deque()  # queue[0] is being proxied; more = pipelined
        self.head_size = 0
        self.header_count = 0
        self.limit: core.RouterError | None = None  # the limit a request went past
        self.closed = False
        self.reading = True
        self.rejecting = False  # a request was refused: read no more, close after answers
        self.backend_full = self.client_full = False
        self.tunnel: BackendConnection | None = None
        self.upgrade_rest = b""  # bytes after an upgrade request, for the tunnel
        self.served = 0
        self.batch: list[bytes] | None = None  # writes held until the end of a backend read
        self.last_activity = self.loop.time()
        self.head_started = self.last_activity

    # --- client transport events
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        peer = transport.get_extra_info("peername")
        self.peer = peer[0] if isinstance(peer, tuple) else ""
        srv = self.server
        srv.connections.add(self)
        if not srv.admit(self.peer):
            self.closed = True
            self.transport.write(core.error_response(core.TOO_MANY_CONNECTIONS, "", close=True))
            self.transport.close()
            return
        self.counted_peer = True

    def data_received(self, data: bytes) -> None:
        self.last_activity = self.loop.time()
        if self.tunnel is not None:
            self.tunnel.transport.write(data)
            return
        if self.closed or self.rejecting:
            return
        if self.upgrade_rest or (self.queue and self.queue[-1].upgrade):
            self.upgrade_rest += data  # held until the backend agrees to switch protocols
            self._pause()
            return
        if not self.queue and self.incoming is None and data[-4:] == b"\r\n\r\n":
            quick = fastpath.read_request(
                data, peer=self.peer, now=time.time(), proto=self.proto,
                listen_port=self.server.https_port if self.tls else self.server.port,
            )
            if quick is not None:
                self._take_quick(quick)
                return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade as exc:
            self.upgrade_rest = data[exc.args[0]:]
        except httptools.HttpParserError as exc:
            if self.rejecting or self.closed:
                return  # a callback refused the request and has answered already
            log.debug("bad request from %s: %r", self.peer, exc)
            ex = self.incoming
            if ex is not None and ex.info is not None:
                # the head was good and its body is broken: part of it may be on its way
                # to a backend, so there is nothing to salvage
                self._close()
                return
            self._reject(self.limit or core.BAD_REQUEST)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        srv = self.server
        srv.connections.discard(self)
        if self.counted_peer:
            self.counted_peer = False
            srv.release_peer(self.peer)
        if self.tunnel is not None:
            self.tunnel.client = None
            self.tunnel.transport.close()
        ex = self.queue[0] if self.queue else None
        if ex is None:
            return
        self._uncount(ex)
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
        self.head_size = self.header_count = 0
        self.head_started = self.loop.time()

    def on_url(self, url: bytes) -> None:
        ex = self.incoming
        ex.url += url  # type: ignore[union-attr]
        self.head_size += len(url)
        if self.head_size > MAX_LINE:
            self.limit = core.URI_TOO_LONG
            raise _Limit

    def on_header(self, name: bytes, value: bytes) -> None:
        ex = self.incoming
        if ex is None or ex.info is not None:
            return  # chunked trailers are not forwarded
        ex.headers.append((name, value))
        self.head_size += len(name) + len(value) + 4
        self.header_count += 1
        if self.head_size > MAX_HEAD or self.header_count > MAX_HEADERS:
            self.limit = core.HEADERS_TOO_LARGE
            raise _Limit

    def on_headers_complete(self) -> None:
        ex = self.incoming
        if ex is None or self.closed:
            return
        p = self.parser
        srv = self.server
        ex.t_start = self.loop.time()
        ex.method = p.get_method()
        ex.is_head = ex.method == b"HEAD"
        ex.keep_alive = p.should_keep_alive()
        version = p.get_http_version()
        ex.http10 = version == "1.0"
        ex.upgrade = p.should_upgrade()
        ex.info = core.prepare_request(
            ex.headers, peer=self.peer, listen_port=srv.https_port if self.tls else srv.port,
            now=time.time(), trusted_proxies=srv.trusted_proxies, upgrade=ex.upgrade,
            proto=self.proto, http10=ex.http10,
        )
        ex.headers = []
        problem = ex.info.problem
        if problem is None and version not in ("1.0", "1.1"):
            problem = core.BAD_REQUEST
        if problem is None and srv.max_body is not None and (
            ex.info.content_length or 0) > srv.max_body:
            problem = core.BODY_TOO_LARGE
        if problem is not None:
            self.incoming = None
            self._reject(problem, ex)
            raise _Limit  # parse no further: nothing after this request can be trusted
        self.queue.append(ex)
        if len(self.queue) == 1:
            self._start(ex)
        else:
            self._update_reading()

    def on_body(self, body: bytes) -> None:
        ex = self.incoming
        if ex is None or self.closed:
            return
        ex.body_in += len(body)
        if self.server.max_body is not None and ex.body_in > self.server.max_body:
            self._body_too_large(ex)
            raise _Limit
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

    def _take_quick(self, quick: fastpath.QuickRequest) -> None:
        """A whole bodiless request router.fastpath has read and rewritten: what the
        parser callbacks would have made of it, in one step."""
        ex = Exchange()
        ex.t_start = self.last_activity
        ex.method, ex.url, ex.head = quick.method, quick.target, quick.head
        ex.is_head = quick.method == b"HEAD"
        ex.keep_alive = quick.keep_alive
        ex.info = core.RequestInfo([], quick.host, quick.request_id, self.peer, False, None)
        ex.request_done = True
        self.queue.append(ex)
        self._start(ex)

    # --- refusing requests
    def _reject(self, error: core.RouterError, ex: Exchange | None = None) -> None:
        """Answer `error` in this request's turn, then close: whatever follows a request
        we could not read (or would not forward) can't be framed with certainty."""
        if ex is None:
            ex = Exchange()
            ex.t_start = self.loop.time()
            ex.info = core.RequestInfo([], "", core.new_request_id(), self.peer, False, None)
        ex.rejected = error
        ex.keep_alive = False
        ex.request_done = True
        self.rejecting = True
        self.incoming = None
        self._pause()
        self.queue.append(ex)
        if len(self.queue) == 1:
            self._start(ex)

    def _body_too_large(self, ex: Exchange) -> None:
        self.rejecting = True
        self.incoming = None
        self._pause()
        if self.queue and self.queue[0] is ex and not ex.status:
            if ex.conn is not None:
                self._detach(ex).transport.close()
            if ex.connecting is not None:
                ex.connecting.cancel()
                ex.connecting = None
            self._uncount(ex)
            ex.close_after = True
            self._local_error(ex, core.BODY_TOO_LARGE)
        else:
            self._close()

    # --- proxying
    def _start(self, ex: Exchange, rechecked: bool = False) -> None:
        if ex.rejected is not None:
            self._local_error(ex, ex.rejected)
            return
        srv = self.server
        target = core.lookup(ex.info.host, srv.domain, srv.table)
        route = target.route
        now = self.loop.time()
        backend = srv.table.pick(target.app, now) if target.kind is core.Kind.APP else None
        if target.kind is not core.Kind.PLATFORM and backend is None and not rechecked:
            # The table may lag the route an instant (a deploy that just finished): ask
            # Redis once before answering 404 or 503. Rate-limited per name in the server.
            app = target.app or core.app_name(ex.info.host, srv.domain)
            if app is not None and srv.may_recheck(app):
                task = self.loop.create_task(srv.reload_app(app))
                task.add_done_callback(lambda _t: self._restart(ex))
                return
        if target.kind is core.Kind.UNKNOWN:
            self._local_error(ex, core.UNKNOWN_HOST)
            return
        if target.kind is core.Kind.APP:
            ex.app = target.app
            if route is not None and route.https_redirect and not self.tls and srv.https_port:
                self._redirect(ex)
                return
            if route is not None and route.maintenance:
                self._local_error(ex, core.MAINTENANCE)
                return
            ex.backend = backend
            if backend is None:
                self._no_backend(ex)
                return
        else:
            ex.backend = srv.platform_backend
        self._connect(ex)

    def _restart(self, ex: Exchange) -> None:
        if not self.closed and self.queue and self.queue[0] is ex:
            self._start(ex, rechecked=True)

    def _no_backend(self, ex: Exchange) -> None:
        """No web dyno is up: crashed (H10) or none running (H14)? The dyno states say."""
        task = self.loop.create_task(self.server.app_crashed(ex.app))  # type: ignore[arg-type]

        def answer(t: asyncio.Task[bool]) -> None:
            if self.closed or not self.queue or self.queue[0] is not ex:
                return
            crashed = not t.cancelled() and t.exception() is None and t.result()
            self._local_error(ex, core.APP_CRASHED if crashed else core.NO_WEB_DYNOS)

        task.add_done_callback(answer)

    def _connect(self, ex: Exchange, fresh: bool = False) -> None:
        addr = ex.backend.addr  # type: ignore[union-attr]
        if ex.counted != addr:
            self._uncount(ex)
            self.server.table.begin(addr)
            ex.counted = addr
        conn = None if fresh else self.server.pool.acquire(addr)
        ex.reused = conn is not None
        if conn is not None:
            self._attach(ex, conn)
        else:
            ex.connecting = self.loop.create_task(self._open(ex))

    def _uncount(self, ex: Exchange) -> None:
        if ex.counted is not None:
            self.server.table.end(ex.counted)
            ex.counted = None

    async def _open(self, ex: Exchange) -> None:
        srv = self.server
        error = None
        addr = ex.backend.addr  # type: ignore[union-attr]
        try:
            conn = await asyncio.wait_for(srv.pool.open(addr), srv.connect_timeout)
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
        # Nothing was sent: the dyno is left out for a while and another one tried, once.
        now = self.loop.time()
        srv.table.mark_down(addr, now)
        ex.attempts += 1
        if ex.app is not None and ex.attempts < 2:
            other = srv.table.pick(ex.app, now, avoid=addr)
            if other is not None and other.addr != addr:
                ex.backend = other
                self._connect(ex)
                return
        self._uncount(ex)
        self._local_error(ex, error)

    def _attach(self, ex: Exchange, conn: BackendConnection) -> None:
        ex.conn = conn
        conn.client = self
        conn.reset(ex.is_head)
        ex.t_connected = self.loop.time()
        head = ex.head or core.request_head(ex.method, ex.url, ex.info.headers)
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
            self._send(core.response_head(status, reason, info.headers))

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
        self._write(ex, core.response_head(status, reason, info.headers, self._ending(ex)))

    def _ending(self, ex: Exchange) -> bytes:
        """Whether the client connection ends with this answer (ex.close_after, from its
        framing and the request), and the Connection line the answer carries to say so."""
        close = (
            ex.mode >= UNTIL_CLOSE or not ex.keep_alive or not ex.request_done or ex.upgrade
            or self.server.stopping
        )
        ex.close_after = close
        if close:
            return b"Connection: close\r\n"
        return b"Connection: keep-alive\r\n" if ex.http10 else b""

    def quick_response(
        self, conn: BackendConnection, quick: fastpath.QuickResponse, data: bytes
    ) -> None:
        """A whole response router.fastpath has read (a Content-Length body, all in
        `data`): response_head, response_body and response_complete in one step."""
        ex = self.queue[0]
        ex.status = quick.status
        ex.mode = core.Framing.LENGTH
        head = quick.head + self._ending(ex) + b"\r\n"
        body = len(data) - quick.body_start
        if not self.transport.is_closing():
            if body <= 4096:  # one copy is cheaper than a second buffer to write
                self.transport.write(head + data[quick.body_start:])
            else:
                self.transport.writelines((head, memoryview(data)[quick.body_start:]))
        ex.bytes_out += len(head) + body
        self.response_complete(conn)

    def response_body(self, body: bytes) -> None:
        ex = self.queue[0]
        if ex.mode == CHUNKED:
            size = b"%x\r\n" % len(body)
            self._send(size)
            self._send(body)
            self._send(b"\r\n")
            ex.bytes_out += len(size) + len(body) + 2
        else:
            self._send(body)
            ex.bytes_out += len(body)

    def response_complete(self, conn: BackendConnection) -> None:
        ex = self.queue[0]
        if ex.mode == CHUNKED:
            self._write(ex, _LAST_CHUNK)
        self._detach(ex)
        self._uncount(ex)
        reusable = conn.keep_alive and ex.request_done and not conn.broken
        if reusable and self.server.may_pool(conn.addr):
            self.server.pool.release(conn, self.loop.time())
        else:
            conn.transport.close()
        if not ex.request_done:
            ex.error = core.SERVER_INTERRUPTED  # answered before reading the whole body
        ex.response_done = True
        self._maybe_finish(ex)

    def start_tunnel(self, conn: BackendConnection, rest: bytes) -> None:
        """After a 101, both sides speak another protocol: copy bytes both ways."""
        ex = self.queue[0]
        if ex.status != 101:
            self.backend_failed(conn, core.BAD_RESPONSE)
            return
        self.flush()
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
        self._uncount(ex)
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
            self._uncount(ex)
            ex.response_done = True  # the close is the end of this body
            self._maybe_finish(ex)
        elif ex.status:
            self._uncount(ex)
            ex.error = core.SERVER_INTERRUPTED
            self._log(ex)
            self._close()
        elif not conn.got_bytes and ex.reused and not ex.retried and ex.replay is not None:
            # a pooled connection the backend had already given up on: try a fresh one
            ex.retried = True
            ex.pending, ex.replay, ex.replay_size = ex.replay + ex.pending, [], 0
            ex.t_sent = None
            self._connect(ex, fresh=True)
        else:
            self._uncount(ex)
            self._local_error(ex, core.NO_RESPONSE)

    def timed_out(self, ex: Exchange) -> None:
        self._detach(ex).transport.close()
        self._uncount(ex)
        self._local_error(ex, core.REQUEST_TIMEOUT)

    def set_backend_full(self, full: bool) -> None:
        self.backend_full = full
        self._update_reading()

    # --- endings
    def _must_close(self, ex: Exchange) -> bool:
        return (
            not ex.keep_alive or ex.upgrade or self.server.stopping or ex.close_after
            or (ex.info.has_body and not ex.request_done)
        )

    def _local_error(self, ex: Exchange, error: core.RouterError) -> None:
        close = self._must_close(ex)
        ex.error, ex.status, ex.pending = error, error.status, []
        if ex.app is None and error.status >= 500 and ex.url.split(b"?")[0] == core.HEALTH_PATH:
            self._write(ex, core.web_down_health_response(
                close=close, request_id=ex.info.request_id
            ))
        else:
            self._write(ex, core.error_response(
                error, ex.info.host, close=close, request_id=ex.info.request_id
            ))
        self._answered(ex, close)

    def _redirect(self, ex: Exchange) -> None:
        close = self._must_close(ex)
        ex.status, ex.pending = 301 if ex.method in (b"GET", b"HEAD") else 308, []
        self._write(ex, core.redirect_response(
            ex.info.host, ex.url,
            https_port=self.server.public_https_port or self.server.https_port, method=ex.method,
            close=close, request_id=ex.info.request_id,
        ))
        self._answered(ex, close)

    def _answered(self, ex: Exchange, close: bool) -> None:
        ex.response_done = True
        ex.close_after = close
        self._maybe_finish(ex)

    def _maybe_finish(self, ex: Exchange) -> None:
        if not ex.response_done or not (ex.request_done or ex.close_after):
            return
        if self.queue and self.queue[0] is ex:
            self.queue.popleft()
        self._uncount(ex)
        self._log(ex)
        self.served += 1
        if ex.close_after or not ex.keep_alive or self.closed:
            self._close()
            return
        self.last_activity = self.loop.time()
        if self.queue:
            self._start(self.queue[0])
        self._update_reading()

    def _write(self, ex: Exchange, data: bytes) -> None:
        self._send(data)
        ex.bytes_out += len(data)

    # What one read from a backend makes us write (head, body, chunk framing) goes out in
    # one writelines: a system call per piece costs more than the rest of the proxying.
    def hold(self) -> None:
        if self.batch is None:
            self.batch = []

    def flush(self) -> None:
        batch, self.batch = self.batch, None
        if batch and not self.transport.is_closing():
            self.transport.writelines(batch)

    def _send(self, data: bytes) -> None:
        if self.batch is not None:
            self.batch.append(data)
        else:
            self.transport.write(data)

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
            bytes_sent=ex.bytes_out, error=ex.error, protocol=self.proto.decode(),
        ))

    def close_if_idle(self) -> None:
        """Close unless a request is under way (the server is shutting down)."""
        if not self.queue and self.incoming is None and self.tunnel is None:
            self._close()

    def _close(self) -> None:
        if not self.closed:
            self.flush()
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
            or (bool(self.upgrade_rest) and self.tunnel is None) or self.rejecting
        )
        if blocked:
            self._pause()
        elif not self.reading and not self.closed:
            self.reading = True
            self.transport.resume_reading()

    def check_timeouts(self, now: float) -> None:
        """Called periodically by the server: first-byte, header, idle and keep-alive
        timeouts."""
        srv = self.server
        ex = self.queue[0] if self.queue else None
        if ex is not None and ex.t_sent is not None and ex.conn is not None:
            if now - ex.t_sent > srv.first_byte_timeout:
                self.timed_out(ex)
        elif ex is None and self.tunnel is None:
            if self.incoming is not None:
                # a head that trickles in (slowloris) gets a deadline of its own
                if now - self.head_started > srv.header_timeout and not self.closed:
                    self.rejecting = True
                    self.transport.write(core.error_response(
                        core.HEADER_TIMEOUT, "", close=True))
                    self._close()
            else:
                # a connection that never sent a request waits no longer than for a head
                limit = srv.keepalive_timeout if self.served else srv.header_timeout
                if now - self.last_activity > limit or srv.stopping:
                    self._close()
        elif ex is None or ex.connecting is None:
            if now - self.last_activity > srv.idle_timeout:
                if ex is not None and ex.conn is not None:
                    self._detach(ex).transport.close()
                if ex is not None and not ex.status and not ex.request_done:
                    # the client stopped sending its request part way through (H28)
                    self._uncount(ex)
                    ex.close_after = True
                    self._local_error(ex, core.CLIENT_IDLE)
                self._close()
