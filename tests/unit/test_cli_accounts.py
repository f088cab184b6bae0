"""The accounts commands of the CLI against the real API (web/), served over real HTTP on
a loopback port with a real store and Redis: users, login with a password, tokens,
access, transfer and the audit log."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from click.testing import CliRunner, Result
from werkzeug.serving import make_server

from paas.cli import netrc_file
from paas.cli.main import cli
from paas.config import Settings
from paas.store import Store
from web import create_app


class Platform:
    def __init__(self, url: str, store: Store, admin_token: str) -> None:
        self.url = url
        self.store = store
        self.admin_token = admin_token


@pytest.fixture()
def platform(tmp_path: Path, redis_url: str, r: redis.Redis,
             monkeypatch: pytest.MonkeyPatch) -> Iterator[Platform]:
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("PAAS_HOME", str(tmp_path / "nowhere"))
    monkeypatch.delenv("PAAS_URL", raising=False)
    monkeypatch.delenv("PAAS_API_KEY", raising=False)
    s = Settings(home=tmp_path / "paas", domain="localhost", http_port=8080,
                 redis_url_override=redis_url, runtime="process")
    store = Store(s.db_path)
    store.migrate()
    admin = store.create_user("admin", is_admin=True)
    app = create_app(s)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield Platform(f"http://127.0.0.1:{server.server_port}", store,
                       store.create_token(admin.id))
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
        app.extensions["paas_redis"].close()
        store.close()


def run(*args: str, input: str | None = None, token: str | None = None,
        url: str | None = None) -> Result:
    env = {"PAAS_API_KEY": token} if token else {}
    if url:
        env["PAAS_URL"] = url
    return CliRunner().invoke(cli, list(args), input=input,
                              prog_name="paas", env=env)


def ok(result: Result) -> str:
    assert result.exit_code == 0, result.output
    return result.stdout


def test_an_admin_adds_a_user_who_logs_in_with_a_password(platform: Platform) -> None:
    admin = {"token": platform.admin_token, "url": platform.url}
    out = ok(run("users:add", "ann", **admin))
    assert "Added user ann." in out
    password = out.split("Password (shown once): ")[1].split()[0]
    bad = run("login", "--url", platform.url, "-u", "ann", "--password-stdin", input="nope\n")
    assert bad.exit_code == 1 and bad.stderr == "error: wrong user name or password\n"
    login = run("login", "--url", platform.url, "-u", "ann", "--password-stdin",
                input=password + "\n")
    assert ok(login) == "Logged in as ann\n"
    token = netrc_file.read_password("127.0.0.1")
    assert token and platform.store.user_for_token(token).name == "ann"  # type: ignore[union-attr]
    # Later commands find the platform and the token with nothing in the environment.
    assert "You have no apps" in ok(run("apps"))
    assert "paas login on" in ok(run("tokens"))
    users = ok(run("users", **admin))
    assert "ann" in users and "admin" in users
    assert run("users:add", "bob").stderr == "error: only admins manage users\n"


def test_users_add_takes_a_password_on_stdin(platform: Platform) -> None:
    out = ok(run("users:add", "bob", "--admin", "--password-stdin", input="a long password\n",
                 token=platform.admin_token, url=platform.url))
    assert "Added admin bob." in out and "Password" not in out
    assert platform.store.user_for_password("bob", "a long password") is not None


def test_tokens_are_created_shown_once_and_revoked(platform: Platform) -> None:
    admin = {"token": platform.admin_token, "url": platform.url}
    out = ok(run("tokens:create", "-d", "ci", **admin))
    token_id, secret = out.split()[1], out.splitlines()[1]
    assert platform.store.user_for_token(secret) is not None
    listed = ok(run("tokens", **admin))
    assert "ci" in listed and secret not in listed
    assert ok(run("tokens:revoke", token_id, **admin)) == f"Revoked token {token_id}.\n"
    assert platform.store.user_for_token(secret) is None


def test_access_transfer_and_audit(platform: Platform) -> None:
    admin = {"token": platform.admin_token, "url": platform.url}
    ok(run("users:add", "ann", "--password-stdin", input="password one\n", **admin))
    ok(run("apps:create", "hello", **admin))
    assert ok(run("access:add", "ann", "-a", "hello", "--role", "view", **admin)) == (
        "Adding ann to hello as view... done\n")
    assert ok(run("access", "-a", "hello", **admin)) == (
        "=== hello Access\nadmin  owner (app owner)\nann    view\n")
    ok(run("access:update", "ann", "-a", "hello", "--role", "deploy", **admin))
    refused = run("apps:transfer", "ann", "-a", "hello", **admin)
    assert refused.exit_code == 1 and "--confirm hello" in refused.stderr
    ok(run("apps:transfer", "ann", "-a", "hello", "--confirm", "hello", **admin))
    assert ok(run("access", "-a", "hello", **admin)) == (
        "=== hello Access\nann    owner (app owner)\nadmin  deploy\n")
    ok(run("access:remove", "admin", "-a", "hello", **admin))
    audit = ok(run("audit", "-a", "hello", **admin)).splitlines()
    assert [line.split()[3] for line in audit] == [
        "delete_collaborator", "transfer_app", "update_collaborator", "create_collaborator",
        "create_app"]
    assert '{"body":{"owner":"ann"}}' in audit[1]
