"""Custom domains, maintenance mode and HTTPS through the real CLI, API and router."""

from __future__ import annotations

import os

import pytest
import requests

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
    dynos = deployed.api("GET", f"/apps/{APP}/dynos").json()
    deployed.cli("maintenance:on", "-a", APP)
    assert deployed.cli("maintenance", "-a", APP).stdout.strip() == "on"
    page = deployed.get_app(APP)
    assert page.status_code == 503 and "maintenance" in page.text
    assert deployed.api("GET", f"/apps/{APP}/dynos").json() == dynos  # untouched
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
