"""The router against nginx, proxying to the same small backend, on this machine.

(a) peak: `wrk` with the same threads, connections and duration against nginx (proxying
    with pooled keep-alive upstream connections) and against our router (`python -m
    router`, PAAS_ROUTER_WORKERS processes), each with 1 worker process and with one per
    core; req/s, p50/p99 and the ratio to nginx. Target: >= 0.5x nginx's req/s with the
    same number of worker processes.
(b) added latency: a rate-limited open-loop loader of our own (wrk2 is not packaged)
    at half our peak rate, through the router and straight to the backend; latencies are
    counted from each request's scheduled time, so a stall is not hidden. Target: p99
    added <= 2 ms. nginx (as many workers) at the same rate shows what this machine's
    scheduling adds to any proxy sharing its cores with the loader and the backend.
(c) memory: RSS of the router's processes (and of nginx's) before and after 1,000 idle
    keep-alive connections that each made one request.
(d) routes: the router's req/s with 10 routes in the table and with 10,000.
(e) the ceiling: a forwarder with no HTTP logic at all (bytes from each client connection
    to a backend connection of its own and back, on uvloop, one process) under the same
    wrk, next to nginx and the router with one worker. Its CPU per request is what the
    Python shell itself costs; the router's is that plus its HTTP work.

(a) and (e) also give the CPU time the proxy's processes spent per request (user +
system, from /proc): on a shared machine it moves less between runs than req/s does.

The backend is an nginx answering "hello" itself, so the backend is never what limits.
Needs nginx (Debian: `apt-get install nginx`, or nginx-light), wrk and redis-server.
Usage: .venv/bin/python bench/router.py [--duration 10] [--connections 64]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import redis

from paas import keys, routes

DOMAIN = "bench.test"
HOST = f"hello.{DOMAIN}"
ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise SystemExit(f"nothing listens on {port} after {timeout} s") from None
            time.sleep(0.05)


def need(program: str, how: str) -> str:
    found = shutil.which(program) or (
        f"/usr/sbin/{program}" if Path(f"/usr/sbin/{program}").exists() else None)
    if found is None:
        raise SystemExit(f"{program} is not installed: {how}")
    return found


# --- the programs under test ---------------------------------------------------------------


NGINX_CONF = """
worker_processes {workers};
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log {access};
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    keepalive_requests 1000000;
    {body}
}}
"""

BACKEND = """
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        location / {{ default_type text/plain; return 200 "hello\\n"; }}
    }}
"""

PROXY = """
    upstream app {{ server 127.0.0.1:{backend}; keepalive 128; }}
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        location / {{
            proxy_pass http://app;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_set_header X-Request-Start "t=${{msec}}";
        }}
    }}
"""


@contextmanager
def nginx(work: Path, name: str, workers: int, body: str,
          access_log: bool) -> Iterator[subprocess.Popen[bytes]]:
    d = work / name
    d.mkdir()
    access = f"{d}/access.log combined buffer=64k" if access_log else "off"
    conf = d / "nginx.conf"
    conf.write_text(NGINX_CONF.format(workers=workers, dir=d, access=access, body=body))
    proc = subprocess.Popen([need("nginx", "apt-get install nginx"), "-c", str(conf),
                             "-e", str(d / "error.log")])
    try:
        yield proc
    finally:
        proc.send_signal(signal.SIGQUIT)
        proc.wait(10)


@contextmanager
def router(work: Path, redis_url: str, workers: int) -> Iterator[tuple[int, list[int]]]:
    port = free_port()
    home = work / f"router-home-{port}"
    env = {**os.environ, "PAAS_HOME": str(home), "REDIS_URL": redis_url,
           "PAAS_DOMAIN": DOMAIN, "PAAS_HTTP_PORT": str(port), "PAAS_HTTPS_PORT": "0",
           "PAAS_ROUTER_WORKERS": str(workers), "PAAS_ROUTER_HOST": "127.0.0.1",
           "PAAS_ROUTER_MAX_CONNS_PER_IP": "100000"}
    proc = subprocess.Popen([sys.executable, "-m", "router"], env=env, cwd=work,
                            stderr=subprocess.DEVNULL)
    try:
        wait_port(port)
        time.sleep(0.5)  # every worker bound and loaded
        yield port, [proc.pid, *children(proc.pid)]
    finally:
        proc.terminate()
        proc.wait(15)


def children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of `pids` so far."""
    ticks = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


