"""Fixtures shared by every test: a real redis-server on a private socket, and the web
application on a fresh store with an admin."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
from flask import Flask

from paas.config import Settings
from paas.store import Store


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real redis-server for this test session, on a unix socket, no persistence."""
    server = shutil.which("redis-server")
    if server is None:
        pytest.fail("redis-server is not installed; `make test` installs it")
    workdir: Path = tmp_path_factory.mktemp("redis")
    sock = workdir / "redis.sock"
    proc = subprocess.Popen(
        [server, "--port", "0", "--unixsocket", str(sock), "--unixsocketperm", "700",
         "--save", "", "--appendonly", "no", "--dir", str(workdir)],
        stdout=subprocess.DEVNULL,
    )
    url = f"unix://{sock}"
    deadline = time.monotonic() + 10
    while True:
        try:
            redis.Redis.from_url(url).ping()
            break
        except (redis.ConnectionError, FileNotFoundError):
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                pytest.fail("redis-server did not start")
            time.sleep(0.05)
    yield url
    proc.terminate()
    proc.wait(10)


@pytest.fixture()
def r(redis_url: str) -> Iterator[redis.Redis]:
    """A client on a clean database."""
    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    yield client
    client.close()


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
