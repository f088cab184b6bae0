"""The router's pure core: host lookup, balancing, header rules, error decisions, log lines.

Plain functions and classes over plain data, with no I/O, so every rule is tested without
a socket; `router.server` only moves bytes and asks these what to do. Header names and
values stay `bytes` end to end (HTTP headers are latin-1) to spare a decode per header.
"""

from __future__ import annotations

import html
import ipaddress
import re
import uuid
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import Enum, IntEnum
from http import HTTPStatus

from paas.routes import Backend, Route

Headers = list[tuple[bytes, bytes]]

# --- hosts ------------------------------------------------------------------------------


def normalise_host(raw: str | None) -> str:
    """`raw` lowercased, without its port and trailing dot; "" when missing.

    IPv6 literals keep their brackets (`[::1]:8080` -> `[::1]`) so they can't be mistaken
    for a name with a port.
    """
    if not raw:
        return ""
    host = raw.strip().lower()
    if host.startswith("["):
        end = host.find("]")
        return host[: end + 1] if end != -1 else host
    if host.count(":") == 1:
        host = host[: host.index(":")]
    return host.rstrip(".")


def is_ip_host(host: str) -> bool:
    """True for a normalised host that is an IPv4 address or an IPv6 literal."""
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


class Kind(Enum):
    APP = "app"
    PLATFORM = "platform"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class Target:
    """Where a request goes: an app (with its current route), the platform, or nowhere."""

    kind: Kind
    app: str | None = None
    route: Route | None = None


PLATFORM = Target(Kind.PLATFORM)
UNKNOWN = Target(Kind.UNKNOWN)

#: Names that always mean this machine; they reach the platform whatever the domain is, so
#: `curl localhost:8080` finds the dashboard on a box configured for a real domain.
LOCAL_NAMES = frozenset({"localhost"})


def lookup(host: str, domain: str, table: RouteTable) -> Target:
    """The target of a request for the normalised `host` on a platform serving `domain`.

    `<app>.<domain>` is the app when the table knows it; `<domain>`, `localhost`, an IP
    literal or no Host at all is the platform; anything else (including `a.b.<domain>`)
    is unknown.
    """
    if not host or host == domain or host in LOCAL_NAMES:
        return PLATFORM
    cut = len(host) - len(domain) - 1
    if cut > 0 and host[cut] == "." and host.endswith(domain):
        app = host[:cut]
        if "." in app:
            return UNKNOWN
        route = table.get(app)
        return Target(Kind.APP, app, route) if route is not None else UNKNOWN
    return PLATFORM if is_ip_host(host) else UNKNOWN


def app_name(host: str, domain: str) -> str | None:
    """The app a normalised `<app>.<domain>` host names, whether or not it exists."""
    cut = len(host) - len(domain) - 1
    if cut > 0 and host[cut] == "." and host.endswith(domain) and "." not in host[:cut]:
        return host[:cut]
    return None


# --- the route table and balancing ------------------------------------------------------


class RouteTable:
    """The routes this router knows, by app, and how far each app's round robin has got."""

    __slots__ = ("_routes", "_turns", "_addrs")

    def __init__(self, routes: Iterable[Route] = ()) -> None:
        self._routes: dict[str, Route] = {r.app: r for r in routes}
        # A counter per app rather than a rotated list: a route update that reorders or
        # grows the backends doesn't have to be reconciled with a rotation.
        self._turns: dict[str, int] = {}
        # How many routes name each backend address, so a connection to a dyno that has
        # left every route is closed after its request instead of pooled (the agent waits
        # for those connections to end before it stops the dyno).
        self._addrs: Counter[str] = Counter(b.addr for r in self._routes.values()
                                            for b in r.backends)

    def get(self, app: str) -> Route | None:
        return self._routes.get(app)

    def __contains__(self, app: object) -> bool:
        return app in self._routes

    def __len__(self) -> int:
        return len(self._routes)

    def apps(self) -> list[str]:
        return sorted(self._routes)

    def routes_to(self, addr: str) -> bool:
        """Whether any route names the backend address `addr`."""
        return addr in self._addrs

    def update(self, route: Route) -> None:
        self._forget_addrs(self._routes.get(route.app))
        self._routes[route.app] = route
        self._addrs.update(b.addr for b in route.backends)

    def remove(self, app: str) -> None:
        self._forget_addrs(self._routes.pop(app, None))
        self._turns.pop(app, None)

    def replace_all(self, routes: Mapping[str, Route]) -> None:
        """Take a full snapshot; counters of apps that are still there carry on."""
        self._routes = dict(routes)
        self._turns = {app: n for app, n in self._turns.items() if app in self._routes}
        self._addrs = Counter(b.addr for r in self._routes.values() for b in r.backends)

    def _forget_addrs(self, route: Route | None) -> None:
        if route is None:
            return
        self._addrs.subtract(b.addr for b in route.backends)
        for backend in route.backends:
            if self._addrs.get(backend.addr, 0) <= 0:
                self._addrs.pop(backend.addr, None)

    def pick(self, app: str) -> Backend | None:
        """The app's next backend in round-robin order, or None when it has none."""
        route = self._routes.get(app)
        if route is None or not route.backends:
            return None
        turn = self._turns.get(app, 0)
        self._turns[app] = turn + 1
        return route.backends[turn % len(route.backends)]


