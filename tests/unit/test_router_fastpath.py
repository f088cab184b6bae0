"""router.fastpath against the general path (httptools + router.core) as its oracle: what
the fast path takes, it reads and rewrites as the general path does; what could be read
two ways, or needs a decision, it leaves to the general path. Then one exchange through a
real router, with the fast path on both sides."""

from __future__ import annotations

import random
import re
import socket
from typing import Any

import httptools
import pytest

from paas import routes
from paas.routes import Backend, Route
from router import core, fastpath
from tests.unit import test_router_server as base
from tests.unit.test_router_server import DEADLINE, raw_backend, read_head

# The fixtures of the router's socket tests, shared rather than copied.
loop, platform, start_router = base.loop, base.platform, base.start_router

PEER, PORT, NOW = "10.1.2.3", 8080, 1_700_000_000.123
REQUEST_ID = re.compile(rb"(X-Request-Id: )[0-9a-f]{32}")


class Parsed:
    """One message as httptools reads it (the general path's parser)."""

    def __init__(self) -> None:
        self.url = b""
        self.headers: core.Headers = []
        self.body = b""
        self.complete = 0
        self.reason = b""
        self.parser: Any = None
        self.keep_alive = False  # asked when the head is read, as the router does

    def on_headers_complete(self) -> None:
        self.keep_alive = self.parser.should_keep_alive()

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_status(self, reason: bytes) -> None:
        self.reason += reason

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))

    def on_body(self, body: bytes) -> None:
        self.body += body

    def on_message_complete(self) -> None:
        self.complete += 1


def general_request(data: bytes) -> tuple[bytes, core.RequestInfo, bool] | None:
    """The head the general path sends for `data`, its RequestInfo and keep-alive; None
    when it refuses the request or it is not exactly one whole message."""
    msg = Parsed()
    parser = msg.parser = httptools.HttpRequestParser(msg)
    try:
        parser.feed_data(data)
    except httptools.HttpParserError:
        return None
    if msg.complete != 1:
        return None
    info = core.prepare_request(msg.headers, peer=PEER, listen_port=PORT, now=NOW,
                                http10=parser.get_http_version() == "1.0")
    if info.problem is not None:
        return None
    head = core.request_head(parser.get_method(), msg.url, info.headers)
    return head, info, msg.keep_alive


def headers_of(head: bytes, response: bool = False) -> core.Headers:
    msg = Parsed()
    parser = httptools.HttpResponseParser(msg) if response else httptools.HttpRequestParser(msg)
    msg.parser = parser
    parser.feed_data(head)
    return [(n.lower(), v) for n, v in msg.headers]


def read_alike(head: bytes, other: bytes, response: bool = False) -> bool:
    """Whether two heads say the same: the same first line, and the same headers in the
    same order as a parser reads them (a line's spacing may differ); request ids aside."""
    head, other = REQUEST_ID.sub(rb"\g<1>(id)", head), REQUEST_ID.sub(rb"\g<1>(id)", other)
    return (head.split(b"\r\n", 1)[0] == other.split(b"\r\n", 1)[0]
            and headers_of(head, response) == headers_of(other, response))


ORDINARY_REQUESTS = [
    b"GET / HTTP/1.1\r\nHost: hello.example.com\r\n\r\n",
    b"GET /api/items?page=2&sort=-date HTTP/1.1\r\nHost: Hello.Example.COM:8080\r\n"
    b"User-Agent: curl/8.0\r\nAccept: */*\r\n\r\n",
    b"GET /a/b.css HTTP/1.1\r\nHost: shop.example.com\r\nConnection: keep-alive\r\n"
    b"User-Agent: Mozilla/5.0 (X11; Linux x86_64) Chrome/120.0\r\n"
    b"Accept: text/css,*/*;q=0.1\r\nAccept-Encoding: gzip, deflate\r\n"
    b"Cookie: session=abc; theme=dark\r\n\r\n",
    b"HEAD /health HTTP/1.1\r\nhost: api.example.com.\r\nconnection: Close\r\n\r\n",
    b"DELETE /items/7 HTTP/1.1\r\nHost: api.example.com\r\nX-Empty:\r\n"
    b"X-Tabbed:\tvalue\t\r\nVia: 1.0 upstream\r\n\r\n",
    b"OPTIONS /%7Euser/ HTTP/1.1\r\nHost: [::1]:8080\r\nOrigin: http://a.example\r\n\r\n",
]


