"""The router against real sockets, part two: custom domains, maintenance, balancing,
Expect, SSE, 100 MB bodies, each H code, each limit, request smuggling, TLS with SNI, and a
bounded fuzz of malformed requests. Fixtures and helpers are those of test_router_server."""

from __future__ import annotations

import hashlib
import json
import random
import re
import socket
import ssl
import threading
import warnings
from collections.abc import Callable
from pathlib import Path

import pytest
import redis

from paas import logs, routes
from paas.agent import state as dyno_state
from paas.routes import Backend, Route, RouteSettings
from router.server import RouterServer
from router.tls import ensure_platform_certificate
from tests.unit import test_router_server as base
from tests.unit.test_router_server import (
    DEADLINE,
    addr,
    client,
    fetch,
    get_json,
    poll,
    raw_backend,
    raw_exchange,
    read_head,
    route,
    run,
)

# The fixtures of the first part, shared rather than copied.
loop, platform, backends, start_router = base.loop, base.platform, base.backends, base.start_router


def settings(r: redis.Redis, app: str, **kw: object) -> None:
    routes.publish_settings(r, app, RouteSettings(**kw))  # type: ignore[arg-type]


def log_lines(r: redis.Redis, app: str) -> list[str]:
    return [x.line for x in logs.recent(r, app)]


def wait_log(r: redis.Redis, app: str, needle: str) -> str:
    return poll(lambda: next((x for x in log_lines(r, app) if needle in x), None))


def status_of(raw: bytes) -> int:
    match = re.match(rb"HTTP/1\.1 (\d{3}) ", raw)
    assert match, raw[:200]
    return int(match.group(1))


def connect(router: RouterServer, source: str = "127.0.0.1") -> socket.socket:
    return socket.create_connection(("127.0.0.1", router.port), timeout=DEADLINE,
                                    source_address=(source, 0))


def read_all(sock: socket.socket) -> bytes:
    chunks = []
    try:
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    except ConnectionResetError:
        pass
    return b"".join(chunks)


# --- routing ------------------------------------------------------------------------------


def test_custom_and_wildcard_domains_reach_their_app(start_router, backends, r) -> None:
    routes.publish(r, route("shop", backends[0]))
    routes.publish(r, route("blog", backends[1]))
    settings(r, "shop", domains=("www.shop.test", "*.shop.test"))
    settings(r, "blog", domains=("news.shop.test",))
    router = start_router()
    assert get_json(router, "WWW.Shop.Test.:8080")["name"] == "a"
    assert get_json(router, "eu.shop.test")["name"] == "a"
    assert get_json(router, "news.shop.test")["name"] == "b"  # exact beats the wildcard
    with client(router) as conn:
        status, resp, body = fetch(conn, "deep.eu.shop.test")
        assert status == 404 and len(body) < 1024 and b"deep.eu.shop.test" in body
    settings(r, "shop", domains=())
    with client(router) as conn:
        poll(lambda: fetch(conn, "www.shop.test")[0] == 404)


def test_maintenance_answers_503_and_leaves_the_dynos_alone(start_router, r) -> None:
    seen: list[bytes] = []

    def record(sock: socket.socket) -> None:
        seen.append(read_head(sock))
        sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")

    with raw_backend(record) as backend:
        routes.publish(r, Route("shop", (Backend("web.1", backend),)))
        settings(r, "shop", maintenance=True)
        router = start_router()
        with client(router) as conn:
            status, _, body = fetch(conn, "shop.localhost", "/cart")
            assert status == 503 and b"maintenance" in body
        assert seen == []
        assert "code=H80" in wait_log(r, "shop", "H80")
        settings(r, "shop", maintenance=False)
        with client(router) as conn:
            poll(lambda: fetch(conn, "shop.localhost")[0] == 200)


