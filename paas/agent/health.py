"""Checking dynos: app.json health checks, and the connections a dyno still serves.

A startup check gates a dyno's first route; liveness and readiness checks run
periodically while it is up (see `Periodic`). Without any check, a web dyno is
healthy once it answers an HTTP request on `$PORT` (`first_answer`): accepting a
connection is not enough, since servers bind before their workers load the app.

`open_connections` counts the established connections to a port: a dyno taken
out of the route table keeps only the connections of requests still in flight
(the router closes the others), so the agent waits for that count to reach
zero before it sends SIGTERM.
"""

from __future__ import annotations

import http.client
import socket
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from paas.appjson import HealthCheck

#: How much of a body a content check reads.
BODY_LIMIT = 1024 * 1024
#: The route table reaches every router within 100 ms; wait this long before trusting
#: that no new request is on its way to a dyno just taken out of it.
ROUTE_SETTLE = 0.25
_ESTABLISHED = "01"


def accepts_connections(port: int, timeout: float = 0.25) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout):
            return True
    except OSError:
        return False


def probe(check: HealthCheck, port: int, host: str) -> str | None:
    """None when `check` passes against the dyno on `port`, else what went wrong."""
    port = check.port or port
    if check.path is None:
        if accepts_connections(port, check.timeout):
            return None
        return f"nothing accepts connections on port {port}"
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=check.timeout)
    try:
        conn.request("GET", check.path, headers={
            "Host": host, "User-Agent": "paas-healthcheck", "X-Forwarded-Proto": "http",
        })
        response = conn.getresponse()
        body = response.read(BODY_LIMIT)
    except (OSError, http.client.HTTPException) as exc:
        return f"GET {check.path}: {exc or type(exc).__name__}"
    finally:
        conn.close()
    if not 200 <= response.status < 400:
        return f"GET {check.path} answered {response.status}"
    if check.content is not None and check.content.encode() not in body:
        return f"GET {check.path} answered without {check.content!r} in its body"
    return None


def first_answer(port: int, host: str, deadline: float,
                 alive: Callable[[], bool]) -> bool:
    """Whether the server on `port` answers a GET / with any HTTP status before the
    wall-clock `deadline` (False as soon as `alive()` is false)."""
    while alive():
        conn = http.client.HTTPConnection("127.0.0.1", port,
                                          timeout=max(0.5, min(5.0, deadline - time.time())))
        try:
            conn.request("GET", "/", headers={"Host": host, "User-Agent": "paas-healthcheck"})
            conn.getresponse().read(BODY_LIMIT)
            return True
        except (OSError, http.client.HTTPException):
            if time.time() >= deadline:
                return False
            time.sleep(0.05)
        finally:
            conn.close()
    return False


def run_startup(
    checks: list[HealthCheck],
    port: int,
    host: str,
    up_since: float,
    *,
    alive: Callable[[], bool],
    note: Callable[[str], None],
    sleep: Callable[[float], None] = time.sleep,
) -> str | None:
    """Run the startup checks in order, each up to its attempts; the first failure, or
    None when all pass. Stops early (with a failure) once `alive()` is false."""
    for check in checks:
        delay = check.initial_delay
        if check.uptime:  # the dyno must have stayed up this long before the check counts
            delay = max(delay, up_since + check.uptime - time.time())
        if delay > 0:
            sleep(delay)
        failure: str | None = None
        for attempt in range(1, check.attempts + 1):
            if not alive():
                return f"{check.label}: the dyno exited"
            failure = probe(check, port, host)
            if failure is None:
                break
            note(f"{check.label} failed (attempt {attempt} of {check.attempts}): {failure}")
            if attempt < check.attempts:
                sleep(check.wait)
        if failure is not None:
            return f"failed its {check.label}: {failure}"
    return None


