"""The router's pure core: host lookup, balancing, header rules, errors, log lines."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from paas.routes import Backend, Route
from router import core

DOMAIN = "paas.test"


def table(**apps: tuple[str, ...]) -> core.RouteTable:
    return core.RouteTable(
        Route(app, tuple(Backend(f"web.{i + 1}", addr) for i, addr in enumerate(addrs)))
        for app, addrs in apps.items()
    )


def headers_dict(headers: core.Headers) -> dict[bytes, list[bytes]]:
    out: dict[bytes, list[bytes]] = {}
    for name, value in headers:
        out.setdefault(name.lower(), []).append(value)
    return out


def prepare(headers: core.Headers, **kw: object) -> core.RequestInfo:
    args: dict[str, object] = {"peer": "10.0.0.7", "listen_port": 8080, "now": 1700000000.123}
    args.update(kw)
    return core.prepare_request(headers, **args)  # type: ignore[arg-type]


# --- hosts --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Hello.PAAS.test", "hello.paas.test"),
        ("hello.paas.test:8080", "hello.paas.test"),
        ("hello.paas.test.", "hello.paas.test"),
        ("hello.paas.test.:8080", "hello.paas.test"),
        ("[::1]:8080", "[::1]"),
        ("[::1]", "[::1]"),
        ("127.0.0.1:80", "127.0.0.1"),
        ("", ""),
        (None, ""),
    ],
)
def test_normalise_host(raw: str | None, expected: str) -> None:
    assert core.normalise_host(raw) == expected


def test_is_ip_host() -> None:
    assert core.is_ip_host("127.0.0.1")
    assert core.is_ip_host("[::1]")
    assert core.is_ip_host("[2001:db8::5]")
    assert not core.is_ip_host("localhost")
    assert not core.is_ip_host("1.2.3")
    assert not core.is_ip_host("[not-an-ip]")


@pytest.mark.parametrize(
    "raw", ["hello.paas.test", "HELLO.paas.test:8080", "hello.paas.test.", "Hello.Paas.Test."]
)
def test_app_host_finds_the_app(raw: str) -> None:
    routes = table(hello=("127.0.0.1:5000",))
    target = core.lookup(core.normalise_host(raw), DOMAIN, routes)
    assert target.kind is core.Kind.APP
    assert target.app == "hello"
    assert target.route == routes.get("hello")


@pytest.mark.parametrize(
    "raw", ["paas.test", "PAAS.test:8080", "paas.test.", "localhost", "localhost:8080",
            "127.0.0.1", "10.1.2.3:8080", "[::1]:8080", "[2001:db8::1]", "", None],
)
def test_platform_hosts(raw: str | None) -> None:
    target = core.lookup(core.normalise_host(raw), DOMAIN, table(hello=("x:1",)))
    assert target.kind is core.Kind.PLATFORM


@pytest.mark.parametrize(
    "raw", ["other.paas.test", "www.hello.paas.test", "example.com", "hello.paas.test.evil",
            "xpaas.test", "hello.localhost"],
)
def test_unknown_hosts(raw: str) -> None:
    target = core.lookup(core.normalise_host(raw), DOMAIN, table(hello=("x:1",)))
    assert target.kind is core.Kind.UNKNOWN


def test_localhost_domain_serves_apps_under_it() -> None:
    routes = table(hello=("x:1",))
    assert core.lookup("hello.localhost", "localhost", routes).app == "hello"
    assert core.lookup("localhost", "localhost", routes).kind is core.Kind.PLATFORM


def test_app_without_backends_is_still_the_app() -> None:
    routes = core.RouteTable([Route("idle", ())])
    target = core.lookup("idle.paas.test", DOMAIN, routes)
    assert target.kind is core.Kind.APP
    assert routes.pick("idle") is None


def test_lookup_answers_from_memory_only_until_a_route_changes() -> None:
    routes = table(hello=("x:1",))
    assert core.lookup("late.paas.test", DOMAIN, routes) is core.UNKNOWN
    assert routes.remembered("late.paas.test", DOMAIN) is core.UNKNOWN
    routes.update(Route("late", (Backend("web.1", "x:2"),)))
    assert routes.remembered("late.paas.test", DOMAIN) is None
    assert core.lookup("late.paas.test", DOMAIN, routes).app == "late"
    routes.update(Route("late", (Backend("web.1", "x:3"),), domains=("www.late.test",)))
    target = core.lookup("late.paas.test", DOMAIN, routes)
    assert target.route is not None and target.route.backends[0].addr == "x:3"
    assert core.lookup("www.late.test", DOMAIN, routes).app == "late"
    routes.remove("late")
    assert core.lookup("late.paas.test", DOMAIN, routes) is core.UNKNOWN


def test_made_up_long_names_are_answered_but_not_remembered() -> None:
    routes = table(hello=("x:1",))
    long_name = "a" * 300 + ".paas.test"
    assert core.lookup(long_name, DOMAIN, routes) is core.UNKNOWN
    assert routes.remembered(long_name, DOMAIN) is None
    info = core.prepare_request([(b"Host", long_name.encode())], peer="1.2.3.4",
                                listen_port=80, now=0.0)
    assert info.host == long_name  # normalised all the same, just not kept


# --- the table and round robin ------------------------------------------------------------


def test_round_robin_over_three_backends() -> None:
    routes = table(hello=("a:1", "b:2", "c:3"))
    picked = [routes.pick("hello").addr for _ in range(7)]  # type: ignore[union-attr]
    assert picked == ["a:1", "b:2", "c:3", "a:1", "b:2", "c:3", "a:1"]


def test_round_robin_is_per_app() -> None:
    routes = table(one=("a:1", "b:2"), two=("c:3", "d:4"))
    assert routes.pick("one").addr == "a:1"  # type: ignore[union-attr]
    assert routes.pick("two").addr == "c:3"  # type: ignore[union-attr]
    assert routes.pick("one").addr == "b:2"  # type: ignore[union-attr]
    assert routes.pick("two").addr == "d:4"  # type: ignore[union-attr]


def test_update_remove_and_replace_all() -> None:
    routes = table(one=("a:1", "b:2"))
    routes.pick("one")
    routes.update(Route("two", (Backend("web.1", "c:3"),)))
    assert routes.apps() == ["one", "two"]
    routes.remove("two")
    assert "two" not in routes and routes.pick("two") is None
    routes.replace_all({"one": Route("one", (Backend("web.1", "a:1"), Backend("web.2", "b:2")))})
    # a resync keeps the app's place in its rotation instead of starting over
    assert routes.pick("one").addr == "b:2"  # type: ignore[union-attr]
    routes.replace_all({})
    assert len(routes) == 0 and routes.pick("one") is None
    routes.remove("absent")  # removing what isn't there is fine


# --- request headers -----------------------------------------------------------------------


def test_forwarding_headers_are_set() -> None:
    info = prepare([(b"Host", b"Hello.paas.test:8080"), (b"Accept", b"*/*")], listen_port=8443)
    h = headers_dict(info.headers)
    assert info.host == "hello.paas.test"
    assert h[b"host"] == [b"Hello.paas.test:8080"]  # the Host itself travels unchanged
    assert h[b"accept"] == [b"*/*"]
    assert h[b"x-forwarded-for"] == [b"10.0.0.7"]
    assert h[b"x-forwarded-proto"] == [b"http"]
    assert h[b"x-forwarded-port"] == [b"8443"]
    assert h[b"x-request-start"] == [b"t=1700000000123"]
    assert info.forwarded_for == "10.0.0.7"


def test_client_forwarded_headers_are_not_trusted() -> None:
    info = prepare([
        (b"Host", b"a.paas.test"), (b"X-Forwarded-For", b"1.2.3.4"),
        (b"x-forwarded-proto", b"https"), (b"X-Forwarded-Port", b"443"),
        (b"X-Request-Start", b"t=1"),
    ])
    h = headers_dict(info.headers)
    assert h[b"x-forwarded-for"] == [b"10.0.0.7"]
    assert h[b"x-forwarded-proto"] == [b"http"]
    assert h[b"x-forwarded-port"] == [b"8080"]
    assert h[b"x-request-start"] == [b"t=1700000000123"]


def test_trusted_proxy_keeps_and_appends_the_client_chain() -> None:
    info = prepare(
        [(b"X-Forwarded-For", b"1.2.3.4"), (b"X-Forwarded-For", b"5.6.7.8")],
        trusted_proxies=frozenset({"10.0.0.7"}),
    )
    assert headers_dict(info.headers)[b"x-forwarded-for"] == [b"1.2.3.4, 5.6.7.8, 10.0.0.7"]
    untrusted = prepare([(b"X-Forwarded-For", b"1.2.3.4")], trusted_proxies=frozenset({"9.9.9.9"}))
    assert untrusted.forwarded_for == "10.0.0.7"


def test_trusted_proxies_are_addresses_or_networks() -> None:
    trusted = core.TrustedProxies(["10.0.0.7", "192.168.0.0/16", "fd00::/8"])
    assert "10.0.0.7" in trusted and "10.0.0.8" not in trusted
    assert "192.168.44.1" in trusted and "192.169.0.1" not in trusted
    assert "fd12::1" in trusted and "fe80::1" not in trusted
    assert "::ffff:192.168.1.1" in trusted, "an IPv4 peer on a dual-stack socket"
    assert "" not in trusted and "not-an-address" not in trusted
    assert not core.TrustedProxies() and "10.0.0.7" not in core.TrustedProxies()
    info = prepare([(b"X-Forwarded-For", b"1.2.3.4")],
                   trusted_proxies=core.TrustedProxies(["10.0.0.0/8"]))
    assert info.forwarded_for == "1.2.3.4, 10.0.0.7"
    with pytest.raises(ValueError):
        core.TrustedProxies(["10.0.0.0/33"])


def test_forwarded_for_function() -> None:
    assert core.forwarded_for(None, "10.0.0.1", frozenset({"10.0.0.1"})) == "10.0.0.1"
    assert core.forwarded_for("1.1.1.1", "10.0.0.1", frozenset()) == "10.0.0.1"
    assert core.forwarded_for(" 1.1.1.1 ", "10.0.0.1", frozenset({"10.0.0.1"})) == (
        "1.1.1.1, 10.0.0.1"
    )


def test_good_request_id_is_kept() -> None:
    rid = "abcDEF0123456789+/=_-xyz"
    info = prepare([(b"X-Request-Id", rid.encode())])
    assert info.request_id == rid
    assert headers_dict(info.headers)[b"x-request-id"] == [rid.encode()]


@pytest.mark.parametrize(
    "bad", [b"short", b"x" * 201, b"has spaces in it, twenty+", b"semi;colons;are;not;ok;"]
)
def test_bad_request_id_is_replaced(bad: bytes) -> None:
    info = prepare([(b"X-Request-Id", bad)])
    assert re.fullmatch(r"[0-9a-f]{32}", info.request_id)
    assert headers_dict(info.headers)[b"x-request-id"] == [info.request_id.encode()]


def test_missing_request_id_is_generated_fresh_each_time() -> None:
    first, second = prepare([]).request_id, prepare([]).request_id
    assert re.fullmatch(r"[0-9a-f]{32}", first)
    assert first != second


def test_hop_by_hop_headers_are_removed() -> None:
    info = prepare([
        (b"Host", b"a.paas.test"), (b"Connection", b"keep-alive, X-Secret"),
        (b"Keep-Alive", b"timeout=5"), (b"Proxy-Connection", b"keep-alive"), (b"TE", b"trailers"),
        (b"Trailer", b"Expires"), (b"Upgrade", b"h2c"), (b"X-Secret", b"1"),
        (b"Proxy-Authorization", b"Basic eA=="), (b"Transfer-Encoding", b"chunked"),
    ])
    h = headers_dict(info.headers)
    for gone in (b"connection", b"keep-alive", b"proxy-connection", b"te", b"trailer",
                 b"upgrade", b"x-secret"):
        assert gone not in h
    assert h[b"proxy-authorization"] == [b"Basic eA=="]
    assert h[b"transfer-encoding"] == [b"chunked"]  # framing is the shell's business
    assert info.chunked and info.has_body


def test_connection_header_cannot_strip_framing_or_host() -> None:
    info = prepare([
        (b"Host", b"a.paas.test"), (b"Content-Length", b"5"),
        (b"Connection", b"Content-Length, Host, X-Forwarded-For"),
    ])
    h = headers_dict(info.headers)
    assert h[b"content-length"] == [b"5"] and h[b"host"] == [b"a.paas.test"]
    assert h[b"x-forwarded-for"] == [b"10.0.0.7"]
    assert info.content_length == 5 and info.has_body and not info.chunked


def test_upgrade_request_keeps_upgrade() -> None:
    info = prepare([(b"Upgrade", b"websocket"), (b"Connection", b"Upgrade")], upgrade=True)
    h = headers_dict(info.headers)
    assert h[b"upgrade"] == [b"websocket"]
    assert h[b"connection"] == [b"Upgrade"]


def test_only_the_first_host_is_forwarded() -> None:
    info = prepare([(b"Host", b"a.paas.test"), (b"Host", b"b.paas.test")])
    assert info.host == "a.paas.test"
    assert headers_dict(info.headers)[b"host"] == [b"a.paas.test"]


def test_request_without_body() -> None:
    info = prepare([(b"Content-Length", b"0")])
    assert not info.has_body and info.content_length == 0


def test_response_headers_filtered() -> None:
    info = core.prepare_response([
        (b"Content-Type", b"text/plain"), (b"Connection", b"keep-alive, X-Hop"),
        (b"Keep-Alive", b"timeout=5"), (b"X-Hop", b"1"), (b"Transfer-Encoding", b"chunked"),
    ])
    h = headers_dict(info.headers)
    assert set(h) == {b"content-type", b"transfer-encoding", b"via"}
    assert h[b"via"] == [core.VIA]
    assert info.framing is core.Framing.CHUNKED
    upgraded = core.prepare_response(
        [(b"Upgrade", b"websocket"), (b"Connection", b"upgrade")], upgrade=True
    )
    assert headers_dict(upgraded.headers) == {
        b"upgrade": [b"websocket"], b"connection": [b"Upgrade"], b"via": [core.VIA]
    }


def test_heads_are_serialised() -> None:
    assert core.request_head(b"GET", b"/a?b=1", [(b"Host", b"x")]) == (
        b"GET /a?b=1 HTTP/1.1\r\nHost: x\r\n\r\n"
    )
    assert core.response_head(200, b"OK", [(b"A", b"1")], b"Connection: close\r\n") == (
        b"HTTP/1.1 200 OK\r\nA: 1\r\nConnection: close\r\n\r\n"
    )


# --- errors ---------------------------------------------------------------------------------


def test_error_pages_escape_the_host() -> None:
    evil = '<script>alert("x")</script>.paas.test'
    for error in (core.UNKNOWN_HOST, core.NO_WEB_DYNOS, core.CONNECT_FAILED):
        page = core.error_page(error, evil).decode()
        assert "<script>" not in page
        assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;.paas.test" in page


def test_error_response_is_complete_http() -> None:
    raw = core.error_response(core.NO_WEB_DYNOS, "hello.paas.test", close=True, request_id="r1")
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    assert lines[0] == b"HTTP/1.1 503 Service Unavailable"
    assert b"Connection: close" in lines and b"X-Request-Id: r1" in lines
    assert f"Content-Length: {len(body)}".encode() in lines
    assert b"hello.paas.test" in body and b"ps:scale web=1" in body
    kept = core.error_response(core.UNKNOWN_HOST, "x", close=False)
    assert kept.startswith(b"HTTP/1.1 404 Not Found\r\n") and b"Connection: close" not in kept


def test_error_decisions() -> None:
    assert (core.UNKNOWN_HOST.status, core.UNKNOWN_HOST.code) == (404, None)
    assert (core.NO_WEB_DYNOS.status, core.NO_WEB_DYNOS.code) == (503, "H14")
    assert (core.CONNECT_FAILED.status, core.CONNECT_FAILED.code) == (503, "H19")
    assert (core.REQUEST_TIMEOUT.status, core.REQUEST_TIMEOUT.code) == (504, "H12")
    assert (core.NO_RESPONSE.status, core.NO_RESPONSE.code) == (502, "H13")


# --- log lines ------------------------------------------------------------------------------


def test_log_line_format() -> None:
    line = core.log_line(
        method="GET", path="/x", host="hello.localhost", request_id="abc", fwd="1.2.3.4",
        dyno="web.1", connect_ms=1, service_ms=12, status=200, bytes_sent=123,
    )
    assert line == (
        'at=info method=GET path="/x" host=hello.localhost request_id=abc fwd="1.2.3.4" '
        "dyno=web.1 connect=1ms service=12ms status=200 bytes=123 protocol=http"
    )


def test_error_log_line_format() -> None:
    line = core.log_line(
        method="GET", path="/", host="hello.localhost", request_id="abc", fwd="1.2.3.4",
        dyno="", connect_ms=0, service_ms=0, status=503, bytes_sent=300,
        error=core.NO_WEB_DYNOS,
    )
    assert line.startswith('at=error code=H14 desc="No web processes running" method=GET ')
    assert "dyno= connect=0ms service=0ms status=503 bytes=300" in line


def test_log_line_quotes_hostile_paths() -> None:
    line = core.log_line(
        method="GET", path='/a"b\nc', host="h", request_id="r", fwd="f", dyno="web.1",
        connect_ms=0, service_ms=0, status=200, bytes_sent=0,
    )
    assert "\n" not in line
    assert 'path="/a\\"b\\nc"' in line


# --- response framing -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "kw", "framing"),
    [
        ([(b"Content-Length", b"3")], {}, core.Framing.LENGTH),
        ([(b"Transfer-Encoding", b"chunked")], {}, core.Framing.CHUNKED),
        ([(b"Transfer-Encoding", b"chunked")], {"http10": True}, core.Framing.DECHUNKED),
        ([], {}, core.Framing.UNTIL_CLOSE),
        ([(b"Content-Length", b"3")], {"is_head": True}, core.Framing.NONE),
        ([], {"is_head": True}, core.Framing.NONE),
        ([], {"status": 204}, core.Framing.NONE),
        ([(b"Content-Length", b"3")], {"status": 304}, core.Framing.NONE),
        ([], {"status": 100}, core.Framing.NONE),
    ],
)
def test_response_framing(
    headers: core.Headers, kw: dict[str, object], framing: core.Framing
) -> None:
    assert core.prepare_response(headers, **kw).framing is framing  # type: ignore[arg-type]


def test_http10_client_loses_the_transfer_encoding_header() -> None:
    info = core.prepare_response([(b"Transfer-Encoding", b"chunked"), (b"A", b"1")], http10=True)
    assert info.headers == [(b"A", b"1"), (b"Via", core.VIA)]


def test_the_table_knows_which_addresses_some_route_names() -> None:
    a, b = Backend("web.1", "127.0.0.1:1"), Backend("web.2", "127.0.0.1:2")
    table = core.RouteTable([Route("one", (a,)), Route("two", (a, b))])
    assert table.routes_to(a.addr) and table.routes_to(b.addr)
    table.update(Route("two", (b,)))
    assert table.routes_to(a.addr)  # still named by "one"
    table.remove("one")
    assert not table.routes_to(a.addr) and table.routes_to(b.addr)
    table.replace_all({"three": Route("three", (a,))})
    assert table.routes_to(a.addr) and not table.routes_to(b.addr)


# --- custom domains, balancing, request checks -------------------------------------------


def routed(app: str, *addrs: str, domains: tuple[str, ...] = (), **kw: bool) -> Route:
    backends = tuple(Backend(f"web.{i + 1}", a) for i, a in enumerate(addrs))
    return Route(app, backends, domains=domains, **kw)


def test_custom_and_wildcard_domains_find_their_app() -> None:
    t = core.RouteTable([
        routed("shop", "a:1", domains=("www.example.com", "*.example.com")),
        routed("blog", "b:1", domains=("blog.example.com",)),
    ])
    for raw in ("www.example.com", "WWW.Example.COM.:443", "eu.example.com"):
        assert core.lookup(core.normalise_host(raw), DOMAIN, t).app == "shop"
    # the exact name wins over the wildcard that also matches it
    assert core.lookup("blog.example.com", DOMAIN, t).app == "blog"
    # a wildcard is one label deep, and never covers the bare domain
    assert core.lookup("a.b.example.com", DOMAIN, t).kind is core.Kind.UNKNOWN
    assert core.lookup("example.com", DOMAIN, t).kind is core.Kind.UNKNOWN
    assert core.lookup("shop.paas.test", DOMAIN, t).app == "shop"


def test_domains_follow_route_updates_and_removal() -> None:
    t = core.RouteTable([routed("shop", "a:1", domains=("www.example.com",))])
    t.update(routed("shop", "a:1", domains=("shop.example.net",)))
    assert core.lookup("www.example.com", DOMAIN, t) is core.UNKNOWN
    assert core.lookup("shop.example.net", DOMAIN, t).app == "shop"
    t.remove("shop")
    assert core.lookup("shop.example.net", DOMAIN, t) is core.UNKNOWN
    t.replace_all({"x": routed("x", domains=("*.example.net",))})
    assert core.lookup("any.example.net", DOMAIN, t).app == "x"


def test_two_apps_claiming_one_domain_resolve_the_same_way_everywhere() -> None:
    routes = [routed("b-app", domains=("www.example.com",)),
              routed("a-app", domains=("www.example.com",))]
    assert core.RouteTable(routes).app_for_domain("www.example.com") == "a-app"
    assert core.RouteTable(reversed(routes)).app_for_domain("www.example.com") == "a-app"


def test_balancing_prefers_the_backend_with_fewest_requests_outstanding() -> None:
    t = table(hello=("a:1", "b:1", "c:1"))
    t.begin("a:1")
    t.begin("a:1")
    t.begin("b:1")
    assert t.pick("hello").addr == "c:1"  # type: ignore[union-attr]
    t.begin("c:1")
    t.begin("c:1")
    assert t.pick("hello").addr == "b:1"  # type: ignore[union-attr]
    for addr in ("a:1", "a:1", "b:1", "c:1", "c:1"):
        t.end(addr)
    assert t.outstanding("a:1") == 0
    # all equal again: ties rotate so no backend is everyone's first choice
    assert {t.pick("hello").addr for _ in range(3)} == {"a:1", "b:1", "c:1"}  # type: ignore


def test_a_backend_marked_down_is_left_out_until_its_time_is_up() -> None:
    t = table(hello=("a:1", "b:1"))
    t.mark_down("a:1", now=100.0)
    assert {t.pick("hello", now=101.0).addr for _ in range(4)} == {"b:1"}  # type: ignore
    assert t.pick("hello", now=101.0, avoid="b:1").addr == "a:1"  # type: ignore[union-attr]
    later = 100.0 + core.DOWN_SECONDS + 1
    assert {t.pick("hello", now=later).addr for _ in range(4)} == {"a:1", "b:1"}  # type: ignore
    # when every backend is down, one is still tried rather than none
    t.mark_down("b:1", now=100.0)
    assert t.pick("hello", now=101.0) is not None


@pytest.mark.parametrize(
    ("headers", "http10"),
    [
        ([(b"Host", b"a"), (b"Host", b"b")], False),
        ([(b"Host", b"a"), (b"Transfer-Encoding", b"identity, chunked")], False),
        ([(b"Host", b"a"), (b"Transfer-Encoding", b"chunked"), (b"Transfer-Encoding", b"chunked")],
         False),
        ([(b"Host", b"a"), (b"Transfer-Encoding", b"gzip")], False),
        ([(b"Host", b"a"), (b"Transfer-Encoding", b"chunked")], True),
        ([(b"Host", b"a"), (b"Content-Length", b"3"), (b"Content-Length", b"3")], False),
        ([(b"Host", b"a"), (b"Content-Length", b"3"), (b"Transfer-Encoding", b"chunked")], False),
        ([(b"Host", b"a"), (b"Content-Length", b"+3")], False),
    ],
)
def test_ambiguous_requests_are_not_forwarded(headers: core.Headers, http10: bool) -> None:
    assert prepare(headers, http10=http10).problem is core.AMBIGUOUS_REQUEST


def test_http11_needs_a_host_and_http10_does_not() -> None:
    assert prepare([]).problem is core.BAD_REQUEST
    assert prepare([], http10=True).problem is None
    ok = prepare([(b"Host", b"a"), (b"Transfer-Encoding", b"Chunked")])
    assert ok.problem is None and ok.chunked


def test_via_is_added_to_requests() -> None:
    h = headers_dict(prepare([(b"Host", b"a"), (b"Via", b"1.0 corp")]).headers)
    assert h[b"via"] == [b"1.0 corp", core.VIA]


def test_https_requests_say_so() -> None:
    h = headers_dict(prepare([(b"Host", b"a")], proto=b"https", listen_port=8443).headers)
    assert h[b"x-forwarded-proto"] == [b"https"] and h[b"x-forwarded-port"] == [b"8443"]


def test_redirect_to_https_keeps_the_path_and_the_method() -> None:
    get = core.redirect_response("shop.example.com", b"/a?b=1", https_port=443,
                                 method=b"GET", close=False)
    assert get.startswith(b"HTTP/1.1 301 ")
    assert b"\r\nLocation: https://shop.example.com/a?b=1\r\n" in get
    post = core.redirect_response("shop.example.com", b"/form", https_port=8443,
                                  method=b"POST", close=True)
    assert post.startswith(b"HTTP/1.1 308 ") and b"https://shop.example.com:8443/form" in post
    assert b"Connection: close" in post
    odd = core.redirect_response("h", b"http://evil.example/x", https_port=443,
                                 method=b"GET", close=False)
    assert b"Location: https://h/\r\n" in odd


@pytest.mark.parametrize(
    ("error", "status", "code"),
    [(core.APP_CRASHED, 503, "H10"), (core.SERVER_INTERRUPTED, 502, "H18"),
     (core.CLIENT_IDLE, 408, "H28"), (core.MAINTENANCE, 503, "H80"),
     (core.URI_TOO_LONG, 414, None), (core.HEADERS_TOO_LARGE, 431, None),
     (core.BODY_TOO_LARGE, 413, None), (core.HEADER_TIMEOUT, 408, None),
     (core.TOO_MANY_CONNECTIONS, 429, None), (core.AMBIGUOUS_REQUEST, 400, None)],
)
def test_each_new_error_has_a_page_and_a_log_line(
    error: core.RouterError, status: int, code: str | None
) -> None:
    response = core.error_response(error, "h.paas.test", close=True)
    assert response.startswith(b"HTTP/1.1 %d " % status)
    assert b"<h1>%d " % status in response
    line = core.log_line(method="GET", path="/", host="h.paas.test", request_id="r", fwd="1",
                         dyno="web.1", connect_ms=0, service_ms=1, status=status,
                         bytes_sent=0, error=error, protocol="https")
    assert line.startswith(f"at=error code={code} " if code else "at=error desc=")
    assert line.endswith("protocol=https")


# --- settings -------------------------------------------------------------------------------


def test_router_settings_are_read_and_checked(monkeypatch: pytest.MonkeyPatch,
                                              tmp_path: Path) -> None:
    from paas.config import router_settings
    from paas.errors import PaasError

    for name in ("PAAS_HTTPS_PORT", "PAAS_PUBLIC_HTTPS_PORT", "PAAS_ROUTER_WORKERS",
                 "PAAS_TRUSTED_PROXIES", "PAAS_ROUTER_MAX_CONNS_PER_IP", "PAAS_TLS_CERT",
                 "PAAS_TLS_KEY", "PAAS_ROUTER_HOST"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PAAS_HOME", str(tmp_path))
    plain = router_settings()
    assert (plain.host, plain.https_port, plain.public_https_port, plain.workers,
            plain.max_conns_per_ip, plain.trusted_proxies) == ("0.0.0.0", 8443, None, None,
                                                               512, ())
    assert plain.tls_cert == tmp_path / "tls" / "platform.crt"
    monkeypatch.setenv("PAAS_HTTPS_PORT", "0")
    monkeypatch.setenv("PAAS_PUBLIC_HTTPS_PORT", "443")
    monkeypatch.setenv("PAAS_ROUTER_WORKERS", "auto")
    monkeypatch.setenv("PAAS_TRUSTED_PROXIES", " 10.0.0.7, 192.168.0.0/16 ,")
    set_ = router_settings()
    assert (set_.https_port, set_.public_https_port, set_.workers) == (None, 443, None)
    assert set_.trusted_proxies == ("10.0.0.7", "192.168.0.0/16")
    for name, value, named in (("PAAS_HTTPS_PORT", "70000", "is not a port"),
                               ("PAAS_ROUTER_WORKERS", "many", "is not a number"),
                               ("PAAS_TRUSTED_PROXIES", "10.0.0.0/40", "CIDR"),
                               ("PAAS_ROUTER_MAX_CONNS_PER_IP", "0", "positive")):
        with monkeypatch.context() as m:
            m.setenv(name, value)
            with pytest.raises(PaasError, match=named) as raised:
                router_settings()
            assert name in raised.value.message