def test_https_redirect_sends_http_clients_to_https(start_router, backends, r, certs) -> None:
    routes.publish(r, route("shop", backends[0]))
    settings(r, "shop", domains=("www.shop.test",), https_redirect=True)
    router = start_router(https_port=0, tls_cert=certs.cert, tls_key=certs.key)
    with client(router) as conn:
        status, resp, _ = fetch(conn, "www.shop.test", "/a?b=1")
        assert status == 301
        assert resp.getheader("Location") == f"https://www.shop.test:{router.https_port}/a?b=1"
        assert fetch(conn, "localhost")[0] == 200  # the platform itself is not redirected
    # Behind a port forward from 443, the redirect names the port clients reach.
    forwarded = start_router(https_port=0, tls_cert=certs.cert, tls_key=certs.key,
                             public_https_port=443)
    with client(forwarded) as conn:
        status, resp, _ = fetch(conn, "www.shop.test", "/a")
        assert (status, resp.getheader("Location")) == (301, "https://www.shop.test/a")


def test_requests_go_to_the_backend_with_fewest_outstanding(start_router, backends, r) -> None:
    a, b = backends
    routes.publish(r, route("hello", a, b))
    router = start_router()
    slow_done = threading.Event()

    def slow() -> None:
        with client(router) as conn:
            fetch(conn, "hello.localhost", "/slow")
        slow_done.set()

    # make the slow request land on `a` whatever the rotation: `b` looks busy meanwhile
    run_in = router.loop.call_soon_threadsafe
    run_in(router.table.begin, addr(b))
    threading.Thread(target=slow, daemon=True).start()
    poll(lambda: router.table.outstanding(addr(a)) == 1)
    run_in(router.table.end, addr(b))
    names = [get_json(router, "hello.localhost")["name"] for _ in range(4)]
    assert names == ["b"] * 4  # `a` still has the slow one outstanding
    a.release.set()
    assert slow_done.wait(DEADLINE)
    assert sorted(get_json(router, "hello.localhost")["name"] for _ in range(2)) == ["a", "b"]


def test_a_refusing_backend_is_marked_down_and_the_request_retried(
    start_router, backends, r
) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"127.0.0.1:{s.getsockname()[1]}"
    routes.publish(r, Route("half", (Backend("web.1", dead), Backend("web.2", addr(backends[0])))))
    router = start_router()
    assert [get_json(router, "half.localhost")["name"] for _ in range(3)] == ["a"] * 3
    assert router.table.is_down(dead, router.loop.time())
    assert not router.table.is_down(addr(backends[0]), router.loop.time())


# --- HTTP behaviour -----------------------------------------------------------------------


def test_expect_100_continue_waits_for_the_backend(start_router, backends, r) -> None:
    routes.publish(r, route("hello", backends[0]))
    router = start_router()
    body = b"x" * 1000
    with connect(router) as sock:
        sock.sendall(b"POST /up HTTP/1.1\r\nHost: hello.localhost\r\nContent-Length: 1000\r\n"
                     b"Expect: 100-continue\r\n\r\n")
        interim = read_head(sock)
        assert interim.startswith(b"HTTP/1.1 100 Continue\r\n")
        sock.sendall(body)
        rest = interim.partition(b"\r\n\r\n")[2]
        while b"sha256" not in rest:
            rest += sock.recv(65536)
        assert status_of(rest) == 200
        assert hashlib.sha256(body).hexdigest().encode() in rest


def test_server_sent_events_pass_through_one_by_one(start_router, r) -> None:
    go_on = threading.Event()

    def events(sock: socket.socket) -> None:
        read_head(sock)
        sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                     b"Transfer-Encoding: chunked\r\n\r\n")
        event = b"data: first\n\n"
        sock.sendall(b"%x\r\n%s\r\n" % (len(event), event))
        go_on.wait(DEADLINE)  # the next one only once the client has read the first
        event = b"data: second\n\n"
        sock.sendall(b"%x\r\n%s\r\n0\r\n\r\n" % (len(event), event))

    with raw_backend(events) as backend:
        routes.publish(r, Route("sse", (Backend("web.1", backend),)))
        router = start_router()
        with connect(router) as sock:
            sock.sendall(b"GET /events HTTP/1.1\r\nHost: sse.localhost\r\n"
                         b"Accept: text/event-stream\r\n\r\n")
            got = b""
            while b"data: first" not in got:
                got += sock.recv(65536)
            assert b"data: second" not in got
            go_on.set()
            while b"0\r\n\r\n" not in got:
                got += sock.recv(65536)
            assert b"data: second" in got


