"""A bounded HTTP load generator for end-to-end tests and bench scripts: GET requests
through the router from background threads, each one recorded, none judged here.

Clients here cannot resolve *.localhost, so requests go to 127.0.0.1:PORT with a
`Host:` header, as a browser of http://APP.localhost would send them:

    with Traffic("myapp.localhost", plat.port, rate=50) as traffic:
        t0 = traffic.mark("deploy")
        ...deploy...
        t1 = traffic.mark("deployed")
    assert not traffic.failures(between=(t0, t1))

Threads with http.client rather than asyncio: the work is waiting on sockets, a
thread per worker keeps each request's timing independent of the others' parsing,
and results stay steady on a 2-core machine at the rates a test needs.
"""

from __future__ import annotations

import http.client
import itertools
import math
import multiprocessing
import multiprocessing.connection
import threading
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

#: How long a worker pauses after a failure when requests are not paced, so that an
#: outage (every connection refused at once) does not use up the bound in a second.
PAUSE_AFTER_FAILURE = 0.01
#: How much of a body a record keeps.
BODY_CHARS = 200


@dataclass(frozen=True)
class Result:
    """One request as the client saw it."""

    start: float  # time.monotonic() when the request was sent
    latency: float  # seconds from sending to the whole body read, or to the error
    status: int | None  # None when no response came
    body: str  # the body's first line (at most BODY_CHARS), "" without a response
    error: str | None  # "ExceptionType: message", or "HTTP 503" for a 5xx; None if it worked
    reused: bool  # sent on a kept-alive connection rather than a fresh one

    @property
    def failed(self) -> bool:
        return self.error is not None

    @property
    def error_kind(self) -> str | None:
        """What went wrong, short enough to count: "HTTP 502", "ConnectionRefusedError"..."""
        return None if self.error is None else self.error.split(":", 1)[0]


def percentile(values: Sequence[float], p: float) -> float:
    """The `p`th percentile (0-100) of `values`, nearest-rank; NaN when there are none."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def _within(results: Iterable[Result], between: tuple[float, float] | None) -> list[Result]:
    if between is None:
        return list(results)
    t0, t1 = between
    return [r for r in results if t0 <= r.start < t1]


class Traffic:
    """GET `path` from `workers` threads until stopped or until `max_requests` were sent.

    Each worker keeps its connection alive between requests and opens a fresh one for
    every `new_connection_every`-th request (and after any failure), so both kinds are
    exercised. With `rate` (requests per second, over all workers) requests are paced
    to that steady rate; a worker that falls behind sends at once but never bursts to
    catch up, so the offered load never exceeds `rate`. Without it, workers go as fast
    as they can. `timeout` bounds connecting and each wait for data.

    `results` grows while it runs; read it (or the helpers) at any time.
    """

    def __init__(self, host_header: str, port: int, path: str = "/", workers: int = 4,
                 rate: float | None = None, new_connection_every: int = 10,
                 timeout: float = 10.0, max_requests: int = 20_000,
                 address: str = "127.0.0.1") -> None:
        if workers < 1 or new_connection_every < 1 or max_requests < 0:
            raise ValueError("workers and new_connection_every must be >= 1, max_requests >= 0")
        if rate is not None and rate <= 0:
            raise ValueError("rate must be positive, or None for as fast as possible")
        self.host_header = host_header
        self.port = port
        self.path = path
        self.workers = workers
        self.rate = rate
        self.new_connection_every = new_connection_every
        self.timeout = timeout
        self.max_requests = max_requests
        self.address = address
        self.results: list[Result] = []
        self.marks: list[tuple[str, float]] = []
        self._sent = 0
        self._next_due = 0.0
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []

    # --- life cycle ----------------------------------------------------------------
    def start(self) -> Traffic:
        if self._threads:
            raise RuntimeError("this Traffic has already been started")
        self._next_due = time.monotonic()
        self._threads = [
            threading.Thread(target=self._work, name=f"traffic-{n}", daemon=True)
            for n in range(self.workers)
        ]
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        """Stop sending; requests in flight finish (or time out) and are recorded."""
        self._stopping.set()
        for thread in self._threads:
            thread.join()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the workers to end by themselves (the bound reached); True if they did."""
        deadline = None if timeout is None else time.monotonic() + timeout
        for thread in self._threads:
            thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
        return not any(thread.is_alive() for thread in self._threads)

    def __enter__(self) -> Traffic:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def mark(self, label: str) -> float:
        """Note the time now under `label` (kept in `marks`) and return it."""
        now = time.monotonic()
        self.marks.append((label, now))
        return now

    # --- what happened -------------------------------------------------------------
    def failures(self, between: tuple[float, float] | None = None) -> list[Result]:
        """The failed requests (an exception or a 5xx) started in [t0, t1)."""
        return [r for r in _within(self.current(), between) if r.failed]

    def bodies(self, between: tuple[float, float] | None = None) -> Counter[str]:
        """How many successful responses carried each body (first line)."""
        return Counter(r.body for r in _within(self.current(), between) if not r.failed)

    def latencies(self, between: tuple[float, float] | None = None) -> list[float]:
        """Latencies of the successful requests started in [t0, t1), in seconds."""
        return [r.latency for r in _within(self.current(), between) if not r.failed]

    def current(self) -> list[Result]:
        """`results`, up to date."""
        return self.results

    # --- the workers ---------------------------------------------------------------
    def _take_turn(self) -> float | None:
        """The time the next request is due, or None when the bound is reached."""
        with self._lock:
            if self._sent >= self.max_requests:
                return None
            self._sent += 1
            if self.rate is None:
                return 0.0
            due = max(self._next_due, time.monotonic())
            self._next_due = due + 1 / self.rate
            return due

    def _work(self) -> None:
        conn: http.client.HTTPConnection | None = None
        for count in itertools.count():
            if self._stopping.is_set():
                break
            due = self._take_turn()
            if due is None:
                break
            delay = due - time.monotonic()
            if delay > 0 and self._stopping.wait(delay):
                break
            if conn is not None and count % self.new_connection_every == 0:
                conn.close()
                conn = None
            if conn is None:
                conn = http.client.HTTPConnection(self.address, self.port, timeout=self.timeout)
            result = self._request(conn)
            self.results.append(result)
            if result.failed:
                # A connection that saw a failure is in no state to be trusted again.
                conn.close()
                conn = None
                if self.rate is None:
                    self._stopping.wait(PAUSE_AFTER_FAILURE)
        if conn is not None:
            conn.close()

    def _request(self, conn: http.client.HTTPConnection) -> Result:
        # http.client drops the socket when a response says "Connection: close" and opens
        # a new one on the next request; a socket still there means a kept-alive one.
        reused = conn.sock is not None
        start = time.monotonic()
        try:
            conn.request("GET", self.path, headers={"Host": self.host_header})
            response = conn.getresponse()
            raw = response.read()
        except (OSError, http.client.HTTPException) as exc:
            return Result(start, time.monotonic() - start, None, "",
                          f"{type(exc).__name__}: {exc}", reused)
        latency = time.monotonic() - start
        body = raw.decode("utf-8", "replace").partition("\n")[0][:BODY_CHARS]
        error = f"HTTP {response.status}" if response.status >= 500 else None
        return Result(start, latency, response.status, body, error, reused)


