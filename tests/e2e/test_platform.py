"""`paas up` as a whole: health, auth at the git door, and a stop that leaves nothing behind."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from tests.e2e.platform import (
    Platform,
    free_port,
    make_app_repo,
    processes_mentioning,
    wait_until,
)

pytestmark = pytest.mark.slow


def test_health_names_every_component(platform: Platform) -> None:
    body = platform.get_platform("/api/health").json()
    assert body["status"] == "ok"
    assert body["components"] == {
        "web": "up", "redis": "up", "worker": "up", "agent": "up", "router": "up"
    }


def test_a_dead_agent_shows_in_health_and_is_restarted(platform: Platform) -> None:
    agents = [
        pid for pid in processes_mentioning(str(platform.home))
        if b"paas.agent" in Path(f"/proc/{pid}/cmdline").read_bytes()
    ]
    assert len(agents) == 1, agents
    os.kill(agents[0], signal.SIGKILL)

    def degraded() -> dict | None:
        response = platform.get_platform("/api/health")
        return response.json() if response.status_code == 503 else None

    body = wait_until(degraded, timeout=30, what="health to report the agent down")
    assert body["components"]["agent"] == "down" and "agent" in body["message"]
    wait_until(platform.healthy, timeout=60, what="the agent to be restarted")
    assert "agent (pid" in platform.log() and "exited" in platform.log()


def test_the_api_refuses_a_wrong_token_with_json(platform: Platform) -> None:
    response = platform.api("GET", "/apps", headers={"Authorization": "Bearer nope"})
    assert response.status_code == 401
    assert response.json()["id"] == "unauthorized"


def test_git_refuses_a_wrong_token(platform: Platform, workdir: Path) -> None:
    platform.cli("apps:create", "locked")
    repo = make_app_repo(workdir / "src")
    push = platform.git("push", platform.remote_url("locked", "wrong-token"), "main",
                        cwd=repo, check=False)
    assert push.returncode != 0
    assert "Authentication failed" in push.stderr or "401" in push.stderr
    no_token = platform.git("push", platform.remote_url("locked"), "main", cwd=repo, check=False)
    assert no_token.returncode != 0
    assert platform.api("GET", "/apps/locked/builds").json() == []


def test_pushing_to_an_unknown_app_says_how_to_create_it(platform: Platform, workdir: Path) -> None:
    repo = make_app_repo(workdir / "src")
    push = platform.git("push", platform.remote_url("ghost", platform.token), "main",
                        cwd=repo, check=False)
    assert push.returncode != 0
    assert "paas apps:create ghost" in push.stderr


def test_stop_leaves_no_process_and_start_brings_apps_back(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    base = tmp_path_factory.mktemp("own-platform")
    own = Platform(home=base / "home", user_home=base / "user", port=free_port())
    own.user_home.mkdir()
    own.start()
    try:
        own.cli("apps:create", "again")
        repo = make_app_repo(base / "src")
        own.git("push", own.remote_url("again", own.token), "main", cwd=repo)
        assert own.get_app("again").status_code == 200
        assert processes_mentioning(str(own.home)), "the platform's processes carry PAAS_HOME"
    finally:
        assert own.stop() == 0
    assert processes_mentioning(str(own.home)) == []

    own.start()
    try:
        response = wait_until(lambda: (r := own.get_app("again")).status_code == 200 and r,
                              timeout=60, what="the app to come back after a restart")
        assert response.text.startswith("hello from web.1")
    finally:
        own.stop()
    assert processes_mentioning(str(own.home)) == []