def _buffered(router: RouterServer) -> Callable[[], int]:
    async def measure() -> int:
        total = 0
        for c in router.connections:
            total += c.transport.get_write_buffer_size()
            for ex in c.queue:
                total += sum(len(p) for p in ex.pending)
                if ex.conn is not None:
                    total += ex.conn.transport.get_write_buffer_size()
        return total

    return lambda: run(router.loop, measure())


HUNDRED_MB = 100 * 1024 * 1024


def test_100_mb_upload_streams_with_flat_memory(start_router, backends, r) -> None:
    routes.publish(r, route("hello", backends[0]))
    router = start_router()
    buffered = _buffered(router)
    block = b"y" * (1 << 20)
    peak = 0
    with connect(router) as sock:
        sock.sendall(b"POST /up HTTP/1.1\r\nHost: hello.localhost\r\nContent-Length: %d\r\n\r\n"
                     % HUNDRED_MB)
        for i in range(100):
            sock.sendall(block)
            if i % 10 == 0:
                peak = max(peak, buffered())
        answer = b""
        while b"sha256" not in answer or not answer.endswith(b"}"):
            answer += sock.recv(65536)
    assert status_of(answer) == 200
    assert json.loads(answer.partition(b"\r\n\r\n")[2]) == {
        "sha256": hashlib.sha256(block * 100).hexdigest(), "length": HUNDRED_MB}
    assert peak < 8 * 1024 * 1024  # a few socket buffers, never the body


def test_100_mb_download_streams_with_flat_memory(start_router, backends, r) -> None:
    routes.publish(r, route("hello", backends[0]))
    router = start_router()
    buffered = _buffered(router)
    peak, length = 0, 0
    with connect(router) as sock:
        sock.sendall(b"GET /big?%d HTTP/1.1\r\nHost: hello.localhost\r\n\r\n" % HUNDRED_MB)
        head = read_head(sock)
        length = len(head.partition(b"\r\n\r\n")[2])
        reads = 0
        while length < HUNDRED_MB:
            chunk = sock.recv(1 << 20)
            assert chunk
            length += len(chunk)
            reads += 1
            if reads % 50 == 0:
                peak = max(peak, buffered())
    assert length == HUNDRED_MB and peak < 8 * 1024 * 1024


# --- H codes ------------------------------------------------------------------------------


def test_h10_when_the_web_dynos_have_crashed(start_router, r) -> None:
    routes.publish(r, Route("crashy", ()))
    dyno_state.publish(r, "crashy", {"web.1": json.dumps(
        {"name": "web.1", "type": "web", "state": "crashed", "release": 1})})
    router = start_router()
    with client(router) as conn:
        status, _, body = fetch(conn, "crashy.localhost")
    assert status == 503 and b"crashed" in body
    assert 'code=H10 desc="App crashed"' in wait_log(r, "crashy", "H10")


def test_h18_when_the_backend_hangs_up_mid_answer(start_router, r) -> None:
    def half(sock: socket.socket) -> None:
        read_head(sock)
        sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly part")

    with raw_backend(half) as backend:
        routes.publish(r, Route("cut", (Backend("web.1", backend),)))
        router = start_router()
        raw = raw_exchange(router, b"GET / HTTP/1.1\r\nHost: cut.localhost\r\n\r\n")
    assert status_of(raw) == 200 and raw.endswith(b"only part")  # cut short, then closed
    assert "code=H18" in wait_log(r, "cut", "H18")


def test_h27_when_the_client_leaves_before_the_answer(start_router, backends, r) -> None:
    routes.publish(r, route("hello", backends[0]))
    router = start_router()
    with connect(router) as sock:
        sock.sendall(b"GET /slow HTTP/1.1\r\nHost: hello.localhost\r\n\r\n")
        poll(lambda: router.table.outstanding(addr(backends[0])) == 1)
    assert "code=H27" in wait_log(r, "hello", "H27")
    poll(lambda: router.table.outstanding(addr(backends[0])) == 0)


def test_h28_when_the_client_stops_sending_its_body(start_router, backends, r) -> None:
    routes.publish(r, route("hello", backends[0]))
    router = start_router(idle_timeout=0.3)
    with connect(router) as sock:
        sock.sendall(b"POST /up HTTP/1.1\r\nHost: hello.localhost\r\nContent-Length: 10\r\n\r\nab")
        raw = read_all(sock)
    assert status_of(raw) == 408
    assert "code=H28" in wait_log(r, "hello", "H28")


