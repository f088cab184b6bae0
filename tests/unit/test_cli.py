"""Unit tests of the `paas` CLI against a small fake of the REST API.

The fake is a Flask app served over real HTTP on a loopback port, so the
client's requests, headers, streaming and error handling are exercised for
real; only the platform behind the API is pretend.
"""

from __future__ import annotations

import importlib
import json
import os
import pkgutil
import socket
import stat
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner, Result
from flask import Flask, Response, jsonify, request
from werkzeug.serving import make_server

import paas.cli
from paas.cli import common, netrc_file
from paas.cli.client import ApiClient, ApiError
from paas.cli.logs import log_lines
from paas.cli.main import COMMANDS, cli

TOKEN = "test-token"
NOW = "2026-11-26T23:10:00Z"


# --- the fake platform -------------------------------------------------------
class FakePlatform:
    """The state behind the fake API, and a record of the requests it got."""

    def __init__(self) -> None:
        self.url = ""
        self.apps: dict[str, dict[str, Any]] = {}
        self.config: dict[str, dict[str, str]] = {}
        self.releases: dict[str, list[dict[str, Any]]] = {}
        self.formation: dict[str, list[dict[str, Any]]] = {}
        self.builds: dict[str, list[dict[str, Any]]] = {}
        # GET dynos answers these in turn, then keeps answering the last one.
        self.dyno_answers: list[list[dict[str, Any]]] = [[]]
        # Statuses the next new release reports to successive polls.
        self.release_statuses: list[str] = ["succeeded"]
        self.release_reason: str | None = None
        self.log_lines: list[str] = []
        self.log_gate: threading.Event | None = None
        self.requests: list[dict[str, Any]] = []
        self.app = self._flask_app()

    def add_app(self, name: str, release: int | None = 1) -> None:
        self.apps[name] = {
            "name": name, "owner": "admin", "created_at": NOW,
            "web_url": f"http://{name}.localhost:8080/",
            "git_url": f"{self.url}/git/{name}.git", "release": release,
        }
        self.config[name] = {}
        self.formation[name] = [{"type": "web", "quantity": 1, "command": "gunicorn app:app"}]
        self.builds[name] = [{
            "id": "b-1", "status": "succeeded", "commit": "0123456789abcdef", "ref": "main",
            "user": "admin", "created_at": NOW, "finished_at": NOW, "failure": None,
        }]
        self.releases[name] = []
        if release is not None:
            self._new_release(name, "Deploy 0123456", ["succeeded"])

    def _new_release(self, app: str, description: str, statuses: list[str]) -> dict[str, Any]:
        for old in self.releases[app]:
            old["current"] = False
        release = {
            "version": len(self.releases[app]) + 1, "status": statuses[0],
            "status_reason": None, "description": description, "commit": "0123456",
            "build_id": "b-1", "user": "admin", "created_at": NOW, "current": True,
            "process_types": {"web": "gunicorn app:app"}, "_statuses": list(statuses),
        }
        self.releases[app].insert(0, release)
        self.apps[app]["release"] = release["version"]
        return release

    def calls(self, method: str, path: str) -> list[dict[str, Any]]:
        return [r for r in self.requests if r["method"] == method and r["path"] == path]

    def _flask_app(self) -> Flask:
        app = Flask(__name__)

        def error(status: int, id_: str, message: str) -> Response:
            resp = jsonify({"id": id_, "message": message})
            resp.status_code = status
            return resp

        def public(release: dict[str, Any]) -> dict[str, Any]:
            return {k: v for k, v in release.items() if not k.startswith("_")}

        @app.before_request
        def record_and_authenticate() -> Response | None:
            self.requests.append({
                "method": request.method, "path": request.path,
                "args": dict(request.args), "headers": dict(request.headers),
                "json": request.get_json(silent=True),
            })
            if request.headers.get("Authorization") != f"Bearer {TOKEN}":
                return error(401, "unauthorized", "invalid token; run `paas login` again")
            name = (request.view_args or {}).get("name")
            if name is not None and name not in self.apps:
                return error(404, "not_found", f"no app named {name}; check `paas apps`")
            return None

        @app.get("/api/account")
        def account() -> Any:
            return {"name": "admin", "is_admin": True}

        @app.get("/api/moved")
        def moved() -> Any:
            return Response(status=302, headers={"Location": request.args["to"]})

        @app.get("/api/apps")
        def list_apps() -> Any:
            return jsonify(list(self.apps.values()))

        @app.post("/api/apps")
        def create_app() -> Any:
            name = (request.get_json() or {}).get("name") or "brave-otter-42"
            if name in self.apps:
                return error(409, "conflict", f"{name} is taken; pick another name")
            self.add_app(name, release=None)
            return self.apps[name], 201

        @app.get("/api/apps/<name>")
        def get_app(name: str) -> Any:
            return self.apps[name]

        @app.delete("/api/apps/<name>")
        def destroy_app(name: str) -> Any:
            return self.apps.pop(name)

        @app.get("/api/apps/<name>/config-vars")
        def get_config(name: str) -> Any:
            return self.config[name]

        @app.patch("/api/apps/<name>/config-vars")
        def patch_config(name: str) -> Any:
            for key, value in request.get_json().items():
                if value is None:
                    self.config[name].pop(key, None)
                else:
                    self.config[name][key] = value
            release = self._new_release(name, "Set config vars", self.release_statuses)
            release["_reason"] = self.release_reason
            resp = jsonify(self.config[name])
            resp.headers["Paas-Release"] = str(release["version"])
            return resp

        @app.get("/api/apps/<name>/releases")
        def list_releases(name: str) -> Any:
            return jsonify([public(r) for r in self.releases[name]])

        @app.get("/api/apps/<name>/releases/<int:version>")
        def get_release(name: str, version: int) -> Any:
            release = next(r for r in self.releases[name] if r["version"] == version)
            statuses = release["_statuses"]
            release["status"] = statuses.pop(0) if len(statuses) > 1 else statuses[0]
            if release["status"] == "failed":
                release["status_reason"] = release.get("_reason")
            return public(release)

        @app.post("/api/apps/<name>/releases")
        def rollback(name: str) -> Any:
            target = (request.get_json() or {}).get("release")
            release = self._new_release(name, f"Rollback to v{target}", self.release_statuses)
            return public(release), 201

        @app.get("/api/apps/<name>/formation")
        def get_formation(name: str) -> Any:
            return jsonify(self.formation[name])

        @app.patch("/api/apps/<name>/formation")
        def patch_formation(name: str) -> Any:
            for update in request.get_json()["updates"]:
                for entry in self.formation[name]:
                    if entry["type"] == update["type"]:
                        entry["quantity"] = update["quantity"]
            return jsonify(self.formation[name])

        @app.get("/api/apps/<name>/dynos")
        def get_dynos(name: str) -> Any:
            answers = self.dyno_answers
            return jsonify(answers.pop(0) if len(answers) > 1 else answers[0])

        @app.delete("/api/apps/<name>/dynos")
        def restart_dynos(name: str) -> Any:
            return "", 202

        @app.get("/api/apps/<name>/builds")
        def list_builds(name: str) -> Any:
            return jsonify(self.builds[name])

        @app.get("/api/apps/<name>/log-session")
        def log_session(name: str) -> Any:
            lines, gate = list(self.log_lines), self.log_gate

            def generate() -> Iterator[str]:
                yield lines[0] + "\n"
                if gate is not None:
                    gate.wait(5)
                for line in lines[1:]:
                    yield line + "\n"

            return Response(generate(), mimetype="text/plain")

        return app


