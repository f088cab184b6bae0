"""Fixtures shared by every test: a real redis-server on a private socket, and the web
application on a fresh store with an admin."""

from __future__ import annotations

import ctypes
import faulthandler
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis
from flask import Flask

from paas.config import Settings
from paas.store import Store

#: How long the whole suite may run before it stops itself, printing every thread's
#: traceback: a test stuck where the per-test timeout cannot reach it (a call blocked in the
#: kernel, say) must end the run with a reason rather than hold it until CI gives up.
SUITE_LIMIT = 45 * 60


def pytest_configure(config: pytest.Config) -> None:
    # Output capture is suspended while plugins are configured, so fd 2 is the real stderr.
    faulthandler.dump_traceback_later(SUITE_LIMIT, exit=True, file=os.dup(2))


def pytest_unconfigure(config: pytest.Config) -> None:
    faulthandler.cancel_dump_traceback_later()


def _die_with_parent() -> None:
    """In the child: SIGKILL when pytest ends, however it ends, so no server outlives it."""
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


_PR_SET_PDEATHSIG = 1


class SessionRedis:
    """The suite's redis-server on a unix socket, with its log kept beside it. Should it
    die, the next test to ask for it gets a new one on the same socket, and the end of the
    run says when that happened, with how the old one ended and the last lines it logged."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.sock = workdir / "redis.sock"
        self.log = workdir / "redis.log"
        self.url = f"unix://{self.sock}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.deaths: list[str] = []

    def start(self) -> None:
        server = shutil.which("redis-server")
        if server is None:
            pytest.fail("redis-server is not installed; `make test` installs it")
        self.sock.unlink(missing_ok=True)
        self.proc = subprocess.Popen(
            [server, "--port", "0", "--unixsocket", str(self.sock), "--unixsocketperm", "700",
             "--save", "", "--appendonly", "no", "--dir", str(self.workdir),
             "--logfile", str(self.log)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            preexec_fn=_die_with_parent,
        )
        deadline = time.monotonic() + 10
        while True:
            try:
                redis.Redis.from_url(self.url).ping()
                return
            except (redis.ConnectionError, FileNotFoundError):
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    self.proc.kill()
                    pytest.fail("redis-server did not start: " + self._log_tail())
                time.sleep(0.05)

    def ensure(self, nodeid: str) -> None:
        """Start a new server if the running one has ended, and note it."""
        assert self.proc is not None
        code = self.proc.poll()
        if code is None:
            return
        ended = f"signal {-code}" if code < 0 else f"exit status {code}"
        self.deaths.append(f"redis-server (pid {self.proc.pid}) had ended ({ended}) before "
                           f"{nodeid}; its last lines: {self._log_tail()}")
        self.start()

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)

    def _log_tail(self) -> str:
        try:
            lines = self.log.read_text(errors="replace").splitlines()
        except OSError:
            return "(no log)"
        return " / ".join(lines[-5:]) or "(empty log)"


_session_redis: list[SessionRedis] = []


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real redis-server for this test session, on a unix socket, no persistence."""
    server = SessionRedis(tmp_path_factory.mktemp("redis"))
    server.start()
    _session_redis.append(server)
    yield server.url
    server.stop()


@pytest.fixture()
def r(redis_url: str, request: pytest.FixtureRequest) -> Iterator[redis.Redis]:
    """A client on a clean database."""
    for server in _session_redis:
        server.ensure(request.node.nodeid)
    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    yield client
    client.close()


def pytest_terminal_summary(terminalreporter: Any) -> None:
    deaths = [death for server in _session_redis for death in server.deaths]
    if deaths:
        terminalreporter.section("the suite's redis-server was restarted", red=True)
        for death in deaths:
            terminalreporter.line(death)


@dataclass
class Web:
    """The platform's web application (API and dashboard) on a fresh store."""

    app: Flask
    store: Store
    settings: Settings
    admin_token: str


@pytest.fixture()
def make_web(tmp_path: Path, redis_url: str, r: redis.Redis) -> Iterator:
    """Builds a Web for a domain (default localhost); closes what it opened afterwards."""
    from web import create_app

    made: list[Web] = []

    def make(domain: str = "localhost") -> Web:
        s = Settings(home=tmp_path, domain=domain, http_port=8080,
                     redis_url_override=redis_url, runtime="process")
        store = Store(s.db_path)
        store.migrate()
        admin = store.create_user("admin", is_admin=True)
        made.append(Web(create_app(s), store, s, store.create_token(admin.id)))
        return made[-1]

    yield make
    for web in made:
        web.app.extensions["paas_redis"].close()
        web.app.extensions["paas_store"].close()
        web.store.close()
