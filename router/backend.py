"""The backend half of the proxy: a connection to a dyno, and the pool of idle ones.

A BackendConnection parses responses with httptools (a whole Content-Length answer in
one read with router.fastpath) and hands every event to the ClientConnection it serves
(router.proxy); between requests it waits in the BackendPool.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from typing import TYPE_CHECKING

import httptools

from router import core, fastpath

if TYPE_CHECKING:
    from router.proxy import ClientConnection


class BackendConnection(asyncio.Protocol):
    """A connection to one backend address; pooled between requests."""

    __slots__ = (
        "addr", "transport", "parser", "client", "tunnel_to", "closed", "idle_since",
        "is_head", "got_bytes", "finished", "broken", "final", "keep_alive", "reason",
        "headers",
    )

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
            if not self.is_head:
                quick = fastpath.read_response(data)
                if quick is not None:
                    self.final = self.finished = True
                    self.keep_alive = quick.keep_alive
                    client.quick_response(self, quick, data)
                    return
        client.last_activity = client.loop.time()
        client.hold()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade as exc:
            client.start_tunnel(self, data[exc.args[0]:])
            return
        except httptools.HttpParserError:
            self.broken = True
        finally:
            client.flush()
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