@pytest.mark.parametrize("data", ORDINARY_REQUESTS)
def test_an_ordinary_request_is_taken_and_rewritten_as_the_general_path_would(
    data: bytes,
) -> None:
    quick = fastpath.read_request(data, peer=PEER, listen_port=PORT, now=NOW)
    assert quick is not None
    head, info, keep_alive = general_request(data)  # type: ignore[misc]
    assert read_alike(quick.head, head)
    assert (quick.host, quick.keep_alive) == (info.host, keep_alive)
    assert info.forwarded_for == PEER
    assert quick.request_id.encode() in quick.head


REFUSED_REQUESTS = {
    "a body by length": b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n",
    "a chunked body": b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n",
    "both framings": b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n"
                     b"Transfer-Encoding: chunked\r\n\r\n",
    "no Host": b"GET / HTTP/1.1\r\nAccept: */*\r\n\r\n",
    "two Hosts": b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
    "bare LF": b"GET / HTTP/1.1\nHost: a\n\n",
    "a bare LF inside": b"GET / HTTP/1.1\r\nHost: a\r\nX-A: 1\nX-B: 2\r\n\r\n",
    "obs-fold": b"GET / HTTP/1.1\r\nHost: a\r\nX-A: 1\r\n 2\r\n\r\n",
    "space before the colon": b"GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\n\r\n",
    "a line without a colon": b"GET / HTTP/1.1\r\nHost: a\r\nnonsense\r\n\r\n",
    "HTTP/1.0": b"GET / HTTP/1.0\r\nHost: a\r\n\r\n",
    "HTTP/2.0": b"GET / HTTP/2.0\r\nHost: a\r\n\r\n",
    "absolute form": b"GET http://a/ HTTP/1.1\r\nHost: a\r\n\r\n",
    "an unknown method": b"BREW / HTTP/1.1\r\nHost: a\r\n\r\n",
    "a lowercase method": b"get / HTTP/1.1\r\nHost: a\r\n\r\n",
    "a quote in the target": b'GET /"x" HTTP/1.1\r\nHost: a\r\n\r\n',
    "a client's X-Forwarded-For": b"GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 1.1.1.1\r\n\r\n",
    "a client's X-Request-Id": b"GET / HTTP/1.1\r\nHost: a\r\n"
                               b"X-Request-Id: abcdefghijklmnopqrstu\r\n\r\n",
    "an upgrade": b"GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
    "a Connection list": b"GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, X-Secret\r\n\r\n",
    "two Connections": b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n"
                       b"Connection: close\r\n\r\n",
    "Keep-Alive": b"GET / HTTP/1.1\r\nHost: a\r\nKeep-Alive: 300\r\n\r\n",
    "TE": b"GET / HTTP/1.1\r\nHost: a\r\nTE: trailers\r\n\r\n",
    "a byte past ASCII": b"GET / HTTP/1.1\r\nHost: a\r\nX-Name: caf\xc3\xa9\r\n\r\n",
    "a control byte": b"GET / HTTP/1.1\r\nHost: a\r\nX-A: 1\x00\r\n\r\n",
    "a bare CR": b"GET / HTTP/1.1\r\nHost: a\r\nX-A: 1\r2\r\n\r\n",
    "two requests": b"GET / HTTP/1.1\r\nHost: a\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",
    "part of one": b"GET / HTTP/1.1\r\nHost: a\r\n",
    "a head past the limit": b"GET / HTTP/1.1\r\nHost: a\r\nX-Big: " + b"x" * 9000 + b"\r\n\r\n",
    "too many headers": b"GET / HTTP/1.1\r\nHost: a\r\n" + b"X: 1\r\n" * 101 + b"\r\n",
}


@pytest.mark.parametrize("data", REFUSED_REQUESTS.values(), ids=REFUSED_REQUESTS.keys())
def test_a_request_needing_a_decision_or_readable_two_ways_is_left_to_the_general_path(
    data: bytes,
) -> None:
    assert fastpath.read_request(data, peer=PEER, listen_port=PORT, now=NOW) is None


