"""The common exchange read in one step, without a parser callback per header.

Most requests are a small head alone in one read: no body, no framing headers, nothing
the router has to think about. Most answers are a small head with a Content-Length body,
all in one read. For those, a strict regular expression checks the whole head at once, one
more finds the lines of the headers the router acts on, and the head is passed on as it
came, with the router's lines added (or its hop-by-hop lines cut out).

Anything else returns None and takes the general path (httptools and `router.core`),
which knows every rule. So the grammar accepted here is deliberately narrower than
llhttp's: the common methods, origin-form targets of plain characters, HTTP/1.1 only, at
most MAX_QUICK_HEAD bytes of head, visible ASCII in values, CRLF line ends, and no header
whose handling needs a decision (`Content-Length` or `Transfer-Encoding` on a request,
`Upgrade`, `X-Forwarded-For`, a client's `X-Request-Id`, a `Connection` other than
keep-alive or close, ...). A request that could smuggle anything never matches, and what
does match is read as the general path would read it. Pure functions over bytes, like
`router.core`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from router import core

#: The largest head read here: the request-line limit, so no limit can be crossed.
MAX_QUICK_HEAD = 8 * 1024
#: No more header lines than the general path allows (router.proxy.MAX_HEADERS).
MAX_QUICK_LINES = 100

_TOKEN = rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_FIELDS = rb"(?:" + _TOKEN + rb":[\t\x20-\x7e]*\r\n)*\r\n"
_REQUEST = re.compile(
    rb"(GET|HEAD|POST|PUT|DELETE|OPTIONS|PATCH) "  # methods llhttp knows, which it checks
    rb"(/[A-Za-z0-9\-._~:/?@!$&'()*+,;=%]*) HTTP/1\.1\r\n" + _FIELDS
)
_RESPONSE = re.compile(rb"HTTP/1\.1 ([2-5][0-9][0-9]) ([\t\x20-\x7e]*)\r\n" + _FIELDS)


def _ruled(names: frozenset[bytes]) -> re.Pattern[bytes]:
    """A search, in a lowercased head, for the lines of headers named in `names`: the name
    (group 1) and the value without its surrounding whitespace (group 2); a match spans
    the LF before the line through its CR (the LF after it may start the next match)."""
    alternatives = b"|".join(re.escape(name) for name in sorted(names))
    return re.compile(rb"\n(" + alternatives + rb"):[ \t]*([^\r]*?)[ \t]*\r")


# The lines the general path would act on, found in one pass over a lowercased head.
_REQUEST_RULED = _ruled(core.RULED_REQUEST_HEADERS)
_RESPONSE_RULED = _ruled(core.RULED_RESPONSE_HEADERS)
_KEEP_ALIVE, _CLOSE = b"keep-alive", b"close"
_VIA_LINE = b"Via: " + core.VIA + b"\r\n"
_STAMPS = b"%s\r\nX-Request-Start: t=%d\r\n" + _VIA_LINE + b"\r\n"  # after X-Request-Id:


@dataclass(slots=True)
class QuickRequest:
    """A bodiless request as it goes to the backend."""

    method: bytes
    target: bytes
    host: str  # normalised
    request_id: str
    keep_alive: bool
    head: bytes  # request line and headers, rewritten for the backend


@dataclass(slots=True)
class QuickResponse:
    """A whole response with a Content-Length body."""

    status: int
    keep_alive: bool
    head: bytes  # status line and kept headers with Via, without the blank line
    body_start: int  # where the body starts in the data read


_FORWARDING: dict[tuple[str, int, bytes], bytes] = {}


def _forwarding(peer: str, listen_port: int, proto: bytes) -> bytes:
    """The X-Forwarded-* lines (and X-Request-Id's name) for a client, remembered."""
    key = (peer, listen_port, proto)
    lines = _FORWARDING.get(key)
    if lines is None:
        lines = (
            b"X-Forwarded-For: %s\r\nX-Forwarded-Proto: %s\r\nX-Forwarded-Port: %d\r\n"
            b"X-Request-Id: " % (peer.encode("latin-1"), proto, listen_port)
        )
        if len(_FORWARDING) >= 4096:
            _FORWARDING.clear()
        _FORWARDING[key] = lines
    return lines


def read_request(
    data: bytes, *, peer: str, listen_port: int, now: float, proto: bytes = b"http"
) -> QuickRequest | None:
    """`data` read as exactly one bodiless request head, rewritten as
    `core.prepare_request` would (X-Forwarded-*, a new X-Request-Id, X-Request-Start, Via;
    Connection dropped); None when it is anything else. `now` is unix time in seconds."""
    if len(data) > MAX_QUICK_HEAD or data.count(b"\n") > MAX_QUICK_LINES + 2:
        return None
    match = _REQUEST.fullmatch(data)
    if match is None:
        return None
    host: bytes | None = None
    keep_alive = True
    cut: tuple[int, int] | None = None  # the Connection line, which does not go on
    for found in _REQUEST_RULED.finditer(data.lower()):
        name = found.group(1)
        if name == b"host" and host is None:
            host = found.group(2)  # lowercased, as normalising it would anyway
        elif name == b"connection" and cut is None:
            value = found.group(2)
            if value == _CLOSE:
                keep_alive = False
            elif value != _KEEP_ALIVE:
                return None  # a list of names to drop, or an upgrade
            cut = found.span()
        else:
            return None  # framing, forwarding, upgrades, a second Host: the long way
    if host is None:
        return None
    request_id = core.new_request_id()
    added = _forwarding(peer, listen_port, proto) + _STAMPS % (
        request_id.encode("ascii"), int(now * 1000))
    if cut is None:
        head = data[:-2] + added
    else:
        head = data[:cut[0] + 1] + data[cut[1] + 1:-2] + added
    return QuickRequest(match.group(1), match.group(2), core.normalised_host(host),
                        request_id, keep_alive, head)


def read_response(data: bytes) -> QuickResponse | None:
    """`data` read as exactly one whole response with a Content-Length body (a status that
    has a body: 2xx-5xx but 204 and 304), its head rewritten as `core.prepare_response`
    would (hop-by-hop lines dropped, Via added); None when it is anything else, or only
    part of one."""
    end = data.find(b"\r\n\r\n", 0, MAX_QUICK_HEAD)
    if end == -1:
        return None
    end += 4
    match = _RESPONSE.fullmatch(data, 0, end)
    if match is None or data.count(b"\n", 0, end) > MAX_QUICK_LINES + 2:
        return None
    status = int(match.group(1))
    if status == 204 or status == 304:
        return None
    length: bytes | None = None
    keep_alive = True
    head, at = b"", 0  # the head without the hop-by-hop lines, and where it is up to
    for found in _RESPONSE_RULED.finditer(data[:end].lower()):
        name = found.group(1)
        if name == b"content-length" and length is None:
            length = found.group(2)
            continue
        if name == b"connection":
            value = found.group(2)
            if value == _CLOSE:
                keep_alive = False
            elif value != _KEEP_ALIVE:
                return None  # a list of names to drop, an upgrade
        elif name != b"keep-alive":
            return None  # chunked, a second length, an upgrade...
        start, stop = found.span()
        head += data[at:start + 1]
        at = stop + 1
    if length is None or not length.isdigit() or len(data) - end != int(length):
        return None  # no length, or only part of the body is here, or more than it
    return QuickResponse(status, keep_alive, head + data[at:end - 2] + _VIA_LINE, end)
