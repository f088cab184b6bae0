"""The release and dyno life cycle, end to end: deploys under live traffic, the release
phase, health checks, boot timeouts, crash backoff, scaling down, stopping a dyno and
rollback, on the session's platform (process runtime) with the lifecycle-app fixture.

The fixture's server dies at once on SIGTERM, requests in flight or not, so a request
that fails during a deploy means the platform stopped a dyno that still had work.
"""

from __future__ import annotations

import json
import re
import threading
import time
from pathlib import Path

import pytest
import requests

from tests.e2e.platform import Platform, make_app_repo, wait_until
from tests.e2e.traffic import Traffic

pytestmark = pytest.mark.slow

ANSWER = re.compile(r"^(?P<greeting>\w+) from web\.\d+ code=(?P<code>\w+)$")


def push(platform: Platform, app: str, repo: Path, check: bool = True) -> str:
    done = platform.git("push", platform.remote_url(app, platform.token), "main", cwd=repo,
                        check=check)
    return done.stderr


def commit(platform: Platform, repo: Path, message: str, **files: str) -> None:
    for name, text in files.items():
        (repo / name.replace("__", ".")).write_text(text)
    platform.git("add", "-A", cwd=repo)
    platform.git("commit", "-qm", message, cwd=repo)


def set_code(platform: Platform, repo: Path, code: str) -> None:
    server = (repo / "server.py").read_text()
    server = re.sub(r'^CODE = ".*"$', f'CODE = "{code}"', server, flags=re.M)
    commit(platform, repo, f"code {code}", server__py=server)


def new_app(platform: Platform, workdir: Path, app: str) -> Path:
    platform.cli("apps:create", app)
    repo = make_app_repo(workdir / app, fixture="lifecycle-app")
    push(platform, app, repo)
    return repo


def dynos(platform: Platform, app: str) -> list[dict]:
    return platform.api("GET", f"/apps/{app}/dynos").json()


def app_events(platform: Platform, app: str) -> list[dict]:
    return platform.api("GET", f"/apps/{app}/events?limit=1000").json()


def release(platform: Platform, app: str, version: int) -> dict:
    return platform.api("GET", f"/apps/{app}/releases/{version}").json()


def test_ten_redeploys_under_steady_traffic_drop_no_request(
    platform: Platform, workdir: Path
) -> None:
    app = "steady"
    repo = new_app(platform, workdir, app)
    platform.cli("ps:scale", "web=2", "-a", app)
    with Traffic(f"{app}.localhost", platform.port, workers=4, rate=300,
                 max_requests=10000) as traffic:
        traffic.mark("steady")
        for step in range(1, 11):
            kind = ("code", "config", "code", "scale", "restart",
                    "code", "config", "scale", "code", "config")[step - 1]
            if kind == "code":
                set_code(platform, repo, f"c{step}")
                push(platform, app, repo)
            elif kind == "config":
                platform.cli("config:set", f"GREETING=hi{step}", "-a", app)
            elif kind == "scale":
                platform.cli("ps:scale", "web=3" if step < 8 else "web=2", "-a", app)
            else:
                platform.cli("ps:restart", "-a", app)
                wait_until(lambda: _restarted(platform, app), timeout=60,
                           what="the restart to finish")
            # The old dynos drain and stop after the switch: let that happen under traffic.
            time.sleep(1.5)
        wait_until(lambda: traffic.bodies().get("hi10 from web.1 code=c9") is not None,
                   timeout=30, what="the last deploy to serve")
    assert len(traffic.results) > 2000
    assert traffic.failures() == [], traffic.failures()[:5]
    for body in traffic.bodies():
        assert ANSWER.match(body), body
    # both kinds of connection were exercised
    assert any(r.reused for r in traffic.results) and not all(r.reused for r in traffic.results)
    final = platform.get_app(app).text
    assert final.startswith("hi10 from web.") and final.endswith("code=c9\n")
    assert len([d for d in dynos(platform, app) if d["state"] == "up"]) == 2
    names = {e["event"] for e in app_events(platform, app)}
    assert {"deploy.started", "dyno.healthy", "deploy.switched", "dyno.drained",
            "deploy.finished"} <= names