def general_response(data: bytes) -> tuple[bytes, bytes, bool]:
    """The head the general path sends to an HTTP/1.1 keep-alive client, the body and
    whether the backend connection stays open."""
    msg = Parsed()
    parser = msg.parser = httptools.HttpResponseParser(msg)
    parser.feed_data(data)
    assert msg.complete == 1
    status = parser.get_status_code()
    info = core.prepare_response(msg.headers, status=status)
    assert info.framing is core.Framing.LENGTH
    return core.response_head(status, msg.reason, info.headers), msg.body, msg.keep_alive


ORDINARY_RESPONSES = [
    b"HTTP/1.1 200 OK\r\nServer: nginx\r\nDate: Fri, 27 Nov 2026 18:00:00 GMT\r\n"
    b"Content-Type: text/plain\r\nContent-Length: 5\r\nConnection: keep-alive\r\n\r\nhello",
    b"HTTP/1.1 404 NOT FOUND\r\nServer: gunicorn\r\nConnection: close\r\n"
    b"Content-Type: text/html; charset=utf-8\r\nContent-Length: 9\r\n\r\nnot found",
    b"HTTP/1.1 201 Created\r\ncontent-length: 0\r\nkeep-alive: timeout=5\r\n"
    b"connection: Keep-Alive\r\nLocation: /items/7\r\n\r\n",
    b"HTTP/1.1 503 \r\nRetry-After: 5\r\nContent-Length: 2\r\n\r\n{}",
    b"HTTP/1.1 200 OK\r\nContent-Length: 20000\r\nSet-Cookie: a=b; Path=/\r\n"
    b"Set-Cookie: c=d\r\n\r\n" + b"x" * 20000,
]


@pytest.mark.parametrize("data", ORDINARY_RESPONSES)
def test_a_whole_response_is_taken_and_rewritten_as_the_general_path_would(data: bytes) -> None:
    quick = fastpath.read_response(data)
    assert quick is not None
    head, body, keep_alive = general_response(data)
    assert read_alike(quick.head + b"\r\n", head, response=True)
    assert data[quick.body_start:] == body
    assert quick.keep_alive == keep_alive


REFUSED_RESPONSES = {
    "chunked": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    "no length": b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nhello",
    "two lengths": b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello",
    "a length that is not a number": b"HTTP/1.1 200 OK\r\nContent-Length: -5\r\n\r\nhello",
    "part of the body": b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhello",
    "more than the body": b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhello",
    "part of the head": b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n",
    "204": b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n",
    "304": b"HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n",
    "100": b"HTTP/1.1 100 Continue\r\n\r\n",
    "101": b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n",
    "HTTP/1.0": b"HTTP/1.0 200 OK\r\nContent-Length: 5\r\n\r\nhello",
    "an upgrade offer": b"HTTP/1.1 200 OK\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n"
                        b"Content-Length: 5\r\n\r\nhello",
    "a Connection list": b"HTTP/1.1 200 OK\r\nConnection: X-Secret\r\nX-Secret: 1\r\n"
                         b"Content-Length: 5\r\n\r\nhello",
    "bare LF": b"HTTP/1.1 200 OK\nContent-Length: 5\n\nhello",
    "obs-fold": b"HTTP/1.1 200 OK\r\nX-A: 1\r\n 2\r\nContent-Length: 5\r\n\r\nhello",
    "a split header": b"HTTP/1.1 200 OK\r\nX-A: 1\r\nSet-Cookie: a\r\nb\r\n"
                      b"Content-Length: 5\r\n\r\nhello",
}


@pytest.mark.parametrize("data", REFUSED_RESPONSES.values(), ids=REFUSED_RESPONSES.keys())
def test_a_response_needing_a_decision_or_incomplete_is_left_to_the_general_path(
    data: bytes,
) -> None:
    assert fastpath.read_response(data) is None


# What the fuzz puts into an ordinary message: the bytes that end, split or hide lines and
# names, and a few ordinary ones. Seeded, so a failure is the same on every run.
FUZZ_BYTES = list(b"\r\n \t:,;\x00\x7f\x80Aa0-=\"/")
FUZZ_CASES = 6000


def mangled(rng: random.Random, corpus: list[bytes]) -> bytes:
    out = bytearray(rng.choice(corpus))
    for _ in range(rng.randint(1, 3)):
        at = rng.randint(0, len(out))
        op = rng.choice(("insert", "replace", "delete"))
        if op == "insert":
            out[at:at] = bytes([rng.choice(FUZZ_BYTES)])
        elif at < len(out):
            if op == "replace":
                out[at] = rng.choice(FUZZ_BYTES)
            else:
                del out[at]
    return bytes(out)