def dyno(name: str, state: str, release: int = 1) -> dict[str, Any]:
    return {
        "name": name, "type": name.split(".")[0], "state": state, "release": release,
        "command": "gunicorn app:app", "started_at": NOW, "exit_code": None,
    }


# --- fixtures ----------------------------------------------------------------
@pytest.fixture(autouse=True)
def isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """A fresh HOME, no credentials from the outside, fast polling, cwd outside any repo."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("PAAS_HOME", str(tmp_path / "paas-home"))
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    for var in ("PAAS_URL", "PAAS_API_KEY", "XDG_CONFIG_HOME", "PAAS_HTTP_PORT"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(common, "POLL_INTERVAL", 0.01)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    return home


@pytest.fixture()
def platform(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakePlatform]:
    fake = FakePlatform()
    server = make_server("127.0.0.1", 0, fake.app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    fake.url = f"http://127.0.0.1:{server.server_port}"
    fake.add_app("demo")
    monkeypatch.setenv("PAAS_URL", fake.url)
    monkeypatch.setenv("PAAS_API_KEY", TOKEN)
    try:
        yield fake
    finally:
        if fake.log_gate is not None:
            fake.log_gate.set()
        server.shutdown()
        server.server_close()
        thread.join(5)


def run(*args: str, input: str | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), input=input, prog_name="paas")


def git(*args: str, cwd: Path) -> str:
    done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True)
    return done.stdout.strip()


def assert_clean_error(result: Result, message: str) -> None:
    """One line on stderr, `error: ...`, exit status 1, no traceback anywhere."""
    assert result.exit_code == 1, result.output
    assert result.stderr == f"error: {message}\n"
    assert "Traceback" not in result.output
    assert isinstance(result.exception, SystemExit)


# --- apps --------------------------------------------------------------------
def test_apps_create_without_name_prints_the_urls(platform: FakePlatform) -> None:
    result = run("apps:create")
    assert result.exit_code == 0, result.output
    assert platform.calls("POST", "/api/apps")[0]["json"] == {}
    assert "Creating brave-otter-42... done" in result.stdout
    assert "http://brave-otter-42.localhost:8080/" in result.stdout
    assert f"{platform.url}/git/brave-otter-42.git" in result.stdout


def test_apps_create_with_name_sends_it(platform: FakePlatform) -> None:
    result = run("apps:create", "hello")
    assert result.exit_code == 0, result.output
    assert platform.calls("POST", "/api/apps")[0]["json"] == {"name": "hello"}
    assert result.stdout.startswith("Creating hello... done\n")


def test_apps_destroy_refuses_without_matching_confirm(platform: FakePlatform) -> None:
    for extra in ([], ["--confirm", "other"]):
        result = run("apps:destroy", "demo", *extra)
        assert_clean_error(
            result, "not destroying demo: confirm with `paas apps:destroy demo --confirm demo`"
        )
    assert platform.calls("DELETE", "/api/apps/demo") == []
    assert "demo" in platform.apps


def test_apps_destroy_with_confirm_destroys(platform: FakePlatform) -> None:
    result = run("apps:destroy", "demo", "--confirm", "demo")
    assert result.exit_code == 0, result.output
    assert "Destroying demo... done" in result.stdout
    assert "demo" not in platform.apps


def test_apps_info_shows_urls_and_dynos(platform: FakePlatform) -> None:
    result = run("apps:info", "-a", "demo")
    assert result.exit_code == 0, result.output
    assert "=== demo" in result.stdout
    assert "Dynos:   web: 1" in result.stdout
    assert f"Git URL: {platform.url}/git/demo.git" in result.stdout


def test_requests_carry_token_accept_and_user_agent(platform: FakePlatform) -> None:
    assert run("apps").exit_code == 0
    headers = platform.calls("GET", "/api/apps")[0]["headers"]
    assert headers["Authorization"] == f"Bearer {TOKEN}"
    assert headers["Accept"] == "application/json"
    assert headers["User-Agent"].startswith("paas-cli/")


def test_a_redirect_keeps_the_token_only_on_the_same_host(platform: FakePlatform) -> None:
    client = ApiClient(platform.url, TOKEN)
    account = {"name": "admin", "is_admin": True}
    assert client.get("moved", to=f"{platform.url}/api/account") == account
    elsewhere = platform.url.replace("127.0.0.1", "localhost")
    with pytest.raises(ApiError, match="invalid token"):
        client.get("moved", to=f"{elsewhere}/api/account")
    assert "Authorization" not in platform.calls("GET", "/api/account")[-1]["headers"]


# --- config ------------------------------------------------------------------
def test_config_set_parses_pairs_and_waits_for_the_release(platform: FakePlatform) -> None:
    platform.release_statuses = ["pending", "pending", "succeeded"]
    result = run("config:set", "A=1", "DATABASE_URL=postgres://db/x?a=b&c=d", "-a", "demo")
    assert result.exit_code == 0, result.output
    body = platform.calls("PATCH", "/api/apps/demo/config-vars")[0]["json"]
    assert body == {"A": "1", "DATABASE_URL": "postgres://db/x?a=b&c=d"}
    assert len(platform.calls("GET", "/api/apps/demo/releases/2")) == 3
    assert "Setting A and DATABASE_URL and restarting demo... done, v2" in result.stdout


def test_config_set_rejects_a_bad_key_before_calling_the_api(platform: FakePlatform) -> None:
    result = run("config:set", "1BAD=x", "-a", "demo")
    assert_clean_error(
        result,
        "'1BAD' is not a valid config key; use letters, digits and _, not starting with a digit",
    )
    assert platform.calls("PATCH", "/api/apps/demo/config-vars") == []
    assert_clean_error(run("config:set", "NOEQUALS", "-a", "demo"),
                       "expected KEY=value, got 'NOEQUALS'")


def test_config_set_reports_a_failed_release(platform: FakePlatform) -> None:
    platform.release_statuses = ["pending", "failed"]
    platform.release_reason = "release command exited with status 1"
    result = run("config:set", "A=1", "-a", "demo")
    assert_clean_error(result, "release v2 failed: release command exited with status 1")
    assert "Setting A and restarting demo... failed" in result.stdout


def test_config_unset_sends_nulls(platform: FakePlatform) -> None:
    platform.config["demo"] = {"A": "1", "B": "2"}
    result = run("config:unset", "A", "-a", "demo")
    assert result.exit_code == 0, result.output
    assert platform.calls("PATCH", "/api/apps/demo/config-vars")[0]["json"] == {"A": None}
    assert "Unsetting A and restarting demo... done, v2" in result.stdout
    assert platform.config["demo"] == {"B": "2"}


def test_config_shows_aligned_and_shell_forms(platform: FakePlatform) -> None:
    platform.config["demo"] = {"A": "1", "LONG_NAME": "two words"}
    shown = run("config", "-a", "demo").stdout
    assert shown == "=== demo Config Vars\nA:         1\nLONG_NAME: two words\n"
    shell = run("config", "-a", "demo", "--shell").stdout
    assert shell == "A=1\nLONG_NAME='two words'\n"
    assert run("config:get", "LONG_NAME", "-a", "demo").stdout == "two words\n"


# --- the app from the git remote ----------------------------------------------
def test_app_is_inferred_from_the_paas_remote(platform: FakePlatform, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    platform.add_app("inferred")
    platform.config["inferred"] = {"WHERE": "remote"}
    repo = tmp_path / "repo"
    repo.mkdir()
    git("init", "-q", cwd=repo)
    git("remote", "add", "paas", f"{platform.url}/git/inferred.git", cwd=repo)
    monkeypatch.chdir(repo)
    result = run("config")
    assert result.exit_code == 0, result.output
    assert "WHERE: remote" in result.stdout
    assert platform.calls("GET", "/api/apps/inferred/config-vars")


def test_no_app_and_no_remote_is_a_clean_error(platform: FakePlatform) -> None:
    assert_clean_error(
        run("config"), "no app given; use -a APP or run inside a repo with a `paas` git remote"
    )


# --- git:remote ---------------------------------------------------------------
def test_git_remote_puts_the_token_in_netrc_not_git_config(
    platform: FakePlatform, tmp_path: Path, isolated: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    netrc = isolated / ".netrc"
    netrc.write_text(
        "machine other.example.com login bob password s3cret\n"
        "machine 127.0.0.1 login paas password old-token\n"
    )
    repo = tmp_path / "repo"
    repo.mkdir()
    git("init", "-q", cwd=repo)
    monkeypatch.chdir(repo)
    result = run("git:remote", "-a", "demo")
    assert result.exit_code == 0, result.output
    git_url = f"{platform.url}/git/demo.git"
    assert git("remote", "get-url", "paas", cwd=repo) == git_url
    assert TOKEN not in (repo / ".git" / "config").read_text()
    assert stat.S_IMODE(netrc.stat().st_mode) == 0o600
    assert netrc.read_text() == (
        "machine other.example.com login bob password s3cret\n"
        f"machine 127.0.0.1 login paas password {TOKEN}\n"
    )


def test_git_remote_updates_an_existing_remote(platform: FakePlatform, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    git("init", "-q", cwd=repo)
    git("remote", "add", "prod", "http://old.example.com/git/demo.git", cwd=repo)
    monkeypatch.chdir(repo)
    result = run("git:remote", "-a", "demo", "-r", "prod")
    assert result.exit_code == 0, result.output
    assert git("remote", "get-url", "prod", cwd=repo) == f"{platform.url}/git/demo.git"
    assert f"set git remote prod to {platform.url}/git/demo.git" in result.stdout


def test_git_remote_outside_a_repo_is_a_clean_error(platform: FakePlatform) -> None:
    assert_clean_error(
        run("git:remote", "-a", "demo"),
        "not inside a git repository; run `git init` first or cd into your app",
    )


def test_netrc_edit_keeps_macros_and_default_last() -> None:
    text = (
        "# mine\nmachine a login x password y\n"
        "macdef init\ncd /tmp\n\n"
        "default login anonymous password me@example.com\n"
    )
    updated = netrc_file.with_entry(text, "b", "paas", "tok")
    assert updated == (
        "# mine\nmachine a login x password y\n"
        "macdef init\ncd /tmp\n\n"
        "machine b login paas password tok\n"
        "default login anonymous password me@example.com\n"
    )
    assert netrc_file.find_password(updated, "a") == "y"
    assert netrc_file.find_password(updated, "b") == "tok"
    assert netrc_file.find_password('machine c password "q u"', "c") == "q u"
    # An entry spread over lines is replaced whole.
    assert netrc_file.with_entry("machine b\n  login l\n  password p\n", "b", "paas", "t") == (
        "machine b login paas password t\n"
    )


# --- ps ------------------------------------------------------------------------
def test_ps_groups_dynos_by_type(platform: FakePlatform) -> None:
    platform.dyno_answers = [[dyno("worker.1", "crashed"), dyno("web.2", "up"),
                              dyno("web.1", "up", release=3)]]
    platform.dyno_answers[0][0]["exit_code"] = 1
    result = run("ps", "-a", "demo")
    assert result.exit_code == 0, result.output
    assert result.stdout == (
        "=== web (2): gunicorn app:app\n"
        "web.1: up 2026-11-26 23:10:00 (v3)\n"
        "web.2: up 2026-11-26 23:10:00 (v1)\n\n"
        "=== worker (1): gunicorn app:app\n"
        "worker.1: crashed 2026-11-26 23:10:00 (v1) exit code 1\n"
    )


def test_ps_scale_patches_the_formation_and_waits_for_dynos(platform: FakePlatform) -> None:
    platform.dyno_answers = [
        [dyno("web.1", "up")],
        [dyno("web.1", "up"), dyno("web.2", "starting")],
        [dyno("web.1", "up"), dyno("web.2", "up")],
    ]
    result = run("ps:scale", "web=2", "-a", "demo")
    assert result.exit_code == 0, result.output
    body = platform.calls("PATCH", "/api/apps/demo/formation")[0]["json"]
    assert body == {"updates": [{"type": "web", "quantity": 2}]}
    assert len(platform.calls("GET", "/api/apps/demo/dynos")) == 3
    assert "Scaling dynos... done, now running web at 2\n" in result.stdout


def test_ps_scale_rejects_junk(platform: FakePlatform) -> None:
    assert_clean_error(run("ps:scale", "web=two", "-a", "demo"),
                       "expected TYPE=N like web=2, got 'web=two'")
    assert platform.calls("PATCH", "/api/apps/demo/formation") == []


def test_ps_restart_deletes_dynos(platform: FakePlatform) -> None:
    result = run("ps:restart", "-a", "demo")
    assert result.exit_code == 0, result.output
    assert platform.calls("DELETE", "/api/apps/demo/dynos")
    assert result.stdout == "Restarting dynos... done\n"


# --- releases ------------------------------------------------------------------
@pytest.mark.parametrize(("args", "body", "label"), [
    (["v1"], {"release": 1}, "Rolling back demo to v1... done, v2"),
    (["1"], {"release": 1}, "Rolling back demo to v1... done, v2"),
    ([], {}, "Rolling back demo... done, v2"),
])
def test_rollback_posts_and_waits(platform: FakePlatform, args: list[str],
                                  body: dict[str, int], label: str) -> None:
    platform.release_statuses = ["pending", "succeeded"]
    result = run("rollback", *args, "-a", "demo")
    assert result.exit_code == 0, result.output
    assert platform.calls("POST", "/api/apps/demo/releases")[0]["json"] == body
    assert label in result.stdout


def test_releases_lists_newest_first(platform: FakePlatform) -> None:
    run("config:set", "A=1", "-a", "demo")
    result = run("releases", "-a", "demo", "-n", "1")
    assert result.exit_code == 0, result.output
    asked = platform.calls("GET", "/api/apps/demo/releases")[-1]["headers"]["Range"]
    assert asked == "version ..; max=1, order=desc"
    assert result.stdout.splitlines() == [
        "=== demo Releases - Current: v2",
        "v2  Set config vars  admin  2026-11-26 23:10:00",
    ]


# --- JSON output -------------------------------------------------------------------
@pytest.mark.parametrize(("args", "expected"), [
    (["apps"], lambda p: list(p.apps.values())),
    (["apps:info", "-a", "demo"], lambda p: p.apps["demo"]),
    (["config", "-a", "demo"], lambda p: p.config["demo"]),
    (["builds", "-a", "demo"], lambda p: p.builds["demo"]),
    (["ps", "-a", "demo"], lambda p: p.dyno_answers[0]),
    (["releases", "-a", "demo"], lambda p: [
        {k: v for k, v in r.items() if not k.startswith("_")} for r in p.releases["demo"]
    ]),
    (["ps:scale", "web=1", "-a", "demo"], lambda p: p.formation["demo"]),
])
def test_json_output_is_the_apis_json(platform: FakePlatform, args: list[str],
                                      expected: Any) -> None:
    platform.config["demo"] = {"A": "1"}
    platform.dyno_answers = [[dyno("web.1", "up")]]
    result = run(*args, "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == expected(platform)


# --- logs ------------------------------------------------------------------------
def test_logs_prints_lines_with_the_asked_numbers(platform: FakePlatform) -> None:
    platform.log_lines = ["app[web.1]: one", "app[web.1]: two"]
    result = run("logs", "-a", "demo", "-n", "5")
    assert result.exit_code == 0, result.output
    assert result.stdout == "app[web.1]: one\napp[web.1]: two\n"
    assert platform.calls("GET", "/api/apps/demo/log-session")[0]["args"] == {
        "lines": "5", "tail": "0"
    }
    assert run("logs", "-a", "demo", "--tail").exit_code == 0
    assert platform.calls("GET", "/api/apps/demo/log-session")[1]["args"]["tail"] == "1"


def test_log_lines_arrive_before_the_stream_ends(platform: FakePlatform) -> None:
    platform.log_lines = ["first", "second"]
    platform.log_gate = threading.Event()
    with ApiClient(platform.url, TOKEN) as client:
        lines = log_lines(client, "demo", 10, tail=True)
        started = time.monotonic()
        # The server holds "second" back until the gate opens (or 5 s pass).
        assert next(lines) == "first"
        assert time.monotonic() - started < 2
        platform.log_gate.set()
        assert list(lines) == ["second"]


def test_logs_ctrl_c_exits_quietly(platform: FakePlatform,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupted(*_args: Any, **_kwargs: Any) -> Iterator[str]:
        yield "before ctrl-c"
        raise KeyboardInterrupt

    monkeypatch.setattr("paas.cli.logs.log_lines", interrupted)
    result = run("logs", "-a", "demo", "-t")
    assert result.exit_code == 0
    assert result.output == "before ctrl-c\n"


# --- errors --------------------------------------------------------------------------
def test_api_error_becomes_one_clean_line(platform: FakePlatform) -> None:
    assert_clean_error(run("apps:info", "-a", "missing"),
                       "no app named missing; check `paas apps`")
    assert_clean_error(run("apps:create", "demo"), "demo is taken; pick another name")


def test_connection_refused_names_the_url(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    monkeypatch.setenv("PAAS_URL", url)
    monkeypatch.setenv("PAAS_API_KEY", TOKEN)
    assert_clean_error(run("apps"), f"cannot reach the platform at {url}; is `paas up` running?")


def test_up_is_registered_with_its_help() -> None:
    assert cli.commands["up"].help == (
        "Start the platform in the foreground: redis, web, build worker, agent and router."
    )
    assert "Start the platform in the foreground" in run("--help").stdout


def test_every_command_is_in_the_table_that_imports_it_when_asked_for() -> None:
    defined = {}
    for info in pkgutil.iter_modules(paas.cli.__path__):
        module = importlib.import_module(f"paas.cli.{info.name}")
        for attr, value in vars(module).items():
            if (isinstance(value, click.Command) and not isinstance(value, click.Group)
                    and value.callback.__module__ == module.__name__ and value.name != "up"):
                defined[value.name] = f"{info.name}:{attr}"
    assert defined == COMMANDS


def test_unknown_command_points_at_help() -> None:
    assert_clean_error(run("nope"), "no such command nope; `paas --help` lists them")


def test_usage_errors_are_one_line_too() -> None:
    assert_clean_error(run("ps:scale"),
                       "Missing argument 'TYPE=N...'. (see `paas ps:scale --help`)")


# --- credentials -----------------------------------------------------------------------
def test_without_any_token_says_how_to_log_in() -> None:
    assert_clean_error(run("apps"), "not logged in; run `paas login` or set PAAS_API_KEY")


def test_local_platform_admin_token_is_the_fallback(platform: FakePlatform, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PAAS_URL")
    monkeypatch.delenv("PAAS_API_KEY")
    monkeypatch.setenv("PAAS_HTTP_PORT", platform.url.rsplit(":", 1)[1])
    (tmp_path / "paas-home").mkdir()
    (tmp_path / "paas-home" / "admin.token").write_text(TOKEN + "\n")
    result = run("apps", "--json")
    assert result.exit_code == 0, result.output
    assert [a["name"] for a in json.loads(result.stdout)] == ["demo"]


def test_login_stores_url_and_token_then_commands_use_them(
    platform: FakePlatform, tmp_path: Path, isolated: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PAAS_URL")
    monkeypatch.delenv("PAAS_API_KEY")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    bad = run("login", "--url", platform.url + "/", input="wrong\n")
    assert_clean_error(bad, "invalid token; run `paas login` again")
    result = run("login", "--url", platform.url + "/", input=TOKEN + "\n")
    assert result.exit_code == 0, result.output
    assert result.stdout == "Logged in as admin\n"
    stored = json.loads((tmp_path / "xdg" / "paas" / "config.json").read_text())
    assert stored == {"url": platform.url}
    assert netrc_file.read_password("127.0.0.1") == TOKEN
    assert stat.S_IMODE(os.stat(isolated / ".netrc").st_mode) == 0o600
    assert run("apps").stdout == "=== Apps\ndemo\n"
