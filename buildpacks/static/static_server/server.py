"""HTTP/1.1 over asyncio: moving bytes between clients and the site's answers (small files
from memory, large ones with sendfile), the access log, timeouts, and SIGTERM."""

from __future__ import annotations

import asyncio
import email.utils
import os
import signal
import sys
from pathlib import Path
from typing import BinaryIO

from .core import REASONS, BadRequest, Reply, Site, StaticFile, parse_head, simple_reply

# --- HTTP/1.1 over asyncio: moving bytes ---------------------------------------------

MAX_HEAD = 96 * 1024  # above the router's own 64 KiB limit, which it adds headers to
MAX_BODY = 64 * 1024  # a GET body is read and dropped; larger ones close the connection
KEEPALIVE_TIMEOUT = 75.0  # longer than the router's pool idle timeout (30 s)
HEAD_TIMEOUT = 30.0
SMALL_FILE = 256 * 1024  # kept in memory once read
MEMORY_BUDGET = 64 * 1024 * 1024


class AccessLog:
    """One short line per request on stdout, written once per event-loop turn."""

    def __init__(self, loop: asyncio.AbstractEventLoop, enabled: bool) -> None:
        self.loop = loop
        self.enabled = enabled
        self.lines: list[str] = []

    def request(self, method: bytes, target: bytes, status: int, size: int) -> None:
        if not self.enabled:
            return
        if not self.lines:
            self.loop.call_soon(self.flush)
        shown = target[:300].decode("ascii", "backslashreplace")
        self.lines.append(f"{method.decode('latin-1')} {shown} {status} {size}\n")

    def flush(self) -> None:
        data = "".join(self.lines).encode()
        self.lines.clear()
        try:
            while data:
                data = data[os.write(1, data):]
        except OSError:
            self.enabled = False  # nobody reads stdout any more


class Server:
    """State shared by the connections: the site, the clock, the memory cache."""

    def __init__(self, site: Site, log: AccessLog) -> None:
        self.site = site
        self.log = log
        self.loop = asyncio.get_running_loop()
        self.connections: set[Connection] = set()
        self.memory: dict[tuple[str, bool], bytes] = {}
        self.memory_used = 0
        self.stopping = False
        self.date = b""
        self.tick()

    def tick(self) -> None:
        """Refresh the Date header and close idle or stalled connections; every second."""
        self.date = b"Date: %s\r\n" % email.utils.formatdate(usegmt=True).encode()
        now = self.loop.time()
        for conn in list(self.connections):
            conn.check_timeouts(now)
        self.loop.call_later(1.0, self.tick)

    def content(self, file: StaticFile, gzipped: bool) -> bytes | None:
        """A small file's bytes, from memory after the first time; None for a large one."""
        key = (file.rel, gzipped)
        data = self.memory.get(key)
        if data is None:
            size = file.gzip_size if gzipped else file.size
            if size > SMALL_FILE:
                return None
            path = file.gzip_path if gzipped else file.path
            assert path is not None
            with open(path, "rb") as f:
                data = f.read()
            if len(data) != size:
                raise OSError(f"{path} changed size since the server started")
            if self.memory_used + size <= MEMORY_BUDGET:
                self.memory[key] = data
                self.memory_used += size
        return data