def test_a_mangled_request_is_taken_only_when_the_general_path_reads_it_alike() -> None:
    rng = random.Random(7)
    corpus = ORDINARY_REQUESTS + list(REFUSED_REQUESTS.values())
    taken = 0
    for _ in range(FUZZ_CASES):
        data = mangled(rng, corpus)
        quick = fastpath.read_request(data, peer=PEER, listen_port=PORT, now=NOW)
        if quick is None:
            continue
        taken += 1
        general = general_request(data)
        assert general is not None, data
        head, info, keep_alive = general
        assert read_alike(quick.head, head), data
        assert (quick.host, quick.keep_alive) == (info.host, keep_alive), data
    assert taken > FUZZ_CASES // 50  # the fuzz reached the fast path, not only its refusals


def test_a_mangled_response_is_taken_only_when_the_general_path_reads_it_alike() -> None:
    rng = random.Random(7)
    corpus = ORDINARY_RESPONSES[:4] + list(REFUSED_RESPONSES.values())
    taken = 0
    for _ in range(FUZZ_CASES):
        data = mangled(rng, corpus)
        quick = fastpath.read_response(data)
        if quick is None:
            continue
        taken += 1
        head, body, keep_alive = general_response(data)  # raises if llhttp refuses it
        assert read_alike(quick.head + b"\r\n", head, response=True), data
        assert (data[quick.body_start:], quick.keep_alive) == (body, keep_alive), data
    assert taken > FUZZ_CASES // 50


def test_a_browser_like_exchange_takes_the_fast_path_through_a_real_router(
    start_router: Any, r: Any, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Requests with `Connection: keep-alive` and answers with `Keep-Alive` and
    `Connection`, each in one piece: the backend sees the forwarding headers and no
    hop-by-hop line, the client gets Via and neither, a large body arrives whole, and one
    connection on each side carries all three exchanges."""
    seen: list[bytes] = []
    connections: list[socket.socket] = []
    big = bytes(range(256)) * 80  # 20 KiB: written from the backend's read as it is

    def answer(body: bytes) -> bytes:
        return (b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
                b"Content-Length: %d\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\n"
                b"\r\n%s" % (len(body), body))

    def serve_one(sock: socket.socket) -> None:
        connections.append(sock)
        while True:
            head = read_head(sock)
            if not head:
                return
            seen.append(head)
            sock.sendall(answer(big if head.startswith(b"GET /big ") else b"hello"))

    taken: list[str] = []

    def counted(name: str) -> Any:
        read = getattr(fastpath, name)

        def spy(*args: Any, **kw: Any) -> Any:
            result = read(*args, **kw)
            if result is not None:
                taken.append(name)
            return result

        return spy

    for name in ("read_request", "read_response"):
        monkeypatch.setattr(fastpath, name, counted(name))
    replies = []
    with raw_backend(serve_one) as backend_addr:
        routes.publish(r, Route("fast", (Backend("web.1", backend_addr),)))
        router = start_router()
        with socket.create_connection(("127.0.0.1", router.port), timeout=DEADLINE) as sock:
            for path, body in ((b"/page?x=1", b"hello"), (b"/page?x=1", b"hello"),
                               (b"/big", big)):
                sock.sendall(b"GET %s HTTP/1.1\r\nHost: fast.localhost\r\n"
                             b"Connection: keep-alive\r\nAccept: */*\r\n\r\n" % path)
                reply = read_head(sock)
                while not reply.endswith(body):
                    reply += sock.recv(65536)
                replies.append(reply)
    # The big answer may reach the router in two reads, and then takes the general path.
    assert taken[:4] == ["read_request", "read_response"] * 2
    assert len(seen) == 3 and len(connections) == 1
    for head in seen:
        names = [n for n, _ in headers_of(head)]
        assert b"connection" not in names
        assert {b"x-forwarded-for", b"x-forwarded-proto", b"x-forwarded-port",
                b"x-request-id", b"x-request-start", b"via"} <= set(names)
        assert head.startswith(b"GET /")
        assert b"\r\nHost: fast.localhost\r\n" in head
    for reply, body in zip(replies, (b"hello", b"hello", big), strict=True):
        head, _, rest = reply.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 OK\r\n")
        assert b"Via: 1.1 paas" in head
        assert b"Keep-Alive" not in head and b"Connection" not in head
        assert rest == body
