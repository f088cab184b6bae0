"""git push deploys a Flask app that answers through the router, and everything that follows.

The tests of this module share one app and run in order, as a user would:
first push, code change, config change, scale, rollback, then pushes that must
be rejected while the running release keeps serving.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.e2e.platform import (
    Platform,
    commit_change,
    make_app_repo,
    push_watching,
    wait_until,
)

pytestmark = pytest.mark.slow

APP = "hello"


@pytest.fixture(scope="module")
def repo(platform: Platform, tmp_path_factory: pytest.TempPathFactory) -> Path:
    repo = make_app_repo(tmp_path_factory.mktemp("src") / "flask-app")
    created = platform.cli("apps:create", APP)
    assert APP in created.stdout
    platform.cli("git:remote", "-a", APP, cwd=repo)
    return repo


def page(platform: Platform) -> str:
    response = platform.get_app(APP)
    assert response.status_code == 200, response.text
    return response.text


def test_first_push_streams_the_build_and_the_app_answers(platform: Platform, repo: Path) -> None:
    config = (repo / ".git" / "config").read_text()
    assert platform.token not in config, "the token must not be written into .git/config"
    code, output, seen_while_running = push_watching(repo, platform.env())
    assert code == 0, output + platform.log()
    assert "remote: -----> Python app detected" in output
    assert seen_while_running, "build output must reach the pusher while the build runs"
    assert "deployed" in output
    assert page(platform) == "hello from web.1 code=one\n"
    info = platform.cli("apps:info", "-a", APP, "--json")
    assert '"release": 1' in info.stdout


def test_a_code_change_redeploys(platform: Platform, repo: Path) -> None:
    commit_change(repo, "app.py", '"one"', '"two"', "second")
    push = platform.git("push", "paas", "main", cwd=repo)
    assert "Requirements unchanged" in push.stderr or "reusing" in push.stderr.lower()
    assert page(platform) == "hello from web.1 code=two\n"


def test_config_set_changes_what_the_app_reports(platform: Platform, repo: Path) -> None:
    done = platform.cli("config:set", "GREETING=bonjour", cwd=repo)
    assert "done" in done.stdout
    assert page(platform) == "bonjour from web.1 code=two\n"
    assert platform.cli("config:get", "GREETING", cwd=repo).stdout.strip() == "bonjour"


def test_scaling_to_two_serves_from_both_dynos(platform: Platform, repo: Path) -> None:
    platform.cli("ps:scale", "web=2", cwd=repo)
    dynos = {page(platform).split(" from ")[1].split()[0] for _ in range(10)}
    assert dynos == {"web.1", "web.2"}
    ps = platform.cli("ps", cwd=repo).stdout
    assert "web.1" in ps and "web.2" in ps
    platform.cli("ps:scale", "web=1", cwd=repo)
    wait_until(lambda: {page(platform).split(" from ")[1].split()[0] for _ in range(6)}
               == {"web.1"}, timeout=30, what="web.2 to leave the route table")


def test_rollback_brings_back_the_earlier_code(platform: Platform, repo: Path) -> None:
    releases = platform.api("GET", f"/apps/{APP}/releases").json()
    first = min(r["version"] for r in releases)
    platform.cli("rollback", f"v{first}", cwd=repo)
    assert page(platform) == "hello from web.1 code=one\n"
    latest = platform.api("GET", f"/apps/{APP}/releases").json()[0]
    assert latest["description"] == f"Rollback to v{first}" and latest["current"]


def test_a_bad_procfile_is_rejected_with_its_line_and_the_app_keeps_serving(
    platform: Platform, repo: Path
) -> None:
    before = page(platform)
    (repo / "Procfile").write_text("web: gunicorn app:app\nthis line is junk\n")
    subprocess.run(["git", "commit", "-q", "-am", "junk"], cwd=repo, env=platform.env(),
                   check=True)
    push = platform.git("push", "paas", "main", cwd=repo, check=False)
    assert push.returncode != 0
    assert "Procfile line 2" in push.stderr
    assert "[remote rejected] main -> main" in push.stderr
    assert page(platform) == before
    subprocess.run(["git", "reset", "-q", "--hard", "HEAD~1"], cwd=repo, check=True)


def test_a_failing_build_is_rejected_and_the_app_keeps_serving(
    platform: Platform, repo: Path
) -> None:
    before = page(platform)
    (repo / "requirements.txt").write_text("flask\ngunicorn\nno-such-package-paas-test==9.9\n")
    subprocess.run(["git", "commit", "-q", "-am", "bad deps"], cwd=repo, env=platform.env(),
                   check=True)
    push = platform.git("push", "paas", "main", cwd=repo, check=False)
    assert push.returncode != 0
    assert "[remote rejected] main -> main" in push.stderr
    assert "remote:  !" in push.stderr
    assert page(platform) == before
    builds = platform.api("GET", f"/apps/{APP}/builds").json()
    assert builds[0]["status"] == "failed"
    subprocess.run(["git", "reset", "-q", "--hard", "HEAD~1"], cwd=repo, check=True)


def test_members_can_clone_what_was_deployed(platform: Platform, repo: Path, workdir: Path) -> None:
    clone = platform.git("clone", platform.remote_url(APP, platform.token), "copy", cwd=workdir)
    assert clone.returncode == 0
    assert (workdir / "copy" / "app.py").read_text() == (repo / "app.py").read_text()