class Connection(asyncio.Protocol):
    """One client connection: requests are answered in order, a file at a time."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.discard = 0  # request body bytes still to drop
        self.sending: asyncio.Task[None] | None = None  # a file being sent with sendfile
        self.write_paused = False
        self.reading = True
        self.close_when_done = False
        self.last_active = server.loop.time()
        self.head_started: float | None = None

    # --- asyncio callbacks ------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.server.connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.server.connections.discard(self)
        if self.sending is not None:
            self.sending.cancel()
        self.transport = None

    def data_received(self, data: bytes) -> None:
        self.last_active = self.server.loop.time()
        if self.discard:
            dropped = min(self.discard, len(data))
            self.discard -= dropped
            data = data[dropped:]
        if data:
            if not self.buffer:
                self.head_started = self.last_active
            self.buffer += data
            self.process()

    def eof_received(self) -> bool:
        # Answers already written are flushed before the close; one being sent finishes.
        self.close_when_done = True
        return self.sending is not None

    def pause_writing(self) -> None:
        self.write_paused = True
        self._update_reading()

    def resume_writing(self) -> None:
        self.write_paused = False
        self._update_reading()
        self.process()

    # --- requests ---------------------------------------------------------------------
    def process(self) -> None:
        """Answer every complete request in the buffer, unless output must wait."""
        while self.sending is None and not self.write_paused and self.transport is not None \
                and not self.transport.is_closing():
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(self.buffer) > MAX_HEAD:
                    self.fail(431)
                elif not self.buffer:
                    self.head_started = None
                return
            head = bytes(self.buffer[:end]).lstrip(b"\r\n")
            del self.buffer[:end + 4]
            self.head_started = self.server.loop.time() if self.buffer else None
            if head:
                self.handle(head)

    def handle(self, head: bytes) -> None:
        try:
            method, target, http11, headers = parse_head(head)
        except BadRequest as exc:
            self.fail(exc.status)
            return
        if b"transfer-encoding" in headers:
            self.fail(501)  # a chunked body on a GET/HEAD: not worth supporting
            return
        length = headers.get(b"content-length")
        if length is not None:
            if not length.isdigit() or int(length) > MAX_BODY:
                self.fail(400 if not length.isdigit() else 413)
                return
            dropped = min(int(length), len(self.buffer))
            del self.buffer[:dropped]
            self.discard = int(length) - dropped
        connection = headers.get(b"connection", b"").lower()
        keep_alive = b"close" not in connection if http11 else b"keep-alive" in connection
        if self.server.stopping:
            keep_alive = False
        reply = self.server.site.respond(method, target, headers)
        self.send(reply, keep_alive and not reply.close, http11, method == b"HEAD")
        self.server.log.request(method, target, reply.status,
                                0 if method == b"HEAD" else len(reply.body) or reply.count)

    def send(self, reply: Reply, keep_alive: bool, http11: bool, head_only: bool) -> None:
        assert self.transport is not None
        connection = (b"" if http11 else b"Connection: keep-alive\r\n") if keep_alive \
            else b"Connection: close\r\n"
        body = reply.body
        file = None
        if reply.file is not None and reply.count and not head_only:
            try:
                data = self.server.content(reply.file, reply.gzipped)
                if data is None:
                    path = reply.file.gzip_path if reply.gzipped else reply.file.path
                    assert path is not None
                    file = open(path, "rb")  # closed by _sendfile
                else:
                    body = data[reply.offset:reply.offset + reply.count] \
                        if reply.count != len(data) else data
            except OSError as exc:
                print(f"static: cannot read {reply.file.rel}: {exc}", file=sys.stderr,
                      flush=True)
                self.fail(500)
                return
        head = reply.head + self.server.date + connection + b"\r\n"
        if head_only:
            body = b""
        if file is not None:
            self.transport.write(head)
            self.sending = self.server.loop.create_task(
                self._sendfile(file, reply.offset, reply.count, keep_alive))
            self._update_reading()
            return
        if len(body) < 16384:
            self.transport.write(head + body)
        else:
            self.transport.write(head)
            self.transport.write(body)
        if not keep_alive:
            self.transport.close()

    async def _sendfile(self, file: BinaryIO, offset: int, count: int, keep_alive: bool) -> None:
        transport = self.transport
        assert transport is not None
        sent = 0
        try:
            with file:
                sent = await self.server.loop.sendfile(transport, file, offset, count)
        except (OSError, RuntimeError):
            pass  # the client went away; nothing to answer
        finally:
            self.sending = None
        if sent != count or not keep_alive or self.close_when_done:
            transport.close()  # a short send leaves the framing broken
            return
        self._update_reading()
        self.process()

    def fail(self, status: int) -> None:
        """Answer a request that cannot be read further, and close the connection."""
        reply = simple_reply(status, f"{REASONS[status]}\n".encode(), close=True)
        self.server.log.request(b"-", b"-", status, len(reply.body))
        self.buffer.clear()
        self.send(reply, keep_alive=False, http11=True, head_only=False)

    # --- flow control and timeouts ----------------------------------------------------
    def _update_reading(self) -> None:
        """Stop reading while output waits, so a pipelining client cannot fill memory."""
        want = self.sending is None and not self.write_paused
        if want != self.reading and self.transport is not None \
                and not self.transport.is_closing():
            self.reading = want
            if want:
                self.transport.resume_reading()
            else:
                self.transport.pause_reading()

    def check_timeouts(self, now: float) -> None:
        if self.transport is None or self.transport.is_closing() or self.sending is not None:
            return
        if self.head_started is not None and now - self.head_started > HEAD_TIMEOUT:
            self.fail(408)
        elif not self.buffer and now - self.last_active > KEEPALIVE_TIMEOUT:
            self.transport.close()

    def shut_down(self) -> None:
        """The server is stopping: close now (after what is written), or after the file
        being sent; requests not yet answered are dropped, as a closed idle connection's."""
        self.close_when_done = True
        if self.transport is not None and self.sending is None:
            self.transport.close()


async def serve(site: Site, host: str, port: int, root: Path) -> int:
    loop = asyncio.get_running_loop()
    log = AccessLog(loop, os.environ.get("STATIC_ACCESS_LOG", "1") != "0")
    server = Server(site, log)
    try:
        listener = await loop.create_server(lambda: Connection(server), host or None, port,
                                            reuse_address=True, backlog=1024)
    except OSError as exc:
        print(f"static: cannot listen on {host}:{port}: {exc}", file=sys.stderr, flush=True)
        return 1
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    gzipped = sum(1 for f in site.files.values() if f.gzip_path)
    print(f"static: serving {len(site.files) - gzipped} files ({gzipped} also gzipped) from "
          f"{root} on {host}:{port}", flush=True)
    await stop.wait()
    # Stop accepting, answer what is in flight (briefly), then go.
    listener.close()
    server.stopping = True
    for conn in list(server.connections):
        conn.shut_down()
    deadline = loop.time() + 3.0
    while server.connections and loop.time() < deadline:
        await asyncio.sleep(0.02)
    for conn in list(server.connections):
        if conn.sending is not None:
            conn.sending.cancel()
        if conn.transport is not None:
            conn.transport.abort()
    log.flush()
    await asyncio.sleep(0)
    return 0