# --- limits -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: localhost\r\n\r\n", 414),
        (b"GET / HTTP/1.1\r\nHost: localhost\r\n" + b"".join(
            b"X-%d: 1\r\n" % i for i in range(101)) + b"\r\n", 431),
        (b"GET / HTTP/1.1\r\nHost: localhost\r\n" + b"".join(
            b"X-%d: %s\r\n" % (i, b"v" * 4000) for i in range(20)) + b"\r\n", 431),
    ],
    ids=["request-line", "header-count", "header-size"],
)
def test_size_limits(start_router, r, request_bytes: bytes, status: int) -> None:
    router = start_router()
    assert status_of(raw_exchange(router, request_bytes)) == status
    with client(router) as conn:
        assert fetch(conn, "localhost")[0] == 200


def test_body_limit_gives_413(start_router, backends, r) -> None:
    routes.publish(r, route("hello", backends[0]))
    router = start_router(max_body=1000)
    raw = raw_exchange(router, b"POST / HTTP/1.1\r\nHost: hello.localhost\r\n"
                               b"Content-Length: 1001\r\n\r\n")
    assert status_of(raw) == 413
    chunked = raw_exchange(router, b"POST / HTTP/1.1\r\nHost: hello.localhost\r\n"
                                   b"Transfer-Encoding: chunked\r\n\r\n"
                                   + b"200\r\n" + b"z" * 512 + b"\r\n" * 1
                                   + b"200\r\n" + b"z" * 512 + b"\r\n0\r\n\r\n")
    assert status_of(chunked) == 413


def test_slow_headers_get_408_and_silent_connections_are_closed(start_router, r) -> None:
    router = start_router(header_timeout=0.3)
    with connect(router) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: loc")  # and nothing more
        assert status_of(read_all(sock)) == 408
    with connect(router) as sock:
        assert read_all(sock) == b""  # connected, never asked: closed without a word
    with client(router) as conn:
        assert fetch(conn, "localhost")[0] == 200


def test_idle_keep_alive_connections_are_closed(start_router, r) -> None:
    router = start_router(keepalive_timeout=0.3)
    with connect(router) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        assert status_of(read_all(sock)) == 200  # read_all returns once the router closes


def test_connections_per_client_address_are_capped(start_router, r) -> None:
    router = start_router(max_conns_per_ip=3)
    held = [connect(router) for _ in range(3)]
    try:
        poll(lambda: len(router.connections) == 3)
        with connect(router) as extra:
            assert status_of(read_all(extra)) == 429
        with connect(router, source="127.0.0.2") as other:  # another client is unaffected
            other.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            assert status_of(read_all(other)) == 200
    finally:
        for sock in held:
            sock.close()
    poll(lambda: not router.connections)
    with client(router) as conn:
        assert fetch(conn, "localhost")[0] == 200


# --- request smuggling --------------------------------------------------------------------

SMUGGLE_TAIL = b"GET /smuggled HTTP/1.1\r\nHost: hello.localhost\r\n\r\n"
SMUGGLING = {
    "cl-and-te": b"POST / HTTP/1.1\r\nHost: hello.localhost\r\nContent-Length: 4\r\n"
                 b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "te-and-cl": b"POST / HTTP/1.1\r\nHost: hello.localhost\r\nTransfer-Encoding: chunked\r\n"
                 b"Content-Length: 50\r\n\r\n0\r\n\r\n",
    "two-cl": b"POST / HTTP/1.1\r\nHost: hello.localhost\r\nContent-Length: 0\r\n"
              b"Content-Length: 50\r\n\r\n",
    "te-identity-chunked": b"POST / HTTP/1.1\r\nHost: hello.localhost\r\n"
                           b"Transfer-Encoding: identity, chunked\r\n\r\n0\r\n\r\n",
    "te-xchunked": b"POST / HTTP/1.1\r\nHost: hello.localhost\r\n"
                   b"Transfer-Encoding: xchunked\r\n\r\n0\r\n\r\n",
    "te-space-before-colon": b"POST / HTTP/1.1\r\nHost: hello.localhost\r\n"
                             b"Transfer-Encoding : chunked\r\n\r\n0\r\n\r\n",
    "te-twice": b"POST / HTTP/1.1\r\nHost: hello.localhost\r\nTransfer-Encoding: chunked\r\n"
                b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "te-on-http10": b"POST / HTTP/1.0\r\nHost: hello.localhost\r\n"
                    b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "bare-lf": b"GET / HTTP/1.1\r\nHost: hello.localhost\nX: y\r\n\r\n",
    "obs-fold": b"GET / HTTP/1.1\r\nHost: hello.localhost\r\nX: y\r\n folded\r\n\r\n",
    "two-hosts": b"GET / HTTP/1.1\r\nHost: hello.localhost\r\nHost: other.localhost\r\n\r\n",
}


