"""The router's pure core: host lookup, balancing, header rules, error decisions, log lines.

Plain functions and classes over plain data, with no I/O, so every rule is tested without
a socket; `router.server` only moves bytes and asks these what to do. Header names and
values stay `bytes` end to end (HTTP headers are latin-1) to spare a decode per header.
"""

from __future__ import annotations

import html
import ipaddress
import os
import re
from collections import Counter
from collections.abc import Container, Iterable, Mapping
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


#: The longest name (with a port) the caches below keep: DNS names stop at 253, and a
#: client must not be able to fill memory with long made-up ones.
_CACHED_NAME = 260
_HOSTS_SEEN: dict[bytes, str] = {}


def normalised_host(raw: bytes) -> str:
    """normalise_host of a Host header's bytes, remembered: clients repeat themselves."""
    host = _HOSTS_SEEN.get(raw)
    if host is None:
        host = normalise_host(raw.decode("latin-1"))
        if len(raw) <= _CACHED_NAME:
            if len(_HOSTS_SEEN) >= 4096:
                _HOSTS_SEEN.clear()
            _HOSTS_SEEN[raw] = host
    return host


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
    """Where a request for the normalised `host` goes (see `_find`), remembered by the
    table until its routes change: most requests name a host seen a moment ago."""
    target = table.remembered(host, domain)
    if target is None:
        target = _find(host, domain, table)
        table.remember(host, domain, target)
    return target


def _find(host: str, domain: str, table: RouteTable) -> Target:
    """The target of a request for the normalised `host` on a platform serving `domain`.

    A custom domain of an app comes first, then `<app>.<domain>` when the table knows the
    app, then a wildcard domain (`*.example.com` for `www.example.com`, one label deep);
    `<domain>`, `localhost`, an IP literal or no Host at all is the platform; anything else
    (including `a.b.<domain>`) is unknown.
    """
    if not host or host == domain or host in LOCAL_NAMES:
        return PLATFORM
    app = table.app_for_domain(host)
    if app is None:
        app = app_name(host, domain)
        if app is not None and app not in table:
            app = None
    if app is None:
        app = table.app_for_wildcard(host)
    if app is not None:
        return Target(Kind.APP, app, table.get(app))
    return PLATFORM if is_ip_host(host) else UNKNOWN


def app_name(host: str, domain: str) -> str | None:
    """The app a normalised `<app>.<domain>` host names, whether or not it exists."""
    cut = len(host) - len(domain) - 1
    if cut > 0 and host[cut] == "." and host.endswith(domain) and "." not in host[:cut]:
        return host[:cut]
    return None


# --- the route table and balancing ------------------------------------------------------

#: Seconds a backend that refused a connection is left out of balancing.
DOWN_SECONDS = 5.0


