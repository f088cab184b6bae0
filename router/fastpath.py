"""The common exchange read in one step, without a parser callback per header.

Most requests are a small head alone in one read: no body, no framing headers, nothing
the router has to think about. Most answers are a small head with a Content-Length body,
all in one read. For those, a strict regular expression checks the whole head at once, one
more lists its header names, and the head is passed on as it came, with the router's lines
added (or its hop-by-hop lines cut out).

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


#: Every header name in a head, lowercased (from the lowercased head).
_NAME = re.compile(rb"\n([!#$%&'*+\-.^_`|~0-9a-z]+):")
# The names the general path acts on that this one leaves to it.
_REQUEST_OTHERS = core.RULED_REQUEST_HEADERS - {b"host", b"connection"}
_RESPONSE_OTHERS = core.RULED_RESPONSE_HEADERS - {b"content-length", b"connection", b"keep-alive"}
_KEEP_ALIVE, _CLOSE = b"keep-alive", b"close"
_VIA_LINE = b"Via: " + core.VIA + b"\r\n"
_STAMPS = b"%s\r\nX-Request-Start: t=%d\r\n" + _VIA_LINE + b"\r\n"  # after X-Request-Id:


def _line(data: bytes, lowered: bytes, name: bytes) -> tuple[int, int, bytes]:
    """Where the header line `name` (lowercase, there once) starts and ends (after its
    CRLF) in `data`, and its value without the surrounding whitespace."""
    start = lowered.find(b"\n" + name + b":") + 1
    stop = data.index(b"\r", start)
    return start, stop + 2, data[start + len(name) + 1:stop].strip()


@dataclass(slots=True)
class QuickRequest:
    """A bodiless request as it goes to the backend."""

    method: bytes
    target: bytes
    host: str  # normalised
    request_id: str
    forwarded_for: str
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
    if len(data) > MAX_QUICK_HEAD:
        return None
    match = _REQUEST.fullmatch(data)
    if match is None:
        return None
    lowered = data.lower()
    names = _NAME.findall(lowered)
    if (len(names) > MAX_QUICK_LINES or names.count(b"host") != 1
            or not _REQUEST_OTHERS.isdisjoint(names)):
        return None  # framing, forwarding, upgrades, no Host or two: the long way
    request_id = core.new_request_id()
    added = _forwarding(peer, listen_port, proto) + _STAMPS % (
        request_id.encode("ascii"), int(now * 1000))
    keep_alive = True
    connection = names.count(b"connection")
    if connection == 0:
        head = data[:-2] + added
    elif connection == 1:
        start, stop, value = _line(data, lowered, b"connection")
        value = value.lower()
        if value == _CLOSE:
            keep_alive = False
        elif value != _KEEP_ALIVE:
            return None  # a list of names to drop, or an upgrade
        head = data[:start] + data[stop:-2] + added
    else:
        return None
    return QuickRequest(
        match.group(1), match.group(2), core.normalised_host(_line(data, lowered, b"host")[2]),
        request_id, peer, keep_alive, head,
    )


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
    if match is None:
        return None
    status = int(match.group(1))
    lowered = data[:end].lower()
    names = _NAME.findall(lowered)
    if (status == 204 or status == 304 or len(names) > MAX_QUICK_LINES
            or names.count(b"content-length") != 1 or not _RESPONSE_OTHERS.isdisjoint(names)):
        return None  # chunked, upgrades, no length or two...
    length = _line(data, lowered, b"content-length")[2]
    if not length.isdigit() or len(data) - end != int(length):
        return None  # only part of the body is here, or more than the body
    cuts = []
    keep_alive = True
    connection = names.count(b"connection")
    if connection == 1:
        start, stop, value = _line(data, lowered, b"connection")
        value = value.lower()
        if value == _CLOSE:
            keep_alive = False
        elif value != _KEEP_ALIVE:
            return None  # a list of names to drop
        cuts.append((start, stop))
    elif connection:
        return None
    hint = names.count(b"keep-alive")
    if hint == 1:
        start, stop, _ = _line(data, lowered, b"keep-alive")
        cuts.append((start, stop))
    elif hint:
        return None
    if not cuts:
        head = data[:end - 2]
    else:
        cuts.sort()
        pieces, at = [], 0
        for start, stop in cuts:
            pieces.append(data[at:start])
            at = stop
        pieces.append(data[at:end - 2])
        head = b"".join(pieces)
    return QuickResponse(status, keep_alive, head + _VIA_LINE, end)
