"""`paas up` as a whole: health, auth at the git door, and a stop that leaves nothing behind."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pytest

from tests.e2e.platform import (
    Platform,
    commit_change,
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
        "web": "up", "redis": "up", "worker": "up", "agent": "up", "router": "up", "ssh": "up"
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
    # With a HOME of its own, git finds no ~/.netrc entry another test may have written.
    bare_home = workdir / "home"
    bare_home.mkdir()
    no_token = subprocess.run(
        ["git", "push", platform.remote_url("locked"), "main"], cwd=repo,
        env={**platform.env(), "HOME": str(bare_home)}, capture_output=True, text=True,
    )
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


def test_master_deploys_and_other_branches_are_only_stored(
    platform: Platform, workdir: Path
) -> None:
    platform.cli("apps:create", "branches")
    repo = make_app_repo(workdir / "src")
    remote = platform.remote_url("branches", platform.token)
    feature = platform.git("push", remote, "main:feature", cwd=repo)
    assert "only main and master deploy" in feature.stderr
    assert platform.api("GET", "/apps/branches/builds").json() == []
    master = platform.git("push", remote, "main:master", cwd=repo)
    assert "Released v1" in master.stderr
    assert platform.get_app("branches").text.startswith("hello from web.1")
    destroyed = platform.cli("apps:destroy", "branches", "--confirm", "branches")
    assert destroyed.returncode == 0
    wait_until(lambda: platform.get_app("branches").status_code == 404, timeout=30,
               what="the destroyed app's host to be unknown")


def test_concurrent_pushes_are_serialized_and_never_corrupt_the_repo(
    platform: Platform, workdir: Path
) -> None:
    platform.cli("apps:create", "together")
    first = make_app_repo(workdir / "first")
    platform.git("push", platform.remote_url("together", platform.token), "main", cwd=first)
    clones = []
    for n in (1, 2):
        clone = workdir / f"clone{n}"
        platform.git("clone", "-q", platform.remote_url("together", platform.token), str(clone),
                     cwd=workdir)
        commit_change(clone, "app.py", "CODE_VERSION = ", f"CODE_VERSION = 'c{n}' or ",
                      f"concurrent {n}")
        clones.append(clone)
    pushes = [
        subprocess.Popen(["git", "push", "origin", "main"], cwd=clone, env=platform.env(),
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        for clone in clones
    ]
    results = [(p.wait(600), p.stderr.read()) for p in pushes]
    for p in pushes:
        p.stderr.close()
    succeeded = [n for n, (code, _) in enumerate(results, start=1) if code == 0]
    assert succeeded, results
    for code, err in results:
        if code != 0:
            assert "moved while this push waited" in err or "still deploying" in err, err
    repo_dir = platform.home / "repos" / "together.git"
    fsck = subprocess.run(["git", "--git-dir", str(repo_dir), "fsck", "--no-progress"],
                          capture_output=True, text=True)
    assert fsck.returncode == 0, fsck.stderr
    assert platform.get_app("together").text.endswith(f"code=c{succeeded[-1]}\n")
