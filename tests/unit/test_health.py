"""Health checks and connection counting against real sockets and HTTP servers."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from paas.agent import health
from paas.appjson import HealthCheck


class Handler(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        status, body = {"/ok": (200, b"all ok"), "/moved": (302, b""),
                        "/broken": (500, b"oops")}.get(self.path, (404, b"no"))
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        self.server.hosts.append(self.headers["Host"])  # type: ignore[attr-defined]


@pytest.fixture()
def server() -> Iterator[ThreadingHTTPServer]:
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    srv.hosts = []  # type: ignore[attr-defined]
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield srv
    srv.shutdown()
    srv.server_close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_http_checks_look_at_status_and_content(server: ThreadingHTTPServer) -> None:
    port = server.server_port
    assert health.probe(HealthCheck(path="/ok", content="ok"), port, "app.localhost") is None
    assert health.probe(HealthCheck(path="/moved"), port, "app.localhost") is None
    assert health.probe(HealthCheck(path="/broken"), port, "h") == "GET /broken answered 500"
    assert health.probe(HealthCheck(path="/ok", content="fine"), port, "h") == (
        "GET /ok answered without 'fine' in its body")
    assert server.hosts[0] == "app.localhost"  # type: ignore[attr-defined]


def test_tcp_checks_and_refused_connections(server: ThreadingHTTPServer) -> None:
    assert health.probe(HealthCheck(), server.server_port, "h") is None
    closed = free_port()
    assert "nothing accepts connections" in health.probe(HealthCheck(), closed, "h")
    failure = health.probe(HealthCheck(path="/ok", timeout=1), closed, "h")
    assert failure is not None and failure.startswith("GET /ok: ")


def test_startup_checks_retry_then_give_up_with_the_last_failure(
    server: ThreadingHTTPServer,
) -> None:
    notes: list[str] = []
    slept: list[float] = []
    failure = health.run_startup(
        [HealthCheck(path="/ok"), HealthCheck(name="api", path="/broken", attempts=3, wait=2)],
        server.server_port, "h", 0.0, alive=lambda: True, note=notes.append,
        sleep=slept.append,
    )
    assert failure == "failed its startup check 'api': GET /broken answered 500"
    assert len(notes) == 3 and notes[0].startswith("startup check 'api' failed (attempt 1 of 3)")
    assert slept == [2, 2]  # between attempts, not after the last


def test_startup_checks_stop_when_the_dyno_exits(server: ThreadingHTTPServer) -> None:
    failure = health.run_startup([HealthCheck(path="/broken")], server.server_port, "h", 0.0,
                                 alive=lambda: False, note=lambda _: None, sleep=lambda _: None)
    assert failure == "startup check 'GET /broken': the dyno exited"


def test_periodic_checks_count_failures_in_a_row() -> None:
    live = HealthCheck(type="liveness", attempts=2, wait=5, initial_delay=10)
    periodic = health.Periodic([live], started=100.0)
    assert periodic.due_now(105.0) == []
    assert periodic.due_now(110.0) == [(0, live)]
    assert periodic.record(0, "down", 110.0) is False
    assert periodic.due_now(112.0) == [] and periodic.due_now(115.0) == [(0, live)]
    assert periodic.record(0, None, 115.0) is False  # a pass resets the count
    assert periodic.record(0, "down", 120.0) is False
    assert periodic.record(0, "down", 125.0) is True
    assert periodic.failing("liveness") and not periodic.failing("readiness")


def test_open_connections_counts_established_ones_to_a_port(
    server: ThreadingHTTPServer,
) -> None:
    port = server.server_port
    assert health.open_connections(port) == 0
    with socket.create_connection(("127.0.0.1", port)), \
            socket.create_connection(("127.0.0.1", port)):
        assert health.open_connections(port) == 2
        # asked of the kernel (sock_diag), which agrees with /proc/net/tcp
        assert health._established_from(socket.AF_INET, port) == 2
        assert health.open_connections(port, proc=Path("/proc/net")) == 2
    # drain returns once they are gone, and gives up at the deadline while one is open
    assert health.drain(port, deadline=0.0, sleep=lambda _: None) is True
    with socket.create_connection(("127.0.0.1", port)):
        assert health.drain(port, deadline=0.0, sleep=lambda _: None) is False


def test_open_connections_reads_both_address_families(tmp_path: Path) -> None:
    header = "  sl  local_address rem_address   st\n"
    (tmp_path / "tcp").write_text(header
                                  + "0: 0100007F:1F90 0100007F:C000 01 x\n"  # established
                                  + "1: 0100007F:1F90 0100007F:C001 06 x\n"  # time wait
                                  + "2: 0100007F:0050 0100007F:1F90 01 x\n")  # outgoing
    (tmp_path / "tcp6").write_text(header + "0: 00000000000000000000000001000000:1F90 "
                                   "00000000000000000000000001000000:C002 01 x\n")
    assert health.open_connections(8080, proc=tmp_path) == 2
