"""The router end to end over real sockets: a real RouterServer on a loopback port, real
backend HTTP servers (TCP and a unix socket), and the real Redis from conftest."""

from __future__ import annotations

import asyncio
import contextlib
import faulthandler
import hashlib
import http.client
import json
import os
import re
import socket
import socketserver
import threading
import time
import warnings
from collections.abc import Callable, Coroutine, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import pytest
import redis
import uvloop

from paas import keys, logs, routes
from paas.routes import Backend, Route
from router.server import RouterServer

T = TypeVar("T")
DEADLINE = 10.0  # generous: a deadline for polling, never a measured expectation


# --- backends -----------------------------------------------------------------------------


class Handler(BaseHTTPRequestHandler):
    """Answers with its server's name and what it received; a few paths misbehave."""

    protocol_version = "HTTP/1.1"
    server: Any

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _send(self, body: bytes, ctype: str = "application/json") -> None:
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        if url.path == "/chunked":
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for part in (b"one,", b"two,", b"three"):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
        elif url.path == "/slow":
            self.server.release.wait(DEADLINE)
            self._send(b"late")
        elif url.path == "/big":
            size = int(url.query)
            self.send_response(200)
            self.send_header("Content-Length", str(size))
            self.end_headers()
            block = b"x" * 65536
            for _ in range(size // len(block)):
                self.wfile.write(block)
            self.server.big_done.set()
        elif url.path == "/until-close":
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.end_headers()
            self.wfile.write(b"everything until the close")
            self.close_connection = True
        else:
            peer = self.client_address[1] if isinstance(self.client_address, tuple) else None
            self._send(json.dumps({
                "name": self.server.name, "path": self.path, "peer_port": peer,
                "headers": dict(self.headers),
            }).encode())

    do_HEAD = do_GET

    def do_POST(self) -> None:
        digest, length = hashlib.sha256(), 0
        if "chunked" in self.headers.get("Transfer-Encoding", ""):
            while size := int(self.rfile.readline().split(b";")[0], 16):
                data = self.rfile.read(size)
                digest.update(data)
                length += len(data)
                self.rfile.readline()
            while self.rfile.readline() not in (b"\r\n", b""):
                pass
        else:
            remaining = int(self.headers["Content-Length"])
            while remaining:
                data = self.rfile.read(min(remaining, 65536))
                if not data:  # the router cut the upload short
                    return
                digest.update(data)
                remaining -= len(data)
                length += len(data)
        self._send(json.dumps({"sha256": digest.hexdigest(), "length": length}).encode())


class TCPBackend(ThreadingHTTPServer):
    daemon_threads = True


class UnixBackend(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


def serve(server: Any, name: str) -> Any:
    server.name = name
    server.release = threading.Event()
    server.big_done = threading.Event()
    threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True).start()
    return server


def stop_server(server: Any) -> None:
    server.release.set()
    server.shutdown()
    server.server_close()


@pytest.fixture()
def backends() -> Iterator[list[TCPBackend]]:
    servers = [serve(TCPBackend(("127.0.0.1", 0), Handler), name) for name in ("a", "b")]
    yield servers
    for server in servers:
        stop_server(server)


@pytest.fixture()
def platform(tmp_path: Path) -> Iterator[UnixBackend]:
    server = serve(UnixBackend(str(tmp_path / "web.sock"), Handler), "platform")
    yield server
    stop_server(server)


def addr(server: TCPBackend) -> str:
    return f"127.0.0.1:{server.server_port}"


def route(app: str, *servers: TCPBackend) -> Route:
    return Route(app, tuple(Backend(f"web.{i + 1}", addr(s)) for i, s in enumerate(servers)))


# --- the router, on a uvloop in a thread --------------------------------------------------


@pytest.fixture()
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = uvloop.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    yield loop
    loop.call_soon_threadsafe(loop.stop)
    thread.join(DEADLINE)
    # uvloop's close runs libuv until no request of the loop is left. Once in the whole
    # suite, after a router test, that run never returned (libuv's workers idle, nothing
    # to wait for), which held the suite until CI gave up: so the loop closes in a thread
    # of its own, and the suite goes on with a warning if it does not.
    closer = threading.Thread(target=loop.close, daemon=True)
    closer.start()
    closer.join(DEADLINE)
    if closer.is_alive():
        warnings.warn(f"the router's event loop was still closing after {DEADLINE:g} s "
                      "(uvloop's close waiting on libuv); the suite goes on without it",
                      stacklevel=1)


def run(loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run_coroutine_threadsafe(coro, loop).result(DEADLINE)


@pytest.fixture()
def start_router(
    loop: asyncio.AbstractEventLoop, redis_url: str, r: redis.Redis, platform: UnixBackend
) -> Iterator[Callable[..., RouterServer]]:
    started: list[RouterServer] = []

    def start(**kw: Any) -> RouterServer:
        kw.setdefault("domain", "localhost")
        kw.setdefault("platform_addr", f"unix:{platform.server_address}")
        kw.setdefault("redis_url", redis_url)
        https_port = kw.pop("https_port", None)
        router = RouterServer(**kw)
        run(loop, router.start("127.0.0.1", 0, https_port))
        started.append(router)
        return router

    yield start
    for router in started:
        try:
            run(loop, router.stop(drain=1.0))
        except TimeoutError:
            # Say where every thread was (the loop's among them): a stop that does not
            # end is waiting on something, and the dump shows what.
            faulthandler.dump_traceback(all_threads=True)
            raise


@contextlib.contextmanager
def client(router: RouterServer) -> Iterator[http.client.HTTPConnection]:
    conn = http.client.HTTPConnection("127.0.0.1", router.port, timeout=DEADLINE)
    try:
        yield conn
    finally:
        conn.close()


def fetch(
    conn: http.client.HTTPConnection, host: str, path: str = "/", method: str = "GET",
    **kw: Any,
) -> tuple[int, http.client.HTTPResponse, bytes]:
    headers = {"Host": host, **kw.pop("headers", {})}
    conn.request(method, path, headers=headers, **kw)
    resp = conn.getresponse()
    return resp.status, resp, resp.read()


def get_json(router: RouterServer, host: str, path: str = "/", **kw: Any) -> dict[str, Any]:
    with client(router) as conn:
        status, _, body = fetch(conn, host, path, **kw)
    assert status == 200, body
    return json.loads(body)


def poll(check: Callable[[], T | None]) -> T:
    deadline = time.monotonic() + DEADLINE
    while True:
        result = check()
        if result:
            return result
        assert time.monotonic() < deadline, "condition not reached before the deadline"
        time.sleep(0.02)


def raw_exchange(router: RouterServer, data: bytes) -> bytes:
    """Send raw bytes, read until the router closes."""
    with socket.create_connection(("127.0.0.1", router.port), timeout=DEADLINE) as sock:
        sock.sendall(data)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


# --- tests --------------------------------------------------------------------------------


def test_request_reaches_backend_with_forwarding_headers(start_router, backends, r) -> None:
    routes.publish(r, route("hello", backends[0]))
    router = start_router()
    seen = get_json(router, "Hello.localhost:8080", "/x?y=1",
                    headers={"X-Forwarded-For": "6.6.6.6", "X-Forwarded-Proto": "https"})
    assert seen["name"] == "a" and seen["path"] == "/x?y=1"
    h = seen["headers"]
    assert h["X-Forwarded-For"] == "127.0.0.1"  # the spoofed value is gone
    assert h["X-Forwarded-Proto"] == "http"
    assert h["X-Forwarded-Port"] == str(router.port)
    assert re.fullmatch(r"[0-9a-f]{32}", h["X-Request-Id"])
    assert re.fullmatch(r"t=\d{13}", h["X-Request-Start"])
    kept = get_json(router, "hello.localhost", headers={"X-Request-Id": "client-id-0123456789"})
    assert kept["headers"]["X-Request-Id"] == "client-id-0123456789"


def test_two_backends_alternate_and_connections_are_pooled(start_router, backends, r) -> None:
    routes.publish(r, route("hello", *backends))
    router = start_router()
    with client(router) as conn:
        seen = [json.loads(fetch(conn, "hello.localhost")[2]) for _ in range(6)]
    names = [s["name"] for s in seen]
    assert sorted(names) == ["a", "a", "a", "b", "b", "b"]
    assert all(x != y for x, y in zip(names, names[1:], strict=False))
    # each backend saw one router connection, reused for all three of its requests
    for name in ("a", "b"):
        assert len({s["peer_port"] for s in seen if s["name"] == name}) == 1


def test_keep_alive_serves_several_requests_on_one_connection(start_router, backends, r) -> None:
    routes.publish(r, route("hello", backends[0]))
    router = start_router()
    with client(router) as conn:
        status, resp, _ = fetch(conn, "hello.localhost", "/1")
        sock = conn.sock
        assert status == 200 and resp.getheader("Connection") is None
        for path in ("/2", "/3", "/4"):
            status, _, body = fetch(conn, "hello.localhost", path)
            assert status == 200 and json.loads(body)["path"] == path
            assert conn.sock is sock  # http.client would have reconnected after a close
        status, resp, body = fetch(conn, "hello.localhost", "/head", method="HEAD")
        assert status == 200 and body == b"" and int(resp.getheader("Content-Length")) > 0
        assert json.loads(fetch(conn, "hello.localhost", "/after-head")[2])["path"] == "/after-head"
        assert conn.sock is sock


def test_large_post_body_streams_through_intact(start_router, backends, r) -> None:
    routes.publish(r, route("hello", backends[0]))
    router = start_router()
    body = os.urandom(5 * 1024 * 1024)
    expected = {"sha256": hashlib.sha256(body).hexdigest(), "length": len(body)}
    with client(router) as conn:
        status, _, answer = fetch(conn, "hello.localhost", "/upload", "POST", body=body)
        assert status == 200 and json.loads(answer) == expected
        pieces = (body[i:i + 300_000] for i in range(0, len(body), 300_000))
        status, _, answer = fetch(
            conn, "hello.localhost", "/upload", "POST", body=pieces, encode_chunked=True,
            headers={"Transfer-Encoding": "chunked"},
        )
        assert status == 200 and json.loads(answer) == expected


def test_chunked_response_passes_through(start_router, backends, r) -> None:
    routes.publish(r, route("hello", backends[0]))
    router = start_router()
    with client(router) as conn:
        status, resp, body = fetch(conn, "hello.localhost", "/chunked")
        assert status == 200 and resp.getheader("Transfer-Encoding") == "chunked"
        assert body == b"one,two,three"
        assert fetch(conn, "hello.localhost", "/again")[0] == 200


def test_http10_client_gets_a_chunked_body_unframed(start_router, backends, r) -> None:
    routes.publish(r, route("hello", backends[0]))
    router = start_router()
    raw = raw_exchange(router, b"GET /chunked HTTP/1.0\r\nHost: hello.localhost\r\n\r\n")
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    assert b"transfer-encoding" not in head.lower() and b"Connection: close" in head
    assert body == b"one,two,three"


def test_close_delimited_response_reaches_the_client(start_router, backends, r) -> None:
    routes.publish(r, route("hello", backends[0]))
    router = start_router()
    with client(router) as conn:
        status, resp, body = fetch(conn, "hello.localhost", "/until-close")
    assert status == 200 and body == b"everything until the close"
    assert resp.getheader("Connection") == "close"


def test_pipelined_requests_are_answered_in_order(start_router, backends, r) -> None:
    routes.publish(r, route("hello", *backends))
    router = start_router()
    raw = raw_exchange(router, b"GET /first HTTP/1.1\r\nHost: hello.localhost\r\n\r\n"
                               b"GET /second HTTP/1.1\r\nHost: nope.localhost\r\n\r\n"
                               b"GET /third HTTP/1.1\r\nHost: hello.localhost\r\n"
                               b"Connection: close\r\n\r\n")
    statuses = re.findall(rb"HTTP/1.1 (\d{3}) ", raw)
    assert statuses == [b"200", b"404", b"200"]
    assert raw.index(b'"/first"') < raw.index(b"nope.localhost") < raw.index(b'"/third"')


def test_unknown_host_gets_404_naming_it_escaped(start_router, r) -> None:
    router = start_router()
    with client(router) as conn:
        status, _, body = fetch(conn, "nope.localhost")
        assert status == 404 and b"nope.localhost" in body
        status, _, body = fetch(conn, "x<b>y.example.com")
        assert status == 404 and b"x&lt;b&gt;y.example.com" in body and b"<b>" not in body
        assert fetch(conn, "localhost")[0] == 200  # still usable after the errors


def test_app_without_backends_gets_503_and_an_h14_log_line(start_router, r) -> None:
    routes.publish(r, Route("idle", ()))
    router = start_router()
    with client(router) as conn:
        status, _, body = fetch(conn, "idle.localhost", "/nothing")
    assert status == 503 and b"no web dynos running" in body
    line = poll(lambda: next((x.line for x in logs.recent(r, "idle")), None))
    assert line.startswith('at=error code=H14 desc="No web processes running" method=GET')
    assert 'path="/nothing" host=idle.localhost' in line and "status=503" in line


def test_request_log_line_goes_to_the_app_log(start_router, backends, r) -> None:
    routes.publish(r, route("hello", backends[0]))
    router = start_router()
    seen = get_json(router, "hello.localhost", "/logged", headers={"X-Forwarded-For": "6.6.6.6"})
    line = poll(lambda: next((x for x in logs.recent(r, "hello")), None))
    assert (line.source, line.proc) == ("router", "router")
    assert re.fullmatch(
        r'at=info method=GET path="/logged" host=hello.localhost request_id=[0-9a-f]{32} '
        r'fwd="127.0.0.1" dyno=web.1 connect=\d+ms service=\d+ms status=200 bytes=\d+ '
        r"protocol=http", line.line,
    ), line.line
    assert seen["headers"]["X-Request-Id"] in line.line


def test_platform_host_goes_to_the_unix_socket(start_router, backends, r) -> None:
    routes.publish(r, route("hello", backends[0]))
    router = start_router()
    for host in ("localhost", "localhost:8080", "127.0.0.1", "[::1]:8080"):
        seen = get_json(router, host, "/api/apps")
        assert seen["name"] == "platform" and seen["path"] == "/api/apps"
        assert seen["headers"]["X-Forwarded-For"] == "127.0.0.1"


def test_route_changes_are_picked_up_without_restart(start_router, backends, r) -> None:
    router = start_router()

    def status() -> int:
        with client(router) as conn:
            return fetch(conn, "late.localhost")[0]

    assert status() == 404
    routes.publish(r, route("late", backends[1]))
    poll(lambda: status() == 200)
    assert get_json(router, "late.localhost")["name"] == "b"
    routes.remove(r, "late")
    poll(lambda: status() == 404)


def test_a_stop_ends_every_task_even_as_a_log_batch_lands(start_router, loop) -> None:
    # A batch of log lines that reaches Redis in the very step the stop cancels the
    # shipper: asyncio.wait_for (3.11) took that cancel for its own result, the shipper
    # waited for lines that never came, and the stop never ended.
    router = start_router()

    async def stop_as_the_batch_lands() -> list[asyncio.Task[None]]:
        landed = asyncio.get_running_loop().create_future()
        sent = asyncio.Event()

        async def append(batch: list[logs.Entry]) -> None:  # Redis, answering on cue
            sent.set()
            await landed

        router._append_logs = append
        router.ship_log("late", "a line")
        await sent.wait()
        tasks = list(router._tasks)
        landed.set_result(None)
        await router.stop(drain=0)
        return tasks

    tasks = run(loop, stop_as_the_batch_lands())
    assert tasks and all(task.done() for task in tasks)


def test_a_backend_out_of_its_route_keeps_no_connection_once_its_requests_end(
    start_router, backends, r
) -> None:
    a, b = backends
    routes.publish(r, route("hello", a))
    router = start_router()
    assert get_json(router, "hello.localhost")["name"] == "a"
    assert router.pool.idle.get(addr(a))  # pooled while a is routed
    slow: list[bytes] = []

    def slow_request() -> None:
        with client(router) as conn:
            slow.append(fetch(conn, "hello.localhost", "/slow")[2])

    in_flight = threading.Thread(target=slow_request)
    in_flight.start()
    poll(lambda: not router.pool.idle.get(addr(a)))  # the request took the pooled one
    routes.publish(r, route("hello", b))
    poll(lambda: get_json(router, "hello.localhost")["name"] == "b")
    a.release.set()
    in_flight.join(DEADLINE)
    assert slow == [b"late"]  # the request in flight finished on the old backend
    # ... and its connection was closed rather than pooled: nothing holds `a` open
    assert not router.pool.idle.get(addr(a))
    assert router.pool.idle.get(addr(b))


def test_lost_message_is_healed_by_the_periodic_resync(start_router, backends, r) -> None:
    router = start_router(resync_interval=0.2)
    # written straight to the hash with no announcement: only a resync can find it
    r.hset(keys.routes(), "quiet", route("quiet", backends[0]).to_json())
    with client(router) as conn:
        poll(lambda: fetch(conn, "quiet.localhost")[0] == 200)
    # ... and an app deleted the same way is forgotten by one
    r.hdel(keys.routes(), "quiet")
    with client(router) as conn:
        poll(lambda: fetch(conn, "quiet.localhost")[0] == 404)


def test_a_resync_applies_only_the_routes_that_changed(start_router, backends, r) -> None:
    a, b = backends
    for i in range(50):
        routes.publish(r, route(f"app{i}", a))
    router = start_router(resync_interval=0.1)
    before = {app: router.table.get(app) for app in router.table.apps()}
    r.hset(keys.routes(), "app7", route("app7", b).to_json())  # unannounced
    poll(lambda: get_json(router, "app7.localhost")["name"] == "b")
    after = {app: router.table.get(app) for app in router.table.apps()}
    # the other 49 are the very objects the first load made: not parsed again
    assert [app for app in before if after[app] is not before[app]] == ["app7"]


def test_a_malformed_route_leaves_the_others_to_update(start_router, backends, r) -> None:
    a, b = backends
    routes.publish(r, route("good", a))
    routes.publish(r, route("broken", a))
    router = start_router(resync_interval=0.1)
    r.hset(keys.routes(), "broken", b"{not json")
    r.hset(keys.routes(), "good", route("good", b).to_json())
    poll(lambda: get_json(router, "good.localhost")["name"] == "b")
    # the app with the unreadable entry keeps the route the router had
    assert get_json(router, "broken.localhost")["name"] == "a"


def test_dead_backend_gives_503_not_a_hang(start_router, r) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"127.0.0.1:{s.getsockname()[1]}"  # nothing will listen here
    routes.publish(r, Route("dead", (Backend("web.1", dead),)))
    router = start_router()
    with client(router) as conn:
        status, _, body = fetch(conn, "dead.localhost")
    assert status == 503 and b"not accepting connections" in body
    line = poll(lambda: next((x.line for x in logs.recent(r, "dead")), None))
    assert "code=H19" in line and "dyno=web.1" in line


def test_dead_backend_is_skipped_for_a_live_one(start_router, backends, r) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"127.0.0.1:{s.getsockname()[1]}"
    routes.publish(r, Route("half", (Backend("web.1", dead), Backend("web.2", addr(backends[0])))))
    router = start_router()
    for _ in range(4):
        assert get_json(router, "half.localhost")["name"] == "a"


def test_slow_backend_gets_504_after_the_first_byte_timeout(start_router, backends, r) -> None:
    routes.publish(r, route("hello", backends[0]))
    router = start_router(first_byte_timeout=0.3)
    with client(router) as conn:
        status, _, body = fetch(conn, "hello.localhost", "/slow")
        assert status == 504 and b"too long" in body
        backends[0].release.set()
        assert fetch(conn, "hello.localhost", "/fine")[0] == 200


@contextlib.contextmanager
def raw_backend(serve_one: Callable[[socket.socket], None]) -> Iterator[str]:
    """A TCP backend speaking whatever `serve_one` writes, one thread per connection."""
    listener = socket.create_server(("127.0.0.1", 0))

    def handle(sock: socket.socket) -> None:
        with sock, contextlib.suppress(OSError):
            serve_one(sock)

    def accept_forever() -> None:
        with contextlib.suppress(OSError):
            while True:
                threading.Thread(target=handle, args=(listener.accept()[0],), daemon=True).start()

    threading.Thread(target=accept_forever, daemon=True).start()
    try:
        yield f"127.0.0.1:{listener.getsockname()[1]}"
    finally:
        with contextlib.suppress(OSError):
            listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept()
        listener.close()


def read_head(sock: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def test_stale_pooled_connection_is_retried_once(start_router, r) -> None:
    # A backend that answers one request per connection, then hangs up on the next without
    # a word: the router's pooled connection is stale and the request must be retried.
    connections: list[int] = []

    def one_then_hang_up(sock: socket.socket) -> None:
        connections.append(1)
        read_head(sock)
        sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        read_head(sock)  # the next request: dropped on the floor

    with raw_backend(one_then_hang_up) as backend:
        routes.publish(r, Route("flaky", (Backend("web.1", backend),)))
        router = start_router()
        with client(router) as conn:
            for _ in range(3):
                status, _, body = fetch(conn, "flaky.localhost")
                assert (status, body) == (200, b"ok")
    assert len(connections) == 3


@pytest.mark.parametrize(
    ("answer", "desc"),
    [(b"", "Connection closed without response"),
     (b"SURPRISE\r\n\r\n", "Invalid response from backend"),
     (b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\nConnection: upgrade\r\n\r\n",
      "Invalid response from backend")],
)
def test_backend_breaking_the_protocol_gives_502(start_router, r, answer, desc) -> None:
    def misbehave(sock: socket.socket) -> None:
        read_head(sock)
        sock.sendall(answer)

    with raw_backend(misbehave) as backend:
        routes.publish(r, Route("broken", (Backend("web.1", backend),)))
        router = start_router()
        with client(router) as conn:
            status, _, body = fetch(conn, "broken.localhost")
            assert status == 502 and b"broken.localhost" in body
            assert fetch(conn, "localhost")[0] == 200  # the client connection survives
    line = poll(lambda: next((x.line for x in logs.recent(r, "broken")), None))
    assert f'at=error code=H13 desc="{desc}"' in line and "status=502" in line


def test_websocket_upgrade_is_tunnelled(start_router, r) -> None:
    def echo_upper(sock: socket.socket) -> None:
        head = read_head(sock)
        assert b"Upgrade: websocket" in head and b"Connection: Upgrade" in head
        sock.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                     b"Connection: Upgrade\r\n\r\n")
        while chunk := sock.recv(65536):
            sock.sendall(chunk.upper())

    with raw_backend(echo_upper) as backend:
        routes.publish(r, Route("ws", (Backend("web.1", backend),)))
        router = start_router()
        with socket.create_connection(("127.0.0.1", router.port), timeout=DEADLINE) as sock:
            sock.sendall(b"GET /chat HTTP/1.1\r\nHost: ws.localhost\r\nUpgrade: websocket\r\n"
                         b"Connection: Upgrade\r\n\r\n")
            head = read_head(sock)
            assert head.startswith(b"HTTP/1.1 101") and b"Upgrade: websocket" in head
            for word in (b"hello", b"again"):
                sock.sendall(word)
                echoed = b""
                while len(echoed) < len(word):
                    echoed += sock.recv(65536)
                assert echoed == word.upper()


def test_slow_client_does_not_make_the_router_buffer_everything(
    start_router, backends, r, loop
) -> None:
    routes.publish(r, route("hello", backends[0]))
    router = start_router()
    size = 64 * 1024 * 1024

    async def buffered() -> int:
        return sum(c.transport.get_write_buffer_size() for c in router.connections)

    with socket.create_connection(("127.0.0.1", router.port), timeout=DEADLINE) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        sock.sendall(b"GET /big?%d HTTP/1.1\r\nHost: hello.localhost\r\n\r\n" % size)
        peak = 0
        for _ in range(25):  # watch while the client reads nothing
            peak = max(peak, run(loop, buffered()))
            time.sleep(0.02)
        assert peak < 4 * 1024 * 1024
        assert not backends[0].big_done.is_set()  # the backend is held back, not drained
        received = b""
        while b"\r\n\r\n" not in received:
            received += sock.recv(65536)
        head, _, body_start = received.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200") and b"Content-Length: %d" % size in head
        digest, length = hashlib.sha256(body_start), len(body_start)
        while length < size:
            chunk = sock.recv(1 << 20)
            assert chunk, "the router closed before the whole body arrived"
            digest.update(chunk)
            length += len(chunk)
    assert digest.hexdigest() == hashlib.sha256(b"x" * size).hexdigest()


def test_heartbeat_is_written(start_router, r) -> None:
    start_router()
    assert poll(lambda: r.get(keys.heartbeat("router"))) == b"up"
    assert 0 < r.ttl(keys.heartbeat("router")) <= 5


def test_router_without_redis_still_serves_the_platform(start_router, tmp_path) -> None:
    router = start_router(redis_url=f"unix://{tmp_path}/no-redis-here.sock")
    with client(router) as conn:
        assert fetch(conn, "localhost")[0] == 200
        assert fetch(conn, "someapp.localhost")[0] == 404


def test_health_names_the_web_process_when_the_router_cannot_reach_it(
    start_router, tmp_path
) -> None:
    router = start_router(platform_addr=f"unix:{tmp_path / 'nothing-listens-here.sock'}")
    with client(router) as conn:
        conn.request("GET", "/api/health", headers={"Host": "localhost"})
        response = conn.getresponse()
        body = json.loads(response.read())
        assert response.status == 503
        assert response.getheader("Content-Type") == "application/json"
        assert body["components"] == {"web": "down"}
        conn.request("GET", "/other", headers={"Host": "localhost"})
        other = conn.getresponse()
        assert other.status == 503 and b"<html>" in other.read()


def test_a_route_written_a_moment_ago_is_found_even_before_its_message(
    start_router, backends, r
) -> None:
    router = start_router()
    # Written without the pub/sub message (as if it were still in flight): the miss makes
    # the router look in Redis once before it would answer 404.
    r.hset(keys.routes(), "fresh", route("fresh", backends[0]).to_json())
    assert get_json(router, "fresh.localhost", "/")["name"] == backends[0].name
    with client(router) as conn:
        conn.request("GET", "/", headers={"Host": "nothing-here.localhost"})
        assert conn.getresponse().status == 404
