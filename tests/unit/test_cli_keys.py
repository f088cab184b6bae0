"""`paas keys`, `keys:add`, `keys:remove` and `git:remote --ssh` against the real API.

The web app runs over real HTTP on a loopback port with a real store and Redis.
"""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from click.testing import CliRunner, Result
from werkzeug.serving import make_server

from paas.cli.main import cli
from paas.cli.sshkeys import default_key_file
from paas.config import Settings
from paas.errors import PaasError
from paas.store import Store
from web import create_app


@pytest.fixture()
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    monkeypatch.chdir(tmp_path)
    return home


@pytest.fixture()
def platform(tmp_path: Path, redis_url: str, r: redis.Redis, home: Path,
             monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    s = Settings(home=tmp_path / "paas", domain="localhost", http_port=8080,
                 redis_url_override=redis_url, runtime="process", ssh_port=2222)
    store = Store(s.db_path)
    store.migrate()
    ann = store.create_user("ann")
    app = create_app(s)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_port}"
    monkeypatch.setenv("PAAS_URL", url)
    monkeypatch.setenv("PAAS_API_KEY", store.create_token(ann.id))
    yield url
    server.shutdown()
    server.server_close()
    thread.join(5)
    app.extensions["paas_redis"].close()
    app.extensions["paas_store"].close()
    store.close()


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), prog_name="paas")


def keygen(path: Path, kind: str = "ed25519", comment: str = "ann@laptop") -> str:
    subprocess.run(["ssh-keygen", "-q", "-t", kind, "-N", "", "-C", comment, "-f", str(path)],
                   check=True)
    listed = subprocess.run(["ssh-keygen", "-l", "-f", f"{path}.pub"], capture_output=True,
                            text=True, check=True)
    return listed.stdout.split()[1]


def test_keys_add_takes_the_key_ssh_would_offer_and_keys_lists_it(
    platform: str, home: Path
) -> None:
    assert "You have no SSH keys" in run("keys").stdout
    rsa = keygen(home / ".ssh" / "id_rsa", "rsa", "old")
    ed = keygen(home / ".ssh" / "id_ed25519", comment="new")
    added = run("keys:add")
    assert added.exit_code == 0, added.output
    assert f"({ed})" in added.stdout and "id_ed25519.pub" in added.stdout
    assert run("keys:add", str(home / ".ssh" / "id_rsa.pub")).exit_code == 0
    listed = run("keys").stdout
    assert ed in listed and rsa in listed and "new" in listed


def test_keys_remove_by_comment_or_fingerprint(platform: str, home: Path) -> None:
    first = keygen(home / ".ssh" / "one", comment="work")
    second = keygen(home / ".ssh" / "two", comment="home")
    for name in ("one", "two"):
        assert run("keys:add", str(home / ".ssh" / f"{name}.pub")).exit_code == 0
    removed = run("keys:remove", "work")
    assert removed.exit_code == 0, removed.output
    assert removed.stdout == f"Removed {first} work\n"
    assert run("keys:remove", second).exit_code == 0
    assert "You have no SSH keys" in run("keys").stdout
    missing = run("keys:remove", "work")
    assert missing.exit_code == 1
    assert missing.stderr == "error: you have no SSH key 'work'; `paas keys` lists yours\n"


def test_keys_add_errors_are_one_line(platform: str, home: Path) -> None:
    keygen(home / ".ssh" / "id_ed25519")
    private = run("keys:add", str(home / ".ssh" / "id_ed25519"))
    assert private.exit_code == 1 and "private key" in private.stderr
    assert run("keys:add").exit_code == 0
    again = run("keys:add")
    assert again.exit_code == 1 and "already on your account" in again.stderr
    assert "Traceback" not in again.output


def test_without_a_key_file_keys_add_says_how_to_make_one(tmp_path: Path) -> None:
    with pytest.raises(PaasError, match="ssh-keygen -t ed25519"):
        default_key_file(tmp_path)


def test_git_remote_ssh_sets_the_ssh_url(platform: str, tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    assert run("apps:create", "hello").exit_code == 0
    repo = tmp_path / "repo"
    repo.mkdir()
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    monkeypatch.chdir(repo)
    result = run("git:remote", "--ssh", "-a", "hello")
    assert result.exit_code == 0, result.output
    url = subprocess.run(["git", "remote", "get-url", "paas"], cwd=repo, capture_output=True,
                         text=True, check=True).stdout.strip()
    assert url == "ssh://git@127.0.0.1:2222/hello.git"
    # Commands find the app from an SSH remote as from an HTTP one.
    info = run("apps:info", "--json")
    assert info.exit_code == 0 and '"name": "hello"' in info.stdout