def _restarted(platform: Platform, app: str) -> bool:
    states = [d["state"] for d in dynos(platform, app)]
    return states.count("up") == len(states) == 3


def test_a_request_in_flight_finishes_before_its_dyno_is_stopped(
    platform: Platform, workdir: Path
) -> None:
    app = "drain"
    new_app(platform, workdir, app)
    answer: list[requests.Response] = []
    slow = threading.Thread(target=lambda: answer.append(platform.get_app(app, "/slow?s=3")))
    slow.start()
    wait_until(lambda: any(d["state"] == "up" for d in dynos(platform, app)))
    platform.cli("config:set", "GREETING=later", "-a", app)  # waits for the new release
    slow.join(30)
    assert answer and answer[0].status_code == 200, answer
    assert answer[0].text == "slow done code=one\n"
    assert platform.get_app(app).text.startswith("later from web.1")


def test_the_release_phase_runs_before_traffic_moves_and_a_failure_keeps_the_old_release(
    platform: Platform, workdir: Path
) -> None:
    app = "releasing"
    repo = new_app(platform, workdir, app)
    set_code(platform, repo, "two")
    commit(platform, repo, "release phase that fails",
           Procfile="web: python3 server.py\nrelease: echo migrating the database; exit 3\n")
    out = push(platform, app, repo, check=False)
    assert "remote:        migrating the database" in out, out
    assert "The release command (echo migrating the database; exit 3) exited with status 3" in out
    assert "! [remote rejected]" in out
    assert platform.get_app(app).text == "hello from web.1 code=one\n"
    assert release(platform, app, 2)["status"] == "failed"

    commit(platform, repo, "release phase that works",
           Procfile="web: python3 server.py\nrelease: echo migrated code=$DYNO\n")
    out = push(platform, app, repo)
    assert "remote:        migrated code=release.1" in out, out
    assert platform.get_app(app).text == "hello from web.1 code=two\n"
    shown = platform.cli("releases:output", "v3", "-a", app).stdout
    assert "migrated code=release.1" in shown
    info = platform.cli("releases:info", "v3", "-a", app).stdout
    assert "Process release:" in info and "Status:" in info and "succeeded" in info
    assert {"release.started", "release.succeeded", "release.failed"} <= {
        e["event"] for e in app_events(platform, app)}


def test_a_failing_startup_check_abandons_the_deploy_and_says_why(
    platform: Platform, workdir: Path
) -> None:
    app = "checked"
    repo = new_app(platform, workdir, app)
    checks = {"healthchecks": {"web": [{"type": "startup", "name": "health page",
                                        "path": "/health", "content": "healthy",
                                        "attempts": 2, "wait": 0.2}]}}
    set_code(platform, repo, "two")
    commit(platform, repo, "a check the app cannot pass", app__json=json.dumps(checks))
    out = push(platform, app, repo, check=False)
    assert "app.json: 1 web health check(s)" in out, out
    assert "failed its startup check 'health page'" in out, out
    assert "answered without 'healthy' in its body" in out
    assert "starting code=two" in out  # the dyno's last lines
    assert platform.get_app(app).text == "hello from web.1 code=one\n"

    checks["healthchecks"]["web"][0]["content"] = "ok"
    commit(platform, repo, "a check it passes", app__json=json.dumps(checks))
    push(platform, app, repo)
    assert platform.get_app(app).text == "hello from web.1 code=two\n"
    assert "dyno.unhealthy" in {e["event"] for e in app_events(platform, app)}