class RouteTable:
    """The routes this router knows, by app and by custom domain, and the live load of
    each backend address (requests outstanding, refused lately)."""

    __slots__ = ("_routes", "_turns", "_addrs", "_domains", "_wildcards", "_outstanding",
                 "_down_until", "_targets")

    def __init__(self, routes: Iterable[Route] = ()) -> None:
        self._routes: dict[str, Route] = {}
        # Where the balancing starts among equally loaded backends, per app: a counter
        # rather than a rotated list, so a route update needs no reconciling.
        self._turns: dict[str, int] = {}
        # How many routes name each backend address, so a connection to a dyno that has
        # left every route is closed after its request instead of pooled (the agent waits
        # for those connections to end before it stops the dyno).
        self._addrs: Counter[str] = Counter()
        self._domains: dict[str, str] = {}  # custom domain -> app
        self._wildcards: dict[str, str] = {}  # "example.com" for "*.example.com" -> app
        # Per address, not per route: a request in flight on a dyno counts whatever route
        # update happened since it started.
        self._outstanding: dict[str, int] = {}  # a plain dict: Counter's extras cost
        self._down_until: dict[str, float] = {}
        # lookup's answers by (host, domain), until the next change of any route
        self._targets: dict[tuple[str, str], Target] = {}
        self.replace_all({r.app: r for r in routes})

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

    def app_for_domain(self, host: str) -> str | None:
        return self._domains.get(host) if self._domains else None

    def app_for_wildcard(self, host: str) -> str | None:
        if not self._wildcards:
            return None
        _, dot, parent = host.partition(".")
        return self._wildcards.get(parent) if dot else None

    def remembered(self, host: str, domain: str) -> Target | None:
        """What `lookup` found for `host` since the routes last changed, if anything."""
        return self._targets.get((host, domain))

    def remember(self, host: str, domain: str, target: Target) -> None:
        if len(host) > _CACHED_NAME:
            return
        if len(self._targets) >= 10_000:  # many names (a scan): start over, stay small
            self._targets.clear()
        self._targets[(host, domain)] = target

    def update(self, route: Route) -> None:
        self._targets.clear()
        self._forget(self._routes.get(route.app))
        self._routes[route.app] = route
        self._learn(route)

    def remove(self, app: str) -> None:
        self._targets.clear()
        self._forget(self._routes.pop(app, None))
        self._turns.pop(app, None)

    def replace_all(self, routes: Mapping[str, Route]) -> None:
        """Take a full snapshot; counters of apps that are still there carry on."""
        self._targets.clear()
        self._routes = dict(routes)
        self._turns = {app: n for app, n in self._turns.items() if app in self._routes}
        self._addrs = Counter()
        self._domains, self._wildcards = {}, {}
        # Sorted, so when two apps claim one domain (the store forbids it; a stale copy
        # might not) every router picks the same one.
        for app in sorted(self._routes):
            self._learn(self._routes[app])

    def _learn(self, route: Route) -> None:
        self._addrs.update(b.addr for b in route.backends)
        for name in route.domains:
            if name.startswith("*."):
                self._wildcards.setdefault(name[2:], route.app)
            else:
                self._domains.setdefault(name, route.app)

    def _forget(self, route: Route | None) -> None:
        if route is None:
            return
        self._addrs.subtract(b.addr for b in route.backends)
        for backend in route.backends:
            if self._addrs.get(backend.addr, 0) <= 0:
                self._addrs.pop(backend.addr, None)
        for name in route.domains:
            index = self._wildcards if name.startswith("*.") else self._domains
            key = name[2:] if name.startswith("*.") else name
            if index.get(key) == route.app:
                del index[key]

    # --- balancing
    def pick(self, app: str, now: float = 0.0, avoid: str | None = None) -> Backend | None:
        """The app's backend with the fewest requests outstanding, leaving out those
        marked down (unless all are) and `avoid`; ties go round robin. None: no backends."""
        route = self._routes.get(app)
        if route is None or not route.backends:
            return None
        backends = route.backends
        if len(backends) == 1:  # most apps run one web dyno
            return None if backends[0].addr == avoid else backends[0]
        turn = self._turns.get(app, 0)
        self._turns[app] = turn + 1
        count = len(backends)
        down = self._down_until
        best: Backend | None = None
        best_load = 0
        for i in range(count):
            backend = backends[(turn + i) % count]
            if backend.addr == avoid:
                continue
            load = self._outstanding.get(backend.addr, 0)
            if down and down.get(backend.addr, 0.0) > now:
                load += 1_000_000  # only when every other one is down too
            if best is None or load < best_load:
                best, best_load = backend, load
        return best

    def begin(self, addr: str) -> None:
        """A request is being sent to `addr`."""
        outstanding = self._outstanding
        outstanding[addr] = outstanding.get(addr, 0) + 1

    def end(self, addr: str) -> None:
        """A request `begin` counted is over (answered, failed or abandoned)."""
        outstanding = self._outstanding
        left = outstanding.get(addr, 0) - 1
        if left > 0:
            outstanding[addr] = left
        else:
            outstanding.pop(addr, None)

    def outstanding(self, addr: str) -> int:
        return self._outstanding.get(addr, 0)

    def mark_down(self, addr: str, now: float) -> None:
        """`addr` refused a connection: leave it out of balancing for DOWN_SECONDS."""
        self._down_until[addr] = now + DOWN_SECONDS
        if len(self._down_until) > 1024:  # forget the ones long past
            self._down_until = {a: t for a, t in self._down_until.items() if t > now}

    def is_down(self, addr: str, now: float) -> bool:
        return self._down_until.get(addr, 0.0) > now


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