# --- header rules -----------------------------------------------------------------------

#: Hop-by-hop headers (RFC 9110 7.6.1) the router consumes instead of forwarding.
#: Transfer-Encoding is hop-by-hop too, but the shell re-encodes bodies in the same
#: framing, so it is kept and the shell stays the only one deciding on framing.
HOP_BY_HOP = frozenset(
    {b"connection", b"keep-alive", b"proxy-connection", b"te", b"trailer", b"upgrade"}
)
#: Headers the router sets itself; a client's copies are never forwarded as they are.
FORWARDING = frozenset(
    {b"x-forwarded-for", b"x-forwarded-proto", b"x-forwarded-port", b"x-request-id",
     b"x-request-start"}
)
# Headers a `Connection:` list must not be able to strip: that would change framing or
# routing between the router and the backend (a smuggling trick).
_PROTECTED = frozenset({b"host", b"content-length", b"transfer-encoding"}) | FORWARDING
_REQUEST_ID = re.compile(rb"[A-Za-z0-9+/=_-]{20,200}")


@dataclass(slots=True)
class RequestInfo:
    """A client's request headers rewritten for the backend, and what the shell needs."""

    headers: Headers
    host: str  # normalised
    request_id: str
    forwarded_for: str
    chunked: bool
    content_length: int | None

    @property
    def has_body(self) -> bool:
        return self.chunked or bool(self.content_length)


def valid_request_id(value: bytes) -> bool:
    return _REQUEST_ID.fullmatch(value) is not None


def forwarded_for(client_value: str | None, peer: str, trusted_proxies: frozenset[str]) -> str:
    """The X-Forwarded-For to send: the peer alone, unless the peer is a trusted proxy,
    whose claim about the client is kept in front of it."""
    if client_value and peer in trusted_proxies:
        return f"{client_value.strip()}, {peer}"
    return peer


def _connection_tokens(value: bytes) -> set[bytes]:
    return {t.strip().lower() for t in value.split(b",") if t.strip()}


def prepare_request(
    headers: Headers,
    *,
    peer: str,
    listen_port: int,
    now: float,
    trusted_proxies: frozenset[str] = frozenset(),
    upgrade: bool = False,
    proto: bytes = b"http",
) -> RequestInfo:
    """Rewrite a request's headers for the backend.

    Drops hop-by-hop headers (and those the Connection header names), replaces the
    X-Forwarded-* family and X-Request-Start, keeps a well-formed client X-Request-Id.
    With `upgrade` the Upgrade header survives and `Connection: Upgrade` is sent, so a
    WebSocket handshake reaches the backend intact. `now` is unix time in seconds.
    """
    out: Headers = []
    named: set[bytes] = set()
    host: bytes | None = None
    client_fwd: list[bytes] = []
    client_id: bytes | None = None
    chunked = False
    length: int | None = None
    for name, value in headers:
        lname = name.lower()
        if lname in HOP_BY_HOP:
            if lname == b"connection":
                named |= _connection_tokens(value)
            elif upgrade and lname == b"upgrade":
                out.append((name, value))
            continue
        if lname in FORWARDING:
            if lname == b"x-forwarded-for":
                client_fwd.append(value)
            elif lname == b"x-request-id":
                client_id = value
            continue
        if lname == b"host":
            if host is not None:
                continue  # one Host is all a backend should ever see
            host = value
        elif lname == b"transfer-encoding":
            chunked = chunked or b"chunked" in value.lower()
        elif lname == b"content-length":
            length = int(value)
        out.append((name, value))
    named -= _PROTECTED
    if upgrade:
        named.discard(b"upgrade")  # `Connection: Upgrade` names it; here it must survive
    if named:
        out = [(n, v) for n, v in out if n.lower() not in named]
    if upgrade:
        out.append((b"Connection", b"Upgrade"))

    fwd = forwarded_for(
        b", ".join(client_fwd).decode("latin-1") if client_fwd else None, peer, trusted_proxies
    )
    request_id = (
        client_id.decode("ascii")
        if client_id is not None and valid_request_id(client_id)
        else uuid.uuid4().hex
    )
    out += (
        (b"X-Forwarded-For", fwd.encode("latin-1")),
        (b"X-Forwarded-Proto", proto),
        (b"X-Forwarded-Port", b"%d" % listen_port),
        (b"X-Request-Id", request_id.encode("ascii")),
        (b"X-Request-Start", b"t=%d" % int(now * 1000)),
    )
    return RequestInfo(
        headers=out,
        host=normalise_host(host.decode("latin-1") if host is not None else None),
        request_id=request_id,
        forwarded_for=fwd,
        chunked=chunked,
        content_length=length,
    )