def rss_kib(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1])
    return total


# --- load ------------------------------------------------------------------------------------


@dataclass
class WrkResult:
    rps: float
    p50_ms: float
    p99_ms: float
    errors: str
    cpu_us: float = 0.0  # CPU of the measured proxy's processes per request


def wrk_cpu(port: int, pids: list[int], threads: int, connections: int,
            duration: int) -> WrkResult:
    """`wrk`, with the CPU time `pids` spent per request meanwhile."""
    before = cpu_seconds(pids)
    result = wrk(port, HOST, threads, connections, duration)
    result.cpu_us = (cpu_seconds(pids) - before) * 1e6 / max(1.0, result.rps * duration)
    return result


def _ms(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}[unit]


def wrk(port: int, host: str, threads: int, connections: int, duration: int) -> WrkResult:
    out = subprocess.run(
        [need("wrk", "apt-get install wrk"), f"-t{threads}", f"-c{connections}",
         f"-d{duration}s", "--latency", "-H", f"Host: {host}", f"http://127.0.0.1:{port}/"],
        capture_output=True, text=True, check=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = _ms(re.search(r"^\s+50%\s+(\S+)", out, re.M).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1))  # type: ignore[union-attr]
    errors = re.search(r"(Non-2xx.*|Socket errors.*)", out)
    return WrkResult(rps, p50, p99, errors.group(1) if errors else "")


async def _open_loop(port: int, host: str, rate: float, duration: float,
                     connections: int) -> list[float]:
    """Latencies (ms) of `rate` requests a second for `duration` s, spread over keep-alive
    connections, each counted from its scheduled time (open loop: no coordinated omission)."""
    request = f"GET / HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()
    total = int(rate * duration)
    # perf_counter, not loop.time(): uvloop's clock moves in whole milliseconds, too coarse
    # for a 2 ms target.
    clock = time.perf_counter
    start = clock() + 0.2
    latencies: list[float] = []

    async def conn(index: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        for i in range(index, total, connections):
            due = start + i / rate
            delay = due - clock()
            if delay > 0:
                await asyncio.sleep(delay)
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = int(re.search(rb"(?i)content-length:\s*(\d+)", head).group(1))  # type: ignore
            await reader.readexactly(length)
            latencies.append((clock() - due) * 1000)
        writer.close()

    await asyncio.gather(*(conn(i) for i in range(connections)))
    return latencies


def open_loop(port: int, host: str, rate: float, duration: float) -> list[float]:
    import uvloop

    return uvloop.run(_open_loop(port, host, rate, duration, connections=32))


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=1000)[int(q * 1000) - 1]


