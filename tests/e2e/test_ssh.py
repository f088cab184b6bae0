"""git push over SSH: a key added with `paas keys:add`, the build streamed, the app live.

Also: a user whose key is known but who may not reach the app is told what HTTP
tells them, a bad push is rejected as over HTTP, and a shell is refused. The
tests share one app and run in order.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from paas.store import Store
from tests.e2e.platform import PAAS, Platform, make_app_repo, push_watching

pytestmark = pytest.mark.slow

APP = "over-ssh"


def keygen(path: Path) -> Path:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", path.name,
                    "-f", str(path)], check=True)
    return path


def ssh_options(platform: Platform, key: Path) -> list[str]:
    return ["-i", str(key), "-o", "IdentitiesOnly=yes", "-o", "StrictHostKeyChecking=no",
            "-o", "UserKnownHostsFile=/dev/null", "-o", "BatchMode=yes",
            "-p", str(platform.ssh_port)]


def ssh_env(platform: Platform, key: Path) -> dict[str, str]:
    return platform.env() | {"GIT_SSH_COMMAND": " ".join(["ssh", *ssh_options(platform, key)])}


@pytest.fixture(scope="module")
def admin_key(platform: Platform, tmp_path_factory: pytest.TempPathFactory) -> Path:
    key = keygen(tmp_path_factory.mktemp("keys") / "admin")
    added = platform.cli("keys:add", f"{key}.pub")
    assert "Added" in added.stdout
    return key


@pytest.fixture(scope="module")
def repo(platform: Platform, tmp_path_factory: pytest.TempPathFactory, admin_key: Path) -> Path:
    repo = make_app_repo(tmp_path_factory.mktemp("ssh-src") / "flask-app")
    platform.cli("apps:create", APP)
    platform.cli("git:remote", "--ssh", "-a", APP, cwd=repo)
    return repo


def test_keys_lists_the_added_key(platform: Platform, admin_key: Path) -> None:
    fingerprint = subprocess.run(["ssh-keygen", "-l", "-f", f"{admin_key}.pub"],
                                 capture_output=True, text=True, check=True).stdout.split()[1]
    assert fingerprint in platform.cli("keys").stdout


def test_a_push_over_ssh_streams_the_build_and_the_app_answers(
    platform: Platform, repo: Path, admin_key: Path
) -> None:
    remote = platform.git("remote", "get-url", "paas", cwd=repo).stdout.strip()
    assert remote == f"ssh://git@127.0.0.1:{platform.ssh_port}/{APP}.git"
    code, output, seen_while_running = push_watching(repo, ssh_env(platform, admin_key))
    assert code == 0, output + platform.log()
    assert "remote: -----> Python app detected" in output
    assert seen_while_running, "build output must reach the pusher while the build runs"
    response = platform.get_app(APP)
    assert response.status_code == 200 and response.text == "hello from web.1 code=one\n"


def test_a_bad_push_over_ssh_is_rejected_and_the_app_keeps_serving(
    platform: Platform, repo: Path, admin_key: Path
) -> None:
    (repo / "Procfile").write_text("web: gunicorn app:app\nthis line is junk\n")
    subprocess.run(["git", "commit", "-q", "-am", "junk"], cwd=repo, env=platform.env(),
                   check=True)
    push = subprocess.run(["git", "push", "paas", "main"], cwd=repo,
                          env=ssh_env(platform, admin_key), capture_output=True, text=True,
                          timeout=600)
    assert push.returncode != 0
    assert "Procfile line 2" in push.stderr
    assert "[remote rejected] main -> main" in push.stderr
    assert platform.get_app(APP).text == "hello from web.1 code=one\n"
    subprocess.run(["git", "reset", "-q", "--hard", "HEAD~1"], cwd=repo, check=True)


def test_a_user_without_access_is_refused_as_over_http(
    platform: Platform, repo: Path, tmp_path: Path
) -> None:
    # There is no API for users yet: the account is made in the store, as an admin would.
    store = Store(platform.home / "paas.db")
    store.create_user("mallory")
    mallory = store.user_by_name("mallory")
    assert mallory is not None
    token = store.create_token(mallory.id)
    store.close()
    key = keygen(tmp_path / "mallory")
    env = platform.env() | {"PAAS_URL": platform.url, "PAAS_API_KEY": token}
    added = subprocess.run([PAAS, "keys:add", f"{key}.pub"], env=env, capture_output=True,
                           text=True, timeout=60)
    assert added.returncode == 0, added.stderr

    over_ssh = subprocess.run(["git", "push", "paas", "main"], cwd=repo,
                              env=ssh_env(platform, key), capture_output=True, text=True,
                              timeout=120)
    over_http = platform.git("push", platform.remote_url(APP, token), "main", cwd=repo,
                             check=False)
    message = f"There is no app named '{APP}'. Create it with `paas apps:create {APP}`."
    assert over_ssh.returncode != 0 and message in over_ssh.stderr
    assert over_http.returncode != 0 and message in over_http.stderr


def test_a_shell_is_refused(platform: Platform, admin_key: Path) -> None:
    shell = subprocess.run(["ssh", *ssh_options(platform, admin_key), "-o", "LogLevel=ERROR",
                            "git@127.0.0.1"], capture_output=True, text=True, timeout=60,
                           stdin=subprocess.DEVNULL)
    assert shell.returncode == 1
    assert "Hi admin! You are authenticated, but paas has no shell" in shell.stderr