# What prepare_request and prepare_response do with a header, by lowercased name, so each
# header costs one lookup; a name in neither table passes as it is.
_DROP, _CONNECTION, _UPGRADE, _FORWARDED_FOR, _ID, _HOST, _TRANSFER_ENCODING, _LENGTH = range(8)
_RESPONSE_HEADERS = {
    **dict.fromkeys(HOP_BY_HOP, _DROP), b"connection": _CONNECTION, b"upgrade": _UPGRADE,
    b"transfer-encoding": _TRANSFER_ENCODING, b"content-length": _LENGTH,
}
_REQUEST_HEADERS = {
    **_RESPONSE_HEADERS, **dict.fromkeys(FORWARDING, _DROP),
    b"x-forwarded-for": _FORWARDED_FOR, b"x-request-id": _ID, b"host": _HOST,
}
#: The header names prepare_request and prepare_response act on (all others pass as
#: they are), for router.fastpath, which leaves any head naming one of them but the
#: simplest to these two.
RULED_REQUEST_HEADERS = frozenset(_REQUEST_HEADERS)
RULED_RESPONSE_HEADERS = frozenset(_RESPONSE_HEADERS)


#: What the router adds to Via on requests and responses (RFC 9110 7.6.3).
VIA = b"1.1 paas"


@dataclass(slots=True)
class RequestInfo:
    """A client's request headers rewritten for the backend, and what the shell needs.

    `problem` is set when the request must not be forwarded at all (an ambiguous frame or
    Host: request smuggling, or a broken HTTP/1.1 request); the client then gets it and
    the connection is closed."""

    headers: Headers
    host: str  # normalised
    request_id: str
    forwarded_for: str
    chunked: bool
    content_length: int | None
    problem: RouterError | None = None

    @property
    def has_body(self) -> bool:
        return self.chunked or bool(self.content_length)


def valid_request_id(value: bytes) -> bool:
    return _REQUEST_ID.fullmatch(value) is not None


_RANDOM = bytearray()
os.register_at_fork(after_in_child=_RANDOM.clear)  # each router worker draws its own


def new_request_id() -> str:
    """A fresh request id: 32 random hex digits, like a UUID's hex without its version
    bits. Every request without an id of its own makes one, so the randomness is read
    from the kernel 256 ids at a time rather than a system call each."""
    if not _RANDOM:
        _RANDOM.extend(os.urandom(16 * 256))
    piece = _RANDOM[-16:]
    del _RANDOM[-16:]
    return piece.hex()


class TrustedProxies:
    """The peers whose X-Forwarded-For is believed: addresses and networks in CIDR form
    (`10.0.0.7`, `10.1.0.0/16`, `fd00::/8`). An IPv4 peer seen on a dual-stack socket as
    `::ffff:a.b.c.d` matches its IPv4 form."""

    def __init__(self, entries: Iterable[str] = ()) -> None:
        # ValueError for a malformed entry; paas.config.router_settings has said which.
        self.networks = [ipaddress.ip_network(entry.strip(), strict=False)
                         for entry in entries]
        self._seen: dict[str, bool] = {}  # peer -> trusted; peers repeat, parsing does not

    def __bool__(self) -> bool:
        return bool(self.networks)

    def __contains__(self, peer: object) -> bool:
        if not self.networks or not isinstance(peer, str):
            return False
        known = self._seen.get(peer)
        if known is None:
            if len(self._seen) > 4096:
                self._seen.clear()
            try:
                address = ipaddress.ip_address(peer)
            except ValueError:
                known = False
            else:
                if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
                    address = address.ipv4_mapped
                known = any(address in network for network in self.networks)
            self._seen[peer] = known
        return known


def forwarded_for(client_value: str | None, peer: str, trusted_proxies: Container[str]) -> str:
    """The X-Forwarded-For to send: the peer alone, unless the peer is a trusted proxy,
    whose claim about the client is kept in front of it."""
    if client_value and peer in trusted_proxies:
        return f"{client_value.strip()}, {peer}"
    return peer