class TrafficProcess(Traffic):
    """The same traffic, sent from a child process: whatever Python work the caller does
    meanwhile (polling an API, sifting results, running git) then cannot delay a request's
    timing by holding the GIL, which would be counted as the server's latency.

    `results` holds what has been fetched from the child: `current()` (and the helpers,
    which use it) fetches what is new first. `time.monotonic()` is the same clock in both
    processes, so `mark` and the results' `start` times compare as with `Traffic`.
    """

    _process: multiprocessing.process.BaseProcess | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)  # checks them; the child makes its own Traffic
        self._arguments = (args, kwargs)

    def start(self) -> TrafficProcess:
        if self._process is not None:
            raise RuntimeError("this Traffic has already been started")
        context = multiprocessing.get_context("spawn")
        self._conn, theirs = context.Pipe()
        self._process = context.Process(target=_serve, args=(theirs, *self._arguments),
                                        daemon=True)
        self._process.start()
        theirs.close()
        if self._conn.recv() != "started":
            raise RuntimeError("the traffic process did not start")
        return self

    def current(self) -> list[Result]:
        if self._process is not None:
            self._conn.send((False, len(self.results)))
            self.results.extend(self._conn.recv())
        return self.results

    def stop(self) -> None:
        if self._process is None:
            return
        self._conn.send((True, len(self.results)))
        self.results.extend(self._conn.recv())
        self._process.join()
        self._process = None

    def wait(self, timeout: float | None = None) -> bool:
        raise NotImplementedError("a TrafficProcess runs until stopped")


def _serve(conn: multiprocessing.connection.Connection, args: tuple, kwargs: dict) -> None:
    """The child of a TrafficProcess: run the traffic; answer each (stop, since) with the
    results from index `since` on, stopping the traffic first when asked to."""
    traffic = Traffic(*args, **kwargs).start()
    conn.send("started")
    stop = False
    while not stop:
        stop, since = conn.recv()
        if stop:
            traffic.stop()
        conn.send(traffic.results[since:])