def test_a_dyno_that_does_not_bind_in_the_boot_timeout_is_r10_and_the_old_one_serves(
    platform: Platform, workdir: Path
) -> None:
    app = "slowboot"
    new_app(platform, workdir, app)
    assert "boot-timeout: 2 s" in platform.cli("ps:set", "boot-timeout", "2", "-a", app).stdout
    done = platform.cli("config:set", "BOOT_DELAY=20", "-a", app, check=False)
    assert done.returncode != 0
    assert "did not listen on $PORT within 2 s (R10)" in done.stderr + done.stdout
    assert platform.get_app(app).text == "hello from web.1 code=one\n"
    logs = platform.cli("logs", "-n", "200", "-a", app).stdout
    assert "Error R10 (Boot timeout)" in logs
    platform.cli("ps:set", "boot-timeout", "default", "-a", app)
    assert platform.api("GET", f"/apps/{app}/settings").json()["boot_timeout"] is None


def test_a_crashing_dyno_is_restarted_with_growing_delays(
    platform: Platform, workdir: Path
) -> None:
    app = "crashy"
    repo = new_app(platform, workdir, app)
    commit(platform, repo, "a worker that crashes",
           Procfile="web: python3 server.py\nworker: python3 server.py crash\n")
    push(platform, app, repo)
    platform.cli("ps:scale", "worker=1", "-a", app, check=False)

    def crashes() -> list[dict]:
        return [e for e in app_events(platform, app)
                if e["event"] == "dyno.crashed" and e["proc"] == "worker.1"]

    wait_until(lambda: len(crashes()) >= 3, timeout=60, what="three crashes")
    delays = [e["fields"]["restart_in"] for e in crashes()[:3]]
    assert delays == ["1s", "2s", "4s"]
    assert all(e["fields"]["status"] == "3" for e in crashes())
    shown = platform.cli("ps", "-a", app).stdout
    assert re.search(r"worker\.1: (crashed .*exit code 3|starting|up)", shown), shown
    logs = platform.cli("logs", "-n", "500", "-a", app).stdout
    assert "Process exited with status 3; State changed from up to crashed" in logs
    platform.cli("ps:scale", "worker=0", "-a", app)
    wait_until(lambda: not [d for d in dynos(platform, app) if d["type"] == "worker"],
               timeout=30, what="the worker to go")


def test_scaling_down_stops_exactly_the_extra_dynos(platform: Platform, workdir: Path) -> None:
    app = "shrink"
    new_app(platform, workdir, app)
    platform.cli("ps:scale", "web=3", "-a", app)
    before = {d["name"]: d for d in dynos(platform, app)}
    assert sorted(before) == ["web.1", "web.2", "web.3"]
    platform.cli("ps:scale", "web=1", "-a", app)
    wait_until(lambda: [d["name"] for d in dynos(platform, app)] == ["web.1"], timeout=30,
               what="web.2 and web.3 to stop")
    after = dynos(platform, app)
    assert after[0]["started_at"] == before["web.1"]["started_at"]  # web.1 untouched
    for name in ("web.2", "web.3"):
        assert not _listening(before[name]["port"]), f"{name} still answers"
    # the agent samples each dyno's memory for `paas ps` and the dashboard
    wait_until(lambda: (dynos(platform, app)[0].get("memory_bytes") or 0) > 1 << 20,
               timeout=30, what="web.1's memory to be sampled")
    assert re.search(r"web\.1: up .* \d+ MB", platform.cli("ps", "-a", app).stdout)


def _listening(port: int) -> bool:
    import socket

    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def test_ps_stop_drains_a_dyno_and_the_formation_replaces_it(
    platform: Platform, workdir: Path
) -> None:
    app = "stopper"
    new_app(platform, workdir, app)
    first = dynos(platform, app)[0]
    out = platform.cli("ps:stop", "web.1", "-a", app).stdout
    assert "web.1 stopping" in out
    wait_until(lambda: [d["started_at"] for d in dynos(platform, app)
                        if d["state"] == "up"] not in ([], [first["started_at"]]),
               timeout=30, what="a fresh web.1")
    wait_until(lambda: [d["name"] for d in dynos(platform, app)] == ["web.1"], timeout=30,
               what="the old web.1 to stop")
    assert not _listening(first["port"])
    missing = platform.cli("ps:stop", "web.9", "-a", app, check=False)
    assert missing.returncode != 0 and "has no dyno 'web.9'" in missing.stderr


