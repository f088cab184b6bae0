"""Custom domains, maintenance mode and HTTPS through the real CLI, API and router."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests

from router.tls import ensure_platform_certificate
from tests.e2e.platform import Platform, make_app_repo, processes_mentioning, wait_until

pytestmark = pytest.mark.slow

APP = "domain-site"
DOMAIN = "www.domain-site.test"


@pytest.fixture(scope="module")
def deployed(platform: Platform, tmp_path_factory: pytest.TempPathFactory) -> Platform:
    platform.cli("apps:create", APP)
    platform.cli("config:set", "HOST=127.0.0.1", "-a", APP)
    repo = make_app_repo(tmp_path_factory.mktemp("src") / APP, fixture="static-site")
    platform.git("push", platform.remote_url(APP, platform.token), "main", cwd=repo)
    return platform


def get(platform: Platform, host: str) -> requests.Response:
    return requests.get(platform.url + "/", headers={"Host": host}, timeout=30)


def test_a_custom_domain_reaches_the_app_and_goes_away(deployed: Platform) -> None:
    assert get(deployed, DOMAIN).status_code == 404
    added = deployed.cli("domains:add", DOMAIN, "-a", APP)
    assert f"Adding {DOMAIN} to {APP}... done" in added.stdout
    assert DOMAIN in deployed.cli("domains", "-a", APP).stdout
    page = get(deployed, DOMAIN.upper() + ":80")
    assert page.status_code == 200 and page.content == deployed.get_app(APP).content
    # the platform's certificate, made at first start, serves HTTPS for it too
    secure = requests.get(f"https://127.0.0.1:{deployed.https_port}/", headers={"Host": DOMAIN},
                          verify=str(deployed.home / "tls" / "platform.crt"), timeout=30)
    assert secure.status_code == 200 and secure.content == page.content
    taken = deployed.cli("domains:add", DOMAIN, "-a", APP, check=False)
    assert taken.returncode == 1 and "already a domain" in taken.stderr
    deployed.cli("domains:remove", DOMAIN, "-a", APP)
    assert get(deployed, DOMAIN).status_code == 404


def test_maintenance_mode_answers_503_and_keeps_the_dynos(deployed: Platform) -> None:
    def dynos() -> list[dict[str, object]]:
        """Which dynos run, and since when: not what they use, which the agent samples."""
        return [{k: v for k, v in d.items() if k != "memory_bytes"}
                for d in deployed.api("GET", f"/apps/{APP}/dynos").json()]

    before = dynos()
    deployed.cli("maintenance:on", "-a", APP)
    try:
        assert deployed.cli("maintenance", "-a", APP).stdout.strip() == "on"
        page = deployed.get_app(APP)
        assert page.status_code == 503 and "maintenance" in page.text
        assert dynos() == before  # untouched
    finally:
        deployed.cli("maintenance:off", "-a", APP)
    assert deployed.get_app(APP).status_code == 200
    logs = deployed.cli("logs", "-a", APP, "-n", "200").stdout
    assert "code=H80" in logs and "protocol=http" in logs


def test_the_router_runs_one_process_per_core(deployed: Platform) -> None:
    def routers() -> list[int]:
        found = []
        for pid in processes_mentioning(str(deployed.home)):
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    if b"-m\x00router" in f.read():
                        found.append(pid)
            except OSError:
                pass
        return found

    cores = len(os.sched_getaffinity(0))
    # the supervising parent and its workers (one alone when there is a single core)
    expected = 1 if cores == 1 else cores + 1
    assert wait_until(lambda: len(routers()) == expected, timeout=30, what="router workers")


def test_an_app_certificate_and_the_https_redirect(deployed: Platform, tmp_path: Path) -> None:
    cert, key = tmp_path / "site.crt", tmp_path / "site.key"
    ensure_platform_certificate(cert, key, "domain-site.test")  # for *.domain-site.test too
    deployed.cli("domains:add", DOMAIN, "-a", APP)
    added = deployed.cli("certs:add", str(cert), str(key), "-a", APP)
    assert "domain-site.test" in added.stdout
    assert "Self signed: yes" in deployed.cli("certs", "-a", APP).stdout

    def secure() -> requests.Response | None:
        try:  # the app's own certificate, chosen by SNI, verifies against itself
            return requests.get(f"https://{DOMAIN}:{deployed.https_port}/", timeout=30,
                                verify=str(cert))
        except requests.exceptions.SSLError:
            return None  # the router has not taken the new certificate in yet

    with resolving(DOMAIN):
        assert wait_until(secure, timeout=30, what="the app's certificate").status_code == 200
    deployed.cli("certs:redirect", "on", "-a", APP)
    moved = requests.get(deployed.url + "/x?y=1", headers={"Host": DOMAIN}, timeout=30,
                         allow_redirects=False)
    assert moved.status_code == 301
    assert moved.headers["Location"] == f"https://{DOMAIN}:{deployed.https_port}/x?y=1"
    deployed.cli("certs:redirect", "off", "-a", APP)
    assert get(deployed, DOMAIN).status_code == 200
    deployed.cli("certs:remove", "-a", APP)
    deployed.cli("domains:remove", DOMAIN, "-a", APP)


@contextmanager
def resolving(name: str) -> Iterator[None]:
    """Make `name` resolve to 127.0.0.1 in this process, so requests sends it as SNI."""
    real = socket.getaddrinfo

    def fake(host: object, *args: object, **kw: object) -> object:
        return real("127.0.0.1" if host == name else host, *args, **kw)  # type: ignore

    socket.getaddrinfo = fake  # type: ignore[assignment]
    try:
        yield
    finally:
        socket.getaddrinfo = real