class Framing(IntEnum):
    """How a response body travels to the client. The last two end with closing the
    client connection, which is why they compare greater than the others."""

    NONE = 0  # HEAD, 204, 304: no body whatever the headers say
    LENGTH = 1  # Content-Length, passed through
    CHUNKED = 2  # re-chunked as it arrives
    UNTIL_CLOSE = 3  # no length and not chunked: the backend's close ends the body
    DECHUNKED = 4  # a chunked body sent bare to an HTTP/1.0 client, which can't read chunks


@dataclass(slots=True)
class ResponseInfo:
    """A backend's response headers filtered for the client, and how its body is framed."""

    headers: Headers
    framing: Framing


def prepare_response(
    headers: Headers,
    *,
    status: int = 200,
    is_head: bool = False,
    http10: bool = False,
    upgrade: bool = False,
) -> ResponseInfo:
    """Drop hop-by-hop headers from a backend response (Transfer-Encoding stays, see
    HOP_BY_HOP) and decide its framing towards a client that sent a HEAD (`is_head`) or
    spoke HTTP/1.0 (`http10`). For a 101 answer to an upgrade, Upgrade stays and
    `Connection: Upgrade` is sent."""
    out: Headers = []
    named: set[bytes] = set()
    chunked = False
    length: int | None = None
    for name, value in headers:
        lname = name.lower()
        if lname in HOP_BY_HOP:
            if lname == b"connection":
                named |= _connection_tokens(value)
            elif upgrade and lname == b"upgrade":
                out.append((name, value))
            continue
        if lname == b"transfer-encoding":
            chunked = chunked or b"chunked" in value.lower()
        elif lname == b"content-length":
            length = int(value)
        out.append((name, value))
    named -= _PROTECTED
    if upgrade:
        named.discard(b"upgrade")
    if named:
        out = [(n, v) for n, v in out if n.lower() not in named]
    if upgrade:
        out.append((b"Connection", b"Upgrade"))

    if is_head or status in (204, 304) or status < 200:
        framing = Framing.NONE
    elif chunked and http10:
        framing = Framing.DECHUNKED
        out = [(n, v) for n, v in out if n.lower() != b"transfer-encoding"]
    elif chunked:
        framing = Framing.CHUNKED
    elif length is not None:
        framing = Framing.LENGTH
    else:
        framing = Framing.UNTIL_CLOSE
    return ResponseInfo(out, framing)


def request_head(method: bytes, target: bytes, headers: Headers) -> bytes:
    """The request line and headers as sent to a backend (always HTTP/1.1, to pool it)."""
    parts = [method, b" ", target, b" HTTP/1.1\r\n"]
    for name, value in headers:
        parts += (name, b": ", value, b"\r\n")
    parts.append(b"\r\n")
    return b"".join(parts)


def response_head(status: int, reason: bytes, headers: Headers, extra: bytes = b"") -> bytes:
    """The status line and headers for the client; `extra` is raw header lines to add."""
    parts = [b"HTTP/1.1 %d %s\r\n" % (status, reason)]
    for name, value in headers:
        parts += (name, b": ", value, b"\r\n")
    parts += (extra, b"\r\n")
    return b"".join(parts)


# --- errors -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RouterError:
    """A response the router makes itself. `code` is the Heroku router code (H14 …).

    Statuses: a backend that can't be reached (connect refused or timed out, H19) is 503,
    as on Heroku, rather than nginx's 502, because it is what clients meet while dynos
    restart and 503 tells them to retry; a backend that took the request and then broke
    the protocol (closed without an answer, sent garbage: H13) is 502; no first byte
    within the timeout (H12) is 504; no web dynos (H14) is 503; an unknown host is 404.
    """

    status: int
    code: str | None
    desc: str
    message: str  # HTML; `{host}` is replaced by the escaped host