@dataclass
class Periodic:
    """The schedule and failure counts of one dyno's liveness and readiness checks."""

    checks: list[HealthCheck]
    started: float
    due: dict[int, float] = field(default_factory=dict)
    failures: dict[int, int] = field(default_factory=dict)

    def due_now(self, now: float) -> list[tuple[int, HealthCheck]]:
        found = []
        for i, check in enumerate(self.checks):
            if now >= self.due.get(i, self.started + check.initial_delay):
                found.append((i, check))
        return found

    def record(self, i: int, failure: str | None, now: float) -> bool:
        """Note a result; True when the check has now failed `attempts` times in a row."""
        check = self.checks[i]
        self.due[i] = now + max(check.wait, 1.0)
        if failure is None:
            self.failures[i] = 0
            return False
        self.failures[i] = self.failures.get(i, 0) + 1
        return self.failures[i] >= check.attempts

    def failing(self, kind: str) -> bool:
        """Whether a check of `kind` has reached its attempts and not passed since."""
        return any(
            self.failures.get(i, 0) >= c.attempts for i, c in enumerate(self.checks)
            if c.type == kind
        )


def open_connections(port: int, proc: Path | None = None) -> int:
    """Established TCP connections (IPv4 and IPv6) whose local port is `port`.

    Asked of the kernel over NETLINK_SOCK_DIAG (what `ss` uses) for established sockets
    only: /proc/net/tcp lists every socket, and a dyno that closes a connection per
    request leaves tens of thousands in TIME_WAIT, which the drain loop would parse
    twenty times a second. `proc` (a folder with tcp and tcp6 files) reads those
    instead, as a kernel without sock_diag needs."""
    if proc is None:
        try:
            return sum(_established_from(family, port)
                       for family in (socket.AF_INET, socket.AF_INET6))
        except OSError:
            proc = Path("/proc/net")
    count = 0
    wanted = f"{port:04X}"
    for name in ("tcp", "tcp6"):
        try:
            lines = (proc / name).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) > 3 and fields[3] == _ESTABLISHED \
                    and fields[1].rpartition(":")[2] == wanted:
                count += 1
    return count


_NETLINK_SOCK_DIAG, _SOCK_DIAG_BY_FAMILY = 4, 20
_NLM_F_REQUEST, _NLM_F_DUMP = 0x1, 0x300
_NLMSG_ERROR, _NLMSG_DONE = 2, 3
_TCP_ESTABLISHED = 1
_NLMSG_HEADER = struct.Struct("=IHHII")  # length, type, flags, sequence, port id


def _established_from(family: int, port: int) -> int:
    """Established TCP sockets of `family` whose local port is `port`, by sock_diag."""
    # struct inet_diag_req_v2: family, protocol, ext, pad, states; then an empty
    # inet_diag_sockid (ports, addresses, interface) with the "no cookie" cookie.
    request = (struct.pack("=BBBBI", family, socket.IPPROTO_TCP, 0, 0, 1 << _TCP_ESTABLISHED)
               + bytes(4 + 32 + 4) + struct.pack("=II", 0xFFFFFFFF, 0xFFFFFFFF))
    header = _NLMSG_HEADER.pack(_NLMSG_HEADER.size + len(request), _SOCK_DIAG_BY_FAMILY,
                                _NLM_F_REQUEST | _NLM_F_DUMP, 1, 0)
    count = 0
    with socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, _NETLINK_SOCK_DIAG) as sock:
        sock.settimeout(5.0)
        sock.sendto(header + request, (0, 0))
        while True:
            data = sock.recv(1 << 16)
            offset = 0
            while offset + _NLMSG_HEADER.size <= len(data):
                length, kind = _NLMSG_HEADER.unpack_from(data, offset)[:2]
                if kind == _NLMSG_DONE:
                    return count
                if kind == _NLMSG_ERROR or length < _NLMSG_HEADER.size:
                    raise OSError("sock_diag refused the request")
                # struct inet_diag_msg: family, state, timer, retrans, then the source
                # port in network order.
                if struct.unpack_from(">H", data, offset + _NLMSG_HEADER.size + 4)[0] == port:
                    count += 1
                offset += (length + 3) & ~3


def drain(port: int, deadline: float, sleep: Callable[[float], None] = time.sleep) -> bool:
    """Wait (until the monotonic `deadline`) for a dyno out of the route table to finish
    the requests it has; True when none is left."""
    sleep(ROUTE_SETTLE)
    while open_connections(port):
        if time.monotonic() >= deadline:
            return False
        sleep(0.1)  # each look costs the kernel a walk over every TCP socket of the host
    return True