_TOKENS_SEEN: dict[bytes, frozenset[bytes]] = {}


def _connection_tokens(value: bytes) -> frozenset[bytes]:
    """The header names a Connection header lists that must go besides the hop-by-hop
    ones (which go anyway) and never a protected one. Remembered by value: nearly every
    peer sends `keep-alive`, `close` or `Upgrade`."""
    tokens = _TOKENS_SEEN.get(value)
    if tokens is None:
        tokens = frozenset(
            t.strip().lower() for t in value.split(b",") if t.strip()
        ) - HOP_BY_HOP - _PROTECTED
        if len(value) <= 64:  # the usual short values; a client may make up long ones
            if len(_TOKENS_SEEN) >= 256:
                _TOKENS_SEEN.clear()
            _TOKENS_SEEN[value] = tokens
    return tokens


def prepare_request(
    headers: Headers,
    *,
    peer: str,
    listen_port: int,
    now: float,
    trusted_proxies: Container[str] = frozenset(),
    upgrade: bool = False,
    proto: bytes = b"http",
    http10: bool = False,
) -> RequestInfo:
    """Rewrite a request's headers for the backend, and say whether it may go at all.

    Drops hop-by-hop headers (and those the Connection header names), replaces the
    X-Forwarded-* family and X-Request-Start, keeps a well-formed client X-Request-Id,
    appends to Via. With `upgrade` the Upgrade header survives and `Connection: Upgrade`
    is sent, so a WebSocket handshake reaches the backend intact. `now` is unix time in
    seconds.

    The parser (llhttp) already refuses Content-Length with Transfer-Encoding, several
    Content-Lengths, bare LF and obs-fold; on top of that, a Transfer-Encoding other than
    exactly `chunked` (`identity, chunked` and friends), one on an HTTP/1.0 request, a
    second Host, or an HTTP/1.1 request without Host set `problem`, because a backend
    might read any of them differently from us.
    """
    out: Headers = []
    named: frozenset[bytes] = frozenset()
    host: bytes | None = None
    client_fwd: list[bytes] = []
    client_id: bytes | None = None
    chunked = False
    length: int | None = None
    problem: RouterError | None = None
    kinds = _REQUEST_HEADERS
    for name, value in headers:
        kind = kinds.get(name.lower())
        if kind is None:
            out.append((name, value))
        elif kind == _DROP:
            continue
        elif kind == _CONNECTION:
            named |= _connection_tokens(value)
        elif kind == _UPGRADE:
            if upgrade:
                out.append((name, value))
        elif kind == _FORWARDED_FOR:
            client_fwd.append(value)
        elif kind == _ID:
            client_id = value
        elif kind == _HOST:
            if host is not None:
                problem = AMBIGUOUS_REQUEST
                continue
            host = value
            out.append((name, value))
        elif kind == _TRANSFER_ENCODING:
            if chunked or value.strip().lower() != b"chunked" or http10:
                problem = AMBIGUOUS_REQUEST
            chunked = True
            out.append((name, value))
        else:  # _LENGTH
            if length is not None or not value.isdigit():
                problem = AMBIGUOUS_REQUEST
            else:
                length = int(value)
            out.append((name, value))
    if chunked and length is not None:
        problem = AMBIGUOUS_REQUEST
    if host is None and not http10:
        problem = problem or BAD_REQUEST
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
        else new_request_id()
    )
    out += (
        (b"X-Forwarded-For", fwd.encode("latin-1")),
        (b"X-Forwarded-Proto", proto),
        (b"X-Forwarded-Port", b"%d" % listen_port),
        (b"X-Request-Id", request_id.encode("ascii")),
        (b"X-Request-Start", b"t=%d" % int(now * 1000)),
        (b"Via", VIA),
    )
    return RequestInfo(
        headers=out,
        host=normalised_host(host) if host is not None else "",
        request_id=request_id,
        forwarded_for=fwd,
        chunked=chunked,
        content_length=length,
        problem=problem,
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
    named: frozenset[bytes] = frozenset()
    chunked = False
    length: int | None = None
    kinds = _RESPONSE_HEADERS
    for name, value in headers:
        kind = kinds.get(name.lower())
        if kind is None:
            out.append((name, value))
        elif kind == _DROP:
            continue
        elif kind == _CONNECTION:
            named |= _connection_tokens(value)
        elif kind == _UPGRADE:
            if upgrade:
                out.append((name, value))
        elif kind == _TRANSFER_ENCODING:
            chunked = chunked or b"chunked" in value.lower()
            out.append((name, value))
        else:  # _LENGTH
            length = int(value)
            out.append((name, value))
    if named:
        out = [(n, v) for n, v in out if n.lower() not in named]
    if upgrade:
        out.append((b"Connection", b"Upgrade"))
    out.append((b"Via", VIA))

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
APP_CRASHED = RouterError(
    503, "H10", "App crashed",
    "<strong>{host}</strong> has crashed. Its logs (<code>paas logs</code>) say why; "
    "<code>paas ps</code> shows its dynos.",
)
# The backend hung up in the middle of the answer, or answered before it had read the
# request's body: what reached the client is cut short.
SERVER_INTERRUPTED = RouterError(
    502, "H18", "Server Request Interrupted",
    "<strong>{host}</strong> closed the connection before the exchange was complete.",
)
MAINTENANCE = RouterError(
    503, "H80", "Maintenance mode",
    "<strong>{host}</strong> is down for maintenance. Please try again later.",
)
BAD_REQUEST = RouterError(400, None, "Bad request", "The request is not valid HTTP.")
AMBIGUOUS_REQUEST = RouterError(
    400, None, "Bad request",
    "The request's framing or Host is ambiguous (several Content-Length or Host headers, "
    "or an unusual Transfer-Encoding), so it is not forwarded.",
)
URI_TOO_LONG = RouterError(414, None, "Request line too long", "The request line is too long.")
HEADERS_TOO_LARGE = RouterError(
    431, None, "Request headers too large",
    "The request has too many headers, or they are too large.",
)
BODY_TOO_LARGE = RouterError(413, None, "Request body too large", "The request body is too large.")
HEADER_TIMEOUT = RouterError(
    408, None, "Request header timeout", "The request's headers did not arrive in time."
)
# The client stopped sending its request (its body, most often) for too long.
CLIENT_IDLE = RouterError(
    408, "H28", "Client Connection Idle", "The request did not arrive in time."
)
TOO_MANY_CONNECTIONS = RouterError(
    429, None, "Too many connections",
    "Too many connections from your address at once. Close some and try again.",
)
# Never sent (the client is gone); it names the log line of an interrupted request.
CLIENT_INTERRUPTED = RouterError(499, "H27", "Client Request Interrupted", "")

_PAGE = (
    '<!doctype html>\n<html><head><meta charset="utf-8"><title>{title}</title></head>\n'
    "<body><h1>{title}</h1><p>{message}</p></body></html>\n"
)


def error_page(error: RouterError, host: str) -> bytes:
    """The HTML body for `error`; `host` is escaped, it is whatever the client sent."""
    title = f"{error.status} {_phrase(error.status)}"
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
    return response_head(error.status, _phrase(error.status).encode(), headers) + body


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def redirect_response(host: str, target: bytes, *, https_port: int, method: bytes,
                      close: bool, request_id: str = "") -> bytes:
    """Send the client to the same URL over HTTPS: 301 for GET and HEAD, 308 otherwise
    (308 keeps the method and body; older clients know 301 best for plain page loads)."""
    port = "" if https_port == 443 else f":{https_port}"
    if not target.startswith(b"/"):
        target = b"/"  # an absolute-form or `*` target: send them to the front page
    location = f"https://{host}{port}".encode("latin-1") + target
    status, reason = (301, b"Moved Permanently") if method in (b"GET", b"HEAD") else (
        308, b"Permanent Redirect")
    headers: Headers = [(b"Location", location), (b"Content-Length", b"0"),
                        (b"Cache-Control", b"no-store")]
    if request_id:
        headers.append((b"X-Request-Id", request_id.encode("ascii")))
    if close:
        headers.append((b"Connection", b"close"))
    return response_head(status, reason, headers)


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