UNKNOWN_HOST = RouterError(
    404, None, "No such app",
    "There is no app at <strong>{host}</strong>. Check the name, or create it with "
    "<code>paas apps:create</code>.",
)
NO_WEB_DYNOS = RouterError(
    503, "H14", "No web processes running",
    "<strong>{host}</strong> has no web dynos running. Scale them up with "
    "<code>paas ps:scale web=1</code>.",
)
# Connect failures answer 503 as Heroku does, not nginx's 502: they are what a client sees
# while dynos restart or a deploy settles, and 503 says "try again shortly".
CONNECT_FAILED = RouterError(
    503, "H19", "Backend connection failed",
    "<strong>{host}</strong> is not accepting connections right now. Try again shortly; "
    "if it persists, check <code>paas logs</code>.",
)
CONNECT_TIMEOUT = RouterError(
    503, "H19", "Backend connection timeout",
    "<strong>{host}</strong> did not accept a connection in time. Try again shortly.",
)
REQUEST_TIMEOUT = RouterError(
    504, "H12", "Request timeout",
    "<strong>{host}</strong> took too long to start answering.",
)
# A backend that took the request and hung up without a byte of answer misbehaved: 502.
NO_RESPONSE = RouterError(
    502, "H13", "Connection closed without response",
    "<strong>{host}</strong> closed the connection without answering.",
)
BAD_RESPONSE = RouterError(
    502, "H13", "Invalid response from backend",
    "<strong>{host}</strong> sent an answer that is not valid HTTP.",
)
BAD_REQUEST = RouterError(400, None, "Bad request", "The request is not valid HTTP.")
HEADERS_TOO_LARGE = RouterError(
    431, None, "Request headers too large", "The request's headers are too large."
)
# Never sent (the client is gone); it names the log line of an interrupted request.
CLIENT_INTERRUPTED = RouterError(499, "H27", "Client Request Interrupted", "")

_PAGE = (
    '<!doctype html>\n<html><head><meta charset="utf-8"><title>{title}</title></head>\n'
    "<body><h1>{title}</h1><p>{message}</p></body></html>\n"
)


def error_page(error: RouterError, host: str) -> bytes:
    """The HTML body for `error`; `host` is escaped, it is whatever the client sent."""
    title = f"{error.status} {HTTPStatus(error.status).phrase}"
    message = error.message.replace("{host}", html.escape(host or "this address"))
    return _PAGE.format(title=title, message=message).encode()


def error_response(error: RouterError, host: str, *, close: bool, request_id: str = "") -> bytes:
    """A complete HTTP response carrying `error_page`."""
    body = error_page(error, host)
    headers: Headers = [
        (b"Content-Type", b"text/html; charset=utf-8"),
        (b"Content-Length", b"%d" % len(body)),
        (b"Cache-Control", b"no-store"),
    ]
    if request_id:
        headers.append((b"X-Request-Id", request_id.encode("ascii")))
    if close:
        headers.append((b"Connection", b"close"))
    reason = HTTPStatus(error.status).phrase.encode()
    return response_head(error.status, reason, headers) + body


HEALTH_PATH = b"/api/health"
_WEB_DOWN = (
    b'{"status": "degraded", "components": {"web": "down"}, '
    b'"message": "down: web (the router cannot reach the web process)"}\n'
)


def web_down_health_response(*, close: bool, request_id: str = "") -> bytes:
    """`GET /api/health` while the platform's web process cannot answer it: the router
    names the component itself, so a health check never gets an HTML page instead."""
    headers: Headers = [
        (b"Content-Type", b"application/json"),
        (b"Content-Length", b"%d" % len(_WEB_DOWN)),
        (b"Cache-Control", b"no-store"),
    ]
    if request_id:
        headers.append((b"X-Request-Id", request_id.encode("ascii")))
    if close:
        headers.append((b"Connection", b"close"))
    return response_head(503, b"Service Unavailable", headers) + _WEB_DOWN


# --- the per-request log line -----------------------------------------------------------


def _quote(value: str) -> str:
    # The path is whatever the client sent: keep the line one line and its quotes balanced.
    if value.isprintable() and '"' not in value and "\\" not in value:
        return value
    return value.encode("unicode_escape").decode("ascii").replace('"', '\\"')


def log_line(
    *,
    method: str,
    path: str,
    host: str,
    request_id: str,
    fwd: str,
    dyno: str,
    connect_ms: int,
    service_ms: int,
    status: int,
    bytes_sent: int,
    error: RouterError | None = None,
    protocol: str = "http",
) -> str:
    """The Heroku-style router line for one request, as it goes into the app's log."""
    if error is None:
        head = "at=info"
    elif error.code:
        head = f'at=error code={error.code} desc="{error.desc}"'
    else:
        head = f'at=error desc="{error.desc}"'
    return (
        f'{head} method={method} path="{_quote(path)}" host={_quote(host)} '
        f'request_id={request_id} fwd="{_quote(fwd)}" dyno={dyno} connect={connect_ms}ms '
        f"service={service_ms}ms status={status} bytes={bytes_sent} protocol={protocol}"
    )
