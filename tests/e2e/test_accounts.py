"""Accounts end to end: an admin adds users, they log in with passwords through the CLI,
and git over HTTP lets each push, fetch or not see an app by their role on it."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.e2e.platform import PAAS, Platform, make_app_repo

pytestmark = pytest.mark.slow

APP = "shared-site"


def as_user(platform: Platform, home: Path, *argv: str, input: str | None = None,
            cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """A command run by another person: their own HOME (so their ~/.netrc), no admin token."""
    env = platform.env() | {"HOME": str(home), "PAAS_URL": platform.url}
    return subprocess.run(list(argv), env=env, cwd=cwd, input=input, capture_output=True,
                          text=True, timeout=600)


@pytest.fixture(scope="module")
def homes(platform: Platform, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Users with the given role on APP, each logged in from a home of their own."""
    platform.cli("apps:create", APP)
    platform.cli("config:set", "HOST=127.0.0.1", "-a", APP)
    homes = {}
    for user, role in (("dan", "deploy"), ("vera", "view"), ("nina", None)):
        subprocess.run([PAAS, "users:add", user, "--password-stdin"], input=f"{user}-secret-pw\n",
                       env=platform.env() | {"PAAS_URL": platform.url,
                                             "PAAS_API_KEY": platform.token},
                       check=True, capture_output=True, text=True)
        if role:
            platform.cli("access:add", user, "--role", role, "-a", APP)
        homes[user] = tmp_path_factory.mktemp(f"home-{user}")
        login = as_user(platform, homes[user], PAAS, "login", "-u", user, "--password-stdin",
                        input=f"{user}-secret-pw\n")
        assert login.stdout == f"Logged in as {user}\n", login.stderr
    return homes


def test_a_deploy_collaborator_pushes_with_the_token_paas_login_stored(
    platform: Platform, homes: dict[str, Path], tmp_path: Path
) -> None:
    repo = make_app_repo(tmp_path / "site", fixture="static-site")
    # No token in the URL: git finds the one `paas login` wrote to dan's ~/.netrc.
    push = as_user(platform, homes["dan"], "git", "push", platform.remote_url(APP), "main",
                   cwd=repo)
    assert push.returncode == 0, push.stderr + platform.log()
    assert "remote: -----> Static site detected" in push.stderr
    assert platform.get_app(APP).status_code == 200
    audit = platform.api("GET", f"/apps/{APP}/audit").json()
    assert ("dan", "git_push") in [(e["user"], e["action"]) for e in audit]


def test_a_view_collaborator_may_clone_but_not_push(
    platform: Platform, homes: dict[str, Path], tmp_path: Path
) -> None:
    clone = as_user(platform, homes["vera"], "git", "clone", platform.remote_url(APP),
                    str(tmp_path / "clone"))
    assert clone.returncode == 0, clone.stderr
    assert (tmp_path / "clone" / "index.html").exists()
    repo = make_app_repo(tmp_path / "site", fixture="static-site")
    push = as_user(platform, homes["vera"], "git", "push", "--force", platform.remote_url(APP),
                   "main", cwd=repo)
    assert push.returncode != 0
    assert "you have the view role on shared-site; this needs deploy" in push.stderr
    config = as_user(platform, homes["vera"], PAAS, "config", "-a", APP)
    assert config.returncode == 1 and "this needs deploy" in config.stderr


def test_a_user_without_a_role_is_told_the_app_does_not_exist(
    platform: Platform, homes: dict[str, Path], tmp_path: Path
) -> None:
    clone = as_user(platform, homes["nina"], "git", "clone", platform.remote_url(APP),
                    str(tmp_path / "clone"))
    missing = as_user(platform, homes["nina"], "git", "clone",
                      platform.remote_url("no-such-app"), str(tmp_path / "other"))
    assert clone.returncode == missing.returncode != 0
    assert f"There is no app named '{APP}'" in clone.stderr
    info = as_user(platform, homes["nina"], PAAS, "apps:info", "-a", APP)
    assert info.returncode == 1 and f"no app named '{APP}'" in info.stderr