@pytest.mark.parametrize("attack", sorted(SMUGGLING))
def test_smuggling_attempts_get_400_close_and_forward_nothing(start_router, r, attack) -> None:
    received: list[bytes] = []

    def record(sock: socket.socket) -> None:
        while chunk := sock.recv(65536):
            received.append(chunk)
            if b"\r\n\r\n" in b"".join(received):
                sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")

    with raw_backend(record) as backend:
        routes.publish(r, Route("hello", (Backend("web.1", backend),)))
        router = start_router()
        raw = raw_exchange(router, SMUGGLING[attack] + SMUGGLE_TAIL)
        assert status_of(raw) == 400
        assert raw.count(b"HTTP/1.1 ") == 1 and b"Connection: close" in raw
        with client(router) as conn:  # and the router carries on
            assert fetch(conn, "hello.localhost")[0] == 200
    assert b"/smuggled" not in b"".join(received)
    assert not any(b"POST" in chunk for chunk in received)


def test_good_requests_before_a_bad_one_are_answered_first(start_router, backends, r) -> None:
    routes.publish(r, route("hello", backends[0]))
    router = start_router()
    raw = raw_exchange(router, b"GET /first HTTP/1.1\r\nHost: hello.localhost\r\n\r\n"
                               + SMUGGLING["two-hosts"] + SMUGGLE_TAIL)
    assert re.findall(rb"HTTP/1.1 (\d{3}) ", raw) == [b"200", b"400"]


# --- TLS ----------------------------------------------------------------------------------


class Certs:
    """Certificates for the TLS tests: the platform's (localhost) and two apps'."""

    def __init__(self, where: Path) -> None:
        self.dir = where
        for domain in ("localhost", "shop.test", "blog.test"):
            ensure_platform_certificate(where / f"{domain}.crt", where / f"{domain}.key", domain)
        self.cert, self.key = where / "localhost.crt", where / "localhost.key"

    def pem(self, domain: str) -> routes.Certificate:
        return routes.Certificate((self.dir / f"{domain}.crt").read_text(),
                                  (self.dir / f"{domain}.key").read_text())


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    return Certs(tmp_path_factory.mktemp("certs"))


def tls_get(router: RouterServer, certs: Certs, server_name: str, trust: str,
            host: str | None = None) -> tuple[bytes, dict[str, object]]:
    ctx = ssl.create_default_context(cadata=certs.pem(trust).cert_pem)
    with socket.create_connection(("127.0.0.1", router.https_port), timeout=DEADLINE) as raw:
        with ctx.wrap_socket(raw, server_hostname=server_name) as sock:
            peer = sock.getpeercert()
            sock.sendall(b"GET /tls HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n"
                         % (host or server_name).encode())
            return read_all(sock), peer  # type: ignore[return-value]


def test_tls_chooses_each_apps_certificate_by_sni(start_router, backends, r, certs) -> None:
    routes.publish(r, route("shop", backends[0]))
    routes.publish(r, route("blog", backends[1]))
    settings(r, "shop", domains=("www.shop.test",))
    settings(r, "blog", domains=("blog.test",))
    routes.publish_certificate(r, "shop", certs.pem("shop.test"))
    routes.publish_certificate(r, "blog", certs.pem("blog.test"))
    router = start_router(https_port=0, tls_cert=certs.cert, tls_key=certs.key)
    # verification against each app's own certificate passes only if SNI chose it
    raw, _ = tls_get(router, certs, "www.shop.test", trust="shop.test")
    assert status_of(raw) == 200
    seen = json.loads(raw.partition(b"\r\n\r\n")[2])
    assert seen["name"] == "a" and seen["headers"]["X-Forwarded-Proto"] == "https"
    assert seen["headers"]["X-Forwarded-Port"] == str(router.https_port)
    raw, _ = tls_get(router, certs, "blog.test", trust="blog.test")
    assert json.loads(raw.partition(b"\r\n\r\n")[2])["name"] == "b"
    # a name without a certificate of its own gets the platform's
    raw, _ = tls_get(router, certs, "localhost", trust="localhost")
    assert status_of(raw) == 200
    assert "protocol=https" in wait_log(r, "shop", "/tls")


