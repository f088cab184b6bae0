"""The load generator of the end-to-end tests and bench scripts, against a real local
http.server: what it counts, what it calls a failure, keep-alive, its bound and pacing."""

from __future__ import annotations

import math
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from tests.e2e.traffic import Traffic, TrafficProcess, percentile

DEADLINE = 10.0  # generous: a deadline for waiting, never a measured expectation


class CountingServer(ThreadingHTTPServer):
    """Counts the connections it accepts; `answer` is what "/" says (a test may change it)."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.answer = "one"
        self.connections = 0
        self.hosts: Counter[str] = Counter()
        self.lock = threading.Lock()

    def process_request(self, request: Any, client_address: Any) -> None:
        with self.lock:
            self.connections += 1
        super().process_request(request, client_address)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive unless the client closes
    disable_nagle_algorithm = True  # headers and body go out in two writes
    server: CountingServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        with self.server.lock:
            self.server.hosts[self.headers.get("Host", "")] += 1
        if self.path == "/unavailable":
            status, body = 503, b"no dyno\n"
        else:
            status, body = 200, f"{self.server.answer}\nsecond line\n".encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture()
def server() -> Iterator[CountingServer]:
    srv = CountingServer()
    thread = threading.Thread(target=srv.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()
    thread.join()


def port_of(srv: CountingServer) -> int:
    return srv.server_address[1]


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_counts_every_request_with_its_first_line_and_sends_the_host_header(
        server: CountingServer) -> None:
    traffic = Traffic("app.localhost", port_of(server), workers=3, max_requests=60).start()
    assert traffic.wait(DEADLINE)
    assert len(traffic.results) == 60
    assert traffic.bodies() == Counter({"one": 60})
    assert traffic.failures() == []
    assert {r.status for r in traffic.results} == {200}
    assert server.hosts == Counter({"app.localhost": 60})


def test_bodies_tell_what_answered_before_and_after_a_mark(server: CountingServer) -> None:
    with Traffic("app.localhost", port_of(server), workers=2, rate=200) as traffic:
        _wait_for(lambda: len(traffic.results) >= 5)
        server.answer = "two"
        switched = traffic.mark("switched")
        _wait_for(lambda: len(traffic.results) >= 15)
    assert traffic.marks == [("switched", switched)]
    assert set(traffic.bodies(between=(0, switched))) <= {"one", "two"}
    assert "one" in traffic.bodies(between=(0, switched))
    assert set(traffic.bodies(between=(switched, math.inf))) == {"two"}
    assert len(traffic.latencies(between=(switched, math.inf))) >= 1


def test_a_5xx_is_a_failure(server: CountingServer) -> None:
    traffic = Traffic("app.localhost", port_of(server), path="/unavailable", workers=2,
                      max_requests=6).start()
    assert traffic.wait(DEADLINE)
    failures = traffic.failures()
    assert len(failures) == 6
    assert {(r.status, r.error_kind, r.body) for r in failures} == {(503, "HTTP 503", "no dyno")}
    assert traffic.bodies() == Counter()
    assert traffic.latencies() == []


def test_a_refused_connection_is_a_failure() -> None:
    traffic = Traffic("app.localhost", closed_port(), workers=2, max_requests=4).start()
    assert traffic.wait(DEADLINE)
    assert len(traffic.failures()) == 4
    assert {r.error_kind for r in traffic.failures()} == {"ConnectionRefusedError"}
    assert {r.status for r in traffic.failures()} == {None}


def test_connections_are_kept_alive_and_renewed_every_nth_request(
        server: CountingServer) -> None:
    traffic = Traffic("app.localhost", port_of(server), workers=2, max_requests=100,
                      new_connection_every=10).start()
    assert traffic.wait(DEADLINE)
    fresh = sum(not r.reused for r in traffic.results)
    assert server.connections == fresh
    # Each worker opens one connection per 10 of its requests, however they split the 100.
    assert 10 <= fresh <= 12
    assert traffic.failures() == []


def test_the_bound_is_respected_even_with_more_workers_than_requests(
        server: CountingServer) -> None:
    traffic = Traffic("app.localhost", port_of(server), workers=8, max_requests=3).start()
    assert traffic.wait(DEADLINE)
    time.sleep(0.05)
    assert len(traffic.results) == 3
    assert server.hosts.total() == 3


def test_stop_ends_the_traffic_before_the_bound(server: CountingServer) -> None:
    with Traffic("app.localhost", port_of(server), workers=2, rate=100) as traffic:
        _wait_for(lambda: len(traffic.results) >= 3)
    sent = len(traffic.results)
    time.sleep(0.05)
    assert len(traffic.results) == sent < traffic.max_requests


def test_rate_paces_the_total_over_all_workers(server: CountingServer) -> None:
    rate = 40
    with Traffic("app.localhost", port_of(server), workers=4, rate=rate) as traffic:
        started = traffic.mark("start")
        time.sleep(1.0)
        ended = traffic.mark("end")
    expected = rate * (ended - started)
    # Pacing never sends more than the rate (plus the requests already due at the ends);
    # the lower bound is loose because a busy machine may delay any thread.
    assert len(traffic.results) <= expected + 4 + 1
    assert len(traffic.results) >= expected / 3


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(100, 0, -1)]
    assert percentile(values, 50) == 50
    assert percentile(values, 99) == 99
    assert percentile(values, 100) == 100
    assert percentile(values, 0) == 1
    assert percentile([0.3], 99) == 0.3
    assert math.isnan(percentile([], 50))


def _wait_for(predicate: Any) -> None:
    deadline = time.monotonic() + DEADLINE
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.01)


def test_traffic_from_a_child_process_is_fetched_as_it_comes_and_all_of_it_at_the_stop(
    server: CountingServer,
) -> None:
    traffic = TrafficProcess("web.localhost", server.server_address[1], workers=2, rate=200)
    with traffic:
        t0 = traffic.mark("start")
        deadline = time.monotonic() + DEADLINE
        while len(traffic.current()) < 20:  # results arrive while it runs
            assert time.monotonic() < deadline, "no results from the child process"
            time.sleep(0.02)
        server.answer = "two"
        t1 = traffic.mark("changed")
        time.sleep(0.2)
    fetched = len(traffic.results)
    assert fetched == sum(server.hosts.values())  # nothing lost at the stop
    assert fetched == len(traffic.current())  # and nothing more comes after it
    assert not traffic.failures()
    # marks and results share one clock across the two processes
    assert all(r.start >= t0 - 1 for r in traffic.results)
    assert set(traffic.bodies(between=(t1 + 0.05, math.inf))) == {"two"}