async def _idle(port: int, host: str, count: int) -> list[asyncio.StreamWriter]:
    """`count` keep-alive connections that each made one request, held open; from several
    loopback addresses, as real clients come from many."""
    writers = []
    for i in range(count):
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", port, local_addr=(f"127.0.0.{2 + i % 50}", 0))
        writer.write(f"GET / HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
        head = await reader.readuntil(b"\r\n\r\n")
        length = int(re.search(rb"(?i)content-length:\s*(\d+)", head).group(1))  # type: ignore
        await reader.readexactly(length)
        writers.append(writer)
    return writers


def idle_memory(port: int, host: str, pids: list[int]) -> tuple[int, int]:
    """RSS (KiB) of `pids` before and with 1,000 idle keep-alive connections."""
    import uvloop

    async def measure() -> tuple[int, int]:
        await asyncio.sleep(0.5)
        before = rss_kib(pids)
        writers = await _idle(port, host, 1000)
        await asyncio.sleep(1.0)
        after = rss_kib(pids)
        for w in writers:
            w.close()
        return before, after

    return uvloop.run(measure())


# --- the ceiling -----------------------------------------------------------------------------


def forward(port: int, backend_port: int) -> int:
    """(e): relay bytes between each client connection and a backend connection of its
    own, parsing nothing, until terminated."""
    import uvloop

    class Upstream(asyncio.Protocol):
        def __init__(self, client: asyncio.Transport) -> None:
            self.client = client

        def data_received(self, data: bytes) -> None:
            self.client.write(data)

        def connection_lost(self, exc: Exception | None) -> None:
            self.client.close()

    class Client(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.transport: asyncio.Transport = transport  # type: ignore[assignment]
            self.backend: asyncio.Transport | None = None
            self.waiting: list[bytes] = []
            asyncio.ensure_future(self.connect())

        async def connect(self) -> None:
            self.backend, _ = await asyncio.get_running_loop().create_connection(
                lambda: Upstream(self.transport), "127.0.0.1", backend_port)
            self.backend.writelines(self.waiting)

        def data_received(self, data: bytes) -> None:
            if self.backend is None:
                self.waiting.append(data)
            else:
                self.backend.write(data)

        def connection_lost(self, exc: Exception | None) -> None:
            if self.backend is not None:
                self.backend.close()

    async def serve() -> None:
        server = await asyncio.get_running_loop().create_server(
            Client, "127.0.0.1", port, backlog=4096)
        await server.serve_forever()

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    uvloop.run(serve())
    return 0


# --- the run ---------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--forward", metavar="PORT:BACKEND_PORT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.forward:
        listen, backend = args.forward.split(":")
        return forward(int(listen), int(backend))
    for program, how in (("nginx", "apt-get install nginx (or nginx-light)"),
                         ("wrk", "apt-get install wrk"),
                         ("redis-server", "apt-get install redis-server")):
        need(program, how)
    cores = len(os.sched_getaffinity(0))
    threads = min(2, cores)
    d, c = args.duration, args.connections
    print(f"{cores} cores; wrk -t{threads} -c{c} -d{d}s; backend: nginx returning 'hello'")

    with tempfile.TemporaryDirectory(prefix="bench-router-") as tmp:
        work = Path(tmp)
        sock = work / "redis.sock"
        redis_proc = subprocess.Popen(
            [need("redis-server", ""), "--port", "0", "--unixsocket", str(sock), "--save", "",
             "--appendonly", "no"], stdout=subprocess.DEVNULL)
        try:
            url = f"unix://{sock}"
            r = redis.Redis.from_url(url)
            for _ in range(100):
                try:
                    r.ping()
                    break
                except (redis.ConnectionError, FileNotFoundError):
                    time.sleep(0.05)
            run(args, work, url, r, cores, threads, d, c)
        finally:
            redis_proc.terminate()
            redis_proc.wait(10)
    return 0


def run(args: argparse.Namespace, work: Path, url: str, r: redis.Redis, cores: int,
        threads: int, d: int, c: int) -> None:
    backend_port = free_port()
    with nginx(work, "backend", 1, BACKEND.format(port=backend_port), access_log=False):
        wait_port(backend_port)
        routes.publish(r, routes.Route("hello", (routes.Backend("web.1",
                                                                f"127.0.0.1:{backend_port}"),)))
        for i in range(9):
            routes.publish(r, routes.Route(f"other{i}", (routes.Backend("web.1", "127.0.0.1:9"),)))
        direct = wrk(backend_port, HOST, threads, c, d)
        print(f"\ndirect to the backend: {direct.rps:,.0f} req/s, p50 {direct.p50_ms:.2f} ms,"
              f" p99 {direct.p99_ms:.2f} ms")

        print("\n(a) peak, same wrk for both (CPU: microseconds of the proxy's processes "
              "per request)")
        print(f"{'workers':>7}  {'nginx req/s':>12} {'p50':>7} {'p99':>7} {'CPU':>5}   "
              f"{'router req/s':>12} {'p50':>7} {'p99':>7} {'CPU':>5}   ratio")
        peak = 0.0
        single: dict[str, WrkResult] = {}
        for workers in sorted({1, cores}):
            port = free_port()
            with nginx(work, f"proxy{workers}", workers,
                       PROXY.format(port=port, backend=backend_port), access_log=True) as proc:
                wait_port(port)
                ng = wrk_cpu(port, [proc.pid, *children(proc.pid)], threads, c, d)
            with router(work, url, workers) as (rport, pids):
                ours = wrk_cpu(rport, pids, threads, c, d)
            if workers == 1:
                single = {"nginx": ng, "router": ours}
            peak = max(peak, ours.rps) if workers == cores else peak
            print(f"{workers:>7}  {ng.rps:>12,.0f} {ng.p50_ms:>6.2f}ms {ng.p99_ms:>5.2f}ms "
                  f"{ng.cpu_us:>5.0f}   {ours.rps:>12,.0f} {ours.p50_ms:>6.2f}ms "
                  f"{ours.p99_ms:>5.2f}ms {ours.cpu_us:>5.0f}   "
                  f"{ours.rps / ng.rps:.2f}x {ours.errors or ng.errors}")

        rate = peak / 2
        print(f"\n(b) added latency at half our peak ({rate:,.0f} req/s, open loop, {d} s)")
        with router(work, url, cores) as (rport, _pids):
            through = open_loop(rport, HOST, rate, d)
        straight = open_loop(backend_port, HOST, rate, d)
        nport = free_port()
        with nginx(work, "proxy-b", cores, PROXY.format(port=nport, backend=backend_port),
                   access_log=True):
            wait_port(nport)
            by_nginx = open_loop(nport, HOST, rate, d)
        for name, q in (("p50", 0.5), ("p99", 0.99)):
            added = pct(through, q) - pct(straight, q)
            print(f"  {name}: router {pct(through, q):.2f} ms, direct {pct(straight, q):.2f} ms,"
                  f" added {added:.2f} ms (nginx, {cores} workers, at the same rate: added "
                  f"{pct(by_nginx, q) - pct(straight, q):.2f} ms)")

        print("\n(c) memory of 1,000 idle keep-alive connections")
        with router(work, url, 1) as (rport, pids):
            before, after = idle_memory(rport, HOST, pids)
        print(f"  router (1 worker): {before / 1024:.1f} MiB -> {after / 1024:.1f} MiB, "
              f"{(after - before) / 1024:.1f} MiB per 1,000")
        port = free_port()
        with nginx(work, "proxy-mem", 1, PROXY.format(port=port, backend=backend_port),
                   access_log=False) as proc:
            wait_port(port)
            pids = [proc.pid, *children(proc.pid)]
            before, after = idle_memory(port, HOST, pids)
        print(f"  nginx (1 worker):  {before / 1024:.1f} MiB -> {after / 1024:.1f} MiB, "
              f"{(after - before) / 1024:.1f} MiB per 1,000")

        print("\n(d) routes in the table")
        with router(work, url, cores) as (rport, _pids):
            ten = wrk(rport, HOST, threads, c, d)
            pipe = r.pipeline(transaction=False)
            for i in range(10_000):
                pipe.hset(keys.routes(), f"app{i}", routes.Route(
                    f"app{i}", (routes.Backend("web.1", f"127.0.0.1:{10000 + i % 50000}"),),
                ).to_json())
            pipe.execute()
            time.sleep(6)  # the periodic resync takes the whole table in
            many = wrk(rport, HOST, threads, c, d)
        print(f"  10 routes: {ten.rps:,.0f} req/s; 10,010 routes: {many.rps:,.0f} req/s "
              f"({many.rps / ten.rps:.2f}x)")

        print("\n(e) the ceiling: a uvloop forwarder with no HTTP logic, one process")
        port = free_port()
        forwarder = subprocess.Popen([sys.executable, __file__, "--forward",
                                      f"{port}:{backend_port}"])
        try:
            wait_port(port)
            bare = wrk_cpu(port, [forwarder.pid], threads, c, d)
        finally:
            forwarder.terminate()
            forwarder.wait(10)
        for name, result in (("forwarder", bare), *single.items()):
            print(f"  {name:>9}: {result.rps:>8,.0f} req/s, {result.cpu_us:5.0f} us CPU per "
                  f"request, {result.rps / single['nginx'].rps:.2f}x nginx")


if __name__ == "__main__":
    sys.exit(main())