def test_tls_below_1_2_is_refused(start_router, r, certs) -> None:
    router = start_router(https_port=0, tls_cert=certs.cert, tls_key=certs.key)

    def handshake(maximum: ssl.TLSVersion) -> str:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
        ctx.set_ciphers("DEFAULT:@SECLEVEL=0")  # so this client may offer TLS 1.1 at all
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            ctx.minimum_version = ssl.TLSVersion.TLSv1
            ctx.maximum_version = maximum
        with socket.create_connection(("127.0.0.1", router.https_port), timeout=DEADLINE) as s:
            with ctx.wrap_socket(s, server_hostname="localhost") as sock:
                return sock.version() or ""

    assert handshake(ssl.TLSVersion.TLSv1_2) == "TLSv1.2"  # the same client, allowed 1.2
    with pytest.raises(ssl.SSLError):
        handshake(ssl.TLSVersion.TLSv1_1)
    raw, _ = tls_get(router, certs, "localhost", trust="localhost")
    assert status_of(raw) == 200


# --- fuzz ---------------------------------------------------------------------------------

CORPUS = [
    b"GET / HTTP/1.1\r\nHost: hello.localhost\r\n\r\n",
    b"POST /p HTTP/1.1\r\nHost: hello.localhost\r\nContent-Length: 5\r\n\r\nhello",
    b"POST /p HTTP/1.1\r\nHost: hello.localhost\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"5\r\nhello\r\n0\r\n\r\n",
    b"GET /chat HTTP/1.1\r\nHost: hello.localhost\r\nUpgrade: websocket\r\n"
    b"Connection: Upgrade\r\n\r\n",
    *SMUGGLING.values(),
]
JUNK = [b"\r", b"\n", b"\x00", b" ", b":", b"\t", b"\xff", b"chunked", b"Content-Length: 3",
        b"\r\n\r\n", b"HTTP/1.1", b"-1", b"ffffffffffffffff", b";", b",", b"\x7f"]


def mutate(rng: random.Random, data: bytes) -> bytes:
    out = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        at = rng.randrange(len(out) + 1)
        kind = rng.random()
        if kind < 0.4:
            out[at:at] = rng.choice(JUNK)
        elif kind < 0.7 and out:
            del out[at:at + rng.randint(1, 8)]
        elif out:
            out[min(at, len(out) - 1)] = rng.randrange(256)
    return bytes(out)


def test_fuzzed_requests_get_an_answer_or_a_close_and_the_router_carries_on(
    start_router, backends, r
) -> None:
    routes.publish(r, route("hello", backends[0]))
    router = start_router(header_timeout=1.0, idle_timeout=1.0, first_byte_timeout=2.0)
    rng = random.Random(7)  # fixed: the same 300 cases on every run
    statuses: list[int] = []
    for i in range(300):
        case = mutate(rng, rng.choice(CORPUS))
        with connect(router) as sock:
            sock.sendall(case)
            sock.shutdown(socket.SHUT_WR)
            raw = read_all(sock)
        if raw:
            match = re.match(rb"HTTP/1\.1 (\d{3}) ", raw)
            assert match, (case, raw[:200])
            statuses.append(int(match.group(1)))
        if i % 50 == 0:
            with client(router) as conn:
                assert fetch(conn, "hello.localhost")[0] == 200
    assert statuses.count(400) > 50  # most mutations break the request, and are told so
    assert all(s < 500 or s in (502, 503, 504) for s in statuses)
    with client(router) as conn:
        assert fetch(conn, "hello.localhost")[0] == 200