def test_rollback_deploys_an_earlier_release_the_same_way(
    platform: Platform, workdir: Path
) -> None:
    app = "goback"
    repo = new_app(platform, workdir, app)
    set_code(platform, repo, "two")
    push(platform, app, repo)
    assert platform.get_app(app).text == "hello from web.1 code=two\n"
    with Traffic(f"{app}.localhost", platform.port, workers=2, rate=30) as traffic:
        platform.cli("rollback", "v1", "-a", app)
    assert traffic.failures() == []
    assert platform.get_app(app).text == "hello from web.1 code=one\n"
    info = platform.cli("releases:info", "-a", app).stdout
    assert "Rollback to v1" in info and "(current)" in info


def test_liveness_restarts_a_dyno_that_stops_answering_and_readiness_unroutes_it(
    platform: Platform, workdir: Path
) -> None:
    app = "lively"
    repo = new_app(platform, workdir, app)
    checks = {"healthchecks": {"web": [
        {"type": "readiness", "path": "/health", "content": "ok", "attempts": 1, "wait": 1},
        {"type": "liveness", "path": "/health", "content": "ok", "attempts": 3, "wait": 1},
    ]}}
    commit(platform, repo, "periodic checks", app__json=json.dumps(checks))
    push(platform, app, repo)
    assert platform.get_app(app).status_code == 200
    # The new release's dynos pass the default (TCP) startup check, then fail /health.
    platform.cli("config:set", "HEALTH_BODY=sick", "-a", app)
    wait_until(lambda: platform.get_app(app).status_code == 503, timeout=30,
               what="readiness to take web.1 out of the route")

    def restarts() -> list[dict]:
        return [e for e in app_events(platform, app) if e["event"] == "dyno.unhealthy"
                and "restarting" in e["fields"].get("reason", "")]

    wait_until(restarts, timeout=60, what="liveness to restart web.1")

    def crashes() -> list[dict]:
        return [e for e in app_events(platform, app) if e["event"] == "dyno.crashed"]

    wait_until(crashes, timeout=30, what="the stopped dyno to count as a crash")
    assert crashes()[0]["fields"]["restart_in"] == "1s"
    platform.cli("config:unset", "HEALTH_BODY", "-a", app)
    wait_until(lambda: platform.get_app(app).status_code == 200, timeout=60,
               what="a healthy dyno to serve again")


def test_predeploy_and_postdeploy_scripts_from_app_json(platform: Platform, workdir: Path) -> None:
    app = "scripted"
    repo = new_app(platform, workdir, app)
    scripts = {"scripts": {"dokku": {"predeploy": "echo before $DYNO",
                                     "postdeploy": "echo after; exit 4"}}}
    set_code(platform, repo, "two")
    commit(platform, repo, "a postdeploy that fails", app__json=json.dumps(scripts))
    out = push(platform, app, repo, check=False)
    assert "remote:        before predeploy.1" in out and "remote:        after" in out, out
    assert "The postdeploy command (echo after; exit 4) exited with status 4" in out
    assert "! [remote rejected]" in out
    # the new dynos served for a moment, then the route went back to the old ones
    assert platform.get_app(app).text == "hello from web.1 code=one\n"

    scripts["scripts"]["dokku"]["postdeploy"] = "echo after"
    commit(platform, repo, "a postdeploy that works", app__json=json.dumps(scripts))
    push(platform, app, repo)
    assert platform.get_app(app).text == "hello from web.1 code=two\n"
    output = platform.cli("releases:output", "-a", app).stdout
    assert output.index("before predeploy.1") < output.index("after")
